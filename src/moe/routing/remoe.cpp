// `remoe`: ReLU routing with an adaptive L1 penalty (Wang, Zhu, Chen, ICLR 2025, arXiv
// 2412.14711; routing.md A4; reference code thu-ml/ReMoE `ReLURouter` and its training.py).
//   gates   g = relu(x W^T)                      f32 [T, E], W = <prefix>gate.weight [E, D]
//   slots   every (t, e) with g[t, e] > 0 is a slot of weight g[t, e]: a token may get 0..E
//           experts (0: the layer adds nothing routed for it, only shared experts). N varies.
//           Slot order: token-major; within a token by descending g, ties by lower expert
//           (choice = that rank), like the other token-choice routers' "best first".
//   L1      load_balance: L = E / (K T^2) * sum_e n_e * sum_t g[t, e], n_e = #{t : g[t, e] > 0}
//           (a constant: no gradient), i.e. Switch's aux-loss formula with ReLU gates (ReMoE's
//           code; the paper's load-balanced L1 with f_e = E n_e / (K T)). Plain:
//           L = (1/T) sum_t ||g_t||_1 (the paper's L1; the n_e = K T / E special case).
//           Reported as AuxLoss{"l1_reg", L, lambda}; backward adds lambda * dL/dg, which is
//           a constant per expert on every active (t, e). One layer's L, not averaged over
//           layers (the paper's 1/L only rescales lambda, which the controller adapts anyway).
//   ReLU'   0 at g = 0 (torch's convention): a (t, e) with logit <= 0 gets no gradient at all,
//           matching "no slot, no compute".
//   lambda  buffer <prefix>remoe.l1_coeff f32 [1] (checkpointed, fp32 as ReMoE keeps it), set
//           to lambda0 at construction and by init(). Training forwards record the sparsity
//           S = 1 - N / (T E); end_step() averages S over the training forwards since the last
//           end_step and sets lambda *= alpha if S < target_sparsity, else lambda /= alpha
//           (ReMoE training.py: `if sparsity < target: coeff *= multiplier else: coeff /=
//           multiplier`). No training forward since the last end_step: lambda stays. ReMoE
//           shares one lambda across layers and averages S over layers; here each layer's
//           router keeps its own.
// Options (defaults from the paper / ReMoE's transformer_config.py):
//   target_sparsity  1 - top_k / E  S* (ReMoE: 1 - k/E, so K experts per token on average)
//   lambda0          1e-8           initial lambda (moe_relu_l1_reg_coeff_init)
//   alpha            1.2            controller step (moe_relu_l1_reg_coeff_multiplier)
//   load_balance     true           the load-balanced L1 (the one ReMoE's code uses); false:
//                                   plain L1
// ReMoE's optional input jitter (off by default there) is left out.
// Entropy: mean over tokens with at least one active expert of H(g_t / sum_e g_t) / log(E);
// tokens without experts are excluded (RouterStats::no_expert_fraction counts them); NaN when
// no token has one.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

struct ReMoeSaved : RouterSaved {
  std::vector<double> d_l1;  // [E] dL1/dg[t, e] on every active (t, e)
  double lambda = 0.0;       // lambda at forward time (the loss's coeff)
};

struct ReMoeConfig {
  double target_sparsity = 0.0;
  double lambda0 = 1e-8;
  double alpha = 1.2;
  bool load_balance = true;
};

