// Raw RMSNorm bodies: contiguous row-major f32, no checks (the entry in kernels/ checked).
// Parallel over rows with OpenMP; SIMD through Highway's run-time target choice.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

void rms_norm_forward(float* out, float* inv_rms, const float* x, const float* weight, int64_t rows,
                      int64_t cols, float eps);
void rms_norm_backward(float* d_x, float* d_weight, const float* d_out, const float* x,
                       const float* weight, const float* inv_rms, int64_t rows, int64_t cols);

}  // namespace sy::kernels::cpu
