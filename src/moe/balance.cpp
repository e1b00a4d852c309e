#include "moe/balance.h"

#include <algorithm>

namespace sy::moe {

RouterStats router_stats(const Routing& routing, const DispatchPlan& plan) {
  RouterStats s;
  s.tokens = plan.num_tokens;
  s.kept = plan.rows();
  s.slots = plan.dense ? plan.rows() : plan.slot_row.numel();
  s.entropy = routing.entropy;
  s.losses = routing.losses;
  s.tokens_per_expert.resize(static_cast<size_t>(plan.num_experts));
  for (int64_t e = 0; e < plan.num_experts; ++e) {
    s.tokens_per_expert[e] = plan.offsets[e + 1] - plan.offsets[e];
  }
  if (plan.num_experts > 0 && s.kept > 0) {
    const double mean = static_cast<double>(s.kept) / static_cast<double>(plan.num_experts);
    double var = 0.0;
    for (const int64_t n : s.tokens_per_expert) var += (n - mean) * (n - mean);
    var /= static_cast<double>(plan.num_experts);
    s.load_cv = std::sqrt(var) / mean;
    const int64_t max = *std::max_element(s.tokens_per_expert.begin(), s.tokens_per_expert.end());
    s.max_vio = (static_cast<double>(max) - mean) / mean;
  }
  if (!plan.dense) {
    if (s.slots > 0) s.dropped_fraction = static_cast<double>(plan.dropped) / s.slots;
    int64_t empty = 0;
    for (int64_t t = 0; t < plan.num_tokens; ++t) {
      empty += plan.token_offsets[t + 1] == plan.token_offsets[t] ? 1 : 0;
    }
    if (plan.num_tokens > 0) s.no_expert_fraction = static_cast<double>(empty) / plan.num_tokens;
  }
  return s;
}

}  // namespace sy::moe
