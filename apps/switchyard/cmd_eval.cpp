// `switchyard eval -m MODEL --data FILE`: validation loss, perplexity and per-layer expert usage
// of any checkpoint on a text or JSONL file (train/eval_model.h). One JSON object on stdout, a
// summary on stderr.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "apps/switchyard/commands.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model.h"
#include "train/eval_model.h"

namespace sy::app {

namespace {

struct EvalArgs {
  std::string model, data, tokenizer;
  train::ModelEvalOptions options;
};

}  // namespace

Runner add_eval_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("eval", "loss, perplexity and expert usage of a model on a text file");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("-m,--model", a->model, "safetensors folder or .gguf file")->required();
  cmd->add_option("--data", a->data, "plain text (blank-line separated documents) or .jsonl")
      ->required();
  cmd->add_option("--tokenizer", a->tokenizer,
                  "tokenizer.json/.model/.gguf (default: the model's)");
  cmd->add_option("--seq-len", a->options.seq_len, "tokens per sequence (default 256)");
  cmd->add_option("--split", a->options.split,
                  "all, or the train/validation side of the trainer's document split")
      ->check(CLI::IsMember({"all", "train", "validation"}));
  cmd->add_option("--validation-fraction", a->options.validation_fraction,
                  "the trainer's data.validation_fraction (default 0.1)");
  cmd->add_option("--max-sequences", a->options.max_sequences, "at most this many (0: all)");
  return [a] {
    const std::unique_ptr<model::Model> model = model::Model::load(a->model);
    std::string tok = a->tokenizer;
    if (tok.empty()) {
      const std::filesystem::path p(a->model);
      tok = (p.extension() == ".gguf" || std::filesystem::is_directory(p))
                ? a->model
                : p.parent_path().string();
    }
    const std::unique_ptr<io::Tokenizer> tokenizer = io::load_tokenizer(tok);
    const train::ModelEvalResult r = train::evaluate_model(*model, *tokenizer, a->data, a->options);
    fmt::print("{}\n", r.to_json().dump());
    fmt::print(stderr, "{}: {} tokens in {} sequences of {}: loss {:.4f}, perplexity {:.3f}\n",
               a->data, r.tokens, r.sequences, a->options.seq_len, r.loss, r.ppl);
    for (const train::RoutedLayerEval& l : r.layers) {
      fmt::print(stderr, "layer {:3d}: max_vio {:.2f}, unused {}/{}\n", l.layer, l.max_vio,
                 l.unused, l.load.size());
    }
    return 0;
  };
}

}  // namespace sy::app
