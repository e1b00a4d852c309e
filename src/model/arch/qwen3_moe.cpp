// Qwen3-MoE (Qwen3MoeForCausalLM, model_type "qwen3_moe", e.g. Qwen3-30B-A3B): explicit
// head_dim, RMSNorm of every query and key head (q_norm/k_norm, weight [Dh]) before RoPE, no
// shared expert, softmax top-k router renormalised when norm_topk_prob (true in the released
// configs, false as the class default; llama.cpp always renormalises).
#include "model/arch/arch.h"

namespace sy::model {

namespace {

void qwen3_moe_from_hf(const HfConfig& hf, ModelConfig& c) {
  read_hf_common(hf, c);
  c.qkv_bias = hf.get_bool("attention_bias", false);
  c.qk_norm = QkNorm::kPerHead;
  c.num_experts = hf.get_int("num_experts");
  c.top_k = hf.get_int("num_experts_per_tok");
  c.expert_ffn = hf.get_int("moe_intermediate_size");
  c.dense_ffn = hf.get_int("intermediate_size", 0);
  qwen_sparse_layers(hf, c);
  softmax_topk_router(c, hf.get_bool("norm_topk_prob", false));
}

void qwen3_moe_from_gguf(const GgufConfig& g, ModelConfig& c) {
  read_gguf_common(g, c);
  c.qkv_bias = g.file().find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = QkNorm::kPerHead;
  c.num_experts = g.get_int("expert_count");
  c.top_k = g.get_int("expert_used_count");
  c.expert_ffn = g.get_int("expert_feed_forward_length");
  c.dense_ffn = g.get_int("feed_forward_length", 0);
  softmax_topk_router(c, g.get_bool("expert_weights_norm", true));
}

}  // namespace

ArchReader qwen3_moe_arch() {
  return {"qwen3_moe", {"qwen3_moe"}, {"qwen3moe"}, qwen3_moe_from_hf, qwen3_moe_from_gguf};
}

}  // namespace sy::model
