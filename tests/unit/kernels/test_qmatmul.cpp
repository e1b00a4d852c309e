#include <cblas.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/ggml_types.h"
#include "core/rng.h"
#include "kernels/activations.h"
#include "kernels/cpu/qdot.h"
#include "kernels/qmatmul.h"
#include "kernels/quant/formats.h"
#include "kernels/quant/quant.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using Bytes = std::vector<uint8_t>;

const GgmlType kQuantTypes[] = {GgmlType::kQ8_0, GgmlType::kQ4_0,   GgmlType::kQ4_1,
                                GgmlType::kQ5_0, GgmlType::kQ5_1,   GgmlType::kQ2_K,
                                GgmlType::kQ3_K, GgmlType::kQ4_K,   GgmlType::kQ5_K,
                                GgmlType::kQ6_K, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS};

using ::sy::test::error_of;

std::string name_of(GgmlType type) { return std::string(ggml_type_info(type).name); }

// Values per quantized activation block for weights of `type`.
int64_t act_block(GgmlType type) {
  return cpu::act_layout(type) == cpu::ActLayout::kA32 ? 32 : 256;
}

void put_f16(uint8_t* p, float value) {
  const uint16_t h = f32_to_f16(value);
  p[0] = static_cast<uint8_t>(h & 0xff);
  p[1] = static_cast<uint8_t>(h >> 8);
}

// Owns its bytes; `m` points into them.
struct Weights {
  Bytes bytes;
  QuantMatrix m;
};

Weights make_weights(GgmlType type, int64_t n, int64_t k, Bytes bytes) {
  Weights w{std::move(bytes), {}};
  w.m.type = type;
  w.m.rows = n;
  w.m.cols = k;
  w.m.row_bytes = static_cast<size_t>(ggml_row_bytes(type, k));
  w.m.data = w.bytes.data();
  return w;
}

// Random blocks: every code and packed scale byte uniform (so q8_0 meets -128 and the K formats
// every 6-bit scale and min), f16 scales positive and small enough that |W| stays ~1.
Weights random_weights(GgmlType type, int64_t n, int64_t k, Rng& rng) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  const int64_t nblocks = n * (k / info.block_values);
  Bytes b(static_cast<size_t>(nblocks * info.block_bytes));
  for (uint8_t& v : b) v = static_cast<uint8_t>(rng.below(256));
  for (int64_t i = 0; i < nblocks; ++i) {
    uint8_t* blk = b.data() + i * info.block_bytes;
    switch (type) {
      case GgmlType::kQ8_0:
        put_f16(blk, rng.uniform(0.5f, 1.5f) / 128.0f);
        break;
      case GgmlType::kQ4_0:
        put_f16(blk, rng.uniform(0.5f, 1.5f) / 8.0f);
        break;
      case GgmlType::kQ5_0:
        put_f16(blk, rng.uniform(0.5f, 1.5f) / 16.0f);
        break;
      case GgmlType::kQ4_1:  // w = d q + m, m of either sign
      case GgmlType::kQ5_1:
        put_f16(blk, rng.uniform(0.5f, 1.5f) / (type == GgmlType::kQ4_1 ? 16.0f : 32.0f));
        put_f16(blk + 2, rng.uniform(-1.0f, 0.5f));
        break;
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K:
        put_f16(blk, rng.uniform(0.5f, 1.5f) / 1024.0f);
        put_f16(blk + 2, rng.uniform(0.5f, 1.5f) / 1024.0f);
        break;
      case GgmlType::kQ6_K:
        put_f16(blk + 208, rng.uniform(0.5f, 1.5f) / 4096.0f);
        break;
      case GgmlType::kQ3_K:  // scales -32..31, codes -4..3
        put_f16(blk + 108, rng.uniform(0.5f, 1.5f) / 128.0f);
        break;
      case GgmlType::kQ2_K:  // scales and mins 0..15, codes 0..3
        put_f16(blk + 80, rng.uniform(0.5f, 1.5f) / 48.0f);
        put_f16(blk + 82, rng.uniform(0.5f, 1.5f) / 32.0f);
        break;
      case GgmlType::kIQ4_NL:  // table values up to 127
        put_f16(blk, rng.uniform(0.5f, 1.5f) / 128.0f);
        break;
      case GgmlType::kIQ4_XS:  // and sub-block scales (ls - 32) of -32 .. 31
        put_f16(blk, rng.uniform(0.5f, 1.5f) / 4096.0f);
        break;
      default:
        ADD_FAILURE() << "no random blocks for " << name_of(type);
    }
  }
  return make_weights(type, n, k, std::move(b));
}

std::vector<float> dequantized(const QuantMatrix& m) {
  const Tensor t =
      dequantize(m.data, static_cast<size_t>(m.rows) * m.row_bytes, m.type, {m.rows, m.cols});
  return {t.data<float>(), t.data<float>() + t.numel()};
}

// |d * scale * q| + |dmin * min| per value: the size of the terms the kernels scale and add
// (for q4_K / q5_K and q4_1 / q5_1 the two parts of a value can cancel; elsewhere it is |W|).
std::vector<float> term_sizes(const QuantMatrix& m, const std::vector<float>& w) {
  std::vector<float> out(w.size());
  // Bytes [begin, end) of a block: its codes (and qh), which zeroed leave the mins.
  size_t begin = 0, end = 0;
  const auto block = static_cast<size_t>(ggml_type_info(m.type).block_bytes);
  switch (m.type) {
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      begin = 16, end = block;
      break;
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
      begin = 4, end = block;
      break;
    case GgmlType::kQ2_K:
      begin = 16, end = 80;
      break;
    default:
      for (size_t i = 0; i < w.size(); ++i) out[i] = std::fabs(w[i]);
      return out;
  }
  Bytes zero(m.data, m.data + static_cast<size_t>(m.rows) * m.row_bytes);
  for (size_t b = 0; b < zero.size(); b += block) {
    std::memset(zero.data() + b + begin, 0, end - begin);
  }
  QuantMatrix z = m;
  z.data = zero.data();
  const std::vector<float> mins = dequantized(z);  // -dmin * min (q2_K, q4_K, q5_K), or m
  for (size_t i = 0; i < w.size(); ++i) out[i] = std::fabs(w[i] - mins[i]) + std::fabs(mins[i]);
  return out;
}

constexpr double kEps = 0x1p-23;

// Whether n floats are identical bit for bit (NaNs included).
bool same_bits(const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) return false;
  }
  return true;
}

// What quant_matmul must produce for x [T, K] and W, with the two bounds of the header:
//   exact:  sum_i W_i * xq_i (xq: the quantized activations) within
//           (K / 32 + 16) * eps32 * sum_i size_i * |xq_i|   (f32 rounding of the block sums)
//   f32:    sum_i W_i * x_i within sum_i |W_i| * d(i) / 2 (activation rounding, +0.01% for the
//           rounded reciprocal) plus the exact bound.
struct Expected {
  std::vector<double> exact, exact_tol, f32, f32_tol;
};

// a [rows_a, k] times b [rows_b, k]^T, in double (OpenBLAS; the order of the sums does not matter
// at double precision against f32 bounds).
std::vector<double> times_t(const std::vector<double>& a, const std::vector<double>& b,
                            int64_t rows_a, int64_t rows_b, int64_t k) {
  std::vector<double> c(static_cast<size_t>(rows_a * rows_b));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows_a),
              static_cast<blasint>(rows_b), static_cast<blasint>(k), 1.0, a.data(),
              static_cast<blasint>(k), b.data(), static_cast<blasint>(k), 0.0, c.data(),
              static_cast<blasint>(rows_b));
  return c;
}

