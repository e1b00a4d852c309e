// q2_K: super-blocks of 256 values in 84 bytes, { uint8 scales[16]; uint8 qs[64]; f16 d;
// f16 dmin }. Value i belongs to sub-block i / 16, whose byte scales[i / 16] holds a 4-bit scale
// (low nibble) and a 4-bit min (high nibble): value = (d * scale) * q - (dmin * min).
// The 2-bit codes q: each half of 128 values uses 32 bytes of qs; within a half, value
// 32 * s + l (s = 0..3, l = 0..31) is bits 2s..2s+1 of byte l of that half.
#include <cstdint>

#include "kernels/quant/formats.h"

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

}  // namespace sy::kernels::quant
