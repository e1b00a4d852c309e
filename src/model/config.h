// ModelConfig: everything the model code needs to know about an architecture instance, filled
// by an architecture's reader (model/arch/) from a Hugging Face config.json or from GGUF
// metadata, and validated once (validate_config) before any weight is read.
//
// Legend: V vocab, D hidden width, L layers, Hq query heads, Hkv kv heads, Dh head dim, E routed
// experts, K experts per token, F expert FFN width.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/rope.h"

namespace sy::io {
class GgufFile;
}

namespace sy::model {

enum class QkNorm {
  kNone,
  kPerHead,  // RMSNorm over each head's Dh values (Qwen3-MoE), weight [Dh]
  kFull,     // RMSNorm over the whole projection (OLMoE), weight [Hq*Dh] / [Hkv*Dh]
};

// Multi-head latent attention (DeepSeek-V2/V3). Queries: q_proj, or q_a_proj -> RMSNorm ->
// q_b_proj when q_lora_rank > 0; keys/values: kv_a_proj_with_mqa gives a latent of kv_lora_rank
// (RMSNorm, then kv_b_proj to per-head [nope | v]) and one shared rope key of qk_rope_dim.
struct MlaConfig {
  int64_t q_lora_rank = 0;  // 0: plain q_proj (V2-Lite)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_dim = 0;
  int64_t qk_rope_dim = 0;
  int64_t v_head_dim = 0;
};

// Tensor names that differ between Hugging Face architectures (GGUF names are shared by all).
struct HfNames {
  std::string moe = "mlp.";  // routed block prefix under model.layers.N. (Mixtral:
                             // "block_sparse_moe.")
  std::string expert_gate = "gate_proj", expert_up = "up_proj", expert_down = "down_proj";
  std::string shared = "shared_experts.";  // Qwen2-MoE: "shared_expert."
};

struct ModelConfig {
  std::string arch;  // registry name: "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2",
                     // "deepseek_v3"
  std::string source;  // the config.json or GGUF file the values came from (for messages)
  bool gguf = false;   // tensors come from GGUF (llama.cpp names and layouts)

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;  // D
  int64_t num_layers = 0;   // L
  int64_t num_heads = 0;    // Hq
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // Dh of q/k/v (GQA); MLA uses mla.* instead
  int64_t max_position = 0;
  float norm_eps = 1e-6f;
  bool tie_embeddings = false;

  // Attention.
  bool qkv_bias = false;
  QkNorm qk_norm = QkNorm::kNone;
  float clip_qkv = 0.0f;       // OLMoE: q, k, v clamped to [-clip, clip]; 0: off
  int64_t sliding_window = 0;  // 0: full causal attention
  bool mla = false;
  MlaConfig mla_dims;
  float attn_scale = 0.0f;  // softmax scale; 0: 1/sqrt(key dim) (YaRN multiplies it)

  // RoPE.
  float rope_theta = 10000.0f;
  int64_t rope_dim = 0;  // rotated dims per head (MLA: qk_rope_dim)
  kernels::RopeLayout rope_layout = kernels::RopeLayout::kNeox;
  std::optional<kernels::YarnOptions> yarn;
  float rope_attention_factor = 1.0f;  // YaRN: mscale(factor, mscale) / mscale(factor, all_dim)

  // Feed-forward. Dense layers are SwiGLU of width dense_ffn.
  int64_t dense_ffn = 0;
  std::vector<bool> moe_layer;  // [L]: routed experts in layer l
  int64_t num_experts = 0;      // E
  int64_t top_k = 0;            // K
  int64_t expert_ffn = 0;       // F
  int64_t shared_experts = 0;   // count of shared experts (their widths add up)
  int64_t shared_ffn = 0;       // width of one shared expert
  bool shared_gate = false;     // Qwen2-MoE sigmoid gate on the shared output
  std::string router;           // moe router registry name
  nlohmann::json router_options = nlohmann::json::object();

  HfNames hf;
  std::optional<int32_t> bos_id, eos_id;

  int64_t key_dim() const { return mla ? mla_dims.qk_nope_dim + mla_dims.qk_rope_dim : head_dim; }
  int64_t value_dim() const { return mla ? mla_dims.v_head_dim : head_dim; }
};

// Checks every field for consistency (positive sizes, heads dividing, rope dims even and within
// the head, top_k <= E, one entry per layer), naming `source` and the key. Fills attn_scale.
void validate_config(ModelConfig& config);

// The config of a checkpoint: `path` is a folder with config.json (safetensors), a config.json,
// or a .gguf file (first part of a split set). Unknown architectures name the supported ones.
ModelConfig load_config(const std::string& path);
// The same from what those files hold: config.json text (`source` names it in errors), or an
// opened GGUF file's metadata (and its tensor list: the vocabulary and routed layers).
ModelConfig config_from_hf_text(std::string_view text, const std::string& source);
ModelConfig config_from_gguf(const io::GgufFile& gguf);

// Every integer of a config (sizes, counts, ids, positions) lies in int32's range, so the readers'
// sums and products of two of them cannot overflow; larger values are errors naming the key.
constexpr int64_t kMaxConfigInt = (int64_t{1} << 31) - 1;
// Layer counts are also capped here, before a per-layer flag vector is sized from one (the
// deepest released models have under 200 layers).
constexpr int64_t kMaxLayers = int64_t{1} << 16;
// Throws unless 1 <= layers <= kMaxLayers, naming `source` and `key`.
void check_layer_count(int64_t layers, const std::string& source, const std::string& key);

// Typed reading of Hugging Face config.json keys with errors that name the file and the key.
class HfConfig {
 public:
  HfConfig(nlohmann::json json, std::string path);
  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return json_; }
  bool has(const std::string& key) const;         // present and not null
  int64_t get_int(const std::string& key) const;  // within +-kMaxConfigInt
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  // A number that a float holds (finite, magnitude at most FLT_MAX).
  float get_float(const std::string& key) const;
  float get_float(const std::string& key, float fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_ints(const std::string& key) const;  // absent/null: empty

 private:
  const nlohmann::json& at(const std::string& key) const;
  nlohmann::json json_;
  std::string path_;
};

}  // namespace sy::model
