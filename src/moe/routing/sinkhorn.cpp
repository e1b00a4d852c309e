// `sinkhorn`: balanced assignment by Sinkhorn scaling (S-BASE, Clark et al. 2022, the
// approximation of BASE layers' balanced linear assignment, Lewis et al. 2021), exactly as
// Megatron-Core's `--moe-router-load-balancing-type sinkhorn` (routing.md A9, B1; Megatron
// moe_utils.py `sinkhorn`, router.py `sinkhorn_load_balancing`):
//   l = x W^T                                                     logits, f32 [T, E]
//   scores s = sigmoid(l) when K = 1, softmax(l) over all E when K > 1
//   training:  C = exp(l); d0 = 1_T, d1 = 1_E; repeat
//                d0_t = (1/T) / (sum_e d1_e C_te + 1e-8)
//                d1_e = (1/E) / (sum_t d0_t C_te + 1e-8)
//              until mean_e |d1_e - d1_e(previous)| <= tol (or max_iterations rounds);
//              the K experts of each token are the top-K of d1_e C_te d0_t (no gradient)
//   eval:      the top-K of s (plain top-K; the balanced assignment needs the whole batch)
//   weight:    s_te at each chosen expert (not renormalised); the gradient flows only through
//              these weights (and the z-loss), never through the selection
// Scaling runs in double. Slots token-major, choice-minor, best first by the selection score
// (Sinkhorn-normalised in training, s in eval); ties go to the lower expert index.
//
// Options:
//   tol             1e-4  Megatron's stopping tolerance on mean |change of d1| per round
//   max_iterations  1000  cap on the rounds (Megatron has none; its loop can spin forever);
//                         tol = 0 runs exactly max_iterations rounds unless d1 stops moving
//   z_loss_coeff    0     ST-MoE router z-loss mean_t logsumexp(l_t)^2 (Megatron applies it with
//                         any load-balancing type)
// No load-balancing loss: Megatron asserts moe_aux_loss_coeff == 0 for sinkhorn, so
// aux_loss_coeff is rejected with that reason. Losses lists z_loss (value and coeff) every
// forward. Entropy: of softmax(l) for K > 1, of s / sum_e s for K = 1.
//
// Not causal: in training a token's experts depend on the logits of every token in the batch
// (later ones included) through d1, so causal() is false and a causal LM must opt in; eval
// routing is per token.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/softmax.h"
#include "kernels/topk.h"
#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

constexpr double kSinkhornEps = 1e-8;  // Megatron's eps in both scaling steps

struct SinkhornSaved : RouterSaved {
  Tensor scores;           // f32 [T, E] s (sigmoid for K = 1, softmax for K > 1)
  Tensor probs;            // f32 [T, E] softmax(l), for the z-loss (same tensor as s when K > 1)
  std::vector<float> lse;  // [T] logsumexp of each token's logits (z-loss)
};

class SinkhornRouter final : public Router {
 public:
  SinkhornRouter(const RouterSpec& spec, double tol, int64_t max_iterations, double z_loss_coeff)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model),
        tol_(tol),
        max_iterations_(max_iterations),
        z_loss_coeff_(z_loss_coeff),
        gate_(spec.prefix, spec.num_experts, spec.d_model) {}

  std::string_view name() const override { return "sinkhorn"; }
  int64_t num_experts() const override { return experts_; }
  bool causal() const override { return false; }
  std::vector<Param*> params() override { return {&gate_.weight()}; }
  void init(Rng& rng) override { gate_.init(rng); }

  Routing forward(const RouterInput& in) override;
  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override;

 private:
  // idx: i32 [T, K] written with each token's top-K of d1_e exp(l_te) d0_t.
  void sinkhorn_select(Tensor& idx, const Tensor& logits) const;

  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  double tol_;
  int64_t max_iterations_;
  double z_loss_coeff_;
  LinearGate gate_;
};

