// The config.json of a saved MoeLm (train/checkpoint.h): Hugging Face keys that other tools and
// switchyard's own inference reader (model/arch/switchyard.cpp) read, plus the exact LmConfig.
//
// Two layouts:
//  - "mixtral" (MixtralForCausalLM) when the model is one HF Mixtral can run: router
//    topk_softmax renormalised over the K picks (normalize true or softmax_after_topk; its aux
//    and z losses only matter in training), every layer routed, no shared experts, no QK-norm,
//    untied head. Mixtral's keys: intermediate_size is the expert width, num_local_experts,
//    num_experts_per_tok, router_aux_loss_coef, sliding_window null.
//  - "switchyard_moe" (SwitchyardMoeForCausalLM) otherwise: HF-style keys (hidden_size,
//    num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, intermediate_size for
//    the dense layers, moe_intermediate_size, num_experts, num_experts_per_tok,
//    n_shared_experts, shared_expert_intermediate_size (width of ONE shared expert),
//    shared_expert_gate, first_k_dense_replace, moe_layer_freq, rope_theta, rms_norm_eps,
//    tie_word_embeddings, qk_norm) and "router": {"name", "options", "state"}, where "state"
//    lists the router's checkpointed buffers (names after "model.layers.N.mlp."). Layer l is
//    routed when num_experts > 0, l >= first_k_dense_replace and
//    (l - first_k_dense_replace) % moe_layer_freq == 0 (DeepSeek's rule counts from layer 0
//    instead: l % moe_layer_freq == 0; ours counts from the first routed layer).
// Both carry "switchyard": {"format_version": 1, "lm_config": LmConfig::to_json()}: the training
// settings HF has no key for (capacity, init_std, seq_len, z-loss, ...), so a load gives back the
// exact config. The HF keys stay the source of truth for inference: when the block is present
// every HF key must agree with what the block implies (a hand edit of one side is refused, naming
// the key); without the block (a config written by another tool) the LmConfig is derived from
// the HF keys alone, training settings at their defaults.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/dtype.h"
#include "train/lm_config.h"

namespace sy::train {

// Whether `config` saves as Mixtral; when not and `why` is given, the first reason.
bool mixtral_expressible(const LmConfig& config, std::string* why = nullptr);

// The config.json object for `config` (validated). dtype: the parameters' storage dtype
// ("torch_dtype": "float32", "bfloat16" or "float16").
nlohmann::json hf_config_json(const LmConfig& config, DType dtype);

// The LmConfig of a config.json object (see above). `source` names the file in errors:
// "ckpt/config.json: key 'hidden_size' is 48, but switchyard.lm_config gives 32".
LmConfig lm_config_from_hf(const nlohmann::json& json, const std::string& source);

}  // namespace sy::train
