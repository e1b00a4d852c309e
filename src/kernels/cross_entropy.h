// Fused softmax + cross-entropy loss over a vocabulary, mean over the tokens not ignored.
//
// Legend: T tokens (every dimension of logits but the last, flattened), V vocab.
//   loss = sum over valid t of -log softmax(logits[t, :])[targets[t]], divided by n_valid,
// where a token is valid when its target is not opts.ignore_index (PyTorch's
// F.cross_entropy(reduction="mean", ignore_index=...)). With no valid token the loss is 0 and
// backward adds nothing (PyTorch would give NaN; 0 keeps a fully padded batch harmless).
// Backward ACCUMULATES (+=) into d_logits, like every backward in switchyard.
// Log-softmax itself is in kernels/softmax.h.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sy::kernels {

struct CrossEntropyOptions {
  int32_t ignore_index = -100;  // targets equal to this are skipped (padding, prompt tokens)
};

// What forward leaves for backward (and for per-token reporting). Caller-owned; forward
// (re)allocates the tensors when their shape does not match.
struct CrossEntropySaved {
  Tensor lse;                   // f32 [T]: log(sum(exp(logits[t, :]))); 0 for ignored tokens
  Tensor token_loss;            // f32 [T]: -log softmax(logits[t, :])[targets[t]]; 0 if ignored
  int64_t n_valid = 0;          // tokens not ignored
  int32_t ignore_index = -100;  // as given to forward; backward uses the same
};

// Returns the mean loss over valid tokens.
// saved:   written (see CrossEntropySaved).
// logits:  f32 [..., V], rank >= 2 (e.g. [T, V] or [B, S, V]).
// targets: i32 [...], logits' shape without V; each in [0, V) or equal to opts.ignore_index,
//          else sy::Error naming the token, the value and V.
float cross_entropy_forward(CrossEntropySaved& saved, const Tensor& logits, const Tensor& targets,
                            const CrossEntropyOptions& opts = {});

// d_logits: f32 [..., V] accumulated: += (softmax(logits) - onehot(targets)) * d_loss / n_valid
//           on valid rows; ignored rows untouched.
// d_loss:   gradient of the scalar loss (1 when the loss is the objective).
// logits, targets as given to forward; saved as forward left it.
void cross_entropy_backward(Tensor& d_logits, float d_loss, const Tensor& logits,
                            const Tensor& targets, const CrossEntropySaved& saved);

}  // namespace sy::kernels
