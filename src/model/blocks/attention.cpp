#include "model/blocks/attention.h"

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cached_attention.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"

namespace sy::model {

void add_bias(Tensor& y, const Tensor& bias) {
  const int64_t rows = y.dim(0), cols = y.dim(1);
  float* py = y.mutable_data<float>();
  const float* pb = bias.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) py[r * cols + j] += pb[j];
  }
}

Tensor linear(const Tensor& x, const Linear& w, const Tensor& bias) {
  Tensor y = w.apply(x);
  if (bias.defined()) add_bias(y, bias);
  return y;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  Tensor y = Tensor::empty(x.shape());
  Tensor inv = Tensor::empty({x.numel() / x.dim(x.rank() - 1)});
  kernels::rms_norm_forward(y, inv, x, weight, {.eps = eps});
  return y;
}

namespace {

void clamp(Tensor& t, float limit) {
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::clamp(p[i], -limit, limit);
}

// Writes the rows of `src` (f32 [T, Hkv, D]) at positions [at, at + T) of the head-major cache
// tensor `dst` (f32 or f16 [Hkv, C, D]).
void write_rows(Tensor& dst, int64_t at, const Tensor& src) {
  const int64_t t = src.dim(0), heads = dst.dim(0), cap = dst.dim(1), d = dst.dim(2);
  SY_CHECK(at + t <= cap, "KV cache full: {} positions, {} more needed", cap, at + t - cap);
  SY_DCHECK(src.numel() == t * heads * d);
  const float* s = src.data<float>();
  uint16_t* f16 = dst.dtype() == DType::F16 ? dst.mutable_data<uint16_t>() : nullptr;
  float* f32 = f16 == nullptr ? dst.mutable_data<float>() : nullptr;
  for (int64_t g = 0; g < heads; ++g) {
    for (int64_t i = 0; i < t; ++i) {
      const float* row = s + (i * heads + g) * d;
      const int64_t to = (g * cap + at + i) * d;
      if (f16 != nullptr) {
        convert_f32_to_f16(row, f16 + to, static_cast<size_t>(d));
      } else {
        std::memcpy(f32 + to, row, static_cast<size_t>(d) * sizeof(float));
      }
    }
  }
}

// Fetches for writing the lines of positions [at, at + t) of every kv head of a head-major cache
// tensor (see write_rows), for a decode step (at most kernels::kCachedAttentionDecodeTokens
// tokens, which read the cache head by head): they sit a whole head's capacity apart and
// are cold, so written straight away each costs a miss to memory on the main thread, while the
// other threads wait (OLMoE q4_0 decode: write_rows took 0.66% of the main thread's time, against
// 0.1% for the old position-major rows); fetched before the QKV products, they are in cache when
// written.
void prefetch_rows(Tensor& dst, int64_t at, int64_t t) {
  if (t > kernels::kCachedAttentionDecodeTokens) return;
  const int64_t heads = dst.dim(0), cap = dst.dim(1);
  const int64_t row = dst.dim(2) * static_cast<int64_t>(dtype_size(dst.dtype()));
  const auto* base = reinterpret_cast<const char*>(dst.bytes());
  for (int64_t g = 0; g < heads; ++g) {
    const char* p = base + (g * cap + at) * row;
    for (int64_t b = 0; b < t * row; b += 64) __builtin_prefetch(p + b, 1, 3);
  }
}

// kv_b [H * (nope + v), rkv] rebuilt from llama.cpp's split form: k_b [H, rkv, nope] (each
// head's key block transposed) and v_b [H, v, rkv].
Tensor join_kv_b(const Tensor& k_b, const Tensor& v_b, const MlaConfig& m, int64_t heads) {
  const int64_t rkv = m.kv_lora_rank, nope = m.qk_nope_dim, vd = m.v_head_dim;
  Tensor out = Tensor::empty({heads * (nope + vd), rkv});
  float* po = out.mutable_data<float>();
  const float* pk = k_b.data<float>();
  const float* pv = v_b.data<float>();
  for (int64_t h = 0; h < heads; ++h) {
    float* block = po + h * (nope + vd) * rkv;
    for (int64_t i = 0; i < nope; ++i) {
      for (int64_t r = 0; r < rkv; ++r) block[i * rkv + r] = pk[(h * rkv + r) * nope + i];
    }
    std::memcpy(block + nope * rkv, pv + h * vd * rkv,
                static_cast<size_t>(vd * rkv) * sizeof(float));
  }
  return out;
}

}  // namespace

