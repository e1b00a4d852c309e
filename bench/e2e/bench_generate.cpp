// End-to-end inference benchmarks (issue #6): `switchyard bench decode` and `bench prefill`.
//
// decode:  batch-1 generation of N tokens after a P-token prompt; tokens/s is the median over the
//          decode steps, and the bound is the machine's triad bandwidth over the weight bytes one
//          step reads (Model::decode_weight_bytes: attention and dense matrices, the router, the K
//          active experts and shared experts of every layer, one embedding row and the LM head),
//          plus the KV cache bytes read at the middle step. The steps run in kDecodeWindows windows
//          with a triad reading before each and after the last, and each window is held to the
//          higher of the two readings around it: this host's bandwidth moves by tens of percent
//          within seconds (one run read 28 GB/s before its steps and 50 after), so a reading
//          seconds away says little about a step. The ratio is the median of the windows' ratios;
//          the limit printed with it is tokens/s over that ratio. stderr also shows the whole run
//          against the highest of all the readings, the most a ratio could be held to.
// prefill: one P-token prompt in a single forward; GFLOP/s counts the model's matrix products
//          (Model::matmul_flops_per_token, attention scores included below) against the FP32
//          FMA peak (the higher of a measurement right before and one right after the prompts).
// Models: random weights of OLMoE-1B-7B's shape and Mixtral's shape scaled to 8 layers, in
// q8_0, q4_0, q4_K and iq4_xs (bench/e2e/random_model.h), or any checkpoint given with --model.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>

#include "bench/e2e/random_model.h"
#include "bench/suites.h"
#include "core/threads.h"
#include "model/model.h"

namespace sy::bench {

namespace {

// A case builds its model only when it runs, so one model is in memory at a time.
struct GenCase {
  std::string name;
  std::function<std::unique_ptr<model::Model>()> build;
};

std::vector<int32_t> prompt_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> out(static_cast<size_t>(n));
  uint64_t x = 12345;
  for (auto& t : out) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(vocab));
  }
  return out;
}

int32_t argmax(const Tensor& logits) {
  const float* p = logits.data<float>();
  return static_cast<int32_t>(std::max_element(p, p + logits.numel()) - p);
}

double seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Decode windows per case (see the header).
constexpr int64_t kDecodeWindows = 8;

// Bytes of keys and values one decode step reads at cache length `len` from a cache of
// `dtype` (f16 by default: 2 bytes a value).
uint64_t kv_bytes(const model::ModelConfig& c, int64_t len, DType dtype) {
  return static_cast<uint64_t>(c.num_layers * len * c.num_kv_heads *
                               (c.key_dim() + c.value_dim())) *
         dtype_size(dtype);
}

// Attention score and weighted-sum FLOPs of a causal prompt of n tokens.
double attention_flops(const model::ModelConfig& c, int64_t n) {
  const double pairs = static_cast<double>(n) * static_cast<double>(n + 1) / 2.0;
  return 2.0 * pairs * static_cast<double>(c.num_layers * c.num_heads) *
         static_cast<double>(c.key_dim() + c.value_dim());
}

std::vector<GenCase> build_cases(const SuiteOptions& opts) {
  std::vector<GenCase> cases;
  if (!opts.model.empty()) {
    cases.push_back({"file", [path = opts.model] { return model::Model::load(path); }});
    return cases;
  }
  const std::vector<GgmlType> types = {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                       GgmlType::kIQ4_XS};
  for (const ModelShape& shape : bench_model_shapes()) {
    for (const GgmlType type : types) {
      const std::string name = fmt::format("{}/{}", shape.name, ggml_type_info(type).name);
      if (!opts.filter.empty() && name.find(opts.filter) == std::string::npos) continue;
      model::ModelConfig config = shape.config;
      if (opts.quick) {  // same widths, fewer layers: a smoke test of the path
        config.num_layers = 2;
        config.moe_layer.resize(2);
      }
      cases.push_back({name, [config, type] {
                         return model::Model::build(config, RandomWeights(config, type, 7));
                       }});
    }
  }
  return cases;
}

}  // namespace

