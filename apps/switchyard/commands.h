// Each subcommand registers its flags on the CLI11 app and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace sy::app {

using Runner = std::function<int()>;

Runner add_env_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);
Runner add_convert_command(CLI::App& app);
Runner add_inspect_command(CLI::App& app);
Runner add_logits_command(CLI::App& app);
Runner add_run_command(CLI::App& app);
Runner add_train_command(CLI::App& app);
Runner add_eval_command(CLI::App& app);
Runner add_study_command(CLI::App& app);

}  // namespace sy::app
