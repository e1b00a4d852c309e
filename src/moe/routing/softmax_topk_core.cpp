#include "moe/routing/softmax_topk_core.h"

#include <algorithm>
#include <cmath>

#include "kernels/softmax.h"
#include "kernels/topk.h"

namespace sy::moe {
namespace {

struct SoftmaxTopKSaved : RouterSaved {
  Tensor probs;                // f32 [T, E] full softmax
  Tensor noise;                // f32 [T, D] jitter factors; undefined without jitter
  Tensor x_routed;             // f32 [T, D] x * noise; undefined without jitter
  std::vector<float> lse;      // [T] logsumexp of each token's logits (z-loss)
  std::vector<double> d_p_lb;  // [E] d(load-balance)/dp, constant over tokens
};

}  // namespace

SoftmaxTopKRouter::SoftmaxTopKRouter(const RouterSpec& spec, const SoftmaxTopKConfig& config)
    : name_(spec.name),
      where_(router_where(spec)),
      experts_(spec.num_experts),
      top_k_(spec.top_k),
      d_model_(spec.d_model),
      config_(config),
      gate_(spec.prefix, spec.num_experts, spec.d_model) {
  SY_CHECK(config.jitter_eps >= 0.0 && config.jitter_eps < 1.0,
           "{}: jitter_eps = {}, expected 0 <= jitter_eps < 1", where_, config.jitter_eps);
  SY_CHECK(config.aux_loss_coeff >= 0.0, "{}: aux_loss_coeff = {}, expected >= 0", where_,
           config.aux_loss_coeff);
  SY_CHECK(config.z_loss_coeff >= 0.0, "{}: z_loss_coeff = {}, expected >= 0", where_,
           config.z_loss_coeff);
}

Routing SoftmaxTopKRouter::forward(const RouterInput& in) {
  const int64_t tokens = check_router_input(in, d_model_, where_);
  const int64_t e_count = experts_, k = top_k_;
  auto saved = std::make_shared<SoftmaxTopKSaved>();

  // Router jitter (Switch): the router sees x * noise, the experts the clean x.
  const Tensor* x_routed = &in.x;
  if (in.training && config_.jitter_eps > 0.0) {
    SY_CHECK(in.rng != nullptr, "{}: jitter_eps > 0 in training needs RouterInput.rng", where_);
    const float lo = static_cast<float>(1.0 - config_.jitter_eps);
    const float hi = static_cast<float>(1.0 + config_.jitter_eps);
    saved->noise = Tensor::zeros(in.x.shape());
    saved->x_routed = Tensor::zeros(in.x.shape());
    float* noise = saved->noise.mutable_data<float>();
    float* xr = saved->x_routed.mutable_data<float>();
    const float* x = in.x.data<float>();
    for (int64_t i = 0; i < in.x.numel(); ++i) {
      noise[i] = in.rng->uniform(lo, hi);
      xr[i] = x[i] * noise[i];
    }
    x_routed = &saved->x_routed;
  }

  Tensor logits = Tensor::zeros({tokens, e_count});
  saved->probs = Tensor::zeros({tokens, e_count});
  Tensor values = Tensor::zeros({tokens, k});
  Tensor idx = Tensor::zeros({tokens, k}, DType::I32);
  Tensor weight = Tensor::zeros({tokens * k});
  if (tokens > 0) {
    gate_.forward(logits, *x_routed);
    kernels::softmax_forward(saved->probs, logits);
    // Softmax over the K chosen logits ranks the logits themselves; the other two rank p.
    kernels::topk_forward(values, idx,
                          config_.weights == TopKWeights::kSoftmaxOverK ? logits : saved->probs);
  }
  const float* v = values.data<float>();
  float* w = weight.mutable_data<float>();
  for (int64_t t = 0; t < tokens; ++t) {
    const float* vt = v + t * k;
    float* wt = w + t * k;
    switch (config_.weights) {
      case TopKWeights::kRaw:
        std::copy(vt, vt + k, wt);
        break;
      case TopKWeights::kRenormalized: {
        double s = 0.0;
        for (int64_t j = 0; j < k; ++j) s += vt[j];
        for (int64_t j = 0; j < k; ++j) wt[j] = static_cast<float>(vt[j] / s);
        break;
      }
      case TopKWeights::kSoftmaxOverK: {
        double s = 0.0;  // vt[0] is the largest chosen logit
        for (int64_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(vt[j] - vt[0]));
        for (int64_t j = 0; j < k; ++j) {
          wt[j] = static_cast<float>(std::exp(static_cast<double>(vt[j] - vt[0])) / s);
        }
        break;
      }
    }
  }

  Routing routing = token_choice_slots(idx, std::move(weight));
  const float* p = saved->probs.data<float>();
  routing.entropy = mean_normalized_entropy(p, tokens, e_count);
  if (config_.report_losses) {
    const double lb = load_balance_loss(p, idx.data<int32_t>(), tokens, e_count, k, saved->d_p_lb);
    const double z = z_loss(logits.data<float>(), tokens, e_count, saved->lse);
    routing.losses.push_back({"load_balance", lb, config_.aux_loss_coeff});
    routing.losses.push_back({"z_loss", z, config_.z_loss_coeff});
  }
  routing.saved = std::move(saved);
  return routing;
}

void SoftmaxTopKRouter::backward(const RouterInput& in, const Routing& routing,
                                 const RoutingGrad& grad, Tensor& d_x) {
  const auto& saved = saved_state<SoftmaxTopKSaved>(routing, where_);
  const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.probs.dim(0), where_);
  const int64_t e_count = experts_, k = top_k_;
  if (tokens == 0) return;

  Tensor d_logits = Tensor::zeros({tokens, e_count});
  Tensor d_probs = Tensor::zeros({tokens, e_count});
  float* dl = d_logits.mutable_data<float>();
  float* dp = d_probs.mutable_data<float>();
  topk_weights_backward(config_.weights != TopKWeights::kRaw, grad.d_weight.data<float>(),
                        routing.weight.data<float>(), routing.expert.data<int32_t>(), tokens, k,
                        e_count, dp, dl);
  if (config_.report_losses) {
    load_balance_backward(dp, saved.d_p_lb, tokens, e_count, config_.aux_loss_coeff);
  }
  kernels::softmax_backward(d_logits, d_probs, saved.probs);
  if (config_.report_losses) {
    z_loss_backward(dl, saved.probs.data<float>(), saved.lse, tokens, e_count,
                    config_.z_loss_coeff);
  }

  if (!saved.noise.defined()) {
    gate_.backward(d_x, d_logits, in.x);
    return;
  }
  // Jitter: logits = (x * noise) W^T, so d_x = (d_logits W) * noise and d_W uses x * noise.
  Tensor d_xr = Tensor::zeros(in.x.shape());
  gate_.backward(d_xr, d_logits, saved.x_routed);
  d_x.expect_shape(in.x.shape(), (where_ + ": d_x").c_str());
  float* dx = d_x.mutable_data<float>();
  const float* dxr = d_xr.data<float>();
  const float* noise = saved.noise.data<float>();
  for (int64_t i = 0; i < d_xr.numel(); ++i) dx[i] += dxr[i] * noise[i];
}

}  // namespace sy::moe
