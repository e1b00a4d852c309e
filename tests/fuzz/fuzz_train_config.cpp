// libFuzzer target: what `switchyard train` reads besides tensors. The training config (TOML or
// JSON text -> TrainConfig::from_json, which validates), a checkpoint's config.json
// (lm_config_from_hf: switchyard's own block or Mixtral keys), the batch iterator's saved state
// in trainer_state.json (BatchIteratorState::from_json, then BatchIterator::restore), the corpus
// as plain text and as JSONL, and what a resumed study reads back: a run's record
// (StudyRun::from_json, whose callers catch JSON errors and sy::Error) and its train.jsonl events
// (add_log_event, which must not throw), and a study's summary.json (StudySummary::from_json,
// likewise), rendered into its report. A read either throws sy::Error or yields a config or state
// that survives its own round trip (to_json -> from_json -> the same JSON) and whose derived
// counts (tokens per step, total steps, parameter counts) compute without a sanitizer report;
// documents are never empty. Any other exception (a JSON type error escaping a reader), a crash
// or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/config_file.h"
#include "train/checkpoint_config.h"
#include "train/data.h"
#include "train/lm_config.h"
#include "train/study.h"
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

// A restored iterator must give batches of the saved size; the data is 6 sequences of 2 tokens.
void read_batch_state(const nlohmann::json& j, const std::string& name) {
  try {
    const auto state = sy::train::BatchIteratorState::from_json(j, name);
    if (sy::train::BatchIteratorState::from_json(state.to_json(), name).to_json() !=
        state.to_json()) {
      bug("batch state round trip");
    }
    static const sy::train::PackedSequences data({{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}}, {0},
                                                 0, 2);
    sy::train::BatchIterator it(data, 2, 7);
    it.restore(state, name);
    if (it.next().tokens.dim(0) != 2) bug("restored batch size");
  } catch (const sy::Error&) {
  }
}

void read_study_files(const nlohmann::json& j) {
  try {
    const sy::train::StudyRun run = sy::train::StudyRun::from_json(j);
    const nlohmann::json out = run.to_json();
    if (sy::train::StudyRun::from_json(out).to_json() != out) bug("study run round trip");
  } catch (const nlohmann::json::exception&) {
  } catch (const sy::Error&) {
  }
  try {
    const sy::train::StudySummary summary = sy::train::StudySummary::from_json(j);
    const nlohmann::json out = summary.to_json();
    if (sy::train::StudySummary::from_json(out).to_json() != out) bug("study summary round trip");
    volatile size_t keep = sy::train::render_study_report(summary).size();
    (void)keep;
  } catch (const nlohmann::json::exception&) {
  } catch (const sy::Error&) {
  }
  for (const char* router : {"remoe", "topk_softmax"}) {
    sy::train::StudyRun run;
    run.router = router;
    sy::train::add_log_event(j, 8, run);
  }
}

void read_corpus(std::string_view text) {
  for (const std::string& d : sy::train::parse_text_documents(text)) {
    if (d.empty()) bug("empty text document");
  }
  try {
    for (const std::string& d : sy::train::parse_jsonl_documents(text, "fuzz.jsonl")) {
      if (d.empty()) bug("empty JSONL document");
    }
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
      read_batch_state(j, name);
      read_study_files(j);
    } catch (const sy::Error&) {
      // Not TOML / JSON: the expected outcome for most inputs.
    }
  }
  read_corpus(text);
  return 0;
}
