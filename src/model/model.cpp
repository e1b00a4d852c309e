#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "kernels/activations.h"
#include "model/blocks/linear_experts.h"
#include "model/weights.h"

namespace sy::model {

struct Model::Block {
  Tensor attn_norm, ffn_norm;  // [D]
  std::unique_ptr<Attention> attention;
  // Dense SwiGLU (dense layers) or the shared experts (routed layers): gate/up [F, D],
  // down [D, F]; shared_gate f32 [1, D] (Qwen2-MoE).
  Linear gate, up, down;
  Tensor shared_gate;
  std::unique_ptr<moe::MoeLayer> moe;
  uint64_t expert_bytes = 0;   // one routed expert's weights
  int64_t routing_index = -1;  // into routing_
};

namespace {

std::unique_ptr<moe::MoeLayer> load_moe(const ModelConfig& c, const LayerWeights& w, int64_t layer,
                                        uint64_t& expert_bytes) {
  moe::MoeLayerOptions opts;
  opts.d_model = c.hidden_size;
  opts.d_ff = c.expert_ffn;
  opts.num_experts = c.num_experts;
  opts.router.name = c.router;
  opts.router.top_k = c.top_k;
  opts.router.options = c.router_options;
  opts.prefix = "model.layers." + std::to_string(layer) + ".mlp.";
  const int64_t d = c.hidden_size, f = c.expert_ffn;
  const std::string& m = c.hf.moe;
  // The experts go straight into the layer: a default layer would first allocate every expert's
  // f32 weights and gradients (3.2 GB per OLMoE layer) only to drop them.
  auto bank = std::make_unique<LinearExperts>(d, f, w.experts("gate", f, d), w.experts("up", f, d),
                                              w.experts("down", d, f));
  expert_bytes = bank->expert_bytes();
  auto moe = moe::MoeLayer::with_bank(opts, std::move(bank));
  // The router's parameters and buffers by their names after the layer prefix: the gate [E, D]
  // of most routers, and whatever else a router keeps (DeepSeek-V3's selection bias, a
  // loss-free bias, X-MoE's projection and temperature, Default MoE's EMA, ...). Parameters are
  // required; a buffer the file lacks keeps its initial value (other tools' checkpoints have
  // none). GGUF names exist for the gate and DeepSeek's bias only.
  const auto gguf_name = [](const std::string& suffix) -> std::string {
    if (suffix == "gate.weight") return "ffn_gate_inp.weight";
    if (suffix == "gate.e_score_correction_bias") return "exp_probs_b.bias";
    return "";
  };
  for (Param* p : moe->params()) p->grad = Tensor();
  for (Param* p : moe->router().params()) {
    const std::string suffix = p->name.substr(opts.prefix.size());
    SY_CHECK(!c.gguf || !gguf_name(suffix).empty(),
             "{}: router '{}' needs its parameter '{}', which GGUF files do not hold", c.source,
             c.router, suffix);
    p->value = w.read(m + suffix, gguf_name(suffix), p->value.shape());
  }
  for (Param* p : moe->buffers()) {
    const std::string suffix = p->name.substr(opts.prefix.size());
    if ((!c.gguf || !gguf_name(suffix).empty()) && w.has(m + suffix, gguf_name(suffix))) {
      p->value = w.read(m + suffix, gguf_name(suffix), p->value.shape());
    }
  }
  return moe;
}

}  // namespace

Model::Model(ModelConfig config) : config_(std::move(config)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path) {
  ModelConfig config = load_config(path);
  const std::unique_ptr<WeightReader> reader = open_weights(path, config);
  return build(std::move(config), *reader);
}

std::unique_ptr<Model> Model::build(ModelConfig config, const WeightReader& reader_ref) {
  validate_config(config);
  std::unique_ptr<Model> model(new Model(std::move(config)));
  const ModelConfig& c = model->config_;
  const WeightReader* reader = &reader_ref;
  const int64_t d = c.hidden_size, v = c.vocab_size;
  const bool gguf = c.gguf;
  model->embed_ =
      reader->read_linear(gguf ? "token_embd.weight" : "model.embed_tokens.weight", {v, d});
  model->norm_ = reader->read(gguf ? "output_norm.weight" : "model.norm.weight", {d});
  const std::string head = gguf ? "output.weight" : "lm_head.weight";
  model->head_ =
      c.tie_embeddings && !reader->has(head) ? model->embed_ : reader->read_linear(head, {v, d});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights w(*reader, c, l);
    auto block = std::make_unique<Block>();
    block->attn_norm = w.read("input_layernorm.weight", "attn_norm.weight", {d});
    block->ffn_norm = w.read("post_attention_layernorm.weight", "ffn_norm.weight", {d});
    block->attention = std::make_unique<Attention>(c, w);
    if (c.moe_layer[static_cast<size_t>(l)]) {
      block->moe = load_moe(c, w, l, block->expert_bytes);
      block->routing_index = static_cast<int64_t>(model->routing_.size());
      model->routing_.push_back({l, 0, std::vector<int64_t>(static_cast<size_t>(c.num_experts))});
      if (c.shared_experts > 0) {
        const int64_t fs = c.shared_experts * c.shared_ffn;
        const std::string s = c.hf.moe + c.hf.shared;
        block->gate = w.linear(s + "gate_proj.weight", "ffn_gate_shexp.weight", {fs, d});
        block->up = w.linear(s + "up_proj.weight", "ffn_up_shexp.weight", {fs, d});
        block->down = w.linear(s + "down_proj.weight", "ffn_down_shexp.weight", {d, fs});
        if (c.shared_gate) {
          block->shared_gate =
              w.read(c.hf.moe + "shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", {1, d});
        }
      }
    } else {
      const int64_t f = c.dense_ffn;
      block->gate = w.linear("mlp.gate_proj.weight", "ffn_gate.weight", {f, d});
      block->up = w.linear("mlp.up_proj.weight", "ffn_up.weight", {f, d});
      block->down = w.linear("mlp.down_proj.weight", "ffn_down.weight", {d, f});
    }
    model->blocks_.push_back(std::move(block));
  }
  return model;
}

