// `switch` (Fedus et al. 2021, routing.md A1.2): top-1 of p = softmax(x W^T); the weight is the
// winner's raw probability (not renormalised, so the router learns through it).
// Options:
//   jitter_eps      0.01  training only: the router sees x * U(1 - eps, 1 + eps) elementwise
//                         (the experts see the clean x); 0.01 in the released Switch checkpoints'
//                         configs (HF `router_jitter_noise`); ST-MoE/T5X turn it off (0)
//   aux_loss_coeff  0.01  alpha of the load-balancing loss alpha * E * sum_e f_e P_e (paper)
//   z_loss_coeff    0     ST-MoE router z-loss (postdates Switch; ST-MoE uses 1e-3)
// Capacity is the layer's CapacityOptions, not a router option: Switch trains with capacity
// factor 1.25 and evaluates with 2.0 (flaxformer switch_base.gin), dropping by position with all
// first choices before later ones (DropPolicy::kPosition).
#include "moe/routing/options.h"
#include "moe/routing/softmax_topk_core.h"

namespace sy::moe {

std::unique_ptr<Router> make_switch_router(const RouterSpec& spec) {
  validate_spec(spec);
  SY_CHECK(spec.top_k == 1, "{}: top_k = {}, expected 1 (Switch routes each token to one expert)",
           router_where(spec), spec.top_k);
  OptionReader opts(spec);
  SoftmaxTopKConfig config;
  config.weights = TopKWeights::kRaw;
  config.jitter_eps = opts.get_double("jitter_eps", 0.01);
  config.aux_loss_coeff = opts.get_double("aux_loss_coeff", 0.01);
  config.z_loss_coeff = opts.get_double("z_loss_coeff", 0.0);
  opts.finish();
  return std::make_unique<SoftmaxTopKRouter>(spec, config);
}

}  // namespace sy::moe
