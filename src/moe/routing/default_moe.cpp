// `default_moe`: Default MoE, dense router gradients from EMA "default outputs" (Panda,
// Baherwani et al. 2025, arXiv 2504.12463; routing.md A5). A top-K softmax router (the
// `topk_softmax` gate, reused by composition) plus one buffer Ê [E, D] holding, per expert, an
// exponential moving average of that expert's mean output. Every token adds, for each expert
// it did NOT choose, that expert's default vector scaled by its raw softmax probability:
//   y_t = sum_{e in A_t} g_te E_e(x_t) + extra_out_t
//   extra_out_t = sum_{e not in A_t} p_te Ê_e
// (the paper's y = sum_{i in A} π_i E_i(x) + sum_{i not in A} π_i Ê_i, π = softmax(W x)).
// The layer adds extra_out to its output; it costs one [T, E] x [E, D] product and no expert
// FLOPs. Ê is a constant of the graph, so the router gets dL/dp_te = <dL/dy_t, Ê_e> for every
// unchosen expert (a dense router gradient) while the experts stay sparse.
//
// Options:
//   normalize       false  weights of the K chosen experts: false = raw p (the paper's π, so
//                          the K weights and the default weights sum to 1); true = p / sum of
//                          the K chosen p (HF Mixtral). The default term always uses raw p.
//   aux_loss_coeff  0      Switch load-balancing loss (as in topk_softmax)
//   z_loss_coeff    0      ST-MoE router z-loss (as in topk_softmax)
//   ema_beta        0.95   β of the EMA below; 0.95 is the value of the public
//                          reimplementation routing.md cites. The official code
//                          (vatsal0/default-moe) could not be read here: unverified.
//
// When Ê moves: observe_expert_outputs (the layer calls it after the experts ran, in training)
// only accumulates each expert's output rows; end_step applies, for every expert that got at
// least one row since the previous end_step, Ê_e <- β Ê_e + (1 - β) * (mean of those rows), and
// leaves experts without rows unchanged. The paper updates once per training batch; deferring
// to end_step keeps Ê fixed between a micro-batch's forward and its backward (so the gradient is
// exact for the function computed) and, under gradient accumulation, averages over the whole
// step's batch. Ê starts at zero, so training starts as plain top-K routing. Forward snapshots
// the Ê it used for its backward.
//
// Chosen means the router's top-K: a chosen slot the layer drops by capacity gets no default term.
// Inference: the default term is kept (extra_out is produced in eval too), so the model
// evaluates the same function it was trained as.
//
// Slots as topk_softmax: token-major, choice-minor (slot t*K + j is token t's j-th most probable
// expert). Causal: a token's routing and default term depend on its own x and the EMA only.
//
// Buffer `<prefix>default_moe.ema`, f32 [E, D], checkpointed, no gradient.
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/softmax.h"
#include "moe/routing/common.h"
#include "moe/routing/options.h"
#include "moe/routing/softmax_topk_core.h"

namespace sy::moe {
namespace {

struct DefaultMoeSaved : RouterSaved {
  std::shared_ptr<RouterSaved> inner;  // the top-K gate's own saved state
  Tensor probs;                        // f32 [T, E] p = softmax(x W^T)
  Tensor ema;                          // f32 [E, D] the Ê this forward used
};

class DefaultMoeRouter final : public Router {
 public:
  DefaultMoeRouter(const RouterSpec& spec, const SoftmaxTopKConfig& config, double beta)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model),
        beta_(beta),
        inner_(spec, config),
        ema_(Param::buffer(spec.prefix + "default_moe.ema", {spec.num_experts, spec.d_model})),
        sums_(static_cast<size_t>(spec.num_experts * spec.d_model), 0.0),
        counts_(static_cast<size_t>(spec.num_experts), 0) {}

  std::string_view name() const override { return inner_.name(); }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return inner_.params(); }
  std::vector<Param*> buffers() override { return {&ema_}; }
  void init(Rng& rng) override { inner_.init(rng); }
  bool wants_expert_outputs() const override { return true; }

  Routing forward(const RouterInput& in) override;
  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override;
  void observe_expert_outputs(const Tensor& row_expert, const Tensor& row_out) override;
  void end_step() override;

 private:
  Param& gate() { return *inner_.params().front(); }

  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  double beta_;
  SoftmaxTopKRouter inner_;
  Param ema_;
  std::vector<double> sums_;     // [E * D] output rows per expert since the last end_step
  std::vector<int64_t> counts_;  // [E] rows per expert since the last end_step
};

Routing DefaultMoeRouter::forward(const RouterInput& in) {
  Routing routing = inner_.forward(in);  // validates x
  const int64_t tokens = in.x.dim(0), e_count = experts_, k = top_k_;
  auto saved = std::make_shared<DefaultMoeSaved>();
  saved->inner = std::move(routing.saved);
  saved->ema = ema_.value.clone();
  saved->probs = Tensor::zeros({tokens, e_count});
  routing.extra_out = Tensor::zeros({tokens, d_model_});
  if (tokens > 0) {
    Tensor logits = Tensor::zeros({tokens, e_count});
    kernels::gemm(logits, in.x, gate().value, {.trans_b = true});
    kernels::softmax_forward(saved->probs, logits);
    // p with each token's K chosen experts zeroed: the weights of the default vectors.
    Tensor masked = saved->probs.clone();
    float* m = masked.mutable_data<float>();
    const int32_t* ex = routing.expert.data<int32_t>();
    for (int64_t i = 0; i < tokens * k; ++i) m[(i / k) * e_count + ex[i]] = 0.0f;
    kernels::gemm(routing.extra_out, masked, saved->ema);
  }
  routing.saved = std::move(saved);
  return routing;
}

