// Router statistics: how evenly a routing spread its tokens over the experts, what capacity
// dropped, and the router's own entropy and auxiliary losses. They feed training logs, the study
// report and the server's /metrics; the layer returns them from every forward.
//
// Legend: T tokens, E experts, N routing slots.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "moe/dispatch.h"
#include "moe/routing/router.h"

namespace sy::moe {

struct RouterStats {
  int64_t tokens = 0;                      // T
  int64_t slots = 0;                       // N (sparse) or S (dense)
  int64_t kept = 0;                        // buffer rows after capacity
  std::vector<int64_t> tokens_per_expert;  // E: kept rows of each expert (dense: its slots)
  double load_cv = 0.0;           // std / mean of tokens_per_expert (population std); 0 when empty
  double max_vio = 0.0;           // (max - mean) / mean of tokens_per_expert; 0 when empty
  double dropped_fraction = 0.0;  // slots dropped by capacity / N
  double no_expert_fraction = 0.0;  // tokens left with no kept slot / T
  double entropy = NAN;             // Routing::entropy (normalised by log E)
  std::vector<AuxLoss> losses;      // Routing::losses
};

// How evenly `load` (tokens per expert) is spread: max_vio = (max - mean) / mean and load_cv =
// population std / mean; both 0 when the load is empty or all zero. router_stats uses it per
// forward; training logs and evaluation use it on loads summed over many forwards.
struct LoadBalance {
  double max_vio = 0.0;
  double load_cv = 0.0;
};
LoadBalance load_balance(const std::vector<int64_t>& load);

// Statistics of one forward. Dense routing has no drops and every token reaches every slot.
RouterStats router_stats(const Routing& routing, const DispatchPlan& plan);

}  // namespace sy::moe
