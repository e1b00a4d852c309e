// Top-k per row: the K largest entries of each row of x, sorted by value descending.
//
// Legend: T rows (tokens), E columns (experts), K picks per row, 1 <= K <= E.
// Ties (equal values, including -0 == +0) are broken by the LOWER column index first, so the
// result is fully determined by x. NaN is an error: a NaN router logit means training has
// diverged, and silently ranking it anywhere would hide that; the error names the first row
// and column holding one.
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

// values:  f32 [T, K] written, row t holds the K largest x[t, :] in descending order
// indices: i32 [T, K] written, the column of each value in x
// x:       f32 [T, E]
// K is taken from the shape of values/indices.
void topk_forward(Tensor& values, Tensor& indices, const Tensor& x);

// Gradient of values with respect to x: d_x[t, indices[t, k]] += d_values[t, k].
// d_x:      f32 [T, E] accumulated
// d_values: f32 [T, K]
// indices:  i32 [T, K] as returned by topk_forward (distinct columns per row, each < E)
void topk_backward(Tensor& d_x, const Tensor& d_values, const Tensor& indices);

}  // namespace sy::kernels
