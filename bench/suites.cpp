#include "bench/suites.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace sy::bench {

std::vector<std::string> suite_names() {
  return {"all", "limits", "kernels", "moe", "decode", "prefill", "train"};
}

LimitOptions limit_options(const SuiteOptions& opts) {
  LimitOptions limit_opts;
  limit_opts.timing = opts.timing;
  if (opts.quick) {
    limit_opts.triad_floats = 1 << 23;
    limit_opts.gemm_size = 512;
  }
  return limit_opts;
}

void run_suite(const std::string& name, Reporter& reporter, const SuiteOptions& opts) {
  const auto names = suite_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    fail("bench: unknown suite '{}', expected one of {}", name, fmt::join(names, ", "));
  }
  const MachineLimits limits = measure_limits(reporter, limit_options(opts));
  if (name == "kernels" || name == "all") run_kernel_suite(reporter, limits, opts);
  if (name == "moe" || name == "all") run_moe_suite(reporter, limits, opts);
  if (name == "decode" || name == "prefill") run_generate_suite(name, reporter, opts);
  if (name == "train") run_train_suite(reporter, limits, opts);
}

}  // namespace sy::bench
