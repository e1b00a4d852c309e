// The per-architecture part of the converter: llama.cpp's metadata keys and tensor names
// (convert_hf_to_gguf.py: TextModel.set_gguf_parameters and the LlamaModel, Qwen2MoeModel,
// Qwen3MoeModel, OlmoeModel and DeepseekV2Model classes; gguf-py tensor_mapping.py), as
// tests/reference/model_arch_gguf.py reproduces them independently.
#include "model/convert_plan.h"

#include <utility>

#include "core/error.h"

namespace sy::model::convert {

std::string gguf_arch(const ModelConfig& c) {
  if (c.arch == "mixtral") return "llama";
  if (c.arch == "qwen2_moe") return "qwen2moe";
  if (c.arch == "qwen3_moe") return "qwen3moe";
  if (c.arch == "olmoe") return "olmoe";
  if (c.arch == "deepseek_v2" || c.arch == "deepseek_v3") return "deepseek2";
  fail(
      "{}: architecture '{}' has no GGUF conversion; supported: mixtral, qwen2_moe, qwen3_moe, "
      "olmoe, deepseek_v2, deepseek_v3",
      c.source, c.arch);
}

namespace {

// Keys in insertion order; a repeated key replaces the value in place, as gguf-py's GGUFWriter
// keeps the first position of a key set twice.
class Kvs {
 public:
  explicit Kvs(std::string arch) : arch_(std::move(arch)) {}
  void add(const std::string& key, io::GgufValue value) {
    const std::string full = key.rfind("general.", 0) == 0 ? key : arch_ + "." + key;
    for (io::GgufKv& kv : kvs_) {
      if (kv.key == full) {
        kv.value = std::move(value);
        return;
      }
    }
    kvs_.push_back({full, std::move(value)});
  }
  void u32(const std::string& key, int64_t v) {
    SY_CHECK(v >= 0 && v <= INT64_C(0xffffffff), "GGUF key '{}' would be {}, expected a u32", key,
             v);
    add(key, io::GgufValue::u32(static_cast<uint32_t>(v)));
  }
  void f32(const std::string& key, double v) {
    add(key, io::GgufValue::f32(static_cast<float>(v)));
  }
  std::vector<io::GgufKv> take() { return std::move(kvs_); }

