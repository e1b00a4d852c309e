// q3_K: super-blocks of 256 values in 110 bytes, { uint8 hmask[32]; uint8 qs[64];
// uint8 scales[12]; f16 d }. Value i belongs to sub-block i / 16 with a signed 6-bit scale;
// value = (d * (scale - 32)) * (q - (high bit set ? 0 : 4)), q being the low 2 bits.
//   - low 2 bits: as q2_K: each half of 128 values uses 32 bytes of qs, value 32 * s + l of a
//     half is bits 2s..2s+1 of byte l (s = 0..3, l = 0..31);
//   - high bit of value i: bit i / 32 of hmask[i % 32];
//   - scale j (0..15): low 4 bits = low nibble of scales[j] for j < 8, high nibble of
//     scales[j - 8] for j >= 8; top 2 bits = bits 2 * (j / 4) .. +1 of scales[8 + j % 4].
//
// Reference quantizer (ggml quantize_row_q3_K_ref): each sub-block of 16 gets a signed scale from
// fit_scale_q3 (codes -4..3, x^2-weighted least squares with single-code moves); the scale of
// largest magnitude m sets d = m / -32 (f16), every scale is rounded to 6 bits against it
// (-32..31, stored + 32), and the codes are recomputed as nearest(x / (d * scale)) clamped to
// -4..3, stored + 4 as 2 low bits and a high bit.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/quant/formats.h"
#include "kernels/quant/k_search.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 256;
constexpr int kBytes = 110;

}  // namespace

void dequantize_q3_k(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const uint8_t* hmask = block;
    const uint8_t* packed = block + 96;
    const float d = load_f16(block + 108);
    float* y = out + b * kValues;
    int sub = 0;    // sub-block of 16 values, 0..15
    int plane = 0;  // hmask bit, 0..7: one per 32 values
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = block + 32 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2, ++plane) {
        for (int part = 0; part < 2; ++part, ++sub) {
          const float dl = d * static_cast<float>(q3_k_scale(packed, sub));
          for (int l = 16 * part; l < 16 * part + 16; ++l) {
            const int low = (q[l] >> shift) & 3;
            const int code = low - (((hmask[l] >> plane) & 1) != 0 ? 0 : 4);
            *y++ = dl * static_cast<float>(code);
          }
        }
      }
    }
  }
}

void quantize_q3_k(const float* values, uint8_t* blocks, int64_t nblocks) {
  constexpr int kSub = 16;
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    uint8_t* packed = block + 96;
    int8_t L[kValues];
    float scales[kValues / kSub];
    float max_scale = 0, amax = 0;  // the scale of largest magnitude, with its sign
    for (int j = 0; j < kValues / kSub; ++j) {
      scales[j] = fit_scale_q3(kSub, 4, x + kSub * j, L + kSub * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }

    std::memset(packed, 0, 12);
    if (max_scale != 0) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < kValues / kSub; ++j) {
        // ggml keeps the rounded value in an int8_t before clamping it.
        const auto rounded = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        const int l = clamp_int(rounded, -32, 31) + 32;
        if (j < 8) {
          packed[j] = static_cast<uint8_t>(l & 0xf);
        } else {
          packed[j - 8] = static_cast<uint8_t>(packed[j - 8] | ((l & 0xf) << 4));
        }
        packed[8 + j % 4] = static_cast<uint8_t>(packed[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
      }
      store_f16(block + 108, 1 / iscale);
    } else {
      store_f16(block + 108, 0.0f);
    }

    // Final codes against the stored scales; a sub-block whose scale is 0 keeps its fit's codes.
    const float d_all = load_f16(block + 108);
    for (int j = 0; j < kValues / kSub; ++j) {
      const float d = d_all * static_cast<float>(q3_k_scale(packed, j));
      if (d == 0.0f) continue;
      for (int i = 0; i < kSub; ++i) {
        const int l = clamp_int(nearest_int(x[kSub * j + i] / d), -4, 3);
        L[kSub * j + i] = static_cast<int8_t>(l + 4);
      }
    }

    // High bit of value i -> bit i / 32 of hmask[i % 32]; low 2 bits as in q2_K.
    uint8_t* hmask = block;
    std::memset(hmask, 0, 32);
    for (int i = 0; i < kValues; ++i) {
      if (L[i] > 3) {
        hmask[i % 32] = static_cast<uint8_t>(hmask[i % 32] | (1 << (i / 32)));
        L[i] = static_cast<int8_t>(L[i] - 4);
      }
    }
    uint8_t* qs = block + 32;
    for (int half = 0; half < 2; ++half) {
      const int8_t* q = L + 128 * half;
      for (int l = 0; l < 32; ++l) {
        qs[32 * half + l] =
            static_cast<uint8_t>(q[l] | (q[l + 32] << 2) | (q[l + 64] << 4) | (q[l + 96] << 6));
      }
    }
  }
}

}  // namespace sy::kernels::quant
