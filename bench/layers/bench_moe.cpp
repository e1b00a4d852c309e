// MoE layer benchmark: forward + backward of the whole layer (top-k softmax router, SwiGLU
// experts, optional shared experts) against the same layer in PyTorch (per-expert loop with
// index_select / index_add_, same thread count), timed in the same run by
// bench/reference/moe_torch.py; and the expert GEMMs' achieved GFLOP/s against the machine's
// measured sgemm throughput.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "bench/suites.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "moe/moe_layer.h"

namespace sy::bench {

namespace {

struct MoeCase {
  std::string name;
  int64_t tokens, d_model, d_ff, experts, top_k, shared;
};

// Runs the PyTorch reference; its last stdout line is the median seconds. nullopt (with a note
// on stderr) when Python or torch is missing, so the suite still reports our own figures.
std::optional<double> torch_seconds(const MoeCase& c, const SuiteOptions& opts) {
  const std::string cmd = fmt::format(
      "/usr/bin/python3 {}/bench/reference/moe_torch.py --tokens {} --d-model {} --d-ff {} "
      "--experts {} --top-k {} --shared {} --threads {} --repeats {} --min-seconds {}",
      SY_SOURCE_DIR, c.tokens, c.d_model, c.d_ff, c.experts, c.top_k, c.shared, num_threads(),
      opts.quick ? 1 : opts.timing.repeats, opts.quick ? 0.0 : opts.timing.min_seconds);
  return reference_seconds(cmd, "bench moe");
}

Tensor random_tensor(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::zeros(shape);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal();
  return t;
}

void run_case(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts,
              const MoeCase& c) {
  moe::MoeLayerOptions o{.d_model = c.d_model,
                         .d_ff = c.d_ff,
                         .num_experts = c.experts,
                         .shared_experts = c.shared,
                         .prefix = "mlp."};
  o.router.name = "topk_softmax";
  o.router.top_k = c.top_k;
  moe::MoeLayer layer(o);
  Rng rng(1);
  layer.init(rng);
  const Tensor x = random_tensor({c.tokens, c.d_model}, rng);
  const Tensor d_y = random_tensor({c.tokens, c.d_model}, rng);
  Tensor d_x = Tensor::zeros({c.tokens, c.d_model});
  const std::string name = fmt::format("{}/t{}", c.name, num_threads());

  const double ours = median(time_samples(
      [&] {
        layer.forward(x, Tensor(), true, &rng);
        layer.backward(d_y, d_x);
      },
      opts.timing));
  reporter.emit({.bench = "moe",
                 .name = "fwd_bwd/" + name,
                 .metric = "seconds",
                 .value = ours,
                 .reference = "pytorch",
                 .reference_value = torch_seconds(c, opts),
                 .lower_is_better = true});

  // The routed experts alone on the last forward's plan: 3 GEMMs forward, 6 backward, each
  // 2 * R * D * F FLOPs.
  moe::InMemoryExperts& experts = layer.experts();
  const moe::DispatchPlan& plan = layer.plan();
  const int64_t rows = plan.rows();
  const Tensor buffer = random_tensor({rows, c.d_model}, rng);
  Tensor out = Tensor::zeros({rows, c.d_model}), d_buffer = Tensor::zeros({rows, c.d_model});
  moe::FfnSaved saved;
  const double s = median(time_samples(
      [&] {
        experts.forward(out, buffer, plan.offsets, &saved);
        experts.backward(d_buffer, out, buffer, plan.offsets, saved);
      },
      opts.timing));
  const double flops = 9.0 * 2.0 * static_cast<double>(rows) * c.d_model * c.d_ff;
  reporter.emit({.bench = "moe",
                 .name = fmt::format("expert_gemms/{}/{}", name,
                                     experts.runs_per_expert(plan.offsets) ? "per_expert" : "blas"),
                 .metric = "GFLOP_per_s",
                 .value = flops / s / 1e9,
                 .limit = limits.gemm_gflop_per_s,
                 .limit_kind = "gemm_peak"});
}

}  // namespace

void run_moe_suite(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts) {
  const int64_t t = opts.quick ? 256 : 4096;
  const MoeCase cases[] = {
      {"e8k2_d512_f1408", t, 512, 1408, 8, 2, 0},
      {"e64k8_d512_f176_shared2", t, 512, 176, 64, 8, 2},
  };
  for (const MoeCase& c : cases) {
    if (opts.filter.empty() || c.name.find(opts.filter) != std::string::npos) {
      run_case(reporter, limits, opts, c);
    }
  }
}

}  // namespace sy::bench
