// The benchmark suites `switchyard bench SUITE` runs. Each measures the machine's limits first
// (or takes them from the caller) and reports its figures as fractions of them.
#pragma once

#include <string>
#include <vector>

#include "bench/harness.h"
#include "bench/limits.h"

namespace sy::bench {

struct SuiteOptions {
  bool quick = false;  // smaller shapes and fewer repeats, for smoke tests
  std::string filter;  // run only cases whose name contains this
  TimingOptions timing;
  std::string model;  // decode/prefill: a checkpoint to run instead of the random shapes
};

// The limit measurements' settings for these options (smaller arrays and GEMMs with --quick).
LimitOptions limit_options(const SuiteOptions& opts);

// Kernel benchmarks: RMSNorm, softmax, GEMM, ... (bench/kernels/).
void run_kernel_suite(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts);

// MoE layer benchmarks: forward + backward against PyTorch, expert GEMMs against the GEMM peak
// (bench/layers/).
void run_moe_suite(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts);

// Decode ("decode") or prefill ("prefill") of whole models (bench/e2e/). Each case measures its
// bound right before and right after its timed part (the host's bandwidth drifts over the minutes
// a suite takes) and divides by their mean.
void run_generate_suite(const std::string& suite, Reporter& reporter, const SuiteOptions& opts);
// Training steps of the study model against PyTorch's ("train"; bench/e2e/bench_train.cpp).
void run_train_suite(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts);
// Names accepted by `switchyard bench`.
std::vector<std::string> suite_names();
// Runs "limits", "kernels", "moe" or "all"; throws sy::Error listing the valid names otherwise.
void run_suite(const std::string& name, Reporter& reporter, const SuiteOptions& opts);

}  // namespace sy::bench
