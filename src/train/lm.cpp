#include "train/lm.h"

#include <fmt/format.h>

#include <cstring>
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "moe/experts.h"
#include "train/lm_attention.h"
#include "train/lm_tensors.h"

namespace sy::train {

namespace {

constexpr int32_t kIgnoreIndex = -100;  // the cross-entropy kernel's default ignore_index

// out = a + b elementwise (f32, same shapes; out may alias neither).
void add(Tensor& out, const Tensor& a, const Tensor& b) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* po = out.mutable_data<float>();
  const int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) po[i] = pa[i] + pb[i];
}

void copy(Tensor& dst, const Tensor& src) {
  std::memcpy(dst.mutable_bytes(), src.bytes(), src.nbytes());
}

}  // namespace

struct MoeLm::Block {
  Block(const LmConfig& c, int64_t l) : attn(c, l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const int64_t d = c.d_model;
    ln1 = Param::trainable(p + "input_layernorm.weight", {d}, /*decay=*/false);
    ln2 = Param::trainable(p + "post_attention_layernorm.weight", {d}, /*decay=*/false);
    if (c.is_moe_layer(l)) {
      // Field by field: g++ 12 warns (maybe-uninitialized) on a designated initializer of a
      // struct holding a json member.
      moe::MoeLayerOptions o;
      o.d_model = d;
      o.d_ff = c.moe.expert_ffn;
      o.num_experts = c.moe.num_experts;
      o.capacity = c.moe.capacity();
      o.shared_experts = c.moe.shared_experts;
      o.shared_d_ff = c.moe.shared_ffn;
      o.shared_gate = c.moe.shared_gate;
      o.causal_model = true;
      o.allow_non_causal = c.moe.allow_non_causal;
      o.prefix = p + "mlp.";
      o.router = c.router_spec(l);
      moe = with_context(fmt::format("model.layers.{}.mlp", l),
                         [&] { return std::make_unique<moe::MoeLayer>(o); });
    } else {
      gate = Param::trainable(p + "mlp.gate_proj.weight", {c.dense_ffn, d});
      up = Param::trainable(p + "mlp.up_proj.weight", {c.dense_ffn, d});
      down = Param::trainable(p + "mlp.down_proj.weight", {d, c.dense_ffn});
    }
  }

  Param ln1, ln2;
  LmAttention attn;
  std::unique_ptr<moe::MoeLayer> moe;  // null: dense SwiGLU FFN
  Param gate, up, down;                // dense FFN (HF orientation [F, D], [F, D], [D, F])
};

// Activations of one forward, kept for backward, and backward scratch. Sized for one (B, T).
struct MoeLm::Workspace {
  struct Layer {
    Tensor ln1, ln1_inv;  // f32 [N, D], [N]
    AttentionSaved attn;
    Tensor mid;           // f32 [N, D] residual stream after attention
    Tensor ln2, ln2_inv;  // f32 [N, D], [N]
    moe::FfnSaved ffn;    // dense layers: f32 [N, F] gate, up, hidden
    Tensor ffn_out;       // f32 [N, D] dense FFN output
  };
  int64_t batch = 0, seq = 0;
  Tensor positions;         // i32 [N]: t within its sequence
  std::vector<Tensor> res;  // L + 1 residual streams f32 [N, D]; res[0] is the embedding
  std::vector<Layer> layers;
  Tensor lnf, lnf_inv;  // f32 [N, D], [N]
  Tensor logits;        // f32 [N, V]
  kernels::CrossEntropySaved ce;
  // Backward scratch.
  Tensor d_logits;       // f32 [N, V]
  Tensor d_res, d_norm;  // f32 [N, D]: residual stream gradient, a norm's output gradient
  AttentionScratch attn;
};

MoeLm::MoeLm(const LmConfig& config) : config_(config), ws_(std::make_unique<Workspace>()) {
  config_.validate();
  const int64_t v = config_.vocab_size, d = config_.d_model;
  embed_ = Param::trainable("model.embed_tokens.weight", {v, d});
  for (int64_t l = 0; l < config_.n_layers; ++l)
    blocks_.push_back(std::make_unique<Block>(config_, l));
  norm_ = Param::trainable("model.norm.weight", {d}, /*decay=*/false);
  if (!config_.tie_embeddings) head_ = Param::trainable("lm_head.weight", {v, d});
}

MoeLm::~MoeLm() = default;

