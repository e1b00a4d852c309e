// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// Per-target Exp; must come after highway.h.
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "kernels/cpu/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s = softmax(s) in place over n >= 1 entries; returns log(sum(exp(s))) of the input.
float SoftmaxRow(float* HWY_RESTRICT s, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto vmax = hn::Set(d, -INFINITY);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) vmax = hn::Max(vmax, hn::LoadU(d, s + i));
  float m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < n; ++i) m = std::max(m, s[i]);
  const float sum = ExpShiftedSum(s, n, m);
  const auto vinv = hn::Set(d, 1.0f / sum);
  i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, s + i), vinv), d, s + i);
  for (; i < n; ++i) s[i] /= sum;
  return m + std::log(sum);
}

// s = exp(s - lse) in place: the probabilities again, from the saved log-sum-exp.
void ExpRow(float* HWY_RESTRICT s, size_t n, float lse) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vl = hn::Set(d, lse);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::Exp(d, hn::Sub(hn::LoadU(d, s + i), vl)), d, s + i);
  }
  for (; i < n; ++i) s[i] = std::exp(s[i] - lse);
}

// dp = p * (dp - row_dot) in place: the softmax backward, dS from dP.
void SoftmaxGradRow(float* HWY_RESTRICT dp, const float* HWY_RESTRICT p, size_t n, float row_dot) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vr = hn::Set(d, row_dot);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::Mul(hn::LoadU(d, p + i), hn::Sub(hn::LoadU(d, dp + i), vr)), d, dp + i);
  }
  for (; i < n; ++i) dp[i] = p[i] * (dp[i] - row_dot);
}

float Dot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    acc = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc);
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/gemm_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(SoftmaxRow);
HWY_EXPORT(ExpRow);
HWY_EXPORT(SoftmaxGradRow);
HWY_EXPORT(Dot);

namespace {

// Query rows per block: big enough for efficient BLAS calls, small enough that the causal
// triangle wastes little (a block computes scores up to its last row's keys) and that the
// per-thread score buffers (kQueryBlock x T floats) stay in cache for T in the hundreds.
constexpr int64_t kQueryBlock = 64;

// Strides and per-(sequence, head) bases of the [B, T, H, Dh] layouts.
struct Layout {
  int64_t tokens, q_heads, head_dim, group, ldq, ldk;
  explicit Layout(const AttentionShape& s)
      : tokens(s.tokens),
        q_heads(s.q_heads),
        head_dim(s.head_dim),
        group(s.q_heads / s.kv_heads),
        ldq(s.q_heads * s.head_dim),
        ldk(s.kv_heads * s.head_dim) {}
  // Offset of row 0 of query head h of sequence b in a [B, T, Hq, Dh] tensor.
  int64_t q_base(int64_t b, int64_t h) const { return b * tokens * ldq + h * head_dim; }
  // Offset of row 0 of the kv head serving query head h in a [B, T, Hkv, Dh] tensor.
  int64_t kv_base(int64_t b, int64_t h) const { return b * tokens * ldk + (h / group) * head_dim; }
  // Offset of the lse row of query head h of sequence b in [B, Hq, T].
  int64_t lse_base(int64_t b, int64_t h) const { return (b * q_heads + h) * tokens; }
};

// Keys a query row may see: all T, or itself and those before it when causal.
int64_t visible(const AttentionShape& s, int64_t row) { return s.causal ? row + 1 : s.tokens; }

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& s) {
  const Layout L(s);
  const int64_t blocks = (s.tokens + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = s.batch * s.q_heads * blocks;
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(kQueryBlock * s.tokens));
    // Every (sequence, head, query block) is independent in forward; causal blocks differ in
    // cost, hence dynamic scheduling (the results do not depend on it).
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t blk = task % blocks;
      const int64_t h = (task / blocks) % s.q_heads;
      const int64_t b = task / blocks / s.q_heads;
      const int64_t r0 = blk * kQueryBlock;
      const int64_t rows = std::min(s.tokens, r0 + kQueryBlock) - r0;
      const int64_t keys = s.causal ? r0 + rows : s.tokens;
      float* p = scores.data();
      sgemm(false, true, rows, keys, s.head_dim, s.scale, q + L.q_base(b, h) + r0 * L.ldq, L.ldq,
            k + L.kv_base(b, h), L.ldk, 0.0f, p, keys);
      for (int64_t i = 0; i < rows; ++i) {
        float* row = p + i * keys;
        const int64_t n = visible(s, r0 + i);
        lse[L.lse_base(b, h) + r0 + i] =
            HWY_DYNAMIC_DISPATCH(SoftmaxRow)(row, static_cast<size_t>(n));
        std::fill(row + n, row + keys, 0.0f);
      }
      sgemm(false, false, rows, s.head_dim, keys, 1.0f, p, keys, v + L.kv_base(b, h), L.ldk, 0.0f,
            out + L.q_base(b, h) + r0 * L.ldq, L.ldq);
    }
  }
}

void attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out, const float* q,
                        const float* k, const float* v, const float* out, const float* lse,
                        const AttentionShape& s) {
  const Layout L(s);
  const int64_t blocks = (s.tokens + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = s.batch * s.q_heads;
  const int64_t head_size = s.tokens * s.head_dim;
  // With GQA several query heads feed one kv head. Each query head's task then writes its own
  // d_k / d_v partial ([B, Hq, T, Dh] scratch) and the partials are summed in head order below:
  // no atomics, and the same bits for any thread count. Plain MHA accumulates in place.
  const bool shared = L.group > 1;
  std::vector<float> part_k, part_v;
  if (shared) {
    part_k.assign(static_cast<size_t>(tasks * head_size), 0.0f);
    part_v.assign(static_cast<size_t>(tasks * head_size), 0.0f);
  }
#pragma omp parallel
  {
    std::vector<float> probs(static_cast<size_t>(kQueryBlock * s.tokens));
    std::vector<float> grads(static_cast<size_t>(kQueryBlock * s.tokens));
    std::vector<float> row_dot(static_cast<size_t>(kQueryBlock));
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / s.q_heads;
      const int64_t h = task % s.q_heads;
      const int64_t qb = L.q_base(b, h);
      const int64_t kb = L.kv_base(b, h);
      float* dk = shared ? part_k.data() + task * head_size : d_k + kb;
      float* dv = shared ? part_v.data() + task * head_size : d_v + kb;
      const int64_t ld_dkv = shared ? s.head_dim : L.ldk;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t r0 = blk * kQueryBlock;
        const int64_t rows = std::min(s.tokens, r0 + kQueryBlock) - r0;
        const int64_t keys = s.causal ? r0 + rows : s.tokens;
        const float* q_blk = q + qb + r0 * L.ldq;
        const float* do_blk = d_out + qb + r0 * L.ldq;
        float* p = probs.data();
        float* ds = grads.data();
        // P = exp(scale q k^T - lse), recomputed; dP = dO v^T.
        sgemm(false, true, rows, keys, s.head_dim, s.scale, q_blk, L.ldq, k + kb, L.ldk, 0.0f, p,
              keys);
        sgemm(false, true, rows, keys, s.head_dim, 1.0f, do_blk, L.ldq, v + kb, L.ldk, 0.0f, ds,
              keys);
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t n = visible(s, r0 + i);
          const int64_t row = r0 + i;
          // sum_s P[t, s] dP[t, s] = dO[t] . out[t]: cheaper than from P and dP.
          row_dot[static_cast<size_t>(i)] = HWY_DYNAMIC_DISPATCH(Dot)(
              d_out + qb + row * L.ldq, out + qb + row * L.ldq, static_cast<size_t>(s.head_dim));
          HWY_DYNAMIC_DISPATCH(ExpRow)
          (p + i * keys, static_cast<size_t>(n), lse[L.lse_base(b, h) + row]);
          std::fill(p + i * keys + n, p + (i + 1) * keys, 0.0f);
          // dS = P * (dP - rowdot); masked entries get 0.
          HWY_DYNAMIC_DISPATCH(SoftmaxGradRow)
          (ds + i * keys, p + i * keys, static_cast<size_t>(n), row_dot[static_cast<size_t>(i)]);
          std::fill(ds + i * keys + n, ds + (i + 1) * keys, 0.0f);
        }
        // dV += P^T dO;  dQ += scale dS k;  dK += scale dS^T q.
        sgemm(true, false, keys, s.head_dim, rows, 1.0f, p, keys, do_blk, L.ldq, 1.0f, dv, ld_dkv);
        sgemm(false, false, rows, s.head_dim, keys, s.scale, ds, keys, k + kb, L.ldk, 1.0f,
              d_q + qb + r0 * L.ldq, L.ldq);
        sgemm(true, false, keys, s.head_dim, rows, s.scale, ds, keys, q_blk, L.ldq, 1.0f, dk,
              ld_dkv);
      }
    }
    if (shared) {
      // d_k[b, t, g] += sum over the group's query heads h (in order) of part[b, h, t].
#pragma omp for schedule(static)
      for (int64_t bt = 0; bt < s.batch * s.tokens; ++bt) {
        const int64_t b = bt / s.tokens;
        const int64_t t = bt % s.tokens;
        for (int64_t h = 0; h < s.q_heads; ++h) {
          const int64_t from = (b * s.q_heads + h) * head_size + t * s.head_dim;
          const int64_t to = bt * L.ldk + (h / L.group) * s.head_dim;
          for (int64_t j = 0; j < s.head_dim; ++j) {
            d_k[to + j] += part_k[static_cast<size_t>(from + j)];
            d_v[to + j] += part_v[static_cast<size_t>(from + j)];
          }
        }
      }
    }
  }
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
