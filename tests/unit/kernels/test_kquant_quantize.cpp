// Quantizers of the K formats (q2_K .. q6_K): round trips within a bound derived from each
// format, byte-for-byte agreement with an independent NumPy transcription of ggml's reference
// quantizers (tests/reference/ggml_kquant.py), hand-computed blocks, exact round trips of
// equal-value blocks on the format's grid, the tensor entry and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/ggml_types.h"
#include "core/rng.h"
#include "kernels/quant/quant.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr int kBlock = 256;

using ::sy::test::error_of;

const GgmlType kTypes[] = {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K,
                           GgmlType::kQ6_K};

std::string name_of(GgmlType type) { return std::string(ggml_type_info(type).name); }

Bytes quantized(GgmlType type, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  Bytes out(static_cast<size_t>(ggml_row_bytes(type, n)), 0xcd);
  quantize_row(type, x.data(), out.data(), n);
  return out;
}

std::vector<float> dequantized(GgmlType type, const Bytes& blocks) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  const int64_t n = static_cast<int64_t>(blocks.size()) / info.block_bytes * info.block_values;
  std::vector<float> out(static_cast<size_t>(n), -12345.0f);
  dequantize_row(type, blocks.data(), out.data(), n);
  return out;
}

float f16_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// ---- the inputs -------------------------------------------------------------------------------

// Blocks of 256 of every kind the bound test and the NumPy comparison use, `reps` of each.
std::vector<float> stress_blocks(Rng& rng, int reps) {
  std::vector<float> x;
  for (int r = 0; r < reps; ++r) {
    for (int kind = 0; kind < 14; ++kind) {
      float b[kBlock];
      const float constant = rng.normal();
      const auto spike = static_cast<int>(rng.below(kBlock));
      for (int i = 0; i < kBlock; ++i) {
        const float g = rng.normal();
        switch (kind) {
          case 0:  // plain normal
            b[i] = g;
            break;
          case 1:  // heavy tails
            b[i] = g / std::max(rng.uniform(), 0.05f);
            break;
          case 2:  // one arbitrary value throughout (not on the format's grid)
            b[i] = constant;
            break;
          case 3:  // all zero
            b[i] = 0.0f;
            break;
          case 4:  // a single spike among zeros
            b[i] = i == spike ? 3.0f * constant : 0.0f;
            break;
          case 5:  // an outlier among normal values
            b[i] = i == spike ? 100.0f * constant : g;
            break;
          case 6:  // tiny: the f16 super-scales are subnormal
            b[i] = 1e-6f * g;
            break;
          case 7:  // tinier: the super-scales underflow to zero
            b[i] = 1e-9f * g;
            break;
          case 8:  // sub-blocks of very different magnitude
            b[i] = g * std::pow(10.0f, -static_cast<float>((i / 16) % 5));
            break;
          case 9:  // all positive, away from zero (the min is not clamped to 0)
            b[i] = std::fabs(g) + 2.0f;
            break;
          case 10:  // all negative
            b[i] = -std::fabs(g) - 0.1f;
            break;
          case 11:  // a ramp across the block
            b[i] = -1.0f + static_cast<float>(i) / 128.0f;
            break;
          case 12:  // few distinct values
            b[i] = static_cast<float>(static_cast<int>(rng.below(7)) - 3) * 0.5f;
            break;
          default:  // large
            b[i] = 1e4f * g;
            break;
        }
      }
      x.insert(x.end(), b, b + kBlock);
    }
  }
  return x;
}

