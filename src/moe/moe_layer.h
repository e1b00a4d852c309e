// The MoE layer: any router, one dispatcher, an expert bank and optional shared experts.
//
//   forward:  router.forward -> plan_dispatch -> gather_rows -> experts -> scatter_combine
//             -> + extra_out (Default MoE) -> + shared experts
//   backward: the same list reversed, each call replaced by its twin.
//
// The layer keeps what backward needs from the last forward (one forward, then its backward).
// Legend: T tokens, D width, F expert FFN width, E routed experts, K picks per token.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/param.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "moe/balance.h"
#include "moe/dispatch.h"
#include "moe/experts.h"
#include "moe/routing/router.h"

namespace sy::moe {

struct MoeLayerOptions {
  int64_t d_model = 0;      // D
  int64_t d_ff = 0;         // F of each routed expert
  int64_t num_experts = 0;  // E
  // The router; its num_experts, d_model and prefix are filled from this struct when left 0 or
  // empty, and must agree when given.
  RouterSpec router;
  Activation activation = Activation::kSwiGLU;
  CapacityOptions capacity;    // dropless by default
  int64_t shared_experts = 0;  // DeepSeekMoE shared experts (0: none)
  int64_t shared_d_ff = 0;     // width of each shared expert (0: d_ff)
  bool shared_gate = false;    // Qwen2-MoE sigmoid gate on the shared output
  // A causal model refuses routers whose choice for a token looks at later tokens (Expert
  // Choice, Soft MoE) unless allow_non_causal is set (research comparisons; such a layer
  // reports non_causal() so logs and reports can mark the run).
  bool causal_model = true;
  bool allow_non_causal = false;
  std::string prefix;  // parameter names, e.g. "model.layers.0.mlp."
  ExpertParallelism parallelism = ExpertParallelism::kAuto;
};

class MoeLayer {
 public:
  // Builds the router with make_router(opts.router).
  explicit MoeLayer(const MoeLayerOptions& opts);
  // Uses the given router (tests, or a router built elsewhere).
  MoeLayer(const MoeLayerOptions& opts, std::unique_ptr<Router> router);
  // Uses `bank` (a loaded quantized or offloading store, of opts' shape) as the experts; the
  // in-memory bank, f32 weights and gradients of every expert, is never allocated.
  static std::unique_ptr<MoeLayer> with_bank(const MoeLayerOptions& opts,
                                             std::unique_ptr<ExpertBank> bank);

  // N(0, stddev^2) expert weights; the router initialises its own.
  void init(Rng& rng, float stddev = 0.02f);

  // y: f32 [T, D]. x: f32 [T, D]; token_ids: i32 [T] (routers that hash them; else may be
  // undefined); rng: required when training with a router that draws random numbers.
  // seq_len: tokens per sequence for sequence-level losses (0: one sequence).
  Tensor forward(const Tensor& x, const Tensor& token_ids, bool training, Rng* rng,
                 int64_t seq_len = 0);
  // d_x: f32 [T, D] accumulated; every parameter gradient accumulated. d_y: f32 [T, D].
  void backward(const Tensor& d_y, Tensor& d_x);

  // Statistics of the last forward.
  const RouterStats& stats() const { return stats_; }
  const Routing& routing() const { return routing_; }
  const DispatchPlan& plan() const { return plan_; }

  std::vector<Param*> params();   // router, routed experts, shared experts
  std::vector<Param*> buffers();  // the router's state
  Router& router() { return *router_; }
  // The default in-memory bank; throws for a layer made with_bank.
  InMemoryExperts& experts();
  ExpertBank& bank() { return *experts_; }
  SharedExperts* shared() { return shared_ ? &*shared_ : nullptr; }
  bool non_causal() const { return !router_->causal(); }
  // Router's end_step (bias, lambda, EMA updates), once per optimizer step.
  void end_step() { router_->end_step(); }

 private:
  MoeLayer(const MoeLayerOptions& opts, std::unique_ptr<Router> router,
           std::unique_ptr<ExpertBank> bank);

  MoeLayerOptions opts_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<ExpertBank> experts_;
  InMemoryExperts* in_memory_ = nullptr;  // experts_ while it is the default bank
  std::optional<SharedExperts> shared_;

  // Saved by forward for backward.
  RouterInput in_;
  Routing routing_;
  DispatchPlan plan_;
  Tensor buffer_, buffer_out_;
  FfnSaved experts_saved_;
  SharedSaved shared_saved_;
  RouterStats stats_;
  bool have_forward_ = false;
};

}  // namespace sy::moe
