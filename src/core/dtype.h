// Element types and exact conversions between f32 and the 16-bit float storage types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sy {

// Storage element types. f32 is the compute type everywhere; f16 and bf16 are storage only.
// Block-quantized types (GGUF layouts) join this list with their block geometry.
enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8 };

// Bytes per element.
size_t dtype_size(DType dtype);
// Lower-case name as used in messages and file formats: "f32", "f16", "bf16", "i32", ...
std::string_view dtype_name(DType dtype);
// Inverse of dtype_name; throws sy::Error listing the valid names when unknown.
DType dtype_from_name(std::string_view name);

// IEEE binary16 <-> binary32. f32 -> f16 rounds to nearest, ties to even; overflow gives inf,
// NaN stays NaN (quiet), subnormals are exact. f16 -> f32 is exact.
uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t bits);

// bfloat16 <-> binary32. f32 -> bf16 rounds to nearest, ties to even; NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep sign, force a quiet payload bit
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}
inline float bf16_to_f32(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

// Bulk conversions (n elements); used at load and store boundaries.
void convert_f16_to_f32(const uint16_t* src, float* dst, size_t n);
void convert_f32_to_f16(const float* src, uint16_t* dst, size_t n);
void convert_bf16_to_f32(const uint16_t* src, float* dst, size_t n);
void convert_f32_to_bf16(const float* src, uint16_t* dst, size_t n);

}  // namespace sy