// ---- (1) the round-trip bound ----------------------------------------------------------------
//
// What each format promises, from its definition (ggml quantize_row_<fmt>_ref):
//  (A) every code is the nearest point of its sub-block's stored grid: value d_eff * q - m_eff
//      (q2_K, q4_K, q5_K; q = 0..nmax) or d_eff * q (q3_K, q6_K; q = -nmax..nmax - 1), with
//      d_eff = d * scale and m_eff = dmin * min decoded from the block. So a value inside the
//      grid's span is off by at most d_eff / 2.
//  (B) the grid covers the sub-block up to the fit's own error and the error of storing its
//      scale: the search keeps a fit (s, m) whose weighted error is at most E0, that of its first
//      guess (the min/max grid, which the test recomputes), so value k is off the fit by at most
//      (E0 / w_k)^(1/p); storing s as d * scale moves grid point q by at most
//      nmax * (units * d + levels * ulp16(d)) (scale rounded to `units` of d, d rounded to f16),
//      and m likewise. ggml's least-squares searches do clip extreme values on purpose, so (B)
//      is the honest bound there, not d_eff / 2.
struct KFormat {
  GgmlType type;
  int sub;      // values per sub-block
  bool affine;  // value = d * q - m, else d * q
  int nmax;     // codes 0..nmax (affine) or -nmax..nmax - 1
  int levels;   // the integer sub-scale's range against the super-scale d
  float units;  // the sub-scale's worst rounding, in units of d (a capped top code: a whole one)
  int p;        // the fit's error norm: 1 (q2_K: least absolute error) or 2
};

const KFormat& format_of(GgmlType type) {
  static const KFormat formats[] = {
      {GgmlType::kQ2_K, 16, true, 3, 15, 0.5f, 1},    {GgmlType::kQ3_K, 16, false, 4, 32, 1.0f, 2},
      {GgmlType::kQ4_K, 32, true, 15, 63, 0.5f, 2},   {GgmlType::kQ5_K, 32, true, 31, 63, 0.5f, 2},
      {GgmlType::kQ6_K, 16, false, 32, 128, 1.0f, 2},
  };
  for (const KFormat& f : formats) {
    if (f.type == type) return f;
  }
  throw Error("no such K format");
}

// The stored grid of sub-block j: d_eff, m_eff as the dequantizer forms them, and the super-block
// d and dmin they came from.
struct Grid {
  float d_eff, m_eff, d, dmin;
};

Grid grid_of(GgmlType type, const uint8_t* b, int j) {
  switch (type) {
    case GgmlType::kQ2_K: {
      const float d = f16_at(b + 80), dmin = f16_at(b + 82);
      return {d * static_cast<float>(b[j] & 0xf), dmin * static_cast<float>(b[j] >> 4), d, dmin};
    }
    case GgmlType::kQ3_K: {
      const int low = j < 8 ? (b[96 + j] & 0xf) : (b[96 + j - 8] >> 4);
      const int high = (b[96 + 8 + j % 4] >> (2 * (j / 4))) & 3;
      const float d = f16_at(b + 108);
      return {d * static_cast<float>((low | (high << 4)) - 32), 0.0f, std::fabs(d), 0.0f};
    }
    case GgmlType::kQ6_K: {
      const float d = f16_at(b + 208);
      return {d * static_cast<float>(static_cast<int8_t>(b[192 + j])), 0.0f, std::fabs(d), 0.0f};
    }
    default: {  // q4_K, q5_K: 6-bit scales and mins
      const uint8_t* q = b + 4;
      const int sc = j < 4 ? q[j] & 63 : (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
      const int m = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
      const float d = f16_at(b), dmin = f16_at(b + 2);
      return {d * static_cast<float>(sc), dmin * static_cast<float>(m), d, dmin};
    }
  }
}

// The spacing of f16 values around |v| (subnormal spacing below 2^-14).
double ulp16(float v) {
  const double a = std::fabs(static_cast<double>(v));
  if (a < std::ldexp(1.0, -14)) return std::ldexp(1.0, -24);
  return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(a))) - 10);
}

