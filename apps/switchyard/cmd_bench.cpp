// `switchyard bench [SUITE]`: JSON lines on stdout (one per figure), a table on stderr.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/switchyard/commands.h"
#include "bench/suites.h"

namespace sy::app {

Runner add_bench_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "measure machine limits and kernels; prints one JSON object per figure");
  struct Args {
    std::string suite = "all";
    bench::SuiteOptions opts;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("suite", args->suite,
                  fmt::format("what to measure: {}", fmt::join(bench::suite_names(), ", ")))
      ->check(CLI::IsMember(bench::suite_names()));
  cmd->add_flag("--quick", args->opts.quick, "small shapes and few repeats (smoke test)");
  cmd->add_option("--filter", args->opts.filter, "only cases whose name contains this text");
  cmd->add_option("-m,--model", args->opts.model,
                  "decode/prefill: a checkpoint instead of the built-in random shapes");
  cmd->add_option("--repeats", args->opts.timing.repeats, "timed samples per figure (median)")
      ->check(CLI::Range(1, 1000));
  return [args] {
    if (args->opts.quick) {
      args->opts.timing.repeats = std::min(args->opts.timing.repeats, 3);
      args->opts.timing.min_seconds = 0.01;
    }
    bench::Reporter reporter;
    bench::run_suite(args->suite, reporter, args->opts);
    return 0;
  };
}

}  // namespace sy::app
