// mxfp4 (OCP microscaling FP4, as ggml stores it): blocks of 32 values in 17 bytes,
// { uint8 e; uint8 qs[16] }. Byte j holds value j in its low nibble and value j + 16 in its high
// nibble; each nibble is an FP4 E2M1 number (sign bit 3, then 2 exponent and 1 mantissa bits:
// magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6), and e is an E8M0 scale 2^(e - 127).
// ggml keeps the E2M1 values doubled as small integers and halves the scale, computing
// value = k[nibble] * 2^(e - 128) with k = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, ..., -12}; both
// factors are exact, so this equals E2M1 * 2^(e - 127) whenever that is representable. e = 255
// (NaN in the OCP spec) is decoded like ggml does, as the scale 2^127.
#include <cstdint>
#include <cstring>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 32;
constexpr int kBytes = 17;
constexpr int8_t kDoubledE2M1[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// 2^(e - 128) as an f32; e = 0 and 1 give the subnormals 2^-128 and 2^-127.
float half_e8m0(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace

void dequantize_mxfp4(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = half_e8m0(block[0]);
    const uint8_t* qs = block + 1;
    float* y = out + b * kValues;
    for (int j = 0; j < kValues / 2; ++j) {
      y[j] = static_cast<float>(kDoubledE2M1[qs[j] & 0xf]) * d;
      y[j + kValues / 2] = static_cast<float>(kDoubledE2M1[qs[j] >> 4]) * d;
    }
  }
}

}  // namespace sy::kernels::quant
