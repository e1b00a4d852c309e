#include "core/tensor.h"

#include <cstring>

namespace sy {

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

namespace {
int64_t count(const Shape& shape, const char* what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    SY_CHECK(d >= 0, "{}: negative dimension in shape {}", what, shape_str(shape));
    n *= d;
  }
  return n;
}
}  // namespace

Tensor Tensor::owned(Shape shape, DType dtype, bool zero) {
  Tensor t;
  const int64_t n = count(shape, zero ? "Tensor::zeros" : "Tensor::empty");
  t.storage_ = Storage::allocate(static_cast<size_t>(n) * dtype_size(dtype), zero);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) { return owned(std::move(shape), dtype, true); }

Tensor Tensor::empty(Shape shape, DType dtype) { return owned(std::move(shape), dtype, false); }

Tensor Tensor::from_f32(Shape shape, const std::vector<float>& values) {
  Tensor t = zeros(std::move(shape), DType::F32);
  SY_CHECK(static_cast<int64_t>(values.size()) == t.numel(),
           "Tensor::from_f32: {} values for shape {} ({} elements)", values.size(),
           shape_str(t.shape_), t.numel());
  if (!values.empty()) std::memcpy(t.mutable_bytes(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, size_t byte_offset, Shape shape,
                       DType dtype) {
  SY_CHECK(storage != nullptr, "Tensor::view_of: null storage");
  const auto need = static_cast<size_t>(count(shape, "Tensor::view_of")) * dtype_size(dtype);
  SY_CHECK(byte_offset <= storage->size() && need <= storage->size() - byte_offset,
           "{}: view of {} {} at byte {} needs {} bytes, storage has {}", storage->origin(),
           dtype_name(dtype), shape_str(shape), byte_offset, need, storage->size());
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = byte_offset;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::dim(int d) const {
  const int r = rank();
  const int i = d < 0 ? d + r : d;
  SY_CHECK(i >= 0 && i < r, "dim {} out of range for shape {}", d, shape_str(shape_));
  return shape_[static_cast<size_t>(i)];
}

int64_t Tensor::numel() const {
  if (!storage_) return 0;
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

int64_t Tensor::rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape_.size(); ++i) n *= shape_[i];
  return n;
}

const std::byte* Tensor::bytes() const {
  SY_CHECK(storage_ != nullptr, "access to an undefined tensor");
  return storage_->data() + offset_;
}

std::byte* Tensor::mutable_bytes() {
  SY_CHECK(storage_ != nullptr, "access to an undefined tensor");
  return storage_->mutable_data() + offset_;
}

void Tensor::check_type(DType wanted) const {
  const bool ok = dtype_ == wanted || (wanted == DType::F16 && dtype_ == DType::BF16);
  SY_CHECK(ok, "tensor of dtype {} accessed as {}", dtype_name(dtype_), dtype_name(wanted));
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  SY_CHECK(rank() >= 1, "slice_rows on a rank-0 tensor");
  SY_CHECK(0 <= begin && begin <= end && end <= shape_[0],
           "slice_rows [{}, {}) out of range for shape {}", begin, end, shape_str(shape_));
  Tensor t = *this;
  const int64_t row_elems = shape_[0] == 0 ? 0 : numel() / shape_[0];
  t.offset_ += static_cast<size_t>(begin * row_elems) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  const int64_t n = count(shape, "Tensor::reshape");
  SY_CHECK(n == numel(), "reshape from {} to {}: element counts differ ({} vs {})",
           shape_str(shape_), shape_str(shape), numel(), n);
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = zeros(shape_, dtype_);
  if (nbytes() > 0) std::memcpy(t.mutable_bytes(), bytes(), nbytes());
  return t;
}

Tensor Tensor::to_f32() const {
  if (dtype_ == DType::F32) return clone();
  Tensor t = zeros(shape_, DType::F32);
  const auto n = static_cast<size_t>(numel());
  const auto* src = reinterpret_cast<const uint16_t*>(bytes());
  float* dst = t.mutable_data<float>();
  if (dtype_ == DType::F16) {
    convert_f16_to_f32(src, dst, n);
  } else if (dtype_ == DType::BF16) {
    convert_bf16_to_f32(src, dst, n);
  } else {
    fail("to_f32: cannot convert dtype {} to f32", dtype_name(dtype_));
  }
  return t;
}

Tensor Tensor::to(DType dtype) const {
  SY_CHECK(dtype_ == DType::F32, "Tensor::to: source must be f32, got {}", dtype_name(dtype_));
  if (dtype == DType::F32) return clone();
  Tensor t = zeros(shape_, dtype);
  const auto n = static_cast<size_t>(numel());
  auto* dst = reinterpret_cast<uint16_t*>(t.mutable_bytes());
  if (dtype == DType::F16) {
    convert_f32_to_f16(data<float>(), dst, n);
  } else if (dtype == DType::BF16) {
    convert_f32_to_bf16(data<float>(), dst, n);
  } else {
    fail("Tensor::to: cannot convert f32 to {}", dtype_name(dtype));
  }
  return t;
}

void Tensor::fill(float value) {
  float* p = mutable_data<float>();
  for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = value;
}

void Tensor::expect_shape(const Shape& expected, const char* what) const {
  bool ok = expected.size() == shape_.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) {
    ok = expected[i] < 0 || expected[i] == shape_[i];
  }
  if (!ok) {
    std::vector<std::string> parts;
    for (int64_t d : expected) parts.push_back(d < 0 ? "*" : std::to_string(d));
    fail("{}: shape {}, expected [{}]", what, shape_str(shape_), fmt::join(parts, ", "));
  }
}

void Tensor::expect_dtype(DType expected, const char* what) const {
  SY_CHECK(dtype_ == expected, "{}: dtype {}, expected {}", what, dtype_name(dtype_),
           dtype_name(expected));
}

}  // namespace sy
