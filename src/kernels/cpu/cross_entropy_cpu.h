// Raw cross-entropy bodies: contiguous row-major logits, no checks (the entry in kernels/
// checked, including every target being in [0, vocab) or the ignore index). Parallel over rows.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

// For each row t whose target is not ignore_index: lse[t] = logsumexp(logits[t, :]) and
// token_loss[t] = lse[t] - logits[t, target[t]]; ignored rows get 0 in both. Returns the sum of
// token_loss, added in row order in double (the same on every run and thread count).
double cross_entropy_forward(float* token_loss, float* lse, const float* logits,
                             const int32_t* targets, int64_t rows, int64_t vocab,
                             int32_t ignore_index);

// d_logits[t, :] += scale * (softmax(logits[t, :]) - onehot(target[t])) for every row not
// ignored; softmax is rebuilt from the saved lse.
void cross_entropy_backward(float* d_logits, const float* logits, const int32_t* targets,
                            const float* lse, int64_t rows, int64_t vocab, int32_t ignore_index,
                            float scale);

}  // namespace sy::kernels::cpu