std::vector<Param*> MoeLm::params() {
  std::vector<Param*> out = {&embed_};
  for (auto& b : blocks_) {
    out.push_back(&b->ln1);
    for (Param* p : b->attn.params()) out.push_back(p);
    out.push_back(&b->ln2);
    if (b->moe) {
      for (Param* p : b->moe->params()) out.push_back(p);
    } else {
      out.insert(out.end(), {&b->gate, &b->up, &b->down});
    }
  }
  out.push_back(&norm_);
  if (head_.value.defined()) out.push_back(&head_);
  return out;
}

std::vector<Param*> MoeLm::buffers() {
  std::vector<Param*> out;
  for (auto& b : blocks_) {
    if (b->moe) {
      for (Param* p : b->moe->buffers()) out.push_back(p);
    }
  }
  return out;
}

void MoeLm::init(Rng& rng) {
  const auto stddev = static_cast<float>(config_.init_std);
  fill_normal(embed_.value, rng, stddev);
  for (auto& b : blocks_) {
    b->ln1.value.fill(1.0f);
    b->attn.init(rng, stddev);
    b->ln2.value.fill(1.0f);
    if (b->moe) {
      b->moe->init(rng, stddev);
    } else {
      for (Param* p : {&b->gate, &b->up, &b->down}) fill_normal(p->value, rng, stddev);
    }
  }
  norm_.value.fill(1.0f);
  if (head_.value.defined()) fill_normal(head_.value, rng, stddev);
}

void MoeLm::zero_grad() {
  for (Param* p : params()) p->grad.fill(0.0f);
}

const Tensor& MoeLm::logits() const { return ws_->logits; }

void MoeLm::end_step() {
  for (auto& b : blocks_) {
    if (b->moe) b->moe->end_step();
  }
}

std::vector<moe::MoeLayer*> MoeLm::moe_layers() {
  std::vector<moe::MoeLayer*> out;
  for (auto& b : blocks_) {
    if (b->moe) out.push_back(b->moe.get());
  }
  return out;
}

bool MoeLm::non_causal() const {
  for (const auto& b : blocks_) {
    if (b->moe && b->moe->non_causal()) return true;
  }
  return false;
}

float MoeLm::forward_backward(const Tensor& tokens, const Tensor& targets, Rng* rng,
                              bool backward) {
  tokens.expect_dtype(DType::I32, "lm.forward_backward: tokens");
  targets.expect_dtype(DType::I32, "lm.forward_backward: targets");
  SY_CHECK(tokens.rank() == 2 && tokens.dim(0) >= 1 && tokens.dim(1) >= 1,
           "lm.forward_backward: tokens: shape {}, expected [B, T] with B, T >= 1",
           shape_str(tokens.shape()));
  targets.expect_shape(tokens.shape(), "lm.forward_backward: targets");
  const int64_t batch = tokens.dim(0), seq = tokens.dim(1), vocab = config_.vocab_size;
  const int32_t* tok = tokens.data<int32_t>();
  const int32_t* tgt_ids = targets.data<int32_t>();
  for (int64_t i = 0; i < batch * seq; ++i) {
    SY_CHECK(tok[i] >= 0 && tok[i] < vocab,
             "lm.forward_backward: tokens[{}, {}] = {}, expected in [0, vocab_size = {})", i / seq,
             i % seq, tok[i], vocab);
    SY_CHECK(tgt_ids[i] == kIgnoreIndex || (tgt_ids[i] >= 0 && tgt_ids[i] < vocab),
             "lm.forward_backward: targets[{}, {}] = {}, expected in [0, vocab_size = {}) or {} "
             "(ignored)",
             i / seq, i % seq, tgt_ids[i], vocab, kIgnoreIndex);
  }
  const Tensor ids = tokens.reshape({tokens.numel()});
  const Tensor tgt = targets.reshape({targets.numel()});
  forward(ids, tgt, batch, rng, backward);
  if (backward) this->backward(ids, tgt, batch);
  return static_cast<float>(stats_.loss);
}

