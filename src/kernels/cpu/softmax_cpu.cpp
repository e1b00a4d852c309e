// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
//
// Forward reads each row from memory once: pass 1 finds the max while streaming the row in,
// pass 2 writes exp(x - max) and sums it, pass 3 scales the row it just wrote. A row of a few
// thousand floats (x and y together) stays in L1/L2 between passes, so passes 2 and 3 cost
// compute, not memory traffic. While pass 2 computes, the next row is prefetched, so memory
// stays busy during the exps instead of idling between rows (~0.62 -> ~0.75 of triad on
// 4096 x 4096, 2 threads). The bound is ~0.89: both figures count a written array once though
// its read-for-ownership moves it twice, so triad moves 4/3 of what it counts, softmax 3/2.
// Non-temporal stores (exp into an L1 scratch row, then scale and stream out) would avoid that,
// but measured slower on our test machine and hurt callers that re-read a small output.
//
// The exps go through ExpNonPositive (vec_math-inl.h) rather than hn::Exp: every argument here is
// x - max, x - lse or a log-probability, all <= 0, which allows a shorter range reduction and
// 2^n scaling; that made pass 2 ~1.5x faster in cache (~0.75 -> ~0.80 of triad).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/softmax_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstddef>
#include <limits>

#include "kernels/cpu/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Prefetches (into L2) the 64-byte lines starting in [p + i, p + i + count).
HWY_INLINE void PrefetchSpan(const float* p, size_t i, size_t count) {
  for (size_t j = (i + 15) & ~size_t{15}; j < i + count; j += 16) {
    __builtin_prefetch(p + j, /*rw=*/0, /*locality=*/2);
  }
}

// Max of a row (-inf for an empty one). Four accumulators hide the latency of Max.
HWY_INLINE float RowMax(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  auto m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
  size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    m0 = hn::Max(m0, hn::LoadU(d, x + i));
    m1 = hn::Max(m1, hn::LoadU(d, x + i + lanes));
    m2 = hn::Max(m2, hn::LoadU(d, x + i + 2 * lanes));
    m3 = hn::Max(m3, hn::LoadU(d, x + i + 3 * lanes));
  }
  for (; i + lanes <= n; i += lanes) m0 = hn::Max(m0, hn::LoadU(d, x + i));
  float m = hn::GetLane(hn::MaxOfLanes(d, hn::Max(hn::Max(m0, m1), hn::Max(m2, m3))));
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// Sum of exp(x - m); when `y` is not null, also writes exp(x - m) there, and when `prefetch`
// is not null, prefetches the n floats there (the next row). Returns NaN when any x - m is NaN
// (a NaN input, +inf input, or a row of only -inf), so such rows come out NaN instead of
// silently looking fine. The check adds the differences up: they are all <= 0 or NaN, so the
// sum is NaN exactly when one of them is.
HWY_INLINE float RowSumExp(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, float m, size_t n,
                           const float* prefetch = nullptr) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vm = hn::Set(d, m);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), check = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const auto a = hn::Sub(hn::LoadU(d, x + i), vm);
    const auto b = hn::Sub(hn::LoadU(d, x + i + lanes), vm);
    if (prefetch != nullptr) PrefetchSpan(prefetch, i, 2 * lanes);
    const auto ea = ExpNonPositive(d, a);
    const auto eb = ExpNonPositive(d, b);
    if (y != nullptr) {
      hn::StoreU(ea, d, y + i);
      hn::StoreU(eb, d, y + i + lanes);
    }
    s0 = hn::Add(s0, ea);
    s1 = hn::Add(s1, eb);
    check = hn::Add(check, hn::Add(a, b));
  }
  for (; i + lanes <= n; i += lanes) {
    const auto a = hn::Sub(hn::LoadU(d, x + i), vm);
    const auto ea = ExpNonPositive(d, a);
    if (y != nullptr) hn::StoreU(ea, d, y + i);
    s0 = hn::Add(s0, ea);
    check = hn::Add(check, a);
  }
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  float c = hn::GetLane(hn::SumOfLanes(d, check));
  for (; i < n; ++i) {
    const float a = x[i] - m;
    const float e = std::exp(a);
    if (y != nullptr) y[i] = e;
    s += e;
    c += a;
  }
  return std::isnan(c) ? std::numeric_limits<float>::quiet_NaN() : s;
}

