// The score-plus-selection-bias gate shared by `loss_free` (Wang et al. 2024) and `deepseek`
// (DeepSeek-V2/V3), routing.md A6:
//   s = sigmoid(x W^T) or softmax(x W^T)                       scores, f32 [T, E]
//   selection: top-K of s + b (b: per-expert bias buffer, no gradient), optionally restricted to
//              the topk_group best of n_group equal expert groups (group score: sum of the top-2
//              biased scores in the group, or their max)
//   weight:    the UNBIASED s of each chosen expert, optionally / (sum of the K chosen + 1e-20),
//              then * routed_scaling_factor
//   end_step:  b_e += rate * sign(mean_e c - c_e), c_e = selections of expert e over the training
//              forwards since the previous end_step
// plus DeepSeek's sequence-wise balance loss (see SeqAux below).
//
// Legend: T tokens, D model width, E experts, K picks per token, G groups.
#pragma once

#include <string>
#include <vector>

#include "moe/routing/common.h"
#include "moe/routing/router.h"

namespace sy::moe {

struct BiasedScoreConfig {
  bool sigmoid = true;                 // false: softmax scores
  bool normalize = false;              // divide the K weights by their sum (+ 1e-20)
  double routed_scaling_factor = 1.0;  // multiplies every weight
  int64_t n_group = 1;                 // expert groups (must divide E)
  int64_t topk_group = 1;              // groups a token may use
  bool group_score_max = false;        // group score = max (V2) instead of sum of top-2 (V3)
  bool report_seq_aux = false;         // list "seq_balance" in Routing::losses
  double seq_aux_coeff = 0.0;
  double bias_update_rate = 1e-3;              // u; 0 freezes the bias
  std::string bias_name = "gate.expert_bias";  // buffer name after the spec's prefix
};

class BiasedScoreRouter : public Router {
 public:
  BiasedScoreRouter(const RouterSpec& spec, const BiasedScoreConfig& config);

  std::string_view name() const override { return name_; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {&gate_.weight()}; }
  // The selection bias, f32 [E] (fp32 state, never a gradient).
  std::vector<Param*> buffers() override { return {&bias_}; }
  void init(Rng& rng) override { gate_.init(rng); }

  // Slots token-major, choice-minor (best biased score first).
  //
  // seq_balance (DeepSeek-V3 eq. 17-20): the T tokens are B = T / seq_len sequences (seq_len 0:
  // one); per sequence, f_e = E / (K T_s) * #{t : e in plain top-K of the unbiased s_t} and
  // P_e = mean_t s'_{t,e}, s' = s / sum_e s (the identity for softmax scores);
  // value = mean over sequences of sum_e f_e P_e. f is a constant; gradient flows through P.
  Routing forward(const RouterInput& in) override;
  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override;
  void end_step() override;

 private:
  std::string name_;
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  BiasedScoreConfig config_;
  LinearGate gate_;
  Param bias_;
  std::vector<double> counts_;  // selections per expert since the last end_step (training only)
};

}  // namespace sy::moe
