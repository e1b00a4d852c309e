// q8_0: blocks of 32 values in 34 bytes, { f16 d; int8 qs[32] }; value i = qs[i] * d.
//
// Reference quantizer (ggml quantize_row_q8_0_ref): d = max|x| / 127, qs[i] = roundf(x[i] / d)
// computed as x[i] * (1 / d) in f32, rounding half away from zero; an all-zero block gets d = 0.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 32;
constexpr int kBytes = 34;

}  // namespace

void dequantize_q8_0(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const uint8_t* qs = block + 2;
    float* y = out + b * kValues;
    for (int i = 0; i < kValues; ++i) {
      y[i] = static_cast<float>(static_cast<int8_t>(qs[i])) * d;
    }
  }
}

void quantize_q8_0(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    float amax = 0.0f;
    for (int i = 0; i < kValues; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(block, d);
    for (int i = 0; i < kValues; ++i) {
      const float v = x[i] * id;  // |v| <= 127 (to an ulp) for finite inputs
      const float q = std::isnan(v) ? 0.0f : std::round(std::clamp(v, -127.0f, 127.0f));
      block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

}  // namespace sy::kernels::quant
