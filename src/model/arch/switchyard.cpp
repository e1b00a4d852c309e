// switchyard's own trained models (SwitchyardMoeForCausalLM, model_type "switchyard_moe", written
// by train/checkpoint.h for models HF has no class for). Llama blocks: RMSNorm, GQA attention
// with NeoX RoPE, optional per-head QK-norm (Qwen3: RMSNorm over each head's Dh before RoPE,
// weights self_attn.{q,k}_norm.weight [Dh]), SwiGLU FFNs. Keys beyond Llama's:
//   intermediate_size                width of the dense layers' FFN
//   num_experts, num_experts_per_tok, moe_intermediate_size
//   first_k_dense_replace, moe_layer_freq: layer l is routed when num_experts > 0,
//       l >= first_k_dense_replace and (l - first_k_dense_replace) % moe_layer_freq == 0
//       (DeepSeek's rule is l % moe_layer_freq == 0; ours counts from the first routed layer)
//   n_shared_experts, shared_expert_intermediate_size (width of one shared expert),
//   shared_expert_gate (Qwen2-MoE's sigmoid gate on the shared output): shared experts are
//       mlp.shared_experts.{gate,up,down}_proj.weight of width n * width (DeepSeek's layout),
//       the gate mlp.shared_expert_gate.weight [1, D]
//   qk_norm                          true: per-head QK-norm
//   router {"name", "options", "state"}: any causal router of the moe registry with its options;
//       its parameters and buffers ("state") are tensors under model.layers.N.mlp.<name>
// Routed experts are mlp.experts.{j}.{gate,up,down}_proj.weight. Inference is dropless (a
// capacity factor used in training lives in the "switchyard" block, which this reader ignores).
// HF only: switchyard writes no GGUF of this architecture.
#include <string>

#include "core/error.h"
#include "model/arch/arch.h"
#include "moe/routing/router.h"

namespace sy::model {

namespace {

void switchyard_router(const HfConfig& hf, ModelConfig& c) {
  const std::string& where = hf.path();
  SY_CHECK(hf.has("router") && hf.json().at("router").is_object(),
           "{}: key 'router' is {}, expected an object {{\"name\": ..., \"options\": {{...}}}}",
           where, hf.has("router") ? hf.json().at("router").dump() : "missing");
  const nlohmann::json& r = hf.json().at("router");
  SY_CHECK(r.contains("name") && r.at("name").is_string(),
           "{}: key 'router.name' is {}, expected a router name", where,
           r.contains("name") ? r.at("name").dump() : "missing");
  c.router = r.at("name").get<std::string>();
  if (r.contains("options")) {
    SY_CHECK(r.at("options").is_object(), "{}: key 'router.options' is {}, expected an object",
             where, r.at("options").dump());
    c.router_options = r.at("options");
  }
  SY_CHECK(c.router != "random",
           "{}: router 'random' draws each token's experts at random, so the checkpoint does not "
           "define a model to run",
           where);
  // Building one checks the name and the options with the router's own messages.
  moe::RouterSpec spec;
  spec.name = c.router;
  spec.num_experts = c.num_experts;
  spec.top_k = c.top_k;
  spec.d_model = c.hidden_size;
  spec.prefix = "model.layers.0.mlp.";
  spec.options = c.router_options;
  const auto router = with_context(where + ": key 'router'", [&] { return make_router(spec); });
  SY_CHECK(router->causal(),
           "{}: router '{}' is not causal (a token's experts depend on later tokens), so the "
           "model cannot generate token by token",
           where, c.router);
}

void switchyard_from_hf(const HfConfig& hf, ModelConfig& c) {
  read_hf_common(hf, c);
  const std::string& where = hf.path();
  SY_CHECK(!hf.has("rope_scaling"),
           "{}: key 'rope_scaling' is set; switchyard_moe has no rope "
           "scaling",
           where);
  SY_CHECK(hf.get_int("sliding_window", 0) == 0,
           "{}: key 'sliding_window' is {}, expected null (switchyard_moe attends to every "
           "position)",
           where, hf.json().at("sliding_window").dump());
  SY_CHECK(!hf.get_bool("attention_bias", false),
           "{}: key 'attention_bias' is true; switchyard_moe attention has no biases", where);
  const std::string act = hf.get_string("hidden_act", "silu");
  SY_CHECK(act == "silu", "{}: key 'hidden_act' is '{}', expected 'silu'", where, act);
  c.qk_norm = hf.get_bool("qk_norm", false) ? QkNorm::kPerHead : QkNorm::kNone;
  c.dense_ffn = hf.get_int("intermediate_size", 0);
  c.num_experts = hf.get_int("num_experts", 0);
  const int64_t first = hf.get_int("first_k_dense_replace", 0);
  const int64_t every = hf.get_int("moe_layer_freq", 1);
  SY_CHECK(first >= 0, "{}: key 'first_k_dense_replace' is {}, expected >= 0", where, first);
  SY_CHECK(every > 0, "{}: key 'moe_layer_freq' is {}, expected > 0", where, every);
  SY_CHECK(c.num_experts >= 0, "{}: key 'num_experts' is {}, expected >= 0", where, c.num_experts);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    c.moe_layer[static_cast<size_t>(l)] =
        c.num_experts > 0 && l >= first && (l - first) % every == 0;
  }
  c.hf = HfNames{};  // mlp., experts.{j}.{gate,up,down}_proj, shared_experts.
  if (c.num_experts == 0) return;
  c.top_k = hf.get_int("num_experts_per_tok");
  c.expert_ffn = hf.get_int("moe_intermediate_size");
  c.shared_experts = hf.get_int("n_shared_experts", 0);
  SY_CHECK(c.shared_experts >= 0, "{}: key 'n_shared_experts' is {}, expected >= 0", where,
           c.shared_experts);
  if (c.shared_experts > 0) {
    c.shared_ffn = hf.get_int("shared_expert_intermediate_size", c.expert_ffn);
    c.shared_gate = hf.get_bool("shared_expert_gate", false);
  }
  switchyard_router(hf, c);
}

}  // namespace

ArchReader switchyard_arch() {
  return {"switchyard_moe", {"switchyard_moe"}, {}, switchyard_from_hf, nullptr};
}

}  // namespace sy::model
