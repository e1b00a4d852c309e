// The trainable decoder-only MoE language model, forward and full backward (llm.c style: explicit
// twins, activations kept in buffers the model owns, no autograd):
//
//   x_0 = embed_tokens[tokens]
//   block l: h   = x_l + o_proj(attention(RoPE(QK-norm(q/k/v_proj(RMSNorm_1(x_l))))))
//            x_l+1 = h + FFN_l(RMSNorm_2(h))     FFN: MoE layer (any router) or dense SwiGLU
//   logits = lm_head(RMSNorm_f(x_L))             lm_head = embed_tokens when tied
//   loss   = mean cross-entropy over the targets that are not -100
//            + sum over MoE layers of each router aux loss's coeff * value
//
// Attention is causal with grouped-query heads and NeoX-layout RoPE (HF Llama/Mixtral); the B
// sequences of a batch are independent (positions restart at 0 in each). Parameter names follow
// Hugging Face (Mixtral / Qwen3-MoE / DeepSeek layouts): model.embed_tokens.weight,
// model.layers.N.{input_layernorm, post_attention_layernorm}.weight,
// model.layers.N.self_attn.{q,k,v,o}_proj.weight, model.layers.N.self_attn.{q,k}_norm.weight,
// model.layers.N.mlp.{gate,up,down}_proj.weight (dense layers), model.layers.N.mlp.* as the MoE
// layer names them (gate.weight, experts.{gate,up,down}_proj.weight stacked [E, ...],
// shared_experts.*), model.norm.weight, lm_head.weight (untied only).
//
// Legend: B sequences, T tokens per sequence, N = B*T, D width, V vocab, L layers.
#pragma once

#include <memory>
#include <vector>

#include "core/param.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "moe/balance.h"
#include "moe/moe_layer.h"
#include "train/lm_config.h"

namespace sy::train {

struct LmLayerStats {
  int64_t layer = 0;  // index among all layers
  moe::RouterStats router;
};

// What the last forward measured.
struct LmStats {
  double loss = 0.0;         // ce + aux: what forward_backward returned
  double ce = 0.0;           // mean cross-entropy over valid targets (0 when there are none)
  double aux = 0.0;          // sum over MoE layers and their losses of coeff * value
  int64_t tokens = 0;        // N
  int64_t valid_tokens = 0;  // targets that are not -100
  std::vector<LmLayerStats> layers;  // one per MoE layer, in layer order
};

class MoeLm {
 public:
  // Validates the config (LmConfig::validate) and builds every block. Parameters are zero until
  // init().
  explicit MoeLm(const LmConfig& config);
  ~MoeLm();
  MoeLm(const MoeLm&) = delete;
  MoeLm& operator=(const MoeLm&) = delete;

  const LmConfig& config() const { return config_; }

  // Every trainable parameter, in a fixed order (embedding, layers in order, final norm, head).
  // Norm weights have decay = false.
  std::vector<Param*> params();
  // Checkpointed non-trainable state (router biases, ReMoE lambda, EMAs), in layer order.
  std::vector<Param*> buffers();
  // N(0, init_std^2) embeddings, projections and experts, norms 1; routers initialise their own.
  void init(Rng& rng);
  // Zeroes every parameter's gradient.
  void zero_grad();

  // tokens:  i32 [B, T], each in [0, V)
  // targets: i32 [B, T], each in [0, V) or -100 (ignored)
  // rng:     routers that draw random numbers in training (jitter, random routing) use it; may be
  //          null for the others
  // backward: true trains: routers run in training mode (noise, state gathering for end_step)
  //          and every parameter's gradient is ACCUMULATED (+=) with d(loss). false evaluates:
  //          routers in inference mode, no gradient.
  // Returns loss = ce + aux (see stats()). Errors (bad shapes, ids out of range) are sy::Error.
  float forward_backward(const Tensor& tokens, const Tensor& targets, Rng* rng, bool backward);

  const LmStats& stats() const { return stats_; }
  // Logits of the last forward: f32 [N, V].
  const Tensor& logits() const;
  // Every MoE layer's end_step (loss-free bias, ReMoE lambda, EMA updates): once per optimizer
  // step, after the backward of every micro-batch.
  void end_step();

  // The MoE layers in layer order, and whether any of them is not causal (reports mark the run).
  std::vector<moe::MoeLayer*> moe_layers();
  bool non_causal() const;

 private:
  struct Block;
  struct Workspace;
  void forward(const Tensor& ids, const Tensor& targets, int64_t batch, Rng* rng, bool training);
  void backward(const Tensor& ids, const Tensor& targets, int64_t batch);

  LmConfig config_;
  Param embed_, norm_, head_;  // head_ undefined when tied
  std::vector<std::unique_ptr<Block>> blocks_;
  std::unique_ptr<Workspace> ws_;
  LmStats stats_;
};

}  // namespace sy::train
