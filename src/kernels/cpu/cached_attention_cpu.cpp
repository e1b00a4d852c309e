// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/cached_attention_cpu.cpp"
#include <hwy/cache_control.h>
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// Per-target Exp; must come after highway.h.
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

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

// f32 lanes of keys or values at p: f32 as they are, f16 widened (exactly; the emulated targets,
// whose widening mishandles infinity, convert value by value).
template <class D>
HWY_INLINE hn::Vec<D> LoadKv(D df, const float* HWY_RESTRICT p) {
  return hn::LoadU(df, p);
}
template <class D>
HWY_INLINE hn::Vec<D> LoadKv(D df, const uint16_t* HWY_RESTRICT p) {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
  HWY_ALIGN float wide[16];
  for (size_t i = 0; i < hn::Lanes(df); ++i) wide[i] = f16_to_f32(p[i]);
  return hn::Load(df, wide);
#else
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
#endif
}
HWY_INLINE float KvValue(float x) { return x; }
HWY_INLINE float KvValue(uint16_t x) { return f16_to_f32(x); }

// Rows of keys or values fetched ahead of their use by AttendPosition.
constexpr size_t kPrefetchRows = 12;

// Attention of one query position for the `group` query heads that share one kv head, straight
// from the cache (no widened copy): q [group, dk], keys k + j * ldk and values v + j * ldv for j
// in [0, keys), out [group, dv], scores [group, keys] scratch. Each key row is read once for
// all heads of the group.
template <class T>
void AttendPosition(float* HWY_RESTRICT out, const float* HWY_RESTRICT q, const T* HWY_RESTRICT k,
                    const T* HWY_RESTRICT v, size_t group, size_t dk, size_t dv, size_t ldk,
                    size_t ldv, size_t keys, float scale, float* HWY_RESTRICT scores) {
  const hn::ScalableTag<float> df;
  const size_t n = hn::Lanes(df);
  // One kv head's row is a short piece of each cache row (ldk apart: a page apart for 16 heads
  // of 128 f16), so the hardware prefetchers miss it: fetch kPrefetchRows rows ahead by hand.
  const size_t k_bytes = dk * sizeof(T), v_bytes = dv * sizeof(T);
  const auto prefetch = [](const T* row, size_t bytes) {
    const auto* b = reinterpret_cast<const uint8_t*>(row);
    for (size_t o = 0; o < bytes; o += 64) hwy::Prefetch(b + o);
    hwy::Prefetch(b + bytes - 1);
  };
  for (size_t j = 0; j < keys && j < kPrefetchRows; ++j) prefetch(k + j * ldk, k_bytes);
  for (size_t j = 0; j < keys; ++j) {
    const T* kr = k + j * ldk;
    if (j + kPrefetchRows < keys) {
      prefetch(kr + kPrefetchRows * ldk, k_bytes);
    } else if (j + kPrefetchRows - keys < keys) {
      prefetch(v + (j + kPrefetchRows - keys) * ldv, v_bytes);  // the values' first rows
    }
    for (size_t h = 0; h < group; ++h) {
      const float* qh = q + h * dk;
      auto a0 = hn::Zero(df), a1 = hn::Zero(df);
      size_t i = 0;
      for (; i + 2 * n <= dk; i += 2 * n) {
        a0 = hn::MulAdd(hn::LoadU(df, qh + i), LoadKv(df, kr + i), a0);
        a1 = hn::MulAdd(hn::LoadU(df, qh + i + n), LoadKv(df, kr + i + n), a1);
      }
      for (; i + n <= dk; i += n) a0 = hn::MulAdd(hn::LoadU(df, qh + i), LoadKv(df, kr + i), a0);
      float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
      for (; i < dk; ++i) s += qh[i] * KvValue(kr[i]);
      scores[h * keys + j] = s * scale;
    }
  }
  for (size_t h = 0; h < group; ++h) MaskedSoftmaxRow(scores + h * keys, keys, 0, keys);
  // out = P V, four vectors of columns at a time over all keys.
  for (size_t h = 0; h < group; ++h) {
    const float* p = scores + h * keys;
    float* o = out + h * dv;
    size_t c = 0;
    for (; c + 4 * n <= dv; c += 4 * n) {
      auto o0 = hn::Zero(df), o1 = hn::Zero(df), o2 = hn::Zero(df), o3 = hn::Zero(df);
      for (size_t j = 0; j < keys; ++j) {
        const T* vr = v + j * ldv + c;
        if (h == 0 && c == 0 && j + kPrefetchRows < keys)
          prefetch(vr + kPrefetchRows * ldv, v_bytes);
        const auto pj = hn::Set(df, p[j]);
        o0 = hn::MulAdd(pj, LoadKv(df, vr), o0);
        o1 = hn::MulAdd(pj, LoadKv(df, vr + n), o1);
        o2 = hn::MulAdd(pj, LoadKv(df, vr + 2 * n), o2);
        o3 = hn::MulAdd(pj, LoadKv(df, vr + 3 * n), o3);
      }
      hn::StoreU(o0, df, o + c);
      hn::StoreU(o1, df, o + c + n);
      hn::StoreU(o2, df, o + c + 2 * n);
      hn::StoreU(o3, df, o + c + 3 * n);
    }
    for (; c + n <= dv; c += n) {
      auto o0 = hn::Zero(df);
      for (size_t j = 0; j < keys; ++j) {
        o0 = hn::MulAdd(hn::Set(df, p[j]), LoadKv(df, v + j * ldv + c), o0);
      }
      hn::StoreU(o0, df, o + c);
    }
    for (; c < dv; ++c) {
      float acc = 0.0f;
      for (size_t j = 0; j < keys; ++j) acc += p[j] * KvValue(v[j * ldv + c]);
      o[c] = acc;
    }
  }
}

