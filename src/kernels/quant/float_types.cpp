// The plain float types, as one-value "blocks" so any GGUF tensor goes through one entry point:
// f32 (4 bytes), f16 (2 bytes, IEEE binary16) and bf16 (2 bytes, the top half of an f32), all
// little-endian. Widening is exact; narrowing rounds to nearest, ties to even (core/dtype.h).
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

void store_u16(uint8_t* p, uint16_t bits) {
  p[0] = static_cast<uint8_t>(bits & 0xff);
  p[1] = static_cast<uint8_t>(bits >> 8);
}

}  // namespace

void dequantize_f32(const uint8_t* blocks, float* out, int64_t nblocks) {
  std::memcpy(out, blocks, static_cast<size_t>(nblocks) * sizeof(float));
}

void quantize_f32(const float* values, uint8_t* blocks, int64_t nblocks) {
  std::memcpy(blocks, values, static_cast<size_t>(nblocks) * sizeof(float));
}

// 2-byte aligned values (as every checkpoint stores them) go through the vectorised conversions
// of core/dtype.h, which give the same bits as the scalar ones.
void dequantize_f16(const uint8_t* blocks, float* out, int64_t nblocks) {
  if (reinterpret_cast<uintptr_t>(blocks) % 2 == 0) {
    convert_f16_to_f32(reinterpret_cast<const uint16_t*>(blocks), out,
                       static_cast<size_t>(nblocks));
    return;
  }
  for (int64_t i = 0; i < nblocks; ++i) out[i] = f16_to_f32(load_u16(blocks + 2 * i));
}

void quantize_f16(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) store_u16(blocks + 2 * i, f32_to_f16(values[i]));
}

void dequantize_bf16(const uint8_t* blocks, float* out, int64_t nblocks) {
  if (reinterpret_cast<uintptr_t>(blocks) % 2 == 0) {
    convert_bf16_to_f32(reinterpret_cast<const uint16_t*>(blocks), out,
                        static_cast<size_t>(nblocks));
    return;
  }
  for (int64_t i = 0; i < nblocks; ++i) out[i] = bf16_to_f32(load_u16(blocks + 2 * i));
}

void quantize_bf16(const float* values, uint8_t* blocks, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i) store_u16(blocks + 2 * i, f32_to_bf16(values[i]));
}

}  // namespace sy::kernels::quant
