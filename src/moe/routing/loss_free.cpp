// `loss_free`: Auxiliary-Loss-Free Load Balancing (Wang et al. 2024, arXiv 2408.15664;
// routing.md A6). Scores s = sigmoid(x W^T) (or softmax); each token takes the top-K of s + b,
// where b is a per-expert bias buffer used for selection only; the weight is the unbiased s.
// After each optimizer step, b_e += u * sign(mean_e c - c_e) with c_e the tokens that chose e
// in the training forwards since the previous step. No auxiliary loss.
// Options:
//   score             "sigmoid"  or "softmax" (the paper prefers sigmoid gating)
//   normalize         false      divide the K weights by their sum (the paper's g = s)
//   bias_update_rate  1e-3       u (paper; Megatron --moe-router-bias-update-rate)
// The bias is the buffer `<prefix>gate.expert_bias` (f32 [E], checkpointed, no gradient).
#include "moe/routing/biased_score_core.h"
#include "moe/routing/options.h"

namespace sy::moe {

std::unique_ptr<Router> make_loss_free_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  BiasedScoreConfig config;
  config.sigmoid = opts.get_string("score", "sigmoid", {"sigmoid", "softmax"}) == "sigmoid";
  config.normalize = opts.get_bool("normalize", false);
  config.bias_update_rate = opts.get_double("bias_update_rate", 1e-3);
  opts.finish();
  config.bias_name = "gate.expert_bias";
  return std::make_unique<BiasedScoreRouter>(spec, config);
}

}  // namespace sy::moe
