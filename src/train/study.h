// `switchyard study` (issue #4): the same small MoE language model trained once per router on
// one corpus, one tokenizer, one token budget, one seed and one schedule, plus a dense model of
// equal active parameters, then a comparison report (out/report.md) with a table per variant and
// PNG plots drawn by tools/plot_study.py from the summary the study writes (out/summary.json).
//
// Layout of the output folder:
//   tokenizer.model                    trained once on the corpus, reused by every run
//   runs/<variant>/<router>/           one `run_training` each (train.jsonl, model/)
//   runs/dense/dense_ffn/              the dense baseline (shared by both variants' tables)
//   summary.json                       every run's numbers and curves (the plot script's input)
//   report.md, *.png                   the report and its plots
// Every file is written atomically (io/atomic_file.h; the plot script renames its PNGs in).
// A run that throws (e.g. too many non-finite steps) is recorded as unstable, not fatal. A
// finished run (its study_run.json exists) is not trained again when the study is restarted.
//
// The study model (full): vocab 8000, d 256, 4 layers of 4 heads (head dim 64), untied head,
// sequences of 256 in batches of 8; variant "e8k2": 8 experts top-2 of width 512, variant
// "e32k8": 32 experts top-8 of width 128 (same active and total expert parameters); dense
// baseline: SwiGLU FFN of width K * F = 1024. `bench train` measures this same model. Default
// budget: 147,456 tokens per run (72 steps), the whole study in about two hours on 2 cores
// (arithmetic in study.cpp's kBudgetNote, printed in the report). --quick: vocab 384, d 32, 2
// layers of 2 heads, sequences of 32 in batches of 4, 8 x top-2 of width 32 / 32 x top-8 of width
// 8, 200 steps, every 10th document.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/lm_config.h"

namespace sy::train {

// ---- The study model ---------------------------------------------------------------------------

struct StudyVariant {
  std::string name;  // "e8k2", "e32k8"
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t expert_ffn = 0;
};

struct StudyModel {
  int64_t vocab = 0, d_model = 0, layers = 0, heads = 0, seq = 0, batch = 0;
  std::vector<StudyVariant> variants;  // fine-grained second: same K * F and E * F
};

// The full study model (quick = false) or the tiny one of `--quick`.
StudyModel study_model(bool quick);

// Name of the dense baseline run (not a router: moe.num_experts = 0).
inline constexpr const char* kDenseBaseline = "dense_ffn";

// Routers the study knows how to configure: every router of moe::router_names().
// Causal ones run by default; expert_choice, soft_moe and sinkhorn need allow_non_causal.
bool study_router_is_causal(const std::string& router);

// The router's options as its paper recommends them, for this variant (see study.cpp).
nlohmann::json study_router_options(const std::string& router, const StudyVariant& variant);

// The LmConfig of one run: `router` with study_router_options (and its own top-k, shared
// experts, capacity where the paper has them), or the dense baseline for kDenseBaseline.
LmConfig study_lm_config(const StudyModel& model, const StudyVariant& variant,
                         const std::string& router);

// ---- Options and results -----------------------------------------------------------------------

struct StudyOptions {
  std::string out_dir = "study";
  bool quick = false;
  // Routers to run; empty: every causal router of the registry (plus expert_choice, soft_moe
  // and sinkhorn when non_causal).
  std::vector<std::string> routers;
  bool non_causal = false;  // allow (and by default include) routers that are not causal
  bool dense_baseline = true;
  int64_t tokens = 0;  // token budget per run; 0: the default of the mode (see study.cpp)
  uint64_t seed = 1;
  std::string data = "data/brown.txt";
  // tools/plot_study.py (run with /usr/bin/python3); empty: no plots (the report says so).
  std::string plot_script;
  std::string python = "/usr/bin/python3";
  std::function<bool()> should_stop;  // polled by every run (Ctrl-C)
  std::FILE* progress = nullptr;      // progress lines and the trainer's bar
  bool progress_is_tty = false;
};

// A curve point: optimizer step, tokens trained, value.
struct StudyPoint {
  int64_t step = 0;
  int64_t tokens = 0;
  double value = NAN;
};

struct StudyRun {
  std::string variant;                                // "e8k2", "e32k8" or "dense"
  std::string router;                                 // registry name or kDenseBaseline
  nlohmann::json options = nlohmann::json::object();  // router options used
  std::string settings;  // other per-router settings in words ("top-1, capacity 1.25")
  bool causal = true;
  bool stable = true;
  bool finished = false;  // false: interrupted or failed
  std::string error;      // why it is unstable / failed
  int64_t params_total = 0, params_active = 0;
  int64_t steps = 0, tokens = 0, skipped_steps = 0;
  double val_loss = NAN, val_ppl = NAN;
  double max_vio = NAN;           // final validation pass, mean over MoE layers
  double dropped = NAN;           // fraction of slots, final validation pass, mean over layers
  double active_per_token = NAN;  // experts per token, final validation pass, mean over layers
  double tokens_per_s = NAN;
  std::vector<StudyPoint> val_curve;       // validation loss at each eval
  std::vector<StudyPoint> max_vio_curve;   // training MaxVio (mean over layers) per logged step
  std::vector<StudyPoint> sparsity_curve;  // ReMoE: 1 - active experts / E (mean over layers)
  std::vector<StudyPoint> lambda_curve;    // ReMoE: L1 coefficient (mean over layers)
  std::vector<std::vector<int64_t>> final_load;  // [MoE layer][expert], final validation pass

  nlohmann::json to_json() const;
  // A missing key or a wrong structure throws nlohmann::json::exception; a count that is not an
  // integer throws sy::Error naming the key.
  static StudyRun from_json(const nlohmann::json& j);
};

struct StudySummary {
  nlohmann::json settings = nlohmann::json::object();  // model, budget, schedule, data, ...
  std::vector<StudyVariant> variants;
  std::vector<StudyRun> runs;      // every run, the dense baseline included (variant "dense")
  std::vector<std::string> plots;  // PNG file names drawn (relative to the out dir)
  std::string plot_error;          // why plots are missing, if they are
  bool interrupted = false;

  nlohmann::json to_json() const;
  static StudySummary from_json(const nlohmann::json& j);
};

// Reads a run's train.jsonl lines (the trainer's step and eval events) into the run's curves.
// Events without a string "event" or with a non-integer "step" or "tokens" are skipped, and
// fields of other types count as missing: never throws.
void add_log_event(const nlohmann::json& event, int64_t num_experts, StudyRun& run);

// The paper orderings the study checks, each a sentence with the measured numbers
// ("loss_free reaches lower MaxVio than topk_softmax: reproduced (0.12 vs 0.45)") or saying why
// it could not be checked.
std::vector<std::string> study_ordering_sentences(const StudySummary& summary,
                                                  const StudyVariant& variant);

// report.md's text from a summary (plots linked by the names in summary.plots).
std::string render_study_report(const StudySummary& summary);

// Runs the whole study; writes out_dir/summary.json, the plots and report.md. Returns the
// summary (interrupted = true when should_stop fired; the report then covers the runs done).
StudySummary run_study(const StudyOptions& options);

}  // namespace sy::train
