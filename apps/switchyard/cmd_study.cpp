// `switchyard study [--quick] [--out DIR] [--routers a,b] [--non-causal] [--tokens N]
// [--seed S] [--data FILE]`: the same small model trained once per router, plus a dense model of
// equal active parameters, and a report (DIR/report.md with PNG plots). Ctrl-C stops the current
// run at its next step (checkpoint saved) and writes the report of the runs done; running the
// same command again resumes.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/switchyard/commands.h"
#include "apps/switchyard/stop_signal.h"
#include "train/study.h"

namespace sy::app {

namespace {

namespace fs = std::filesystem;

// `relative` as given when it exists from the working directory, else beside the program or in
// one of its parent folders (a build folder inside the source tree), else "".
std::string find_resource(const std::string& relative) {
  std::error_code ec;
  if (fs::exists(relative, ec)) return relative;
  fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (int up = 0; up < 4 && !ec && !dir.empty(); ++up) {
    const fs::path candidate = dir / relative;
    if (fs::exists(candidate, ec)) return candidate.string();
    dir = dir.parent_path();
  }
  return "";
}

}  // namespace

Runner add_study_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "study", "train the same small model once per router and write a comparison report");
  auto o = std::make_shared<train::StudyOptions>();
  auto data_given = std::make_shared<bool>(false);
  cmd->add_flag("--quick", o->quick, "a tiny model, a few hundred steps per router (minutes)");
  cmd->add_option("-o,--out", o->out_dir, "output folder (report.md, plots, runs/)")
      ->capture_default_str();
  cmd->add_option("--routers", o->routers,
                  "comma-separated routers (default: every causal router of the registry)")
      ->delimiter(',');
  cmd->add_flag("--non-causal", o->non_causal,
                "also run routers that are not causal (expert_choice, soft_moe, sinkhorn), "
                "marked as such in the report");
  cmd->add_option("--tokens", o->tokens, "token budget per run (default: the mode's budget)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "seed of every run")->capture_default_str();
  cmd->add_option("--data", o->data, "plain text or JSONL corpus")
      ->capture_default_str()
      ->each([data_given](const std::string&) { *data_given = true; });
  return [o, data_given] {
    if (!*data_given) {
      const std::string found = find_resource(o->data);
      if (!found.empty()) o->data = found;
    }
    o->plot_script = find_resource("tools/plot_study.py");
    install_stop_signal();
    o->should_stop = [] { return stop_requested(); };
    o->progress = stderr;
    o->progress_is_tty = ::isatty(STDERR_FILENO) != 0;
    const train::StudySummary s = train::run_study(*o);
    const std::string report = (fs::path(o->out_dir) / "report.md").string();
    if (s.interrupted) {
      fmt::print(stderr,
                 "study stopped; the report of the runs done is {}; run the same command "
                 "again to resume\n",
                 report);
      return 130;
    }
    int unstable = 0;
    for (const train::StudyRun& r : s.runs) unstable += r.stable ? 0 : 1;
    fmt::print(stderr, "study: {} runs ({} unstable); report: {}\n", s.runs.size(), unstable,
               report);
    return 0;
  };
}

}  // namespace sy::app
