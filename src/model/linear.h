// A weight matrix W [N rows, K cols] applied as y = x W^T, stored either as f32 (owned, or a
// memory-mapped f32 tensor of the file) or packed in a ggml block type exactly as the GGUF file
// holds it (no copy: the bytes are a view of the mapped file), or, where the quantized kernels
// run faster on it (kernels::p16_pays), reordered at load time into a copy of the same size
// (kernels::QuantLayout::kP16). Packed products go through the
// quantized kernels (kernels/quant/qmatmul.h) where the type has one, and through row-block
// dequantization into an f32 GEMM otherwise.
//
// Legend: T tokens, K input width, N output width.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "core/ggml_types.h"
#include "core/tensor.h"
#include "kernels/qmatmul.h"

namespace sy::model {

class Linear;

// ys[i] = x ws[i]^T for every i, in one parallel call when every matrix is packed for the
// quantized kernels (x is then quantized once), else one product after the other.
// ys[i]: f32 [T, ws[i].rows()] written.
void apply_all(const Tensor& x, std::initializer_list<std::pair<const Linear*, Tensor*>> products);

class Linear {
 public:
  Linear() = default;
  // w: f32 [N, K].
  static Linear dense(Tensor w);
  // bytes: u8 tensor of N * ggml_row_bytes(type, K) bytes (rows of blocks). With repack (by
  // default where kernels::p16_pays()), rows that have a P16 form are reordered into a new
  // tensor (in place when no other tensor or file holds them).
  static Linear packed(GgmlType type, int64_t rows, int64_t cols, Tensor bytes,
                       bool repack = kernels::p16_pays());

  bool defined() const { return rows_ > 0; }
  bool is_packed() const { return packed_; }
  GgmlType type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  uint64_t nbytes() const;                      // bytes of weights one product reads
  const Tensor& data() const { return data_; }  // f32 [N, K] or u8 blocks in layout()
  kernels::QuantLayout layout() const { return layout_; }

  // y: f32 [T, N] written (or added to with accumulate); x: f32 [T, K].
  void apply(Tensor& y, const Tensor& x, bool accumulate = false) const;
  Tensor apply(const Tensor& x) const;
  // Row r as f32 [K] into out (embedding lookups).
  void row(int64_t r, float* out) const;
  // Rows [begin, end) as a Linear sharing the storage (one expert of a stacked tensor).
  Linear slice_rows(int64_t begin, int64_t end) const;
  // The packed matrix for the quantized kernels; null when the product takes another path
  // (f32 weights, or a block type without a quantized kernel).
  const kernels::QuantMatrix* quant() const { return has_quant_ ? &quant_ : nullptr; }

 private:
  GgmlType type_ = GgmlType::kF32;
  bool packed_ = false;
  int64_t rows_ = 0, cols_ = 0;
  Tensor data_;
  kernels::QuantMatrix quant_;
  bool has_quant_ = false;
  kernels::QuantLayout layout_ = kernels::QuantLayout::kGgml;
};

}  // namespace sy::model
