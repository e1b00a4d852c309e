// q5_1: blocks of 32 values in 24 bytes, { f16 d; f16 m; uint8 qh[4]; uint8 qs[16] }. Nibbles and
// high bits are laid out as in q5_0 (bit i of the little-endian u32 qh is bit 4 of value i);
// value = code * d + m.
//
// Reference quantizer (ggml quantize_row_q5_1_ref): m = min x, d = (max x - min x) / 31 in f32,
// code = trunc((x - m) * (1 / d) + 0.5) (at most 31 for finite inputs).
#include <cfloat>
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 32;
constexpr int kBytes = 24;

}  // namespace

void dequantize_q5_1(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const float m = load_f16(block + 2);
    const uint32_t qh = static_cast<uint32_t>(block[4]) | (static_cast<uint32_t>(block[5]) << 8) |
                        (static_cast<uint32_t>(block[6]) << 16) |
                        (static_cast<uint32_t>(block[7]) << 24);
    const uint8_t* qs = block + 8;
    float* y = out + b * kValues;
    for (int j = 0; j < kValues / 2; ++j) {
      const uint32_t lo = (qs[j] & 0xfu) | (((qh >> j) & 1u) << 4);
      const uint32_t hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
      y[j] = static_cast<float>(lo) * d + m;
      y[j + kValues / 2] = static_cast<float>(hi) * d + m;
    }
  }
}

void quantize_q5_1(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const float* x = values + b * kValues;
    uint8_t* block = blocks + b * kBytes;
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < kValues; ++i) {
      if (x[i] < min) min = x[i];
      if (x[i] > max) max = x[i];
    }
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(block, d);
    store_f16(block + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < kValues / 2; ++j) {
      const int lo = truncate_code((x[j] - min) * id + 0.5f, 31);
      const int hi = truncate_code((x[j + kValues / 2] - min) * id + 0.5f, 31);
      block[8 + j] = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) block[4 + k] = static_cast<uint8_t>(qh >> (8 * k));
  }
}

}  // namespace sy::kernels::quant