 private:
  std::string arch_;
  std::vector<io::GgufKv> kvs_;
};

void deepseek_keys(const ModelConfig& c, const HfConfig& hf, Kvs& kv) {
  const MlaConfig& m = c.mla_dims;
  kv.u32("leading_dense_block_count", hf.get_int("first_k_dense_replace", 0));
  kv.u32("vocab_size", c.vocab_size);
  if (m.q_lora_rank > 0) kv.u32("attention.q_lora_rank", m.q_lora_rank);
  kv.u32("attention.kv_lora_rank", m.kv_lora_rank);
  // The absorbed (MQA) form llama.cpp runs; the per-head sizes go to the *_mla keys.
  kv.u32("attention.key_length", m.kv_lora_rank + m.qk_rope_dim);
  kv.u32("attention.value_length", m.kv_lora_rank);
  kv.u32("attention.key_length_mla", m.qk_nope_dim + m.qk_rope_dim);
  kv.u32("attention.value_length_mla", m.v_head_dim);
  kv.u32("expert_feed_forward_length", hf.get_int("moe_intermediate_size", 0));
  kv.u32("expert_count", hf.get_int("n_routed_experts", 0));
  kv.u32("expert_shared_count", hf.get_int("n_shared_experts", 0));
  if (hf.has("routed_scaling_factor")) {
    kv.f32("expert_weights_scale", hf.get_double("routed_scaling_factor"));
  }
  if (hf.get_bool("norm_topk_prob", false)) {
    kv.add("expert_weights_norm", io::GgufValue::boolean(true));
  }
  kv.u32("rope.dimension_count", m.qk_rope_dim);
  if (hf.has("rope_scaling")) {
    const HfConfig rs(hf.json().at("rope_scaling"), hf.path() + " rope_scaling");
    // llama.cpp stores 0.1 * mscale_all_dim and divides by 0.1 again when loading.
    if (rs.has("mscale_all_dim")) {
      kv.f32("rope.scaling.yarn_log_multiplier", 0.1 * rs.get_double("mscale_all_dim"));
    }
  }
}

}  // namespace

std::vector<io::GgufKv> gguf_metadata(const ModelConfig& c, const HfConfig& hf,
                                      const std::string& name, uint32_t file_type,
                                      std::vector<std::string>& notes) {
  const std::string arch = gguf_arch(c);
  Kvs kv(arch);
  kv.add("general.architecture", io::GgufValue::string(arch));
  kv.add("general.type", io::GgufValue::string("model"));
  kv.add("general.name", io::GgufValue::string(name));
  kv.u32("block_count", c.num_layers);
  kv.u32("context_length", hf.get_int("max_position_embeddings", c.max_position));
  kv.u32("embedding_length", c.hidden_size);
  if (hf.has("intermediate_size")) kv.u32("feed_forward_length", hf.get_int("intermediate_size"));
  kv.u32("attention.head_count", c.num_heads);
  kv.u32("attention.head_count_kv", arch == "deepseek2" ? 1 : c.num_kv_heads);  // MLA as MQA
  if (hf.has("rope_scaling")) {
    const HfConfig rs(hf.json().at("rope_scaling"), hf.path() + " rope_scaling");
    if (rs.get_string("type", rs.get_string("rope_type", "")) == "yarn") {
      kv.add("rope.scaling.type", io::GgufValue::string("yarn"));
      kv.f32("rope.scaling.factor", rs.get_double("factor"));
      kv.u32("rope.scaling.original_context_length",
             rs.get_int("original_max_position_embeddings"));
      if (rs.has("beta_fast")) kv.f32("rope.scaling.yarn_beta_fast", rs.get_double("beta_fast"));
      if (rs.has("beta_slow")) kv.f32("rope.scaling.yarn_beta_slow", rs.get_double("beta_slow"));
    }
  }
  kv.f32("rope.freq_base", hf.get_double("rope_theta", c.rope_theta));
  kv.f32("attention.layer_norm_rms_epsilon", hf.get_double("rms_norm_eps", c.norm_eps));
  for (const char* key : {"num_local_experts", "num_experts"}) {
    if (hf.has(key)) {
      kv.u32("expert_count", hf.get_int(key));
      break;
    }
  }
  if (hf.has("num_experts_per_tok")) kv.u32("expert_used_count", hf.get_int("num_experts_per_tok"));
  if (hf.has("n_group")) kv.u32("expert_group_count", hf.get_int("n_group"));
  if (hf.has("topk_group")) kv.u32("expert_group_used_count", hf.get_int("topk_group"));
  if (hf.has("scoring_func")) {
    const std::string f = hf.get_string("scoring_func", "");
    SY_CHECK(f == "softmax" || f == "sigmoid",
             "{}: key 'scoring_func' is '{}', expected 'softmax' or 'sigmoid'", hf.path(), f);
    kv.u32("expert_gating_func", f == "softmax" ? 1 : 2);
  }
  if (hf.has("head_dim")) {
    kv.u32("attention.key_length", hf.get_int("head_dim"));
    kv.u32("attention.value_length", hf.get_int("head_dim"));
  }
  kv.u32("general.file_type", file_type);
  if (arch == "llama") {
    kv.u32("vocab_size", c.vocab_size);
    kv.u32("rope.dimension_count", c.head_dim);
  } else if (arch == "qwen2moe" || arch == "qwen3moe") {
    kv.u32("expert_feed_forward_length", c.expert_ffn);
    if (hf.has("shared_expert_intermediate_size")) {
      kv.u32("expert_shared_feed_forward_length", hf.get_int("shared_expert_intermediate_size"));
    }
  } else if (arch == "olmoe") {
    kv.f32("attention.layer_norm_rms_epsilon", 1e-5);  // OlmoeModel writes 1e-5 whatever the config
    kv.u32("expert_count", c.num_experts);
    if (c.clip_qkv != 0.0f) {
      notes.push_back(fmt::format(
          "{}: clip_qkv {} has no GGUF key; the GGUF model runs without clamping q, k and v, as "
          "llama.cpp does",
          hf.path(), c.clip_qkv));
    }
  } else {
    deepseek_keys(c, hf, kv);
  }
  kv.u32("general.quantization_version", 2);
  return kv.take();
}

namespace {

class Planner {
 public:
  Planner(const ModelConfig& c, const std::function<bool(const std::string&)>& has)
      : c_(c), has_(has) {}