class ReMoeRouter : public Router {
 public:
  ReMoeRouter(const RouterSpec& spec, const ReMoeConfig& config)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model),
        config_(config),
        gate_(spec.prefix, spec.num_experts, spec.d_model),
        lambda_(Param::buffer(spec.prefix + "remoe.l1_coeff", {1})) {
    lambda_.value.fill(static_cast<float>(config_.lambda0));
  }

  std::string_view name() const override { return "remoe"; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {&gate_.weight()}; }
  std::vector<Param*> buffers() override { return {&lambda_}; }
  void init(Rng& rng) override {
    gate_.init(rng);
    lambda_.value.fill(static_cast<float>(config_.lambda0));
    sparsity_sum_ = 0.0;
    forwards_ = 0;
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    const int64_t e_count = experts_;
    Tensor logits = Tensor::zeros({tokens, e_count});
    if (tokens > 0) gate_.forward(logits, in.x);
    const float* l = logits.data<float>();

    // Active (t, e) pairs, token-major, each token's by descending gate (ties: lower expert).
    std::vector<int32_t> tok, ex, ch;
    std::vector<float> wt;
    std::vector<double> active_per_expert(static_cast<size_t>(e_count), 0.0);
    std::vector<double> gate_sum(static_cast<size_t>(e_count), 0.0);
    std::vector<int32_t> order;
    order.reserve(static_cast<size_t>(e_count));
    std::vector<float> dist(static_cast<size_t>(e_count));
    double entropy_sum = 0.0;
    int64_t routed_tokens = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      const float* row = l + t * e_count;
      order.clear();
      double row_sum = 0.0;
      for (int64_t e = 0; e < e_count; ++e) {
        if (row[e] > 0.0f) {
          order.push_back(static_cast<int32_t>(e));
          active_per_expert[static_cast<size_t>(e)] += 1.0;
          gate_sum[static_cast<size_t>(e)] += row[e];
          row_sum += row[e];
        }
      }
      std::stable_sort(order.begin(), order.end(),
                       [row](int32_t a, int32_t b) { return row[a] > row[b]; });
      for (size_t j = 0; j < order.size(); ++j) {
        tok.push_back(static_cast<int32_t>(t));
        ex.push_back(order[j]);
        ch.push_back(static_cast<int32_t>(j));
        wt.push_back(row[order[j]]);
      }
      if (!order.empty()) {
        std::fill(dist.begin(), dist.end(), 0.0f);
        for (int32_t e : order) dist[static_cast<size_t>(e)] = static_cast<float>(row[e] / row_sum);
        entropy_sum += mean_normalized_entropy(dist.data(), 1, e_count);
        ++routed_tokens;
      }
    }

    const auto n = static_cast<int64_t>(tok.size());
    Routing r;
    r.token = Tensor::zeros({n}, DType::I32);
    r.expert = Tensor::zeros({n}, DType::I32);
    r.choice = Tensor::zeros({n}, DType::I32);
    r.weight = Tensor::zeros({n});
    std::copy(tok.begin(), tok.end(), r.token.mutable_data<int32_t>());
    std::copy(ex.begin(), ex.end(), r.expert.mutable_data<int32_t>());
    std::copy(ch.begin(), ch.end(), r.choice.mutable_data<int32_t>());
    std::copy(wt.begin(), wt.end(), r.weight.mutable_data<float>());
    r.entropy = routed_tokens > 0 ? entropy_sum / static_cast<double>(routed_tokens) : NAN;

    auto saved = std::make_shared<ReMoeSaved>();
    saved->lambda = lambda_.value.data<float>()[0];
    saved->d_l1.assign(static_cast<size_t>(e_count), 0.0);
    double l1 = 0.0;
    if (tokens > 0) {
      const auto tt = static_cast<double>(tokens);
      for (size_t e = 0; e < gate_sum.size(); ++e) {
        saved->d_l1[e] = config_.load_balance
                             ? static_cast<double>(e_count) * active_per_expert[e] /
                                   (static_cast<double>(top_k_) * tt * tt)
                             : 1.0 / tt;
        l1 += saved->d_l1[e] * gate_sum[e];
      }
      if (in.training) {
        sparsity_sum_ += 1.0 - static_cast<double>(n) / (tt * static_cast<double>(e_count));
        ++forwards_;
      }
    }
    r.losses.push_back({"l1_reg", l1, saved->lambda});
    r.saved = std::move(saved);
    return r;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override {
    const auto& saved = saved_state<ReMoeSaved>(routing, where_);
    const int64_t tokens = check_router_input(in, d_model_, where_);
    check_d_weight(grad, routing, where_);
    if (tokens == 0) return;
    // Every slot is an active (t, e): d logit = d_weight + lambda * dL1/dg; inactive pairs get 0.
    Tensor d_logits = Tensor::zeros({tokens, experts_});
    float* dl = d_logits.mutable_data<float>();
    const float* dw = grad.d_weight.data<float>();
    const int32_t* tok = routing.token.data<int32_t>();
    const int32_t* ex = routing.expert.data<int32_t>();
    for (int64_t i = 0; i < routing.weight.numel(); ++i) {
      SY_CHECK(tok[i] >= 0 && tok[i] < tokens, "{}: backward: slot {} has token {}, x has {}",
               where_, i, tok[i], tokens);
      dl[tok[i] * experts_ + ex[i]] +=
          static_cast<float>(dw[i] + saved.lambda * saved.d_l1[static_cast<size_t>(ex[i])]);
    }
    gate_.backward(d_x, d_logits, in.x);
  }

  void end_step() override {
    if (forwards_ > 0) {
      const double sparsity = sparsity_sum_ / static_cast<double>(forwards_);
      const double lambda = lambda_.value.data<float>()[0];
      const double next =
          sparsity < config_.target_sparsity ? lambda * config_.alpha : lambda / config_.alpha;
      lambda_.value.fill(static_cast<float>(next));
    }
    sparsity_sum_ = 0.0;
    forwards_ = 0;
  }

 private:
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  ReMoeConfig config_;
  LinearGate gate_;
  Param lambda_;
  double sparsity_sum_ = 0.0;  // sum of S over the training forwards since the last end_step
  int64_t forwards_ = 0;
};

}  // namespace

std::unique_ptr<Router> make_remoe_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  ReMoeConfig config;
  config.target_sparsity =
      opts.get_double("target_sparsity", 1.0 - static_cast<double>(spec.top_k) /
                                                   static_cast<double>(spec.num_experts));
  config.lambda0 = opts.get_double("lambda0", 1e-8);
  config.alpha = opts.get_double("alpha", 1.2);
  config.load_balance = opts.get_bool("load_balance", true);
  opts.finish();
  const std::string& where = opts.where();
  SY_CHECK(config.target_sparsity >= 0.0 && config.target_sparsity < 1.0,
           "{}: target_sparsity = {}, expected 0 <= target_sparsity < 1", where,
           config.target_sparsity);
  SY_CHECK(std::isfinite(config.lambda0) && config.lambda0 >= 0.0,
           "{}: lambda0 = {}, expected a finite value >= 0", where, config.lambda0);
  SY_CHECK(std::isfinite(config.alpha) && config.alpha >= 1.0,
           "{}: alpha = {}, expected a finite value >= 1", where, config.alpha);
  return std::make_unique<ReMoeRouter>(spec, config);
}

}  // namespace sy::moe
