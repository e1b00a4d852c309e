#include "model/model.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "kernels/activations.h"
#include "kernels/embedding.h"
#include "model/weights.h"

namespace sy::model {

struct Model::Block {
  Tensor attn_norm, ffn_norm;  // [D]
  std::unique_ptr<Attention> attention;
  // Dense SwiGLU: gate/up [F, D], down [D, F].
  Tensor gate, up, down;
  std::unique_ptr<moe::MoeLayer> moe;
  int64_t routing_index = -1;  // into routing_
};

namespace {

// Replaces a parameter's value by a loaded tensor of the same shape, and drops its gradient
// (inference only).
void set_param(Param& p, Tensor value, const std::string& source) {
  SY_CHECK(value.shape() == p.value.shape(), "{}: '{}' is {}, expected {}", source, p.name,
           shape_str(value.shape()), shape_str(p.value.shape()));
  p.value = std::move(value);
  p.grad = Tensor();
}

Param* find_param(const std::vector<Param*>& params, const std::string& suffix) {
  for (Param* p : params) {
    if (p->name.size() >= suffix.size() &&
        p->name.compare(p->name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return p;
    }
  }
  return nullptr;
}

Param& need_param(const std::vector<Param*>& params, const std::string& suffix) {
  Param* p = find_param(params, suffix);
  SY_CHECK(p != nullptr, "internal: the MoE layer has no parameter '*{}'", suffix);
  return *p;
}

std::unique_ptr<moe::MoeLayer> load_moe(const ModelConfig& c, const LayerWeights& w, int64_t layer,
                                        const std::string& source) {
  moe::MoeLayerOptions opts;
  opts.d_model = c.hidden_size;
  opts.d_ff = c.expert_ffn;
  opts.num_experts = c.num_experts;
  opts.router.name = c.router;
  opts.router.top_k = c.top_k;
  opts.router.options = c.router_options;
  opts.shared_experts = c.shared_experts;
  opts.shared_d_ff = c.shared_ffn;
  opts.shared_gate = c.shared_gate;
  opts.prefix = "model.layers." + std::to_string(layer) + ".mlp.";
  auto moe = std::make_unique<moe::MoeLayer>(opts);
  const int64_t d = c.hidden_size, f = c.expert_ffn, e = c.num_experts;
  const std::string& m = c.hf.moe;
  std::vector<Param*> params = moe->params();
  for (Param* b : moe->buffers()) params.push_back(b);
  set_param(need_param(params, "gate.weight"),
            w.read(m + "gate.weight", "ffn_gate_inp.weight", {e, d}), source);
  if (Param* bias = find_param(params, "gate.e_score_correction_bias");
      bias != nullptr && w.has(m + "gate.e_score_correction_bias", "exp_probs_b.bias")) {
    set_param(*bias, w.read(m + "gate.e_score_correction_bias", "exp_probs_b.bias", {e}), source);
  }
  moe::InMemoryExperts& experts = moe->experts();
  set_param(experts.gate_proj(), w.experts("gate", f, d), source);
  set_param(experts.up_proj(), w.experts("up", f, d), source);
  set_param(experts.down_proj(), w.experts("down", d, f), source);
  if (c.shared_experts > 0) {
    const int64_t fs = c.shared_experts * c.shared_ffn;
    const std::string& s = c.hf.shared;
    set_param(need_param(params, "shared_experts.gate_proj.weight"),
              w.read(m + s + "gate_proj.weight", "ffn_gate_shexp.weight", {fs, d}), source);
    set_param(need_param(params, "shared_experts.up_proj.weight"),
              w.read(m + s + "up_proj.weight", "ffn_up_shexp.weight", {fs, d}), source);
    set_param(need_param(params, "shared_experts.down_proj.weight"),
              w.read(m + s + "down_proj.weight", "ffn_down_shexp.weight", {d, fs}), source);
    if (c.shared_gate) {
      set_param(need_param(params, "shared_expert_gate.weight"),
                w.read(m + "shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", {1, d}),
                source);
    }
  }
  for (Param* p : params) p->grad = Tensor();
  return moe;
}

}  // namespace

Model::Model(ModelConfig config) : config_(std::move(config)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path) {
  std::unique_ptr<Model> model(new Model(load_config(path)));
  const ModelConfig& c = model->config_;
  const std::unique_ptr<WeightReader> reader = open_weights(path, c);
  const std::string& source = reader->path();
  const int64_t d = c.hidden_size, v = c.vocab_size;
  const bool gguf = c.gguf;
  model->embed_ = reader->read(gguf ? "token_embd.weight" : "model.embed_tokens.weight", {v, d});
  model->norm_ = reader->read(gguf ? "output_norm.weight" : "model.norm.weight", {d});
  const std::string head = gguf ? "output.weight" : "lm_head.weight";
  model->head_ =
      c.tie_embeddings && !reader->has(head) ? model->embed_ : reader->read(head, {v, d});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights w(*reader, c, l);
    auto block = std::make_unique<Block>();
    block->attn_norm = w.read("input_layernorm.weight", "attn_norm.weight", {d});
    block->ffn_norm = w.read("post_attention_layernorm.weight", "ffn_norm.weight", {d});
    block->attention = std::make_unique<Attention>(c, w);
    if (c.moe_layer[static_cast<size_t>(l)]) {
      block->moe = load_moe(c, w, l, source);
      block->routing_index = static_cast<int64_t>(model->routing_.size());
      model->routing_.push_back({l, 0, std::vector<int64_t>(static_cast<size_t>(c.num_experts))});
    } else {
      const int64_t f = c.dense_ffn;
      block->gate = w.read("mlp.gate_proj.weight", "ffn_gate.weight", {f, d});
      block->up = w.read("mlp.up_proj.weight", "ffn_up.weight", {f, d});
      block->down = w.read("mlp.down_proj.weight", "ffn_down.weight", {d, f});
    }
    model->blocks_.push_back(std::move(block));
  }
  return model;
}

KvCache Model::new_cache(int64_t capacity) const {
  SY_CHECK(capacity > 0, "KV cache capacity is {}, expected > 0", capacity);
  KvCache cache;
  cache.capacity = capacity;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    cache.k.push_back(Tensor::zeros({capacity, config_.num_kv_heads, config_.key_dim()}));
    cache.v.push_back(Tensor::zeros({capacity, config_.num_kv_heads, config_.value_dim()}));
  }
  return cache;
}

