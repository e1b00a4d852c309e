// The per-format bodies behind the registry in quant.cpp (one .cpp per format) and the small
// helpers they share. Internal to kernels/quant: callers use quant.h.
//
// Every body works on whole blocks and trusts its arguments. Multi-byte fields are little-endian
// (as GGUF stores them) and read byte by byte, so blocks need no alignment.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace sy::kernels::quant {

// Little-endian f16 at p, widened exactly.
inline float load_f16(const uint8_t* p) {
  return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}
inline void store_f16(uint8_t* p, float value) {
  const uint16_t bits = f32_to_f16(value);
  p[0] = static_cast<uint8_t>(bits & 0xff);
  p[1] = static_cast<uint8_t>(bits >> 8);
}

// The 4/5-bit reference quantizers truncate `v` (= x/d + offset, >= 0 for finite inputs) and cap
// it at `hi`, as ggml's MIN(hi, (int8_t)v); written so NaN and out-of-range values give a code in
// [0, hi] instead of an undefined float-to-int conversion.
inline int truncate_code(float v, int hi) {
  if (!(v > 0.0f)) return 0;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// 6-bit scale and 6-bit min of sub-block j (0..7) of a q4_K / q5_K block, from the 12 packed
// bytes: for j < 4 the low 6 bits of bytes j (scale) and j + 4 (min); for j >= 4 the nibbles of
// byte j + 4 (scale low, min high) topped by the two spare high bits of bytes j - 4 (scale) and j
// (min).
inline void k_scale_min(int j, const uint8_t* packed, int& scale, int& min) {
  if (j < 4) {
    scale = packed[j] & 63;
    min = packed[j + 4] & 63;
  } else {
    scale = (packed[j + 4] & 0xf) | ((packed[j - 4] >> 6) << 4);
    min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// Signed 6-bit scale of sub-block j (0..15) of a q3_K block, from its 12 packed bytes: low 4
// bits the low nibble of byte j (j < 8) or the high nibble of byte j - 8, top 2 bits bits
// 2 (j / 4) .. + 1 of byte 8 + j % 4; stored + 32.
inline int q3_k_scale(const uint8_t* packed, int j) {
  const int low = j < 8 ? (packed[j] & 0xf) : (packed[j - 8] >> 4);
  const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// The 16 values a 4-bit code of iq4_nl and iq4_xs stands for (ggml's kvalues_iq4nl), before the
// block's scale.
inline constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// iq4_xs: the 6-bit scale of sub-block j (0..7) of 32 values, from scales_h (bytes 2..3, two bits
// per sub-block) and scales_l (bytes 4..7, a nibble per sub-block); the sub-block's scale is
// d * (ls - 32).
inline int iq4_xs_scale(const uint8_t* block, int j) {
  const int high = (block[2] | (block[3] << 8)) >> (2 * j) & 3;
  return ((block[4 + j / 2] >> (4 * (j % 2))) & 0xf) | (high << 4);
}

void dequantize_f32(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_f32(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_f16(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_f16(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_bf16(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_bf16(const float* values, uint8_t* blocks, int64_t nblocks);

void dequantize_q4_0(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q4_0(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q4_1(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q4_1(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q5_0(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q5_0(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q5_1(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q5_1(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q8_0(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q8_0(const float* values, uint8_t* blocks, int64_t nblocks);

void dequantize_q2_k(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q2_k(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q3_k(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q3_k(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q4_k(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q4_k(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q5_k(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q5_k(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_q6_k(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_q6_k(const float* values, uint8_t* blocks, int64_t nblocks);

void dequantize_mxfp4(const uint8_t* blocks, float* out, int64_t nblocks);
void dequantize_iq4_nl(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_iq4_nl(const float* values, uint8_t* blocks, int64_t nblocks);
void dequantize_iq4_xs(const uint8_t* blocks, float* out, int64_t nblocks);
void quantize_iq4_xs(const float* values, uint8_t* blocks, int64_t nblocks);

}  // namespace sy::kernels::quant
