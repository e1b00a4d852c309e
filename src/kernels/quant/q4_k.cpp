// q4_K: super-blocks of 256 values in 144 bytes, { f16 d; f16 dmin; uint8 scales[12];
// uint8 qs[128] }. Value i belongs to sub-block i / 32, with a 6-bit scale and a 6-bit min packed
// in scales[12] (k_scale_min in formats.h): value = (d * scale) * q - (dmin * min).
// The 4-bit codes: each chunk of 64 values uses 32 bytes of qs; value l of the chunk is the low
// nibble of byte l, value 32 + l the high nibble (l = 0..31).
//
// Reference quantizer (ggml quantize_row_q4_K_ref): each sub-block of 32 gets a scale and a min
// from fit_scale_min4 (codes 0..15, weights sqrt(mean x^2) + |x|, least squares, 21 candidate
// steps from iscale = 14 / range); d = largest scale / 63 and dmin = largest min / 63 (f16), each
// scale and min rounded to 6 bits against them, and the codes recomputed as
// nearest((x + dmin * min) / (d * scale)) clamped to 0..15 (quantize_k_scale_min_block).
#include <cstdint>

#include "kernels/quant/formats.h"
#include "kernels/quant/k_search.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 256;
constexpr int kBytes = 144;

}  // namespace

void dequantize_q4_k(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const float dmin = load_f16(block + 2);
    const uint8_t* packed = block + 4;
    float* y = out + b * kValues;
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = block + 16 + 32 * chunk;
      int scale = 0, min = 0;
      k_scale_min(2 * chunk, packed, scale, min);
      const float d1 = d * static_cast<float>(scale), m1 = dmin * static_cast<float>(min);
      k_scale_min(2 * chunk + 1, packed, scale, min);
      const float d2 = d * static_cast<float>(scale), m2 = dmin * static_cast<float>(min);
      for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0xf) - m1;
      for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
      y += 64;
    }
  }
}

void quantize_q4_k(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    uint8_t* block = blocks + b * kBytes;
    uint8_t L[kValues];
    quantize_k_scale_min_block(values + b * kValues, 15, -1.0f, 20, block, L);
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = L + 64 * chunk;
      uint8_t* qs = block + 16 + 32 * chunk;
      for (int l = 0; l < 32; ++l) qs[l] = static_cast<uint8_t>(q[l] | (q[l + 32] << 4));
    }
  }
}

}  // namespace sy::kernels::quant