Expected expected_for(const Tensor& x, const QuantMatrix& m) {
  const int64_t t_n = x.rows(), k = m.cols, n = m.rows;
  const std::vector<float> w = dequantized(m);
  const std::vector<float> size = term_sizes(m, w);
  const Tensor xq_t = quant_matmul_activations(x, m.type);
  const float* xq = xq_t.data<float>();
  const float* xp = x.data<float>();
  const int64_t block = act_block(m.type);
  std::vector<double> wd(w.begin(), w.end()), w_abs(w.size()), size_d(size.begin(), size.end());
  for (size_t i = 0; i < w.size(); ++i) w_abs[i] = std::fabs(double{w[i]});
  std::vector<double> xqd(xq, xq + t_n * k), xq_abs(xqd.size()), xd(xp, xp + t_n * k);
  std::vector<double> step(xqd.size());  // d of the block of each activation
  for (size_t i = 0; i < xqd.size(); ++i) xq_abs[i] = std::fabs(xqd[i]);
  for (int64_t i = 0; i < t_n * k; i += block) {
    double amax = 0.0;
    for (int64_t j = 0; j < block; ++j) amax = std::max(amax, std::fabs(double{xp[i + j]}));
    for (int64_t j = 0; j < block; ++j) step[i + j] = amax / 127.0;
  }
  Expected e;
  e.exact = times_t(xqd, wd, t_n, n, k);
  e.f32 = times_t(xd, wd, t_n, n, k);
  e.exact_tol = times_t(xq_abs, size_d, t_n, n, k);
  e.f32_tol = times_t(step, w_abs, t_n, n, k);
  for (size_t i = 0; i < e.exact.size(); ++i) {
    e.exact_tol[i] *= (static_cast<double>(k) / 32.0 + 16.0) * kEps;
    e.f32_tol[i] = 0.5001 * e.f32_tol[i] + e.exact_tol[i];
  }
  return e;
}

::testing::AssertionResult within(const Tensor& y, const std::vector<double>& want,
                                  const std::vector<double>& tol, const Tensor* y0,
                                  const char* what) {
  const float* p = y.data<float>();
  const float* base = y0 != nullptr ? y0->data<float>() : nullptr;
  int64_t bad = 0, worst = -1;
  double worst_ratio = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double target = want[i] + (base != nullptr ? base[i] : 0.0);
    const double allowed = tol[i] + (base != nullptr ? 2.0 * kEps * std::fabs(target) : 0.0);
    const double err = std::fabs(p[i] - target);
    if (!(err <= allowed)) {
      ++bad;
      const double ratio = std::isnan(err) ? INFINITY : err / allowed;
      if (worst < 0 || ratio > worst_ratio) {
        worst = i;
        worst_ratio = ratio;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << y.numel() << " outputs beyond the bound; worst at "
         << worst << ": got " << p[worst] << ", expected " << want[worst] << " +- " << tol[worst]
         << " (" << worst_ratio << " x the bound)";
}

TEST(QuantMatmul, PathsAvailableEndWithScalar) {
  const std::vector<QdotPath> paths = qdot_paths_available();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.back(), QdotPath::kScalar);
  EXPECT_EQ(paths.front(), qdot_path_best());
  for (QdotPath p : paths) EXPECT_NE(p, QdotPath::kAuto);
  EXPECT_EQ(qdot_path_name(QdotPath::kAvx512Vnni), "avx512_vnni");
}

// Hand-computed products, exact on every path: activations are integers with max |x| = 127 in
// every block (so d = 1 and they quantize exactly), weights small dyadic numbers, and every
// partial sum an f32 integer multiple of 1/16 below 2^20.
TEST(QuantMatmul, HandBuiltBlocksGiveExactProducts) {
  const int64_t k = 256;
  std::vector<float> xv(k);
  // Small values so every sum stays exact in f32, and 127 once per 32 values.
  for (int64_t i = 0; i < k; ++i) xv[i] = static_cast<float>((i * 37) % 15 - 7);
  for (int64_t i = 0; i < k; i += 32) xv[i] = 127.0f;
  const Tensor x = Tensor::from_f32({1, k}, xv);

  // Per format: bytes of one row and the value of each weight, computed here from the format's
  // definition (not from the library's dequantizer).
  struct Case {
    GgmlType type;
    Bytes row;
    std::vector<double> w;
  };
  std::vector<Case> cases;
  {  // q8_0: d = 1/4, q = (i * 11) % 256 as int8
    Case c{GgmlType::kQ8_0, Bytes(8 * 34), std::vector<double>(k)};
    for (int b = 0; b < 8; ++b) {
      put_f16(c.row.data() + 34 * b, 0.25f);
      for (int i = 0; i < 32; ++i) {
        const auto q = static_cast<int8_t>(((32 * b + i) * 11) % 256);
        c.row[34 * b + 2 + i] = static_cast<uint8_t>(q);
        c.w[32 * b + i] = 0.25 * q;
      }
    }
    cases.push_back(c);
  }
  {  // q4_0: d = -1/2, byte j = (j | (15 - j) << 4)
    Case c{GgmlType::kQ4_0, Bytes(8 * 18), std::vector<double>(k)};
    for (int b = 0; b < 8; ++b) {
      put_f16(c.row.data() + 18 * b, -0.5f);
      for (int j = 0; j < 16; ++j) {
        const int lo = (j + b) % 16, hi = 15 - j;
        c.row[18 * b + 2 + j] = static_cast<uint8_t>(lo | (hi << 4));
        c.w[32 * b + j] = -0.5 * (lo - 8);
        c.w[32 * b + 16 + j] = -0.5 * (hi - 8);
      }
    }
    cases.push_back(c);
  }
  for (GgmlType type : {GgmlType::kQ4_1, GgmlType::kQ5_1}) {
    // Block b: d = 1/4 (q5_1: 1/8), m = b / 2 - 3; codes (5 i + b) % 16, + 16 (q5_1) where i % 3
    // == 1.
    const bool five = type == GgmlType::kQ5_1;
    const int bytes = five ? 24 : 20, qs = five ? 8 : 4;
    Case c{type, Bytes(static_cast<size_t>(8 * bytes)), std::vector<double>(k)};
    for (int b = 0; b < 8; ++b) {
      uint8_t* blk = c.row.data() + bytes * b;
      const double d = five ? 0.125 : 0.25, m = b / 2.0 - 3.0;
      put_f16(blk, static_cast<float>(d));
      put_f16(blk + 2, static_cast<float>(m));
      for (int i = 0; i < 32; ++i) {
        int code = (5 * i + b) % 16;
        blk[qs + i % 16] = static_cast<uint8_t>(blk[qs + i % 16] | (code << (i < 16 ? 0 : 4)));
        if (five && i % 3 == 1) {
          blk[4 + i / 8] = static_cast<uint8_t>(blk[4 + i / 8] | (1 << (i % 8)));
          code += 16;
        }
        c.w[32 * b + i] = d * code + m;
      }
    }
    cases.push_back(c);
  }
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ5_K}) {
    // d = 1/8, dmin = 1/16; sub-block j: scale j + 1 (+ 40 for j >= 4), min 2 j + 3.
    const bool five = type == GgmlType::kQ5_K;
    Case c{type, Bytes(five ? 176 : 144), std::vector<double>(k)};
    uint8_t* blk = c.row.data();
    put_f16(blk, 0.125f);
    put_f16(blk + 2, 0.0625f);
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = j + 1 + (j >= 4 ? 40 : 0);
      mn[j] = 2 * j + 3;
    }
    for (int j = 0; j < 4; ++j) {
      blk[4 + j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
      blk[8 + j] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
      blk[12 + j] = static_cast<uint8_t>((sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4));
    }
    const int qs = five ? 48 : 16;
    for (int i = 0; i < 256; ++i) {
      const int sub = i / 32, l = i % 32;
      const int code4 = (i * 7 + i / 32 + 3) % 16;  // differs between the nibbles of a byte
      uint8_t& byte = blk[qs + 32 * (sub / 2) + l];
      byte = static_cast<uint8_t>(byte | (code4 << (4 * (sub % 2))));
      int code = code4;
      if (five && (i % 3 == 0)) {
        blk[16 + l] = static_cast<uint8_t>(blk[16 + l] | (1 << sub));
        code += 16;
      }
      c.w[i] = 0.125 * sc[sub] * code - 0.0625 * mn[sub];
    }
    cases.push_back(c);
  }
  {  // q6_K: d = 1/16, scale of sub-block j = j - 8, code (i * 5) % 64
    Case c{GgmlType::kQ6_K, Bytes(210), std::vector<double>(k)};
    uint8_t* blk = c.row.data();
    put_f16(blk + 208, 0.0625f);
    for (int j = 0; j < 16; ++j) blk[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 8));
    for (int i = 0; i < 256; ++i) {
      const int code = (i * 5 + (i / 32) * 3) % 64;  // no period that hides a swapped nibble
      const int half = i / 128, g = (i % 128) / 32, l = i % 32;
      uint8_t& low = blk[64 * half + l + 32 * (g % 2)];
      low = static_cast<uint8_t>(low | ((code & 0xf) << (g < 2 ? 0 : 4)));
      uint8_t& high = blk[128 + 32 * half + l];
      high = static_cast<uint8_t>(high | ((code >> 4) << (2 * g)));
      const int scale = i / 16 - 8;
      c.w[i] = 0.0625 * scale * (code - 32);
    }
    cases.push_back(c);
  }
  {  // q3_K: d = 1/8, scale of sub-block j = 2 j - 15 (6 bits + 32), code (i * 3 + i / 32) % 8 - 4
    Case c{GgmlType::kQ3_K, Bytes(110), std::vector<double>(k)};
    uint8_t* blk = c.row.data();
    put_f16(blk + 108, 0.125f);
    for (int j = 0; j < 16; ++j) {
      const int stored = 2 * j - 15 + 32;
      blk[96 + j % 8] = static_cast<uint8_t>(blk[96 + j % 8] | ((stored & 0xf) << (j < 8 ? 0 : 4)));
      blk[104 + j % 4] = static_cast<uint8_t>(blk[104 + j % 4] | ((stored >> 4) << (2 * (j / 4))));
    }
    for (int i = 0; i < 256; ++i) {
      const int code = (i * 3 + i / 32) % 8;  // 0..7: 2 low bits, and the high bit
      const int half = i / 128, g = (i % 128) / 32, l = i % 32;
      blk[32 + 32 * half + l] =
          static_cast<uint8_t>(blk[32 + 32 * half + l] | ((code & 3) << (2 * g)));
      blk[l] = static_cast<uint8_t>(blk[l] | ((code >> 2) << (4 * half + g)));
      c.w[i] = 0.125 * (2 * (i / 16) - 15) * (code - 4);
    }
    cases.push_back(c);
  }
  {  // q2_K: d = 1/4, dmin = 1/8, sub-block j: scale (j * 7) % 16, min (j * 5 + 3) % 16
    Case c{GgmlType::kQ2_K, Bytes(84), std::vector<double>(k)};
    uint8_t* blk = c.row.data();
    put_f16(blk + 80, 0.25f);
    put_f16(blk + 82, 0.125f);
    for (int j = 0; j < 16; ++j)
      blk[j] = static_cast<uint8_t>((j * 7) % 16 | ((j * 5 + 3) % 16) << 4);
    for (int i = 0; i < 256; ++i) {
      const int code = (i * 5 + i / 64) % 4;
      const int half = i / 128, g = (i % 128) / 32, l = i % 32, j = i / 16;
      blk[16 + 32 * half + l] = static_cast<uint8_t>(blk[16 + 32 * half + l] | (code << (2 * g)));
      c.w[i] = 0.25 * ((j * 7) % 16) * code - 0.125 * ((j * 5 + 3) % 16);
    }
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    double want = 0.0;
    for (int64_t i = 0; i < k; ++i) want += c.w[i] * xv[i];
    const Weights w = make_weights(c.type, 1, k, c.row);
    for (QdotPath path : qdot_paths_available()) {
      SCOPED_TRACE(name_of(c.type) + " on " + std::string(qdot_path_name(path)));
      Tensor y = Tensor::zeros({1, 1});
      quant_matmul(y, x, w.m, {.path = path});
      EXPECT_EQ(y.data<float>()[0], static_cast<float>(want));
    }
  }
}

