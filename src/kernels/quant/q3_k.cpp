// q3_K: super-blocks of 256 values in 110 bytes, { uint8 hmask[32]; uint8 qs[64];
// uint8 scales[12]; f16 d }. Value i belongs to sub-block i / 16 with a signed 6-bit scale;
// value = (d * (scale - 32)) * (q - (high bit set ? 0 : 4)), q being the low 2 bits.
//   - low 2 bits: as q2_K: each half of 128 values uses 32 bytes of qs, value 32 * s + l of a
//     half is bits 2s..2s+1 of byte l (s = 0..3, l = 0..31);
//   - high bit of value i: bit i / 32 of hmask[i % 32];
//   - scale j (0..15): low 4 bits = low nibble of scales[j] for j < 8, high nibble of
//     scales[j - 8] for j >= 8; top 2 bits = bits 2 * (j / 4) .. +1 of scales[8 + j % 4].
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 256;
constexpr int kBytes = 110;

int q3_k_scale(const uint8_t* packed, int j) {
  const int low = j < 8 ? (packed[j] & 0xf) : (packed[j - 8] >> 4);
  const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

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

}  // namespace sy::kernels::quant
