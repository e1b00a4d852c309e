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
#include <cstdint>
#include <vector>

#include "core/dtype.h"

// Shared by every target's pass over this file and the dispatching code, so defined once.
#ifndef SY_CACHED_ATTENTION_CPU_BLOCK
#define SY_CACHED_ATTENTION_CPU_BLOCK
namespace sy::kernels::cpu {
// Key positions per block of the decode path: the block's scores, [Hq, kKeyBlock] floats (2 KB
// for 16 heads), stay in L1 from the key pass to the value pass, and its value rows in L2.
// 32 rather than 64 pays together with the spread prefetches of RowFetcher (see there).
constexpr size_t kKeyBlock = 32;
// While a key row is scored, the key row at least this many bytes on is fetched into L2. A row
// of OLMoE's 16 heads of 128 f16 is a whole 4 KiB page, where the hardware prefetchers stop:
// streaming 16 such layers' caches of 576 positions (scratch test, Zen 4 host, 2 threads, runs
// alternating) read 19-22 GB/s without it, 24-27 with it.
constexpr size_t kKeyAheadBytes = 2048;
// Rows of `row_bytes` bytes to fetch ahead: at least one.
inline size_t key_rows_ahead(size_t row_bytes) {
  return row_bytes >= kKeyAheadBytes ? 1 : (kKeyAheadBytes + row_bytes - 1) / row_bytes;
}
}  // namespace sy::kernels::cpu
#endif

#include "kernels/cpu/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

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

// Dot product of q and the keys at k, dk of them, in f32.
template <class D, class T>
HWY_INLINE float DotKv(D df, const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, size_t dk) {
  const size_t n = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * n <= dk; i += 4 * n) {
    a0 = hn::MulAdd(hn::LoadU(df, q + i), LoadKv(df, k + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, q + i + n), LoadKv(df, k + i + n), a1);
    a2 = hn::MulAdd(hn::LoadU(df, q + i + 2 * n), LoadKv(df, k + i + 2 * n), a2);
    a3 = hn::MulAdd(hn::LoadU(df, q + i + 3 * n), LoadKv(df, k + i + 3 * n), a3);
  }
  for (; i + n <= dk; i += n) a0 = hn::MulAdd(hn::LoadU(df, q + i), LoadKv(df, k + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < dk; ++i) s += q[i] * KvValue(k[i]);
  return s;
}

// Online softmax of one query head over one block: s[0, nb) are its scores; m and l are its
// running max and sum of exp(score - m) over the range so far, o [dv] its running output (the
// exp-weighted sum of value rows). When the block raises the max, l and o are rescaled to it.
// On return s holds the block's weights exp(score - m).
HWY_INLINE void SoftmaxBlock(float* HWY_RESTRICT s, size_t nb, float& m, float& l,
                             float* HWY_RESTRICT o, size_t dv) {
  const hn::ScalableTag<float> df;
  const size_t n = hn::Lanes(df);
  auto vmax = hn::Set(df, -INFINITY);
  size_t i = 0;
  for (; i + n <= nb; i += n) vmax = hn::Max(vmax, hn::LoadU(df, s + i));
  float mx = std::max(m, hn::GetLane(hn::MaxOfLanes(df, vmax)));
  for (; i < nb; ++i) mx = std::max(mx, s[i]);
  if (mx == -INFINITY) {  // only -inf scores so far: nothing has weight yet
    std::fill(s, s + nb, 0.0f);
    return;
  }
  if (mx > m) {
    const float c = std::exp(m - mx);  // 0 for the first block (m = -inf, o and l still 0)
    const auto vc = hn::Set(df, c);
    size_t j = 0;
    for (; j + n <= dv; j += n) hn::StoreU(hn::Mul(hn::LoadU(df, o + j), vc), df, o + j);
    for (; j < dv; ++j) o[j] *= c;
    l *= c;
    m = mx;
  }
  l += ExpShiftedSum(s, nb, m);
}

// The online softmax of a block of queries over one tile of keys (the prefill path): rows x n
// scores at s, ld apart. Row r is the query at position pos0 + r counted from the tile's first
// key, so it sees the keys j <= pos0 + r (and pos0 + r - j < window when window > 0). Each row's
// visible scores go through SoftmaxBlock with its running max m[r], sum l[r] and output
// o + r * ldo ([dv]); the rest become 0, so s then holds the tile's weights for o += s V.
void SoftmaxTile(float* HWY_RESTRICT s, size_t ld, size_t rows, size_t n, int64_t pos0,
                 int64_t window, float* HWY_RESTRICT m, float* HWY_RESTRICT l,
                 float* HWY_RESTRICT o, size_t ldo, size_t dv) {
  const auto keys = static_cast<int64_t>(n);
  for (size_t r = 0; r < rows; ++r) {
    float* row = s + r * ld;
    const int64_t pos = pos0 + static_cast<int64_t>(r);
    const int64_t hi = std::clamp<int64_t>(pos + 1, 0, keys);
    const int64_t lo = window > 0 ? std::clamp<int64_t>(pos - window + 1, 0, hi) : 0;
    if (lo < hi) {
      SoftmaxBlock(row + lo, static_cast<size_t>(hi - lo), m[r], l[r], o + r * ldo, dv);
    }
    std::fill(row, row + lo, 0.0f);
    std::fill(row + hi, row + n, 0.0f);
  }
}

// Starts a range's state (no keys yet: o = 0, m = -inf, l = 0) and returns where each query
// head's kv head starts in a key row: an integer division per head and key cost more than a
// short head's dot product.
HWY_INLINE std::vector<size_t> StartRange(float* HWY_RESTRICT o, float* HWY_RESTRICT m,
                                          float* HWY_RESTRICT l, size_t heads, size_t group,
                                          size_t dk, size_t dv) {
  std::fill(o, o + heads * dv, 0.0f);
  std::fill(m, m + heads, -INFINITY);
  std::fill(l, l + heads, 0.0f);
  std::vector<size_t> k_at(heads);
  for (size_t h = 0; h < heads; ++h) k_at[h] = (h / group) * dk;
  return k_at;
}

// 64-byte lines in `bytes` bytes, rounded up.
inline size_t LinesOf(size_t bytes) { return (bytes + 63) / 64; }
// Fetches lines [begin, end) of the bytes at p into L2.
HWY_INLINE void FetchLines(const void* p, size_t begin, size_t end) {
  const auto* b = static_cast<const char*>(p);
  for (size_t i = begin; i < end; ++i) __builtin_prefetch(b + i * 64, 0, 2);
}

