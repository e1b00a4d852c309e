// Random-weight models of real shapes for the decode and prefill benchmarks: every matrix in one
// ggml block type (random blocks with a fixed small scale, so activations stay finite), norms
// near 1 and routers in f32 as llama-quantize leaves them. The weights are generated in memory,
// so they are resident when timed.
#pragma once

#include <string>
#include <vector>

#include "core/ggml_types.h"
#include "model/config.h"
#include "model/weights.h"

namespace sy::bench {

struct ModelShape {
  std::string name;  // "olmoe", "mixtral8l"
  model::ModelConfig config;
};

// OLMoE-1B-7B (16 layers, hidden 2048, 16 heads, 64 experts top-8, expert FFN 1024, vocab 50304)
// and Mixtral scaled to 8 layers (hidden 1024, 32 heads, 8 kv heads, 8 experts top-2, FFN 3584,
// vocab 32000).
std::vector<ModelShape> bench_model_shapes();

class RandomWeights final : public model::WeightReader {
 public:
  RandomWeights(const model::ModelConfig& config, GgmlType type, uint64_t seed);
  const std::string& path() const override { return path_; }
  bool has(const std::string& name) const override;
  Tensor read(const std::string& name, const Shape& shape) const override;
  model::Linear read_linear(const std::string& name, const Shape& shape) const override;

 private:
  GgmlType type_;
  uint64_t seed_;
  std::string path_;
};

}  // namespace sy::bench