void Model::reset_routing() {
  for (LayerRouting& r : routing_) {
    r.tokens = 0;
    std::fill(r.tokens_per_expert.begin(), r.tokens_per_expert.end(), 0);
  }
}

Tensor Model::ffn(Block& block, const Tensor& x) {
  if (block.moe) {
    Tensor y = block.moe->forward(x, Tensor(), /*training=*/false, nullptr);
    LayerRouting& r = routing_[static_cast<size_t>(block.routing_index)];
    const moe::RouterStats& stats = block.moe->stats();
    r.tokens += stats.tokens;
    for (size_t e = 0; e < r.tokens_per_expert.size() && e < stats.tokens_per_expert.size(); ++e) {
      r.tokens_per_expert[e] += stats.tokens_per_expert[e];
    }
    return y;
  }
  const Tensor gate = linear(x, block.gate);
  const Tensor up = linear(x, block.up);
  Tensor hidden = Tensor::empty(gate.shape());
  kernels::swiglu_forward(hidden, gate, up);
  return linear(hidden, block.down);
}

Tensor Model::forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits) {
  const auto t = static_cast<int64_t>(tokens.size());
  SY_CHECK(t > 0, "forward: no tokens");
  SY_CHECK(static_cast<int64_t>(cache.k.size()) == config_.num_layers,
           "forward: the KV cache has {} layers, the model {}", cache.k.size(), config_.num_layers);
  SY_CHECK(cache.length + t <= cache.capacity,
           "forward: {} tokens do not fit the KV cache ({} of {} positions used)", t, cache.length,
           cache.capacity);
  Tensor ids = Tensor::zeros({t}, DType::I32);
  std::copy(tokens.begin(), tokens.end(), ids.mutable_data<int32_t>());
  Tensor x = Tensor::empty({t, config_.hidden_size});
  kernels::embedding_forward(x, embed_, ids);
  const int64_t past = cache.length;
  float* px = x.mutable_data<float>();
  const auto add = [&](const Tensor& y) {
    const float* py = y.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) px[i] += py[i];
  };
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = *blocks_[l];
    add(b.attention->forward(rms_norm(x, b.attn_norm, config_.norm_eps), past, cache.k[l],
                             cache.v[l]));
    add(ffn(b, rms_norm(x, b.ffn_norm, config_.norm_eps)));
  }
  cache.length = past + t;
  Tensor last = all_logits ? x : x.slice_rows(t - 1, t);
  return linear(rms_norm(last, norm_, config_.norm_eps), head_);
}

}  // namespace sy::model
