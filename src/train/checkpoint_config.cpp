#include "train/checkpoint_config.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "moe/routing/router.h"

namespace sy::train {

namespace {

constexpr int kFormatVersion = 1;

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "float32";
    case DType::BF16:
      return "bfloat16";
    case DType::F16:
      return "float16";
    default:
      fail("checkpoint: parameters can be saved as f32, bf16 or f16, not {}", dtype_name(dtype));
  }
}

// The router's checkpointed buffers, named after the layer prefix ("gate.expert_bias").
std::vector<std::string> router_state(const LmConfig& c) {
  std::vector<std::string> names;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const moe::RouterSpec spec = c.router_spec(l);
    const auto router = moe::make_router(spec);
    for (const Param* p : router->buffers()) names.push_back(p->name.substr(spec.prefix.size()));
    break;
  }
  return names;
}

// Settings neither reader implements; a config that has them is refused rather than misread.
void refuse_unsupported(const model::HfConfig& hf) {
  SY_CHECK(!hf.has("rope_scaling"),
           "{}: key 'rope_scaling' is set; switchyard trains without "
           "rope scaling only",
           hf.path());
  SY_CHECK(hf.get_int("sliding_window", 0) == 0,
           "{}: key 'sliding_window' is {}, expected null (switchyard trains full attention)",
           hf.path(), hf.json().at("sliding_window").dump());
  SY_CHECK(!hf.get_bool("attention_bias", false),
           "{}: key 'attention_bias' is true; switchyard's attention has no biases", hf.path());
  const std::string act = hf.get_string("hidden_act", "silu");
  SY_CHECK(act == "silu", "{}: key 'hidden_act' is '{}', expected 'silu' (SwiGLU experts)",
           hf.path(), act);
}

void read_common(const model::HfConfig& hf, LmConfig& c) {
  c.vocab_size = hf.get_int("vocab_size");
  c.d_model = hf.get_int("hidden_size");
  c.n_layers = hf.get_int("num_hidden_layers");
  c.n_heads = hf.get_int("num_attention_heads");
  c.n_kv_heads = hf.get_int("num_key_value_heads", c.n_heads);
  c.head_dim = hf.get_int("head_dim", 0);
  c.rope_theta = hf.get_double("rope_theta", 10000.0);
  c.norm_eps = hf.get_double("rms_norm_eps", 1e-6);
  c.tie_embeddings = hf.get_bool("tie_word_embeddings", false);
  c.init_std = hf.get_double("initializer_range", 0.02);
  c.seq_len = hf.get_int("max_position_embeddings", 4096);
}

LmConfig from_mixtral_keys(const model::HfConfig& hf) {
  LmConfig c;
  read_common(hf, c);
  c.moe.num_experts = hf.get_int("num_local_experts");
  c.moe.top_k = hf.get_int("num_experts_per_tok");
  c.moe.expert_ffn = hf.get_int("intermediate_size");
  c.moe.router = "topk_softmax";
  // HF adds the balance loss only when the model outputs router logits.
  if (hf.get_bool("output_router_logits", false)) {
    c.moe.router_options = {{"aux_loss_coeff", hf.get_double("router_aux_loss_coef", 0.001)}};
  }
  return c;
}

LmConfig from_switchyard_keys(const model::HfConfig& hf) {
  LmConfig c;
  read_common(hf, c);
  c.qk_norm = hf.get_bool("qk_norm", false);
  c.dense_ffn = hf.get_int("intermediate_size", 0);
  c.first_k_dense = hf.get_int("first_k_dense_replace", 0);
  c.moe_every = hf.get_int("moe_layer_freq", 1);
  c.moe.num_experts = hf.get_int("num_experts", 0);
  if (c.moe.num_experts == 0) return c;
  c.moe.top_k = hf.get_int("num_experts_per_tok");
  c.moe.expert_ffn = hf.get_int("moe_intermediate_size");
  c.moe.shared_experts = hf.get_int("n_shared_experts", 0);
  c.moe.shared_ffn = hf.get_int("shared_expert_intermediate_size", 0);
  c.moe.shared_gate = hf.get_bool("shared_expert_gate", false);
  SY_CHECK(hf.has("router") && hf.json().at("router").is_object(),
           "{}: key 'router' is {}, expected an object {{\"name\": ..., \"options\": {{...}}}}",
           hf.path(), hf.has("router") ? hf.json().at("router").dump() : "missing");
  const model::HfConfig router(hf.json().at("router"), hf.path() + " router");
  c.moe.router = router.get_string("name", "");
  SY_CHECK(!c.moe.router.empty(), "{}: key 'router.name' is missing", hf.path());
  if (router.has("options")) {
    const nlohmann::json& o = router.json().at("options");
    SY_CHECK(o.is_object(), "{}: key 'router.options' is {}, expected an object", hf.path(),
             o.dump());
    c.moe.router_options = o;
  }
  return c;
}

}  // namespace