// The fit's weights for sub-block x[0..n) and the weighted error E0 of the search's first guess.
double first_guess_error(const KFormat& f, const float* x, std::vector<double>& w) {
  const int n = f.sub;
  w.assign(static_cast<size_t>(n), 0.0);
  if (f.affine) {
    double sum_x2 = 0, lo = 0, hi = x[0];
    for (int i = 0; i < n; ++i) {
      sum_x2 += static_cast<double>(x[i]) * x[i];
      lo = std::min(lo, static_cast<double>(x[i]));
      hi = std::max(hi, static_cast<double>(x[i]));
    }
    const double av = std::sqrt(sum_x2 / n);
    for (int i = 0; i < n; ++i) w[i] = f.p == 1 ? std::fabs(x[i]) : av + std::fabs(x[i]);
    if (hi == lo) return 0.0;  // the fit is exact: value = -min
    const double s = (hi - lo) / f.nmax;
    double e0 = 0;
    for (int i = 0; i < n; ++i) {
      const double l = std::clamp(std::nearbyint((x[i] - lo) / s), 0.0, double(f.nmax));
      const double e = std::fabs(s * l + lo - x[i]);
      e0 += w[i] * (f.p == 1 ? e : e * e);
    }
    return e0;
  }
  double max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    w[i] = static_cast<double>(x[i]) * x[i];
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  double e0 = 0;
  for (int i = 0; i < n; ++i) {
    double e = x[i];  // a group below 1e-15 gets scale 0
    if (amax >= 1e-15) {
      const double s = -max / f.nmax;
      const double l = std::clamp(std::nearbyint(x[i] / s), double(-f.nmax), double(f.nmax - 1));
      e = s * l - x[i];
    }
    e0 += w[i] * e * e;
  }
  return e0;
}

// Every violation of (A) and (B) in the quantized blocks of x, as messages (empty when none).
std::vector<std::string> bound_violations(GgmlType type, const std::vector<float>& x,
                                          const Bytes& blocks) {
  const KFormat& f = format_of(type);
  const int64_t bytes = ggml_type_info(type).block_bytes;
  const std::vector<float> y = dequantized(type, blocks);
  std::vector<std::string> bad;
  std::vector<double> w;
  for (size_t b = 0; b < x.size() / kBlock; ++b) {
    const uint8_t* block = blocks.data() + b * bytes;
    for (int j = 0; j < kBlock / f.sub; ++j) {
      const size_t at = b * kBlock + static_cast<size_t>(j * f.sub);
      const Grid g = grid_of(type, block, j);
      const double e0 = first_guess_error(f, x.data() + at, w) * (1 + 1e-4);
      const double grid_moves = f.nmax * (f.units * g.d + f.levels * ulp16(g.d)) +
                                (f.affine ? 0.5 * g.dmin + f.levels * ulp16(g.dmin) : 0.0);
      for (int i = 0; i < f.sub; ++i) {
        const double xv = x[at + i], err = std::fabs(y[at + i] - xv);
        const double slack = 1e-6 * (std::fabs(xv) + std::fabs(g.m_eff) +
                                     f.nmax * std::fabs(static_cast<double>(g.d_eff))) +
                             1e-30;
        double nearest = std::numeric_limits<double>::infinity();
        const int q_lo = f.affine ? 0 : -f.nmax, q_hi = f.affine ? f.nmax : f.nmax - 1;
        for (int q = q_lo; q <= q_hi; ++q) {
          nearest = std::min(nearest, std::fabs(double(g.d_eff) * q - g.m_eff - xv));
        }
        const std::string where = name_of(type) + " block " + std::to_string(b) + " sub-block " +
                                  std::to_string(j) + " value " + std::to_string(i) + ": x " +
                                  std::to_string(xv) + " -> " + std::to_string(y[at + i]);
        if (err > nearest + slack) {
          bad.push_back(where + " is not the nearest grid point (" + std::to_string(nearest) +
                        " away)");
        }
        if (w[i] > 0) {
          const double fit = f.p == 1 ? e0 / w[i] : std::sqrt(e0 / w[i]);
          if (err > fit + grid_moves + slack) {
            bad.push_back(where + " exceeds the bound " + std::to_string(fit + grid_moves));
          }
        }
      }
    }
  }
  return bad;
}

