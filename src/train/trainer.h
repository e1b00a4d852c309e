// The training loop behind `switchyard train CONFIG` (train/train_config.h).
//
// A run folder (output.dir) holds:
//   train_config.json   the resolved config of the run (a resumed run must agree with it)
//   tokenizer.model     the SentencePiece tokenizer (trained on the training documents when
//                       data.tokenizer is empty), also copied into every checkpoint
//   train.jsonl         one JSON object per logged step and per validation pass (below)
//   checkpoint/         the latest checkpoint (train/checkpoint.h) with optimizer and trainer
//                       state, written every output.save_every steps, at the end and on stop
//   model/              the final model in output.save_dtype, with the tokenizer: what
//                       `switchyard run -m DIR/model` and `switchyard eval` read
//
// Each optimizer step: zero the gradients; for each of train.grad_accum micro-batches of
// train.batch_size sequences, forward + backward (gradients summed, then scaled by 1/grad_accum);
// clip the global norm; when the loss and the norm are finite, AdamW at the schedule's rate and
// every router's end_step (loss-free bias, ReMoE lambda, EMAs: once per optimizer step). A
// non-finite loss or gradient skips the step (parameters, optimizer and router state untouched;
// a warning); train.max_bad_steps of them in a row stop the run with an error, the last
// checkpoint intact. Router noise for micro-batch m of step s is drawn from an Rng seeded by
// (seed, s, m), so a run resumed from a checkpoint continues the exact same loss curve.
//
// train.jsonl lines:
//   {"event":"step","step":s (1-based, optimizer steps done),"tokens":...,"loss":...,"ce":...,
//    "aux":...,"lr":...,"grad_norm":...,"clipped":bool,"skipped":bool,"tokens_per_s":...,
//    "layers":[{"layer":l,"load":[tokens per expert],"max_vio":...,"load_cv":...,
//               "dropped":fraction,"entropy":...,"active_per_token":...,
//               "aux":{"load_balance":value,...},"state":{"remoe.l1_coeff":value,...}}]}
//   {"event":"eval","step":s,"tokens":...,"val_loss":...,"val_ppl":...,"layers":[...]}
#pragma once

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/data.h"
#include "train/lm.h"
#include "train/train_config.h"

namespace sy::train {

// Per MoE layer over several forwards: loads summed, the rest averaged per forward.
struct LayerSummary {
  int64_t layer = 0;
  std::vector<int64_t> load;      // tokens (kept slots) per expert
  double max_vio = 0.0;           // of the summed load
  double load_cv = 0.0;           // of the summed load
  double dropped = 0.0;           // mean dropped fraction of slots
  double entropy = 0.0;           // mean normalised router entropy (NaN when the router has none)
  double active_per_token = 0.0;  // kept slots per token
  std::vector<std::pair<std::string, double>> aux;    // mean value of each aux loss
  std::vector<std::pair<std::string, double>> state;  // scalar router buffers (ReMoE lambda)

  nlohmann::json to_json() const;
};

// Adds the router statistics of one forward of `model` into `sums` (one entry per MoE layer,
// created on the first call); finish_layer_summaries turns the sums into means and reads the
// scalar buffers.
void add_layer_stats(const MoeLm& model, std::vector<LayerSummary>& sums);
void finish_layer_summaries(MoeLm& model, int64_t forwards, std::vector<LayerSummary>& sums);

struct EvalResult {
  double loss = 0.0;  // mean cross-entropy per target token (aux losses excluded)
  double ppl = 0.0;   // exp(loss)
  int64_t tokens = 0;
  std::vector<LayerSummary> layers;
};

// Mean cross-entropy of `model` (inference mode) over the first `max_batches` batches of
// `batch_size` sequences of `data` in order (0: all; a last partial batch included).
EvalResult evaluate(MoeLm& model, const PackedSequences& data, int64_t batch_size,
                    int64_t max_batches);

struct TrainHooks {
  // Polled before every step: true saves a checkpoint and returns (Ctrl-C).
  std::function<bool()> should_stop;
  // Called after every step with its JSONL object (tests, the study).
  std::function<void(const nlohmann::json&)> on_log;
  // Called after each step's backward (gradients summed and scaled), before clipping: gradient
  // inspection, and the tests' way to inject a non-finite gradient. `step` is 0-based.
  std::function<void(MoeLm&, int64_t step)> after_backward;
  std::FILE* progress = nullptr;  // where the progress bar goes (output.progress decides)
  bool progress_is_tty = false;
  // Stop after this many steps of this invocation as if should_stop fired (0: no limit).
  int64_t stop_after = 0;
};

struct TrainResult {
  int64_t start_step = 0;  // > 0 when resumed
  int64_t steps = 0;       // optimizer steps done in total (including before a resume)
  int64_t skipped = 0;     // non-finite steps skipped in this invocation
  bool interrupted = false;
  bool non_causal = false;
  double tokens_per_s = 0.0;  // training throughput of this invocation
  EvalResult final_eval;      // empty when interrupted
  std::string checkpoint_dir, model_dir;
};

// Runs (or resumes, when output.dir/checkpoint holds a training state) the training `config`
// describes. Errors are sy::Error naming the file or key.
TrainResult run_training(const TrainConfig& config, const TrainHooks& hooks = {});

}  // namespace sy::train
