// Reading a checkpoint's tensors as f32 for the model, by the names of the file's own format.
//
// Hugging Face safetensors (a file or a sharded folder): f32 tensors are memory-mapped views (no
// copy); f16/bf16 are converted. GGUF (a file or a split set): f32 views; f16, bf16 and every
// quantized type the quant registry can dequantize are converted to f32 (the fast quantized
// kernels keep them packed; this path is the reference). ggml shapes are reversed to row-major,
// so a GGUF tensor reads with the same shape as its Hugging Face twin.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/linear.h"

namespace sy::model {

class WeightReader {
 public:
  virtual ~WeightReader() = default;
  // The file or folder, for messages.
  virtual const std::string& path() const = 0;
  virtual bool has(const std::string& name) const = 0;
  // The tensor as f32 with row-major `shape`. Throws sy::Error naming the file, the tensor, the
  // shape found and the shape expected, or the dtype that cannot be read.
  virtual Tensor read(const std::string& name, const Shape& shape) const = 0;
  // A matrix of `shape` ([N, K], or [E, N, K] read as [E*N, K]) for y = x W^T: GGUF block types,
  // f16 and bf16 stay packed (a view of the file), f32 is read as f32.
  virtual Linear read_linear(const std::string& name, const Shape& shape) const;
};

// Opens the checkpoint at `path` (as load_config accepts it) for config.gguf's format.
std::unique_ptr<WeightReader> open_weights(const std::string& path, const ModelConfig& config);

// Names of one layer's tensors in both formats, and stacked expert reads.
class LayerWeights {
 public:
  LayerWeights(const WeightReader& reader, const ModelConfig& config, int64_t layer);
  // "model.layers.<l>." + hf, or "blk.<l>." + gguf, whichever format the file is.
  std::string name(const std::string& hf, const std::string& gguf) const;
  bool has(const std::string& hf, const std::string& gguf) const;
  Tensor read(const std::string& hf, const std::string& gguf, const Shape& shape) const;
  Linear linear(const std::string& hf, const std::string& gguf, const Shape& shape) const;
  // Routed experts' weights, one [rows, cols] Linear per expert (which: "gate", "up" or
  // "down"). HF stores one tensor per expert, "<moe>experts.<j>.<proj>.weight"; GGUF one tensor
  // "ffn_<which>_exps.weight" of [E, rows, cols] (each expert a slice of it), or, in files
  // llama.cpp wrote before it stacked them (Mixtral and Grok files from before April 2024), one
  // tensor per expert, "ffn_<which>.<j>.weight", each of its own type; or gate and up fused as
  // llama.cpp's --fuse_gate_up_exps writes them, "ffn_gate_up_exps.weight" [E, 2 rows, cols]
  // (each expert's gate rows, then its up rows).
  std::vector<Linear> experts(const std::string& which, int64_t rows, int64_t cols) const;

 private:
  const WeightReader& reader_;
  const ModelConfig& config_;
  int64_t layer_;
  mutable Linear gate_up_;  // the fused gate and up tensor, once read
};

}  // namespace sy::model