// y = x m^T (or y0 + x m^T with acc) on `path`, checked against both bounds of e; returns y.
Tensor checked_product(const Tensor& x, const QuantMatrix& m, const Expected& e, bool acc,
                       const Tensor& y0, QdotPath path) {
  Tensor y = acc ? y0.clone() : Tensor::zeros({x.rows(), m.rows});
  quant_matmul(y, x, m, {.accumulate = acc, .path = path});
  EXPECT_TRUE(within(y, e.exact, e.exact_tol, acc ? &y0 : nullptr, "exact"));
  EXPECT_TRUE(within(y, e.f32, e.f32_tol, acc ? &y0 : nullptr, "f32"));
  return y;
}

// Every type x every path x T in {1, 3, 17, 64}, K in {256, 512, 2048} (plus K = 32, 96, 288 for
// the 32-value formats, whose groups of 4 blocks then end part-filled), N in {1, 7, 64, 300};
// odd cases accumulate onto a random start.
TEST(QuantMatmul, MatchesExactAndF32ReferencesOnEveryPath) {
  Rng rng(61);
  const std::vector<QdotPath> paths = qdot_paths_available();
  for (GgmlType type : kQuantTypes) {
    std::vector<int64_t> ks = {256, 512, 2048};
    if (ggml_type_info(type).block_values == 32) ks.insert(ks.end(), {32, 96, 288});
    int variant = 0;
    for (int64_t k : ks) {
      for (int64_t n : {1, 7, 64, 300}) {
        const Weights w = random_weights(type, n, k, rng);
        for (int64_t t : {1, 3, 17, 64}) {
          if (k < 256 && t > 3) continue;  // the tails need few tokens
          ++variant;
          const Tensor x = test::random_normal({t, k}, rng);
          const Expected e = expected_for(x, w.m);
          const bool acc = variant % 2 == 1;
          const Tensor y0 = test::random_uniform({t, n}, rng);
          for (QdotPath path : paths) {
            SCOPED_TRACE(::testing::Message()
                         << name_of(type) << " T=" << t << " K=" << k << " N=" << n << " path "
                         << qdot_path_name(path) << " accumulate " << acc);
            checked_product(x, w.m, e, acc, y0, path);
          }
        }
      }
    }
  }
}

// The header's promise: each output is computed the same way whatever the thread count, so
// results are bit-identical; and whatever other tokens share the call, except that from 8 tokens
// on q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, iq4_nl and iq4_xs on AVX-512 VNNI take the
// kI16 bodies, which sum the same integer products in another f32 order (then a lone token agrees
// within f32 rounding of the sums).
TEST(QuantMatmul, ResultsDoNotDependOnThreadsOrTokenCount) {
  Rng rng(7);
  const int saved = omp_get_max_threads();
  for (GgmlType type : kQuantTypes) {
    const int64_t k = 512, n = 300, t = 17;
    const Weights w = random_weights(type, n, k, rng);
    const Tensor x = test::random_normal({t, k}, rng);
    for (QdotPath path : qdot_paths_available()) {
      SCOPED_TRACE(name_of(type) + " on " + std::string(qdot_path_name(path)));
      omp_set_num_threads(1);
      Tensor one = Tensor::zeros({t, n});
      quant_matmul(one, x, w.m, {.path = path});
      omp_set_num_threads(3);
      Tensor three = Tensor::zeros({t, n});
      quant_matmul(three, x, w.m, {.path = path});
      omp_set_num_threads(saved);
      EXPECT_TRUE(same_bits(one.data<float>(), three.data<float>(), one.numel()));
      const bool i16 =
          path == QdotPath::kAvx512Vnni &&
          (type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 ||
           type == GgmlType::kQ5_0 || type == GgmlType::kQ5_1 || type == GgmlType::kQ4_K ||
           type == GgmlType::kQ5_K || type == GgmlType::kQ6_K || type == GgmlType::kIQ4_NL ||
           type == GgmlType::kIQ4_XS);
      const Expected e = expected_for(x, w.m);
      for (int64_t i = 0; i < t; i += 5) {
        Tensor single = Tensor::zeros({n});
        const Tensor xi = x.slice_rows(i, i + 1).reshape({k});
        quant_matmul(single, xi, w.m, {.path = path});
        if (!i16) {
          EXPECT_TRUE(same_bits(single.data<float>(), one.data<float>() + i * n, n))
              << "token " << i;
          continue;
        }
        EXPECT_FALSE(same_bits(single.data<float>(), one.data<float>() + i * n, n))
            << "token " << i << ": the kI16 bodies did not run";
        for (int64_t r = 0; r < n; ++r) {
          const auto at = static_cast<size_t>(i * n + r);
          EXPECT_NEAR(single.data<float>()[r], one.data<float>()[at], 2.0 * e.exact_tol[at])
              << "token " << i << " row " << r;
        }
      }
    }
  }
  omp_set_num_threads(saved);
}

