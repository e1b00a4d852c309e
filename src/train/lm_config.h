// The configuration of a trainable decoder-only MoE language model (train/lm.h), with its JSON
// form: the trainer's config and the checkpoint's own config read and write it, and unknown or
// mistyped keys are errors naming the key (a typo must not fall back to a default silently).
//
// Layer l is an MoE layer when moe.num_experts > 0, l >= first_k_dense and
// (l - first_k_dense) % moe_every == 0; every other layer has a dense SwiGLU FFN of width
// dense_ffn.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "moe/dispatch.h"
#include "moe/routing/router.h"

namespace sy::train {

struct LmMoeConfig {
  int64_t num_experts = 0;     // E routed experts per MoE layer; 0: no MoE layer (dense model)
  int64_t top_k = 2;           // K experts per token
  int64_t expert_ffn = 0;      // F of each routed expert
  int64_t shared_experts = 0;  // DeepSeekMoE shared experts (0: none)
  int64_t shared_ffn = 0;      // width of each shared expert (0: expert_ffn)
  bool shared_gate = false;    // Qwen2-MoE sigmoid gate on the shared output
  std::string router = "topk_softmax";                       // moe::make_router registry name
  nlohmann::json router_options = nlohmann::json::object();  // the router's own keys
  double capacity_factor = 0.0;                              // 0: dropless
  std::string drop_policy = "position";                      // "position" or "score"
  // Routers whose choice for a token depends on later tokens (expert_choice, soft_moe) are
  // refused unless this is set (research comparisons; the run is marked non-causal).
  bool allow_non_causal = false;

  moe::CapacityOptions capacity() const;
};

struct LmConfig {
  int64_t vocab_size = 0;  // V
  int64_t d_model = 0;     // D
  int64_t n_layers = 0;    // L
  int64_t n_heads = 0;     // Hq
  int64_t n_kv_heads = 0;  // Hkv (divides Hq); 0: n_heads
  int64_t head_dim = 0;    // Dh (even); 0: d_model / n_heads
  double rope_theta = 10000.0;
  bool qk_norm = false;  // per-head RMSNorm of q and k before RoPE (Qwen3)
  double norm_eps = 1e-6;
  bool tie_embeddings = false;  // the LM head is the embedding table
  int64_t dense_ffn = 0;        // width of the dense SwiGLU FFN layers
  int64_t first_k_dense = 0;    // the first layers are dense
  int64_t moe_every = 1;        // after them, every moe_every-th layer is MoE
  LmMoeConfig moe;
  double init_std = 0.02;  // N(0, init_std^2) for embeddings and projections (norms start at 1)
  int64_t seq_len = 0;     // training sequence length (the data packer's T)

  int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int64_t head_size() const {
    return head_dim > 0 ? head_dim : d_model / std::max<int64_t>(1, n_heads);
  }
  bool is_moe_layer(int64_t layer) const;
  int64_t moe_layer_count() const;
  // The router of MoE layer `layer` (parameter prefix "model.layers.<layer>.mlp.").
  moe::RouterSpec router_spec(int64_t layer) const;

  // Throws sy::Error naming the first bad field ("lm config: n_heads = 6 is not a multiple of
  // n_kv_heads = 4"); sizes must lie in int32's range, n_layers at most model::kMaxLayers, and
  // the parameter count at most kMaxLmParams. Also builds one router (of width 1) from
  // moe.router / moe.router_options when the model has MoE layers, so unknown routers and bad
  // router options fail here.
  void validate() const;

  nlohmann::json to_json() const;
  // Every key is optional (defaults above); unknown keys, wrong types and invalid values throw
  // naming the key ("lm config: unknown key 'moe.topk'; valid keys: ..."). Validates.
  static LmConfig from_json(const nlohmann::json& j);
};

// Parameter counts: every trainable value, and those one token uses (routed experts it is not
// sent to excluded: E - K per MoE layer; shared experts, router and dense parts included).
struct LmParamCount {
  int64_t total = 0;
  int64_t active = 0;
};
// The largest model a config may describe (2^40 parameters: 16 TiB of f32 training state).
inline constexpr int64_t kMaxLmParams = int64_t{1} << 40;
// Throws sy::Error when the total is over kMaxLmParams.
LmParamCount count_params(const LmConfig& config);

}  // namespace sy::train
