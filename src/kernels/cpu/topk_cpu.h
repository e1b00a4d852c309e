// Raw top-k bodies on contiguous row-major buffers; no checks (kernels/topk.cpp checked).
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

// Writes the k largest entries of each row (ties: lower index first) and their columns.
// Returns the flat index (row * cols + col) of the first NaN met, or -1 when there is none;
// rows with a NaN get unspecified output.
int64_t topk_forward(float* values, int32_t* indices, const float* x, int64_t rows, int64_t cols,
                     int64_t k);

// d_x[r, indices[r, j]] += d_values[r, j].
void topk_backward(float* d_x, const float* d_values, const int32_t* indices, int64_t rows,
                   int64_t cols, int64_t k);

}  // namespace sy::kernels::cpu
