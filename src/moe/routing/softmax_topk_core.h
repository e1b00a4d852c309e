// The softmax-then-top-k gate shared by `topk_softmax`, `switch` and `dense`: one linear gate,
// p = softmax(x W^T) over all E experts, the K best experts per token, one of three weightings
// (routing.md A1.1), optional Switch load-balancing and ST-MoE z-losses, optional router jitter.
//
// Legend: T tokens, D model width, E experts, K picks per token.
#pragma once

#include <string>
#include <vector>

#include "moe/routing/common.h"
#include "moe/routing/router.h"

namespace sy::moe {

enum class TopKWeights {
  kRaw,           // g = p[e] of the full softmax (Switch, OLMoE, Qwen2-MoE: sum g < 1)
  kRenormalized,  // g = p[e] / sum_{j in K} p[j] (HF Mixtral, Qwen3-MoE)
  kSoftmaxOverK,  // g = softmax of the K chosen logits (Mixtral paper, Megatron default);
                  // identical to kRenormalized in value and gradient
};

struct SoftmaxTopKConfig {
  TopKWeights weights = TopKWeights::kRenormalized;
  bool report_losses = true;    // list load_balance and z_loss in Routing::losses
  double aux_loss_coeff = 0.0;  // alpha of the load-balancing loss
  double z_loss_coeff = 0.0;    // c_z of the router z-loss
  double jitter_eps = 0.0;      // training only: router input x * U(1 - eps, 1 + eps)
};

class SoftmaxTopKRouter : public Router {
 public:
  SoftmaxTopKRouter(const RouterSpec& spec, const SoftmaxTopKConfig& config);

  std::string_view name() const override { return name_; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {&gate_.weight()}; }
  void init(Rng& rng) override { gate_.init(rng); }

  // Slots token-major, choice-minor (slot t*K + j is token t's j-th best expert). With jitter on
  // in training, the noise is drawn from in.rng in row-major order of x, one
  // uniform(1 - eps, 1 + eps) per element.
  Routing forward(const RouterInput& in) override;
  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override;

 private:
  std::string name_;
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  SoftmaxTopKConfig config_;
  LinearGate gate_;
};

}  // namespace sy::moe