// Fetches the lines of a byte range into L2 a few at a time, so the fetches spread over the
// work they hide behind.
class LineStream {
 public:
  LineStream(const void* p, size_t bytes) : p_(p), lines_(LinesOf(bytes)) {}
  size_t lines() const { return lines_ - at_; }
  HWY_INLINE void step(size_t count) {
    const size_t end = std::min(lines_, at_ + count);
    FetchLines(p_, at_, end);
    at_ = end;
  }

 private:
  const void* p_;
  size_t lines_, at_ = 0;
};

// Accumulators the value pass keeps in registers: 16 with 32 vector registers (AVX-512, Arm),
// 8 on AVX2 and older x86 (16 registers).
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr size_t kValueSums = 8;
#else
constexpr size_t kValueSums = 16;
#endif

// Query heads summed together over a value row: up to 4 of a kv head's group, each over as many
// column vectors (at most 4) as keeps the sums within kValueSums.
constexpr size_t kValueHeads = 4;
template <size_t G>
constexpr size_t kValueVectors = std::min<size_t>(4, kValueSums / G);

// The column chunks AddValueHeads<G> takes for dv columns of n lanes: kValueVectors<G> vectors
// at a time, then 2 and 1 for what is left.
template <size_t G>
inline size_t ValueChunks(size_t dv, size_t n) {
  constexpr size_t kW = kValueVectors<G>;
  size_t rest = dv % (kW * n), chunks = dv / (kW * n);
  for (size_t w = kW / 2; w >= 1; w /= 2) {
    if (rest >= w * n) chunks += 1, rest -= w * n;
  }
  return chunks;
}

// o[g] += sum_j w[g * hs + j * js] v[j * ldv + (c .. c + W n)] for the G query heads g (outputs
// dv apart) that read the kv head at v: each value vector is widened once for all G heads, and
// the G * W sums stay in registers across the block's positions, in position order.
template <size_t G, size_t W, class T>
HWY_INLINE void AddValueChunk(float* HWY_RESTRICT o, size_t dv, const T* HWY_RESTRICT v, size_t ldv,
                              size_t nb, const float* HWY_RESTRICT w, size_t hs, size_t js,
                              size_t c, size_t per_step, LineStream& next) {
  const hn::ScalableTag<float> df;
  const size_t n = hn::Lanes(df);
  hn::Vec<decltype(df)> sum[G][W];
  for (size_t g = 0; g < G; ++g) {
    for (size_t x = 0; x < W; ++x) sum[g][x] = hn::LoadU(df, o + g * dv + c + x * n);
  }
  for (size_t j = 0; j < nb; ++j) {
    next.step(per_step);
    const T* vr = v + j * ldv + c;
    hn::Vec<decltype(df)> val[W];
    for (size_t x = 0; x < W; ++x) val[x] = LoadKv(df, vr + x * n);
    for (size_t g = 0; g < G; ++g) {
      const auto p = hn::Set(df, w[g * hs + j * js]);
      for (size_t x = 0; x < W; ++x) sum[g][x] = hn::MulAdd(p, val[x], sum[g][x]);
    }
  }
  for (size_t g = 0; g < G; ++g) {
    for (size_t x = 0; x < W; ++x) hn::StoreU(sum[g][x], df, o + g * dv + c + x * n);
  }
}

// AddValueChunk over all dv columns of G query heads (lane tails one value at a time).
template <size_t G, class T>
HWY_INLINE void AddValueHeads(float* HWY_RESTRICT o, size_t dv, const T* HWY_RESTRICT v, size_t ldv,
                              size_t nb, const float* HWY_RESTRICT w, size_t hs, size_t js,
                              size_t per_step, LineStream& next) {
  constexpr size_t kW = kValueVectors<G>;
  const hn::ScalableTag<float> df;
  const size_t n = hn::Lanes(df);
  size_t c = 0;
  for (; c + kW * n <= dv; c += kW * n) {
    AddValueChunk<G, kW>(o, dv, v, ldv, nb, w, hs, js, c, per_step, next);
  }
  if constexpr (kW >= 4) {
    if (c + 2 * n <= dv) {
      AddValueChunk<G, 2>(o, dv, v, ldv, nb, w, hs, js, c, per_step, next);
      c += 2 * n;
    }
  }
  if constexpr (kW >= 2) {
    if (c + n <= dv) {
      AddValueChunk<G, 1>(o, dv, v, ldv, nb, w, hs, js, c, per_step, next);
      c += n;
    }
  }
  for (size_t g = 0; g < G; ++g) {
    for (size_t x = c; x < dv; ++x) {
      for (size_t j = 0; j < nb; ++j) o[g * dv + x] += w[g * hs + j * js] * KvValue(v[j * ldv + x]);
    }
  }
}

// The query heads of one kv head in batches of 4, 2 and 1: body(first head, batch size).
template <class Body>
HWY_INLINE void ForValueBatches(size_t group, const Body& body) {
  size_t h = 0;
  for (; h + kValueHeads <= group; h += kValueHeads) body(h, kValueHeads);
  if (h + 2 <= group) body(h, 2), h += 2;
  if (h < group) body(h, 1);
}

// o += weights x value rows for the block of nb positions at v (whole cache rows, ldv apart):
// head h's weight of position j is w[h * hs + j * js]. Kv head by kv head, its query heads in
// batches (ForValueBatches) and their columns a few vectors at a time (AddValueHeads), the sums
// in registers across the block's positions (same order of additions as row by row). The
// block's value rows were fetched into L2 while its keys were read, so reading one head's piece
// of each row (a page apart) hits the cache. `next` (the next block's key rows) is fetched a
// few lines per step of the loop meanwhile.
template <class T>
HWY_INLINE void AddWeightedValues(float* HWY_RESTRICT o, const T* HWY_RESTRICT v, size_t nb,
                                  size_t heads, size_t group, size_t dv, size_t ldv,
                                  const float* HWY_RESTRICT w, size_t hs, size_t js,
                                  LineStream& next) {
  const size_t n = hn::Lanes(hn::ScalableTag<float>());
  size_t chunks = 0;
  ForValueBatches(group, [&](size_t, size_t g) {
    chunks += g == 4   ? ValueChunks<4>(dv, n)
              : g == 2 ? ValueChunks<2>(dv, n)
                       : ValueChunks<1>(dv, n);
  });
  const size_t steps = std::max<size_t>(1, (heads / group) * chunks * nb);
  const size_t per_step = (next.lines() + steps - 1) / steps;
  for (size_t h0 = 0; h0 < heads; h0 += group) {
    const T* vh = v + (h0 / group) * dv;
    ForValueBatches(group, [&](size_t first, size_t g) {
      const size_t h = h0 + first;
      float* oh = o + h * dv;
      const float* wh = w + h * hs;
      if (g == 4) {
        AddValueHeads<4>(oh, dv, vh, ldv, nb, wh, hs, js, per_step, next);
      } else if (g == 2) {
        AddValueHeads<2>(oh, dv, vh, ldv, nb, wh, hs, js, per_step, next);
      } else {
        AddValueHeads<1>(oh, dv, vh, ldv, nb, wh, hs, js, per_step, next);
      }
    });
  }
  next.step(next.lines());  // what the steps left
}