void run_generate_suite(const std::string& suite, Reporter& reporter, const SuiteOptions& opts) {
  const LimitOptions limit_opts = limit_options(opts);
  const int64_t prompt = opts.quick ? 64 : 512;
  const int64_t steps = opts.quick ? 8 : 128;
  const bool decode = suite == "decode";
  for (const GenCase& c : build_cases(opts)) {
    const std::unique_ptr<model::Model> built = c.build();
    model::Model& m = *built;
    const model::ModelConfig& cfg = m.config();
    const std::vector<int32_t> tokens = prompt_tokens(prompt, cfg.vocab_size);
    const std::string name = fmt::format("{}/p{}{}/t{}", c.name, prompt,
                                         decode ? fmt::format("n{}", steps) : "", num_threads());
    if (decode) {
      model::KvCache cache = m.new_cache(prompt + steps);
      int32_t next = argmax(m.forward(tokens, cache, false));
      const double bytes = static_cast<double>(
          m.decode_weight_bytes() + kv_bytes(cfg, prompt + steps / 2, cache.k.front().dtype()));
      const int64_t windows = std::min(steps, opts.quick ? int64_t{1} : kDecodeWindows);
      std::vector<double> step_s, triads{measure_triad_gb_per_s(limit_opts)}, window_ratio;
      for (int64_t w = 0; w < windows; ++w) {
        std::vector<double> window_s;
        for (int64_t i = steps * w / windows; i < steps * (w + 1) / windows; ++i) {
          Tensor logits;
          window_s.push_back(seconds([&] { logits = m.forward({&next, 1}, cache, false); }));
          next = argmax(logits);
        }
        triads.push_back(measure_triad_gb_per_s(limit_opts));
        const double limit = std::max(triads[static_cast<size_t>(w)], triads.back());
        window_ratio.push_back(bytes / median(window_s) / (limit * 1e9));
        step_s.insert(step_s.end(), window_s.begin(), window_s.end());
      }
      const double tps = 1.0 / median(step_s);
      const double ratio = median(window_ratio);
      reporter.emit({.bench = "decode",
                     .name = name,
                     .metric = "tokens_per_s",
                     .value = tps,
                     .limit = tps / ratio,
                     .limit_kind = "bandwidth_bound"});
      const auto [lo, hi] = std::ranges::minmax(triads);
      std::fprintf(stderr,
                   "  %s: %.1f MB per token, %.1f GB/s; triad %.1f-%.1f GB/s over %zu readings; "
                   "window ratios %.3f-%.3f; the whole run against the highest reading %.3f\n",
                   name.c_str(), bytes / 1e6, tps * bytes / 1e9, lo, hi, triads.size(),
                   std::ranges::min(window_ratio), std::ranges::max(window_ratio),
                   tps * bytes / (hi * 1e9));
    } else {
      std::vector<double> runs;
      const int repeats = opts.quick ? 1 : std::max(1, std::min(opts.timing.repeats, 3));
      const LimitAround fma_around =
          measure_around([&] { return measure_fma_gflop_per_s(limit_opts); },
                         [&] {
                           for (int r = 0; r < repeats; ++r) {
                             model::KvCache cache = m.new_cache(prompt);
                             runs.push_back(seconds([&] { m.forward(tokens, cache, false); }));
                           }
                         });
      const double peak = fma_around.higher();
      const double s = median(runs);
      const double flops =
          static_cast<double>(m.matmul_flops_per_token()) * static_cast<double>(prompt) +
          attention_flops(cfg, prompt);
      reporter.emit({.bench = "prefill",
                     .name = name,
                     .metric = "GFLOP_per_s",
                     .value = flops / s / 1e9,
                     .limit = peak,
                     .limit_kind = "fma_peak"});
      reporter.emit({.bench = "prefill",
                     .name = name,
                     .metric = "tokens_per_s",
                     .value = static_cast<double>(prompt) / s});
      std::fprintf(stderr, "  %s: FMA peak %.1f GFLOP/s (%.1f before the prompts, %.1f after)\n",
                   name.c_str(), peak, fma_around.before, fma_around.after);
    }
  }
}

}  // namespace sy::bench