  std::vector<PlannedTensor> run() {
    const int64_t d = c_.hidden_size, v = c_.vocab_size;
    copy("token_embd.weight", "model.embed_tokens.weight", {v, d});
    for (int64_t l = 0; l < c_.num_layers; ++l) layer(l);
    copy("output_norm.weight", "model.norm.weight", {d});
    // A tied head has no lm_head (llama.cpp then writes no output tensor and reuses the
    // embedding); an untied one must have it.
    if (!c_.tie_embeddings || has_("lm_head.weight"))
      copy("output.weight", "lm_head.weight", {v, d});
    return std::move(out_);
  }

 private:
  void copy(std::string name, std::string source, Shape shape) {
    PlannedTensor t;
    t.name = std::move(name);
    t.shape = shape;
    t.sources = {std::move(source)};
    t.source_shape = std::move(shape);
    out_.push_back(std::move(t));
  }

  void layer(int64_t l) {
    b_ = "blk." + std::to_string(l) + ".";
    p_ = "model.layers." + std::to_string(l) + ".";
    const int64_t d = c_.hidden_size;
    copy(b_ + "attn_norm.weight", p_ + "input_layernorm.weight", {d});
    if (c_.mla) {
      mla();
    } else {
      attention();
    }
    copy(b_ + "attn_output.weight", p_ + "self_attn.o_proj.weight",
         {d, c_.num_heads * c_.value_dim()});
    copy(b_ + "ffn_norm.weight", p_ + "post_attention_layernorm.weight", {d});
    if (c_.moe_layer[static_cast<size_t>(l)]) {
      moe();
    } else {
      const int64_t f = c_.dense_ffn;
      copy(b_ + "ffn_gate.weight", p_ + "mlp.gate_proj.weight", {f, d});
      copy(b_ + "ffn_up.weight", p_ + "mlp.up_proj.weight", {f, d});
      copy(b_ + "ffn_down.weight", p_ + "mlp.down_proj.weight", {d, f});
    }
  }

  void attention() {
    const int64_t d = c_.hidden_size, dh = c_.head_dim;
    const std::string s = p_ + "self_attn.";
    const bool llama = c_.arch == "mixtral";
    const std::pair<const char*, int64_t> projs[] = {
        {"q", c_.num_heads}, {"k", c_.num_kv_heads}, {"v", c_.num_kv_heads}};
    for (const auto& [proj, heads] : projs) {
      const std::string src = s + proj + "_proj.";
      copy(b_ + "attn_" + proj + ".weight", src + "weight", {heads * dh, d});
      if (llama && proj[0] != 'v') {
        // Interleaved RoPE in llama.cpp: rows (i, i + Dh/2) of each head become (2i, 2i + 1).
        out_.back().transform = Transform::kPermuteHeads;
        out_.back().heads = heads;
      }
      if (c_.qkv_bias) copy(b_ + "attn_" + proj + ".bias", src + "bias", {heads * dh});
    }
    if (c_.qk_norm != QkNorm::kNone) {
      const bool full = c_.qk_norm == QkNorm::kFull;
      copy(b_ + "attn_q_norm.weight", s + "q_norm.weight", {full ? c_.num_heads * dh : dh});
      copy(b_ + "attn_k_norm.weight", s + "k_norm.weight", {full ? c_.num_kv_heads * dh : dh});
    }
  }

