// DeepSeek-V2, V2-Lite and V3 (DeepseekV2ForCausalLM / DeepseekV3ForCausalLM, model_type
// "deepseek_v2" / "deepseek_v3"; GGUF architecture "deepseek2" for all of them).
//  - Multi-head latent attention (config.h MlaConfig); RoPE on the qk_rope_dim part only, on
//    interleaved pairs: DeepSeek's reference code de-interleaves q_pe/k_pe and then rotates
//    halves, which equals rotating pairs (2i, 2i+1) in place, and the dot product does not care
//    about the order of dims.
//  - YaRN (rope_scaling type "yarn"): frequencies from kernels::rope_yarn_inv_freq, cos/sin
//    times mscale(f, mscale) / mscale(f, mscale_all_dim), softmax scale times
//    mscale(f, mscale_all_dim)^2.
//  - Layer l is routed when l >= first_k_dense_replace and l % moe_layer_freq == 0; dense layers
//    are SwiGLU of intermediate_size; routed layers add n_shared_experts shared experts.
//  - Routing (moe router "deepseek"): V2 softmax scores, topk_method "greedy" (no groups) or
//    "group_limited_greedy" (groups scored by their best expert); routed_scaling_factor applies
//    only when the weights are not renormalised. V3 ("noaux_tc"): sigmoid scores, selection on
//    score + e_score_correction_bias within the topk_group best groups (scored by the sum of
//    their two best), weights renormalised when norm_topk_prob, then times the factor.
#include <cmath>

#include "core/error.h"
#include "model/arch/arch.h"