TEST(KQuant, RoundTripWithinFormatBound) {
  Rng rng(21);
  const std::vector<float> x = stress_blocks(rng, 6);
  for (GgmlType type : kTypes) {
    const std::vector<std::string> bad = bound_violations(type, x, quantized(type, x));
    EXPECT_TRUE(bad.empty()) << bad.size() << " violations, first: " << bad.front();
  }
}

TEST(KQuant, BoundCheckerCatchesWrongCodesAndScales) {
  // The checker above must be able to fail: one code moved by one step breaks (A); a scale
  // stored too small breaks (B).
  Rng rng(22);
  std::vector<float> x(kBlock);
  for (float& v : x) v = rng.normal();
  Bytes q4 = quantized(GgmlType::kQ4_K, x);
  ASSERT_TRUE(bound_violations(GgmlType::kQ4_K, x, q4).empty());
  q4[16 + 5] ^= 0x01;  // value 5's code
  EXPECT_FALSE(bound_violations(GgmlType::kQ4_K, x, q4).empty());
  Bytes q6 = quantized(GgmlType::kQ6_K, x);
  ASSERT_TRUE(bound_violations(GgmlType::kQ6_K, x, q6).empty());
  q6[192 + 3] = static_cast<uint8_t>(static_cast<int8_t>(q6[192 + 3]) / 2);  // sub-block 3
  EXPECT_FALSE(bound_violations(GgmlType::kQ6_K, x, q6).empty());
}

// ---- (2) byte for byte like the NumPy transcription of ggml's algorithm -------------------------

// Quantizes x with each type and compares the bytes with the NumPy script `reference` gives
// (blocks of 256 values of the 14 stress kinds, so a block's kind is its index mod 14); returns
// our bytes per type.
std::vector<Bytes> expect_numpy_bytes(std::span<const GgmlType> types, const std::vector<float>& x,
                                      const char* reference) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<test::ReferenceCase> cases;
  for (GgmlType type : types) {
    cases.push_back(
        {{{"x", Tensor::from_f32({n}, x)}}, {{"op", "quantize"}, {"type", name_of(type)}}});
  }
  const auto ref = test::run_reference_cases(reference, cases);
  std::vector<Bytes> out;
  for (size_t c = 0; c < types.size(); ++c) {
    const GgmlType type = types[c];
    const int64_t block_bytes = ggml_type_info(type).block_bytes;
    const int64_t per_kind = kBlock / ggml_type_info(type).block_values;  // blocks of a kind
    out.push_back(quantized(type, x));
    const Bytes& ours = out.back();
    const Tensor& want = ref[c].at("blocks");
    EXPECT_EQ(want.numel(), static_cast<int64_t>(ours.size())) << name_of(type);
    if (want.numel() != static_cast<int64_t>(ours.size())) continue;
    int bad = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      const auto block = static_cast<int64_t>(i) / block_bytes;
      if (ours[i] != want.data<int64_t>()[i] && bad++ < 5) {
        ADD_FAILURE() << name_of(type) << ": byte " << static_cast<int64_t>(i) % block_bytes
                      << " of block " << block << " (kind " << block / per_kind % 14 << ") is "
                      << int{ours[i]} << ", numpy " << want.data<int64_t>()[i];
      }
    }
    EXPECT_EQ(bad, 0) << name_of(type);
  }
  return out;
}

TEST(KQuant, MatchesNumpyReferenceByteForByte) {
  Rng rng(23);
  // 840 blocks: some choices are rare.
  expect_numpy_bytes(kTypes, stress_blocks(rng, 60), "ggml_kquant");
}

// ---- (3) hand-computed blocks -----------------------------------------------------------------
//
// Ramps whose first guess is already exact (zero error), so no later candidate of the search can
// win and every byte follows by hand.

void expect_bytes(const Bytes& got, const Bytes& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && bad++ < 8) {
      ADD_FAILURE() << what << ": byte " << i << " is 0x" << std::hex << int{got[i]}
                    << ", expected 0x" << int{want[i]} << std::dec;
    }
  }
}

