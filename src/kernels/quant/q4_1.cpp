// q4_1: blocks of 32 values in 20 bytes, { f16 d; f16 m; uint8 qs[16] }. Byte j holds value j in
// its low nibble and value j + 16 in its high nibble; value = nibble * d + m.
//
// Reference quantizer (ggml quantize_row_q4_1_ref): m = min x, d = (max x - min x) / 15 in f32,
// code = min(15, trunc((x - m) * (1 / d) + 0.5)), i.e. round to nearest from the f32 scale; d and
// m are then stored as f16.
#include <cfloat>
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 32;
constexpr int kBytes = 20;

}  // namespace

void dequantize_q4_1(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const float m = load_f16(block + 2);
    const uint8_t* qs = block + 4;
    float* y = out + b * kValues;
    for (int j = 0; j < kValues / 2; ++j) {
      y[j] = static_cast<float>(qs[j] & 0xf) * d + m;
      y[j + kValues / 2] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

void quantize_q4_1(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < kValues; ++i) {
      if (x[i] < min) min = x[i];
      if (x[i] > max) max = x[i];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(block, d);
    store_f16(block + 2, min);
    for (int j = 0; j < kValues / 2; ++j) {
      const int lo = truncate_code((x[j] - min) * id + 0.5f, 15);
      const int hi = truncate_code((x[j + kValues / 2] - min) * id + 0.5f, 15);
      block[4 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

}  // namespace sy::kernels::quant