namespace sy::model {

namespace {

void deepseek_router(ModelConfig& c, bool sigmoid, int64_t n_group, int64_t topk_group,
                     bool normalize, double scaling) {
  c.router = "deepseek";
  c.router_options = {{"score", sigmoid ? "sigmoid" : "softmax"},
                      {"n_group", n_group},
                      {"topk_group", topk_group},
                      {"group_score", sigmoid ? "top2_sum" : "max"},
                      {"norm_topk_prob", normalize},
                      {"routed_scaling_factor", scaling},
                      {"seq_aux_coeff", 0.0},
                      {"bias_update_rate", 0.0}};
}

void deepseek_from_hf(const HfConfig& hf, ModelConfig& c) {
  read_hf_common(hf, c);
  const std::string& where = hf.path();
  c.mla = true;
  c.mla_dims.q_lora_rank = hf.get_int("q_lora_rank", 0);
  c.mla_dims.kv_lora_rank = hf.get_int("kv_lora_rank");
  c.mla_dims.qk_nope_dim = hf.get_int("qk_nope_head_dim");
  c.mla_dims.qk_rope_dim = hf.get_int("qk_rope_head_dim");
  c.mla_dims.v_head_dim = hf.get_int("v_head_dim");
  c.num_kv_heads = c.num_heads;
  c.rope_layout = kernels::RopeLayout::kInterleaved;
  SY_CHECK(!hf.get_bool("attention_bias", false),
           "{}: key 'attention_bias' is true; DeepSeek "
           "attention biases are not supported",
           where);
  c.attn_scale =
      1.0f / std::sqrt(static_cast<float>(c.mla_dims.qk_nope_dim + c.mla_dims.qk_rope_dim));
  if (hf.has("rope_scaling")) {
    const HfConfig rs(hf.json().at("rope_scaling"), where + " rope_scaling");
    const std::string type = rs.get_string("type", rs.get_string("rope_type", ""));
    SY_CHECK(type == "yarn", "{}: rope_scaling type '{}' is not supported (expected 'yarn')", where,
             type);
    kernels::YarnOptions yarn;
    yarn.factor = rs.get_float("factor");
    yarn.original_max_position = rs.get_int("original_max_position_embeddings");
    yarn.beta_fast = rs.get_float("beta_fast", 32.0f);
    yarn.beta_slow = rs.get_float("beta_slow", 1.0f);
    const auto mscale = rs.get_float("mscale", 1.0f);
    const auto mscale_all = rs.get_float("mscale_all_dim", 0.0f);
    c.yarn = yarn;
    c.rope_attention_factor =
        kernels::yarn_mscale(yarn.factor, mscale) / kernels::yarn_mscale(yarn.factor, mscale_all);
    if (mscale_all != 0.0f) {
      const float m = kernels::yarn_mscale(yarn.factor, mscale_all);
      c.attn_scale *= m * m;
    }
  }
  c.num_experts = hf.get_int("n_routed_experts", 0);
  c.dense_ffn = hf.get_int("intermediate_size");
  const int64_t first_dense = hf.get_int("first_k_dense_replace", 0);
  const int64_t freq = hf.get_int("moe_layer_freq", 1);
  SY_CHECK(freq > 0, "{}: key 'moe_layer_freq' is {}, expected > 0", where, freq);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    c.moe_layer[static_cast<size_t>(l)] = c.num_experts > 0 && l >= first_dense && l % freq == 0;
  }
  if (c.num_experts == 0) return;
  c.top_k = hf.get_int("num_experts_per_tok");
  c.expert_ffn = hf.get_int("moe_intermediate_size");
  c.shared_experts = hf.get_int("n_shared_experts", 0);
  c.shared_ffn = c.expert_ffn;
  const std::string scoring = hf.get_string("scoring_func", "softmax");
  SY_CHECK(scoring == "softmax" || scoring == "sigmoid",
           "{}: key 'scoring_func' is '{}', expected 'softmax' or 'sigmoid'", where, scoring);
  const std::string method = hf.get_string("topk_method", "greedy");
  SY_CHECK(method == "greedy" || method == "group_limited_greedy" || method == "noaux_tc",
           "{}: key 'topk_method' is '{}', expected 'greedy', 'group_limited_greedy' or "
           "'noaux_tc'",
           where, method);
  const bool grouped = method != "greedy";
  const int64_t n_group = grouped ? hf.get_int("n_group") : 1;
  const int64_t topk_group = grouped ? hf.get_int("topk_group") : 1;
  const bool normalize = c.top_k > 1 && hf.get_bool("norm_topk_prob", false);
  const double factor = hf.get_double("routed_scaling_factor", 1.0);
  // V2's code scales only the unnormalised weights; V3's scales after normalising.
  const bool v3 = method == "noaux_tc";
  deepseek_router(c, scoring == "sigmoid", n_group, topk_group, normalize,
                  v3 || !normalize ? factor : 1.0);
  c.arch = v3 ? "deepseek_v3" : "deepseek_v2";
}

void deepseek_from_gguf(const GgufConfig& g, ModelConfig& c) {
  read_gguf_common(g, c);
  c.mla = true;
  c.num_kv_heads = c.num_heads;
  c.rope_layout = kernels::RopeLayout::kInterleaved;
  c.mla_dims.q_lora_rank = g.get_int("attention.q_lora_rank", 0);
  c.mla_dims.kv_lora_rank = g.get_int("attention.kv_lora_rank");
  c.mla_dims.qk_rope_dim = g.get_int("rope.dimension_count");
  // Files written since llama.cpp's MLA rework keep the per-head sizes in *_mla keys (the plain
  // keys then describe the absorbed latent form).
  const int64_t key = g.get_int("attention.key_length_mla", g.get_int("attention.key_length"));
  c.mla_dims.qk_nope_dim = key - c.mla_dims.qk_rope_dim;
  c.mla_dims.v_head_dim =
      g.get_int("attention.value_length_mla", g.get_int("attention.value_length"));
  c.head_dim = key;
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(key));
  if (g.get_string("rope.scaling.type", "none") == "yarn") {
    kernels::YarnOptions yarn;
    yarn.factor = g.get_float("rope.scaling.factor");
    yarn.original_max_position = g.get_int("rope.scaling.original_context_length");
    yarn.beta_fast = g.get_float("rope.scaling.yarn_beta_fast", 32.0f);
    yarn.beta_slow = g.get_float("rope.scaling.yarn_beta_slow", 1.0f);
    c.yarn = yarn;
    // yarn_log_multiplier = 0.1 * mscale_all_dim; llama.cpp assumes mscale == mscale_all_dim,
    // so cos/sin keep factor 1.
    const float m =
        1.0f + g.get_float("rope.scaling.yarn_log_multiplier", 0.0f) * std::log(yarn.factor);
    c.attn_scale *= m * m;
  }
  c.dense_ffn = g.get_int("feed_forward_length", 0);
  c.num_experts = g.get_int("expert_count", 0);
  if (c.num_experts == 0) return;
  c.top_k = g.get_int("expert_used_count");
  c.expert_ffn = g.get_int("expert_feed_forward_length");
  c.shared_experts = g.get_int("expert_shared_count", 0);
  c.shared_ffn = c.expert_ffn;
  const int64_t gating = g.get_int("expert_gating_func", 1);
  SY_CHECK(gating == 1 || gating == 2,
           "{}: key '{}.expert_gating_func' is {}, expected 1 (softmax) or 2 (sigmoid)",
           g.file().name(), g.arch(), gating);
  const int64_t n_group = std::max<int64_t>(g.get_int("expert_group_count", 1), 1);
  const int64_t topk_group = std::max<int64_t>(g.get_int("expert_group_used_count", n_group), 1);
  deepseek_router(c, gating == 2, n_group, topk_group, g.get_bool("expert_weights_norm", false),
                  g.get_float("expert_weights_scale", 1.0f));
  c.arch = gating == 2 ? "deepseek_v3" : "deepseek_v2";
}

}  // namespace

ArchReader deepseek_arch() {
  return {"deepseek",
          {"deepseek_v2", "deepseek_v3"},
          {"deepseek2"},
          deepseek_from_hf,
          deepseek_from_gguf};
}

}  // namespace sy::model
