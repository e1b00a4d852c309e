// `switchyard run -m MODEL -p TEXT`: generate text from a checkpoint, streaming it to stdout,
// then print prefill and decode speed (and, with --routing-stats, per-layer expert usage) to
// stderr. Flags follow llama.cpp's where one exists.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "apps/switchyard/commands.h"
#include "core/error.h"
#include "infer/generate.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model.h"

namespace sy::app {

namespace {

struct RunArgs {
  std::string model, prompt, tokenizer;
  infer::GenerateOptions gen;
  bool routing_stats = false;
  bool no_bos = false;
};

// Where the tokenizer of a checkpoint lives: the GGUF file itself, or the safetensors folder.
std::string tokenizer_path(const RunArgs& a) {
  if (!a.tokenizer.empty()) return a.tokenizer;
  const std::filesystem::path p(a.model);
  if (p.extension() == ".gguf" || std::filesystem::is_directory(p)) return a.model;
  return p.parent_path().string();
}

void print_routing(const model::Model& model) {
  for (const model::LayerRouting& r : model.routing()) {
    const auto& load = r.tokens_per_expert;
    const int64_t total = std::accumulate(load.begin(), load.end(), int64_t{0});
    if (total == 0) continue;
    const double mean = static_cast<double>(total) / static_cast<double>(load.size());
    const int64_t max = *std::max_element(load.begin(), load.end());
    const auto unused = std::count(load.begin(), load.end(), 0);
    std::vector<size_t> order(load.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return load[a] > load[b]; });
    std::string top;
    for (size_t i = 0; i < std::min<size_t>(4, order.size()); ++i) {
      top += fmt::format("{}e{}:{:.1f}%", i ? " " : "", order[i],
                         100.0 * static_cast<double>(load[order[i]]) / static_cast<double>(total));
    }
    fmt::print(stderr, "layer {:3d}: {} tokens, max_vio {:.2f}, unused {}/{}, top {}\n", r.layer,
               r.tokens, (static_cast<double>(max) - mean) / mean, unused, load.size(), top);
  }
}

}  // namespace

Runner add_run_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("run", "generate text from a checkpoint");
  auto a = std::make_shared<RunArgs>();
  infer::SamplerOptions& s = a->gen.sampling;
  cmd->add_option("-m,--model", a->model, "safetensors folder or .gguf file")->required();
  cmd->add_option("-p,--prompt", a->prompt, "prompt text")->required();
  cmd->add_option("-n,--n-predict", a->gen.max_tokens, "tokens to generate (default 128)");
  cmd->add_option("-c,--ctx-size", a->gen.context, "context positions (default: prompt + -n)");
  cmd->add_option("--temp", s.temperature, "temperature; <= 0 is greedy (default 0.8)");
  cmd->add_option("--top-k", s.top_k, "top-k; <= 0 off (default 40)");
  cmd->add_option("--top-p", s.top_p, "top-p; 1 off (default 0.95)");
  cmd->add_option("--min-p", s.min_p, "min-p; 0 off (default 0.05)");
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "repetition penalty; 1 off (default 1)");
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "tokens the penalty looks at (default 64)");
  cmd->add_option("-s,--seed", s.seed, "sampling seed");
  cmd->add_option("--stop", a->gen.stop, "stop string (repeatable); cut from the output");
  cmd->add_option("--tokenizer", a->tokenizer,
                  "tokenizer.json/.model/.gguf (default: the model's)");
  cmd->add_flag("--ignore-eos", a->gen.ignore_eos, "keep generating past end-of-sequence");
  cmd->add_flag("--no-bos", a->no_bos, "do not add the tokenizer's BOS/special tokens");
  cmd->add_flag("--routing-stats", a->routing_stats, "print per-layer expert usage at the end");
  return [a] {
    a->gen.add_special = !a->no_bos;
    const std::unique_ptr<model::Model> model = model::Model::load(a->model);
    const std::unique_ptr<io::Tokenizer> tokenizer = io::load_tokenizer(tokenizer_path(*a));
    const infer::GenerateResult r =
        infer::generate(*model, *tokenizer, a->prompt, a->gen, [](std::string_view text) {
          std::fwrite(text.data(), 1, text.size(), stdout);
          std::fflush(stdout);
        });
    fmt::print("\n");
    std::fflush(stdout);
    fmt::print(stderr,
               "prefill: {} tokens, {:.1f} tokens/s; decode: {} tokens, {:.1f} tokens/s; "
               "finish: {}\n",
               r.prompt_ids.size(), r.prefill_tokens_per_second(), r.ids.size(),
               r.decode_tokens_per_second(), r.finish_reason);
    if (a->routing_stats) print_routing(*model);
    return 0;
  };
}

}  // namespace sy::app
