// `switchyard eval`: the language-modelling loss of any checkpoint the inference engine loads
// (HF safetensors of every supported architecture, GGUF at any quantization, switchyard's own
// training checkpoints) on a text or JSONL file, as llama.cpp's perplexity tool measures it:
// documents tokenized, joined with BOS between them, cut into sequences of seq_len tokens, each
// sequence run from an empty cache, and the cross-entropy of every next-token prediction
// averaged. Routing: expert usage per routed layer over all evaluated tokens.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/tokenizer/tokenizer.h"
#include "model/model.h"

namespace sy::train {

struct ModelEvalOptions {
  int64_t seq_len = 256;
  // Which documents: "all", or the trainer's "train" / "validation" side of
  // split_documents(count, validation_fraction) (train/data.h), so a trained model can be scored
  // on exactly the documents its run held out.
  std::string split = "all";
  double validation_fraction = 0.1;
  int64_t max_sequences = 0;  // 0: every sequence
};

struct RoutedLayerEval {
  int64_t layer = 0;
  std::vector<int64_t> load;  // tokens per expert
  double max_vio = 0.0;       // (max - mean) / mean of load
  int64_t unused = 0;         // experts that got no token
};

struct ModelEvalResult {
  double loss = 0.0;  // mean cross-entropy (nats) per predicted token
  double ppl = 0.0;
  int64_t tokens = 0;  // predicted tokens
  int64_t sequences = 0;
  std::vector<RoutedLayerEval> layers;

  nlohmann::json to_json() const;
};

// Errors name the data file (no documents, fewer tokens than one sequence) or the option.
ModelEvalResult evaluate_model(model::Model& model, const io::Tokenizer& tokenizer,
                               const std::string& data_file, const ModelEvalOptions& options);

}  // namespace sy::train
