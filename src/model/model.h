// A decoder-only MoE language model loaded from a checkpoint, for inference: token embedding,
// L blocks of RMSNorm -> attention -> residual -> RMSNorm -> (routed MoE | dense SwiGLU) ->
// residual, final RMSNorm, LM head. The same code runs every architecture in model/arch/; what
// differs is in ModelConfig.
//
// This is the f32 reference path: weights are f32 (f32 files memory-mapped, other dtypes and
// GGUF quant types dequantized at load).
//
// Legend: T tokens of this call, D width, V vocab, L layers, E experts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/blocks/attention.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/linear.h"
#include "model/weights.h"
#include "moe/moe_layer.h"

namespace sy::model {

// Expert usage of one routed layer, summed over every forward since the last reset.
struct LayerRouting {
  int64_t layer = 0;
  int64_t tokens = 0;
  std::vector<int64_t> tokens_per_expert;  // [E]
};

class Model {
 public:
  // Reads the config (load_config) and every weight; throws sy::Error naming the file and the
  // tensor when one is missing or has the wrong shape.
  static std::unique_ptr<Model> load(const std::string& path);
  // The model of `config` (validated) with weights from `reader` (names in the format
  // config.gguf says); benchmarks build random-weight models of real shapes this way.
  static std::unique_ptr<Model> build(ModelConfig config, const WeightReader& reader);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }

  // An empty cache for up to `capacity` positions; keys and values stored as `dtype` (f16 halves
  // the bytes decode reads per step; f32 is exact).
  KvCache new_cache(int64_t capacity, DType dtype = DType::F16) const;

  // Runs `tokens` (ids in [0, V)) at positions [cache.length, cache.length + T), appends their
  // keys and values to the cache, and returns the logits f32 [T, V] (all_logits) or f32 [1, V]
  // of the last token. Throws when the cache lacks room or an id is out of range.
  Tensor forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits);

  // Expert usage per routed layer since the last reset_routing().
  const std::vector<LayerRouting>& routing() const { return routing_; }
  void reset_routing();

  // Bytes of weights one decode step reads: every attention and dense matrix, the router, K
  // routed experts and the shared experts of every routed layer, one embedding row and the LM
  // head (the numerator of the decode bandwidth bound).
  uint64_t decode_weight_bytes() const;
  // Multiply-adds per token of every matrix product a forward runs (attention scores excluded).
  int64_t matmul_flops_per_token() const;

 private:
  struct Block;
  explicit Model(ModelConfig config);
  // ids: i32 [T] the tokens (routers that hash them read them).
  Tensor ffn(Block& block, const Tensor& x, const Tensor& ids);

  ModelConfig config_;
  Linear embed_, head_;  // [V, D] (the head is the embedding when tied)
  Tensor norm_;          // [D]
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<LayerRouting> routing_;
};

}  // namespace sy::model
