// RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight, over the last dimension.
//
// Shapes: R rows (every dimension but the last, flattened), D width.
// Backward kernels in switchyard ACCUMULATE into their gradient outputs (+=), so residual
// branches and shared weights need no extra adds; callers zero gradients once per step.
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

struct RmsNormOptions {
  float eps = 1e-6f;
};

// out:     f32 [..., D]  written
// inv_rms: f32 [R]       written; saved for backward (1 / sqrt(mean(x^2) + eps) per row)
// x:       f32 [..., D]
// weight:  f32 [D]
void rms_norm_forward(Tensor& out, Tensor& inv_rms, const Tensor& x, const Tensor& weight,
                      const RmsNormOptions& opts = {});

// d_x:      f32 [..., D]  accumulated
// d_weight: f32 [D]       accumulated
// d_out:    f32 [..., D]
// x, weight, inv_rms as given to / returned by forward.
void rms_norm_backward(Tensor& d_x, Tensor& d_weight, const Tensor& d_out, const Tensor& x,
                       const Tensor& weight, const Tensor& inv_rms);

}  // namespace sy::kernels