bool mixtral_expressible(const LmConfig& c, std::string* why) {
  const auto no = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  if (c.moe.num_experts == 0 || c.moe_layer_count() != c.n_layers) {
    return no("not every layer is routed");
  }
  if (c.moe.router != "topk_softmax") return no("router '" + c.moe.router + "'");
  const nlohmann::json& o = c.moe.router_options;
  if (o.contains("normalize") && o.at("normalize") == false &&
      !(o.contains("softmax_after_topk") && o.at("softmax_after_topk") == true)) {
    return no("top-k weights not renormalised");
  }
  if (c.moe.shared_experts > 0) return no("shared experts");
  if (c.qk_norm) return no("qk_norm");
  if (c.tie_embeddings) return no("tied embeddings");
  return true;
}

nlohmann::json hf_config_json(const LmConfig& c, DType dtype) {
  c.validate();
  nlohmann::json j = {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.d_model},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.kv_heads()},
      {"head_dim", c.head_size()},
      {"hidden_act", "silu"},
      {"max_position_embeddings", c.seq_len},
      {"initializer_range", c.init_std},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_embeddings},
      {"attention_dropout", 0.0},
      {"use_cache", true},
      {"torch_dtype", torch_dtype_name(dtype)},
      {"switchyard", {{"format_version", kFormatVersion}, {"lm_config", c.to_json()}}},
  };
  if (mixtral_expressible(c)) {
    const double aux = c.moe.router_options.value("aux_loss_coeff", 0.0);
    j.update({{"architectures", nlohmann::json::array({"MixtralForCausalLM"})},
              {"model_type", "mixtral"},
              {"intermediate_size", c.moe.expert_ffn},
              {"num_local_experts", c.moe.num_experts},
              {"num_experts_per_tok", c.moe.top_k},
              {"output_router_logits", aux > 0.0},
              {"router_aux_loss_coef", aux},
              {"router_jitter_noise", 0.0},
              {"sliding_window", nullptr}});
    return j;
  }
  const bool shared = c.moe.shared_experts > 0;
  j.update({{"architectures", nlohmann::json::array({"SwitchyardMoeForCausalLM"})},
            {"model_type", "switchyard_moe"},
            {"qk_norm", c.qk_norm},
            {"intermediate_size", c.dense_ffn},
            {"first_k_dense_replace", c.first_k_dense},
            {"moe_layer_freq", c.moe_every},
            {"num_experts", c.moe.num_experts}});
  if (c.moe.num_experts > 0) {
    j.update({{"num_experts_per_tok", c.moe.top_k},
              {"moe_intermediate_size", c.moe.expert_ffn},
              {"n_shared_experts", c.moe.shared_experts},
              {"shared_expert_intermediate_size",
               shared ? (c.moe.shared_ffn > 0 ? c.moe.shared_ffn : c.moe.expert_ffn) : 0},
              {"shared_expert_gate", c.moe.shared_gate},
              {"router",
               {{"name", c.moe.router},
                {"options", c.moe.router_options},
                {"state", router_state(c)}}}});
  }
  return j;
}

LmConfig lm_config_from_hf(const nlohmann::json& json, const std::string& source) {
  const model::HfConfig hf(json, source);
  const std::string type = hf.get_string("model_type", "");
  SY_CHECK(type == "mixtral" || type == "switchyard_moe",
           "{}: key 'model_type' is '{}', expected 'mixtral' or 'switchyard_moe' (the layouts "
           "switchyard trains)",
           source, type.empty() ? "missing" : type);
  refuse_unsupported(hf);
  if (!hf.has("switchyard")) {
    LmConfig c = type == "mixtral" ? from_mixtral_keys(hf) : from_switchyard_keys(hf);
    with_context(source, [&] { c.validate(); });
    return c;
  }
  const nlohmann::json& block = json.at("switchyard");
  SY_CHECK(block.is_object() && block.contains("lm_config"),
           "{}: key 'switchyard' is {}, expected an object with 'lm_config'", source, block.dump());
  // Compared as JSON: a float or a string is a mismatch, not a conversion.
  SY_CHECK(block.contains("format_version") && block.at("format_version") == kFormatVersion,
           "{}: key 'switchyard.format_version' is {}, expected {}", source,
           block.contains("format_version") ? block.at("format_version").dump() : "missing",
           kFormatVersion);
  LmConfig c = with_context(source + ": key 'switchyard.lm_config'",
                            [&] { return LmConfig::from_json(block.at("lm_config")); });
  const nlohmann::json expected = hf_config_json(c, DType::F32);
  for (const auto& item : expected.items()) {
    const std::string& key = item.key();
    if (key == "switchyard" || key == "torch_dtype") continue;
    SY_CHECK(json.contains(key), "{}: key '{}' is missing; switchyard.lm_config gives {}", source,
             key, item.value().dump());
    SY_CHECK(json.at(key) == item.value(), "{}: key '{}' is {}, but switchyard.lm_config gives {}",
             source, key, json.at(key).dump(), item.value().dump());
  }
  return c;
}

}  // namespace sy::train