void MoeLm::forward(const Tensor& ids, const Tensor& targets, int64_t batch, Rng* rng,
                    bool training) {
  Workspace& w = *ws_;
  const int64_t n = ids.numel(), t = n / batch, d = config_.d_model;
  if (w.batch != batch || w.seq != t) {
    *ws_ = Workspace();
    w.batch = batch;
    w.seq = t;
    w.positions = Tensor::zeros({n}, DType::I32);
    int32_t* pos = w.positions.mutable_data<int32_t>();
    for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i % t);
    w.res.resize(blocks_.size() + 1);
    for (Tensor& r : w.res) r = Tensor::zeros({n, d});
    w.layers.resize(blocks_.size());
    for (size_t l = 0; l < blocks_.size(); ++l) {
      Workspace::Layer& a = w.layers[l];
      for (Tensor* x : {&a.ln1, &a.mid, &a.ln2}) *x = Tensor::zeros({n, d});
      a.ln1_inv = Tensor::zeros({n});
      a.ln2_inv = Tensor::zeros({n});
      if (!blocks_[l]->moe) {
        const int64_t f = config_.dense_ffn;
        for (Tensor* x : {&a.ffn.gate, &a.ffn.up, &a.ffn.hidden}) *x = Tensor::zeros({n, f});
        a.ffn_out = Tensor::zeros({n, d});
      }
    }
    w.lnf = Tensor::zeros({n, d});
    w.lnf_inv = Tensor::zeros({n});
    w.logits = Tensor::zeros({n, config_.vocab_size});
  }
  const kernels::RmsNormOptions norm{.eps = static_cast<float>(config_.norm_eps)};

  stats_ = LmStats{};
  kernels::embedding_forward(w.res[0], embed_.value, ids);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = *blocks_[l];
    Workspace::Layer& a = w.layers[l];
    kernels::rms_norm_forward(a.ln1, a.ln1_inv, w.res[l], b.ln1.value, norm);
    copy(a.mid, w.res[l]);
    b.attn.forward(a.mid, a.ln1, w.positions, batch, a.attn);
    kernels::rms_norm_forward(a.ln2, a.ln2_inv, a.mid, b.ln2.value, norm);
    if (b.moe) {
      const Tensor y = b.moe->forward(a.ln2, ids, training, rng, t);
      add(w.res[l + 1], a.mid, y);
      LmLayerStats s{.layer = static_cast<int64_t>(l), .router = b.moe->stats()};
      for (const moe::AuxLoss& loss : s.router.losses) stats_.aux += loss.coeff * loss.value;
      stats_.layers.push_back(std::move(s));
    } else {
      moe::ffn_forward(a.ffn_out, a.ln2, b.gate.value, b.up.value, b.down.value,
                       moe::Activation::kSwiGLU, a.ffn);
      add(w.res[l + 1], a.mid, a.ffn_out);
    }
  }
  kernels::rms_norm_forward(w.lnf, w.lnf_inv, w.res.back(), norm_.value, norm);
  const Tensor& head = head_.value.defined() ? head_.value : embed_.value;
  kernels::gemm(w.logits, w.lnf, head, {.trans_b = true});
  stats_.ce = kernels::cross_entropy_forward(w.ce, w.logits, targets);
  stats_.tokens = n;
  stats_.valid_tokens = w.ce.n_valid;
  stats_.loss = stats_.ce + stats_.aux;
}

void MoeLm::backward(const Tensor& ids, const Tensor& targets, int64_t batch) {
  Workspace& w = *ws_;
  const int64_t n = ids.numel(), d = config_.d_model;
  ensure_shape(w.d_logits, w.logits.shape());
  ensure_shape(w.d_res, {n, d});
  ensure_shape(w.d_norm, {n, d});

  w.d_logits.fill(0.0f);
  kernels::cross_entropy_backward(w.d_logits, 1.0f, w.logits, targets, w.ce);
  Param& head = head_.value.defined() ? head_ : embed_;
  kernels::gemm(w.d_norm, w.d_logits, head.value);
  kernels::gemm(head.grad, w.d_logits, w.lnf, {.trans_a = true, .accumulate = true});
  w.d_res.fill(0.0f);
  kernels::rms_norm_backward(w.d_res, norm_.grad, w.d_norm, w.res.back(), norm_.value, w.lnf_inv);

  // d_res holds the gradient of the residual stream; each sub-block adds its branch's share.
  for (size_t l = blocks_.size(); l-- > 0;) {
    Block& b = *blocks_[l];
    Workspace::Layer& a = w.layers[l];
    if (b.moe) {
      w.d_norm.fill(0.0f);
      b.moe->backward(w.d_res, w.d_norm);
    } else {
      moe::ffn_backward(w.d_norm, b.gate.grad, b.up.grad, b.down.grad, w.d_res, a.ln2, b.gate.value,
                        b.up.value, b.down.value, moe::Activation::kSwiGLU, a.ffn);
    }
    kernels::rms_norm_backward(w.d_res, b.ln2.grad, w.d_norm, a.mid, b.ln2.value, a.ln2_inv);
    w.d_norm.fill(0.0f);
    b.attn.backward(w.d_norm, w.d_res, a.ln1, w.positions, batch, a.attn, w.attn);
    kernels::rms_norm_backward(w.d_res, b.ln1.grad, w.d_norm, w.res[l], b.ln1.value, a.ln1_inv);
  }
  kernels::embedding_backward(embed_.grad, w.d_res, ids);
}

}  // namespace sy::train
