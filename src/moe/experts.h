// The experts of an MoE layer: FFNs run over a dispatch buffer, one GEMM per active expert on
// its contiguous rows, with their backward. ExpertBank is the interface the layer calls; the
// in-memory bank below owns stacked weights, and an offloading store (src/infer) implements the
// same interface later under a memory budget. SharedExperts is the dense FFN every token passes
// through (DeepSeekMoE), with an optional sigmoid gate on its output (Qwen2-MoE).
//
// Weights follow Hugging Face's orientation (y = x W^T): per expert gate_proj and up_proj are
// [F, D], down_proj [D, F]; SwiGLU: y = down(silu(gate x) * up x); GELU and ReLU FFNs have no gate
// matrix: y = down(act(up x)).
//
// Legend: R buffer rows, D width, F FFN width, E experts, T tokens.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/param.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace sy::moe {

enum class Activation {
  kSwiGLU,    // silu(gate) * up
  kGeluTanh,  // gelu(up), tanh approximation
  kGeluErf,   // gelu(up), exact
  kReLU,      // relu(up)
};
// "swiglu", "gelu_tanh", "gelu", "relu"; parse_activation throws listing them.
std::string_view activation_name(Activation a);
Activation parse_activation(std::string_view name);
inline bool is_gated(Activation a) { return a == Activation::kSwiGLU; }

// What an FFN's backward needs from its forward. The caller owns it.
struct FfnSaved {
  Tensor gate;    // f32 [R, F] gate x (gated activations only)
  Tensor up;      // f32 [R, F] up x
  Tensor hidden;  // f32 [R, F] act(...), the input of down_proj
};

// One FFN over rows. w_gate is undefined for ungated activations.
// out: f32 [n, D] written; x: f32 [n, D]; w_gate, w_up: f32 [F, D]; w_down: f32 [D, F].
// saved.gate/up/hidden: f32 [n, F] written (gate left alone when ungated).
void ffn_forward(Tensor& out, const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                 const Tensor& w_down, Activation act, FfnSaved& saved);
// d_x: f32 [n, D] written; d_w_*: weights' shapes, accumulated (d_w_gate undefined when
// ungated); d_out: f32 [n, D]; saved as filled by ffn_forward.
void ffn_backward(Tensor& d_x, Tensor& d_w_gate, Tensor& d_w_up, Tensor& d_w_down,
                  const Tensor& d_out, const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                  const Tensor& w_down, Activation act, const FfnSaved& saved);

class ExpertBank {
 public:
  virtual ~ExpertBank() = default;
  virtual int64_t num_experts() const = 0;
  virtual int64_t d_model() const = 0;
  virtual int64_t d_ff() const = 0;
  virtual Activation activation() const = 0;
  virtual std::vector<Param*> params() { return {}; }

  // out: f32 [R, D] written; row r of out is expert e's FFN of buffer row r, for the e with
  // offsets[e] <= r < offsets[e+1]. buffer: f32 [R, D]; offsets: E + 1 entries, offsets[E] = R.
  // saved: filled for backward, or null (inference).
  virtual void forward(Tensor& out, const Tensor& buffer, const std::vector<int64_t>& offsets,
                       FfnSaved* saved) = 0;
  // forward with the buffer left ungathered: buffer row r is row row_token[r] of x (f32 [T, D];
  // row_token i32 [R]). A bank that reads rows in place skips the copies; this default gathers
  // them into a buffer and calls forward.
  virtual void forward_rows(Tensor& out, const Tensor& x, const Tensor& row_token,
                            const std::vector<int64_t>& offsets, FfnSaved* saved);
  // d_buffer: f32 [R, D] written; weight gradients accumulated into params().
  // Banks that cannot train (an offloading store) throw.
  virtual void backward(Tensor& d_buffer, const Tensor& d_out, const Tensor& buffer,
                        const std::vector<int64_t>& offsets, const FfnSaved& saved) = 0;
};

