// Portable tile bodies: the integer dot product of each block in plain C++ (which compilers
// vectorise where they can), the f32 scales applied per block, sums in block order. The path for
// CPUs without AVX2 (and ARM), and the plainest statement of what every SIMD body computes.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/qdot.h"
#include "kernels/quant/formats.h"

namespace sy::kernels::cpu {

namespace {

using quant::k_scale_min;
using quant::load_f16;

float load_f32(const uint8_t* p) {
  float v = 0.0f;
  std::memcpy(&v, p, 4);
  return v;
}
int load_i16(const uint8_t* p) {
  int16_t v = 0;
  std::memcpy(&v, p, 2);
  return v;
}
const int8_t* as_i8(const uint8_t* p) { return reinterpret_cast<const int8_t*>(p); }

// A K-format super-block's d * d_a * dot - dmin * d_a * min_sum: d and dmin the two f16 at dd,
// d_a that of the kA256 activations at a.
float with_mins(const uint8_t* dd, const uint8_t* a, int dot, int min_sum) {
  const float da = load_f32(a + 288);
  return load_f16(dd) * da * static_cast<float>(dot) -
         load_f16(dd + 2) * da * static_cast<float>(min_sum);
}

// Block b of a kA32 row: its 32 codes (lo = values 0..15, hi = values 16..31) and d.
struct A32Block {
  const int8_t* lo;
  const int8_t* hi;
  float d;
};
A32Block a32_block(const uint8_t* act, int64_t b) {
  const uint8_t* g = act + (b / 4) * kA32GroupBytes;
  const int j = static_cast<int>(b % 4);
  return {as_i8(g + 16 * j), as_i8(g + 64 + 16 * j), load_f32(g + 192 + 16 * j)};
}

float dot_q8_0(const uint8_t* w, const uint8_t* act, int64_t k) {
  float sum = 0.0f;
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* blk = w + b * 34;
    const int8_t* q = as_i8(blk + 2);
    const A32Block a = a32_block(act, b);
    int s = 0;
    for (int i = 0; i < 16; ++i) s += q[i] * a.lo[i] + q[16 + i] * a.hi[i];
    sum += load_f16(blk) * a.d * static_cast<float>(s);
  }
  return sum;
}

// (code - offset) . a over a block's 32 codes: the nibbles at qs (low nibbles values 0..15, high
// nibbles 16..31), topped for q5_0 / q5_1 by bit i of the u32 qh for value i (qh = 0 otherwise).
int dot_codes(const uint8_t* qs, uint32_t qh, int offset, const A32Block& a) {
  int s = 0;
  for (int i = 0; i < 16; ++i) {
    const int lo = (qs[i] & 0xf) | static_cast<int>(((qh >> i) & 1) << 4);
    const int hi = (qs[i] >> 4) | static_cast<int>(((qh >> (i + 16)) & 1) << 4);
    s += (lo - offset) * a.lo[i] + (hi - offset) * a.hi[i];
  }
  return s;
}

// q4_0, q5_0, q4_1 and q5_1: codes of 4 or 5 bits (bit 4 from the u32 qh after d, or d and m).
// The _0 formats take d * ((q - 8 or 16) . a); the _1 formats, w = d * q + m, take
// d * (q . a) + m * sum(a); both times the block's d_a.
template <bool kFive, bool kMin>
float dot_nibbles(const uint8_t* w, const uint8_t* act, int64_t k) {
  constexpr int64_t kHead = kMin ? 4 : 2, kQs = kHead + (kFive ? 4 : 0), kBytes = kQs + 16;
  float sum = 0.0f;
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* blk = w + b * kBytes;
    uint32_t qh = 0;
    if constexpr (kFive) std::memcpy(&qh, blk + kHead, 4);
    const A32Block a = a32_block(act, b);
    const int s = dot_codes(blk + kQs, qh, kMin ? 0 : (kFive ? 16 : 8), a);
    if constexpr (kMin) {
      int a_sum = 0;
      for (int i = 0; i < 16; ++i) a_sum += a.lo[i] + a.hi[i];
      sum +=
          (load_f16(blk) * static_cast<float>(s) + load_f16(blk + 2) * static_cast<float>(a_sum)) *
          a.d;
    } else {
      sum += load_f16(blk) * a.d * static_cast<float>(s);
    }
  }
  return sum;
}