// 1 / 63 and 1 / 15 in f16: 1/63 = 2^-6 * 1.01587 -> mantissa round(0.01587 * 1024) = 16:
// 0x2410 = 2^-6 * 1040/1024 = 65/4096; 1/15 = 2^-4 * 1.06667 -> mantissa 68: 0x2c44 = 273/4096.
// Either way d * 63 (resp. d * 15) = 4095/4096, so codes up to 31 still round back to themselves.
constexpr float kStep4095 = 4095.0f / 4096.0f;

TEST(KQuant, HandComputedQ4_KAndQ5_KRamps) {
  // q4_K, x[32j + l] = l % 16. Every sub-block: min 0, max 15, iscale 1, scale 1, codes = x,
  // error 0. max scale 1, max min 0: d = f16(1/63) = 0x2410, dmin = 0; every 6-bit scale 63,
  // every min 0. scales[12]: bytes 0..3 = 63 | (63 >> 4) << 6 = 0xff (the top bits of scales
  // 4..7), bytes 4..7 = mins 0, bytes 8..11 = (63 & 15) | (0 << 4) = 0x0f. qs: chunk c, byte l =
  // code(64c + l) | code(64c + 32 + l) << 4 = (l % 16) * 0x11.
  std::vector<float> x(kBlock);
  for (int i = 0; i < kBlock; ++i) x[i] = static_cast<float>(i % 32 % 16);
  Bytes want = {0x10, 0x24, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
                0x00, 0x00, 0x00, 0x00, 0x0f, 0x0f, 0x0f, 0x0f};
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) want.push_back(static_cast<uint8_t>(0x11 * (l % 16)));
  }
  const Bytes q4 = quantized(GgmlType::kQ4_K, x);
  expect_bytes(q4, want, "q4_K ramp");
  const std::vector<float> y4 = dequantized(GgmlType::kQ4_K, q4);
  for (int i = 0; i < kBlock; ++i) EXPECT_EQ(y4[i], kStep4095 * x[i]) << i;

  // q5_K, x[32j + l] = l. Same scales (iscale 31/31 = 1), codes = l; qh: bit 4 of value i is bit
  // i / 32 of qh[i % 32], set for l >= 16: qh = 16 x 0x00, 16 x 0xff. qs: chunk c, byte l =
  // (l & 15) | (l & 15) << 4.
  for (int i = 0; i < kBlock; ++i) x[i] = static_cast<float>(i % 32);
  want.resize(16);
  for (int l = 0; l < 32; ++l) want.push_back(l < 16 ? 0x00 : 0xff);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) want.push_back(static_cast<uint8_t>(0x11 * (l & 15)));
  }
  const Bytes q5 = quantized(GgmlType::kQ5_K, x);
  expect_bytes(q5, want, "q5_K ramp");
  const std::vector<float> y5 = dequantized(GgmlType::kQ5_K, q5);
  for (int i = 0; i < kBlock; ++i) EXPECT_EQ(y5[i], kStep4095 * x[i]) << i;
}

TEST(KQuant, HandComputedQ2_KRamp) {
  // x[16j + i] = i % 4. Every sub-block: min 0, max 3, iscale 1, scale 1, codes = x, error 0.
  // max scale 1: d = f16(1/15) = 0x2c44, every 4-bit scale round(15 * 1) = 15; max min 0: dmin 0,
  // mins 0. scales[16] = 0x0f. qs: half h, byte l = code(128h + l) | code(+32) << 2 | code(+64)
  // << 4 | code(+96) << 6 = (l % 4) * 0x55.
  std::vector<float> x(kBlock);
  for (int i = 0; i < kBlock; ++i) x[i] = static_cast<float>(i % 4);
  Bytes want(16, 0x0f);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) want.push_back(static_cast<uint8_t>(0x55 * (l % 4)));
  }
  want.insert(want.end(), {0x44, 0x2c, 0x00, 0x00});
  const Bytes q = quantized(GgmlType::kQ2_K, x);
  expect_bytes(q, want, "q2_K ramp");
  const std::vector<float> y = dequantized(GgmlType::kQ2_K, q);
  for (int i = 0; i < kBlock; ++i) EXPECT_EQ(y[i], kStep4095 * x[i]) << i;
}

