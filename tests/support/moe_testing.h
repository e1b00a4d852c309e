// Test helpers for the MoE layer: a router that returns a routing the test chose (so dispatch,
// experts and the layer can be checked without any real router), and random routings.
#pragma once

#include <string_view>
#include <vector>

#include "core/rng.h"
#include "moe/routing/router.h"

namespace sy::test {

// Returns the Routing it was given from every forward; backward records the gradient the layer
// handed it (cloned) and adds nothing to d_x.
class GivenRouter final : public moe::Router {
 public:
  GivenRouter(moe::Routing routing, int64_t num_experts, bool causal = true)
      : routing_(std::move(routing)), experts_(num_experts), causal_(causal) {}
  std::string_view name() const override { return "given"; }
  int64_t num_experts() const override { return experts_; }
  bool causal() const override { return causal_; }
  std::vector<Param*> params() override { return {}; }
  void init(Rng& /*rng*/) override {}
  moe::Routing forward(const moe::RouterInput& /*in*/) override { return routing_; }
  void backward(const moe::RouterInput& in, const moe::Routing& routing,
                const moe::RoutingGrad& grad, Tensor& d_x) override;

  moe::RoutingGrad last_grad;

 private:
  moe::Routing routing_;
  int64_t experts_;
  bool causal_;
};

// Token-choice routing of T tokens to K distinct experts each (slot t*K + j, choice j), with
// weights uniform in [0.1, 1).
moe::Routing random_topk_routing(int64_t tokens, int64_t experts, int64_t top_k, Rng& rng);

// Soft-MoE-shaped dense routing: dispatch [E*spe, T] and combine [T, E*spe], entries in [0, 1).
moe::Routing random_dense_routing(int64_t tokens, int64_t experts, int64_t slots_per_expert,
                                  Rng& rng);

}  // namespace sy::test
