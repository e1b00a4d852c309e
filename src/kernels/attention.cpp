#include "kernels/attention.h"

#include <cmath>
#include <string>
#include <utility>

#include "kernels/cpu/attention_cpu.h"

namespace sy::kernels {

namespace {

// Validates q, k, v and opts; returns the shape with B made explicit and the scale resolved.
cpu::AttentionShape check_inputs(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const AttentionOptions& opts, const char* op) {
  const std::string prefix = std::string(op) + ": ";
  for (const auto& [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
    const std::string what = prefix + name;
    t->expect_dtype(DType::F32, what.c_str());
    SY_CHECK(t->rank() == 3 || t->rank() == 4, "{}: shape {}, expected [B, T, H, Dh] or [T, H, Dh]",
             what, shape_str(t->shape()));
  }
  const bool batched = q.rank() == 4;
  const int64_t batch = batched ? q.dim(0) : 1;
  const int64_t tokens = q.dim(-3), q_heads = q.dim(-2), head_dim = q.dim(-1);
  const int64_t kv_heads = k.dim(-2);
  const Shape kv_shape =
      batched ? Shape{batch, tokens, kv_heads, head_dim} : Shape{tokens, kv_heads, head_dim};
  k.expect_shape(kv_shape, (prefix + "k").c_str());
  v.expect_shape(kv_shape, (prefix + "v").c_str());
  SY_CHECK(kv_heads > 0 && q_heads % kv_heads == 0,
           "{}: q has {} heads and k/v {}, expected a multiple (grouped-query attention)", op,
           q_heads, kv_heads);
  SY_CHECK(std::isfinite(opts.scale) && opts.scale >= 0.0f,
           "{}: scale is {}, expected > 0 (or 0 for 1/sqrt(Dh))", op, opts.scale);
  const float scale = opts.scale != 0.0f ? opts.scale
                      : head_dim > 0     ? 1.0f / std::sqrt(static_cast<float>(head_dim))
                                         : 1.0f;
  return {batch, tokens, q_heads, kv_heads, head_dim, scale, opts.causal};
}

Shape lse_shape(const Tensor& q, const cpu::AttentionShape& s) {
  return q.rank() == 4 ? Shape{s.batch, s.q_heads, s.tokens} : Shape{s.q_heads, s.tokens};
}

}  // namespace

void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionOptions& opts) {
  const cpu::AttentionShape s = check_inputs(q, k, v, opts, "attention_forward");
  out.expect_dtype(DType::F32, "attention_forward: out");
  out.expect_shape(q.shape(), "attention_forward: out");
  lse.expect_dtype(DType::F32, "attention_forward: lse");
  lse.expect_shape(lse_shape(q, s), "attention_forward: lse");
  cpu::attention_forward(out.mutable_data<float>(), lse.mutable_data<float>(), q.data<float>(),
                         k.data<float>(), v.data<float>(), s);
}

void attention_backward(Tensor& d_q, Tensor& d_k, Tensor& d_v, const Tensor& d_out, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionOptions& opts) {
  const cpu::AttentionShape s = check_inputs(q, k, v, opts, "attention_backward");
  const struct {
    const Tensor* t;
    const char* what;
    const Shape& shape;
  } expected[] = {{&d_q, "attention_backward: d_q", q.shape()},
                  {&d_k, "attention_backward: d_k", k.shape()},
                  {&d_v, "attention_backward: d_v", v.shape()},
                  {&d_out, "attention_backward: d_out", q.shape()},
                  {&out, "attention_backward: out", q.shape()}};
  for (const auto& e : expected) {
    e.t->expect_dtype(DType::F32, e.what);
    e.t->expect_shape(e.shape, e.what);
  }
  lse.expect_dtype(DType::F32, "attention_backward: lse");
  lse.expect_shape(lse_shape(q, s), "attention_backward: lse");
  cpu::attention_backward(d_q.mutable_data<float>(), d_k.mutable_data<float>(),
                          d_v.mutable_data<float>(), d_out.data<float>(), q.data<float>(),
                          k.data<float>(), v.data<float>(), out.data<float>(), lse.data<float>(),
                          s);
}

}  // namespace sy::kernels
