// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/topk_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// cols rounded up to whole vectors of this target: the scratch size MaxSelectRow needs.
size_t PaddedCols(size_t cols) {
  const hn::ScalableTag<float> d;
  return hwy::RoundUpTo(cols, hn::Lanes(d));
}

// Selection by repeated maximum, for few picks: k rounds of "find the largest remaining value,
// take its first (lowest) column, knock it out". Each round is a few vector max/compare passes
// over the row with no data-dependent branch per element, which beats keeping a sorted buffer
// (whose insertions mispredict) and sorting. Taking the first column equal to the maximum gives
// the tie order (lower index first) directly.
// `scratch` holds PaddedCols(cols) floats. Returns true, without selecting, when the row holds a
// NaN.
bool MaxSelectRow(const float* HWY_RESTRICT x, float* HWY_RESTRICT scratch, size_t cols, size_t k,
                  float* HWY_RESTRICT val, int32_t* HWY_RESTRICT idx) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const size_t padded = hwy::RoundUpTo(cols, lanes);
  const auto neg_inf = hn::Set(d, -INFINITY);
  size_t i = 0;
  for (; i + lanes <= cols; i += lanes) {
    const auto v = hn::LoadU(d, x + i);
    if (!hn::AllFalse(d, hn::IsNaN(v))) return true;  // (Ne is an ordered compare)
    hn::StoreU(v, d, scratch + i);
  }
  for (; i < cols; ++i) {
    if (std::isnan(x[i])) return true;
    scratch[i] = x[i];
  }
  for (; i < padded; ++i) scratch[i] = -INFINITY;
  for (size_t r = 0; r < k; ++r) {
    auto vmax = neg_inf;
    for (size_t j = 0; j < padded; j += lanes) vmax = hn::Max(vmax, hn::LoadU(d, scratch + j));
    const float m = hn::GetLane(hn::MaxOfLanes(d, vmax));
    if (m == -INFINITY) {
      // Everything left is -inf (knocked-out entries are -inf too, so they would be found
      // again): the remaining picks are the untaken -inf columns in order. Taken columns all
      // hold finite values, since -inf ones are only reached here.
      for (size_t j = 0; j < cols && r < k; ++j) {
        if (x[j] == -INFINITY) {
          val[r] = -INFINITY;
          idx[r++] = static_cast<int32_t>(j);
        }
      }
      return false;
    }
    const auto vm = hn::Set(d, m);
    size_t pos = 0;
    for (size_t j = 0; j < padded; j += lanes) {
      const intptr_t first = hn::FindFirstTrue(d, hn::Eq(hn::LoadU(d, scratch + j), vm));
      if (first >= 0) {
        pos = j + static_cast<size_t>(first);
        break;
      }
    }
    val[r] = x[pos];  // not m: keeps the sign of a zero
    idx[r] = static_cast<int32_t>(pos);
    scratch[pos] = -INFINITY;
  }
  return false;
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/threads.h"
#include "kernels/cpu/topk_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(PaddedCols);
HWY_EXPORT(MaxSelectRow);

namespace {

// Up to this many picks, repeated maximum (k passes over the row); above, a partial sort of
// (value, index) pairs is cheaper.
constexpr int64_t kMaxSmallK = 32;

struct Entry {
  float value;
  int32_t index;
};

bool select_by_sort(const float* x, int64_t cols, int64_t k, float* val, int32_t* idx,
                    std::vector<Entry>& scratch) {
  scratch.resize(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) {
    // The comparator below is a strict weak order only without NaN.
    if (std::isnan(x[c])) return true;
    scratch[static_cast<size_t>(c)] = {x[c], static_cast<int32_t>(c)};
  }
  std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(),
                    [](const Entry& a, const Entry& b) {
                      return a.value > b.value || (a.value == b.value && a.index < b.index);
                    });
  for (int64_t j = 0; j < k; ++j) {
    val[j] = scratch[static_cast<size_t>(j)].value;
    idx[j] = scratch[static_cast<size_t>(j)].index;
  }
  return false;
}

}  // namespace

int64_t topk_forward(float* values, int32_t* indices, const float* x, int64_t rows, int64_t cols,
                     int64_t k) {
  // Rows [begin, end), every one of them; returns the first with a NaN, or `rows`.
  const auto select_rows = [&](int64_t begin, int64_t end) {
    int64_t first_nan = rows;
    std::vector<Entry> entries;
    // Row copy padded to whole vectors.
    std::vector<float> scratch(
        k <= kMaxSmallK ? HWY_DYNAMIC_DISPATCH(PaddedCols)(static_cast<size_t>(cols)) : 0);
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * cols;
      float* vr = values + r * k;
      int32_t* ir = indices + r * k;
      const bool nan = k <= kMaxSmallK ? HWY_DYNAMIC_DISPATCH(MaxSelectRow)(
                                             xr, scratch.data(), static_cast<size_t>(cols),
                                             static_cast<size_t>(k), vr, ir)
                                       : select_by_sort(xr, cols, k, vr, ir, entries);
      if (nan) first_nan = std::min(first_nan, r);
    }
    return first_nan;
  };
  int64_t first_nan_row = rows;
  if (rows * cols < kParallelMinElements) {
    first_nan_row = select_rows(0, rows);
  } else {
#pragma omp parallel reduction(min : first_nan_row)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      first_nan_row = std::min(first_nan_row, select_rows(rows * t / nt, rows * (t + 1) / nt));
    }
  }
  if (first_nan_row == rows) return -1;
  const float* xr = x + first_nan_row * cols;
  const int64_t col = std::find_if(xr, xr + cols, [](float v) { return std::isnan(v); }) - xr;
  return first_nan_row * cols + col;
}

void topk_backward(float* d_x, const float* d_values, const int32_t* indices, int64_t rows,
                   int64_t cols, int64_t k) {
  parallel_for(0, rows, rows * cols >= kParallelMinElements, [&](int64_t r) {
    for (int64_t j = 0; j < k; ++j) d_x[r * cols + indices[r * k + j]] += d_values[r * k + j];
  });
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
