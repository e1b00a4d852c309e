// `switchyard train CONFIG [key.path=value ...]`: train an MoE language model from a TOML or
// JSON config (train/train_config.h), every key overridable on the command line. Resumes when
// the run folder already holds a checkpoint with training state; Ctrl-C saves one and stops.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "apps/switchyard/commands.h"
#include "apps/switchyard/stop_signal.h"
#include "train/trainer.h"

namespace sy::app {

namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string out;
};

}  // namespace

Runner add_train_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "train", "train an MoE language model (checkpoints are HF-layout safetensors)");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("config", a->config, "TOML or JSON config file")->required();
  cmd->add_option("overrides", a->overrides,
                  "config overrides, e.g. train.steps=200 model.moe.router=loss_free");
  cmd->add_option("-o,--out", a->out, "run folder (the same as output.dir=DIR)");
  cmd->footer(
      "Sections: [model] (model.moe.*), [data], [train], [optim], [output]; see "
      "src/train/train_config.h. The run folder gets train.jsonl, tokenizer.model, checkpoint/ "
      "(resumable) and model/ (final).");
  return [a] {
    std::vector<std::string> overrides = a->overrides;
    if (!a->out.empty()) overrides.push_back("output.dir=" + nlohmann::json(a->out).dump());
    const train::TrainConfig config = train::load_train_config(a->config, overrides);
    install_stop_signal();
    train::TrainHooks hooks;
    hooks.should_stop = [] { return stop_requested(); };
    hooks.progress = stderr;
    hooks.progress_is_tty = ::isatty(STDERR_FILENO) != 0;
    const train::TrainResult r = train::run_training(config, hooks);
    if (r.interrupted) {
      fmt::print(stderr, "stopped at step {}; resume with the same command ({})\n", r.steps,
                 r.checkpoint_dir);
      return 130;
    }
    fmt::print(stderr,
               "trained {} steps ({:.0f} tokens/s); validation loss {:.4f}, perplexity {:.2f}; "
               "model: {}\n",
               r.steps, r.tokens_per_s, r.final_eval.loss, r.final_eval.ppl, r.model_dir);
    return 0;
  };
}

}  // namespace sy::app
