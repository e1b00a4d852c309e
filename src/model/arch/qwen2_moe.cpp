// Qwen2-MoE (Qwen2MoeForCausalLM, model_type "qwen2_moe", e.g. Qwen1.5-MoE-A2.7B): q/k/v with
// bias, a softmax top-k router (weights not renormalised unless norm_topk_prob), one shared
// expert whose output is scaled by sigmoid(shared_expert_gate . x). Layer l is routed when it is
// not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0; other layers are dense SwiGLU
// of intermediate_size.
#include <algorithm>

#include "core/error.h"
#include "model/arch/arch.h"

namespace sy::model {

void qwen_sparse_layers(const HfConfig& hf, ModelConfig& c) {
  const int64_t step = hf.get_int("decoder_sparse_step", 1);
  SY_CHECK(step > 0, "{}: key 'decoder_sparse_step' is {}, expected > 0", hf.path(), step);
  const std::vector<int64_t> dense = hf.get_ints("mlp_only_layers");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const bool listed = std::find(dense.begin(), dense.end(), l) != dense.end();
    c.moe_layer[static_cast<size_t>(l)] = !listed && c.num_experts > 0 && (l + 1) % step == 0;
  }
  SY_CHECK(!hf.get_bool("use_sliding_window", false),
           "{}: key 'use_sliding_window' is true; sliding-window Qwen layers are not supported",
           hf.path());
}

namespace {

void qwen2_moe_from_hf(const HfConfig& hf, ModelConfig& c) {
  read_hf_common(hf, c);
  c.qkv_bias = true;
  c.num_experts = hf.get_int("num_experts");
  c.top_k = hf.get_int("num_experts_per_tok");
  c.expert_ffn = hf.get_int("moe_intermediate_size");
  c.dense_ffn = hf.get_int("intermediate_size", 0);
  c.shared_ffn = hf.get_int("shared_expert_intermediate_size", 0);
  c.shared_experts = c.shared_ffn > 0 ? 1 : 0;
  c.shared_gate = c.shared_experts > 0;
  c.hf.shared = "shared_expert.";
  qwen_sparse_layers(hf, c);
  softmax_topk_router(c, hf.get_bool("norm_topk_prob", false));
}

void qwen2_moe_from_gguf(const GgufConfig& g, ModelConfig& c) {
  read_gguf_common(g, c);
  c.qkv_bias = g.file().find_tensor("blk.0.attn_q.bias") != nullptr;
  c.num_experts = g.get_int("expert_count");
  c.top_k = g.get_int("expert_used_count");
  c.expert_ffn = g.get_int("expert_feed_forward_length");
  c.dense_ffn = g.get_int("feed_forward_length", 0);
  c.shared_ffn = g.get_int("expert_shared_feed_forward_length", 0);
  c.shared_experts = c.shared_ffn > 0 ? 1 : 0;
  c.shared_gate = c.shared_experts > 0;
  softmax_topk_router(c, g.get_bool("expert_weights_norm", false));
}

}  // namespace

ArchReader qwen2_moe_arch() {
  return {"qwen2_moe", {"qwen2_moe"}, {"qwen2moe"}, qwen2_moe_from_hf, qwen2_moe_from_gguf};
}

}  // namespace sy::model
