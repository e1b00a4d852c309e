// What a checkpoint holds, before any architecture code runs: `switchyard inspect`.
// Reads a Hugging Face safetensors checkpoint (a file or a folder, with config.json beside it
// when present) or a GGUF file (or split set), lists every tensor with its dtype, shape and
// size, counts parameters (total, routed-expert, and active per token when the config gives the
// expert count and the experts per token), and checks what can be checked without knowing the
// architecture: layer count, experts per layer and embedding width against the config.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sy::model {

struct TensorSummary {
  std::string name;
  std::string dtype;  // as the file names it: "BF16", "q4_K", ...
  Shape shape;        // row-major
  int64_t numel = 0;
  uint64_t bytes = 0;
  bool routed_expert = false;  // a routed expert's weight (not a shared expert's)
};

struct CheckpointSummary {
  std::string path;
  std::string format;        // "safetensors" or "gguf"
  std::string architecture;  // config.json architectures[0] or general.architecture; "" unknown
  // Hyperparameters found in the config or metadata, by our names: layers, hidden, vocab,
  // experts, experts_per_token.
  std::map<std::string, int64_t> hparams;
  std::vector<TensorSummary> tensors;  // sorted by name
  int64_t total_params = 0;
  int64_t expert_params = 0;
  std::optional<int64_t> active_params;  // non-expert + expert * k / E, when k and E are known
  uint64_t total_bytes = 0;
  // Disagreements between the tensors and the config, one sentence each.
  std::vector<std::string> problems;
};

// Throws sy::Error (naming the file) when the checkpoint cannot be read at all; what reads but
// disagrees goes to `problems`.
CheckpointSummary inspect_checkpoint(const std::string& path);

// Human-readable report; with_tensors lists every tensor.
std::string format_summary(const CheckpointSummary& s, bool with_tensors);
// The same as one JSON object.
std::string summary_json(const CheckpointSummary& s);

}  // namespace sy::model
