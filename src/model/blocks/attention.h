// Self-attention blocks for inference over a KV cache: grouped-query attention (Mixtral, Qwen,
// OLMoE) and multi-head latent attention (DeepSeek-V2/V3). Each reads its weights from the
// checkpoint in load() and appends the new tokens' keys and values to the cache in forward().
//
// Legend: T new tokens, D width, Hq query heads, Hkv kv heads, Dh head dim, S cached positions.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/linear.h"
#include "model/weights.h"

namespace sy::model {

class Attention {
 public:
  Attention(const ModelConfig& config, const LayerWeights& weights);
  // y: f32 [T, D]. x: f32 [T, D] (normalised input); the new tokens sit at positions
  // [past, past + T) where past = the cache length before the call. cache_k/cache_v: this
  // layer's cache tensors (f16 or f32, head-major [Hkv, capacity, Dk] / [Hkv, capacity, Dv],
  // model/kv_cache.h); positions [past, past + T) are written.
  Tensor forward(const Tensor& x, int64_t past, Tensor& cache_k, Tensor& cache_v) const;
  // Bytes of weights one forward reads (decode bandwidth bound).
  uint64_t weight_bytes() const;

 private:
  void project_gqa(const Tensor& x, int64_t past, Tensor& q, Tensor& k, Tensor& v) const;
  void project_mla(const Tensor& x, int64_t past, Tensor& q, Tensor& k, Tensor& v) const;
  void rope(Tensor& x, int64_t past) const;

  const ModelConfig& c_;
  kernels::RopeOptions rope_;
  // GQA: q [Hq*Dh, D], k/v [Hkv*Dh, D] (+ biases [rows]), norms [Dh] or [H*Dh].
  // MLA: q [Hq*(nope+rope), D] or q_a [rq, D] + q_a_norm [rq] + q_b [Hq*(nope+rope), rq];
  //      kv_a [rkv + rope, D], kv_a_norm [rkv], kv_b [Hq*(nope+v), rkv].
  Linear q_, k_, v_, o_, q_a_, q_b_, kv_a_, kv_b_;
  Tensor q_bias_, k_bias_, v_bias_, q_norm_, k_norm_, q_a_norm_, kv_a_norm_;
};

// y = x w^T (+ bias): y f32 [T, rows], x f32 [T, cols], w [rows, cols], bias f32 [rows] or
// undefined.
Tensor linear(const Tensor& x, const Linear& w, const Tensor& bias = Tensor());
// y[r] += bias for every row r; y f32 [T, N], bias f32 [N].
void add_bias(Tensor& y, const Tensor& bias);
// RMSNorm of each row (the last dim) of x, into a new tensor.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);

}  // namespace sy::model
