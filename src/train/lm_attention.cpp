#include "train/lm_attention.h"

#include <fmt/format.h>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "train/lm_tensors.h"

namespace sy::train {

LmAttention::LmAttention(const LmConfig& c, int64_t layer)
    : hq_(c.n_heads),
      hkv_(c.kv_heads()),
      hd_(c.head_size()),
      qk_norm_(c.qk_norm),
      eps_(static_cast<float>(c.norm_eps)) {
  rope_.theta = static_cast<float>(c.rope_theta);
  rope_.layout = kernels::RopeLayout::kNeox;
  const std::string p = fmt::format("model.layers.{}.self_attn.", layer);
  const int64_t d = c.d_model;
  q_proj_ = Param::trainable(p + "q_proj.weight", {hq_ * hd_, d});
  k_proj_ = Param::trainable(p + "k_proj.weight", {hkv_ * hd_, d});
  v_proj_ = Param::trainable(p + "v_proj.weight", {hkv_ * hd_, d});
  o_proj_ = Param::trainable(p + "o_proj.weight", {d, hq_ * hd_});
  if (qk_norm_) {
    q_norm_ = Param::trainable(p + "q_norm.weight", {hd_}, /*decay=*/false);
    k_norm_ = Param::trainable(p + "k_norm.weight", {hd_}, /*decay=*/false);
  }
}

std::vector<Param*> LmAttention::params() {
  std::vector<Param*> out = {&q_proj_, &k_proj_, &v_proj_, &o_proj_};
  if (qk_norm_) {
    out.push_back(&q_norm_);
    out.push_back(&k_norm_);
  }
  return out;
}

void LmAttention::init(Rng& rng, float stddev) {
  for (Param* p : {&q_proj_, &k_proj_, &v_proj_, &o_proj_}) fill_normal(p->value, rng, stddev);
  if (qk_norm_) {
    q_norm_.value.fill(1.0f);
    k_norm_.value.fill(1.0f);
  }
}

void LmAttention::forward(Tensor& y, const Tensor& x, const Tensor& positions, int64_t batch,
                          AttentionSaved& s) {
  const int64_t n = x.dim(0), t = n / batch;
  ensure_shape(s.q, {batch, t, hq_, hd_});
  ensure_shape(s.k, {batch, t, hkv_, hd_});
  ensure_shape(s.v, {batch, t, hkv_, hd_});
  ensure_shape(s.out, {n, hq_ * hd_});
  ensure_shape(s.lse, {batch, hq_, t});

  // One projection (+ QK-norm) + RoPE, for q or for k.
  auto project = [&](Tensor& dst, Tensor& raw, Tensor& inv, const Param& w, const Param& norm,
                     int64_t heads) {
    Tensor rot = dst.reshape({n, heads, hd_});
    if (qk_norm_) {
      ensure_shape(raw, {n, heads, hd_});
      ensure_shape(inv, {n * heads});
      Tensor raw2 = raw.reshape({n, heads * hd_});
      kernels::gemm(raw2, x, w.value, {.trans_b = true});
      kernels::rms_norm_forward(rot, inv, raw, norm.value, {.eps = eps_});
    } else {
      Tensor rot2 = dst.reshape({n, heads * hd_});
      kernels::gemm(rot2, x, w.value, {.trans_b = true});
    }
    kernels::rope_forward(rot, rot, positions, rope_);
  };
  project(s.q, s.q_raw, s.q_inv, q_proj_, q_norm_, hq_);
  project(s.k, s.k_raw, s.k_inv, k_proj_, k_norm_, hkv_);
  Tensor v2 = s.v.reshape({n, hkv_ * hd_});
  kernels::gemm(v2, x, v_proj_.value, {.trans_b = true});

  Tensor out4 = s.out.reshape({batch, t, hq_, hd_});
  kernels::attention_forward(out4, s.lse, s.q, s.k, s.v);
  kernels::gemm(y, s.out, o_proj_.value, {.trans_b = true, .accumulate = true});
}

void LmAttention::backward(Tensor& d_x, const Tensor& d_y, const Tensor& x, const Tensor& positions,
                           int64_t batch, const AttentionSaved& s, AttentionScratch& g) {
  const int64_t n = x.dim(0), t = n / batch;
  ensure_shape(g.d_out, {n, hq_ * hd_});
  ensure_shape(g.d_q, {batch, t, hq_, hd_});
  ensure_shape(g.d_k, {batch, t, hkv_, hd_});
  ensure_shape(g.d_v, {batch, t, hkv_, hd_});
  ensure_shape(g.d_q_raw, {n, hq_, hd_});
  ensure_shape(g.d_k_raw, {n, hkv_, hd_});

  // y += out Wo^T: d_out = d_y Wo, d_Wo += d_y^T out.
  kernels::gemm(g.d_out, d_y, o_proj_.value);
  kernels::gemm(o_proj_.grad, d_y, s.out, {.trans_a = true, .accumulate = true});

  g.d_q.fill(0.0f);
  g.d_k.fill(0.0f);
  g.d_v.fill(0.0f);
  const Tensor out4 = s.out.reshape({batch, t, hq_, hd_});
  const Tensor d_out4 = g.d_out.reshape({batch, t, hq_, hd_});
  kernels::attention_backward(g.d_q, g.d_k, g.d_v, d_out4, s.q, s.k, s.v, out4, s.lse);

  // Back through RoPE (and QK-norm) to the projection's output, then through the projection.
  auto unproject = [&](Tensor& d_rot4, Tensor& d_pre, const Tensor& raw, const Tensor& inv,
                       Param& w, Param& norm, int64_t heads) {
    Tensor d_rot = d_rot4.reshape({n, heads, hd_});
    d_pre.fill(0.0f);
    kernels::rope_backward(d_pre, d_rot, positions, rope_);
    Tensor d_proj = d_pre;
    if (qk_norm_) {  // d_rot is free again: it receives the gradient before the norm
      d_rot.fill(0.0f);
      kernels::rms_norm_backward(d_rot, norm.grad, d_pre, raw, norm.value, inv);
      d_proj = d_rot;
    }
    const Tensor d_proj2 = d_proj.reshape({n, heads * hd_});
    kernels::gemm(d_x, d_proj2, w.value, {.accumulate = true});
    kernels::gemm(w.grad, d_proj2, x, {.trans_a = true, .accumulate = true});
  };
  unproject(g.d_q, g.d_q_raw, s.q_raw, s.q_inv, q_proj_, q_norm_, hq_);
  unproject(g.d_k, g.d_k_raw, s.k_raw, s.k_inv, k_proj_, k_norm_, hkv_);
  const Tensor d_v2 = g.d_v.reshape({n, hkv_ * hd_});
  kernels::gemm(d_x, d_v2, v_proj_.value, {.accumulate = true});
  kernels::gemm(v_proj_.grad, d_v2, x, {.trans_a = true, .accumulate = true});
}

}  // namespace sy::train
