// OLMoE (OlmoeForCausalLM, model_type "olmoe", OLMoE-1B-7B): q_norm/k_norm RMSNorm over the
// whole q and k projections (weights [Hq*Dh], [Hkv*Dh]), optional clip_qkv clamping q, k and v
// after the projections (before the norms), softmax top-k router not renormalised by default.
#include "model/arch/arch.h"

namespace sy::model {

namespace {

void olmoe_from_hf(const HfConfig& hf, ModelConfig& c) {
  read_hf_common(hf, c);
  c.qkv_bias = hf.get_bool("attention_bias", false);
  c.qk_norm = QkNorm::kFull;
  c.clip_qkv = hf.get_float("clip_qkv", 0.0f);
  c.num_experts = hf.get_int("num_experts");
  c.top_k = hf.get_int("num_experts_per_tok");
  c.expert_ffn = hf.get_int("intermediate_size");
  softmax_topk_router(c, hf.get_bool("norm_topk_prob", false));
}

void olmoe_from_gguf(const GgufConfig& g, ModelConfig& c) {
  read_gguf_common(g, c);
  c.qkv_bias = g.file().find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = QkNorm::kFull;
  c.clip_qkv = g.get_float("attention.clamp_kqv", 0.0f);
  c.num_experts = g.get_int("expert_count");
  c.top_k = g.get_int("expert_used_count");
  c.expert_ffn = g.get_int("expert_feed_forward_length", g.get_int("feed_forward_length"));
  softmax_topk_router(c, g.get_bool("expert_weights_norm", false));
}

}  // namespace

ArchReader olmoe_arch() { return {"olmoe", {"olmoe"}, {"olmoe"}, olmoe_from_hf, olmoe_from_gguf}; }

}  // namespace sy::model
