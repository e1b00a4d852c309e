// iq4_nl and iq4_xs: 4-bit codes that index a fixed table of 16 non-uniform values
// (kIq4Values), times a scale.
//
// iq4_nl: blocks of 32 values in 18 bytes, { f16 d; uint8 qs[16] }, laid out as q4_0: byte j
// holds value j in its low nibble and value j + 16 in its high nibble; value = d * table[code].
// iq4_xs: super-blocks of 256 values in 136 bytes, { f16 d; uint16 scales_h; uint8 scales_l[4];
// uint8 qs[128] }: 8 sub-blocks of 32, sub-block j's codes in qs[16 j .. 16 j + 15] laid out as an
// iq4_nl block's, its scale dl = d * (ls_j - 32) with the 6-bit ls_j of iq4_xs_scale; value =
// dl * table[code] (f32: d * (ls - 32) rounded, then times the table value).
//
// No reference quantizer yet: files of these types are read, not written.
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

// The 32 values of one block of codes at qs (q4_0's nibble order) with scale d.
void decode_32(const uint8_t* qs, float d, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kIq4Values[qs[j] & 0xf]);
    y[j + 16] = d * static_cast<float>(kIq4Values[qs[j] >> 4]);
  }
}

}  // namespace

void dequantize_iq4_nl(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * 18;
    decode_32(block + 2, load_f16(block), out + b * 32);
  }
}

void dequantize_iq4_xs(const uint8_t* blocks, float* out, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * 136;
    const float d = load_f16(block);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(iq4_xs_scale(block, j) - 32);
      decode_32(block + 8 + 16 * j, dl, out + b * 256 + 32 * j);
    }
  }
}

}  // namespace sy::kernels::quant