Attention::Attention(const ModelConfig& c, const LayerWeights& w) : c_(c) {
  const int64_t d = c.hidden_size, hq = c.num_heads, hkv = c.num_kv_heads;
  rope_.theta = c.rope_theta;
  rope_.layout = c.rope_layout;
  rope_.rotary_dim = c.rope_dim;
  rope_.attention_factor = c.rope_attention_factor;
  // The frequencies once here, not on every call (a decode step rotates q and k in each layer).
  if (c.yarn) {
    rope_.inv_freq = kernels::rope_yarn_inv_freq(c.rope_dim, c.rope_theta, *c.yarn);
  } else if (c.rope_dim > 0) {
    rope_.inv_freq = kernels::rope_inv_freq(c.rope_dim, c.rope_theta);
  }
  o_ = w.linear("self_attn.o_proj.weight", "attn_output.weight", {d, hq * c.value_dim()});
  if (c.mla) {
    const MlaConfig& m = c.mla_dims;
    const int64_t qk = m.qk_nope_dim + m.qk_rope_dim;
    if (m.q_lora_rank > 0) {
      q_a_ = w.linear("self_attn.q_a_proj.weight", "attn_q_a.weight", {m.q_lora_rank, d});
      q_a_norm_ = w.read("self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight", {m.q_lora_rank});
      q_b_ = w.linear("self_attn.q_b_proj.weight", "attn_q_b.weight", {hq * qk, m.q_lora_rank});
    } else {
      q_ = w.linear("self_attn.q_proj.weight", "attn_q.weight", {hq * qk, d});
    }
    kv_a_ = w.linear("self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight",
                     {m.kv_lora_rank + m.qk_rope_dim, d});
    kv_a_norm_ =
        w.read("self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight", {m.kv_lora_rank});
    if (!c.gguf || w.has("", "attn_kv_b.weight")) {
      kv_b_ = w.linear("self_attn.kv_b_proj.weight", "attn_kv_b.weight",
                       {hq * (m.qk_nope_dim + m.v_head_dim), m.kv_lora_rank});
    } else {
      kv_b_ = Linear::dense(
          join_kv_b(w.read("", "attn_k_b.weight", {hq, m.kv_lora_rank, m.qk_nope_dim}),
                    w.read("", "attn_v_b.weight", {hq, m.v_head_dim, m.kv_lora_rank}), m, hq));
    }
    return;
  }
  const int64_t dh = c.head_dim;
  q_ = w.linear("self_attn.q_proj.weight", "attn_q.weight", {hq * dh, d});
  k_ = w.linear("self_attn.k_proj.weight", "attn_k.weight", {hkv * dh, d});
  v_ = w.linear("self_attn.v_proj.weight", "attn_v.weight", {hkv * dh, d});
  if (c.qkv_bias) {
    q_bias_ = w.read("self_attn.q_proj.bias", "attn_q.bias", {hq * dh});
    k_bias_ = w.read("self_attn.k_proj.bias", "attn_k.bias", {hkv * dh});
    v_bias_ = w.read("self_attn.v_proj.bias", "attn_v.bias", {hkv * dh});
  }
  if (c.qk_norm != QkNorm::kNone) {
    const bool full = c.qk_norm == QkNorm::kFull;
    q_norm_ = w.read("self_attn.q_norm.weight", "attn_q_norm.weight", {full ? hq * dh : dh});
    k_norm_ = w.read("self_attn.k_norm.weight", "attn_k_norm.weight", {full ? hkv * dh : dh});
  }
}

void Attention::rope(Tensor& x, int64_t past) const {
  kernels::RopeOptions opts = rope_;
  opts.position_offset = past;
  kernels::rope_forward(x, x, Tensor(), opts);
}

void Attention::project_gqa(const Tensor& x, int64_t past, Tensor& q, Tensor& k, Tensor& v) const {
  const int64_t t = x.dim(0), dh = c_.head_dim;
  q = Tensor::empty({t, q_.rows()});
  k = Tensor::empty({t, k_.rows()});
  v = Tensor::empty({t, v_.rows()});
  apply_all(x, {{&q_, &q}, {&k_, &k}, {&v_, &v}});
  if (c_.qkv_bias) {
    add_bias(q, q_bias_);
    add_bias(k, k_bias_);
    add_bias(v, v_bias_);
  }
  if (c_.qk_norm == QkNorm::kFull) {
    q = rms_norm(q, q_norm_, c_.norm_eps);
    k = rms_norm(k, k_norm_, c_.norm_eps);
  }
  if (c_.clip_qkv > 0.0f) {  // OLMoE clamps after the norms
    clamp(q, c_.clip_qkv);
    clamp(k, c_.clip_qkv);
    clamp(v, c_.clip_qkv);
  }
  q = q.reshape({t, c_.num_heads, dh});
  k = k.reshape({t, c_.num_kv_heads, dh});
  v = v.reshape({t, c_.num_kv_heads, dh});
  if (c_.qk_norm == QkNorm::kPerHead) {
    q = rms_norm(q, q_norm_, c_.norm_eps);
    k = rms_norm(k, k_norm_, c_.norm_eps);
  }
  rope(q, past);
  rope(k, past);
}

