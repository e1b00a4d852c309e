// The configuration of a training run (`switchyard train CONFIG`), read from a TOML or JSON file
// with command-line overrides (io/config_file.h). Sections and keys (defaults in the structs):
//
//   [model]     the LmConfig (train/lm_config.h): vocab_size, d_model, n_layers, ..., [model.moe]
//   [data]      files, tokenizer, tokenizer_sentences, validation_fraction
//   [train]     batch_size, grad_accum, steps | tokens, seed, max_bad_steps
//   [optim]     lr, min_lr, schedule, warmup_steps, decay_fraction, decay_shape, beta1, beta2,
//               eps, weight_decay, grad_clip
//   [output]    dir, log_every, eval_every, eval_batches, save_every, save_dtype, progress
//
// Unknown keys, wrong types and bad values are errors naming the file and the key.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "train/lm_config.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace sy::train {

struct DataConfig {
  std::vector<std::string> files;  // plain text or .jsonl (train/data.h)
  // A SentencePiece tokenizer.model to use; empty: train one on the training documents with
  // model.vocab_size pieces (it ships with every checkpoint).
  std::string tokenizer;
  int64_t tokenizer_sentences = 0;  // lines the tokenizer trains on (0: all)
  double validation_fraction = 0.1;
};

struct LoopConfig {
  int64_t batch_size = 8;     // sequences per micro-batch
  int64_t grad_accum = 1;     // micro-batches per optimizer step
  int64_t steps = 0;          // optimizer steps; 0: from tokens
  int64_t tokens = 0;         // token budget when steps = 0: steps = ceil(tokens / tokens_per_step)
  uint64_t seed = 1;          // initialisation, data order, router noise
  int64_t max_bad_steps = 5;  // consecutive non-finite steps that stop the run
};

struct OptimConfig {
  double lr = 1e-3;
  double min_lr = 1e-4;
  std::string schedule = "cosine";  // constant, cosine, wsd
  int64_t warmup_steps = 0;
  double decay_fraction = 0.2;         // wsd
  std::string decay_shape = "1-sqrt";  // wsd: linear, cosine, 1-sqrt
  AdamWOptions adamw;
  double grad_clip = 1.0;  // global-norm clipping; <= 0: off
};

struct OutputConfig {
  std::string dir;                 // run folder: train.jsonl, tokenizer.model, checkpoint/, model/
  int64_t log_every = 1;           // steps between JSONL lines
  int64_t eval_every = 0;          // steps between validation passes (0: only at the end)
  int64_t eval_batches = 0;        // validation batches per pass (0: the whole held-out set)
  int64_t save_every = 0;          // steps between checkpoints (0: only at the end and on Ctrl-C)
  std::string save_dtype = "f32";  // final model: f32, bf16 or f16 (checkpoints are f32)
  std::string progress = "auto";   // progress bar: auto (on a terminal), on, off
};

struct TrainConfig {
  LmConfig model;
  DataConfig data;
  LoopConfig train;
  OptimConfig optim;
  OutputConfig output;

  int64_t tokens_per_step() const { return train.batch_size * train.grad_accum * model.seq_len; }
  // train.steps, or the token budget in steps.
  int64_t total_steps() const;
  ScheduleOptions schedule_options() const;
  DType save_dtype() const;

  // Throws sy::Error naming the bad key ("train config: train.batch_size = 0, expected >= 1").
  void validate() const;
  nlohmann::json to_json() const;
  // Unknown keys and wrong types name `source` and the key. Validates.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& source);
};

// Reads a TOML/JSON config file and applies the "key.path=value" overrides in order.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace sy::train
