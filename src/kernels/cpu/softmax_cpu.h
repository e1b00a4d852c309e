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

// One-row helpers for ops built on softmax (cross-entropy); they run on the calling thread.
// log(sum(exp(x))) over n values, computed stably (max subtracted); NaN as softmax_forward.
// When prefetch is not null, the n floats there (the caller's next row) are fetched meanwhile.
float row_logsumexp(const float* x, int64_t n, const float* prefetch = nullptr);
// d += scale * exp(x - lse) over n values: a softmax row, scaled, added.
void row_add_softmax(float* d, const float* x, float lse, float scale, int64_t n);

}  // namespace sy::kernels::cpu