void AttendPositionF32(float* out, const float* q, const void* k, const void* v, size_t group,
                       size_t dk, size_t dv, size_t ldk, size_t ldv, size_t keys, float scale,
                       float* scores) {
  AttendPosition(out, q, static_cast<const float*>(k), static_cast<const float*>(v), group, dk, dv,
                 ldk, ldv, keys, scale, scores);
}
void AttendPositionF16(float* out, const float* q, const void* k, const void* v, size_t group,
                       size_t dk, size_t dv, size_t ldk, size_t ldv, size_t keys, float scale,
                       float* scores) {
  AttendPosition(out, q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), group,
                 dk, dv, ldk, ldv, keys, scale, scores);
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
HWY_EXPORT(AttendPositionF32);
HWY_EXPORT(AttendPositionF16);

namespace {
// Queries per block: scores of a block are [kBlock, S] floats, reused across its GEMMs.
constexpr int64_t kBlock = 64;
// Below this many score entries the call runs on one thread (decode steps of small models).
constexpr int64_t kParallelMinScores = 1 << 14;
// Up to this many new tokens (decode steps) each position attends straight from the cache, f16
// or f32, one kv head's query group at a time: no widened copy of the cache, no GEMM calls.
constexpr int64_t kDirectMaxTokens = 4;
// Below this many bytes of keys and values read, the direct path runs on one thread.
constexpr int64_t kDirectParallelBytes = int64_t{1} << 18;

void attend_direct(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                   const CachedAttentionShape& s, float scale, int64_t window) {
  const int64_t group = s.q_heads / s.kv_heads;
  const int64_t past = s.cached - s.tokens;
  const int64_t ldq = s.q_heads * s.key_dim, ldo = s.q_heads * s.value_dim;
  const int64_t ldk = s.kv_heads * s.key_dim, ldv = s.kv_heads * s.value_dim;
  const size_t elem = kv_f16 ? 2 : 4;
  const auto* kb = static_cast<const uint8_t*>(k);
  const auto* vb = static_cast<const uint8_t*>(v);
  const int64_t items = s.tokens * s.kv_heads;
  const bool parallel =
      items > 1 &&
      s.tokens * s.cached * (ldk + ldv) * static_cast<int64_t>(elem) >= kDirectParallelBytes;
  const auto attend =
      kv_f16 ? HWY_DYNAMIC_DISPATCH(AttendPositionF16) : HWY_DYNAMIC_DISPATCH(AttendPositionF32);
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(group * s.cached));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t t = item / s.kv_heads, g = item % s.kv_heads;
      const int64_t pos = past + t;
      const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      const int64_t keys = pos + 1 - lo;
      const int64_t h0 = g * group;
      attend(out + t * ldo + h0 * s.value_dim, q + t * ldq + h0 * s.key_dim,
             kb + static_cast<size_t>(lo * ldk + g * s.key_dim) * elem,
             vb + static_cast<size_t>(lo * ldv + g * s.value_dim) * elem,
             static_cast<size_t>(group), static_cast<size_t>(s.key_dim),
             static_cast<size_t>(s.value_dim), static_cast<size_t>(ldk), static_cast<size_t>(ldv),
             static_cast<size_t>(keys), scale, scores.data());
    }
  }
}
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
  if (s.tokens <= kDirectMaxTokens) {
    attend_direct(out, q, k, v, kv_f16, s, scale, window);
    return;
  }
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
