// q5_K: super-blocks of 256 values in 176 bytes, { f16 d; f16 dmin; uint8 scales[12];
// uint8 qh[32]; uint8 qs[128] }. Scales, mins and the low 4 bits are laid out as in q4_K (value i
// in sub-block i / 32; chunk of 64 values = 32 bytes of qs, low nibbles first); bit 4 of value i
// is bit i / 32 of qh[i % 32]. value = (d * scale) * q - (dmin * min).
//
// Reference quantizer (ggml quantize_row_q5_K_ref): as q4_K with codes 0..31 and 16 candidate
// steps of fit_scale_min4 from iscale = 30.5 / range.
#include <cstdint>
#include <cstring>

#include "kernels/quant/formats.h"
#include "kernels/quant/k_search.h"

namespace sy::kernels::quant {

namespace {

constexpr int kValues = 256;
constexpr int kBytes = 176;

}  // namespace

void dequantize_q5_k(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * kBytes;
    const float d = load_f16(block);
    const float dmin = load_f16(block + 2);
    const uint8_t* packed = block + 4;
    const uint8_t* qh = block + 16;
    float* y = out + b * kValues;
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = block + 48 + 32 * chunk;
      const int bit1 = 2 * chunk, bit2 = 2 * chunk + 1;  // the sub-blocks' qh bit planes
      int scale = 0, min = 0;
      k_scale_min(bit1, packed, scale, min);
      const float d1 = d * static_cast<float>(scale), m1 = dmin * static_cast<float>(min);
      k_scale_min(bit2, packed, scale, min);
      const float d2 = d * static_cast<float>(scale), m2 = dmin * static_cast<float>(min);
      for (int l = 0; l < 32; ++l) {
        const int code = (q[l] & 0xf) | (((qh[l] >> bit1) & 1) << 4);
        y[l] = d1 * static_cast<float>(code) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int code = (q[l] >> 4) | (((qh[l] >> bit2) & 1) << 4);
        y[32 + l] = d2 * static_cast<float>(code) - m2;
      }
      y += 64;
    }
  }
}

void quantize_q5_k(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    uint8_t* block = blocks + b * kBytes;
    uint8_t L[kValues];
    quantize_k_scale_min_block(values + b * kValues, 31, -0.5f, 15, block, L);
    uint8_t* qh = block + 16;
    std::memset(qh, 0, 32);
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8_t* q = L + 64 * chunk;
      uint8_t* qs = block + 48 + 32 * chunk;
      const int bit1 = 2 * chunk, bit2 = 2 * chunk + 1;  // the sub-blocks' qh bit planes
      for (int l = 0; l < 32; ++l) {
        const int lo = q[l], hi = q[l + 32];
        qh[l] = static_cast<uint8_t>(qh[l] | ((lo >> 4) << bit1) | ((hi >> 4) << bit2));
        qs[l] = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
      }
    }
  }
}

}  // namespace sy::kernels::quant