// Fetches into L2, while key row j of a range of `keys` rows is scored: value row j (its block
// sums the values afterwards) and, in the range's first block, the key row key_rows_ahead rows
// on. The later blocks' key rows are fetched while the block before sums its values
// (AddWeightedValues' `next`), so memory is busy in both passes: with the keys fetched here
// too, the value pass ran with nothing in flight (same scratch test as below, runs alternating,
// medians of 10: 0.83 -> 0.87 of a plain read).
// The lines are spread over the row's `parts` (its query heads), one part's share beside each
// head's dot product, instead of a row's 128 prefetches issued in one burst. Streaming 16
// OLMoE-shaped layers' caches of 576 positions (scratch test, Zen 4 host, 2 threads, runs
// alternating, medians of 8, as a fraction of a plain read of the same bytes): in one burst,
// 0.75 with blocks of 64 positions and 0.76 with 32; spread, 0.77 with 64 and 0.86 with 32.
template <class T>
class RowFetcher {
 public:
  RowFetcher(const T* k, const T* v, size_t ldk, size_t ldv, size_t keys, size_t parts)
      : k_(k),
        v_(v),
        ldk_(ldk),
        ldv_(ldv),
        keys_(keys),
        ahead_(key_rows_ahead(ldk * sizeof(T))),
        k_lines_(LinesOf(ldk * sizeof(T))),
        v_lines_(LinesOf(ldv * sizeof(T))),
        k_step_((k_lines_ + parts - 1) / parts),
        v_step_((v_lines_ + parts - 1) / parts) {}
  HWY_INLINE void operator()(size_t j, size_t part) const {
    FetchLines(v_ + j * ldv_, part * v_step_, std::min(v_lines_, (part + 1) * v_step_));
    if (j + ahead_ < std::min(keys_, kKeyBlock)) {
      FetchLines(k_ + (j + ahead_) * ldk_, part * k_step_,
                 std::min(k_lines_, (part + 1) * k_step_));
    }
  }
  // The key rows of the block that starts at row j (none past the range), for the value pass
  // of the block before it to fetch.
  LineStream keys_of_block(size_t j) const {
    return LineStream(k_ + j * ldk_, std::min(kKeyBlock, keys_ - j) * ldk_ * sizeof(T));
  }