void SinkhornRouter::sinkhorn_select(Tensor& idx, const Tensor& logits) const {
  const int64_t tokens = logits.dim(0), e_count = experts_, k = top_k_;
  const float* l = logits.data<float>();
  std::vector<double> cost(static_cast<size_t>(tokens * e_count));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < e_count; ++e) {
      const double c = std::exp(static_cast<double>(l[t * e_count + e]));
      SY_CHECK(std::isfinite(c),
               "{}: logit {} of token {}, expert {} is not finite or too large for the Sinkhorn "
               "scaling exp(logit)",
               where_, l[t * e_count + e], t, e);
      cost[static_cast<size_t>(t * e_count + e)] = c;
    }
  }
  std::vector<double> d0(static_cast<size_t>(tokens), 1.0), d1(static_cast<size_t>(e_count), 1.0);
  std::vector<double> col(static_cast<size_t>(e_count));
  const double inv_t = 1.0 / static_cast<double>(tokens);
  const double inv_e = 1.0 / static_cast<double>(e_count);
  double error = 1e9;
  for (int64_t round = 0; round < max_iterations_ && error > tol_; ++round) {
    std::fill(col.begin(), col.end(), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
      const double* c = cost.data() + t * e_count;
      double s = 0.0;
      for (int64_t e = 0; e < e_count; ++e) s += d1[static_cast<size_t>(e)] * c[e];
      const double d0_t = inv_t / (s + kSinkhornEps);
      d0[static_cast<size_t>(t)] = d0_t;
      for (int64_t e = 0; e < e_count; ++e) col[static_cast<size_t>(e)] += d0_t * c[e];
    }
    error = 0.0;
    for (size_t e = 0; e < d1.size(); ++e) {
      const double next = inv_e / (col[e] + kSinkhornEps);
      error += std::abs(next - d1[e]);
      d1[e] = next;
    }
    error /= static_cast<double>(e_count);
  }
  // Top-K of d1_e C_te d0_t per token (d0_t is a positive per-row constant; kept for fidelity).
  int32_t* out = idx.mutable_data<int32_t>();
  std::vector<int32_t> order(static_cast<size_t>(e_count));
  std::vector<double> row(static_cast<size_t>(e_count));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < e_count; ++e) {
      row[static_cast<size_t>(e)] = d1[static_cast<size_t>(e)] *
                                    cost[static_cast<size_t>(t * e_count + e)] *
                                    d0[static_cast<size_t>(t)];
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      const double va = row[static_cast<size_t>(a)], vb = row[static_cast<size_t>(b)];
      return va > vb || (va == vb && a < b);
    });
    std::copy(order.begin(), order.begin() + k, out + t * k);
  }
}

Routing SinkhornRouter::forward(const RouterInput& in) {
  const int64_t tokens = check_router_input(in, d_model_, where_);
  const int64_t e_count = experts_, k = top_k_;
  auto saved = std::make_shared<SinkhornSaved>();
  Tensor logits = Tensor::zeros({tokens, e_count});
  saved->probs = Tensor::zeros({tokens, e_count});
  Tensor idx = Tensor::zeros({tokens, k}, DType::I32);
  Tensor weight = Tensor::zeros({tokens * k});
  if (tokens > 0) {
    gate_.forward(logits, in.x);
    kernels::softmax_forward(saved->probs, logits);
    if (k == 1) {
      saved->scores = Tensor::zeros({tokens, e_count});
      const float* l = logits.data<float>();
      float* s = saved->scores.mutable_data<float>();
      for (int64_t i = 0; i < logits.numel(); ++i) {
        s[i] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(l[i]))));
      }
    } else {
      saved->scores = saved->probs;
    }
    if (in.training) {
      sinkhorn_select(idx, logits);
    } else {
      // Top-K of s is top-K of l (sigmoid and softmax are monotone per row); ranking l avoids
      // ties that rounding (a saturated sigmoid) would create in s.
      Tensor values = Tensor::zeros({tokens, k});
      kernels::topk_forward(values, idx, logits);
    }
    const float* s = saved->scores.data<float>();
    const int32_t* ix = idx.data<int32_t>();
    float* w = weight.mutable_data<float>();
    for (int64_t i = 0; i < tokens * k; ++i) w[i] = s[(i / k) * e_count + ix[i]];
  } else {
    saved->scores = saved->probs;
  }

  Routing routing = token_choice_slots(idx, std::move(weight));
  if (k == 1 && tokens > 0) {
    // The sigmoid scores as a distribution over experts: s / sum_e s.
    Tensor dist = saved->scores.clone();
    float* p = dist.mutable_data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
      double sum = 0.0;
      for (int64_t e = 0; e < e_count; ++e) sum += p[t * e_count + e];
      for (int64_t e = 0; e < e_count; ++e) {
        p[t * e_count + e] = static_cast<float>(p[t * e_count + e] / sum);
      }
    }
    routing.entropy = mean_normalized_entropy(p, tokens, e_count);
  } else {
    routing.entropy = mean_normalized_entropy(saved->probs.data<float>(), tokens, e_count);
  }
  const double z = z_loss(logits.data<float>(), tokens, e_count, saved->lse);
  routing.losses.push_back({"z_loss", z, z_loss_coeff_});
  routing.saved = std::move(saved);
  return routing;
}

