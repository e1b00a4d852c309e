// AdamW with decoupled weight decay, global-norm gradient clipping, and the optimizer state as
// named tensors for checkpoints.
//
// AdamW follows torch.optim.AdamW (amsgrad off, not maximize) operation for operation in f32, so
// a run matches PyTorch's to rounding (tests/reference/adamw.py). Per parameter p with gradient
// g, at update t = 1, 2, ...:
//   p *= 1 - lr * weight_decay                      (only when the Param's decay flag is set)
//   m  = beta1 * m + (1 - beta1) * g                (torch >= 2.1 writes it as a lerp)
//   v  = beta2 * v + (1 - beta2) * g * g
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The scalars (bias corrections, step size, decay factor) are computed in double and rounded
// to f32 once, as PyTorch does with its Python floats.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/param.h"
#include "io/safetensors.h"

namespace sy::train {

// Defaults are the usual values for language models (torch's are beta2 0.999, weight_decay 0.01).
struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // applied to Params with decay == true only
};

class AdamW {
 public:
  // `params` must be trainable (a buffer has no gradient: error naming it) with unique names,
  // f32 values and gradients of equal shape. The optimizer keeps the pointers: the Params must
  // outlive it. Throws sy::Error for bad options (betas outside [0, 1), eps or weight_decay
  // negative or not finite).
  AdamW(std::vector<Param*> params, const AdamWOptions& options);

  // One update of every parameter at learning rate `lr` (finite, >= 0) from its current
  // gradient. Gradients are read, not cleared.
  void step(double lr);
  // Zeroes every parameter's gradient.
  void zero_grad();

  int64_t step_count() const { return step_; }  // updates done so far
  const AdamWOptions& options() const { return options_; }
  const std::vector<Param*>& params() const { return params_; }

  // The state to checkpoint: "optimizer.step" (i64 [1]) and, per parameter in order,
  // "<name>.exp_avg" and "<name>.exp_avg_sq" (f32, the parameter's shape). Copies, so saving
  // while training goes on is safe.
  io::NamedTensors state() const;
  // Restores a state() exactly (bit for bit), so a resumed run continues identically. `source`
  // names the checkpoint in errors. Every tensor state() would write must be present with its
  // dtype and shape, and nothing else: errors name the tensor ("ckpt/optimizer.safetensors:
  // optimizer state has no tensor 'w.exp_avg'", "... tensor 'w.exp_avg' has shape [3], expected
  // [2, 3]", "... unknown tensor 'x.exp_avg' (no such parameter)"). Nothing changes on error.
  void load_state(const io::NamedTensors& state, const std::string& source);

 private:
  std::vector<Param*> params_;
  AdamWOptions options_;
  int64_t step_ = 0;
  std::vector<Tensor> m_;  // f32, per parameter
  std::vector<Tensor> v_;
};

// The global L2 norm of the gradients of `params` (all of them seen as one vector), computed in
// double in a fixed order (the same result for any thread count).
struct GradNorm {
  double norm = 0.0;   // before clipping; inf or nan when a gradient is not finite
  double scale = 1.0;  // the factor the gradients were multiplied by (1: not clipped)
  bool finite() const;
};

// Clips as torch.nn.utils.clip_grad_norm_: every gradient is multiplied by
// max_norm / (norm + 1e-6) (rounded to f32) when that is below 1. max_norm <= 0 only measures. A
// non-finite norm leaves the gradients untouched: the trainer skips that step.
GradNorm clip_grad_norm(const std::vector<Param*>& params, double max_norm);

}  // namespace sy::train
