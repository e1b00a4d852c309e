// Numerically stable softmax over the last dimension, and its backward.
// Shapes: R rows (every dimension but the last, flattened), C columns.
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

// out: f32 [..., C] written; x: f32 [..., C]. out = exp(x - max) / sum(exp(x - max)) per row.
// Rows of -inf give NaN (no valid distribution), like PyTorch.
void softmax_forward(Tensor& out, const Tensor& x);

// d_x: f32 [..., C] accumulated: d_x += out * (d_out - sum(d_out * out)) per row.
void softmax_backward(Tensor& d_x, const Tensor& d_out, const Tensor& out);

}  // namespace sy::kernels