// The 32 codes of an iq4 block (q4_0's nibble order) as table values, dotted with block a.
int dot_iq4_block(const uint8_t* qs, const A32Block& a) {
  int s = 0;
  for (int i = 0; i < 16; ++i) {
    s += quant::kIq4Values[qs[i] & 0xf] * a.lo[i] + quant::kIq4Values[qs[i] >> 4] * a.hi[i];
  }
  return s;
}

float dot_iq4_nl(const uint8_t* w, const uint8_t* act, int64_t k) {
  float sum = 0.0f;
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* blk = w + b * 18;
    const A32Block a = a32_block(act, b);
    sum += load_f16(blk) * a.d * static_cast<float>(dot_iq4_block(blk + 2, a));
  }
  return sum;
}

// iq4_xs: sub-block j of each super-block is an iq4_nl block of scale d * (ls_j - 32).
float dot_iq4_xs(const uint8_t* w, const uint8_t* act, int64_t k) {
  float sum = 0.0f;
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* blk = w + (b / 8) * 136;
    const int j = static_cast<int>(b % 8);
    const A32Block a = a32_block(act, b);
    const float dw = load_f16(blk) * static_cast<float>(quant::iq4_xs_scale(blk, j) - 32);
    sum += dw * a.d * static_cast<float>(dot_iq4_block(blk + 8 + 16 * j, a));
  }
  return sum;
}

// q4_K and q5_K: per super-block d * sum_j sc_j (q . a)_j - dmin * sum_j m_j (sum a)_j.
template <bool kFive>
float dot_q45_k(const uint8_t* w, const uint8_t* act, int64_t k) {
  constexpr int kBytes = kFive ? 176 : 144;
  float sum = 0.0f;
  for (int64_t sb = 0; sb < k / 256; ++sb) {
    const uint8_t* blk = w + sb * kBytes;
    const uint8_t* a = act + sb * kA256Bytes;
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = blk + (kFive ? 48 : 16);
    int main_sum = 0, min_sum = 0;
    for (int p = 0; p < 8; ++p) {
      const int j = kK4SubOrder[p];  // sub-block at activation position p
      int sc = 0, m = 0;
      k_scale_min(j, blk + 4, sc, m);
      const uint8_t* q = qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      const int8_t* av = as_i8(a + 32 * p);
      int s = 0;
      for (int l = 0; l < 32; ++l) {
        int code = (q[l] >> shift) & 0xf;
        if (kFive) code |= ((qh[l] >> j) & 1) << 4;
        s += code * av[l];
      }
      main_sum += sc * s;
      min_sum += m * (load_i16(a + 256 + 4 * j) + load_i16(a + 258 + 4 * j));
    }
    sum += with_mins(blk, a, main_sum, min_sum);
  }
  return sum;
}

// q6_K: d * sum_j sc_j ((q - 32) . a)_j over 16 sub-blocks of 16.
float dot_q6_k(const uint8_t* w, const uint8_t* act, int64_t k) {
  float sum = 0.0f;
  for (int64_t sb = 0; sb < k / 256; ++sb) {
    const uint8_t* blk = w + sb * 210;
    const uint8_t* a = act + sb * kA256Bytes;
    const int8_t* scales = as_i8(blk + 192);
    int total = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = blk + 64 * half;
      const uint8_t* qh = blk + 128 + 32 * half;
      for (int g = 0; g < 4; ++g) {
        const int8_t* av = as_i8(a + 128 * half + 32 * g);
        for (int part = 0; part < 2; ++part) {
          int s = 0;
          for (int l = 16 * part; l < 16 * part + 16; ++l) {
            const int low = (ql[l + 32 * (g % 2)] >> (g < 2 ? 0 : 4)) & 0xf;
            const int code = low | (((qh[l] >> (2 * g)) & 3) << 4);
            s += (code - 32) * av[l];
          }
          total += scales[8 * half + 2 * g + part] * s;
        }
      }
    }
    sum += load_f16(blk + 208) * load_f32(a + 288) * static_cast<float>(total);
  }
  return sum;
}

