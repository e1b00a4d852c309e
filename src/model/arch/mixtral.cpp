// Mixtral (MixtralForCausalLM, model_type "mixtral"): Llama blocks whose FFN is a softmax top-k
// router over SwiGLU experts, weights renormalised over the chosen K
// (research/inference.md section 9). GGUF: llama.cpp writes it as architecture "llama" with
// expert keys, and permutes q_proj/k_proj rows so that its interleaved ("normal") RoPE equals
// HF's rotate-half RoPE; reading GGUF we therefore rotate interleaved pairs. A "llama" GGUF
// without experts is a dense Llama and runs too.
#include "core/error.h"
#include "model/arch/arch.h"

namespace sy::model {

namespace {

void mixtral_from_hf(const HfConfig& hf, ModelConfig& c) {
  read_hf_common(hf, c);
  c.num_experts = hf.get_int("num_local_experts");
  c.top_k = hf.get_int("num_experts_per_tok");
  c.expert_ffn = hf.get_int("intermediate_size");
  c.sliding_window = hf.get_int("sliding_window", 0);
  c.hf.moe = "block_sparse_moe.";
  c.hf.expert_gate = "w1";
  c.hf.expert_up = "w3";
  c.hf.expert_down = "w2";
  SY_CHECK(!hf.has("rope_scaling"),
           "{}: key 'rope_scaling' is set; Mixtral is read without "
           "rope scaling only",
           hf.path());
  softmax_topk_router(c, /*normalize=*/true);
}

void mixtral_from_gguf(const GgufConfig& g, ModelConfig& c) {
  read_gguf_common(g, c);
  c.rope_layout = kernels::RopeLayout::kInterleaved;
  const int64_t ffn = g.get_int("feed_forward_length");
  c.num_experts = g.get_int("expert_count", 0);
  if (c.num_experts > 0) {
    c.top_k = g.get_int("expert_used_count");
    c.expert_ffn = g.get_int("expert_feed_forward_length", ffn);
  }
  c.dense_ffn = ffn;
  softmax_topk_router(c, g.get_bool("expert_weights_norm", true));
}

}  // namespace

ArchReader mixtral_arch() {
  return {"mixtral", {"mixtral"}, {"llama"}, mixtral_from_hf, mixtral_from_gguf};
}

}  // namespace sy::model
