#include "model/linear.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/storage.h"
#include "kernels/gemm.h"
#include "kernels/quant/quant.h"

namespace sy::model {

namespace {
// Rows dequantized at a time on the fallback path: bounds the f32 scratch to a few MB.
constexpr int64_t kFallbackRows = 256;
}  // namespace

void apply_all(const Tensor& x, std::initializer_list<std::pair<const Linear*, Tensor*>> products) {
  bool quantized = true;
  for (const auto& [w, y] : products) quantized = quantized && w->quant() != nullptr;
  if (!quantized) {
    for (const auto& [w, y] : products) w->apply(*y, x);
    return;
  }
  std::vector<kernels::QuantMatmulJob> jobs;
  for (const auto& [w, y] : products) jobs.push_back({y, &x, w->quant(), false});
  kernels::quant_matmul_batch(jobs);
}

Linear Linear::dense(Tensor w) {
  w.expect_dtype(DType::F32, "Linear::dense: w");
  SY_CHECK(w.rank() == 2, "Linear::dense: w is {}, expected [N, K]", shape_str(w.shape()));
  Linear l;
  l.rows_ = w.dim(0);
  l.cols_ = w.dim(1);
  l.data_ = std::move(w);
  // For apply only (quant() stays null: batches and expert banks treat the matrix as dense).
  l.quant_ = kernels::quant_matrix_view(l.data_, GgmlType::kF32, l.rows_, l.cols_);
  return l;
}

Linear Linear::packed(GgmlType type, int64_t rows, int64_t cols, Tensor bytes, bool repack) {
  SY_CHECK(kernels::can_dequantize(type), "Linear::packed: type {} cannot be read",
           ggml_type_info(type).name);
  const auto expected = static_cast<size_t>(rows * ggml_row_bytes(type, cols));
  SY_CHECK(bytes.nbytes() == expected,
           "Linear::packed: {} bytes for a {} [{}, {}] matrix, "
           "expected {}",
           bytes.nbytes(), ggml_type_info(type).name, rows, cols, expected);
  Linear l;
  l.type_ = type;
  l.packed_ = true;
  l.rows_ = rows;
  l.cols_ = cols;
  if (repack && kernels::can_pack_p16(type, cols)) {
    // Heap bytes no one else holds are reordered where they are; a mapped file, or bytes shared
    // with another tensor, are copied.
    if (!bytes.storage()->is_mapped() && bytes.storage().use_count() == 1) {
      kernels::pack_p16_in_place(type, rows, cols, bytes.mutable_data<uint8_t>());
      l.data_ = std::move(bytes);
    } else {
      l.data_ = kernels::pack_p16(type, rows, cols, bytes.data<uint8_t>());
    }
    l.layout_ = kernels::QuantLayout::kP16;
  } else {
    l.data_ = std::move(bytes);
  }
  if (kernels::can_quant_matmul(type)) {
    l.quant_ = kernels::quant_matrix_view(l.data_, type, rows, cols, l.layout_);
    l.has_quant_ = true;
  }
  return l;
}

uint64_t Linear::nbytes() const { return data_.nbytes(); }

void Linear::apply(Tensor& y, const Tensor& x, bool accumulate) const {
  SY_CHECK(defined(), "Linear::apply: no weights");
  x.expect_shape({-1, cols_}, "Linear::apply: x");
  y.expect_shape({x.dim(0), rows_}, "Linear::apply: y");
  if (!packed_) {
    // quant_matmul's plain path: a few tokens (decode) dot the rows as they are read, more go
    // through OpenBLAS as kernels::gemm would.
    kernels::quant_matmul(y, x, quant_, accumulate);
    return;
  }
  if (has_quant_) {
    kernels::quant_matmul(y, x, quant_, accumulate);
    return;
  }
  // Fallback: dequantize a block of rows, GEMM it into the matching columns of y.
  const int64_t t = x.dim(0);
  const auto row_bytes = static_cast<size_t>(ggml_row_bytes(type_, cols_));
  Tensor w = Tensor::empty({std::min(kFallbackRows, rows_), cols_});
  Tensor part = Tensor::empty({t, w.dim(0)});
  for (int64_t r0 = 0; r0 < rows_; r0 += kFallbackRows) {
    const int64_t n = std::min(kFallbackRows, rows_ - r0);
    Tensor wv = n == w.dim(0) ? w : Tensor::empty({n, cols_});
    Tensor pv = n == part.dim(1) ? part : Tensor::empty({t, n});
    const uint8_t* src = data_.data<uint8_t>() + static_cast<size_t>(r0) * row_bytes;
    for (int64_t r = 0; r < n; ++r) {
      kernels::dequantize_row(type_, src + static_cast<size_t>(r) * row_bytes,
                              wv.mutable_data<float>() + r * cols_, cols_);
    }
    kernels::gemm(pv, x, wv, {.trans_b = true});
    float* py = y.mutable_data<float>();
    const float* pp = pv.data<float>();
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        float& dst = py[i * rows_ + r0 + j];
        dst = accumulate ? dst + pp[i * n + j] : pp[i * n + j];
      }
    }
  }
}

Tensor Linear::apply(const Tensor& x) const {
  Tensor y = Tensor::empty({x.dim(0), rows_});
  apply(y, x);
  return y;
}

void Linear::row(int64_t r, float* out) const {
  SY_CHECK(r >= 0 && r < rows_, "Linear::row: row {} of {}", r, rows_);
  if (!packed_) {
    std::memcpy(out, data_.data<float>() + r * cols_, static_cast<size_t>(cols_) * sizeof(float));
    return;
  }
  const auto row_bytes = static_cast<size_t>(ggml_row_bytes(type_, cols_));
  const uint8_t* src = data_.data<uint8_t>() + static_cast<size_t>(r) * row_bytes;
  if (layout_ == kernels::QuantLayout::kP16) {
    std::vector<uint8_t> blocks(row_bytes);
    kernels::unpack_row_p16(type_, cols_, src, blocks.data());
    kernels::dequantize_row(type_, blocks.data(), out, cols_);
    return;
  }
  kernels::dequantize_row(type_, src, out, cols_);
}

Linear Linear::slice_rows(int64_t begin, int64_t end) const {
  SY_CHECK(0 <= begin && begin <= end && end <= rows_, "Linear::slice_rows: [{}, {}) of {} rows",
           begin, end, rows_);
  Linear l = *this;
  l.rows_ = end - begin;
  if (packed_) {
    const int64_t rb = ggml_row_bytes(type_, cols_);
    l.data_ = data_.reshape({rows_, rb}).slice_rows(begin, end).reshape({(end - begin) * rb});
    if (has_quant_) {
      l.quant_ = kernels::quant_matrix_view(l.data_, type_, end - begin, cols_, layout_);
    }
  } else {
    l.data_ = data_.slice_rows(begin, end);
    l.quant_ = kernels::quant_matrix_view(l.data_, GgmlType::kF32, end - begin, cols_);
  }
  return l;
}

}  // namespace sy::model