// q3_K: d * sum_j sc_j ((q - 4) . a)_j over 16 sub-blocks of 16, q = 2 low bits + 4 * high bit.
float dot_q3_k(const uint8_t* w, const uint8_t* act, int64_t k) {
  float sum = 0.0f;
  for (int64_t sb = 0; sb < k / 256; ++sb) {
    const uint8_t* blk = w + sb * 110;
    const int8_t* a = as_i8(act + sb * kA256Bytes);
    int total = 0;
    for (int i = 0; i < 256; ++i) {
      const int half = i / 128, g = (i % 128) / 32, l = i % 32;
      const int low = (blk[32 + 32 * half + l] >> (2 * g)) & 3;
      const int high = (blk[l] >> (4 * half + g)) & 1;
      total += quant::q3_k_scale(blk + 96, i / 16) * (low + 4 * high - 4) * a[i];
    }
    sum += load_f16(blk + 108) * load_f32(act + sb * kA256Bytes + 288) * static_cast<float>(total);
  }
  return sum;
}

// q2_K: sum_j (d sc_j (q . a)_j - dmin m_j (sum a)_j) over 16 sub-blocks of 16.
float dot_q2_k(const uint8_t* w, const uint8_t* act, int64_t k) {
  float sum = 0.0f;
  for (int64_t sb = 0; sb < k / 256; ++sb) {
    const uint8_t* blk = w + sb * 84;
    const uint8_t* a = act + sb * kA256Bytes;
    int dot = 0, min_sum = 0;
    for (int j = 0; j < 16; ++j) {
      const int half = j / 8, g = (j % 8) / 2;
      int s = 0;
      for (int l = 16 * (j % 2); l < 16 * (j % 2) + 16; ++l) {
        s += ((blk[16 + 32 * half + l] >> (2 * g)) & 3) * as_i8(a)[128 * half + 32 * g + l];
      }
      dot += (blk[j] & 0xf) * s;
      min_sum += (blk[j] >> 4) * load_i16(a + 256 + 2 * j);
    }
    sum += with_mins(blk + 80, a, dot, min_sum);
  }
  return sum;
}

template <float (*kDot)(const uint8_t*, const uint8_t*, int64_t)>
void tile(const QdotTile& t) {
  for (int64_t tok = 0; tok < t.tokens; ++tok) {
    const uint8_t* act = t.act + tok * t.act_stride;
    float* y = t.y + tok * t.y_stride;
    for (int64_t r = 0; r < t.rows; ++r) {
      const float v = kDot(t.w + r * t.w_stride, act, t.k);
      y[r] = t.accumulate ? y[r] + v : v;
    }
  }
}

}  // namespace

QdotTileFn qdot_tile_scalar(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::kQ8_0:
      return tile<dot_q8_0>;
    case GgmlType::kQ4_0:
      return tile<dot_nibbles<false, false>>;
    case GgmlType::kQ4_1:
      return tile<dot_nibbles<false, true>>;
    case GgmlType::kQ5_0:
      return tile<dot_nibbles<true, false>>;
    case GgmlType::kQ5_1:
      return tile<dot_nibbles<true, true>>;
    case GgmlType::kQ2_K:
      return tile<dot_q2_k>;
    case GgmlType::kQ3_K:
      return tile<dot_q3_k>;
    case GgmlType::kQ4_K:
      return tile<dot_q45_k<false>>;
    case GgmlType::kQ5_K:
      return tile<dot_q45_k<true>>;
    case GgmlType::kQ6_K:
      return tile<dot_q6_k>;
    case GgmlType::kIQ4_NL:
      return tile<dot_iq4_nl>;
    case GgmlType::kIQ4_XS:
      return tile<dot_iq4_xs>;
    default:
      return nullptr;
  }
}

}  // namespace sy::kernels::cpu