TEST(KQuant, HandComputedQ3_KAndQ6_KRampsRoundTripExactly) {
  // q3_K, x[16j + i] = i % 8 - 4. Every sub-block: largest magnitude -4 (first), iscale
  // -4 / -4 = 1, codes = x; the single-code moves find nothing better (x * sl2 / slx = x
  // exactly), scale 1. Max scale 1: iscale -32, every 6-bit scale round(-32) + 32 = 0, so
  // scales[12] = 0; d = f16(1 / -32) = 0xa800. d_eff = -1/32 * (0 - 32) = 1: code = x + 4 =
  // i % 8. hmask[m]: bit k = high bit of value 32k + m = (m % 8 >= 4): 0xff or 0x00. qs: low 2
  // bits (code % 4) packed as in q2_K: (l % 4) * 0x55.
  std::vector<float> x(kBlock);
  for (int i = 0; i < kBlock; ++i) x[i] = static_cast<float>(i % 8 - 4);
  Bytes want;
  for (int m = 0; m < 32; ++m) want.push_back(m % 8 >= 4 ? 0xff : 0x00);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) want.push_back(static_cast<uint8_t>(0x55 * (l % 4)));
  }
  want.insert(want.end(), 12, 0x00);
  want.insert(want.end(), {0x00, 0xa8});
  const Bytes q3 = quantized(GgmlType::kQ3_K, x);
  expect_bytes(q3, want, "q3_K ramp");
  EXPECT_EQ(dequantized(GgmlType::kQ3_K, q3), x);

  // q6_K, x[16j + i] = 4i - 32. Every sub-block: largest magnitude -32, iscale 1, codes = x,
  // scale 1 (sum (x^2 x) l = sum (x^2 l) l exactly). Max scale 1: iscale -128, d = f16(-1/128) =
  // 0xa000, every int8 scale min(127, round(-128)) = -128 = 0x80; d_eff = -1/128 * -128 = 1 and
  // code = x + 32 = 4 (v % 16) for value v. ql: half h, byte l (and l + 32) = low nibbles of
  // values 128h + l (+32) and +64 (+96), all 4 (l % 16) & 15 = 4 (l % 4): 0x44 * (l % 4). qh:
  // byte l = the four values' top 2 bits, (l % 16) / 4 each: 0x55 * ((l % 16) / 4).
  for (int i = 0; i < kBlock; ++i) x[i] = static_cast<float>(4 * (i % 16) - 32);
  want.clear();
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 64; ++l) want.push_back(static_cast<uint8_t>(0x44 * (l % 4)));
  }
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) want.push_back(static_cast<uint8_t>(0x55 * ((l % 16) / 4)));
  }
  want.insert(want.end(), 16, 0x80);
  want.insert(want.end(), {0x00, 0xa0});
  const Bytes q6 = quantized(GgmlType::kQ6_K, x);
  expect_bytes(q6, want, "q6_K ramp");
  EXPECT_EQ(dequantized(GgmlType::kQ6_K, q6), x);
}

