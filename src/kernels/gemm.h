// f32 matrix products through OpenBLAS, with their backward.
//
// Shapes: op(a) is [M, K], op(b) is [K, N], c is [M, N]; op(x) = x or x^T per the options.
// All tensors are contiguous row-major f32 of rank 2 (matvec: x and y rank 1).
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

struct GemmOptions {
  bool trans_a = false;     // use a^T (a stored as [K, M])
  bool trans_b = false;     // use b^T (b stored as [N, K])
  float alpha = 1.0f;       // scale of the product
  bool accumulate = false;  // c += alpha * op(a) op(b) instead of c = ...
};

// c: f32 [M, N] written (or accumulated); a, b as described above.
void gemm(Tensor& c, const Tensor& a, const Tensor& b, const GemmOptions& opts = {});

// Gradients of c = alpha * op(a) op(b), given d_c f32 [M, N]. d_a has a's stored shape and d_b
// b's; both are accumulated. Either may be an undefined Tensor to skip it.
void gemm_backward(Tensor& d_a, Tensor& d_b, const Tensor& d_c, const Tensor& a, const Tensor& b,
                   const GemmOptions& opts = {});

struct MatvecOptions {
  bool trans_a = false;     // y = a^T x (a stored as [K, M])
  bool accumulate = false;  // y += a x
};

// y: f32 [M]; a: f32 [M, K] (or [K, M] with trans_a); x: f32 [K].
void matvec(Tensor& y, const Tensor& a, const Tensor& x, const MatvecOptions& opts = {});

}  // namespace sy::kernels
