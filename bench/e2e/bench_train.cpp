// Training benchmark (issue #4): `switchyard bench train`. One optimizer step of the study model
// (train/lm.h MoeLm: zero_grad, forward + backward, AdamW step, router end_step) on a batch of
// uniform random tokens, as tokens per second (B*T / median step time), against the same model
// and step in PyTorch (bench/reference/train_torch.py, torch.optim.AdamW, same thread count, f32)
// run in the same invocation. The limit is the machine's sgemm throughput (measured in the same
// run) over the step's matrix-product FLOPs per token (6 x the multiply-adds of the forward's
// products: projections, attention scores and values, router, the K active experts, LM head).
//
// Models: the study's own (train/study.h study_model: the shapes `switchyard study` trains, full
// or --quick), with a top-k softmax router (renormalised, Switch balance loss 0.01) in every layer,
// for each of its variants (8 experts top-2, and the fine-grained 32 experts top-8 with the same
// active and total expert parameters).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bench/suites.h"
#include "core/rng.h"
#include "core/threads.h"
#include "train/lm.h"
#include "train/optimizer.h"
#include "train/study.h"

namespace sy::bench {

namespace {

struct TrainCase {
  std::string name;
  int64_t vocab, d_model, layers, heads, experts, top_k, d_ff, seq, batch;
  train::StudyModel model;
  train::StudyVariant variant;
};

// The study model's variants as cases ("study_e8k2_f512", "quick_e32k8_f32", ...).
std::vector<TrainCase> study_cases(bool quick) {
  const train::StudyModel m = train::study_model(quick);
  std::vector<TrainCase> cases;
  for (const train::StudyVariant& v : m.variants) {
    cases.push_back({fmt::format("{}_{}_f{}", quick ? "quick" : "study", v.name, v.expert_ffn),
                     m.vocab, m.d_model, m.layers, m.heads, v.experts, v.top_k, v.expert_ffn, m.seq,
                     m.batch, m, v});
  }
  return cases;
}

train::LmConfig lm_config(const TrainCase& c) {
  train::LmConfig lm = train::study_lm_config(c.model, c.variant, "topk_softmax");
  lm.moe.router_options = {{"aux_loss_coeff", 0.01}};  // as train_torch.py (--aux-coeff)
  return lm;
}

// Multiply-adds per token of the forward's matrix products (causal attention: on average
// (T + 1) / 2 keys per query, for scores and for values).
double macs_per_token(const TrainCase& c) {
  const double d = static_cast<double>(c.d_model);
  const double attn = 4.0 * d * d + 2.0 * d * (static_cast<double>(c.seq) + 1.0) / 2.0;
  const double moe =
      d * static_cast<double>(c.experts) + 3.0 * d * static_cast<double>(c.d_ff * c.top_k);
  return static_cast<double>(c.layers) * (attn + moe) + d * static_cast<double>(c.vocab);
}

// Runs the PyTorch reference; its last stdout line is the median seconds of one step. nullopt
// (with a note on stderr) when Python or torch is missing, so our own figure is still reported.
std::optional<double> torch_seconds(const TrainCase& c, const SuiteOptions& opts) {
  const std::string cmd = fmt::format(
      "/usr/bin/python3 {}/bench/reference/train_torch.py --vocab {} --d-model {} --layers {} "
      "--heads {} --kv-heads {} --experts {} --top-k {} --d-ff {} --seq {} --batch {} "
      "--threads {} --steps {} --warmup {}",
      SY_SOURCE_DIR, c.vocab, c.d_model, c.layers, c.heads, c.heads, c.experts, c.top_k, c.d_ff,
      c.seq, c.batch, num_threads(), opts.timing.repeats, std::max(1, opts.timing.warmup));
  return reference_seconds(cmd, "bench train");
}

void run_case(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts,
              const TrainCase& c) {
  const train::LmConfig config = lm_config(c);
  const train::LmParamCount count = train::count_params(config);
  std::fprintf(stderr, "bench train: %s: %.1fM parameters, %.1fM active per token\n",
               c.name.c_str(), static_cast<double>(count.total) / 1e6,
               static_cast<double>(count.active) / 1e6);
  train::MoeLm model(config);
  Rng rng(1);
  model.init(rng);
  train::AdamW optimizer(model.params(), {});
  Tensor tokens = Tensor::zeros({c.batch, c.seq}, DType::I32);
  Tensor targets = Tensor::zeros({c.batch, c.seq}, DType::I32);
  for (Tensor* t : {&tokens, &targets}) {
    int32_t* p = t->mutable_data<int32_t>();
    for (int64_t i = 0; i < t->numel(); ++i) {
      p[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocab)));
    }
  }
  TimingOptions timing = opts.timing;
  timing.min_seconds = 0.0;  // one step per sample: a step is long and changes the weights
  timing.warmup = std::max(1, timing.warmup);
  const double ours = median(time_samples(
      [&] {
        optimizer.zero_grad();
        model.forward_backward(tokens, targets, &rng, /*backward=*/true);
        optimizer.step(3e-4);
        model.end_step();
      },
      timing));
  const double tokens_per_step = static_cast<double>(c.batch * c.seq);
  const std::optional<double> ref = torch_seconds(c, opts);
  reporter.emit(
      {.bench = "train",
       .name = fmt::format("{}/t{}/fwd_bwd_adamw", c.name, num_threads()),
       .metric = "tokens_per_s",
       .value = tokens_per_step / ours,
       .limit = limits.gemm_gflop_per_s * 1e9 / (6.0 * macs_per_token(c)),
       .limit_kind = "gemm_peak",
       .reference = "pytorch",
       .reference_value = ref ? std::optional<double>(tokens_per_step / *ref) : std::nullopt});
}

}  // namespace

void run_train_suite(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts) {
  for (const TrainCase& c : study_cases(opts.quick)) {
    if (opts.filter.empty() || c.name.find(opts.filter) != std::string::npos) {
      run_case(reporter, limits, opts, c);
    }
  }
}

}  // namespace sy::bench