// How the in-memory bank spreads work over threads.
enum class ExpertParallelism {
  kAuto,       // experts in parallel when there are many small ones, else threaded BLAS
  kBlas,       // one expert after another, each GEMM on all threads
  kPerExpert,  // experts in parallel (dynamic schedule), single-threaded GEMMs inside
};

struct ExpertBankOptions {
  int64_t num_experts = 0;  // E
  int64_t d_model = 0;      // D
  int64_t d_ff = 0;         // F
  Activation activation = Activation::kSwiGLU;
  std::string prefix;  // parameter names: prefix + "experts.gate_proj.weight", ...
  ExpertParallelism parallelism = ExpertParallelism::kAuto;
};

// Stacked weights, one contiguous slab per expert: gate_proj, up_proj f32 [E, F, D],
// down_proj f32 [E, D, F] (no gate_proj when ungated).
class InMemoryExperts final : public ExpertBank {
 public:
  explicit InMemoryExperts(const ExpertBankOptions& opts);
  int64_t num_experts() const override { return opts_.num_experts; }
  int64_t d_model() const override { return opts_.d_model; }
  int64_t d_ff() const override { return opts_.d_ff; }
  Activation activation() const override { return opts_.activation; }
  std::vector<Param*> params() override;
  // N(0, stddev^2) weights.
  void init(Rng& rng, float stddev = 0.02f);

  void forward(Tensor& out, const Tensor& buffer, const std::vector<int64_t>& offsets,
               FfnSaved* saved) override;
  void backward(Tensor& d_buffer, const Tensor& d_out, const Tensor& buffer,
                const std::vector<int64_t>& offsets, const FfnSaved& saved) override;

  Param& gate_proj() { return gate_; }
  Param& up_proj() { return up_; }
  Param& down_proj() { return down_; }
  // Whether a plan with these offsets runs experts in parallel.
  bool runs_per_expert(const std::vector<int64_t>& offsets) const;

 private:
  // run(e) for every expert e: spread over the team one expert at a time when runs_per_expert
  // says so, else in order on this thread (each GEMM then uses the threaded BLAS).
  template <class Run>
  void for_each_expert(const std::vector<int64_t>& offsets, const Run& run) const;
  void check(const Tensor& buffer, const std::vector<int64_t>& offsets, const char* op) const;

  ExpertBankOptions opts_;
  Param gate_, up_, down_;
};

struct SharedExpertsOptions {
  int64_t d_model = 0;  // D
  int64_t d_ff = 0;     // F: total width (DeepSeek: n_shared_experts * moe_intermediate_size;
                        // count experts of width w equal one FFN of width count * w)
  Activation activation = Activation::kSwiGLU;
  bool gate = false;   // Qwen2-MoE: y = sigmoid(x . w_g) * ffn(x), w_g f32 [1, D]
  std::string prefix;  // names: prefix + "shared_experts.gate_proj.weight", ...,
                       // prefix + "shared_expert_gate.weight"
};

struct SharedSaved {
  FfnSaved ffn;
  Tensor ffn_out;  // f32 [T, D] ungated output (gate only)
  Tensor gate;     // f32 [T] sigmoid(x . w_g) (gate only)
};

class SharedExperts {
 public:
  explicit SharedExperts(const SharedExpertsOptions& opts);
  std::vector<Param*> params();
  void init(Rng& rng, float stddev = 0.02f);
  // out: f32 [T, D] accumulated (+= the shared output); x: f32 [T, D].
  void forward(Tensor& out, const Tensor& x, SharedSaved& saved);
  // d_x: f32 [T, D] accumulated; weight gradients accumulated.
  void backward(Tensor& d_x, const Tensor& d_out, const Tensor& x, const SharedSaved& saved);

 private:
  SharedExpertsOptions opts_;
  Param gate_proj_, up_proj_, down_proj_, gate_;
};

}  // namespace sy::moe
