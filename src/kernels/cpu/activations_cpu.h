// Raw elementwise activation bodies: contiguous f32, no checks (the entry in kernels/ checked).
// Parallel over chunks with OpenMP; SIMD through Highway's run-time target choice. Backward
// bodies accumulate (+=) into their gradient outputs.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

// y = x * sigmoid(x);  d_x += d_y * sigmoid(x) * (1 + x * (1 - sigmoid(x))).
void silu_forward(float* y, const float* x, int64_t n);
void silu_backward(float* d_x, const float* d_y, const float* x, int64_t n);

// y = x * Phi(x) (exact, through a vector erfc; tanh_approx false) or
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (tanh_approx true); d_x += d_y * y'(x).
void gelu_forward(float* y, const float* x, int64_t n, bool tanh_approx);
void gelu_backward(float* d_x, const float* d_y, const float* x, int64_t n, bool tanh_approx);

// SwiGLU over `rows` rows of `cols` values: out = silu(gate) * up. out and d_out rows are `cols`
// apart; gate, up, d_gate and d_up rows are `in_stride` apart (cols when separate, 2 * cols for
// the fused [gate | up] layout).
void swiglu_forward(float* out, const float* gate, const float* up, int64_t rows, int64_t cols,
                    int64_t in_stride);
// One span of n values of the same: no OpenMP (even an inactive nested region costs a team's
// set-up), for callers already inside a parallel region.
void swiglu_forward_span(float* out, const float* gate, const float* up, int64_t n);
// d_gate += d_out * up * silu'(gate);  d_up += d_out * silu(gate).
void swiglu_backward(float* d_gate, float* d_up, const float* d_out, const float* gate,
                     const float* up, int64_t rows, int64_t cols, int64_t in_stride);

}  // namespace sy::kernels::cpu