  void mla() {
    const MlaConfig& m = c_.mla_dims;
    const int64_t d = c_.hidden_size, h = c_.num_heads, qk = m.qk_nope_dim + m.qk_rope_dim;
    const std::string s = p_ + "self_attn.";
    if (m.q_lora_rank > 0) {
      copy(b_ + "attn_q_a.weight", s + "q_a_proj.weight", {m.q_lora_rank, d});
      copy(b_ + "attn_q_a_norm.weight", s + "q_a_layernorm.weight", {m.q_lora_rank});
      copy(b_ + "attn_q_b.weight", s + "q_b_proj.weight", {h * qk, m.q_lora_rank});
    } else {
      copy(b_ + "attn_q.weight", s + "q_proj.weight", {h * qk, d});
    }
    copy(b_ + "attn_kv_a_mqa.weight", s + "kv_a_proj_with_mqa.weight",
         {m.kv_lora_rank + m.qk_rope_dim, d});
    copy(b_ + "attn_kv_a_norm.weight", s + "kv_a_layernorm.weight", {m.kv_lora_rank});
    const Shape kv_b = {h * (m.qk_nope_dim + m.v_head_dim), m.kv_lora_rank};
    copy(b_ + "attn_k_b.weight", s + "kv_b_proj.weight", kv_b);
    out_.back().shape = {h, m.kv_lora_rank, m.qk_nope_dim};
    out_.back().transform = Transform::kKvbKeys;
    copy(b_ + "attn_v_b.weight", s + "kv_b_proj.weight", kv_b);
    out_.back().shape = {h, m.v_head_dim, m.kv_lora_rank};
    out_.back().transform = Transform::kKvbValues;
    for (PlannedTensor* t : {&out_[out_.size() - 2], &out_.back()}) {
      t->heads = h;
      t->nope = m.qk_nope_dim;
    }
  }

  void stack(const std::string& which, const std::string& proj, int64_t rows, int64_t cols) {
    PlannedTensor t;
    t.name = b_ + "ffn_" + which + "_exps.weight";
    t.shape = {c_.num_experts, rows, cols};
    for (int64_t j = 0; j < c_.num_experts; ++j) {
      t.sources.push_back(p_ + c_.hf.moe + "experts." + std::to_string(j) + "." + proj + ".weight");
    }
    t.source_shape = {rows, cols};
    t.transform = Transform::kStack;
    out_.push_back(std::move(t));
  }

  void moe() {
    const int64_t d = c_.hidden_size, e = c_.num_experts, f = c_.expert_ffn;
    const std::string m = p_ + c_.hf.moe;
    copy(b_ + "ffn_gate_inp.weight", m + "gate.weight", {e, d});
    if (has_(m + "gate.e_score_correction_bias")) {
      copy(b_ + "exp_probs_b.bias", m + "gate.e_score_correction_bias", {e});
    }
    stack("gate", c_.hf.expert_gate, f, d);
    stack("up", c_.hf.expert_up, f, d);
    stack("down", c_.hf.expert_down, d, f);
    if (c_.shared_experts == 0) return;
    const int64_t fs = c_.shared_experts * c_.shared_ffn;
    const std::string s = m + c_.hf.shared;
    if (c_.shared_gate)
      copy(b_ + "ffn_gate_inp_shexp.weight", m + "shared_expert_gate.weight", {1, d});
    copy(b_ + "ffn_gate_shexp.weight", s + "gate_proj.weight", {fs, d});
    copy(b_ + "ffn_up_shexp.weight", s + "up_proj.weight", {fs, d});
    copy(b_ + "ffn_down_shexp.weight", s + "down_proj.weight", {d, fs});
  }

  const ModelConfig& c_;
  const std::function<bool(const std::string&)>& has_;
  std::vector<PlannedTensor> out_;
  std::string b_, p_;  // "blk.<l>." and "model.layers.<l>."
};

}  // namespace

std::vector<PlannedTensor> plan_tensors(const ModelConfig& config,
                                        const std::function<bool(const std::string&)>& has) {
  gguf_arch(config);  // throws for an architecture without a mapping
  return Planner(config, has).run();
}

}  // namespace sy::model::convert
