// switchyard: the command-line program. Parsing and wiring only; the work lives in src/.
#include <cstdio>
#include <map>

#include "apps/switchyard/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

int main(int argc, char** argv) {
  CLI::App app{"switchyard: sparse Mixture-of-Experts training and inference engine"};
  app.set_version_flag("--version", std::string("switchyard ") + SY_VERSION);
  // At most one; "none" is reported after parsing so that unknown words and flags are named
  // first (CLI11 would otherwise only say that a subcommand is missing).
  app.require_subcommand(0, 1);
  int threads = 0;
  std::string log_level = "info";
  app.add_option("-t,--threads", threads, "threads for kernels (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", log_level, "debug, info, warn, error or off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}));

  std::map<CLI::App*, sy::app::Runner> runners;
  auto add = [&](auto adder) {
    const size_t before = app.get_subcommands({}).size();
    sy::app::Runner run = adder(app);
    runners[app.get_subcommands({})[before]] = std::move(run);
  };
  add(sy::app::add_env_command);
  add(sy::app::add_bench_command);
  add(sy::app::add_convert_command);
  add(sy::app::add_inspect_command);
  add(sy::app::add_logits_command);
  add(sy::app::add_run_command);
  add(sy::app::add_train_command);
  add(sy::app::add_eval_command);
  add(sy::app::add_study_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help/version, or CLI11's one-line usage error
    return rc == 0 ? 0 : 2;
  }
  if (app.get_subcommands().empty()) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    std::fprintf(stderr,
                 "A subcommand is required: one of %s\nRun with --help for more information.\n",
                 names.c_str());
    return 2;
  }
  try {
    sy::set_log_level(sy::log_level_from_name(log_level));
    sy::set_num_threads(threads);
    for (CLI::App* sub : app.get_subcommands()) return runners.at(sub)();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
