// The machine's own limits, measured in the same run as the figures they bound.
#pragma once

#include <functional>

#include "bench/harness.h"

namespace sy::bench {

struct MachineLimits {
  double triad_gb_per_s = 0.0;    // STREAM triad a = b + s*c, all threads, 3 arrays counted
  double gemm_gflop_per_s = 0.0;  // OpenBLAS sgemm 2048^3 called directly, all threads
  double fma_gflop_per_s = 0.0;   // f32 FMA peak: independent FMA chains in registers, all threads
};

struct LimitOptions {
  int64_t triad_floats = 1 << 25;  // per array (128 MiB): far beyond every cache level
  int64_t gemm_size = 2048;
  TimingOptions timing;
};

double measure_triad_gb_per_s(const LimitOptions& opts);
double measure_gemm_gflop_per_s(const LimitOptions& opts);
double measure_fma_gflop_per_s(const LimitOptions& opts);

// A limit measured right before and right after `body`: this host's bandwidth and FMA rate drift
// over the minutes a suite takes, so a case divides by a limit measured around it. It takes the
// higher of the two readings: a neighbour that briefly holds the memory bus or the cores during
// one reading would otherwise lower the limit and lift the ratio (above 1 at times).
struct LimitAround {
  double before = 0.0, after = 0.0;
  double higher() const { return before > after ? before : after; }
};
LimitAround measure_around(const std::function<double()>& measure,
                           const std::function<void()>& body);

// Measures all three and reports each as a figure of bench "limits".
MachineLimits measure_limits(Reporter& reporter, const LimitOptions& opts);

}  // namespace sy::bench
