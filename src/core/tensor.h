// Tensor: a shape, a dtype and a view into contiguous, row-major storage. No math lives here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace sy {

using Shape = std::vector<int64_t>;

// "[4, 8]" for messages.
std::string shape_str(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;  // an empty tensor: no storage, rank 0, numel 0

  // New owned storage, zero-filled.
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  // New owned storage, not initialised, for outputs that are written in full (see
  // Storage::allocate: NaN-filled in sanitizer builds).
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  // Copies `values` into a new f32 tensor of `shape` (sizes must agree).
  static Tensor from_f32(Shape shape, const std::vector<float>& values);
  // A view of `storage` starting at `byte_offset`; throws when the storage is too small.
  static Tensor view_of(std::shared_ptr<Storage> storage, size_t byte_offset, Shape shape,
                        DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // Size of dimension `dim`; negative counts from the end.
  int64_t dim(int dim) const;
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  // Product of all dimensions but the last (1 for rank 0 and 1): the "row" count kernels use.
  int64_t rows() const;
  int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }

  // Raw bytes. mutable_bytes() throws for read-only (memory-mapped) storage.
  const std::byte* bytes() const;
  std::byte* mutable_bytes();

  // Typed element pointers; throw sy::Error when T does not match dtype().
  template <typename T>
  const T* data() const {
    check_type(type_tag<T>());
    return reinterpret_cast<const T*>(bytes());
  }
  template <typename T>
  T* mutable_data() {
    check_type(type_tag<T>());
    return reinterpret_cast<T*>(mutable_bytes());
  }

  // Rows [begin, end) of the outermost dimension, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Same storage seen with a new shape of equal element count.
  Tensor reshape(Shape shape) const;
  // Deep copy into new owned storage.
  Tensor clone() const;
  // Copy converted to f32 (f16/bf16/f32 sources).
  Tensor to_f32() const;
  // Copy converted from f32 to `dtype` (f32, f16 or bf16).
  Tensor to(DType dtype) const;
  void fill(float value);  // f32 only

  // Shape check for entry points: throws "<what>: shape [..], expected [..]".
  // A -1 in `expected` matches any size.
  void expect_shape(const Shape& expected, const char* what) const;
  void expect_dtype(DType expected, const char* what) const;

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t byte_offset() const { return offset_; }

 private:
  static Tensor owned(Shape shape, DType dtype, bool zero);
  template <typename T>
  static constexpr DType type_tag();
  void check_type(DType wanted) const;

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
};

template <>
constexpr DType Tensor::type_tag<float>() {
  return DType::F32;
}
template <>
constexpr DType Tensor::type_tag<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType Tensor::type_tag<int64_t>() {
  return DType::I64;
}
template <>
constexpr DType Tensor::type_tag<uint8_t>() {
  return DType::U8;
}
// uint16_t covers both 16-bit float types: check_type accepts F16 and BF16 for it.
template <>
constexpr DType Tensor::type_tag<uint16_t>() {
  return DType::F16;
}

}  // namespace sy
