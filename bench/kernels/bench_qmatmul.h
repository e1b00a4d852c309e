// Quantized matrix products (kernels/qmatmul.h) for `switchyard bench kernels`: decode matvecs
// against the triad bandwidth and a 512-token prefill against the FMA peak, both measured in the
// same run.
#pragma once

#include "bench/harness.h"
#include "bench/limits.h"
#include "bench/suites.h"

namespace sy::bench {

// Cases, for q8_0, q4_0 and q4_K: "qmatvec_decode/<type>/<N>x<K>/t<threads>" (one token, GB/s of
// weight bytes against the triad bandwidth), "qmatvec_moe_decode/<type>/olmoe_8_active/t<threads>"
// (one token through 8 experts' gate/up then down projections as two batches, GB/s against the
// triad) and "qmatvec_prefill512/<type>/<N>x<K>/t<threads>" (512 tokens, GFLOP/s against the FMA
// peak).
void run_qmatmul_cases(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts);

}  // namespace sy::bench