// A batch gives what the jobs give one by one: experts sharing an input (gate and up
// projections), jobs with their own inputs, a mix of formats including f32 and f16, accumulating
// and not.
TEST(QuantMatmul, BatchMatchesSeparateCalls) {
  Rng rng(5);
  const int64_t k = 512, t = 1;
  const Tensor x = test::random_normal({t, k}, rng);
  const Tensor x2 = test::random_normal({3, 256}, rng);
  std::vector<Weights> ws;
  ws.reserve(7);
  const GgmlType types[] = {GgmlType::kQ4_K, GgmlType::kQ4_K, GgmlType::kQ8_0,
                            GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ4_0};
  const int64_t rows[] = {64, 7, 300, 33, 1, 130};
  for (int i = 0; i < 6; ++i) ws.push_back(random_weights(types[i], rows[i], k, rng));
  ws.push_back(random_weights(GgmlType::kQ4_K, 40, 256, rng));  // on x2
  const Tensor wf = test::random_normal({9, 256}, rng);         // f32 and f16 on x2
  const QuantMatrix f32m = quant_matrix_view(wf, GgmlType::kF32, 9, 256);
  const QuantMatrix f16m = quantize_matrix(wf, GgmlType::kF16);

  for (QdotPath path : qdot_paths_available()) {
    SCOPED_TRACE(std::string(qdot_path_name(path)));
    std::vector<Tensor> ys, want;
    std::vector<const QuantMatrix*> ms;
    std::vector<const Tensor*> xs;
    for (int i = 0; i < 7; ++i) {
      ms.push_back(&ws[i].m);
      xs.push_back(i < 6 ? &x : &x2);
    }
    ms.push_back(&f32m);
    xs.push_back(&x2);
    ms.push_back(&f16m);
    xs.push_back(&x2);
    std::vector<QuantMatmulJob> jobs;
    for (size_t i = 0; i < ms.size(); ++i) {
      const Tensor start = test::random_uniform({xs[i]->rows(), ms[i]->rows}, rng);
      const bool acc = i % 3 == 1;
      Tensor alone = start.clone();
      quant_matmul(alone, *xs[i], *ms[i], {.accumulate = acc, .path = path});
      want.push_back(alone);
      ys.push_back(start.clone());
      jobs.push_back({nullptr, xs[i], ms[i], acc});
    }
    for (size_t i = 0; i < jobs.size(); ++i) jobs[i].y = &ys[i];
    quant_matmul_batch(jobs, path);
    for (size_t i = 0; i < jobs.size(); ++i) {
      EXPECT_TRUE(same_bits(ys[i].data<float>(), want[i].data<float>(), ys[i].numel()))
          << "job " << i;
    }
  }
}

// f32, f16 and bf16 weights (and f32 at an odd address, which takes the widening path) against a
// double product: f32 rounding of K = 96 terms of size <= 4 is far below 1e-4.
// Up to 4 tokens, f32, f16 and bf16 rows are dotted as they are read (cpu/plain_dot_cpu.h), from 5
// on they go through OpenBLAS: both against a double product, with K ending inside a vector or not;
// a misaligned f32 matrix as an aligned one, for 5 tokens and for 1.
TEST(QuantMatmul, PlainTypesMatchDoubleProduct) {
  Rng rng(9);
  const int64_t n = 300;
  for (int64_t k : {96, 203}) {
    const Tensor w32 = test::random_uniform({n, k}, rng, -2.0f, 2.0f);
    for (int64_t t : {1, 2, 3, 4, 5}) {
      const Tensor x = test::random_uniform({t, k}, rng);
      for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
        const QuantMatrix m = quantize_matrix(w32, type);
        const std::vector<float> w = dequantized(m);
        Tensor want = Tensor::zeros({t, n});
        for (int64_t i = 0; i < t; ++i) {
          for (int64_t r = 0; r < n; ++r) {
            double s = 0.0;
            for (int64_t j = 0; j < k; ++j) s += double{w[r * k + j]} * x.data<float>()[i * k + j];
            want.mutable_data<float>()[i * n + r] = static_cast<float>(s);
          }
        }
        Tensor y = Tensor::zeros({t, n});
        quant_matmul(y, x, m);
        EXPECT_ALL_CLOSE(y, want, 1e-4f, 1e-5f) << name_of(type) << " T=" << t << " K=" << k;
        // Accumulating onto a start, and each token alone as in a batch of up to 4.
        Tensor acc = Tensor::from_f32({t, n}, std::vector<float>(static_cast<size_t>(t * n), 1.0f));
        quant_matmul(acc, x, m, true);
        for (int64_t i = 0; i < t * n; ++i) want.mutable_data<float>()[i] += 1.0f;
        EXPECT_ALL_CLOSE(acc, want, 1e-4f, 1e-5f) << name_of(type) << " T=" << t << " K=" << k;
        if (t > 4) continue;
        for (int64_t i = 0; i < t; ++i) {
          Tensor one = Tensor::zeros({1, n});
          quant_matmul(one, x.slice_rows(i, i + 1), m);
          EXPECT_TRUE(same_bits(one.data<float>(), y.data<float>() + i * n, n))
              << name_of(type) << " token " << i << " of " << t;
        }
      }
    }
  }
  const int64_t t = 5, k = 96;
  const Tensor x = test::random_uniform({t, k}, rng);
  const Tensor w32 = test::random_uniform({n, k}, rng, -2.0f, 2.0f);
  Bytes odd(static_cast<size_t>(n * k * 4 + 1));
  std::memcpy(odd.data() + 1, w32.data<float>(), static_cast<size_t>(n * k * 4));
  QuantMatrix m = quantize_matrix(w32, GgmlType::kF32);
  m.data = odd.data() + 1;
  for (int64_t tokens : {t, int64_t{1}}) {
    const Tensor xt = x.slice_rows(0, tokens);
    Tensor y_odd = Tensor::from_f32({tokens, n}, std::vector<float>(tokens * n, 1.0f));
    Tensor y_direct = Tensor::from_f32({tokens, n}, std::vector<float>(tokens * n, 1.0f));
    quant_matmul(y_odd, xt, m, true);
    quant_matmul(y_direct, xt, quantize_matrix(w32, GgmlType::kF32), true);
    EXPECT_ALL_CLOSE(y_odd, y_direct, 1e-5f, 1e-6f) << tokens << " tokens";
  }
}

// quantize_matrix keeps the reference quantizer's bytes, and the product with real (not random)
// blocks is as close to the f32 product as the bound says.
TEST(QuantMatmul, QuantizedMatrixOfRealWeights) {
  Rng rng(13);
  const Tensor wf = test::random_normal({64, 512}, rng, 0.02f);
  const Tensor x = test::random_normal({3, 512}, rng);
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    const QuantMatrix m = quantize_matrix(wf, type);
    EXPECT_EQ(m.row_bytes, static_cast<size_t>(ggml_row_bytes(type, 512)));
    const std::vector<uint8_t> ref = quantize(wf, type);
    EXPECT_EQ(std::memcmp(m.data, ref.data(), ref.size()), 0);
    const Expected e = expected_for(x, m);
    Tensor y = Tensor::zeros({3, 64});
    quant_matmul(y, x, m);
    EXPECT_TRUE(within(y, e.f32, e.f32_tol, nullptr, "f32")) << name_of(type);
  }
}

// A NaN or infinity poisons the outputs of its token only.
TEST(QuantMatmul, NonFiniteActivationsGiveNanForTheirToken) {
  Rng rng(3);
  for (GgmlType type : kQuantTypes) {
    const Weights w = random_weights(type, 8, 512, rng);
    Tensor x = test::random_normal({3, 512}, rng);
    x.mutable_data<float>()[512 + 300] = type == GgmlType::kQ4_0 ? INFINITY : NAN;
    for (QdotPath path : qdot_paths_available()) {
      Tensor y = Tensor::zeros({3, 8});
      quant_matmul(y, x, w.m, {.path = path});
      for (int64_t i = 0; i < 24; ++i) {
        EXPECT_EQ(std::isnan(y.data<float>()[i]), i / 8 == 1)
            << name_of(type) << " " << qdot_path_name(path) << " output " << i;
      }
    }
  }
}