void DefaultMoeRouter::backward(const RouterInput& in, const Routing& routing,
                                const RoutingGrad& grad, Tensor& d_x) {
  const auto& saved = saved_state<DefaultMoeSaved>(routing, where_);
  const int64_t tokens = check_router_input(in, d_model_, where_);
  check_backward_tokens(tokens, saved.probs.dim(0), where_);
  SY_CHECK(grad.d_out.defined(),
           "{}: backward needs RoutingGrad.d_out (the layer output's gradient, f32 [T, D]) for "
           "the default-vector term",
           where_);
  grad.d_out.expect_dtype(DType::F32, (where_ + ": d_out").c_str());
  grad.d_out.expect_shape({tokens, d_model_}, (where_ + ": d_out").c_str());

  // The chosen experts' weights (and the aux losses) through the top-K gate's own backward.
  Routing inner_routing = routing;
  inner_routing.saved = saved.inner;
  inner_.backward(in, inner_routing, grad, d_x);
  if (tokens == 0) return;

  // extra_out = masked(p) Ê  =>  d masked(p) = d_out Ê^T, zero at the chosen experts.
  const int64_t e_count = experts_, k = top_k_;
  Tensor d_probs = Tensor::zeros({tokens, e_count});
  kernels::gemm(d_probs, grad.d_out, saved.ema, {.trans_b = true});
  float* dp = d_probs.mutable_data<float>();
  const int32_t* ex = routing.expert.data<int32_t>();
  for (int64_t i = 0; i < tokens * k; ++i) dp[(i / k) * e_count + ex[i]] = 0.0f;
  Tensor d_logits = Tensor::zeros({tokens, e_count});
  kernels::softmax_backward(d_logits, d_probs, saved.probs);
  // logits = x W^T  =>  d_x += d_logits W, d_W += d_logits^T x.
  Param& w = gate();
  kernels::gemm(d_x, d_logits, w.value, {.accumulate = true});
  kernels::gemm(w.grad, d_logits, in.x, {.trans_a = true, .accumulate = true});
}

void DefaultMoeRouter::observe_expert_outputs(const Tensor& row_expert, const Tensor& row_out) {
  SY_CHECK(row_expert.defined() && row_out.defined(),
           "{}: observe_expert_outputs: row_expert and row_out must be defined", where_);
  row_expert.expect_dtype(DType::I32, (where_ + ": row_expert").c_str());
  row_expert.expect_shape({-1}, (where_ + ": row_expert").c_str());
  row_out.expect_dtype(DType::F32, (where_ + ": row_out").c_str());
  row_out.expect_shape({row_expert.numel(), d_model_}, (where_ + ": row_out").c_str());
  const int32_t* ex = row_expert.data<int32_t>();
  const float* out = row_out.data<float>();
  const int64_t rows = row_expert.numel(), d = d_model_;
  for (int64_t r = 0; r < rows; ++r) {
    SY_CHECK(ex[r] >= 0 && ex[r] < experts_,
             "{}: observe_expert_outputs: row {} has expert {}, expected 0 <= expert < {}", where_,
             r, ex[r], experts_);
  }
  for (int64_t r = 0; r < rows; ++r) {
    double* sum = sums_.data() + static_cast<size_t>(ex[r]) * static_cast<size_t>(d);
    for (int64_t j = 0; j < d; ++j) sum[j] += out[r * d + j];
    ++counts_[static_cast<size_t>(ex[r])];
  }
}

void DefaultMoeRouter::end_step() {
  float* ema = ema_.value.mutable_data<float>();
  const int64_t d = d_model_;
  for (int64_t e = 0; e < experts_; ++e) {
    const int64_t count = counts_[static_cast<size_t>(e)];
    if (count == 0) continue;  // experts that got no rows keep their default vector
    const double* sum = sums_.data() + static_cast<size_t>(e * d);
    for (int64_t j = 0; j < d; ++j) {
      const double mean = sum[j] / static_cast<double>(count);
      ema[e * d + j] = static_cast<float>(beta_ * ema[e * d + j] + (1.0 - beta_) * mean);
    }
  }
  std::fill(sums_.begin(), sums_.end(), 0.0);
  std::fill(counts_.begin(), counts_.end(), 0);
}

}  // namespace

std::unique_ptr<Router> make_default_moe_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  const bool normalize = opts.get_bool("normalize", false);
  SoftmaxTopKConfig config;
  config.aux_loss_coeff = opts.get_double("aux_loss_coeff", 0.0);
  config.z_loss_coeff = opts.get_double("z_loss_coeff", 0.0);
  const double beta = opts.get_double("ema_beta", 0.95);
  opts.finish();
  SY_CHECK(beta >= 0.0 && beta < 1.0, "{}: ema_beta = {}, expected 0 <= ema_beta < 1", opts.where(),
           beta);
  config.weights = normalize ? TopKWeights::kRenormalized : TopKWeights::kRaw;
  return std::make_unique<DefaultMoeRouter>(spec, config, beta);
}

}  // namespace sy::moe
