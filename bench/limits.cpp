// Highway compiles the SIMD loops once per target and picks one at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/limits.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace sy::bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void TriadRange(float* HWY_RESTRICT a, const float* HWY_RESTRICT b, const float* HWY_RESTRICT c,
                float s, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vs = hn::Set(d, s);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::MulAdd(vs, hn::LoadU(d, c + i), hn::LoadU(d, b + i)), d, a + i);
  }
  for (; i < n; ++i) a[i] = b[i] + s * c[i];
}

// Runs `iters` rounds of 8 independent FMA chains; returns FLOPs done (2 per lane per FMA).
double FmaChains(int64_t iters, float seed) {
  const hn::ScalableTag<float> d;
  auto x0 = hn::Set(d, seed), x1 = hn::Set(d, seed + 1), x2 = hn::Set(d, seed + 2),
       x3 = hn::Set(d, seed + 3), x4 = hn::Set(d, seed + 4), x5 = hn::Set(d, seed + 5),
       x6 = hn::Set(d, seed + 6), x7 = hn::Set(d, seed + 7), x8 = hn::Set(d, seed + 8),
       x9 = hn::Set(d, seed + 9);
  const auto m = hn::Set(d, 0.999999f);
  const auto a = hn::Set(d, 1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    x0 = hn::MulAdd(x0, m, a);
    x1 = hn::MulAdd(x1, m, a);
    x2 = hn::MulAdd(x2, m, a);
    x3 = hn::MulAdd(x3, m, a);
    x4 = hn::MulAdd(x4, m, a);
    x5 = hn::MulAdd(x5, m, a);
    x6 = hn::MulAdd(x6, m, a);
    x7 = hn::MulAdd(x7, m, a);
    x8 = hn::MulAdd(x8, m, a);
    x9 = hn::MulAdd(x9, m, a);
  }
  auto sum = hn::Add(hn::Add(hn::Add(x0, x1), hn::Add(x2, x3)),
                     hn::Add(hn::Add(x4, x5), hn::Add(hn::Add(x6, x7), hn::Add(x8, x9))));
  // Keep the result observable so the loop is not removed.
  volatile float sink = hn::GetLane(sum);
  (void)sink;
  return static_cast<double>(iters) * 10.0 * 2.0 * static_cast<double>(hn::Lanes(d));
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <vector>

#include "bench/limits.h"
#include "core/storage.h"
#include "core/threads.h"
#include "kernels/cpu/gemm_cpu.h"

namespace sy::bench {

HWY_EXPORT(TriadRange);
HWY_EXPORT(FmaChains);

LimitAround measure_around(const std::function<double()>& measure,
                           const std::function<void()>& body) {
  LimitAround out;
  out.before = measure();
  body();
  out.after = measure();
  return out;
}

double measure_triad_gb_per_s(const LimitOptions& opts) {
  const int64_t n = opts.triad_floats;
  auto sa = Storage::allocate(static_cast<size_t>(n) * 4);
  auto sb = Storage::allocate(static_cast<size_t>(n) * 4);
  auto sc = Storage::allocate(static_cast<size_t>(n) * 4);
  float* a = reinterpret_cast<float*>(sa->mutable_data());
  float* b = reinterpret_cast<float*>(sb->mutable_data());
  float* c = reinterpret_cast<float*>(sc->mutable_data());
  auto triad = [&] {
#pragma omp parallel
    {
      // Same static split every call, so each thread keeps touching the pages it first touched.
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
      HWY_DYNAMIC_DISPATCH(TriadRange)
      (a + begin, b + begin, c + begin, 3.0f, static_cast<size_t>(end - begin));
    }
  };
  const double seconds = median(time_samples(triad, opts.timing));
  return 3.0 * static_cast<double>(n) * 4.0 / seconds / 1e9;
}

double measure_gemm_gflop_per_s(const LimitOptions& opts) {
  const int64_t s = opts.gemm_size;
  std::vector<float> a(static_cast<size_t>(s * s), 0.5f), b(a.size(), 0.25f), c(a.size());
  auto run = [&] {
    kernels::cpu::sgemm(false, false, s, s, s, 1.0f, a.data(), s, b.data(), s, 0.0f, c.data(), s);
  };
  const double seconds = median(time_samples(run, opts.timing));
  return 2.0 * static_cast<double>(s) * s * s / seconds / 1e9;
}

double measure_fma_gflop_per_s(const LimitOptions& opts) {
  // Long enough (~25 ms at peak) that the first ~0.5 ms, while a core ramps its voltage for
  // 512-bit FMAs and runs them at reduced throughput, does not weigh on the figure.
  const int64_t iters = int64_t{1} << 24;
  double flops = 0.0;
  auto run = [&] {
    double total = 0.0;
#pragma omp parallel reduction(+ : total)
    total += HWY_DYNAMIC_DISPATCH(FmaChains)(iters, static_cast<float>(omp_get_thread_num()));
    flops = total;
  };
  const double seconds = median(time_samples(run, opts.timing));
  return flops / seconds / 1e9;
}

MachineLimits measure_limits(Reporter& reporter, const LimitOptions& opts) {
  MachineLimits m;
  m.triad_gb_per_s = measure_triad_gb_per_s(opts);
  m.gemm_gflop_per_s = measure_gemm_gflop_per_s(opts);
  m.fma_gflop_per_s = measure_fma_gflop_per_s(opts);
  const std::string threads = "t" + std::to_string(num_threads());
  reporter.emit({.bench = "limits",
                 .name = "triad/" + threads,
                 .metric = "GB_per_s",
                 .value = m.triad_gb_per_s});
  reporter.emit({.bench = "limits",
                 .name = "sgemm_openblas/" + std::to_string(opts.gemm_size) + "/" + threads,
                 .metric = "GFLOP_per_s",
                 .value = m.gemm_gflop_per_s});
  reporter.emit({.bench = "limits",
                 .name = "fma_f32/" + threads,
                 .metric = "GFLOP_per_s",
                 .value = m.fma_gflop_per_s});
  return m;
}

}  // namespace sy::bench
#endif  // HWY_ONCE