// Every SIMD activation quantizer writes the portable one's bytes, including blocks of zeros,
// tiny values, huge values, exact ties (x / d = k + 1/2) and non-finite values.
TEST(QuantMatmul, SimdActivationQuantizersMatchPortable) {
  Rng rng(17);
  const int64_t k = 1024 + 96;  // a part-filled kA32 group; k4 formats use the first 1024
  std::vector<float> x(static_cast<size_t>(k));
  for (float& v : x) v = rng.normal(0.0f, 3.0f);
  for (int i = 0; i < 32; ++i) x[32 + i] = 0.0f;
  for (int i = 0; i < 32; ++i) x[64 + i] = 1e-31f * static_cast<float>(i);  // below 2^-100
  for (int i = 0; i < 32; ++i) x[96 + i] = 3e38f * (i % 2 == 0 ? 1.0f : -0.5f);
  for (int i = 0; i < 32; ++i) x[128 + i] = static_cast<float>(i) - 15.5f;  // ties after scaling
  x[128 + 31] = 127.0f;
  x[200] = INFINITY;
  x[700] = NAN;
  for (GgmlType type : kQuantTypes) {
    const int64_t kk = act_block(type) == 32 ? k : 1024;
    const size_t bytes = cpu::act_row_bytes(type, kk);
    std::vector<uint8_t> want(bytes + 64), got(bytes + 64);
    uint8_t* pw = want.data() + (64 - reinterpret_cast<uintptr_t>(want.data()) % 64) % 64;
    uint8_t* pg = got.data() + (64 - reinterpret_cast<uintptr_t>(got.data()) % 64) % 64;
    cpu::quantize_act_row(type, x.data(), kk, pw);
    const std::vector<QdotPath> paths = qdot_paths_available();
    int checked = 0;
    for (QdotPath path : paths) {
      cpu::ActQuantizeFn fn = nullptr;
      if (path == QdotPath::kAvx2) fn = cpu::quantize_act_row_avx2;
      if (path == QdotPath::kAvx512) fn = cpu::quantize_act_row_avx512;
      if (fn == nullptr) continue;
      std::memset(pg, 0xcd, bytes);
      fn(type, x.data(), kk, pg);
      ++checked;
      for (size_t i = 0; i < bytes; ++i) {
        if (pg[i] != pw[i]) {
          ADD_FAILURE() << name_of(type) << " " << qdot_path_name(path) << ": byte " << i << " is "
                        << int{pg[i]} << ", portable wrote " << int{pw[i]};
          break;
        }
      }
    }
    if (std::ranges::find(paths, QdotPath::kAvx2) != paths.end()) {
      EXPECT_GT(checked, 0);
    }
    // kI16 holds the very codes and scales of kA32 (q4_K, q5_K, q6_K: kA256), transposed 16
    // blocks at a time.
    const bool k4 = type == GgmlType::kQ4_K || type == GgmlType::kQ5_K || type == GgmlType::kQ6_K;
    if ((act_block(type) != 32 && !k4) ||
        std::ranges::find(paths, QdotPath::kAvx512) == paths.end()) {
      continue;
    }
    const size_t i16_bytes = cpu::act_row_bytes_i16(kk);
    std::vector<uint8_t> i16(i16_bytes + 64);
    uint8_t* pi = i16.data() + (64 - reinterpret_cast<uintptr_t>(i16.data()) % 64) % 64;
    std::memset(pi, 0xcd, i16_bytes);
    cpu::quantize_act_row_i16_avx512(type, x.data(), kk, pi);
    std::vector<float> from_a32(static_cast<size_t>(kk)), from_i16(static_cast<size_t>(kk));
    cpu::dequantize_act_row(type, pw, kk, from_a32.data());
    cpu::dequantize_act_row_i16(pi, kk, from_i16.data());
    EXPECT_TRUE(same_bits(from_a32.data(), from_i16.data(), kk)) << name_of(type);
    // q4_K, q5_K, q6_K: d times each 32-value block's code sum, from kA256's per-16 sums.
    for (int64_t b = 0; k4 && b < kk / 32; ++b) {
      const uint8_t* sb = pw + (b / 8) * cpu::kA256Bytes;
      int16_t s0 = 0, s1 = 0;
      std::memcpy(&s0, sb + 256 + 2 * (2 * (b % 8)), 2);
      std::memcpy(&s1, sb + 256 + 2 * (2 * (b % 8) + 1), 2);
      float d = 0.0f, lane = 0.0f;
      std::memcpy(&d, sb + 288, 4);
      std::memcpy(&lane, pi + (b / 16) * cpu::kI16GroupBytes + 512 + 4 * (b % 16), 4);
      const float expected = d * static_cast<float>(s0 + s1);
      EXPECT_TRUE(same_bits(&lane, &expected, 1))
          << "block " << b << ": " << lane << " vs " << expected;
    }
    // Start values: -c times each block's code sum, as the kA32 lanes of the block add up to;
    // q4_1, q5_1 (c = -1 in kA32): d times the code sum, for the mins.
    const bool mins = type == GgmlType::kQ4_1 || type == GgmlType::kQ5_1;
    for (int64_t b = 0; !k4 && b < kk / 32; ++b) {
      const uint8_t* ga = pw + (b / 4) * cpu::kA32GroupBytes;
      const uint8_t* at = pi + (b / 16) * cpu::kI16GroupBytes + 512 + 4 * (b % 16);
      int32_t a32 = 0;
      for (int l = 0; l < 4; ++l) {
        int32_t v = 0;
        std::memcpy(&v, ga + 128 + 4 * (4 * (b % 4) + l), 4);
        a32 += v;
      }
      if (mins) {
        float d = 0.0f, lane = 0.0f;
        std::memcpy(&d, ga + 192 + 16 * (b % 4), 4);
        std::memcpy(&lane, at, 4);
        const float expected = d * static_cast<float>(a32);
        EXPECT_TRUE(same_bits(&lane, &expected, 1))
            << name_of(type) << " block " << b << ": " << lane << " vs " << expected;
        continue;
      }
      int32_t lane = 0;
      std::memcpy(&lane, at, 4);
      EXPECT_EQ(lane, a32) << name_of(type) << " block " << b;
    }
    // Padding blocks of the last group: zero codes, start values and scales.
    const int64_t last = kk / 32;
    for (int64_t b = last; b < (last + 15) / 16 * 16; ++b) {
      const uint8_t* g = pi + (b / 16) * cpu::kI16GroupBytes;
      for (int i = 0; i < 8; ++i) {
        for (int j = 0; j < 4; ++j) EXPECT_EQ(g[64 * i + 4 * (b % 16) + j], 0) << "block " << b;
      }
      EXPECT_EQ(g[512 + 4 * (b % 16)], 0);
      EXPECT_EQ(g[576 + 4 * (b % 16) + 3], 0);
    }
  }
}

TEST(QuantMatmul, ActivationsRoundToTheBlockStep) {
  std::vector<float> xv(64);
  for (int i = 0; i < 64; ++i) xv[i] = static_cast<float>(i) * 0.1f - 1.0f;
  const Tensor x = Tensor::from_f32({64}, xv);
  const Tensor q = quant_matmul_activations(x, GgmlType::kQ8_0);
  // Block 0: max |x| = 2.1, d = 2.1/127; block 1: max |x| = 5.3, d = 5.3/127.
  for (int i = 0; i < 64; ++i) {
    const double d = (i < 32 ? 2.1f : 5.3f) / 127.0;
    EXPECT_LE(std::fabs(q.data<float>()[i] - xv[i]), 0.5001 * d) << i;
    EXPECT_NEAR(std::round(q.data<float>()[i] / d), q.data<float>()[i] / d, 1e-3) << i;
  }
  EXPECT_EQ(error_of([&] { quant_matmul_activations(x, GgmlType::kQ4_K); }),
            "quant_matmul_activations: x has shape [64], its last dimension is not a whole number "
            "of 256-value blocks");
  EXPECT_EQ(error_of([&] { quant_matmul_activations(x, GgmlType::kF16); }),
            "quant_matmul_activations: weight type f16 is not a quantized type quant_matmul takes");
}

