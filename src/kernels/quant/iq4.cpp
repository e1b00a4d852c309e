// iq4_nl and iq4_xs: 4-bit codes that index a fixed table of 16 non-uniform values
// (kIq4Values), times a scale.
//
// iq4_nl: blocks of 32 values in 18 bytes, { f16 d; uint8 qs[16] }, laid out as q4_0: byte j
// holds value j in its low nibble and value j + 16 in its high nibble; value = d * table[code].
// iq4_xs: super-blocks of 256 values in 136 bytes, { f16 d; uint16 scales_h; uint8 scales_l[4];
// uint8 qs[128] }: 8 sub-blocks of 32, sub-block j's codes in qs[16 j .. 16 j + 15] laid out as an
// iq4_nl block's, its scale dl = d * (ls_j - 32) with the 6-bit ls_j of iq4_xs_scale; value =
// dl * table[code] (f32: d * (ls - 32) rounded, then times the table value).
//
// Quantizers: llama-quantize's (ggml-quants.c quantize_iq4_nl / quantize_iq4_xs through
// quantize_row_iq4_nl_impl with 7 tries a side and no importance matrix), step for step in f32 in
// the same order (as k_search.h describes for the K formats), so the blocks are byte-identical to
// its for finite inputs. Per 32 values, with weights w = x^2: d0 = max / 127 (max: the value of
// largest magnitude, the first on ties), codes by the nearest table value to x / d0, d = sum wqx /
// sum wq^2; then for t = -7..7 the codes of x (t - 127) / max, kept when (sum wqx)^2 / sum wq^2
// beats the best so far. iq4_nl stores f16(d) and the codes nearest x / d; iq4_xs puts the 8
// sub-block scales on one grid D = -m / 32 (m: the sub-block scale of largest magnitude), stores
// f16(D) and l = clamp(round(scale / D), -32, 31) + 32, and the codes nearest x / (D l). Sub-blocks
// whose largest magnitude is below 1e-15 get scale 0.
#include <cmath>
#include <cstdint>

#include "kernels/quant/formats.h"
#include "kernels/quant/k_search.h"

namespace sy::kernels::quant {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml GROUP_MAX_EPS
constexpr int kTries = 7;

// The code whose table value is nearest x, the upper one on ties (ggml best_index_int8: a binary
// search, then the nearer neighbour). NaN gives 15.
int nearest_code(float x) {
  const int8_t* v = kIq4Values;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < static_cast<float>(v[mid])) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return x - static_cast<float>(v[hi - 1]) < static_cast<float>(v[hi]) - x ? hi - 1 : hi;
}

// sum w q x and sum w q^2 over 32 values for the codes nearest inv_scale * x.
void weighted_sums(const float* x, const float* w, float inv_scale, float& sum_qx, float& sum_q2) {
  sum_qx = 0.0f;
  sum_q2 = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const auto q = static_cast<float>(kIq4Values[nearest_code(inv_scale * x[j])]);
    sum_qx += w[j] * q * x[j];
    sum_q2 += w[j] * q * q;
  }
}

// The scale of 32 values (the header's search), 0 when they are all below kGroupMaxEps.
float search_scale(const float* x) {
  float w[32];
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    w[j] = x[j] * x[j];
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) return 0.0f;
  const auto v0 = static_cast<float>(kIq4Values[0]);
  float sum_qx = 0.0f, sum_q2 = 0.0f;
  weighted_sums(x, w, 1.0f / (-max / v0), sum_qx, sum_q2);
  float d = sum_qx / sum_q2;
  float best = d * sum_qx;
  for (int t = -kTries; t <= kTries; ++t) {
    weighted_sums(x, w, static_cast<float>(t + kIq4Values[0]) / max, sum_qx, sum_q2);
    if (sum_q2 > 0.0f && sum_qx * sum_qx > best * sum_q2) {
      d = sum_qx / sum_q2;
      best = d * sum_qx;
    }
  }
  return d;
}

// 32 values' codes nearest x / scale (all code 8, the value 1, when the scale is 0) into qs, in
// q4_0's nibble order.
void pack_codes(const float* x, float scale, uint8_t* qs) {
  const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>(nearest_code(inv * x[j]) | (nearest_code(inv * x[j + 16]) << 4));
  }
}

// The 32 values of one block of codes at qs (q4_0's nibble order) with scale d.
void decode_32(const uint8_t* qs, float d, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kIq4Values[qs[j] & 0xf]);
    y[j + 16] = d * static_cast<float>(kIq4Values[qs[j] >> 4]);
  }
}

}  // namespace

void dequantize_iq4_nl(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * 18;
    decode_32(block + 2, load_f16(block), out + b * 32);
  }
}

void dequantize_iq4_xs(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * 136;
    const float d = load_f16(block);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(iq4_xs_scale(block, j) - 32);
      decode_32(block + 8 + 16 * j, dl, out + b * 256 + 32 * j);
    }
  }
}

void quantize_iq4_nl(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * 32;
    uint8_t* block = blocks + b * 18;
    const float d = search_scale(x);
    store_f16(block, d);
    pack_codes(x, d, block + 2);
  }
}

void quantize_iq4_xs(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * 256;
    uint8_t* block = blocks + b * 136;
    float scales[8];
    float max_scale = 0.0f, amax_scale = 0.0f;
    for (int j = 0; j < 8; ++j) {
      scales[j] = search_scale(x + 32 * j);
      if (std::fabs(scales[j]) > amax_scale) {
        amax_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    const float d = -max_scale / 32.0f;  // -0 when every sub-block is zero, as ggml stores it
    store_f16(block, d);
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    unsigned scales_h = 0;
    for (int j = 0; j < 8; ++j) {
      const int l = clamp_int(nearest_int(inv * scales[j]), -32, 31);
      pack_codes(x + 32 * j, d * static_cast<float>(l), block + 8 + 16 * j);
      const int ls = l + 32;
      if (j % 2 == 0) {
        block[4 + j / 2] = static_cast<uint8_t>(ls & 0xf);
      } else {
        block[4 + j / 2] = static_cast<uint8_t>(block[4 + j / 2] | ((ls & 0xf) << 4));
      }
      scales_h |= static_cast<unsigned>(ls >> 4) << (2 * j);
    }
    block[2] = static_cast<uint8_t>(scales_h & 0xff);
    block[3] = static_cast<uint8_t>(scales_h >> 8);
  }
}

}  // namespace sy::kernels::quant