// ---- (4) equal-value blocks -------------------------------------------------------------------
//
// A block of one value c comes back exactly when c lies on the grid the algorithm builds for it:
// c > 0 in q2_K / q4_K / q5_K is coded nmax * d * 63 (or * 15) with d = f16(c / (nmax * 63)), exact
// when c / (nmax * 63) is an f16 (c = 45/64, 945/1024, 1953/2048); c < 0 is coded as the min
// alone, -dmin * 63 (q2_K: * 15), exact when c / 63 is an f16; q3_K and q6_K store d =
// f16(c / 128) (f16(c / 4096)) with the sub-scale -32 (-128). An arbitrary constant (0.1) is
// only as close as the f16 super-scale allows: RoundTripWithinFormatBound covers those.
TEST(KQuant, EqualValueBlocksOnTheGridRoundTripExactly) {
  const struct {
    GgmlType type;
    std::vector<float> values;
  } cases[] = {
      {GgmlType::kQ2_K, {0.0f, 45.0f / 64, -15.0f / 16, -15.0f / 64}},
      {GgmlType::kQ3_K, {0.0f, 1.0f, -3.0f, 0.375f}},
      {GgmlType::kQ4_K, {0.0f, 945.0f / 1024, -63.0f / 64, -63.0f / 256}},
      {GgmlType::kQ5_K, {0.0f, 1953.0f / 2048, -63.0f / 64, -63.0f / 256}},
      {GgmlType::kQ6_K, {0.0f, 1.0f, -2.5f, 96.0f}},
  };
  for (const auto& c : cases) {
    std::vector<float> x;
    for (float v : c.values) x.insert(x.end(), kBlock, v);
    const Bytes q = quantized(c.type, x);
    const std::vector<float> y = dequantized(c.type, q);
    for (size_t i = 0; i < x.size(); i += 37) {
      EXPECT_EQ(y[i], x[i]) << name_of(c.type) << " constant " << x[i];
    }
    EXPECT_EQ(y, x) << name_of(c.type);
    // All zeros: every byte zero (scales, mins, codes, d and dmin).
    const int64_t bytes = ggml_type_info(c.type).block_bytes;
    EXPECT_EQ(std::count(q.begin(), q.begin() + bytes, 0), bytes) << name_of(c.type);
  }
}

// ---- the tensor entry ------------------------------------------------------------------------

TEST(KQuant, TensorEntryQuantizesRowsInParallelLikeRowByRow) {
  Rng rng(24);
  const int64_t rows = 80, cols = 1024;  // 81920 values: above the parallel threshold
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = rng.normal() * (1.0f + static_cast<float>(i % 7));
  const Tensor t = Tensor::from_f32({2, rows / 2, cols}, x);
  for (GgmlType type : kTypes) {
    const std::vector<uint8_t> all = quantize(t, type);
    const int64_t row_bytes = ggml_row_bytes(type, cols);
    ASSERT_EQ(static_cast<int64_t>(all.size()), rows * row_bytes) << name_of(type);
    Bytes row(static_cast<size_t>(row_bytes));
    for (int64_t r = 0; r < rows; ++r) {
      quantize_row(type, x.data() + r * cols, row.data(), cols);
      ASSERT_TRUE(std::equal(row.begin(), row.end(), all.begin() + r * row_bytes))
          << name_of(type) << " row " << r;
    }
  }
}