TEST(QuantMatmul, RejectsBadShapesTypesAndSizes) {
  Rng rng(1);
  const Weights w = random_weights(GgmlType::kQ4_0, 7, 256, rng);
  const Tensor x = test::random_normal({3, 256}, rng);
  Tensor y = Tensor::zeros({3, 7});

  QuantMatrix bad = w.m;
  bad.cols = 100;
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }),
            "quant_matmul: w: K = 100 is not a whole number of 32-value q4_0 blocks");
  bad = w.m;
  bad.type = GgmlType::kTQ2_0;
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }),
            "quant_matmul: weight type tq2_0 is not supported (supported: q8_0, q4_0, q4_1, q5_0, "
            "q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, f32, f16, bf16)");
  bad.type = static_cast<GgmlType>(99);
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }),
            "quant_matmul: weight type id 99 is not supported (supported: q8_0, q4_0, q4_1, q5_0, "
            "q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, f32, f16, bf16)");
  bad = w.m;
  bad.row_bytes = 143;
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }),
            "quant_matmul: w: row_bytes is 143, a row of 256 q4_0 values takes 144");
  bad = w.m;
  bad.data = nullptr;
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }), "quant_matmul: w: data is null");
  bad = w.m;
  bad.rows = -1;
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }),
            "quant_matmul: w has shape [-1, 256]: dimensions must be >= 0");

  const Tensor x_short = test::random_normal({3, 64}, rng);
  EXPECT_EQ(
      error_of([&] { quant_matmul(y, x_short, w.m); }),
      "quant_matmul: x has shape [3, 64], its last dimension must be K = 256 (w is [7, 256])");
  const Tensor x_f16 = Tensor::zeros({3, 256}, DType::F16);
  EXPECT_EQ(error_of([&] { quant_matmul(y, x_f16, w.m); }),
            "quant_matmul: x: dtype f16, expected f32");
  Tensor y_wide = Tensor::zeros({3, 8});
  EXPECT_EQ(error_of([&] { quant_matmul(y_wide, x, w.m); }),
            "quant_matmul: y: shape [3, 8], expected [3, 7]");
  Tensor y_f16 = Tensor::zeros({3, 7}, DType::F16);
  EXPECT_EQ(error_of([&] { quant_matmul(y_f16, x, w.m); }),
            "quant_matmul: y: dtype f16, expected f32");

  // y and x in one storage: overlapping is refused, side by side is fine.
  const Tensor both = test::random_normal({4, 128}, rng);
  const Weights sq = random_weights(GgmlType::kQ8_0, 128, 256, rng);
  const Tensor x_row = both.slice_rows(0, 2).reshape({256});  // floats 0..255
  Tensor y_in_x = both.slice_rows(1, 2).reshape({128});       // floats 128..255
  Tensor y_after = both.slice_rows(2, 3).reshape({128});      // floats 256..383
  EXPECT_EQ(error_of([&] { quant_matmul(y_in_x, x_row, sq.m); }), "quant_matmul: y overlaps x");
  EXPECT_EQ(error_of([&] { quant_matmul(y_after, x_row, sq.m); }), "(no error)");

  // Batches name the job.
  Tensor y2 = Tensor::zeros({3, 7});
  std::vector<QuantMatmulJob> jobs = {{&y, &x, &w.m}, {&y2, &x_short, &w.m}};
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }),
            "quant_matmul_batch: job 1: x has shape [3, 64], its last dimension must be K = 256 "
            "(w is [7, 256])");
  jobs = {{&y, &x, &w.m}, {&y, &x, &w.m}};
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }),
            "quant_matmul_batch: job 0: y overlaps the y of job 1");
  Tensor xy = test::random_normal({3, 256}, rng);
  Tensor y_of_x = xy.reshape({3 * 256}).slice_rows(0, 21).reshape({3, 7});
  jobs = {{&y_of_x, &x, &w.m}, {&y2, &xy, &w.m}};
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }),
            "quant_matmul_batch: job 0: y overlaps the x of job 1");
  // Many jobs: outputs side by side in one buffer, out of order, all reading one x, pass; one
  // float shared by the outputs of jobs 1 and 4 is found and named.
  Tensor ys = Tensor::zeros({170});
  const auto out_at = [&](int64_t begin) {
    return ys.slice_rows(begin, begin + 21).reshape({3, 7});
  };
  std::vector<Tensor> outs = {out_at(0), out_at(21), out_at(100), out_at(121), out_at(142)};
  jobs.clear();
  for (Tensor& o : outs) jobs.push_back({&o, &x, &w.m});
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }), "(no error)");
  outs[4] = out_at(41);
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }),
            "quant_matmul_batch: job 1: y overlaps the y of job 4");
  outs[4] = out_at(42);
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }), "(no error)");
  jobs = {{nullptr, &x, &w.m}};
  EXPECT_EQ(error_of([&] { quant_matmul_batch(jobs); }),
            "quant_matmul_batch: job 0: y, x and w must be set");

  // Views of tensors: the byte count must fit.
  const Tensor raw = Tensor::zeros({7 * 144}, DType::U8);
  EXPECT_EQ(error_of([&] { quant_matrix_view(raw, GgmlType::kQ4_K, 7, 256); }), "(no error)");
  EXPECT_EQ(error_of([&] { quant_matrix_view(raw, GgmlType::kQ4_K, 8, 256); }),
            "quant_matrix_view: q4_K matrix [8, 256] takes 1152 bytes, the tensor has 1008");
  EXPECT_EQ(error_of([&] { quant_matrix_view(raw, GgmlType::kQ4_K, 7, 100); }),
            "quant_matrix_view: q4_K matrix [7, 100]: 100 columns are not a whole number of "
            "256-value blocks");
  EXPECT_EQ(error_of([&] { quant_matrix_view(raw, GgmlType::kQ4_K, -7, 256); }),
            "quant_matrix_view: q4_K matrix [-7, 256]: dimensions must be >= 0");
  EXPECT_EQ(error_of([&] { quant_matrix_view(raw, GgmlType::kQ4_K, int64_t{1} << 62, 256); }),
            "quant_matrix_view: q4_K matrix [4611686018427387904, 256]: size overflows");

  // A path this CPU lacks is refused (on CPUs that have every path there is nothing to check).
  const std::vector<QdotPath> paths = qdot_paths_available();
  for (QdotPath p : {QdotPath::kAvx512Vnni, QdotPath::kAvx512, QdotPath::kAvx2}) {
    if (std::ranges::find(paths, p) != paths.end()) continue;
    EXPECT_EQ(error_of([&] { quant_matmul(y, x, w.m, {.path = p}); })
                  .rfind("quant_matmul: SIMD path " + std::string(qdot_path_name(p)) +
                             " is not available here (available: ",
                         0),
              0u);
  }
}

// The P16 form of a ggml matrix (same bytes, rows reordered), owning its bytes.
struct Packed {
  Tensor bytes;
  QuantMatrix m;
};
Packed packed_of(const QuantMatrix& g) {
  Packed p{pack_p16(g.type, g.rows, g.cols, g.data), {}};
  p.m = quant_matrix_view(p.bytes, g.type, g.rows, g.cols, QuantLayout::kP16);
  return p;
}

const GgmlType kP16Types[] = {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kIQ4_NL,
                              GgmlType::kIQ4_XS};

