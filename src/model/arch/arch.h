// Architecture registry: one file per architecture family turns a Hugging Face config.json or a
// GGUF file's metadata into a ModelConfig. Adding an architecture is one file plus one line in
// SY_ARCHS (registry.cpp).
#pragma once

#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"

namespace sy::model {

// Typed reading of "<arch>.<key>" GGUF metadata with errors naming the file and key.
class GgufConfig {
 public:
  GgufConfig(const io::GgufFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}
  const io::GgufFile& file() const { return file_; }
  const std::string& arch() const { return arch_; }
  bool has(const std::string& key) const { return file_.has(arch_ + "." + key); }
  // Within +-kMaxConfigInt, as HfConfig's.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const {
    return has(key) ? get_int(key) : fallback;
  }
  // Finite.
  float get_float(const std::string& key) const;
  float get_float(const std::string& key, float fallback) const {
    return has(key) ? get_float(key) : fallback;
  }
  bool get_bool(const std::string& key, bool fallback) const {
    return has(key) ? file_.get_bool(arch_ + "." + key) : fallback;
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    return has(key) ? file_.get_string(arch_ + "." + key) : fallback;
  }

 private:
  const io::GgufFile& file_;
  std::string arch_;
};

struct ArchReader {
  const char* name;                    // our name, e.g. "mixtral"
  std::vector<std::string> hf_types;   // config.json model_type values it reads
  std::vector<std::string> gguf_arch;  // general.architecture values it reads
  void (*from_hf)(const HfConfig& hf, ModelConfig& config);
  void (*from_gguf)(const GgufConfig& gguf, ModelConfig& config);
};

const std::vector<ArchReader>& arch_readers();

// Shared pieces of the readers (arch/common.cpp).
// The keys every decoder has in config.json: vocab, hidden, layers, heads, kv heads, head_dim
// (default D / Hq), rms_norm_eps, rope_theta, max_position_embeddings, tie_word_embeddings,
// bos/eos ids.
void read_hf_common(const HfConfig& hf, ModelConfig& config);
// The same from GGUF: embedding_length, block_count, attention.head_count(_kv), key_length,
// layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, context_length; vocab from the
// token_embd tensor; tied when there is no output tensor; bos/eos from tokenizer.ggml.*.
void read_gguf_common(const GgufConfig& gguf, ModelConfig& config);
// GGUF files say per layer whether it is routed: blk.N.ffn_gate_inp.weight exists.
void gguf_moe_layers(const GgufConfig& gguf, ModelConfig& config);
// Qwen-MoE's layer rule: layer l is routed when l is not in mlp_only_layers, num_experts > 0 and
// (l + 1) % decoder_sparse_step == 0 (arch/qwen2_moe.cpp).
void qwen_sparse_layers(const HfConfig& hf, ModelConfig& config);
// "softmax -> top-k (-> renormalise)" routing of Mixtral, Qwen and OLMoE.
void softmax_topk_router(ModelConfig& config, bool normalize);

}  // namespace sy::model
