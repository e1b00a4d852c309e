// q6_K: super-blocks of 256 values in 210 bytes, { uint8 ql[128]; uint8 qh[64]; int8 scales[16];
// f16 d }. Value i belongs to sub-block i / 16 with the signed 8-bit scale scales[i / 16]:
// value = (d * scale) * (q - 32), q the 6-bit code. Each half of 128 values uses 64 bytes of ql
// and 32 of qh; value 32 * g + l of a half (g = 0..3, l = 0..31) takes its low 4 bits from byte
// l + 32 * (g % 2) of the half's ql (low nibble for g < 2, high nibble for g >= 2) and its top 2
// bits from bits 2g..2g+1 of byte l of the half's qh.
#include <cstdint>

#include "kernels/quant/formats.h"

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

}  // namespace sy::kernels::quant
