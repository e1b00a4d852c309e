// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
//
// Forward takes the mean and then the variance as sum((x - mean)^2) in a second pass over the
// cached row, not as mean(x^2) - mean^2, which cancels badly when |mean| >> std.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/layer_norm_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstddef>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Writes out = (x - mean) * rstd * w (+ b); stores mean and rstd. When `next` is not null, the
// n floats there (the next row) are prefetched into L2 during the variance pass, so memory
// keeps streaming while this row is computed from cache.
void LayerNormRow(float* HWY_RESTRICT out, float* HWY_RESTRICT mean_out,
                  float* HWY_RESTRICT rstd_out, const float* HWY_RESTRICT x,
                  const float* HWY_RESTRICT w, const float* HWY_RESTRICT b, size_t n, float eps,
                  const float* next) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    s0 = hn::Add(s0, hn::LoadU(d, x + i));
    s1 = hn::Add(s1, hn::LoadU(d, x + i + lanes));
  }
  for (; i + lanes <= n; i += lanes) s0 = hn::Add(s0, hn::LoadU(d, x + i));
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(n);

  const auto vmean = hn::Set(d, mean);
  auto q0 = hn::Zero(d), q1 = hn::Zero(d);
  i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    if (next != nullptr) {
      for (size_t j = (i + 15) & ~size_t{15}; j < i + 2 * lanes; j += 16) {
        __builtin_prefetch(next + j, /*rw=*/0, /*locality=*/2);
      }
    }
    const auto a = hn::Sub(hn::LoadU(d, x + i), vmean);
    const auto c = hn::Sub(hn::LoadU(d, x + i + lanes), vmean);
    q0 = hn::MulAdd(a, a, q0);
    q1 = hn::MulAdd(c, c, q1);
  }
  for (; i + lanes <= n; i += lanes) {
    const auto a = hn::Sub(hn::LoadU(d, x + i), vmean);
    q0 = hn::MulAdd(a, a, q0);
  }
  float sq = hn::GetLane(hn::SumOfLanes(d, hn::Add(q0, q1)));
  for (; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  *mean_out = mean;
  *rstd_out = rstd;

  const auto vrstd = hn::Set(d, rstd);
  i = 0;
  if (b != nullptr) {
    for (; i + lanes <= n; i += lanes) {
      const auto xhat = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vmean), vrstd);
      hn::StoreU(hn::MulAdd(xhat, hn::LoadU(d, w + i), hn::LoadU(d, b + i)), d, out + i);
    }
    for (; i < n; ++i) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
  } else {
    for (; i + lanes <= n; i += lanes) {
      const auto xhat = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vmean), vrstd);
      hn::StoreU(hn::Mul(xhat, hn::LoadU(d, w + i)), d, out + i);
    }
    for (; i < n; ++i) out[i] = (x[i] - mean) * rstd * w[i];
  }
}

// With xhat = (x - mean) * rstd and g = d_out * w:
//   d_x += rstd * (g - mean(g) - xhat * mean(g * xhat));  d_w += d_out * xhat;  d_b += d_out.
void LayerNormBackwardRow(float* HWY_RESTRICT d_x, float* HWY_RESTRICT d_w_acc,
                          float* HWY_RESTRICT d_b_acc, const float* HWY_RESTRICT d_out,
                          const float* HWY_RESTRICT x, const float* HWY_RESTRICT w, float mean,
                          float rstd, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vmean = hn::Set(d, mean);
  const auto vrstd = hn::Set(d, rstd);
  auto sum_g = hn::Zero(d), sum_gx = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto dy = hn::LoadU(d, d_out + i);
    const auto xhat = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vmean), vrstd);
    const auto g = hn::Mul(dy, hn::LoadU(d, w + i));
    sum_g = hn::Add(sum_g, g);
    sum_gx = hn::MulAdd(g, xhat, sum_gx);
    hn::StoreU(hn::MulAdd(dy, xhat, hn::LoadU(d, d_w_acc + i)), d, d_w_acc + i);
    hn::StoreU(hn::Add(dy, hn::LoadU(d, d_b_acc + i)), d, d_b_acc + i);
  }
  float sg = hn::GetLane(hn::SumOfLanes(d, sum_g));
  float sgx = hn::GetLane(hn::SumOfLanes(d, sum_gx));
  for (size_t j = i; j < n; ++j) {
    const float xhat = (x[j] - mean) * rstd;
    const float g = d_out[j] * w[j];
    sg += g;
    sgx += g * xhat;
    d_w_acc[j] += d_out[j] * xhat;
    d_b_acc[j] += d_out[j];
  }
  const float inv_n = 1.0f / static_cast<float>(n);
  const auto vmg = hn::Set(d, sg * inv_n);
  const auto vmgx = hn::Set(d, sgx * inv_n);
  i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto xhat = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vmean), vrstd);
    const auto g = hn::Mul(hn::LoadU(d, d_out + i), hn::LoadU(d, w + i));
    const auto inner = hn::NegMulAdd(xhat, vmgx, hn::Sub(g, vmg));
    hn::StoreU(hn::MulAdd(inner, vrstd, hn::LoadU(d, d_x + i)), d, d_x + i);
  }
  for (; i < n; ++i) {
    const float xhat = (x[i] - mean) * rstd;
    d_x[i] += rstd * (d_out[i] * w[i] - sg * inv_n - xhat * sgx * inv_n);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include "core/threads.h"
#include "kernels/cpu/layer_norm_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(LayerNormRow);
HWY_EXPORT(LayerNormBackwardRow);

void layer_norm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                        const float* bias, int64_t rows, int64_t cols, float eps) {
  const auto n = static_cast<size_t>(cols);
  parallel_for(0, rows, rows * cols >= kParallelMinElements, [&](int64_t r) {
    HWY_DYNAMIC_DISPATCH(LayerNormRow)
    (out + r * cols, mean + r, rstd + r, x + r * cols, weight, bias, n, eps,
     r + 1 < rows ? x + (r + 1) * cols : nullptr);
  });
}

void layer_norm_backward(float* d_x, float* d_weight, float* d_bias, const float* d_out,
                         const float* x, const float* weight, const float* mean, const float* rstd,
                         int64_t rows, int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  // Each thread sums its rows' weight and bias gradients privately ([2, D]: weight, then bias);
  // the partials are then added in thread order, so the result is the same on every run with
  // the same thread count.
  std::vector<std::vector<float>> partial(static_cast<size_t>(omp_get_max_threads()));
#pragma omp parallel
  {
    std::vector<float>& local = partial[static_cast<size_t>(omp_get_thread_num())];
    local.assign(2 * n, 0.0f);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      HWY_DYNAMIC_DISPATCH(LayerNormBackwardRow)
      (d_x + r * cols, local.data(), local.data() + n, d_out + r * cols, x + r * cols, weight,
       mean[r], rstd[r], n);
    }
  }
  for (const auto& p : partial) {
    if (p.empty()) continue;
    if (d_weight != nullptr) {
      for (size_t j = 0; j < n; ++j) d_weight[j] += p[j];
    }
    if (d_bias != nullptr) {
      for (size_t j = 0; j < n; ++j) d_bias[j] += p[n + j];
    }
  }
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
