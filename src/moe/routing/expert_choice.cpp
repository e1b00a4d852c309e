// `expert_choice` (Zhou et al. 2022, routing.md A2): S = softmax(x W^T) over experts for each
// token; every expert then takes its C highest-scoring tokens, C = ceil(T * capacity_factor / E)
// (at most T), with weight S[t, e]. A token may get 0..E experts; nothing is ever dropped by the
// layer's capacity because each expert already holds exactly C slots.
// Options:
//   capacity_factor  2   average experts per token (the paper's EC-CF2)
// No auxiliary loss: experts fill to capacity by construction (flaxformer reports 0).
// spec.top_k is not used (capacity_factor plays its role).
// Not causal: an expert's pick for token t depends on the scores of every token in the batch, so
// causal() is false and a causal LM must opt in.
// Slots expert-major: slot e*C + c is expert e's c-th best token (choice = c); ties go to the
// lower token index.
#include <algorithm>
#include <cmath>

#include "kernels/softmax.h"
#include "kernels/topk.h"
#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

struct ExpertChoiceSaved : RouterSaved {
  Tensor probs;  // f32 [T, E]
};

class ExpertChoiceRouter : public Router {
 public:
  explicit ExpertChoiceRouter(const RouterSpec& spec)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        d_model_(spec.d_model),
        gate_(spec.prefix, spec.num_experts, spec.d_model) {
    OptionReader opts(spec);
    capacity_factor_ = opts.get_double("capacity_factor", 2.0);
    opts.finish();
    SY_CHECK(capacity_factor_ > 0.0 && std::isfinite(capacity_factor_),
             "{}: capacity_factor = {}, expected > 0", where_, capacity_factor_);
  }

  std::string_view name() const override { return "expert_choice"; }
  int64_t num_experts() const override { return experts_; }
  bool causal() const override { return false; }
  std::vector<Param*> params() override { return {&gate_.weight()}; }
  void init(Rng& rng) override { gate_.init(rng); }

  // Tokens per expert for a batch of T tokens.
  int64_t capacity(int64_t tokens) const {
    if (tokens == 0) return 0;
    const double c =
        std::ceil(static_cast<double>(tokens) * capacity_factor_ / static_cast<double>(experts_));
    return std::clamp<int64_t>(static_cast<int64_t>(c), 1, tokens);
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    const int64_t e_count = experts_, cap = capacity(tokens);
    auto saved = std::make_shared<ExpertChoiceSaved>();
    saved->probs = Tensor::zeros({tokens, e_count});
    Tensor scores_t = Tensor::zeros({e_count, tokens});  // S^T: one row per expert
    Tensor values = Tensor::zeros({e_count, cap});
    Tensor idx = Tensor::zeros({e_count, cap}, DType::I32);
    if (tokens > 0) {
      Tensor logits = Tensor::zeros({tokens, e_count});
      gate_.forward(logits, in.x);
      kernels::softmax_forward(saved->probs, logits);
      const float* p = saved->probs.data<float>();
      float* st = scores_t.mutable_data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t e = 0; e < e_count; ++e) st[e * tokens + t] = p[t * e_count + e];
      }
      kernels::topk_forward(values, idx, scores_t);
    }
    const int64_t n = e_count * cap;
    Routing r;
    r.token = idx.reshape({n});
    r.weight = values.reshape({n});
    r.expert = Tensor::zeros({n}, DType::I32);
    r.choice = Tensor::zeros({n}, DType::I32);
    int32_t* ex = r.expert.mutable_data<int32_t>();
    int32_t* ch = r.choice.mutable_data<int32_t>();
    for (int64_t s = 0; s < n; ++s) {
      ex[s] = static_cast<int32_t>(s / cap);
      ch[s] = static_cast<int32_t>(s % cap);
    }
    r.entropy = mean_normalized_entropy(saved->probs.data<float>(), tokens, e_count);
    r.saved = std::move(saved);
    return r;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override {
    const auto& saved = saved_state<ExpertChoiceSaved>(routing, where_);
    const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.probs.dim(0), where_);
    if (tokens == 0) return;
    // weight[s] = S[token[s], expert[s]]: scatter d_weight into dS, then through the softmax.
    Tensor d_probs = Tensor::zeros({tokens, experts_});
    float* dp = d_probs.mutable_data<float>();
    const float* dg = grad.d_weight.data<float>();
    const int32_t* tok = routing.token.data<int32_t>();
    const int32_t* ex = routing.expert.data<int32_t>();
    for (int64_t s = 0; s < routing.weight.numel(); ++s) dp[tok[s] * experts_ + ex[s]] += dg[s];
    Tensor d_logits = Tensor::zeros({tokens, experts_});
    kernels::softmax_backward(d_logits, d_probs, saved.probs);
    gate_.backward(d_x, d_logits, in.x);
  }

 private:
  std::string where_;
  int64_t experts_;
  int64_t d_model_;
  double capacity_factor_ = 2.0;
  LinearGate gate_;
};

}  // namespace

std::unique_ptr<Router> make_expert_choice_router(const RouterSpec& spec) {
  validate_spec(spec, /*check_top_k=*/false);
  return std::make_unique<ExpertChoiceRouter>(spec);
}

}  // namespace sy::moe