 private:
  const T* k_;
  const T* v_;
  size_t ldk_, ldv_, keys_, ahead_, k_lines_, v_lines_, k_step_, v_step_;
};

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// Lane i of the result: the sum of the lanes of a[i]. Three rounds of in-block unpacks and adds,
// then two of block shuffles: 30 operations for 16 sums, where a reduction per vector takes ~8.
HWY_INLINE __m512 SumLanes16(const __m512 (&a)[16]) {
  __m512 u[8], w[4];
  for (int i = 0; i < 8; ++i) {
    u[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                         _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {  // block b of w[i]: heads 4 i .. 4 i + 3, summed within block b
    const __m512d x = _mm512_castps_pd(u[2 * i]), y = _mm512_castps_pd(u[2 * i + 1]);
    w[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// The 16 lanes of q . k (dk values, a multiple of 16) summed into one vector: even 16-lane
// chunks into one sum and odd ones into another, then the two added.
template <class T>
HWY_INLINE __m512 DotKv16(const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, size_t dk) {
  const hn::ScalableTag<float> df;
  auto a = hn::Zero(df), b = hn::Zero(df);
  size_t c = 0;
  for (; c + 32 <= dk; c += 32) {
    a = hn::MulAdd(hn::LoadU(df, q + c), LoadKv(df, k + c), a);
    b = hn::MulAdd(hn::LoadU(df, q + c + 16), LoadKv(df, k + c + 16), b);
  }
  if (c < dk) a = hn::MulAdd(hn::LoadU(df, q + c), LoadKv(df, k + c), a);
  return hn::Add(a, b).raw;
}

// DotKv16 for the 16 query heads at q (NK vectors each) over key row kr, where head i reads the
// kv head piece at kr + k_at[i]: each piece is widened once, when the head's kv head differs from
// the one before it (grouped-query attention), and kept in registers for the group's heads. The
// same sums in the same order as DotKv16.
template <size_t NK, class T>
HWY_INLINE void GroupDots16(__m512 (&acc)[16], const float* HWY_RESTRICT q,
                            const T* HWY_RESTRICT kr, const size_t* HWY_RESTRICT k_at) {
  const hn::ScalableTag<float> df;
  hn::Vec<decltype(df)> key[NK];
  for (size_t i = 0; i < 16; ++i) {
    if (i == 0 || k_at[i] != k_at[i - 1]) {
      for (size_t x = 0; x < NK; ++x) key[x] = LoadKv(df, kr + k_at[i] + 16 * x);
    }
    const float* qh = q + i * NK * 16;
    auto a = hn::Zero(df), b = hn::Zero(df);
    for (size_t x = 0; x + 1 < NK; x += 2) {
      a = hn::MulAdd(hn::LoadU(df, qh + 16 * x), key[x], a);
      b = hn::MulAdd(hn::LoadU(df, qh + 16 * x + 16), key[x + 1], b);
    }
    if constexpr (NK % 2 == 1) a = hn::MulAdd(hn::LoadU(df, qh + 16 * (NK - 1)), key[NK - 1], a);
    acc[i] = hn::Add(a, b).raw;
  }
}

// AttendRange for 16 heads at a time (heads, dk and dv multiples of 16): each key row's 16 scores
// come out of one vector reduction, and the online softmax runs across the heads' lanes. scores
// holds [kKeyBlock, heads] here (position-major).
template <class T>
void AttendRange16(float* HWY_RESTRICT o, float* HWY_RESTRICT m, float* HWY_RESTRICT l,
                   const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, const T* HWY_RESTRICT v,
                   size_t kv_heads, size_t group, size_t dk, size_t dv, size_t keys, float scale,
                   float* HWY_RESTRICT scores) {
  const hn::ScalableTag<float> df;
  const size_t heads = kv_heads * group, ldk = kv_heads * dk, ldv = kv_heads * dv;
  const std::vector<size_t> k_at = StartRange(o, m, l, heads, group, dk, dv);
  // Query heads that share a kv head widen its piece of each key row once (head dims of 32, 64
  // and 128); the row's prefetches are then spread over the kv heads instead of the query heads.
  const bool shared = group > 1 && (dk == 32 || dk == 64 || dk == 128);
  const RowFetcher<T> fetch(k, v, ldk, ldv, keys, shared ? kv_heads : heads);
  const auto vscale = hn::Set(df, scale), ninf = hn::Set(df, -INFINITY), one = hn::Set(df, 1.0f);
  for (size_t j0 = 0; j0 < keys; j0 += kKeyBlock) {
    const size_t nb = std::min(kKeyBlock, keys - j0);
    for (size_t j = 0; j < nb; ++j) {
      const T* kr = k + (j0 + j) * ldk;
      for (size_t h0 = 0; h0 < heads; h0 += 16) {
        __m512 acc[16];
        if (shared) {
          for (size_t g = h0 / group; g * group < h0 + 16; ++g) fetch(j0 + j, g);
          switch (dk) {
            case 32:
              GroupDots16<2>(acc, q + h0 * dk, kr, k_at.data() + h0);
              break;
            case 64:
              GroupDots16<4>(acc, q + h0 * dk, kr, k_at.data() + h0);
              break;
            default:
              GroupDots16<8>(acc, q + h0 * dk, kr, k_at.data() + h0);
              break;
          }
        } else {
          for (size_t i = 0; i < 16; ++i) {
            fetch(j0 + j, h0 + i);
            acc[i] = DotKv16(q + (h0 + i) * dk, kr + k_at[h0 + i], dk);
          }
        }
        const hn::Vec<decltype(df)> sums{SumLanes16(acc)};
        hn::StoreU(hn::Mul(sums, vscale), df, scores + j * heads + h0);
      }
    }
    // Online softmax, 16 heads per vector (as SoftmaxBlock does per head).
    for (size_t h0 = 0; h0 < heads; h0 += 16) {
      const auto m_old = hn::LoadU(df, m + h0);
      auto mx = m_old;
      for (size_t j = 0; j < nb; ++j) mx = hn::Max(mx, hn::LoadU(df, scores + j * heads + h0));
      const auto live = hn::Ne(mx, ninf);  // heads with a finite score so far
      const auto grow = hn::Gt(mx, m_old);
      const auto c = hn::IfThenElse(grow, hn::Exp(df, hn::Sub(m_old, mx)), one);
      auto sum = hn::Zero(df);
      for (size_t j = 0; j < nb; ++j) {
        float* sj = scores + j * heads + h0;
        const auto e = hn::IfThenElseZero(live, hn::Exp(df, hn::Sub(hn::LoadU(df, sj), mx)));
        hn::StoreU(e, df, sj);
        sum = hn::Add(sum, e);
      }
      hn::StoreU(hn::MulAdd(hn::LoadU(df, l + h0), c, sum), df, l + h0);
      hn::StoreU(hn::IfThenElse(live, mx, m_old), df, m + h0);
      HWY_ALIGN float cs[16];
      hn::Store(c, df, cs);
      for (size_t i = 0; i < 16; ++i) {
        if (cs[i] == 1.0f) continue;
        float* oh = o + (h0 + i) * dv;
        const auto vc = hn::Set(df, cs[i]);
        for (size_t x = 0; x < dv; x += 16)
          hn::StoreU(hn::Mul(hn::LoadU(df, oh + x), vc), df, oh + x);
      }
    }
    LineStream next_keys = fetch.keys_of_block(j0 + nb);
    AddWeightedValues(o, v + j0 * ldv, nb, heads, group, dv, ldv, scores, 1, heads, next_keys);
  }
}
#endif

// Attention of one query position, all Hq = kv_heads * group query heads, over the key
// positions [0, keys) at k and v (whole cache rows: kv_heads * dk and kv_heads * dv contiguous
// values per position), left unnormalised so that ranges can be merged: o [Hq, dv] the
// exp-weighted sum of value rows, m [Hq] the max score, l [Hq] the sum of exp(score - m). No
// keys gives o = 0, m = -inf, l = 0. scores: [Hq, kKeyBlock] scratch.
//
// Positions are walked in blocks, in order: each key row is read whole (and the same row of
// values is fetched into L2), so the cache streams sequentially and the hardware prefetchers
// follow it; the values are then summed head by head from L2. (Walking one kv head's piece of
// every row from memory, 256 bytes a page apart for OLMoE's 16 heads of 128 f16, they did not,
// and hand prefetching reached ~8 GB/s.)
// What bounds it: every key and value is widened once (vcvtph2ps), ~1.4 TSC cycles per 16 values
// on a Zen 4 core, and the kernel takes ~2.1 with its prefetches and reductions: 78 GB/s on 2
// threads with the cache in L3, against 44-57 GB/s from DRAM, and the two overlap only in part
// (0.77-0.79 of a plain read of the same bytes; scratch test, 16 OLMoE-shaped layers of 576
// positions, variants alternating in one process). Tried and slower: value rows fetched a block
// ahead 0.73-0.75, no software prefetches 0.61-0.63, a position-major value pass left to the
// hardware prefetchers 0.70-0.75, one pass with the online softmax per position 0.66.
// With the later prefetch changes (RowFetcher), the same scratch test over 32 layers reads
// 0.84-0.93 of the plain read when that gives ~33 GB/s, but only 0.66-0.68 (34-35 GB/s) when it
// gives ~52. With one layer's cache in L3 it reads 64 GB/s, which points at how much memory
// traffic is kept in flight rather than at the arithmetic. Measured no better: keys loaded 64 bytes
// at a time (two widenings a load), blocks of 16 or 48 positions, the first block's keys fetched 8
// or 16 KB ahead, and the partial state moved by ~2 or ~4 KB (4 KiB aliasing against the rows).
template <class T>
void AttendRange(float* HWY_RESTRICT o, float* HWY_RESTRICT m, float* HWY_RESTRICT l,
                 const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, const T* HWY_RESTRICT v,
                 size_t kv_heads, size_t group, size_t dk, size_t dv, size_t keys, float scale,
                 float* HWY_RESTRICT scores) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if ((kv_heads * group) % 16 == 0 && dk % 16 == 0 && dv % 16 == 0) {
    AttendRange16(o, m, l, q, k, v, kv_heads, group, dk, dv, keys, scale, scores);
    return;
  }
#endif
  const hn::ScalableTag<float> df;
  const size_t heads = kv_heads * group, ldk = kv_heads * dk, ldv = kv_heads * dv;
  const std::vector<size_t> k_at = StartRange(o, m, l, heads, group, dk, dv);
  const RowFetcher<T> fetch(k, v, ldk, ldv, keys, heads);
  for (size_t j0 = 0; j0 < keys; j0 += kKeyBlock) {
    const size_t nb = std::min(kKeyBlock, keys - j0);
    // Scores of the block, [Hq, nb]: each kv head's piece of a key row serves its group.
    for (size_t j = 0; j < nb; ++j) {
      const T* kr = k + (j0 + j) * ldk;
      for (size_t h = 0; h < heads; ++h) {
        fetch(j0 + j, h);
        scores[h * kKeyBlock + j] = DotKv(df, q + h * dk, kr + k_at[h], dk) * scale;
      }
    }
    for (size_t h = 0; h < heads; ++h) {
      SoftmaxBlock(scores + h * kKeyBlock, nb, m[h], l[h], o + h * dv, dv);
    }
    LineStream next_keys = fetch.keys_of_block(j0 + nb);
    AddWeightedValues(o, v + j0 * ldv, nb, heads, group, dv, ldv, scores, kKeyBlock, 1, next_keys);
  }
}
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// Lane r: q . key row r of the nb <= 16 rows at k (dk values each, back to back; dk a multiple
// of 16), 0 past nb. The 16 dot products are reduced together (SumLanes16).
template <class T>
HWY_INLINE __m512 RowDots16(const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, size_t nb,
                            size_t dk) {
  __m512 acc[16];
  for (size_t r = 0; r < 16; ++r) {
    acc[r] = r < nb ? DotKv16(q, k + r * dk, dk) : _mm512_setzero_ps();
  }
  return SumLanes16(acc);
}
#endif

// The scores of one query head q (dk values) against nb key rows at k, dk values each back to
// back, times scale, into s[0, nb): on AVX-512 16 rows at a time (RowDots16), else one
// reduction per row.
template <class T>
HWY_INLINE void HeadScores(float* HWY_RESTRICT s, const float* HWY_RESTRICT q,
                           const T* HWY_RESTRICT k, size_t nb, size_t dk, float scale) {
  const hn::ScalableTag<float> df;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (dk % 16 == 0) {
    for (size_t j0 = 0; j0 < nb; j0 += 16) {
      const size_t n = std::min<size_t>(16, nb - j0);
      HWY_ALIGN float row[16];
      hn::Store(
          hn::Mul(hn::Vec<decltype(df)>{RowDots16(q, k + j0 * dk, n, dk)}, hn::Set(df, scale)), df,
          row);
      std::copy(row, row + n, s + j0);
    }
    return;
  }
#endif
  for (size_t j = 0; j < nb; ++j) s[j] = DotKv(df, q, k + j * dk, dk) * scale;
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// AttendHead on AVX-512 for a kv head read by one query head, value rows of NV vectors (dk a
// multiple of 16): blocks of 16 positions, the head's 16 scores from one vector reduction
// (RowDots16), its online softmax across the lanes and its output row summed in registers,
// loaded and stored once a block.
template <size_t NV, class T>
void AttendHead16(float* HWY_RESTRICT o, float& m, float& l, const float* HWY_RESTRICT q,
                  const T* HWY_RESTRICT k, const T* HWY_RESTRICT v, size_t dk, size_t keys,
                  float scale) {
  const hn::ScalableTag<float> df;
  constexpr size_t dv = NV * 16;
  for (size_t j0 = 0; j0 < keys; j0 += 16) {
    const size_t nb = std::min<size_t>(16, keys - j0);
    const auto sc = hn::IfThenElse(
        hn::FirstN(df, nb),
        hn::Mul(hn::Vec<decltype(df)>{RowDots16(q, k + j0 * dk, nb, dk)}, hn::Set(df, scale)),
        hn::Set(df, -INFINITY));
    const float mx = std::max(m, hn::GetLane(hn::MaxOfLanes(df, sc)));
    if (mx == -INFINITY) continue;     // only -inf scores so far: nothing has weight yet
    const float c = std::exp(m - mx);  // 0 for the first block (m = -inf, o and l 0)
    const auto p = hn::Exp(df, hn::Sub(sc, hn::Set(df, mx)));  // 0 in the dead lanes
    l = l * c + hn::GetLane(hn::SumOfLanes(df, p));
    m = mx;
    HWY_ALIGN float w[16];
    hn::Store(p, df, w);
    hn::Vec<decltype(df)> sum[NV];
    const auto vc = hn::Set(df, c);
    for (size_t x = 0; x < NV; ++x) sum[x] = hn::Mul(hn::LoadU(df, o + 16 * x), vc);
    for (size_t r = 0; r < nb; ++r) {
      const T* vr = v + (j0 + r) * dv;
      const auto wr = hn::Set(df, w[r]);
      for (size_t x = 0; x < NV; ++x) sum[x] = hn::MulAdd(wr, LoadKv(df, vr + 16 * x), sum[x]);
    }
    for (size_t x = 0; x < NV; ++x) hn::StoreU(sum[x], df, o + 16 * x);
  }
}

// The scores of a kv head's `group` query heads against nb key rows at k (dk = 16 NK values
// each), times scale, into s[i * kKeyBlock + j], G heads at a time (G = group when it is 2, 4 or
// 8; 16 when group is a multiple of 16): each row's key piece is widened once for the G heads,
// and 16 (head, row) dot products are reduced together (SumLanes16).
template <size_t NK, size_t G, class T>
HWY_INLINE void GroupScores(float* HWY_RESTRICT s, const float* HWY_RESTRICT q,
                            const T* HWY_RESTRICT k, size_t nb, size_t group, float scale) {
  const hn::ScalableTag<float> df;
  constexpr size_t kRows = 16 / G;
  HWY_ALIGN float sums[16];
  for (size_t h0 = 0; h0 < group; h0 += G) {
    const float* qh = q + h0 * NK * 16;
    for (size_t j = 0; j < nb; j += kRows) {
      __m512 acc[16];
      for (size_t r = 0; r < kRows; ++r) {
        const T* kr = k + std::min(j + r, nb - 1) * NK * 16;  // past nb: the last row again
        hn::Vec<decltype(df)> key[NK];
        for (size_t x = 0; x < NK; ++x) key[x] = LoadKv(df, kr + 16 * x);
        for (size_t i = 0; i < G; ++i) {
          const float* qi = qh + i * NK * 16;
          auto a = hn::Zero(df), b = hn::Zero(df);
          for (size_t x = 0; x + 1 < NK; x += 2) {
            a = hn::MulAdd(hn::LoadU(df, qi + 16 * x), key[x], a);
            b = hn::MulAdd(hn::LoadU(df, qi + 16 * x + 16), key[x + 1], b);
          }
          acc[r * G + i] = hn::Add(a, b).raw;
        }
      }
      hn::Store(hn::Mul(hn::Vec<decltype(df)>{SumLanes16(acc)}, hn::Set(df, scale)), df, sums);
      for (size_t x = 0; x < 16 && j + x / G < nb; ++x) {
        s[(h0 + x % G) * kKeyBlock + j + x / G] = sums[x];
      }
    }
  }
}

// GroupScores for a head dim of 16 NK values, with G picked from the group (see there).
template <size_t NK, class T>
HWY_INLINE void GroupScoresFor(float* HWY_RESTRICT s, const float* HWY_RESTRICT q,
                               const T* HWY_RESTRICT k, size_t nb, size_t group, float scale) {
  switch (group) {
    case 2:
      GroupScores<NK, 2>(s, q, k, nb, group, scale);
      return;
    case 4:
      GroupScores<NK, 4>(s, q, k, nb, group, scale);
      return;
    case 8:
      GroupScores<NK, 8>(s, q, k, nb, group, scale);
      return;
    default:
      GroupScores<NK, 16>(s, q, k, nb, group, scale);
      return;
  }
}
#endif

// AttendRange over one kv head of a head-major cache: the `group` query heads at q ([group, dk])
// that read it, over its key rows [0, keys) at k (dk values each, back to back) and value rows at
// v (dv each), left unnormalised the same way. Each head's rows are two sequential streams, which
// the hardware prefetchers follow without help. scores: [group, kKeyBlock] scratch.
template <class T>
void AttendHead(float* HWY_RESTRICT o, float* HWY_RESTRICT m, float* HWY_RESTRICT l,
                const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, const T* HWY_RESTRICT v,
                size_t group, size_t dk, size_t dv, size_t keys, float scale,
                float* HWY_RESTRICT scores) {
  std::fill(o, o + group * dv, 0.0f);
  std::fill(m, m + group, -INFINITY);
  std::fill(l, l + group, 0.0f);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (group == 1 && dk % 16 == 0) {
    switch (dv) {
      case 32:
        AttendHead16<2>(o, *m, *l, q, k, v, dk, keys, scale);
        return;
      case 64:
        AttendHead16<4>(o, *m, *l, q, k, v, dk, keys, scale);
        return;
      case 128:
        AttendHead16<8>(o, *m, *l, q, k, v, dk, keys, scale);
        return;
      default:
        break;
    }
  }
#endif
  // A group's heads share each widened key piece (GroupScores) where the shapes allow.
  bool grouped = false;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  grouped = group > 1 && (dk == 32 || dk == 64 || dk == 128) &&
            (group % 16 == 0 || group == 2 || group == 4 || group == 8);
#endif
  LineStream nothing(nullptr, 0);
  for (size_t j0 = 0; j0 < keys; j0 += kKeyBlock) {
    const size_t nb = std::min(kKeyBlock, keys - j0);
    if (grouped) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
      if (dk == 32) {
        GroupScoresFor<2>(scores, q, k + j0 * dk, nb, group, scale);
      } else if (dk == 64) {
        GroupScoresFor<4>(scores, q, k + j0 * dk, nb, group, scale);
      } else {
        GroupScoresFor<8>(scores, q, k + j0 * dk, nb, group, scale);
      }
#endif
    } else {
      for (size_t i = 0; i < group; ++i) {
        HeadScores(scores + i * kKeyBlock, q + i * dk, k + j0 * dk, nb, dk, scale);
      }
    }
    for (size_t i = 0; i < group; ++i) {
      SoftmaxBlock(scores + i * kKeyBlock, nb, m[i], l[i], o + i * dv, dv);
    }
    AddWeightedValues(o, v + j0 * dv, nb, group, group, dv, dv, scores, kKeyBlock, 1, nothing);
  }
}
void AttendHeadF32(float* o, float* m, float* l, const float* q, const void* k, const void* v,
                   size_t group, size_t dk, size_t dv, size_t keys, float scale, float* scores) {
  AttendHead(o, m, l, q, static_cast<const float*>(k), static_cast<const float*>(v), group, dk, dv,
             keys, scale, scores);
}
void AttendHeadF16(float* o, float* m, float* l, const float* q, const void* k, const void* v,
                   size_t group, size_t dk, size_t dv, size_t keys, float scale, float* scores) {
  AttendHead(o, m, l, q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), group,
             dk, dv, keys, scale, scores);
}

void AttendRangeF32(float* o, float* m, float* l, const float* q, const void* k, const void* v,
                    size_t kv_heads, size_t group, size_t dk, size_t dv, size_t keys, float scale,
                    float* scores) {
  AttendRange(o, m, l, q, static_cast<const float*>(k), static_cast<const float*>(v), kv_heads,
              group, dk, dv, keys, scale, scores);
}
void AttendRangeF16(float* o, float* m, float* l, const float* q, const void* k, const void* v,
                    size_t kv_heads, size_t group, size_t dk, size_t dv, size_t keys, float scale,
                    float* scores) {
  AttendRange(o, m, l, q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v),
              kv_heads, group, dk, dv, keys, scale, scores);
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <vector>

#include "core/dtype.h"
#include "kernels/cached_attention.h"
#include "kernels/cpu/cached_attention_cpu.h"
#include "kernels/cpu/gemm_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(SoftmaxTile);
HWY_EXPORT(AttendRangeF32);
HWY_EXPORT(AttendRangeF16);
HWY_EXPORT(AttendHeadF32);
HWY_EXPORT(AttendHeadF16);

namespace {
// Prefill: queries per block, and keys per tile. A block's scores over a tile, [kBlock,
// kKeyTile] floats (128 KB), and the tile's keys and values widened to f32 (128 KB each for
// heads of 128) stay in L2 from one GEMM to the next; the two GEMMs take ~5/6 of the time.
// `bench kernels --filter cached_attention`, runs alternating, GFLOP/s for a 512-token prompt /
// a 512-token chunk after 3584 cached: 64 x 256 117-119 / 134-138, 128 x 256 120-126 / 148-151,
// 256 x 128 92-105 / 150, 128 x 128 114 / 140-143; tiles of 128 and 512 keys measured the same
// as 256 with blocks of 64.
constexpr int64_t kBlock = 128;
constexpr int64_t kKeyTile = 256;
// Below this many score entries the call runs on one thread (decode steps of small models).
constexpr int64_t kParallelMinScores = 1 << 14;
// Up to this many new tokens (decode steps) each position attends straight from the cache, f16
// or f32, with no GEMM calls (attend_direct); more go through the blocked path.
constexpr int64_t kDirectMaxTokens = kCachedAttentionDecodeTokens;
// Below this many bytes of keys and values read, the direct path runs on one thread.
constexpr int64_t kDirectParallelBytes = int64_t{1} << 18;

// What the decode walks (attend_direct, attend_heads) take from the shape. Token t (position
// past + t) sees the keys [first_key(t), past + t]; parallel: the keys and values read come to
// kDirectParallelBytes or more, so the whole team shares them.
struct DirectWalk {
  DirectWalk(const CachedAttentionShape& s, bool kv_f16, int64_t window_)
      : group(s.q_heads / s.kv_heads),
        past(s.cached - s.tokens),
        ldq(s.q_heads * s.key_dim),
        ldo(s.q_heads * s.value_dim),
        elem(kv_f16 ? 2 : 4),
        window(window_) {
    int64_t bytes = 0;
    for (int64_t t = 0; t < s.tokens; ++t) {
      bytes += (past + t + 1 - first_key(t)) * s.kv_heads * (s.key_dim + s.value_dim);
    }
    parallel = bytes * elem >= kDirectParallelBytes;
  }
  int64_t first_key(int64_t t) const {
    return window > 0 ? std::max<int64_t>(0, past + t - window + 1) : 0;
  }
  int64_t group, past, ldq, ldo, elem, window;
  bool parallel = false;
};

// One query head's output from n unnormalised partial states over disjoint key ranges (see
// AttendRange): out[0, dv) = sum_i exp(m_i - M) o_i / sum_i exp(m_i - M) l_i, M = max_i m_i,
// where state(i) is state i's buffer, holding o_i from o_at on, m_i at m_at and l_i at l_at.
template <class State>
void merge_partials(float* out, int64_t dv, int64_t n, const State& state, int64_t o_at,
                    int64_t m_at, int64_t l_at) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, state(i)[m_at]);
  std::fill(out, out + dv, 0.0f);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float* si = state(i);
    if (si[m_at] == -INFINITY) continue;  // no keys (or none with weight) in its range
    const float w = std::exp(si[m_at] - mx);
    for (int64_t c = 0; c < dv; ++c) out[c] += w * si[o_at + c];
    sum += w * si[l_at];
  }
  const float inv = 1.0f / sum;
  for (int64_t c = 0; c < dv; ++c) out[c] *= inv;
}

// Decode attention split over key positions (flash-decoding): each thread takes one contiguous
// range of every token's keys, attends all query heads over it in position order (AttendRange:
// whole cache rows, one sequential stream), and the threads' unnormalised partial results are
// merged by their maxima. Splitting by kv head instead gave each thread one head's piece of
// every row, which the hardware prefetchers do not follow.
void attend_direct(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                   const CachedAttentionShape& s, float scale, int64_t window) {
  const DirectWalk w(s, kv_f16, window);
  const int64_t group = w.group, past = w.past, ldq = w.ldq, ldo = w.ldo, elem = w.elem;
  const int64_t ldk = s.kv_heads * s.key_dim, ldv = s.kv_heads * s.value_dim;
  const bool parallel = w.parallel;
  const auto first_key = [&](int64_t t) { return w.first_key(t); };
  const auto* kb = static_cast<const uint8_t*>(k);
  const auto* vb = static_cast<const uint8_t*>(v);
  // Per thread and token: o [Hq, Dv], then m [Hq] and l [Hq] (see AttendRange).
  const int64_t state = s.q_heads * (s.value_dim + 2);
  const int64_t max_threads = parallel ? omp_get_max_threads() : 1;
  std::vector<float> partial(static_cast<size_t>(max_threads * s.tokens * state));
  const auto attend =
      kv_f16 ? HWY_DYNAMIC_DISPATCH(AttendRangeF16) : HWY_DYNAMIC_DISPATCH(AttendRangeF32);
#pragma omp parallel if (parallel)
  {
    const int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
    std::vector<float> scores(static_cast<size_t>(s.q_heads * kKeyBlock));
    for (int64_t t = 0; t < s.tokens; ++t) {
      // This thread's share of the token's keys; empty when there are fewer keys than threads.
      const int64_t lo = first_key(t), keys = past + t + 1 - lo;
      const int64_t begin = lo + keys * id / threads, end = lo + keys * (id + 1) / threads;
      float* o = partial.data() + (id * s.tokens + t) * state;
      float* m = o + s.q_heads * s.value_dim;
      attend(o, m, m + s.q_heads, q + t * ldq, kb + begin * ldk * elem, vb + begin * ldv * elem,
             static_cast<size_t>(s.kv_heads), static_cast<size_t>(group),
             static_cast<size_t>(s.key_dim), static_cast<size_t>(s.value_dim),
             static_cast<size_t>(end - begin), scale, scores.data());
    }
#pragma omp barrier
    // out = sum_i exp(m_i - M) o_i / sum_i exp(m_i - M) l_i over the threads i, M = max_i m_i.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < s.tokens * s.q_heads; ++item) {
      const int64_t t = item / s.q_heads, h = item % s.q_heads;
      const auto at = [&](int64_t i) { return partial.data() + (i * s.tokens + t) * state; };
      const int64_t mi = s.q_heads * s.value_dim + h;
      merge_partials(out + t * ldo + h * s.value_dim, s.value_dim, threads, at, h * s.value_dim, mi,
                     mi + s.q_heads);
    }
  }
}

