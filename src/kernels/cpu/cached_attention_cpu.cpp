#include "kernels/cpu/cached_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sy::kernels::cpu {

namespace {
// Below this many score entries a call runs on one thread (decode steps of tiny models).
constexpr int64_t kParallelMinScores = 1 << 14;

float dot(const float* a, const float* b, int64_t n) {
  // Four partial sums let the compiler keep several FMAs in flight without -ffast-math.
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}
}  // namespace

void cached_attention(float* out, const float* q, const float* k, const float* v,
                      const CachedAttentionShape& shape, float scale, int64_t window) {
  const int64_t tokens = shape.tokens, heads = shape.q_heads;
  const int64_t group = shape.q_heads / shape.kv_heads;
  const int64_t past = shape.cached - shape.tokens;
  const int64_t k_row = shape.kv_heads * shape.key_dim, v_row = shape.kv_heads * shape.value_dim;
  const bool parallel = tokens * heads * shape.cached >= kParallelMinScores;
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(shape.cached));
#pragma omp for schedule(dynamic, 4) collapse(2)
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t pos = past + t;
        const int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        const int64_t g = h / group;
        const float* qh = q + (t * heads + h) * shape.key_dim;
        float max_score = -INFINITY;
        for (int64_t s = first; s <= pos; ++s) {
          const float score = scale * dot(qh, k + s * k_row + g * shape.key_dim, shape.key_dim);
          scores[static_cast<size_t>(s)] = score;
          max_score = std::max(max_score, score);
        }
        float* o = out + (t * heads + h) * shape.value_dim;
        std::fill(o, o + shape.value_dim, 0.0f);
        float total = 0.0f;
        for (int64_t s = first; s <= pos; ++s) {
          const float p = std::exp(scores[static_cast<size_t>(s)] - max_score);
          total += p;
          const float* vs = v + s * v_row + g * shape.value_dim;
          for (int64_t d = 0; d < shape.value_dim; ++d) o[d] += p * vs[d];
        }
        const float inv = 1.0f / total;
        for (int64_t d = 0; d < shape.value_dim; ++d) o[d] *= inv;
      }
    }
  }
}

}  // namespace sy::kernels::cpu