uint64_t Model::decode_weight_bytes() const {
  uint64_t total = embed_.nbytes() / static_cast<uint64_t>(embed_.rows()) + head_.nbytes();
  for (const auto& b : blocks_) {
    total += b->attention->weight_bytes();
    if (b->gate.defined()) total += b->gate.nbytes() + b->up.nbytes() + b->down.nbytes();
    if (b->moe) {
      total += static_cast<uint64_t>(config_.top_k) * b->expert_bytes;
      // The router's gate (f32 [E, D]: OLMoE's is 512 KiB a layer) and whatever else it keeps.
      for (const Param* p : b->moe->router().params()) total += p->value.nbytes();
    }
  }
  return total;
}

int64_t Model::matmul_flops_per_token() const {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size;
  int64_t macs = c.vocab_size * d;
  for (const auto& b : blocks_) {
    if (c.mla) {
      const MlaConfig& m = c.mla_dims;
      const int64_t qk = m.qk_nope_dim + m.qk_rope_dim;
      macs += m.q_lora_rank > 0 ? m.q_lora_rank * d + c.num_heads * qk * m.q_lora_rank
                                : c.num_heads * qk * d;
      macs += (m.kv_lora_rank + m.qk_rope_dim) * d +
              c.num_heads * (m.qk_nope_dim + m.v_head_dim) * m.kv_lora_rank;
      macs += d * c.num_heads * m.v_head_dim;
    } else {
      macs += (c.num_heads + 2 * c.num_kv_heads) * c.head_dim * d + d * c.num_heads * c.head_dim;
    }
    if (b->gate.defined()) macs += 3 * b->gate.rows() * d;
    if (b->moe) macs += c.top_k * 3 * c.expert_ffn * d + c.num_experts * d;
  }
  return 2 * macs;
}

KvCache Model::new_cache(int64_t capacity, DType dtype) const {
  SY_CHECK(dtype == DType::F32 || dtype == DType::F16, "KV cache dtype {}, expected f32 or f16",
           dtype_name(dtype));
  SY_CHECK(capacity > 0, "KV cache capacity is {}, expected > 0", capacity);
  KvCache cache;
  cache.capacity = capacity;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    cache.k.push_back(Tensor::zeros({config_.num_kv_heads, capacity, config_.key_dim()}, dtype));
    cache.v.push_back(Tensor::zeros({config_.num_kv_heads, capacity, config_.value_dim()}, dtype));
  }
  return cache;
}