// attend_direct over a head-major cache: the work items are (token, kv head, chunk of its keys),
// each a kv head's query heads over one contiguous range of its key and value rows (AttendHead),
// shared out among the threads in order. Heads are cut into chunks only when there are fewer
// (token, kv head) pairs than threads; the chunks' partial states are merged as attend_direct
// merges the threads'. Scratch test on this Zen 4 host (32 OLMoE-shaped layers of 576 f16
// positions, 2 threads, runs alternating with a plain read of the same bytes): the
// position-major walk read 0.87-0.90 of the plain read at ~35 GB/s and 0.63-0.69 at ~54; head
// by head, 1.04 and 1.03-1.13.
void attend_heads(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                  const CachedAttentionShape& s, float scale, int64_t window) {
  const DirectWalk w(s, kv_f16, window);
  const int64_t group = w.group, past = w.past, ldq = w.ldq, ldo = w.ldo, elem = w.elem;
  const int64_t cap = s.head_capacity;
  const bool parallel = w.parallel;
  const auto first_key = [&](int64_t t) { return w.first_key(t); };
  const auto* kb = static_cast<const uint8_t*>(k);
  const auto* vb = static_cast<const uint8_t*>(v);
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  const int64_t pairs = s.tokens * s.kv_heads;
  const int64_t chunks = std::max<int64_t>(1, (threads + pairs - 1) / pairs);
  // Per item: o [group, Dv], then m [group] and l [group] (see AttendHead).
  const int64_t state = group * (s.value_dim + 2);
  // Every item writes its whole state, so the buffer is kept from call to call, not cleared.
  thread_local std::vector<float> kept;
  kept.resize(std::max(kept.size(), static_cast<size_t>(pairs * chunks * state)));
  float* partial = kept.data();  // the caller's buffer, for every thread of the team
  const auto attend =
      kv_f16 ? HWY_DYNAMIC_DISPATCH(AttendHeadF16) : HWY_DYNAMIC_DISPATCH(AttendHeadF32);
#pragma omp parallel if (parallel)
  {
    thread_local std::vector<float> scores;
    scores.resize(std::max(scores.size(), static_cast<size_t>(group * kKeyBlock)));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < pairs * chunks; ++item) {
      const int64_t t = item / (s.kv_heads * chunks), g = item / chunks % s.kv_heads;
      const int64_t c = item % chunks;
      const int64_t lo = first_key(t), keys = past + t + 1 - lo;
      const int64_t begin = lo + keys * c / chunks, end = lo + keys * (c + 1) / chunks;
      float* o = partial + item * state;
      float* m = o + group * s.value_dim;
      attend(o, m, m + group, q + t * ldq + g * group * s.key_dim,
             kb + (g * cap + begin) * s.key_dim * elem, vb + (g * cap + begin) * s.value_dim * elem,
             static_cast<size_t>(group), static_cast<size_t>(s.key_dim),
             static_cast<size_t>(s.value_dim), static_cast<size_t>(end - begin), scale,
             scores.data());
    }
    // out = sum_c exp(m_c - M) o_c / sum_c exp(m_c - M) l_c over the chunks c, M = max_c m_c.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < s.tokens * s.q_heads; ++item) {
      const int64_t t = item / s.q_heads, h = item % s.q_heads;
      const int64_t g = h / group, i = h % group;
      const auto at = [&](int64_t c) {
        return partial + ((t * s.kv_heads + g) * chunks + c) * state;
      };
      const int64_t mi = group * s.value_dim + i;
      merge_partials(out + t * ldo + h * s.value_dim, s.value_dim, chunks, at, i * s.value_dim, mi,
                     mi + group);
    }
  }
}

