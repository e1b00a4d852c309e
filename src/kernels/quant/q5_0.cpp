// q5_0: blocks of 32 values in 22 bytes, { f16 d; uint8 qh[4]; uint8 qs[16] }. Byte j of qs holds
// the low 4 bits of value j (low nibble) and of value j + 16 (high nibble); bit i of the
// little-endian u32 qh is bit 4 of value i. value = (code - 16) * d.
//
// Reference quantizer (ggml quantize_row_q5_0_ref): as q4_0 with 5 bits: d = m / -16 for the
// value m of largest magnitude, code = min(31, trunc(x * (1 / d) + 16.5)).
#include <cmath>
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 32;
constexpr int kBytes = 22;

}  // namespace

void dequantize_q5_0(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const uint32_t qh = static_cast<uint32_t>(block[2]) | (static_cast<uint32_t>(block[3]) << 8) |
                        (static_cast<uint32_t>(block[4]) << 16) |
                        (static_cast<uint32_t>(block[5]) << 24);
    const uint8_t* qs = block + 6;
    float* y = out + b * kValues;
    for (int j = 0; j < kValues / 2; ++j) {
      const int lo = static_cast<int>((qs[j] & 0xf) | (((qh >> j) & 1u) << 4));
      const int hi = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
      y[j] = static_cast<float>(lo - 16) * d;
      y[j + kValues / 2] = static_cast<float>(hi - 16) * d;
    }
  }
}

void quantize_q5_0(const float* values, uint8_t* blocks, int64_t nblocks) {
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
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(block, d);
    uint32_t qh = 0;
    for (int j = 0; j < kValues / 2; ++j) {
      const int lo = truncate_code(x[j] * id + 16.5f, 31);
      const int hi = truncate_code(x[j + kValues / 2] * id + 16.5f, 31);
      block[6 + j] = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) block[2 + k] = static_cast<uint8_t>(qh >> (8 * k));
  }
}

}  // namespace sy::kernels::quant
