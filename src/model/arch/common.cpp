#include <cmath>
#include <string>

#include "core/error.h"
#include "model/arch/arch.h"

namespace sy::model {

int64_t GgufConfig::get_int(const std::string& key) const {
  const int64_t v = file_.get_i64(arch_ + "." + key);
  SY_CHECK(v >= -kMaxConfigInt && v <= kMaxConfigInt,
           "{}: key '{}.{}' is {}, expected magnitude at most {}", file_.name(), arch_, key, v,
           kMaxConfigInt);
  return v;
}

float GgufConfig::get_float(const std::string& key) const {
  const float v = file_.get_f32(arch_ + "." + key);
  SY_CHECK(std::isfinite(v), "{}: key '{}.{}' is {}, expected a finite number", file_.name(), arch_,
           key, v);
  return v;
}

void read_hf_common(const HfConfig& hf, ModelConfig& c) {
  c.vocab_size = hf.get_int("vocab_size");
  c.hidden_size = hf.get_int("hidden_size");
  c.num_layers = hf.get_int("num_hidden_layers");
  check_layer_count(c.num_layers, hf.path(), "num_hidden_layers");
  c.num_heads = hf.get_int("num_attention_heads");
  c.num_kv_heads = hf.get_int("num_key_value_heads", c.num_heads);
  c.head_dim = hf.get_int("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.norm_eps = hf.get_float("rms_norm_eps", 1e-6f);
  c.rope_theta = hf.get_float("rope_theta", 10000.0f);
  c.max_position = hf.get_int("max_position_embeddings", 4096);
  c.tie_embeddings = hf.get_bool("tie_word_embeddings", false);
  if (hf.has("bos_token_id") && hf.json().at("bos_token_id").is_number_integer()) {
    c.bos_id = static_cast<int32_t>(hf.get_int("bos_token_id"));
  }
  if (hf.has("eos_token_id") && hf.json().at("eos_token_id").is_number_integer()) {
    c.eos_id = static_cast<int32_t>(hf.get_int("eos_token_id"));
  }
  c.moe_layer.assign(static_cast<size_t>(c.num_layers), true);
}

void read_gguf_common(const GgufConfig& g, ModelConfig& c) {
  const io::GgufFile& f = g.file();
  c.hidden_size = g.get_int("embedding_length");
  c.num_layers = g.get_int("block_count");
  check_layer_count(c.num_layers, f.name(), g.arch() + ".block_count");
  c.num_heads = g.get_int("attention.head_count");
  c.num_kv_heads = g.get_int("attention.head_count_kv", c.num_heads);
  c.head_dim = g.get_int("attention.key_length", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.norm_eps = g.get_float("attention.layer_norm_rms_epsilon");
  c.rope_theta = g.get_float("rope.freq_base", 10000.0f);
  c.rope_dim = g.get_int("rope.dimension_count", 0);
  c.max_position = g.get_int("context_length", 4096);
  const io::GgufTensorInfo& embd = f.tensor_info("token_embd.weight");
  SY_CHECK(embd.ne.size() == 2 && embd.ne[0] == c.hidden_size,
           "{}: tensor 'token_embd.weight' has ne {}, expected [{} (embedding_length), vocab]",
           f.name(), fmt::join(embd.ne, ", "), c.hidden_size);
  c.vocab_size = embd.ne[1];
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  if (f.has("tokenizer.ggml.bos_token_id")) {
    c.bos_id = static_cast<int32_t>(f.get_i64("tokenizer.ggml.bos_token_id"));
  }
  if (f.has("tokenizer.ggml.eos_token_id")) {
    c.eos_id = static_cast<int32_t>(f.get_i64("tokenizer.ggml.eos_token_id"));
  }
  gguf_moe_layers(g, c);
}

void gguf_moe_layers(const GgufConfig& g, ModelConfig& c) {
  c.moe_layer.assign(static_cast<size_t>(std::max<int64_t>(c.num_layers, 0)), false);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    c.moe_layer[static_cast<size_t>(l)] =
        g.file().find_tensor("blk." + std::to_string(l) + ".ffn_gate_inp.weight") != nullptr;
  }
}

void softmax_topk_router(ModelConfig& c, bool normalize) {
  c.router = "topk_softmax";
  c.router_options = {{"normalize", normalize}};
}

}  // namespace sy::model