// y *= k.
HWY_INLINE void RowScale(float* HWY_RESTRICT y, float k, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vk = hn::Set(d, k);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, y + i), vk), d, y + i);
  for (; i < n; ++i) y[i] *= k;
}

// sum(a * b) over a row.
HWY_INLINE float RowDot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + lanes), hn::LoadU(d, b + i + lanes), s1);
  }
  for (; i + lanes <= n; i += lanes) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// sum(a) over a row.
HWY_INLINE float RowSum(const float* HWY_RESTRICT a, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    s0 = hn::Add(s0, hn::LoadU(d, a + i));
    s1 = hn::Add(s1, hn::LoadU(d, a + i + lanes));
  }
  for (; i + lanes <= n; i += lanes) s0 = hn::Add(s0, hn::LoadU(d, a + i));
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i];
  return s;
}

void SoftmaxRows(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t rows, size_t n) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float m = RowMax(xr, n);
    // While this row is computed, the next one is fetched, so memory keeps streaming.
    const float s = RowSumExp(yr, xr, m, n, r + 1 < rows ? xr + n : nullptr);
    RowScale(yr, 1.0f / s, n);
  }
}

// d_x += y * (d_y - dot), dot = sum(d_y * y).
void SoftmaxBackwardRows(float* HWY_RESTRICT d_x, const float* HWY_RESTRICT d_y,
                         const float* HWY_RESTRICT y, size_t rows, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  for (size_t r = 0; r < rows; ++r) {
    const float* gr = d_y + r * n;
    const float* yr = y + r * n;
    float* dr = d_x + r * n;
    const float dot = RowDot(gr, yr, n);
    const auto vdot = hn::Set(d, dot);
    size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
      const auto yv = hn::LoadU(d, yr + i);
      const auto upd = hn::Mul(yv, hn::Sub(hn::LoadU(d, gr + i), vdot));
      hn::StoreU(hn::Add(hn::LoadU(d, dr + i), upd), d, dr + i);
    }
    for (; i < n; ++i) dr[i] += yr[i] * (gr[i] - dot);
  }
}

float RowLogSumExp(const float* HWY_RESTRICT x, size_t n, const float* prefetch) {
  const float m = RowMax(x, n);
  return m + std::log(RowSumExp(nullptr, x, m, n, prefetch));
}

// d += scale * exp(x - lse).
void RowAddSoftmax(float* HWY_RESTRICT d_out, const float* HWY_RESTRICT x, float lse, float scale,
                   size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vlse = hn::Set(d, lse);
  const auto vscale = hn::Set(d, scale);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto p = ExpNonPositive(d, hn::Sub(hn::LoadU(d, x + i), vlse));
    hn::StoreU(hn::MulAdd(p, vscale, hn::LoadU(d, d_out + i)), d, d_out + i);
  }
  for (; i < n; ++i) d_out[i] += std::exp(x[i] - lse) * scale;
}

void LogSoftmaxRows(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t rows, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float m = RowMax(xr, n);
    // (x - m) - log(s) rather than x - (m + log(s)): x - m is exact near the max, whereas
    // m + log(s) would round to the ulp of m, which is coarse for large logits.
    const float log_s = std::log(RowSumExp(nullptr, xr, m, n));
    const auto vm = hn::Set(d, m);
    const auto vlog_s = hn::Set(d, log_s);
    size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
      hn::StoreU(hn::Sub(hn::Sub(hn::LoadU(d, xr + i), vm), vlog_s), d, yr + i);
    }
    for (; i < n; ++i) yr[i] = (xr[i] - m) - log_s;
  }
}

