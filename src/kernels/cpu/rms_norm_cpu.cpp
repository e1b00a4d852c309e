// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/rms_norm_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstddef>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Returns 1 / sqrt(mean(x^2) + eps) and writes out = x * inv * w.
float RmsNormRow(float* HWY_RESTRICT out, const float* HWY_RESTRICT x, const float* HWY_RESTRICT w,
                 size_t n, float eps) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto acc0 = hn::Zero(d);
  auto acc1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const auto a = hn::LoadU(d, x + i);
    const auto b = hn::LoadU(d, x + i + lanes);
    acc0 = hn::MulAdd(a, a, acc0);
    acc1 = hn::MulAdd(b, b, acc1);
  }
  for (; i + lanes <= n; i += lanes) {
    const auto a = hn::LoadU(d, x + i);
    acc0 = hn::MulAdd(a, a, acc0);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  const auto vinv = hn::Set(d, inv);
  i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), vinv), hn::LoadU(d, w + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
  return inv;
}

// d_x += inv * (g - x * inv^2 * mean(g * x)), g = d_out * w;  d_w_acc += d_out * x * inv.
void RmsNormBackwardRow(float* HWY_RESTRICT d_x, float* HWY_RESTRICT d_w_acc,
                        const float* HWY_RESTRICT d_out, const float* HWY_RESTRICT x,
                        const float* HWY_RESTRICT w, float inv, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto acc = hn::Zero(d);
  const auto vinv = hn::Set(d, inv);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto dy = hn::LoadU(d, d_out + i);
    const auto xv = hn::LoadU(d, x + i);
    acc = hn::MulAdd(hn::Mul(dy, hn::LoadU(d, w + i)), xv, acc);
    hn::StoreU(hn::MulAdd(hn::Mul(dy, xv), vinv, hn::LoadU(d, d_w_acc + i)), d, d_w_acc + i);
  }
  float dot = hn::GetLane(hn::SumOfLanes(d, acc));
  for (size_t j = i; j < n; ++j) {
    dot += d_out[j] * w[j] * x[j];
    d_w_acc[j] += d_out[j] * x[j] * inv;
  }
  const float c = inv * inv * inv * dot / static_cast<float>(n);
  const auto vc = hn::Set(d, c);
  i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto g = hn::Mul(hn::LoadU(d, d_out + i), hn::LoadU(d, w + i));
    const auto upd = hn::NegMulAdd(hn::LoadU(d, x + i), vc, hn::Mul(g, vinv));
    hn::StoreU(hn::Add(hn::LoadU(d, d_x + i), upd), d, d_x + i);
  }
  for (; i < n; ++i) d_x[i] += d_out[i] * w[i] * inv - x[i] * c;
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include "core/threads.h"
#include "kernels/cpu/rms_norm_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(RmsNormRow);
HWY_EXPORT(RmsNormBackwardRow);

void rms_norm_forward(float* out, float* inv_rms, const float* x, const float* weight, int64_t rows,
                      int64_t cols, float eps) {
  const auto n = static_cast<size_t>(cols);
  parallel_for(0, rows, rows * cols >= kParallelMinElements, [&](int64_t r) {
    inv_rms[r] = HWY_DYNAMIC_DISPATCH(RmsNormRow)(out + r * cols, x + r * cols, weight, n, eps);
  });
}

void rms_norm_backward(float* d_x, float* d_weight, const float* d_out, const float* x,
                       const float* weight, const float* inv_rms, int64_t rows, int64_t cols) {
  const auto n = static_cast<size_t>(cols);
  // Each thread sums its rows' weight gradient privately; the partials are then added in
  // thread order, so the result is the same on every run with the same thread count.
  std::vector<std::vector<float>> partial(static_cast<size_t>(omp_get_max_threads()));
#pragma omp parallel
  {
    std::vector<float>& d_w_local = partial[static_cast<size_t>(omp_get_thread_num())];
    d_w_local.assign(n, 0.0f);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      HWY_DYNAMIC_DISPATCH(RmsNormBackwardRow)
      (d_x + r * cols, d_w_local.data(), d_out + r * cols, x + r * cols, weight, inv_rms[r], n);
    }
  }
  for (const auto& p : partial) {
    for (size_t j = 0; j < p.size(); ++j) d_weight[j] += p[j];
  }
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
