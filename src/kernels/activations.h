// Elementwise activations, forward and backward: SiLU, GELU (exact or tanh form) and SwiGLU.
//
// Legend: T tokens (every dimension but the last, flattened), F FFN width. All tensors are
// contiguous f32. Forward writes its output; backward ACCUMULATES (+=) into its gradient outputs,
// like every backward in switchyard (callers zero gradients once per step). Outputs must not
// alias inputs.
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

// out: f32, x's shape, written: out = x * sigmoid(x).
// x:   f32, any shape.
void silu_forward(Tensor& out, const Tensor& x);
// d_x: f32, x's shape, accumulated: d_x += d_out * sigmoid(x) * (1 + x * (1 - sigmoid(x))).
void silu_backward(Tensor& d_x, const Tensor& d_out, const Tensor& x);

// Which GELU: the exact x * Phi(x) (PyTorch approximate="none", the default) or the tanh
// approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate="tanh").
enum class GeluApproximation { kNone, kTanh };

struct GeluOptions {
  GeluApproximation approximate = GeluApproximation::kNone;
};

// out: f32, x's shape, written: out = gelu(x).
// x:   f32, any shape.
void gelu_forward(Tensor& out, const Tensor& x, const GeluOptions& opts = {});
// d_x: f32, x's shape, accumulated: d_x += d_out * gelu'(x). opts as given to forward.
void gelu_backward(Tensor& d_x, const Tensor& d_out, const Tensor& x, const GeluOptions& opts = {});

// SwiGLU with separate halves.
// out:  f32 [..., F] written: out = silu(gate) * up.
// gate: f32 [..., F]
// up:   f32 [..., F] (gate's shape)
void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up);
// d_gate: f32 [..., F] accumulated: d_gate += d_out * up * silu'(gate).
// d_up:   f32 [..., F] accumulated: d_up += d_out * silu(gate).
// d_out:  f32 [..., F]
void swiglu_backward(Tensor& d_gate, Tensor& d_up, const Tensor& d_out, const Tensor& gate,
                     const Tensor& up);

// SwiGLU on the fused layout one [D, 2F] projection produces: each row of gate_up holds the F
// gate values first, then the F up values (gate_up[t, :F] is gate, gate_up[t, F:] is up).
// out:     f32 [..., F] written: out = silu(gate) * up.
// gate_up: f32 [..., 2F]
void swiglu_fused_forward(Tensor& out, const Tensor& gate_up);
// d_gate_up: f32 [..., 2F] accumulated, same layout: gate gradients first, then up gradients.
// d_out:     f32 [..., F]
void swiglu_fused_backward(Tensor& d_gate_up, const Tensor& d_out, const Tensor& gate_up);

}  // namespace sy::kernels
