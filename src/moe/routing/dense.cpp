// `dense`: every token goes to all E experts, weighted by p = softmax(x W^T) — the dense MoE
// baseline (compute grows with E). Slots token-major, each token's E experts by descending p
// (choice = rank), so a capacity limit drops the least-weighted pairs first. spec.top_k is not
// used. No options, no auxiliary losses (balance is moot when every expert sees every token).
#include "moe/routing/options.h"
#include "moe/routing/softmax_topk_core.h"

namespace sy::moe {

std::unique_ptr<Router> make_dense_router(const RouterSpec& spec) {
  validate_spec(spec, /*check_top_k=*/false);
  OptionReader opts(spec);
  opts.finish();
  RouterSpec all = spec;
  all.top_k = spec.num_experts;
  SoftmaxTopKConfig config;
  config.weights = TopKWeights::kRaw;  // the full softmax already sums to 1
  config.report_losses = false;
  return std::make_unique<SoftmaxTopKRouter>(all, config);
}

}  // namespace sy::moe