void SinkhornRouter::backward(const RouterInput& in, const Routing& routing,
                              const RoutingGrad& grad, Tensor& d_x) {
  const auto& saved = saved_state<SinkhornSaved>(routing, where_);
  const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.probs.dim(0), where_);
  if (tokens == 0) return;
  const int64_t e_count = experts_, k = top_k_;
  Tensor d_logits = Tensor::zeros({tokens, e_count});
  float* dl = d_logits.mutable_data<float>();
  const float* dg = grad.d_weight.data<float>();
  const int32_t* ex = routing.expert.data<int32_t>();
  const float* s = saved.scores.data<float>();
  if (k == 1) {
    // weight = sigmoid(l_te): d l_te = dg * s (1 - s).
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t i = t * e_count + ex[t];
      dl[i] += static_cast<float>(static_cast<double>(dg[t]) * s[i] * (1.0 - s[i]));
    }
  } else {
    // weight = softmax(l_t)[e] over all E: through the full softmax's backward.
    Tensor d_probs = Tensor::zeros({tokens, e_count});
    float* dp = d_probs.mutable_data<float>();
    for (int64_t i = 0; i < tokens * k; ++i) dp[(i / k) * e_count + ex[i]] += dg[i];
    kernels::softmax_backward(d_logits, d_probs, saved.probs);
  }
  z_loss_backward(dl, saved.probs.data<float>(), saved.lse, tokens, e_count, z_loss_coeff_);
  gate_.backward(d_x, d_logits, in.x);
}

}  // namespace

std::unique_ptr<Router> make_sinkhorn_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  SY_CHECK(!opts.has("aux_loss_coeff"),
           "{}: aux_loss_coeff is not supported: Sinkhorn balances the load by itself (Megatron "
           "asserts moe_aux_loss_coeff == 0 for sinkhorn routing)",
           opts.where());
  const double tol = opts.get_double("tol", 1e-4);
  const int64_t max_iterations = opts.get_int("max_iterations", 1000);
  const double z_loss_coeff = opts.get_double("z_loss_coeff", 0.0);
  opts.finish();
  SY_CHECK(tol >= 0.0 && std::isfinite(tol), "{}: tol = {}, expected a finite tol >= 0",
           opts.where(), tol);
  SY_CHECK(max_iterations >= 1, "{}: max_iterations = {}, expected >= 1", opts.where(),
           max_iterations);
  SY_CHECK(z_loss_coeff >= 0.0, "{}: z_loss_coeff = {}, expected >= 0", opts.where(), z_loss_coeff);
  return std::make_unique<SinkhornRouter>(spec, tol, max_iterations, z_loss_coeff);
}

}  // namespace sy::moe