// Packing reorders each row's bytes and unpacking gives them back exactly: random bytes
// everywhere (every code, every 6-bit scale and min of q4_K), several groups per row. One
// position of each format is checked by hand against the layout of cpu/qdot.h.
TEST(QuantMatmul, P16PackingIsExactlyUndone) {
  Rng rng(31);
  for (GgmlType type : kP16Types) {
    for (int64_t k : {512, 1536}) {
      SCOPED_TRACE(name_of(type) + " K=" + std::to_string(k));
      const Weights w = random_weights(type, 5, k, rng);
      const Packed p = packed_of(w.m);
      ASSERT_EQ(p.bytes.nbytes(), w.bytes.size());
      EXPECT_NE(std::memcmp(p.bytes.data<uint8_t>(), w.bytes.data(), w.bytes.size()), 0);
      Bytes in_place = w.bytes;
      pack_p16_in_place(type, 5, k, in_place.data());
      EXPECT_EQ(std::memcmp(p.bytes.data<uint8_t>(), in_place.data(), in_place.size()), 0);
      for (int64_t r = 0; r < 5; ++r) {
        Bytes back(w.m.row_bytes);
        unpack_row_p16(type, k, p.m.data + r * p.m.row_bytes, back.data());
        EXPECT_TRUE(std::equal(back.begin(), back.end(), w.bytes.begin() + r * w.m.row_bytes))
            << "row " << r;
      }
      if (k < 1024) continue;
      // Row 1, group 1, vector 2, block 5, byte 3 (value 4 * 2 + 3 = 11 of block 21 of the row).
      const uint8_t* row = w.bytes.data() + w.m.row_bytes;
      const uint8_t* prow = p.bytes.data<uint8_t>() + w.m.row_bytes;
      if (type == GgmlType::kQ8_0) {
        EXPECT_EQ(prow[512 + 64 * 2 + 4 * 5 + 3], (row[21 * 34 + 2 + 11] ^ 0x80));
        EXPECT_EQ(prow[k + 32 + 2 * 5], row[21 * 34]);  // low byte of block 21's f16 scale
      } else if (type == GgmlType::kQ4_0 || type == GgmlType::kIQ4_NL) {
        EXPECT_EQ(prow[256 + 64 * 2 + 4 * 5 + 3], row[21 * 18 + 2 + 11]);
        EXPECT_EQ(prow[k / 2 + 32 + 2 * 5 + 1], row[21 * 18 + 1]);
      } else if (type == GgmlType::kIQ4_XS) {
        // Sub-block 21 = sub-block 5 of super-block 2, its codes as the ggml bytes; group 1's
        // heads are super-blocks 2 and 3's 8 bytes each.
        const uint8_t* sb = row + 2 * 136;
        EXPECT_EQ(prow[256 + 64 * 2 + 4 * 5 + 3], sb[8 + 16 * 5 + 11]);
        EXPECT_EQ(prow[k / 2 + 16 + 0], sb[0]);            // d of super-block 2
        EXPECT_EQ(prow[k / 2 + 16 + 8 + 6], sb[136 + 6]);  // a scales_l byte of super-block 3
      } else {
        // Sub-block 21 = sub-block 5 of super-block 2: high nibbles of qs bytes 64..95.
        const uint8_t* sb = row + 2 * 144;
        const int lo = sb[16 + 64 + 11] >> 4, hi = sb[16 + 64 + 16 + 11] >> 4;
        EXPECT_EQ(prow[256 + 64 * 2 + 4 * 5 + 3], lo | hi << 4);
        int sc = 0, mn = 0;
        quant::k_scale_min(5, sb + 4, sc, mn);
        EXPECT_EQ(prow[k / 2 + 32 + 5], (sc & 15) | (mn & 15) << 4);
        EXPECT_EQ((prow[k / 2 + 32 + 16 + 5] >> 4) & 3, mn >> 4);
        EXPECT_EQ(prow[k / 2 + 32 + 24], sb[0]);  // d of super-block 2
      }
    }
  }
}

// P16 matrices on every path against the references of the ggml matrix they were packed from,
// for decode and batch token counts, accumulating and not. Paths without a P16 body unpack the
// rows first and give the ggml matrix's results bit for bit; the VNNI body gives every token the
// same result whether it comes alone or with others.
TEST(QuantMatmul, P16MatchesReferencesOnEveryPath) {
  Rng rng(47);
  const std::vector<QdotPath> paths = qdot_paths_available();
  int variant = 0;
  for (GgmlType type : kP16Types) {
    for (int64_t k : {512, 2048}) {
      for (int64_t n : {1, 7, 64, 300}) {
        const Weights w = random_weights(type, n, k, rng);
        const Packed p = packed_of(w.m);
        for (int64_t t : {1, 3, 8, 17}) {
          ++variant;
          const Tensor x = test::random_normal({t, k}, rng);
          const Expected e = expected_for(x, w.m);
          const bool acc = variant % 2 == 1;
          const Tensor y0 = test::random_uniform({t, n}, rng);
          for (QdotPath path : paths) {
            SCOPED_TRACE(::testing::Message()
                         << name_of(type) << " T=" << t << " K=" << k << " N=" << n << " path "
                         << qdot_path_name(path) << " accumulate " << acc);
            const Tensor y = checked_product(x, p.m, e, acc, y0, path);
            if (path != QdotPath::kAvx512Vnni) {
              Tensor yg = acc ? y0.clone() : Tensor::zeros({t, n});
              quant_matmul(yg, x, w.m, {.accumulate = acc, .path = path});
              EXPECT_TRUE(same_bits(y.data<float>(), yg.data<float>(), y.numel()));
              continue;
            }
            for (int64_t i = 0; i < t; i += 4) {
              Tensor single = acc ? y0.slice_rows(i, i + 1).clone() : Tensor::zeros({1, n});
              quant_matmul(single, x.slice_rows(i, i + 1), p.m, {.accumulate = acc, .path = path});
              EXPECT_TRUE(same_bits(single.data<float>(), y.data<float>() + i * n, n))
                  << "token " << i;
            }
          }
        }
      }
    }
  }
}

// A P16 matrix in a batch with ggml ones gives what it gives alone.
TEST(QuantMatmul, P16InABatchMatchesSeparateCalls) {
  Rng rng(53);
  const int64_t k = 1024;
  const Tensor x = test::random_normal({1, k}, rng);
  const Weights a = random_weights(GgmlType::kQ4_K, 70, k, rng);
  const Weights b = random_weights(GgmlType::kQ4_0, 33, k, rng);
  const Weights c = random_weights(GgmlType::kQ8_0, 12, k, rng);
  const Packed pa = packed_of(a.m), pb = packed_of(b.m);
  for (QdotPath path : qdot_paths_available()) {
    SCOPED_TRACE(std::string(qdot_path_name(path)));
    const QuantMatrix* ms[] = {&pa.m, &b.m, &pb.m, &c.m, &a.m};
    std::vector<Tensor> ys, want;
    std::vector<QuantMatmulJob> jobs;
    for (const QuantMatrix* m : ms) {
      Tensor alone = Tensor::zeros({1, m->rows});
      quant_matmul(alone, x, *m, {.path = path});
      want.push_back(alone);
      ys.push_back(Tensor::zeros({1, m->rows}));
    }
    for (size_t i = 0; i < ys.size(); ++i) jobs.push_back({&ys[i], &x, ms[i], false});
    quant_matmul_batch(jobs, path);
    for (size_t i = 0; i < ys.size(); ++i) {
      EXPECT_TRUE(same_bits(ys[i].data<float>(), want[i].data<float>(), ys[i].numel()))
          << "job " << i;
    }
  }
}

