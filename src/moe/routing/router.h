// The router interface: every routing method in the zoo turns the MoE layer's input into a
// Routing (which token goes to which expert with which weight, plus its auxiliary losses), and
// turns the gradient of those weights back into gradients for the input and its own parameters.
// The layer then plans, gathers, runs experts and combines the same way for every router.
//
// Legend: T tokens, D model width, E routed experts, K picks per token, N routing slots
// (token-choice: usually T*K; ReLU routing: variable; expert-choice: E*C), S dense slots
// (Soft MoE: E * slots per expert).
#pragma once

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/param.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace sy::moe {

struct RouterInput {
  Tensor x;               // f32 [T, D] the MoE layer's input (what the router sees)
  Tensor token_ids;       // i32 [T] vocabulary ids; undefined unless a router needs them (hash)
  int64_t seq_len = 0;    // tokens per sequence (T = B * seq_len), for sequence-level losses;
                          // 0 means the T tokens are one sequence
  bool training = false;  // jitter, noise, state accumulation and random routing happen only here
  Rng* rng = nullptr;     // required when training and the router draws random numbers
};

// An auxiliary loss the router added to the objective: total loss += coeff * value. The router's
// backward includes coeff * d(value) in the gradients it produces (like Megatron's aux-loss
// scaler), so the trainer only logs these.
struct AuxLoss {
  std::string name;  // "load_balance", "z_loss", "l1_reg", "seq_balance", "d_loss", ...
  double value = 0.0;
  double coeff = 0.0;
};

// Whatever a router keeps from forward for backward. Routers derive from it.
struct RouterSaved {
  virtual ~RouterSaved() = default;
};

struct Routing {
  // Sparse slots. Slot i sends token[i] to expert[i]; the expert's output comes back scaled by
  // weight[i]. choice[i] is the slot's rank among its token's choices (0 = the token's first
  // choice; expert-choice routers use the expert's pick rank), which orders drops by position.
  // Slot order: token-choice routers (topk_softmax, switch, loss_free, deepseek, dense, random,
  // hash) emit N = T*K slots token-major, choice-minor: slot t*K + j is token t's j-th choice,
  // best first (dense: all E experts by descending weight; random: in draw order). Expert-choice
  // emits N = E*C slots expert-major: slot e*C + c is expert e's c-th pick, best first.
  Tensor token;   // i32 [N]
  Tensor expert;  // i32 [N]
  Tensor weight;  // f32 [N]
  Tensor choice;  // i32 [N]

  // Dense mixing (Soft MoE) instead of sparse slots: slot s of expert s / slots_per_expert takes
  // sum_t dispatch[s, t] x_t, and token t receives sum_s combine[t, s] out_s.
  Tensor dispatch;  // f32 [S, T]
  Tensor combine;   // f32 [T, S]
  int64_t slots_per_expert = 0;

  // Added to the layer's output when defined (Default MoE's EMA stand-ins).
  Tensor extra_out;  // f32 [T, D]

  std::vector<AuxLoss> losses;
  // Mean over tokens of the entropy of the router's distribution over experts, divided by
  // log(E) (so 1 is uniform); NaN for routers without a distribution (hash).
  double entropy = NAN;
  bool dense() const { return dispatch.defined(); }

  std::shared_ptr<RouterSaved> saved;
};

// Gradients the layer hands back to the router.
struct RoutingGrad {
  Tensor d_weight;    // f32 [N] dL/d weight[i]; 0 for dropped slots (sparse routing)
  Tensor d_dispatch;  // f32 [S, T] (dense routing)
  Tensor d_combine;   // f32 [T, S] (dense routing)
  Tensor d_out;       // f32 [T, D] the layer output's gradient (for extra_out)
};

// Configuration of one router, as read from a training config or a checkpoint. `options` holds
// the router's own keys (e.g. {"jitter_eps": 0.01, "z_loss_coeff": 1e-3}); unknown keys are an
// error listing the valid ones.
struct RouterSpec {
  std::string name;  // registry name: "topk_softmax", "switch", "expert_choice", ...
  int64_t num_experts = 0;
  int64_t top_k = 1;
  int64_t d_model = 0;
  std::string prefix;  // parameter name prefix, e.g. "model.layers.0.mlp."
  nlohmann::json options = nlohmann::json::object();
};

class Router {
 public:
  virtual ~Router() = default;
  virtual std::string_view name() const = 0;
  virtual int64_t num_experts() const = 0;
  // False for routers whose choice for a token depends on later tokens (Expert Choice, Soft
  // MoE). A causal model refuses them unless the user opts in.
  virtual bool causal() const { return true; }

  // Trainable parameters (with gradients) and checkpointed buffers (bias, lambda, EMA).
  virtual std::vector<Param*> params() = 0;
  virtual std::vector<Param*> buffers() { return {}; }
  // Initialises parameters (e.g. N(0, 0.02)) from rng.
  virtual void init(Rng& rng) = 0;

  virtual Routing forward(const RouterInput& in) = 0;
  // Accumulates into d_x (f32 [T, D]) and into params()' gradients: the gradient flowing through
  // the routing weights plus every aux loss's coeff * gradient.
  virtual void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                        Tensor& d_x) = 0;

  // Stateful routers: called once per optimizer step, after backward of every micro-batch
  // (loss-free bias update, ReMoE's lambda, ...). Statistics for it are gathered in forward when
  // in.training is set.
  virtual void end_step() {}
  // Routers that keep a running view of expert outputs (Default MoE) get, after the experts ran
  // in training, each kept row's expert and unweighted output.
  virtual bool wants_expert_outputs() const { return false; }
  virtual void observe_expert_outputs(const Tensor& /*row_expert i32 [R]*/,
                                      const Tensor& /*row_out f32 [R, D]*/) {}
};

// Builds a router from its spec. Unknown names are an error listing the registered ones; bad
// options (k > E, groups that do not divide E, unknown keys) are errors naming the key.
std::unique_ptr<Router> make_router(const RouterSpec& spec);
// Registered names, sorted.
std::vector<std::string> router_names();

}  // namespace sy::moe
