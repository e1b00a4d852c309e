// The attention sub-block of the trainable LM, forward and backward twins:
//   q = x Wq^T, k = x Wk^T, v = x Wv^T        (HF orientation: W [H*Dh, D])
//   q, k <- RMSNorm over each head's Dh      (qk_norm, Qwen3), before RoPE
//   q, k <- RoPE (NeoX pairs, HF Llama/Mixtral), position = index within the sequence
//   o = causal GQA attention(q, k, v); y += o Wo^T
//
// Legend: B sequences, T tokens per sequence, N = B*T, D width, Hq query heads, Hkv kv heads,
// Dh head dim.
#pragma once

#include <string>
#include <vector>

#include "core/param.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/rope.h"
#include "train/lm_config.h"

namespace sy::train {

// What backward needs from forward; the caller owns one per layer. forward (re)allocates the
// tensors when the token count changes.
struct AttentionSaved {
  Tensor q_raw, k_raw;  // f32 [N, Hq, Dh], [N, Hkv, Dh] projections before QK-norm (qk_norm)
  Tensor q_inv, k_inv;  // f32 [N*Hq], [N*Hkv] QK-norm inverse RMS (qk_norm)
  Tensor q, k, v;       // f32 [B, T, H, Dh] attention inputs (normed and rotated q, k)
  Tensor out;           // f32 [N, Hq*Dh] attention output, o_proj's input
  Tensor lse;           // f32 [B, Hq, T]
};

// Gradient scratch shared by every layer's backward (one layer runs at a time).
struct AttentionScratch {
  Tensor d_out;             // f32 [N, Hq*Dh]
  Tensor d_q, d_k, d_v;     // f32 [N, H, Dh] gradients of the attention inputs
  Tensor d_q_raw, d_k_raw;  // f32 [N, H, Dh] gradients before RoPE (and QK-norm)
};

class LmAttention {
 public:
  // Parameters named model.layers.<layer>.self_attn.{q,k,v,o}_proj.weight and, with qk_norm,
  // self_attn.{q,k}_norm.weight.
  LmAttention(const LmConfig& config, int64_t layer);

  std::vector<Param*> params();
  // Projections N(0, stddev^2); norms 1.
  void init(Rng& rng, float stddev);

  // y: f32 [N, D] accumulated (+= o_proj of the attention). x: f32 [N, D] (normed input);
  // positions: i32 [N] (position of each token in its sequence); batch: B (N = B*T).
  void forward(Tensor& y, const Tensor& x, const Tensor& positions, int64_t batch,
               AttentionSaved& saved);
  // d_x: f32 [N, D] accumulated; every parameter gradient accumulated. d_y: f32 [N, D].
  // x, positions, batch, saved as given to / filled by forward.
  void backward(Tensor& d_x, const Tensor& d_y, const Tensor& x, const Tensor& positions,
                int64_t batch, const AttentionSaved& saved, AttentionScratch& scratch);

 private:
  int64_t hq_, hkv_, hd_;
  bool qk_norm_;
  float eps_;
  kernels::RopeOptions rope_;
  Param q_proj_, k_proj_, v_proj_, o_proj_, q_norm_, k_norm_;
};

}  // namespace sy::train