// An MoE FFN's two batches in one region give what two batches give with the SwiGLU between
// them: gate and up products of three experts (one, two and five tokens), then down products on
// silu(gate) * up, bit for bit, and a product on up itself beside them. Every format, P16
// matrices, 1 and 3 threads, and a down matrix in f32 (the batches then run one after the
// other).
TEST(QuantMatmul, StagesMatchTwoBatchesWithTheSwiGluBetween) {
  Rng rng(61);
  const int saved = omp_get_max_threads();
  const int64_t d = 512, f = 512;
  const int64_t tokens[] = {1, 2, 5};
  std::vector<GgmlType> types(std::begin(kQuantTypes), std::end(kQuantTypes));
  types.push_back(GgmlType::kF32);  // down only
  for (GgmlType type : types) {
    const bool plain = type == GgmlType::kF32;
    const GgmlType gu_type = plain ? GgmlType::kQ4_K : type;
    std::vector<Weights> gu;
    std::vector<Tensor> down_f32;
    std::vector<QuantMatrix> down;
    std::vector<Weights> down_q;
    for (int e = 0; e < 3; ++e) {
      gu.push_back(random_weights(gu_type, f, d, rng));
      gu.push_back(random_weights(gu_type, f, d, rng));
      if (plain) {
        down_f32.push_back(test::random_normal({d, f}, rng));
      } else {
        down_q.push_back(random_weights(type, d, f, rng));
      }
    }
    for (int e = 0; e < 3; ++e) {
      down.push_back(plain ? quant_matrix_view(down_f32[static_cast<size_t>(e)], type, d, f)
                           : down_q[static_cast<size_t>(e)].m);
    }
    std::vector<Packed> packed;
    if (can_pack_p16(type, d)) {
      for (const Weights& w : gu) packed.push_back(packed_of(w.m));
    }
    std::vector<Tensor> xs;
    for (int64_t t : tokens) xs.push_back(test::random_normal({t, d}, rng));
    for (QdotPath path : qdot_paths_available()) {
      for (bool p16 : {false, true}) {
        if (p16 && packed.empty()) continue;
        for (int threads : {1, 3}) {
          SCOPED_TRACE(name_of(type) + " on " + std::string(qdot_path_name(path)) +
                       (p16 ? " (P16)" : "") + ", " + std::to_string(threads) + " threads");
          const auto m = [&](size_t i) { return p16 ? &packed[i].m : &gu[i].m; };
          std::vector<Tensor> gate, up, y, gate2, up2, y2;
          for (size_t e = 0; e < 3; ++e) {
            for (auto* v : {&gate, &up, &gate2, &up2}) v->push_back(Tensor::zeros({tokens[e], f}));
            y.push_back(test::random_uniform({tokens[e], d}, rng));
            y2.push_back(y.back().clone());
          }
          omp_set_num_threads(threads);
          // Two batches and the SwiGLU on its own.
          std::vector<QuantMatmulJob> first, then;
          for (size_t e = 0; e < 3; ++e) {
            first.push_back({&gate[e], &xs[e], m(2 * e), false});
            first.push_back({&up[e], &xs[e], m(2 * e + 1), false});
          }
          quant_matmul_batch(first, path);
          std::vector<Tensor> hidden;
          hidden.reserve(3);  // `then` points into it
          for (size_t e = 0; e < 3; ++e) {
            hidden.push_back(Tensor::empty(gate[e].shape()));
            swiglu_forward(hidden[e], gate[e], up[e]);
            then.push_back({&y[e], &hidden[e], &down[e], e == 1});
          }
          quant_matmul_batch(then, path);
          // The same in one call.
          first.clear();
          then.clear();
          for (size_t e = 0; e < 3; ++e) {
            first.push_back({&gate2[e], &xs[e], m(2 * e), false});
            first.push_back({&up2[e], &xs[e], m(2 * e + 1), false});
            then.push_back({.y = &y2[e],
                            .x = &up2[e],
                            .w = &down[e],
                            .accumulate = e == 1,
                            .gate = &gate2[e]});
          }
          // A product on `up` itself, beside one on silu(gate) * up: its input is not SwiGLU's.
          Tensor raw = Tensor::zeros({tokens[0], d});
          then.push_back({&raw, &up2[0], &down[0], false});
          quant_matmul_stages(first, then, path);
          omp_set_num_threads(saved);
          Tensor raw_want = Tensor::zeros({tokens[0], d});
          quant_matmul(raw_want, up[0], down[0], {.path = path});
          EXPECT_TRUE(same_bits(raw.data<float>(), raw_want.data<float>(), raw.numel()));
          for (size_t e = 0; e < 3; ++e) {
            EXPECT_TRUE(same_bits(gate2[e].data<float>(), gate[e].data<float>(), gate[e].numel()))
                << "gate of expert " << e;
            EXPECT_TRUE(same_bits(y2[e].data<float>(), y[e].data<float>(), y[e].numel()))
                << "down of expert " << e;
          }
        }
      }
    }
  }
  omp_set_num_threads(saved);
}

TEST(QuantMatmul, StagesRefuseABadGate) {
  Rng rng(67);
  const Weights w = random_weights(GgmlType::kQ8_0, 64, 256, rng);
  const Tensor x = test::random_normal({2, 256}, rng);
  const Tensor short_gate = test::random_normal({1, 256}, rng);
  const Tensor f16_gate = Tensor::zeros({2, 256}, DType::F16);
  Tensor y = Tensor::zeros({2, 64});
  const QuantMatmulJob plain{&y, &x, &w.m, false};
  const std::vector<QuantMatmulJob> first{plain};
  std::vector<QuantMatmulJob> then{{.y = &y, .x = &x, .w = &w.m, .gate = &short_gate}};
  EXPECT_EQ(error_of([&] { quant_matmul_stages(first, then); }),
            "quant_matmul_stages: then: job 0: gate: shape [1, 256], expected x's [2, 256]");
  then[0].gate = &f16_gate;
  EXPECT_EQ(error_of([&] { quant_matmul_stages(first, then); }),
            "quant_matmul_stages: then: job 0: gate: dtype f16, expected f32");
  // y may not overlap a gate: its own, or another job's. Side by side is fine.
  const Tensor buf = test::random_normal({10, 128}, rng);
  const Tensor gate = buf.slice_rows(0, 4).reshape({2, 256});  // floats 0..511
  Tensor y_in_gate = buf.slice_rows(3, 4).reshape({2, 64});    // floats 384..511
  Tensor y_after = buf.slice_rows(4, 5).reshape({2, 64});      // floats 512..639
  then = {{.y = &y_in_gate, .x = &x, .w = &w.m, .gate = &gate}};
  EXPECT_EQ(error_of([&] { quant_matmul_stages(first, then); }),
            "quant_matmul_stages: then: job 0: y overlaps gate");
  Tensor y2 = Tensor::zeros({2, 64});
  then = {{.y = &y2, .x = &x, .w = &w.m, .gate = &gate}, {&y_in_gate, &x, &w.m, false}};
  EXPECT_EQ(error_of([&] { quant_matmul_stages(first, then); }),
            "quant_matmul_stages: then: job 1: y overlaps the gate of job 0");
  then = {{.y = &y_after, .x = &x, .w = &w.m, .gate = &gate}};
  EXPECT_EQ(error_of([&] { quant_matmul_stages(first, then); }), "(no error)");
  y = Tensor::zeros({2, 64});
  then = {{.y = &y, .x = &x, .w = &w.m, .gate = &short_gate}};
  EXPECT_EQ(error_of([&] { quant_matmul_batch(then); }),
            "quant_matmul_batch: job 0: gate: shape [1, 256], expected x's [2, 256]");
}

TEST(QuantMatmul, P16RefusesTypesAndWidthsWithoutAForm) {
  Rng rng(3);
  EXPECT_TRUE(can_pack_p16(GgmlType::kQ4_K, 1024));
  EXPECT_FALSE(can_pack_p16(GgmlType::kQ4_K, 768));
  EXPECT_FALSE(can_pack_p16(GgmlType::kQ6_K, 512));
  EXPECT_FALSE(can_pack_p16(GgmlType::kF32, 512));
  const Weights w6 = random_weights(GgmlType::kQ6_K, 3, 512, rng);
  EXPECT_EQ(error_of([&] { pack_p16(GgmlType::kQ6_K, 3, 512, w6.bytes.data()); }),
            "pack_p16: q6_K matrix [3, 512] has no P16 form (q8_0, q4_0 or q4_K with a multiple "
            "of 512 columns)");
  const Tensor raw = Tensor::zeros({3 * 144}, DType::U8);
  EXPECT_EQ(error_of([&] { quant_matrix_view(raw, GgmlType::kQ4_0, 3, 256, QuantLayout::kP16); }),
            "quant_matrix_view: q4_0 matrix [3, 256] has no P16 form (q8_0, q4_0 or q4_K with a "
            "multiple of 512 columns)");
  QuantMatrix bad = w6.m;
  bad.layout = QuantLayout::kP16;
  const Tensor x = test::random_normal({1, 512}, rng);
  Tensor y = Tensor::zeros({1, 3});
  EXPECT_EQ(error_of([&] { quant_matmul(y, x, bad); }),
            "quant_matmul: w: a P16 matrix must be q8_0, q4_0 or q4_K with K a multiple of 512; "
            "it is q6_K with K = 512");
  EXPECT_EQ(error_of([&] {
              Bytes out(144);
              unpack_row_p16(GgmlType::kQ4_0, 256, raw.data<uint8_t>(), out.data());
            }),
            "unpack_row_p16: a q4_0 row of 256 values has no P16 form");
}

TEST(QuantMatmul, EmptyShapes) {
  Rng rng(2);
  const Weights w = random_weights(GgmlType::kQ8_0, 5, 64, rng);
  Tensor y = Tensor::zeros({0, 5});
  quant_matmul(y, Tensor::zeros({0, 64}), w.m);
  const Weights none = make_weights(GgmlType::kQ6_K, 0, 256, {});
  Tensor y0 = Tensor::zeros({2, 0});
  quant_matmul(y0, test::random_normal({2, 256}, rng), none.m);
  const Weights zero_k = make_weights(GgmlType::kQ4_K, 3, 0, {});
  Tensor y1 = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  quant_matmul(y1, Tensor::zeros({2, 0}), zero_k.m);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y1.data<float>()[i], 0.0f);
}

}  // namespace
}  // namespace sy::kernels
