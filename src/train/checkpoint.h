// Checkpoints of a trained MoeLm in the Hugging Face layout, readable by every tool:
//
//   DIR/config.json           HF keys + switchyard's exact LmConfig (train/checkpoint_config.h)
//   DIR/model.safetensors     the parameters (f32, bf16 or f16) and the router buffers (f32)
//                             (model-0000N-of-0000M.safetensors + index past 5 GB per shard)
//   DIR/optimizer.safetensors optimizer state (for resume; optional)
//   DIR/trainer_state.json    trainer state (for resume; optional)
//
// Tensor names: a Mixtral-expressible model uses Mixtral's (model.layers.N.block_sparse_moe.gate
// .weight, ...experts.{j}.w1/w3/w2.weight); otherwise the MoeLm's own Param names
// (train/lm.h), with the stacked expert params [E, F, D] written per expert as Qwen/DeepSeek do:
// model.layers.N.mlp.experts.{j}.{gate,up,down}_proj.weight. Router buffers (loss-free bias,
// ReMoE lambda, Default MoE EMA) are tensors under their Param names.
//
// A save is all or nothing: everything is written into a fresh folder beside DIR (files
// fsynced), which then replaces DIR in one rename (an atomic exchange where the file system
// supports it), and the parent folder is fsynced. A failure at any point leaves an existing DIR
// as it was and removes the partial folder.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "train/lm.h"

namespace sy::train {

struct SaveOptions {
  DType dtype = DType::F32;  // trainable parameters: f32, bf16 or f16; buffers are always f32
  // More files for the folder, as (file name, bytes): the tokenizer (tokenizer.model,
  // tokenizer_config.json), a model card. Written in the same all-or-nothing swap.
  std::vector<std::pair<std::string, std::string>> extra_files;
};

// What a resumed run needs besides the model.
struct TrainingState {
  io::NamedTensors optimizer;                         // e.g. AdamW::state()
  nlohmann::json trainer = nlohmann::json::object();  // step, data position, rng, ...
};

// Writes `model` to the folder `dir` (created or replaced as above), with `state` beside it when
// given (in the same all-or-nothing swap, so weights and optimizer state always match).
void save_model(const MoeLm& model, const std::string& dir, const SaveOptions& options = {},
                const TrainingState* state = nullptr);

// Reads a folder save_model wrote (or a Mixtral / switchyard_moe checkpoint of another tool)
// back: bit-identical parameters and buffers when they were saved as f32. Errors name the file
// and the tensor or key: a config.json that is not JSON or disagrees with itself, a missing
// tensor, a tensor of the wrong shape or dtype, a tensor the model does not have, a truncated
// or corrupted safetensors file.
std::unique_ptr<MoeLm> load_model(const std::string& dir);

// Writes optimizer.safetensors and then trainer_state.json into the existing folder `dir`, each
// atomically; trainer_state.json records a hash of the optimizer file, so a pair torn by a crash
// between the two renames is refused by load_training_state. (save_model with a state swaps all
// four files at once.)
void save_training_state(const std::string& dir, const io::NamedTensors& optimizer_state,
                         const nlohmann::json& trainer_state);
// Reads them back; the tensors are views of the mapped optimizer file. Errors name the file.
TrainingState load_training_state(const std::string& dir);
// Whether `dir` holds a training state (trainer_state.json exists).
bool has_training_state(const std::string& dir);

}  // namespace sy::train
