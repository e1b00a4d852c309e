// q2_K: super-blocks of 256 values in 84 bytes, { uint8 scales[16]; uint8 qs[64]; f16 d;
// f16 dmin }. Value i belongs to sub-block i / 16, whose byte scales[i / 16] holds a 4-bit scale
// (low nibble) and a 4-bit min (high nibble): value = (d * scale) * q - (dmin * min).
// The 2-bit codes q: each half of 128 values uses 32 bytes of qs; within a half, value
// 32 * s + l (s = 0..3, l = 0..31) is bits 2s..2s+1 of byte l of that half.
//
// Reference quantizer (ggml quantize_row_q2_K_ref): each sub-block of 16 gets a scale and a min
// from fit_scale_min4 (codes 0..3, weights |x|, least absolute error, 16 candidate steps from
// iscale = 2.5 / range); the largest scale and the largest min set d = max / 15 and dmin =
// max / 15 (f16), every sub-block's scale and min are rounded to 4 bits against them, and the
// codes are recomputed as nearest((x + dmin * min) / (d * scale)) clamped to 0..3.
#include <cstdint>
#include <cstring>

#include "kernels/quant/formats.h"
#include "kernels/quant/k_search.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 256;
constexpr int kBytes = 84;

}  // namespace

void dequantize_q2_k(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const uint8_t* scales = block;
    const float d = load_f16(block + 80);
    const float dmin = load_f16(block + 82);
    float* y = out + b * kValues;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = block + 16 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int sub = 0; sub < 2; ++sub) {  // two sub-blocks of 16 per 32 bytes
          const uint8_t sc = *scales++;
          const float dl = d * static_cast<float>(sc & 0xf);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) {
            *y++ = dl * static_cast<float>((q[16 * sub + l] >> shift) & 3) - ml;
          }
        }
      }
    }
  }
}

void quantize_q2_k(const float* values, uint8_t* blocks, int64_t nblocks) {
  constexpr int kSub = 16;
  constexpr float kLevels = 15.0f;  // 4-bit scales and mins
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    uint8_t* packed = block;
    uint8_t L[kValues];
    float scales[kValues / kSub], mins[kValues / kSub];
    for (int quad = 0; quad < kValues / kSub / 4; ++quad) {  // four sub-blocks, one per lane
      F4 xs[kSub], weights[kSub], codes[kSub], aux[kSub];
      load_lanes(x + 4 * kSub * quad, kSub, xs);
      for (int l = 0; l < kSub; ++l) weights[l] = abs4(xs[l]);
      F4 the_min;
      const F4 scale =
          fit_scale_min4(kSub, 3, xs, weights, codes, &the_min, aux, -0.5f, 0.1f, 15, true);
      for (int g = 0; g < 4; ++g) {
        const int j = 4 * quad + g;
        scales[j] = scale[g];
        mins[j] = the_min[g];
        for (int l = 0; l < kSub; ++l) L[kSub * j + l] = static_cast<uint8_t>(codes[l][g]);
      }
    }
    float max_scale = 0, max_min = 0;  // after taking out the min, scales are positive
    for (int j = 0; j < kValues / kSub; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = kLevels / max_scale;
      for (int j = 0; j < kValues / kSub; ++j) {
        packed[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      }
      store_f16(block + 80, max_scale / kLevels);
    } else {
      std::memset(packed, 0, kValues / kSub);
      store_f16(block + 80, 0.0f);
    }
    if (max_min > 0) {
      const float iscale = kLevels / max_min;
      for (int j = 0; j < kValues / kSub; ++j) {
        packed[j] = static_cast<uint8_t>(packed[j] | (nearest_int(iscale * mins[j]) << 4));
      }
      store_f16(block + 82, max_min / kLevels);
    } else {
      store_f16(block + 82, 0.0f);
    }

    // Final codes against the stored scales; a sub-block whose scale is 0 keeps its fit's codes.
    const float d_all = load_f16(block + 80), dmin_all = load_f16(block + 82);
    for (int j = 0; j < kValues / kSub; ++j) {
      const float d = d_all * static_cast<float>(packed[j] & 0xf);
      if (d == 0.0f) continue;
      const float dm = dmin_all * static_cast<float>(packed[j] >> 4);
      for (int i = 0; i < kSub; ++i) {
        const int l = nearest_int((x[kSub * j + i] + dm) / d);
        L[kSub * j + i] = static_cast<uint8_t>(clamp_int(l, 0, 3));
      }
    }

    uint8_t* qs = block + 16;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = L + 128 * half;
      for (int l = 0; l < 32; ++l) {
        qs[32 * half + l] =
            static_cast<uint8_t>(q[l] | (q[l + 32] << 2) | (q[l + 64] << 4) | (q[l + 96] << 6));
      }
    }
  }
}

}  // namespace sy::kernels::quant
