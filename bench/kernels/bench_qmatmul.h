// Quantized matrix products (kernels/qmatmul.h) for `switchyard bench kernels`: decode matvecs
// against the triad bandwidth and a 512-token prefill against the FMA peak, both measured in the
// same run.
#pragma once

#include "bench/harness.h"
#include "bench/limits.h"
#include "bench/suites.h"

namespace sy::bench {

// Cases "qmatvec_decode/<type>/<N>x<K>/t<threads>" (GB/s of weight bytes, bandwidth_bound) and
// "qmatvec_prefill512/<type>/<N>x<K>/t<threads>" (GFLOP/s, fma_peak) for q8_0, q4_0 and q4_K.
void run_qmatmul_cases(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts);

}  // namespace sy::bench
