// libFuzzer target: the training config (TOML or JSON text -> TrainConfig::from_json, which
// validates) and a checkpoint's config.json (lm_config_from_hf: switchyard's own block or Mixtral
// keys). A read either throws sy::Error or yields a config that survives its own round trip
// (to_json -> from_json -> the same JSON) and whose derived counts (tokens per step, total steps,
// parameter counts) compute without a sanitizer report; any other exception (a JSON type error
// escaping a reader), a crash or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/config_file.h"
#include "train/checkpoint_config.h"
#include "train/lm_config.h"
#include "train/train_config.h"

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_train_config: %s\n", what);
  std::abort();
}

void read_train_config(const nlohmann::json& j, const std::string& name) {
  try {
    const sy::train::TrainConfig c = sy::train::TrainConfig::from_json(j, name);
    const nlohmann::json out = c.to_json();
    if (sy::train::TrainConfig::from_json(out, name).to_json() != out) bug("train round trip");
    volatile int64_t keep = c.tokens_per_step() + c.total_steps();
    keep = keep + sy::train::count_params(c.model).total;
    (void)keep;
  } catch (const sy::Error&) {
  }
}

void read_checkpoint_config(const nlohmann::json& j, const std::string& name) {
  try {
    const sy::train::LmConfig c = sy::train::lm_config_from_hf(j, name);
    const nlohmann::json out = c.to_json();
    if (sy::train::LmConfig::from_json(out).to_json() != out) bug("lm_config round trip");
    volatile int64_t keep = sy::train::count_params(c).active;
    (void)keep;
  } catch (const sy::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* name : {"fuzz.toml", "fuzz.json"}) {
    try {
      const nlohmann::json j = sy::io::parse_config(text, name);
      read_train_config(j, name);
      read_checkpoint_config(j, name);
    } catch (const sy::Error&) {
      // Not TOML / JSON: the expected outcome for most inputs.
    }
  }
  return 0;
}