TEST(KQuant, NonFiniteAndExtremeValuesInRawRowsStayDefined) {
  // quantize() rejects non-finite values; quantize_row() trusts its input but must not invoke
  // undefined behaviour (the sanitizer builds run this): the codes are unspecified, the sizes not.
  std::vector<float> x(2 * kBlock, 1.0f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[40] = std::numeric_limits<float>::infinity();
  x[200] = -std::numeric_limits<float>::infinity();
  for (int i = kBlock; i < 2 * kBlock; ++i) {
    x[i] = (i % 2 ? 1.0f : -1.0f) * std::numeric_limits<float>::max() / static_cast<float>(i);
  }
  for (GgmlType type : kTypes) {
    const Bytes q = quantized(type, x);
    EXPECT_EQ(dequantized(type, q).size(), x.size()) << name_of(type);
  }
}

// ---- (6) iq4_nl and iq4_xs ---------------------------------------------------------------------
//
// Same searches per 32 values (kernels/quant/iq4.cpp): byte for byte like the NumPy transcription
// (tests/reference/ggml_quant.py), and exact round trips of blocks made of scaled table values.

const GgmlType kIq4Types[] = {GgmlType::kIQ4_NL, GgmlType::kIQ4_XS};

TEST(Iq4Quant, MatchesNumpyReferenceByteForByte) {
  Rng rng(25);
  const std::vector<float> x = stress_blocks(rng, 20);
  const std::vector<Bytes> ours = expect_numpy_bytes(kIq4Types, x, "ggml_quant");
  for (size_t c = 0; c < ours.size(); ++c) {
    const GgmlType type = kIq4Types[c];
    // Normal values come back within a few percent (RMS over the plain-normal blocks).
    const std::vector<float> back = dequantized(type, ours[c]);
    double err = 0.0, sum = 0.0;
    for (size_t i = 0; i < x.size(); i += 14 * kBlock) {
      for (int j = 0; j < kBlock; ++j) {
        err += (back[i + j] - x[i + j]) * (back[i + j] - x[i + j]);
        sum += x[i + j] * x[i + j];
      }
    }
    EXPECT_LT(std::sqrt(err / sum), 0.12) << name_of(type);
  }
}

// Every 32 values are s * table[code] with the value -127 s among them: the search's try t = 0
// fits them exactly (x * -127 / max = code values), so no other candidate can win. iq4_xs
// sub-block scales s_j = 0.5 * k_j / 32 all lie on its grid D = -0.5 / 32 (l_j = -k_j).
TEST(Iq4Quant, ScaledTableValuesRoundTripExactly) {
  const float table[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                           1,    13,   25,  38,  53,  69,  89,  113};
  const int k[8] = {32, 5, 17, 1, 32, 9, 24, 12};
  std::vector<float> x(kBlock);
  for (int j = 0; j < 8; ++j) {
    const float scale = 0.5f * static_cast<float>(k[j]) / 32.0f;
    for (int i = 0; i < 32; ++i) x[32 * j + i] = scale * table[(i * 7 + j) % 16];
  }
  for (GgmlType type : kIq4Types) {
    const Bytes q = quantized(type, x);
    const std::vector<float> back = dequantized(type, q);
    for (int i = 0; i < kBlock; ++i) {
      ASSERT_EQ(back[static_cast<size_t>(i)], x[static_cast<size_t>(i)])
          << name_of(type) << " value " << i;
    }
  }
  const Bytes xs = quantized(GgmlType::kIQ4_XS, x);
  EXPECT_EQ(f16_at(xs.data()), -0.5f / 32.0f);
  EXPECT_EQ(xs[4] & 0xf, 0);       // sub-block 0: l = -32, ls = 0
  EXPECT_EQ(xs[4] >> 4, 11);       // sub-block 1: ls = 32 - 5 = 27, low nibble 11
  EXPECT_EQ(xs[2] & 3, 0);         // sub-block 0's high bits
  EXPECT_EQ((xs[2] >> 2) & 3, 1);  // sub-block 1's: 27 >> 4
}

// ---- (5) errors -------------------------------------------------------------------------------

TEST(KQuant, RowLengthsThatAreNotWholeSuperBlocksAreRejected) {
  std::vector<float> x(512, 1.0f);
  Bytes out(512);
  EXPECT_EQ(error_of([&] { quantize_row(GgmlType::kQ4_K, x.data(), out.data(), 100); }),
            "quantize_row: q4_K: 100 values are not a whole number of 256-value blocks");
  EXPECT_EQ(error_of([&] { quantize_row(GgmlType::kQ6_K, x.data(), out.data(), 288); }),
            "quantize_row: q6_K: 288 values are not a whole number of 256-value blocks");
  EXPECT_EQ(error_of([&] { quantize_row(GgmlType::kQ2_K, x.data(), out.data(), -256); }),
            "quantize_row: q2_K: -256 values are not a whole number of 256-value blocks");
  EXPECT_EQ(error_of([&] {
              quantize(Tensor::from_f32({4, 128}, x), GgmlType::kQ5_K);
            }),
            "quantize: f32 tensor of shape [4, 128] to q5_K: rows of 128 values are not a whole "
            "number of 256-value blocks");
  x[300] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(error_of([&] {
              quantize(Tensor::from_f32({2, 256}, x), GgmlType::kQ6_K);
            }),
            "quantize: f32 tensor of shape [2, 256] to q6_K: element 300 (row 1, column 44) is "
            "nan");
}

}  // namespace
}  // namespace sy::kernels
