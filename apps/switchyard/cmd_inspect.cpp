// `switchyard inspect FILE`: what a checkpoint holds and whether its tensors agree with its
// config. Exit 0 when they agree, 1 when there are problems (listed), 2 for bad arguments.
#include <fmt/format.h>

#include "apps/switchyard/commands.h"
#include "model/inspect.h"

namespace sy::app {

Runner add_inspect_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "inspect", "describe a checkpoint (safetensors file or folder, GGUF): tensors, params");
  auto path = std::make_shared<std::string>();
  auto tensors = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "safetensors file or folder, or .gguf file")->required();
  cmd->add_flag("--tensors", *tensors, "list every tensor");
  cmd->add_flag("--json", *json, "one JSON object on stdout instead of the report");
  return [path, tensors, json] {
    const model::CheckpointSummary s = model::inspect_checkpoint(*path);
    if (*json) {
      fmt::print("{}\n", model::summary_json(s));
    } else {
      fmt::print("{}", model::format_summary(s, *tensors));
    }
    return s.problems.empty() ? 0 : 1;
  };
}

}  // namespace sy::app
