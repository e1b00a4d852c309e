// q4_K: super-blocks of 256 values in 144 bytes, { f16 d; f16 dmin; uint8 scales[12];
// uint8 qs[128] }. Value i belongs to sub-block i / 32, with a 6-bit scale and a 6-bit min packed
// in scales[12] (k_scale_min in formats.h): value = (d * scale) * q - (dmin * min).
// The 4-bit codes: each chunk of 64 values uses 32 bytes of qs; value l of the chunk is the low
// nibble of byte l, value 32 + l the high nibble (l = 0..31).
#include <cstdint>

#include "kernels/quant/formats.h"

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

}  // namespace sy::kernels::quant