void Attention::project_mla(const Tensor& x, int64_t past, Tensor& q, Tensor& k, Tensor& v) const {
  const MlaConfig& m = c_.mla_dims;
  const int64_t t = x.dim(0), h = c_.num_heads;
  const int64_t nope = m.qk_nope_dim, rd = m.qk_rope_dim, qk = nope + rd, vd = m.v_head_dim;
  const int64_t rkv = m.kv_lora_rank;
  q = q_a_.defined() ? linear(rms_norm(linear(x, q_a_), q_a_norm_, c_.norm_eps), q_b_)
                     : linear(x, q_);
  q = q.reshape({t, h, qk});
  const Tensor kv_a = linear(x, kv_a_);  // [T, rkv + rope]
  Tensor latent = Tensor::empty({t, rkv});
  Tensor k_pe = Tensor::empty({t, 1, rd});
  for (int64_t i = 0; i < t; ++i) {
    const float* row = kv_a.data<float>() + i * (rkv + rd);
    std::memcpy(latent.mutable_data<float>() + i * rkv, row, static_cast<size_t>(rkv) * 4);
    std::memcpy(k_pe.mutable_data<float>() + i * rd, row + rkv, static_cast<size_t>(rd) * 4);
  }
  const Tensor kv = linear(rms_norm(latent, kv_a_norm_, c_.norm_eps), kv_b_);  // [T, H*(nope+v)]
  rope(k_pe, past);
  // Queries: rotate the rope part of every head in place (a [T, H, rope] copy and back).
  Tensor q_pe = Tensor::empty({t, h, rd});
  for (int64_t i = 0; i < t * h; ++i) {
    std::memcpy(q_pe.mutable_data<float>() + i * rd, q.data<float>() + i * qk + nope,
                static_cast<size_t>(rd) * 4);
  }
  rope(q_pe, past);
  float* pq = q.mutable_data<float>();
  k = Tensor::empty({t, h, qk});
  v = Tensor::empty({t, h, vd});
  float* pk = k.mutable_data<float>();
  float* pv = v.mutable_data<float>();
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < h; ++j) {
      const float* kv_h = kv.data<float>() + (i * h + j) * (nope + vd);
      std::memcpy(pq + (i * h + j) * qk + nope, q_pe.data<float>() + (i * h + j) * rd,
                  static_cast<size_t>(rd) * 4);
      std::memcpy(pk + (i * h + j) * qk, kv_h, static_cast<size_t>(nope) * 4);
      std::memcpy(pk + (i * h + j) * qk + nope, k_pe.data<float>() + i * rd,
                  static_cast<size_t>(rd) * 4);
      std::memcpy(pv + (i * h + j) * vd, kv_h + nope, static_cast<size_t>(vd) * 4);
    }
  }
}

uint64_t Attention::weight_bytes() const {
  uint64_t total = 0;
  for (const Linear* l : {&q_, &k_, &v_, &o_, &q_a_, &q_b_, &kv_a_, &kv_b_}) {
    if (l->defined()) total += l->nbytes();
  }
  return total;
}

Tensor Attention::forward(const Tensor& x, int64_t past, Tensor& cache_k, Tensor& cache_v) const {
  const int64_t t = x.dim(0);
  if (past + t <= cache_k.dim(1)) {  // else write_rows reports the full cache
    prefetch_rows(cache_k, past, t);
    prefetch_rows(cache_v, past, t);
  }
  Tensor q, k, v;
  if (c_.mla) {
    project_mla(x, past, q, k, v);
  } else {
    project_gqa(x, past, q, k, v);
  }
  write_rows(cache_k, past, k);
  write_rows(cache_v, past, v);
  Tensor out = Tensor::empty({t, c_.num_heads, c_.value_dim()});
  kernels::cached_attention_heads(out, q, cache_k, cache_v, past + t,
                                  {.scale = c_.attn_scale, .window = c_.sliding_window});
  return linear(out.reshape({t, c_.num_heads * c_.value_dim()}), o_);
}

}  // namespace sy::model
