// LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance (PyTorch's F.layer_norm). Bias is optional.
//
// Legend: T tokens (every dimension but the last, flattened), D width. All tensors contiguous
// f32. Backward ACCUMULATES (+=) into its gradient outputs, like every backward in switchyard;
// the weight and bias gradients are reduced deterministically (per-thread partials added in
// thread order: the same bits on every run with the same thread count).
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

struct LayerNormOptions {
  float eps = 1e-5f;  // PyTorch's default
};

// out:    f32 [..., D] written
// mean:   f32 [T]      written; saved for backward
// rstd:   f32 [T]      written; saved for backward: 1 / sqrt(var + eps) per row
// x:      f32 [..., D]
// weight: f32 [D]
// bias:   f32 [D], or an undefined Tensor() for LayerNorm without bias
void layer_norm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias,
                        const LayerNormOptions& opts = {});

// d_x:      f32 [..., D] accumulated
// d_weight: f32 [D]      accumulated, or an undefined Tensor to skip it (frozen weight)
// d_bias:   f32 [D]      accumulated, or an undefined Tensor to skip it (no bias, or frozen)
// d_out:    f32 [..., D]
// x, weight, mean, rstd as given to / written by forward (the bias is not needed).
void layer_norm_backward(Tensor& d_x, Tensor& d_weight, Tensor& d_bias, const Tensor& d_out,
                         const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd);

}  // namespace sy::kernels
