// Raw LayerNorm bodies: contiguous row-major f32, no checks (the entry in kernels/ checked).
// Parallel over rows with OpenMP; SIMD through Highway's run-time target choice.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

// out = (x - mean) * rstd * weight + bias per row; bias may be null (no bias). Writes mean and
// rstd = 1 / sqrt(var + eps) (biased variance) per row.
void layer_norm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                        const float* bias, int64_t rows, int64_t cols, float eps);

// Accumulates d_x, d_weight and d_bias; d_weight and d_bias may be null (not wanted). The
// weight and bias gradients are summed per thread and the partials added in thread order.
void layer_norm_backward(float* d_x, float* d_weight, float* d_bias, const float* d_out,
                         const float* x, const float* weight, const float* mean, const float* rstd,
                         int64_t rows, int64_t cols);

}  // namespace sy::kernels::cpu