// d_x += d_y - exp(y) * sum(d_y).
void LogSoftmaxBackwardRows(float* HWY_RESTRICT d_x, const float* HWY_RESTRICT d_y,
                            const float* HWY_RESTRICT y, size_t rows, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  for (size_t r = 0; r < rows; ++r) {
    const float* gr = d_y + r * n;
    const float* yr = y + r * n;
    float* dr = d_x + r * n;
    const float total = RowSum(gr, n);
    const auto vtotal = hn::Set(d, total);
    size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
      const auto p = ExpNonPositive(d, hn::LoadU(d, yr + i));
      const auto upd = hn::NegMulAdd(p, vtotal, hn::LoadU(d, gr + i));
      hn::StoreU(hn::Add(hn::LoadU(d, dr + i), upd), d, dr + i);
    }
    for (; i < n; ++i) dr[i] += gr[i] - std::exp(yr[i]) * total;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>

#include "core/threads.h"
#include "kernels/cpu/softmax_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(SoftmaxRows);
HWY_EXPORT(SoftmaxBackwardRows);
HWY_EXPORT(RowLogSumExp);
HWY_EXPORT(RowAddSoftmax);
HWY_EXPORT(LogSoftmaxRows);
HWY_EXPORT(LogSoftmaxBackwardRows);

namespace {
// Runs body(first_row, row_count, cols) over blocks of rows in parallel. A block holds about
// 16K elements: enough that dispatch and loop overhead vanish, few enough that small tensors
// still spread over the threads.
template <typename Body>
void for_row_blocks(int64_t rows, int64_t cols, Body&& body) {
  const int64_t block = std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
  const int64_t blocks = (rows + block - 1) / block;
  parallel_for(0, blocks, rows * cols >= kParallelMinElements, [&](int64_t b) {
    const int64_t begin = b * block;
    body(begin, static_cast<size_t>(std::min(block, rows - begin)));
  });
}
}  // namespace

void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  run_team(rows * cols >= kParallelMinElements, [&](int64_t t, int64_t nt) {
    const int64_t begin = rows * t / nt, end = rows * (t + 1) / nt;
    if (end > begin) {
      HWY_DYNAMIC_DISPATCH(SoftmaxRows)
      (y + begin * cols, x + begin * cols, static_cast<size_t>(end - begin), n);
    }
  });
}

void softmax_backward(float* d_x, const float* d_y, const float* y, int64_t rows, int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  for_row_blocks(rows, cols, [&](int64_t r, size_t count) {
    HWY_DYNAMIC_DISPATCH(SoftmaxBackwardRows)
    (d_x + r * cols, d_y + r * cols, y + r * cols, count, n);
  });
}

void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  for_row_blocks(rows, cols, [&](int64_t r, size_t count) {
    HWY_DYNAMIC_DISPATCH(LogSoftmaxRows)(y + r * cols, x + r * cols, count, n);
  });
}

void log_softmax_backward(float* d_x, const float* d_y, const float* y, int64_t rows,
                          int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  for_row_blocks(rows, cols, [&](int64_t r, size_t count) {
    HWY_DYNAMIC_DISPATCH(LogSoftmaxBackwardRows)
    (d_x + r * cols, d_y + r * cols, y + r * cols, count, n);
  });
}

float row_logsumexp(const float* x, int64_t n, const float* prefetch) {
  return HWY_DYNAMIC_DISPATCH(RowLogSumExp)(x, static_cast<size_t>(n), prefetch);
}

void row_add_softmax(float* d, const float* x, float lse, float scale, int64_t n) {
  HWY_DYNAMIC_DISPATCH(RowAddSoftmax)(d, x, lse, scale, static_cast<size_t>(n));
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