// Prefill (more than kDirectMaxTokens new tokens), flash-attention style: work items are (query
// head, block of kBlock queries), and each walks the keys its block can see in tiles of kKeyTile
// positions, in order. Per tile: one GEMM for the scores, the online softmax (SoftmaxTile: the
// rows' running max, sum and output, rescaled when the max grows), one GEMM adding the weighted
// values to the output. f16 tiles are widened to f32 per item as they are read, so memory stays
// a few tiles per thread however long the cache. Items are independent, so results do not
// depend on the thread count.
void attend_blocked(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                    const CachedAttentionShape& s, float scale, int64_t window) {
  const int64_t group = s.q_heads / s.kv_heads;
  const int64_t past = s.cached - s.tokens;
  const int64_t dk = s.key_dim, dv = s.value_dim;
  const int64_t ldq = s.q_heads * dk, ldo = s.q_heads * dv;
  // Element strides between positions and between kv heads, in either layout.
  const bool heads_first = s.head_capacity > 0;
  const int64_t k_pos = heads_first ? dk : s.kv_heads * dk;
  const int64_t v_pos = heads_first ? dv : s.kv_heads * dv;
  const int64_t k_head = heads_first ? s.head_capacity * dk : dk;
  const int64_t v_head = heads_first ? s.head_capacity * dv : dv;
  const int64_t blocks = (s.tokens + kBlock - 1) / kBlock;
  const bool parallel = s.tokens * s.q_heads * s.cached >= kParallelMinScores;
  const auto softmax_tile = HWY_DYNAMIC_DISPATCH(SoftmaxTile);
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(kBlock * kKeyTile));
    std::vector<float> m(kBlock), l(kBlock);
    std::vector<float> k_tile, v_tile;  // the tile widened (f16 cache)
    if (kv_f16) {
      k_tile.resize(static_cast<size_t>(kKeyTile * dk));
      v_tile.resize(static_cast<size_t>(kKeyTile * dv));
    }
    // The n rows of kv head g's piece of the cache from position p (rows ld apart, heads
    // `head` apart), as f32 rows ld_out apart.
    const auto rows_of = [&](const void* base, int64_t ld, int64_t head, int64_t g, int64_t d,
                             int64_t p, int64_t n, std::vector<float>& tile, int64_t& ld_out) {
      if (!kv_f16) {
        ld_out = ld;
        return static_cast<const float*>(base) + p * ld + g * head;
      }
      const auto* src = static_cast<const uint16_t*>(base) + p * ld + g * head;
      for (int64_t i = 0; i < n; ++i) {
        convert_f16_to_f32(src + i * ld, tile.data() + i * d, static_cast<size_t>(d));
      }
      ld_out = d;
      return static_cast<const float*>(tile.data());
    };
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t h = 0; h < s.q_heads; ++h) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t g = h / group;
        const int64_t t0 = blk * kBlock, t1 = std::min(s.tokens, t0 + kBlock);
        const int64_t rows = t1 - t0;
        // Keys this block can see: [first of its first query, position of its last query].
        const int64_t key_end = past + t1;
        const int64_t key_begin = window > 0 ? std::max<int64_t>(0, past + t0 - window + 1) : 0;
        float* o = out + t0 * ldo + h * dv;
        for (int64_t r = 0; r < rows; ++r) std::fill(o + r * ldo, o + r * ldo + dv, 0.0f);
        std::fill(m.begin(), m.end(), -INFINITY);
        std::fill(l.begin(), l.end(), 0.0f);
        for (int64_t p = key_begin; p < key_end; p += kKeyTile) {
          const int64_t n = std::min(kKeyTile, key_end - p);
          int64_t lk = 0, lv = 0;
          const float* kp = rows_of(k, k_pos, k_head, g, dk, p, n, k_tile, lk);
          sgemm(false, true, rows, n, dk, scale, q + t0 * ldq + h * dk, ldq, kp, lk, 0.0f,
                scores.data(), kKeyTile);
          softmax_tile(scores.data(), kKeyTile, static_cast<size_t>(rows), static_cast<size_t>(n),
                       past + t0 - p, window, m.data(), l.data(), o, static_cast<size_t>(ldo),
                       static_cast<size_t>(dv));
          const float* vp = rows_of(v, v_pos, v_head, g, dv, p, n, v_tile, lv);
          sgemm(false, false, rows, dv, n, 1.0f, scores.data(), kKeyTile, vp, lv, 1.0f, o, ldo);
        }
        // Every query sees at least its own position, so l >= 1.
        for (int64_t r = 0; r < rows; ++r) {
          const float inv = 1.0f / l[static_cast<size_t>(r)];
          for (int64_t c = 0; c < dv; ++c) o[r * ldo + c] *= inv;
        }
      }
    }
  }
}

}  // namespace

void cached_attention(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                      const CachedAttentionShape& s, float scale, int64_t window) {
  if (s.tokens <= kDirectMaxTokens) {
    if (s.head_capacity > 0) {
      attend_heads(out, q, k, v, kv_f16, s, scale, window);
    } else {
      attend_direct(out, q, k, v, kv_f16, s, scale, window);
    }
    return;
  }
  attend_blocked(out, q, k, v, kv_f16, s, scale, window);
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
