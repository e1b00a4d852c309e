// Internal to model/convert*.cpp: what a conversion writes, decided before any tensor is read.
// plan_tensors / gguf_metadata (convert_plan.cpp) hold the per-architecture knowledge of
// llama.cpp's converter; tokenizer_metadata (convert_vocab.cpp) its vocabulary export.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/gguf.h"
#include "model/config.h"

namespace sy::model::convert {

// How an output tensor is made from its sources (HF tensors, row-major).
enum class Transform {
  kCopy,          // one source, as it is
  kStack,         // one source per routed expert, [rows, cols] each -> [E, rows, cols]
  kPermuteHeads,  // llama.cpp's LlamaModel.permute of q/k rows within each of `heads` heads
  kKvbKeys,       // kv_b_proj [H*(nope+v), r] -> per head the nope rows transposed: [H, r, nope]
  kKvbValues,     // kv_b_proj [H*(nope+v), r] -> per head the v rows: [H, v, r]
};

struct PlannedTensor {
  std::string name;                  // GGUF name
  Shape shape;                       // row-major output shape (ggml ne reversed)
  std::vector<std::string> sources;  // HF names (kStack: expert 0, 1, ...)
  Shape source_shape;                // the shape every source must have
  Transform transform = Transform::kCopy;
  int64_t heads = 0;  // kPermuteHeads, kKvbKeys, kKvbValues
  int64_t nope = 0;   // kKvb*: key rows per head before the value rows
};

// The GGUF architecture name of a config ("llama" for mixtral, ...); throws for an architecture
// the converter does not know.
std::string gguf_arch(const ModelConfig& config);

// Every output tensor in the converter's order: token_embd, per layer attention then FFN,
// output_norm, output (when the checkpoint has lm_head.weight). `has` says whether the
// checkpoint holds an HF tensor (optional ones: biases, exp_probs_b, lm_head when tied).
std::vector<PlannedTensor> plan_tensors(const ModelConfig& config,
                                        const std::function<bool(const std::string&)>& has);

// The general.* and "<arch>.*" keys in the converter's order; `hf` is the raw config.json,
// `file_type` llama.cpp's LlamaFileType of the default type. Notes (keys GGUF cannot hold) are
// appended to `notes`.
std::vector<io::GgufKv> gguf_metadata(const ModelConfig& config, const HfConfig& hf,
                                      const std::string& name, uint32_t file_type,
                                      std::vector<std::string>& notes);

// tokenizer.ggml.* (and tokenizer.chat_template) for the tokenizer files in `folder`, or none
// when it has no tokenizer.json / tokenizer.model; a tokenizer that cannot be represented is a
// note, not an error (the model still converts).
std::vector<io::GgufKv> tokenizer_metadata(const std::string& folder, const ModelConfig& config,
                                           const HfConfig& hf, std::vector<std::string>& notes);

}  // namespace sy::model::convert
