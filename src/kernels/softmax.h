// Softmax and log-softmax over the last dimension, forward and backward.
//
// Shapes: R rows (every dimension but the last, flattened), C columns; all tensors contiguous
// f32 and of the same shape [..., C]. Both are numerically stable (the row max is subtracted
// before exp). Rows may hold -inf (masked entries, probability 0); a row of only -inf, or one
// holding NaN or +inf, comes out all NaN. Backward kernels ACCUMULATE into their gradient
// outputs (+=), like every backward in switchyard; callers zero gradients once per step.
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

// out: f32 [..., C] written: out = exp(x - max) / sum(exp(x - max)) per row.
// x:   f32 [..., C]
void softmax_forward(Tensor& out, const Tensor& x);

// d_x:   f32 [..., C] accumulated: d_x += out * (d_out - sum(d_out * out)) per row.
// d_out: f32 [..., C]
// out:   f32 [..., C] as written by softmax_forward (backward needs only the output).
void softmax_backward(Tensor& d_x, const Tensor& d_out, const Tensor& out);

// out: f32 [..., C] written: out = x - log(sum(exp(x))) per row.
// x:   f32 [..., C]
void log_softmax_forward(Tensor& out, const Tensor& x);

// d_x:   f32 [..., C] accumulated: d_x += d_out - exp(out) * sum(d_out) per row.
// d_out: f32 [..., C]
// out:   f32 [..., C] as written by log_softmax_forward.
void log_softmax_backward(Tensor& d_x, const Tensor& d_out, const Tensor& out);

}  // namespace sy::kernels
