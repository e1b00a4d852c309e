// Cross-entropy on top of the softmax row helpers (their SIMD code lives in softmax_cpu.cpp).
// Forward keeps one float per row (the log-sum-exp) instead of a [T, V] probability table;
// backward recomputes exp(x - lse), which costs one exp per logit but saves T*V*4 bytes of
// memory and the traffic to write and re-read them.
#include "kernels/cpu/cross_entropy_cpu.h"

#include "kernels/cpu/softmax_cpu.h"

namespace sy::kernels::cpu {

double cross_entropy_forward(float* token_loss, float* lse, const float* logits,
                             const int32_t* targets, int64_t rows, int64_t vocab,
                             int32_t ignore_index) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    if (targets[t] == ignore_index) {
      lse[t] = 0.0f;
      token_loss[t] = 0.0f;
      continue;
    }
    const float* row = logits + t * vocab;
    lse[t] = row_logsumexp(row, vocab, t + 1 < rows ? row + vocab : nullptr);
    token_loss[t] = lse[t] - row[targets[t]];
  }
  double sum = 0.0;
  for (int64_t t = 0; t < rows; ++t) sum += token_loss[t];
  return sum;
}

void cross_entropy_backward(float* d_logits, const float* logits, const int32_t* targets,
                            const float* lse, int64_t rows, int64_t vocab, int32_t ignore_index,
                            float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    if (targets[t] == ignore_index) continue;
    float* d_row = d_logits + t * vocab;
    row_add_softmax(d_row, logits + t * vocab, lse[t], scale, vocab);
    d_row[targets[t]] -= scale;
  }
}

}  // namespace sy::kernels::cpu
