// Raw softmax / log-softmax bodies: contiguous row-major f32, no checks (the entry in kernels/
// checked). Parallel over rows with OpenMP; SIMD through Highway's run-time target choice.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

// y = exp(x - max) / sum(exp(x - max)) per row.
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols);
// d_x += y * (d_y - sum(d_y * y)) per row.
void softmax_backward(float* d_x, const float* d_y, const float* y, int64_t rows, int64_t cols);

// y = x - logsumexp(x) per row.
void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t cols);
// d_x += d_y - exp(y) * sum(d_y) per row.
void log_softmax_backward(float* d_x, const float* d_y, const float* y, int64_t rows, int64_t cols);

// lse[r] = log(sum(exp(x[r, :]))), computed stably (max subtracted).
void logsumexp_rows(float* lse, const float* x, int64_t rows, int64_t cols);

}  // namespace sy::kernels::cpu
