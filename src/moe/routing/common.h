// Pieces every router shares: spec and input validation, the linear gate (logits = x W^T with
// W [E, D], the layout HF checkpoints store as `gate.weight`), mean normalised entropy, the two
// standard auxiliary losses, and the recovery of a router's saved state in backward.
//
// Legend: T tokens, D model width, E experts, K picks per token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "moe/routing/router.h"

namespace sy::moe {

// "router 'NAME'".
std::string router_where(const RouterSpec& spec);

// Throws for E < 1, top_k outside [1, E] (when check_top_k), or d_model < 1 (when needs_d_model).
void validate_spec(const RouterSpec& spec, bool check_top_k = true, bool needs_d_model = true);

// Checks in.x is f32 [T, d_model] and returns T.
int64_t check_router_input(const RouterInput& in, int64_t d_model, const std::string& where);

// Checks grad.d_weight is f32 [N] for a routing of N slots.
void check_d_weight(const RoutingGrad& grad, const Routing& routing, const std::string& where);

// Checks that backward sees as many tokens as the forward it differentiates saved.
void check_backward_tokens(int64_t tokens, int64_t forward_tokens, const std::string& where);

// A backward's checks in order, check_router_input, check_d_weight, check_backward_tokens
// (forward_tokens: the rows the forward saved); returns T.
int64_t check_backward(const RouterInput& in, int64_t d_model, const RoutingGrad& grad,
                       const Routing& routing, int64_t forward_tokens, const std::string& where);

// The router's linear projection. Its parameter is `<prefix>gate.weight`, f32 [E, D].
class LinearGate {
 public:
  LinearGate(const std::string& prefix, int64_t num_experts, int64_t d_model);
  Param& weight() { return weight_; }
  const Param& weight_param() const { return weight_; }
  // N(0, stddev^2) entries (0.02: the router init flaxformer found best, routing.md A1.2).
  void init(Rng& rng, float stddev = 0.02f);
  // logits f32 [T, E] written: x W^T.  x: f32 [T, D].
  void forward(Tensor& logits, const Tensor& x) const;
  // d_x f32 [T, D] accumulated: += d_logits W.  weight.grad accumulated: += d_logits^T x.
  // d_x may be undefined to skip it.
  void backward(Tensor& d_x, const Tensor& d_logits, const Tensor& x);

 private:
  Param weight_;
};

// Mean over the T rows of p (f32 [T, E], rows summing to 1) of H(p_t) / log(E). 0 when E == 1,
// NaN when T == 0.
double mean_normalized_entropy(const float* p, int64_t tokens, int64_t experts);

// Switch load-balancing loss with Megatron's top-k normalisation (routing.md A1.2):
//   value = E * sum_e f_e P_e,  f_e = count_e / (T K),  P_e = mean_t p[t, e].
// p: f32 [T, E] the full distribution; selected: i32 [T*K] chosen experts. Writes the constant
// dvalue/dp[t, e] = E count_e / (T^2 K) (the same for every t) into d_p_per_expert [E].
double load_balance_loss(const float* p, const int32_t* selected, int64_t tokens, int64_t experts,
                         int64_t top_k, std::vector<double>& d_p_per_expert);

// d_probs[t, e] += coeff * d_p_per_expert[e] for every token t: load_balance_loss's gradient.
void load_balance_backward(float* d_probs, const std::vector<double>& d_p_per_expert,
                           int64_t tokens, int64_t experts, double coeff);

// Backward of token-choice top-K weights (slots t*K + j: weight g, expert ex, incoming dg):
//   raw weights (g_j = p[t, ex_j]):  d_probs[t, ex_j] += dg_j;
//   renormalised (g = softmax over the chosen logits): d_logits[t, ex_j] += g_j (dg_j - sum_i
//   dg_i g_i); the full softmax's denominator cancels, so unchosen logits get nothing.
// d_probs and d_logits are f32 [T, E]; only the one the mode writes is touched.
void topk_weights_backward(bool renormalised, const float* dg, const float* g, const int32_t* ex,
                           int64_t tokens, int64_t top_k, int64_t experts, float* d_probs,
                           float* d_logits);

// ST-MoE router z-loss: value = mean_t (logsumexp_t)^2. Writes lse [T].
double z_loss(const float* logits, int64_t tokens, int64_t experts, std::vector<float>& lse);
// d_logits[t, e] += coeff * 2 lse_t p[t, e] / T.
void z_loss_backward(float* d_logits, const float* p, const std::vector<float>& lse, int64_t tokens,
                     int64_t experts, double coeff);

// Routing slots for token-choice routers: N = T*K, slot t*K + j is token t's j-th choice
// (token-major, choice-minor). idx: i32 [T, K]; weight: f32 [T*K] (moved in).
Routing token_choice_slots(const Tensor& idx, Tensor weight);

// The router's saved state from a Routing it produced; a clear error for anything else.
template <typename Saved>
const Saved& saved_state(const Routing& routing, const std::string& where) {
  const auto* saved = dynamic_cast<const Saved*>(routing.saved.get());
  SY_CHECK(saved != nullptr, "{}: backward: the routing was not produced by this router's forward",
           where);
  return *saved;
}

}  // namespace sy::moe
