// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/cached_attention_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// Per-target Exp; must come after highway.h.
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[0, n) = softmax(s[lo, hi)) with entries outside [lo, hi) set to 0 (masked keys).
void MaskedSoftmaxRow(float* HWY_RESTRICT s, size_t n, size_t lo, size_t hi) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  float* row = s + lo;
  const size_t m = hi - lo;
  auto vmax = hn::Set(d, -INFINITY);
  size_t i = 0;
  for (; i + lanes <= m; i += lanes) vmax = hn::Max(vmax, hn::LoadU(d, row + i));
  float mx = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < m; ++i) mx = std::max(mx, row[i]);
  const auto vm = hn::Set(d, mx);
  auto acc = hn::Zero(d);
  i = 0;
  for (; i + lanes <= m; i += lanes) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, row + i), vm));
    hn::StoreU(e, d, row + i);
    acc = hn::Add(acc, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < m; ++i) {
    row[i] = std::exp(row[i] - mx);
    sum += row[i];
  }
  const auto vinv = hn::Set(d, 1.0f / sum);
  i = 0;
  for (; i + lanes <= m; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, row + i), vinv), d, row + i);
  for (; i < m; ++i) row[i] /= sum;
  std::fill(s, s + lo, 0.0f);
  std::fill(s + hi, s + n, 0.0f);
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/cached_attention_cpu.h"
#include "kernels/cpu/gemm_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(MaskedSoftmaxRow);

namespace {
// Queries per block: scores of a block are [kBlock, S] floats, reused across its GEMMs.
constexpr int64_t kBlock = 64;
// Below this many score entries the call runs on one thread (decode steps of small models).
constexpr int64_t kParallelMinScores = 1 << 14;
}  // namespace

namespace {

void attend_f32(float* out, const float* q, const float* k, const float* v,
                const CachedAttentionShape& s, float scale, int64_t window) {
  const int64_t group = s.q_heads / s.kv_heads;
  const int64_t past = s.cached - s.tokens;
  const int64_t ldq = s.q_heads * s.key_dim, ldo = s.q_heads * s.value_dim;
  const int64_t ldk = s.kv_heads * s.key_dim, ldv = s.kv_heads * s.value_dim;
  const int64_t blocks = (s.tokens + kBlock - 1) / kBlock;
  const bool parallel = s.tokens * s.q_heads * s.cached >= kParallelMinScores;
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t h = 0; h < s.q_heads; ++h) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t g = h / group;
        const int64_t t0 = blk * kBlock, t1 = std::min(s.tokens, t0 + kBlock);
        const int64_t rows = t1 - t0;
        // Keys this block can see: [first of its first query, position of its last query].
        const int64_t key_end = past + t1;
        const int64_t key_begin = window > 0 ? std::max<int64_t>(0, past + t0 - window + 1) : 0;
        const int64_t keys = key_end - key_begin;
        const float* kp = k + key_begin * ldk + g * s.key_dim;
        const float* vp = v + key_begin * ldv + g * s.value_dim;
        const int64_t lk = ldk, lv = ldv;
        scores.resize(static_cast<size_t>(rows * keys));
        sgemm(false, true, rows, keys, s.key_dim, scale, q + t0 * ldq + h * s.key_dim, ldq, kp, lk,
              0.0f, scores.data(), keys);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t pos = past + t0 + r;
          const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
          HWY_DYNAMIC_DISPATCH(MaskedSoftmaxRow)
          (scores.data() + r * keys, static_cast<size_t>(keys), static_cast<size_t>(lo - key_begin),
           static_cast<size_t>(pos + 1 - key_begin));
        }
        sgemm(false, false, rows, s.value_dim, keys, 1.0f, scores.data(), keys, vp, lv, 0.0f,
              out + t0 * ldo + h * s.value_dim, ldo);
      }
    }
  }
}

}  // namespace

void cached_attention(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                      const CachedAttentionShape& s, float scale, int64_t window) {
  if (!kv_f16) {
    attend_f32(out, q, static_cast<const float*>(k), static_cast<const float*>(v), s, scale,
               window);
    return;
  }
  // f16 cache: widen the keys and values every query can see to f32 once (each is read by
  // Hq / Hkv heads and several query blocks), then the f32 path.
  const int64_t first = window > 0 ? std::max<int64_t>(0, s.cached - s.tokens - window + 1) : 0;
  const int64_t rows = s.cached - first;
  const int64_t ldk = s.kv_heads * s.key_dim, ldv = s.kv_heads * s.value_dim;
  std::vector<float> kf(static_cast<size_t>(s.cached * ldk));
  std::vector<float> vf(static_cast<size_t>(s.cached * ldv));
  const auto* k16 = static_cast<const uint16_t*>(k);
  const auto* v16 = static_cast<const uint16_t*>(v);
  constexpr int64_t kChunk = 64;
#pragma omp parallel for schedule(static) if (rows * (ldk + ldv) >= (int64_t{1} << 16))
  for (int64_t r0 = first; r0 < s.cached; r0 += kChunk) {
    const int64_t n = std::min(kChunk, s.cached - r0);
    convert_f16_to_f32(k16 + r0 * ldk, kf.data() + r0 * ldk, static_cast<size_t>(n * ldk));
    convert_f16_to_f32(v16 + r0 * ldv, vf.data() + r0 * ldv, static_cast<size_t>(n * ldv));
  }
  attend_f32(out, q, kf.data(), vf.data(), s, scale, window);
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
