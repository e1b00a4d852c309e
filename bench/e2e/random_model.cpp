#include "bench/e2e/random_model.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/quant/quant.h"

namespace sy::bench {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Byte offsets of the f16 scale fields in one block of `type` (the rest of a block is codes,
// which any random bits make valid).
std::vector<size_t> scale_offsets(GgmlType type) {
  switch (type) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kIQ4_NL:
    case GgmlType::kIQ4_XS:  // its sub-block scales are codes too
      return {0};
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      return {0, 2};
    case GgmlType::kQ2_K:  // d and dmin follow the scales and codes
      return {80, 82};
    case GgmlType::kQ6_K:
      return {208};
    case GgmlType::kQ3_K:
      return {108};
    default:
      fail("bench: no random generator for ggml type {}", ggml_type_info(type).name);
  }
}

}  // namespace

std::vector<ModelShape> bench_model_shapes() {
  std::vector<ModelShape> out;
  {
    model::ModelConfig c;
    c.arch = "olmoe";
    c.source = "olmoe-1b-7b shape";
    c.gguf = true;
    c.vocab_size = 50304;
    c.hidden_size = 2048;
    c.num_layers = 16;
    c.num_heads = 16;
    c.num_kv_heads = 16;
    c.head_dim = 128;
    c.max_position = 4096;
    c.norm_eps = 1e-5f;
    c.qk_norm = model::QkNorm::kFull;
    c.moe_layer.assign(16, true);
    c.num_experts = 64;
    c.top_k = 8;
    c.expert_ffn = 1024;
    c.router = "topk_softmax";
    c.router_options = {{"normalize", false}};
    out.push_back({"olmoe", c});
  }
  {
    model::ModelConfig c;
    c.arch = "mixtral";
    c.source = "mixtral shape, 8 layers";
    c.gguf = true;
    c.vocab_size = 32000;
    c.hidden_size = 1024;
    c.num_layers = 8;
    c.num_heads = 32;
    c.num_kv_heads = 8;
    c.head_dim = 32;
    c.max_position = 4096;
    c.norm_eps = 1e-5f;
    c.rope_theta = 1e6f;
    c.rope_layout = kernels::RopeLayout::kInterleaved;
    c.moe_layer.assign(8, true);
    c.num_experts = 8;
    c.top_k = 2;
    c.expert_ffn = 3584;
    c.router = "topk_softmax";
    c.router_options = {{"normalize", true}};
    out.push_back({"mixtral8l", c});
  }
  return out;
}

RandomWeights::RandomWeights(const model::ModelConfig& config, GgmlType type, uint64_t seed)
    : type_(type),
      seed_(seed),
      path_(config.source + " (random " + std::string(ggml_type_info(type).name) + ")") {
  (void)scale_offsets(type);  // rejects types without a generator up front
}

bool RandomWeights::has(const std::string& name) const {
  // Optional tensors the loader probes: the model has an untied head and no selection bias.
  return name == "output.weight";
}

Tensor RandomWeights::read(const std::string& name, const Shape& shape) const {
  Tensor t = Tensor::zeros(shape);
  float* p = t.mutable_data<float>();
  const uint64_t base = mix(seed_ ^ std::hash<std::string>{}(name));
  const bool norm = name.find("norm") != std::string::npos;
  for (int64_t i = 0; i < t.numel(); ++i) {
    // Uniform in [-1, 1): norms 1 +- 0.05, routers (the only other f32 matrices) +- 0.05.
    const double u = static_cast<double>(mix(base + static_cast<uint64_t>(i)) >> 11) * 0x1p-53;
    p[i] = static_cast<float>((norm ? 1.0 : 0.0) + 0.05 * (2.0 * u - 1.0));
  }
  return t;
}

model::Linear RandomWeights::read_linear(const std::string& name, const Shape& shape) const {
  const int64_t cols = shape.back();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  const GgmlTypeInfo& info = ggml_type_info(type_);
  const auto row_bytes = static_cast<size_t>(ggml_row_bytes(type_, cols));
  // Not zero-filled first: every byte is written below, the pages first touched by the threads
  // that fill them.
  Tensor bytes = Tensor::empty({static_cast<int64_t>(row_bytes) * rows}, DType::U8);
  uint8_t* p = bytes.mutable_data<uint8_t>();
  const uint64_t base = mix(seed_ ^ std::hash<std::string>{}(name));
  const int64_t words = static_cast<int64_t>(bytes.nbytes() / 8);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < words; ++i) {
    const uint64_t v = mix(base + static_cast<uint64_t>(i));
    std::memcpy(p + i * 8, &v, 8);
  }
  std::fill(p + words * 8, p + bytes.nbytes(), uint8_t{0});
  // Scales: 1 / sqrt(cols) over codes of magnitude ~ half the range keeps each product's output
  // near unit size, like a trained model's.
  // iq4_xs multiplies each 32 values by a random sub-block scale of up to 32 on top.
  const float sub_block = type_ == GgmlType::kIQ4_XS ? 16.0f : 1.0f;
  const uint16_t scale = f32_to_f16(0.5f / (static_cast<float>(cols) * 0.25f * sub_block));
  const std::vector<size_t> offsets = scale_offsets(type_);
  const size_t nblocks = bytes.nbytes() / info.block_bytes;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nblocks; ++b) {
    for (const size_t off : offsets) std::memcpy(p + b * info.block_bytes + off, &scale, 2);
  }
  return model::Linear::packed(type_, rows, cols, std::move(bytes));
}

}  // namespace sy::bench
