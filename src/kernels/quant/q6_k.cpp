// q6_K: super-blocks of 256 values in 210 bytes, { uint8 ql[128]; uint8 qh[64]; int8 scales[16];
// f16 d }. Value i belongs to sub-block i / 16 with the signed 8-bit scale scales[i / 16]:
// value = (d * scale) * (q - 32), q the 6-bit code. Each half of 128 values uses 64 bytes of ql
// and 32 of qh; value 32 * g + l of a half (g = 0..3, l = 0..31) takes its low 4 bits from byte
// l + 32 * (g % 2) of the half's ql (low nibble for g < 2, high nibble for g >= 2) and its top 2
// bits from bits 2g..2g+1 of byte l of the half's qh.
//
// Reference quantizer (ggml quantize_row_q6_K_ref): each sub-block of 16 gets a signed scale from
// fit_scale_signed4 (codes -32..31, x^2-weighted least squares over 19 candidate steps); the
// scale of largest magnitude m sets d = m / -128 (f16), each scale is rounded to int8 against it
// (capped at 127), and the codes are recomputed as nearest(x / (d * scale)) clamped to -32..31,
// stored + 32. A super-block whose scales are all below 1e-15 is stored as all zero bytes.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/quant/formats.h"
#include "kernels/quant/k_search.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 256;
constexpr int kBytes = 210;

}  // namespace

void dequantize_q6_k(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
    const float d = load_f16(block + 208);
    float* y = out + b * kValues;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = block + 64 * half;
      const uint8_t* qh = block + 128 + 32 * half;
      const int8_t* sc = scales + 8 * half;
      for (int g = 0; g < 4; ++g) {
        const uint8_t* low = ql + 32 * (g % 2);
        const int nibble_shift = g < 2 ? 0 : 4;
        for (int l = 0; l < 32; ++l) {
          const int code = ((low[l] >> nibble_shift) & 0xf) | (((qh[l] >> (2 * g)) & 3) << 4);
          const int sub = 2 * g + (l >= 16 ? 1 : 0);  // sub-block of 16 within the half
          const float dl = d * static_cast<float>(sc[sub]);
          y[32 * g + l] = dl * static_cast<float>(code - 32);
        }
      }
      y += 128;
    }
  }
}

void quantize_q6_k(const float* values, uint8_t* blocks, int64_t nblocks) {
  constexpr int kSub = 16;
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    uint8_t L[kValues];  // codes 0..63
    float scales[kValues / kSub];
    for (int quad = 0; quad < kValues / kSub / 4; ++quad) {  // four sub-blocks, one per lane
      F4 xs[kSub], codes[kSub], aux[kSub];
      load_lanes(x + 4 * kSub * quad, kSub, xs);
      const F4 scale = fit_scale_signed4(kSub, 32, xs, codes, aux);
      for (int g = 0; g < 4; ++g) {
        const int j = 4 * quad + g;
        scales[j] = scale[g];
        for (int l = 0; l < kSub; ++l) L[kSub * j + l] = static_cast<uint8_t>(codes[l][g]);
      }
    }
    float max_scale = 0, max_abs_scale = 0;  // the scale of largest magnitude, with its sign
    for (const float scale : scales) {
      if (std::fabs(scale) > max_abs_scale) {
        max_abs_scale = std::fabs(scale);
        max_scale = scale;
      }
    }
    if (max_abs_scale < 1e-15f) {  // ggml GROUP_MAX_EPS
      std::memset(block, 0, kBytes);
      continue;
    }

    auto* sc = reinterpret_cast<int8_t*>(block + 192);
    const float iscale = -128.0f / max_scale;
    store_f16(block + 208, 1 / iscale);
    for (int j = 0; j < kValues / kSub; ++j) {
      const int l = nearest_int(iscale * scales[j]);
      sc[j] = static_cast<int8_t>(l < 127 ? l : 127);
    }

    // Final codes against the stored scales; a sub-block whose scale is 0 keeps its fit's codes.
    const float d_all = load_f16(block + 208);
    for (int j = 0; j < kValues / kSub; ++j) {
      const float d = d_all * static_cast<float>(sc[j]);
      if (d == 0.0f) continue;
      for (int i = 0; i < kSub; ++i) {
        const int l = clamp_int(nearest_int(x[kSub * j + i] / d), -32, 31);
        L[kSub * j + i] = static_cast<uint8_t>(l + 32);
      }
    }

    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = L + 128 * half;
      uint8_t* ql = block + 64 * half;
      uint8_t* qh = block + 128 + 32 * half;
      for (int l = 0; l < 32; ++l) {
        const int q1 = q[l], q2 = q[l + 32], q3 = q[l + 64], q4 = q[l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xf) | ((q3 & 0xf) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xf) | ((q4 & 0xf) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
                                     ((q4 >> 4) << 6));
      }
    }
  }
}

}  // namespace sy::kernels::quant
