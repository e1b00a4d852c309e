#include "kernels/activations.h"

#include <string>

#include "kernels/cpu/activations_cpu.h"

namespace sy::kernels {

namespace {
void check_f32(const Tensor& t, const std::string& what) {
  t.expect_dtype(DType::F32, what.c_str());
}

void check_same(const Tensor& t, const Tensor& like, const std::string& what) {
  check_f32(t, what);
  t.expect_shape(like.shape(), what.c_str());
}

// [..., F] from a fused [..., 2F]; throws when the last dimension is odd or missing.
Shape half_shape(const Tensor& gate_up, const char* op) {
  check_f32(gate_up, std::string(op) + ": gate_up");
  SY_CHECK(gate_up.rank() >= 1, "{}: gate_up: rank 0, expected [..., 2F]", op);
  SY_CHECK(gate_up.cols() % 2 == 0,
           "{}: gate_up: shape {}, expected [..., 2F] (last dimension even)", op,
           shape_str(gate_up.shape()));
  Shape half = gate_up.shape();
  half.back() /= 2;
  return half;
}
}  // namespace

void silu_forward(Tensor& out, const Tensor& x) {
  check_f32(x, "silu_forward: x");
  check_same(out, x, "silu_forward: out");
  cpu::silu_forward(out.mutable_data<float>(), x.data<float>(), x.numel());
}

void silu_backward(Tensor& d_x, const Tensor& d_out, const Tensor& x) {
  check_f32(x, "silu_backward: x");
  check_same(d_out, x, "silu_backward: d_out");
  check_same(d_x, x, "silu_backward: d_x");
  cpu::silu_backward(d_x.mutable_data<float>(), d_out.data<float>(), x.data<float>(), x.numel());
}

void gelu_forward(Tensor& out, const Tensor& x, const GeluOptions& opts) {
  check_f32(x, "gelu_forward: x");
  check_same(out, x, "gelu_forward: out");
  cpu::gelu_forward(out.mutable_data<float>(), x.data<float>(), x.numel(),
                    opts.approximate == GeluApproximation::kTanh);
}

void gelu_backward(Tensor& d_x, const Tensor& d_out, const Tensor& x, const GeluOptions& opts) {
  check_f32(x, "gelu_backward: x");
  check_same(d_out, x, "gelu_backward: d_out");
  check_same(d_x, x, "gelu_backward: d_x");
  cpu::gelu_backward(d_x.mutable_data<float>(), d_out.data<float>(), x.data<float>(), x.numel(),
                     opts.approximate == GeluApproximation::kTanh);
}

void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) {
  check_f32(gate, "swiglu_forward: gate");
  check_same(up, gate, "swiglu_forward: up");
  check_same(out, gate, "swiglu_forward: out");
  // Both halves are contiguous and alike: one flat span.
  const int64_t n = gate.numel();
  cpu::swiglu_forward(out.mutable_data<float>(), gate.data<float>(), up.data<float>(), 1, n, n);
}

void swiglu_backward(Tensor& d_gate, Tensor& d_up, const Tensor& d_out, const Tensor& gate,
                     const Tensor& up) {
  check_f32(gate, "swiglu_backward: gate");
  check_same(up, gate, "swiglu_backward: up");
  check_same(d_out, gate, "swiglu_backward: d_out");
  check_same(d_gate, gate, "swiglu_backward: d_gate");
  check_same(d_up, gate, "swiglu_backward: d_up");
  const int64_t n = gate.numel();
  cpu::swiglu_backward(d_gate.mutable_data<float>(), d_up.mutable_data<float>(),
                       d_out.data<float>(), gate.data<float>(), up.data<float>(), 1, n, n);
}

void swiglu_fused_forward(Tensor& out, const Tensor& gate_up) {
  const Shape half = half_shape(gate_up, "swiglu_fused_forward");
  check_f32(out, "swiglu_fused_forward: out");
  out.expect_shape(half, "swiglu_fused_forward: out");
  const int64_t f = half.back();
  const float* gu = gate_up.data<float>();
  cpu::swiglu_forward(out.mutable_data<float>(), gu, gu + f, gate_up.rows(), f, 2 * f);
}

void swiglu_fused_backward(Tensor& d_gate_up, const Tensor& d_out, const Tensor& gate_up) {
  const Shape half = half_shape(gate_up, "swiglu_fused_backward");
  check_f32(d_out, "swiglu_fused_backward: d_out");
  d_out.expect_shape(half, "swiglu_fused_backward: d_out");
  check_same(d_gate_up, gate_up, "swiglu_fused_backward: d_gate_up");
  const int64_t f = half.back();
  const float* gu = gate_up.data<float>();
  float* dgu = d_gate_up.mutable_data<float>();
  cpu::swiglu_backward(dgu, dgu + f, d_out.data<float>(), gu, gu + f, gate_up.rows(), f, 2 * f);
}

}  // namespace sy::kernels
