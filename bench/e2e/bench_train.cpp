// Training benchmark (issue #4): `switchyard bench train`. One optimizer step of the study model
// (train/lm.h MoeLm: zero_grad, forward + backward, AdamW step, router end_step) on a batch of
// uniform random tokens, as tokens per second (B*T / median step time), against the same model
// and step in PyTorch (bench/reference/train_torch.py, torch.optim.AdamW, same thread count, f32)
// run in the same invocation. The limit is the machine's sgemm throughput (measured in the same
// run) over the step's matrix-product FLOPs per token (6 x the multiply-adds of the forward's
// products: projections, attention scores and values, router, the K active experts, LM head).
//
// Models (the study's shapes): vocab 8000, d 384, 6 layers of 6 heads (head dim 64), untied
// head, sequences of 256 in batches of 8; MoE in every layer with a top-k softmax router
// (renormalised, Switch balance loss 0.01) over 8 experts top-2 of FFN width 768, or the
// fine-grained 32 experts top-8 of width 192 (same active and total expert parameters).
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

namespace sy::bench {

namespace {

struct TrainCase {
  std::string name;
  int64_t vocab, d_model, layers, heads, experts, top_k, d_ff, seq, batch;
};

train::LmConfig lm_config(const TrainCase& c) {
  train::LmConfig lm;
  lm.vocab_size = c.vocab;
  lm.d_model = c.d_model;
  lm.n_layers = c.layers;
  lm.n_heads = c.heads;
  lm.moe.num_experts = c.experts;
  lm.moe.top_k = c.top_k;
  lm.moe.expert_ffn = c.d_ff;
  lm.moe.router = "topk_softmax";
  lm.moe.router_options = {{"aux_loss_coeff", 0.01}};
  lm.seq_len = c.seq;
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
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int rc = pclose(pipe);
  const size_t start = out.find_last_of('\n', out.size() >= 2 ? out.size() - 2 : 0);
  const std::string last = out.substr(start == std::string::npos ? 0 : start + 1);
  char* end = nullptr;
  const double s = std::strtod(last.c_str(), &end);
  if (rc != 0 || end == last.c_str() || !(s > 0.0)) {
    std::fprintf(stderr, "bench train: PyTorch reference failed (exit %d): %s\n", rc, out.c_str());
    return std::nullopt;
  }
  return s;
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
  const std::vector<TrainCase> full = {
      {"study_e8k2_f768", 8000, 384, 6, 6, 8, 2, 768, 256, 8},
      {"study_e32k8_f192", 8000, 384, 6, 6, 32, 8, 192, 256, 8},
  };
  const std::vector<TrainCase> quick = {
      {"quick_e8k2_f256", 1000, 128, 2, 4, 8, 2, 256, 64, 2},
      {"quick_e32k8_f64", 1000, 128, 2, 4, 32, 8, 64, 64, 2},
  };
  for (const TrainCase& c : opts.quick ? quick : full) {
    if (opts.filter.empty() || c.name.find(opts.filter) != std::string::npos) {
      run_case(reporter, limits, opts, c);
    }
  }
}

}  // namespace sy::bench