void Model::reset_routing() {
  for (LayerRouting& r : routing_) {
    r.tokens = 0;
    std::fill(r.tokens_per_expert.begin(), r.tokens_per_expert.end(), 0);
  }
}

Tensor Model::ffn(Block& block, const Tensor& x, const Tensor& ids) {
  Tensor y;
  if (block.moe) {
    y = block.moe->forward(x, ids, /*training=*/false, nullptr);
    LayerRouting& r = routing_[static_cast<size_t>(block.routing_index)];
    const moe::RouterStats& stats = block.moe->stats();
    r.tokens += stats.tokens;
    for (size_t e = 0; e < r.tokens_per_expert.size() && e < stats.tokens_per_expert.size(); ++e) {
      r.tokens_per_expert[e] += stats.tokens_per_expert[e];
    }
    if (!block.gate.defined()) return y;
  }
  Tensor gate = Tensor::empty({x.dim(0), block.gate.rows()});
  Tensor up = Tensor::empty({x.dim(0), block.up.rows()});
  apply_all(x, {{&block.gate, &gate}, {&block.up, &up}});
  Tensor hidden = Tensor::empty(gate.shape());
  kernels::swiglu_forward(hidden, gate, up);
  Tensor out = block.down.apply(hidden);
  if (!block.moe) return out;
  // Shared experts: added to the routed output, scaled by sigmoid(x . w_g) for Qwen2-MoE.
  const int64_t t = x.dim(0), d = x.dim(1);
  float* py = y.mutable_data<float>();
  const float* po = out.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    float scale = 1.0f;
    if (block.shared_gate.defined()) {
      double dot = 0.0;
      for (int64_t j = 0; j < d; ++j) {
        dot += static_cast<double>(x.data<float>()[i * d + j]) * block.shared_gate.data<float>()[j];
      }
      scale = static_cast<float>(1.0 / (1.0 + std::exp(-dot)));
    }
    for (int64_t j = 0; j < d; ++j) py[i * d + j] += scale * po[i * d + j];
  }
  return y;
}

Tensor Model::forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits) {
  const auto t = static_cast<int64_t>(tokens.size());
  SY_CHECK(t > 0, "forward: no tokens");
  SY_CHECK(static_cast<int64_t>(cache.k.size()) == config_.num_layers,
           "forward: the KV cache has {} layers, the model {}", cache.k.size(), config_.num_layers);
  SY_CHECK(cache.length + t <= cache.capacity,
           "forward: {} tokens do not fit the KV cache ({} of {} positions used)", t, cache.length,
           cache.capacity);
  Tensor x = Tensor::empty({t, config_.hidden_size});
  Tensor ids = Tensor::empty({t}, DType::I32);  // for routers that hash token ids
  for (int64_t i = 0; i < t; ++i) {
    const int32_t id = tokens[static_cast<size_t>(i)];
    SY_CHECK(id >= 0 && id < config_.vocab_size,
             "forward: token {} at position {} is outside the vocabulary [0, {})", id, i,
             config_.vocab_size);
    embed_.row(id, x.mutable_data<float>() + i * config_.hidden_size);
    ids.mutable_data<int32_t>()[i] = id;
  }
  const int64_t past = cache.length;
  float* px = x.mutable_data<float>();
  const int64_t numel = x.numel();
  const auto add = [&](const Tensor& y) {
    const float* py = y.data<float>();
    for (int64_t i = 0; i < numel; ++i) px[i] += py[i];
  };
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = *blocks_[l];
    add(b.attention->forward(rms_norm(x, b.attn_norm, config_.norm_eps), past, cache.k[l],
                             cache.v[l]));
    add(ffn(b, rms_norm(x, b.ffn_norm, config_.norm_eps), ids));
  }
  cache.length = past + t;
  Tensor last = all_logits ? x : x.slice_rows(t - 1, t);
  return head_.apply(rms_norm(last, norm_, config_.norm_eps));
}

}  // namespace sy::model
