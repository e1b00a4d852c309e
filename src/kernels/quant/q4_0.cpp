// q4_0: blocks of 32 values in 18 bytes, { f16 d; uint8 qs[16] }. Byte j holds value j in its low
// nibble and value j + 16 in its high nibble; value = (nibble - 8) * d.
//
// Reference quantizer (ggml quantize_row_q4_0_ref): m = the value of largest magnitude (the first
// one on ties), d = m / -8 so that m itself maps to code 0 (-8 * d = m), code = min(15,
// trunc(x * (1 / d) + 8.5)). The opposite extreme -m would need code 16 and is capped at 15, so
// its error reaches |d| while every other value is within |d| / 2.
#include <cmath>
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 32;
constexpr int kBytes = 18;

}  // namespace

void dequantize_q4_0(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const uint8_t* qs = block + 2;
    float* y = out + b * kValues;
    for (int j = 0; j < kValues / 2; ++j) {
      y[j] = static_cast<float>((qs[j] & 0xf) - 8) * d;
      y[j + kValues / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void quantize_q4_0(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < kValues; ++i) {
      if (amax < std::fabs(x[i])) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(block, d);
    for (int j = 0; j < kValues / 2; ++j) {
      const int lo = truncate_code(x[j] * id + 8.5f, 15);
      const int hi = truncate_code(x[j + kValues / 2] * id + 8.5f, 15);
      block[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

}  // namespace sy::kernels::quant
