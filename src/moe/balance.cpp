#include "moe/balance.h"

#include <algorithm>

namespace sy::moe {

LoadBalance load_balance(const std::vector<int64_t>& load) {
  LoadBalance b;
  if (load.empty()) return b;
  int64_t total = 0, max = 0;
  for (const int64_t n : load) {
    total += n;
    max = std::max(max, n);
  }
  if (total <= 0) return b;
  const auto experts = static_cast<double>(load.size());
  const double mean = static_cast<double>(total) / experts;
  double var = 0.0;
  for (const int64_t n : load) var += (n - mean) * (n - mean);
  var /= experts;
  b.load_cv = std::sqrt(var) / mean;
  b.max_vio = (static_cast<double>(max) - mean) / mean;
  return b;
}

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
  const LoadBalance b = load_balance(s.tokens_per_expert);
  s.load_cv = b.load_cv;
  s.max_vio = b.max_vio;
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
