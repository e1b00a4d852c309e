#include "train/eval_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "moe/balance.h"
#include "train/data.h"

namespace sy::train {

using json = nlohmann::json;

json ModelEvalResult::to_json() const {
  json layers_j = json::array();
  for (const RoutedLayerEval& l : layers) {
    layers_j.push_back(
        {{"layer", l.layer}, {"load", l.load}, {"max_vio", l.max_vio}, {"unused", l.unused}});
  }
  return {{"loss", loss},
          {"ppl", ppl},
          {"tokens", tokens},
          {"sequences", sequences},
          {"layers", layers_j}};
}

ModelEvalResult evaluate_model(model::Model& model, const io::Tokenizer& tokenizer,
                               const std::string& data_file, const ModelEvalOptions& options) {
  SY_CHECK(options.seq_len >= 2, "eval: --seq-len = {}, expected >= 2", options.seq_len);
  SY_CHECK(options.split == "all" || options.split == "train" || options.split == "validation",
           "eval: --split '{}', expected all, train or validation", options.split);
  const int64_t vocab = model.config().vocab_size;
  SY_CHECK(tokenizer.vocab_size() <= vocab,
           "eval: the tokenizer has {} tokens but the model's vocabulary has {}",
           tokenizer.vocab_size(), vocab);
  const std::vector<std::string> documents = read_documents(data_file);
  std::vector<int64_t> which;
  if (options.split == "all") {
    for (int64_t i = 0; i < static_cast<int64_t>(documents.size()); ++i) which.push_back(i);
  } else {
    const DocumentSplit split =
        split_documents(static_cast<int64_t>(documents.size()), options.validation_fraction);
    which = options.split == "train" ? split.train : split.validation;
  }
  const int32_t bos = tokenizer.bos_id().value_or(tokenizer.eos_id().value_or(0));
  // Only the chosen documents are tokenized (the same stream as packing them from all).
  std::vector<std::string> chosen;
  chosen.reserve(which.size());
  for (const int64_t i : which) chosen.push_back(documents[static_cast<size_t>(i)]);
  std::vector<int64_t> all(chosen.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const PackedSequences packed(tokenize_documents(tokenizer, chosen), all, bos, options.seq_len);
  SY_CHECK(packed.size() >= 1, "{}: the {} documents hold fewer than {} tokens (one sequence)",
           data_file, options.split, options.seq_len + 1);
  const int64_t count =
      options.max_sequences > 0 ? std::min(packed.size(), options.max_sequences) : packed.size();

  ModelEvalResult r;
  model.reset_routing();
  std::vector<int32_t> tokens(static_cast<size_t>(options.seq_len));
  std::vector<int32_t> targets(tokens.size());
  double loss = 0.0;
  for (int64_t s = 0; s < count; ++s) {
    packed.copy(s, tokens.data(), targets.data());
    model::KvCache cache = model.new_cache(options.seq_len);
    const Tensor logits = model.forward(tokens, cache, /*all_logits=*/true);
    const float* p = logits.data<float>();
    for (int64_t t = 0; t < options.seq_len; ++t) {
      const float* row = p + t * vocab;
      const float max = *std::max_element(row, row + vocab);
      double sum = 0.0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v] - max));
      loss += static_cast<double>(max) + std::log(sum) - static_cast<double>(row[targets[t]]);
    }
    r.tokens += options.seq_len;
  }
  r.sequences = count;
  r.loss = loss / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.loss);
  for (const model::LayerRouting& l : model.routing()) {
    RoutedLayerEval e{.layer = l.layer, .load = l.tokens_per_expert};
    e.unused = std::count(e.load.begin(), e.load.end(), int64_t{0});
    e.max_vio = moe::load_balance(e.load).max_vio;
    r.layers.push_back(std::move(e));
  }
  return r;
}

}  // namespace sy::train
