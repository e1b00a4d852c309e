// The training loop (train/trainer.h), its config (train/train_config.h, io/config_file.h) and
// the model evaluator (train/eval_model.h), on a tiny model over a slice of the bundled corpus.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/config_file.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/eval_model.h"
#include "train/trainer.h"

namespace sy::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using ::sy::test::error_of;

// The first 6 Brown documents as a corpus file, and a 400-piece tokenizer trained on them
// once (the runs below reuse it through data.tokenizer, as the study does).
struct Corpus {
  test::TempDir dir{"sy_trainer_corpus"};
  std::string text, tokenizer;
  Corpus() {
    std::vector<std::string> docs = read_documents(std::string(SY_SOURCE_DIR) + "/data/brown.txt");
    docs.resize(6);
    std::string all;
    for (const std::string& d : docs) all += d + "\n\n";
    text = (dir.path / "corpus.txt").string();
    io::write_file_atomic(text, all);
    tokenizer = (dir.path / "tokenizer.model").string();
    train_tokenizer(docs, tokenizer, {.vocab_size = 400});
  }
};

const Corpus& corpus() {
  static const Corpus c;
  return c;
}

TrainConfig tiny_config(const std::string& out, const std::string& router = "topk_softmax") {
  json j = {{"model",
             {{"vocab_size", 400},
              {"d_model", 32},
              {"n_layers", 2},
              {"n_heads", 2},
              {"seq_len", 32},
              {"dense_ffn", 64},
              {"moe", {{"num_experts", 4}, {"top_k", 2}, {"expert_ffn", 32}, {"router", router}}}}},
            {"data",
             {{"files", {corpus().text}},
              {"tokenizer", corpus().tokenizer},
              {"validation_fraction", 0.2}}},
            {"train", {{"batch_size", 4}, {"steps", 12}, {"seed", 7}}},
            {"optim", {{"lr", 3e-3}, {"min_lr", 3e-4}, {"warmup_steps", 2}}},
            {"output", {{"dir", out}, {"progress", "off"}}}};
  return TrainConfig::from_json(j, "test");
}

std::vector<json> read_log(const std::string& run) {
  std::vector<json> out;
  std::ifstream in(fs::path(run) / "train.jsonl");
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));
  return out;
}

// The log without the wall-clock fields.
std::vector<json> timeless(std::vector<json> log) {
  for (json& j : log) {
    j.erase("tokens_per_s");
    j.erase("step_s");
  }
  return log;
}

// ---- Config ------------------------------------------------------------------------------------

TEST(TrainConfig, TomlWithOverrides) {
  const test::TempDir dir("sy_train_config");
  const std::string path = (dir.path / "run.toml").string();
  io::write_file_atomic(path, R"(# a run
[model]
vocab_size = 400
d_model = 32
n_layers = 2
n_heads = 2
seq_len = 32
[model.moe]
num_experts = 4
top_k = 2
expert_ffn = 32
router = "topk_softmax"
router_options = { aux_loss_coeff = 0.01 }

[data]
files = ["a.txt", "b.jsonl"]

[train]
batch_size = 4
tokens = 1000

[optim]
schedule = "wsd"
decay_shape = "linear"

[output]
dir = "runs/x"
)");
  const TrainConfig c =
      load_train_config(path, {"model.moe.router=loss_free", "train.grad_accum=2", "optim.lr=0.01",
                               "model.moe.router_options={}", "output.dir=runs/y"});
  EXPECT_EQ(c.model.moe.router, "loss_free");
  EXPECT_EQ(c.model.moe.expert_ffn, 32);
  EXPECT_EQ(c.data.files, (std::vector<std::string>{"a.txt", "b.jsonl"}));
  EXPECT_EQ(c.train.grad_accum, 2);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.01);
  EXPECT_EQ(c.output.dir, "runs/y");
  // 1000 tokens at 4 x 2 x 32 = 256 per step: 4 steps (rounded up).
  EXPECT_EQ(c.total_steps(), 4);
  EXPECT_EQ(c.schedule_options().kind, ScheduleKind::kWsd);
  EXPECT_EQ(c.schedule_options().decay_shape, DecayShape::kLinear);
  // The JSON form reads back to the same config.
  EXPECT_EQ(TrainConfig::from_json(c.to_json(), "again").to_json(), c.to_json());

  EXPECT_EQ(error_of([&] {
              load_train_config(path, {"train.step=5"});
            }).rfind(path + ": unknown key 'train.step'; valid keys: train.batch_size, ", 0),
            0u);
  EXPECT_EQ(error_of([&] { load_train_config(path, {"train.batch_size=0"}); }),
            path + ": train.batch_size = 0, expected >= 1");
  EXPECT_EQ(error_of([&] { load_train_config(path, {"train.batch_size=four"}); }),
            path + ": key 'train.batch_size' must be an integer, got \"four\"");
  EXPECT_EQ(error_of([&] { load_train_config(path, {"model.moe.top_k=9"}); }),
            path +
                ": [model] lm config: moe.top_k = 9, expected 1 <= top_k <= "
                "moe.num_experts = 4");
  EXPECT_EQ(error_of([&] { load_train_config(path, {"train.batch_size.x=1"}); }),
            "override 'train.batch_size.x=1': 'train.batch_size' is 4, not a table of keys");
  EXPECT_EQ(error_of([&] { load_train_config(path, {"steps"}); }),
            "override 'steps': expected key.path=value (e.g. train.steps=100)");
  EXPECT_EQ(error_of([&] { load_train_config(path, {"optim.schedule=linear"}); }),
            path + ": lr schedule: unknown kind 'linear'; valid kinds: constant, cosine, wsd");

  const std::string bad = (dir.path / "bad.toml").string();
  io::write_file_atomic(bad, "[model]\nvocab_size 400\n");
  EXPECT_EQ(error_of([&] { io::read_config_file(bad); }).rfind(bad + ":2:12: ", 0), 0u)
      << error_of([&] { io::read_config_file(bad); });
  const std::string bad_json = (dir.path / "bad.json").string();
  io::write_file_atomic(bad_json, "[1, 2]");
  EXPECT_EQ(error_of([&] { io::read_config_file(bad_json); }),
            bad_json + ": expected a JSON object at the top, got array");
  // A number no double holds is nlohmann's out_of_range, not a parse_error: it escaped unnamed.
  EXPECT_EQ(error_of([&] { io::parse_config(R"({"optim": {"lr": 1e999}})", "c.json"); }),
            "c.json: not valid JSON: [json.exception.out_of_range.406] number overflow parsing "
            "'1e999'");
}

// ---- Training ----------------------------------------------------------------------------------

TEST(Trainer, TrainsLogsSavesAndEvaluates) {
  const test::TempDir dir("sy_trainer");
  const std::string run = dir.str() + "/run";
  TrainConfig c = tiny_config(run);
  c.train.steps = 40;
  c.output.eval_every = 20;
  std::vector<json> seen;
  TrainHooks hooks;
  hooks.on_log = [&](const json& j) { seen.push_back(j); };
  const TrainResult r = run_training(c, hooks);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 40);
  EXPECT_EQ(r.skipped, 0);

  const std::vector<json> log = read_log(run);
  EXPECT_EQ(log, seen);
  ASSERT_EQ(log.size(), 42u);  // 40 steps, an eval at step 20 and the final one
  EXPECT_EQ(log[20]["event"], "eval");
  EXPECT_EQ(log[20]["step"], 20);
  const json& first = log[0];
  const json& last = log[40];
  EXPECT_EQ(first["event"], "step");
  EXPECT_EQ(last["step"], 40);
  EXPECT_EQ(last["tokens"], 40 * 4 * 32);
  // It learns: from about ln(400) = 6.0 to clearly less in 40 steps.
  EXPECT_GT(first["ce"].get<double>(), 5.5);
  EXPECT_LT(last["ce"].get<double>(), first["ce"].get<double>() - 1.0);
  EXPECT_DOUBLE_EQ(first["lr"].get<double>(), 1.5e-3);  // warmup: 1/2 of the peak
  EXPECT_GT(first["grad_norm"].get<double>(), 0.0);
  // Router metrics per MoE layer: every token's 2 slots are counted.
  ASSERT_EQ(last["layers"].size(), 2u);
  for (const json& l : last["layers"]) {
    int64_t load = 0;
    for (const json& v : l["load"]) load += v.get<int64_t>();
    EXPECT_EQ(load, 4 * 32 * 2);
    EXPECT_DOUBLE_EQ(l["active_per_token"].get<double>(), 2.0);
    EXPECT_TRUE(l["aux"].contains("load_balance")) << l.dump();
    EXPECT_GE(l["max_vio"].get<double>(), 0.0);
  }

  // The final model: tokenizer files and summary beside the weights; the evaluation recorded
  // equals a fresh one of the saved model.
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model",
                        "tokenizer_config.json", "training_summary.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(r.model_dir) / f)) << f;
  }
  EXPECT_FALSE(has_training_state(r.model_dir));
  EXPECT_TRUE(has_training_state(r.checkpoint_dir));
  const json& final_eval = log[41];
  EXPECT_EQ(final_eval["event"], "eval");
  EXPECT_DOUBLE_EQ(final_eval["val_loss"].get<double>(), r.final_eval.loss);
  const json summary = json::parse(io::read_file(r.model_dir + "/training_summary.json"));
  EXPECT_DOUBLE_EQ(summary["val_ppl"].get<double>(), r.final_eval.ppl);
  EXPECT_GT(summary["unigram_val_ppl"].get<double>(), 20.0);  // far from uniform (400)
  EXPECT_LT(summary["unigram_val_ppl"].get<double>(), 200.0);

  // The inference engine reads the saved model: `switchyard eval` on the held-out documents
  // gives the trainer's validation loss (another code path: KV-cache forward, f32 logits).
  const std::unique_ptr<model::Model> m = model::Model::load(r.model_dir);
  const std::unique_ptr<io::Tokenizer> tok = io::load_tokenizer(r.model_dir);
  const ModelEvalResult e = evaluate_model(
      *m, *tok, corpus().text, {.seq_len = 32, .split = "validation", .validation_fraction = 0.2});
  EXPECT_EQ(e.tokens, r.final_eval.tokens);
  EXPECT_NEAR(e.loss, r.final_eval.loss, 1e-4 * r.final_eval.loss);
  ASSERT_EQ(e.layers.size(), 2u);
  int64_t routed = 0;
  for (const int64_t v : e.layers[0].load) routed += v;
  EXPECT_EQ(routed, e.tokens * 2);
}

// Resuming from the checkpoint of an interrupted run continues the same loss curve, bit for bit,
// with a stateful router (loss-free bias) and gradient accumulation.
TEST(Trainer, ResumeEqualsUninterrupted) {
  const test::TempDir dir("sy_trainer");
  TrainConfig a = tiny_config(dir.str() + "/a", "loss_free");
  a.train.grad_accum = 2;
  a.train.steps = 10;
  TrainConfig b = a;
  b.output.dir = dir.str() + "/b";
  run_training(a);
  TrainHooks stop;
  stop.stop_after = 4;
  const TrainResult first = run_training(b, stop);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.steps, 4);
  EXPECT_TRUE(has_training_state(first.checkpoint_dir));
  EXPECT_FALSE(fs::exists(first.model_dir));
  stop.stop_after = 3;  // a second interruption
  EXPECT_EQ(run_training(b, stop).steps, 7);
  const TrainResult resumed = run_training(b);
  EXPECT_EQ(resumed.start_step, 7);
  EXPECT_EQ(resumed.steps, 10);

  EXPECT_EQ(timeless(read_log(a.output.dir)), timeless(read_log(b.output.dir)));
  for (const char* f : {"checkpoint/model.safetensors", "checkpoint/optimizer.safetensors",
                        "model/model.safetensors"}) {
    EXPECT_EQ(io::read_file(a.output.dir + "/" + f), io::read_file(b.output.dir + "/" + f)) << f;
  }
  // The loss-free bias moved (it is part of what resumed exactly).
  const std::unique_ptr<MoeLm> m = load_model(a.output.dir + "/model");
  bool moved = false;
  for (const Param* p : m->buffers()) {
    for (int64_t i = 0; i < p->value.numel(); ++i) moved |= p->value.data<float>()[i] != 0.0f;
  }
  EXPECT_TRUE(moved);
}

// Gradient accumulation averages: 2 micro-batches of 4 sequences give the first step of one
// batch of 8 (the same 8 sequences: one shuffled order), up to rounding.
TEST(Trainer, GradAccumMatchesTheLargerBatch) {
  const test::TempDir dir("sy_trainer");
  TrainConfig a = tiny_config(dir.str() + "/a");
  a.model.moe.router_options = {{"aux_loss_coeff", 0.0}};  // a per-batch statistic
  a.train.steps = 3;
  TrainConfig b = a;
  b.output.dir = dir.str() + "/b";
  b.train.batch_size = 8;
  a.train.grad_accum = 2;
  run_training(a);
  run_training(b);
  const std::vector<json> la = read_log(a.output.dir), lb = read_log(b.output.dir);
  for (const char* key : {"loss", "grad_norm"}) {
    EXPECT_NEAR(la[0][key].get<double>(), lb[0][key].get<double>(), 1e-5 * lb[0][key].get<double>())
        << key;
  }
  EXPECT_EQ(la[0]["tokens"], lb[0]["tokens"]);
}

TEST(Trainer, NonFiniteStepsAreSkippedThenStop) {
  const test::TempDir dir("sy_trainer");
  TrainConfig c = tiny_config(dir.str() + "/run");
  c.train.steps = 20;
  c.train.max_bad_steps = 3;
  c.output.save_every = 1;
  // One bad step: skipped, the rest of the run goes on.
  TrainHooks one;
  one.after_backward = [](MoeLm& m, int64_t step) {
    if (step == 2) m.params()[0]->grad.mutable_data<float>()[5] = NAN;
  };
  c.train.steps = 5;
  const TrainResult r = run_training(c, one);
  EXPECT_EQ(r.skipped, 1);
  std::vector<json> log = read_log(c.output.dir);
  EXPECT_TRUE(log[2]["skipped"].get<bool>());
  EXPECT_TRUE(log[2]["grad_norm"].is_null());
  EXPECT_FALSE(log[3]["skipped"].get<bool>());

  // From step 4 on, every step is bad: the third in a row stops the run; the checkpoint of the
  // last good step is intact.
  TrainConfig d = c;
  d.output.dir = dir.str() + "/bad";
  d.train.steps = 20;
  TrainHooks many;
  many.after_backward = [](MoeLm& m, int64_t step) {
    if (step >= 4) m.params()[1]->grad.mutable_data<float>()[0] = INFINITY;
  };
  const std::string msg = error_of([&] { run_training(d, many); });
  EXPECT_EQ(msg, d.output.dir +
                     ": stopped at step 7: 3 steps in a row had a non-finite loss or "
                     "gradient (last: loss " +
                     fmt::format("{}", read_log(d.output.dir).back()["loss"].get<double>()) +
                     ", grad norm inf); the last checkpoint (" + d.output.dir +
                     "/checkpoint) is intact");
  const TrainingState state = load_training_state(d.output.dir + "/checkpoint");
  EXPECT_EQ(state.trainer["step"], 4);
}

TEST(Trainer, RefusesToResumeAnotherRunOrACorruptCheckpoint) {
  const test::TempDir dir("sy_trainer");
  TrainConfig c = tiny_config(dir.str() + "/run");
  TrainHooks stop;
  stop.stop_after = 2;
  run_training(c, stop);
  TrainConfig other = c;
  other.model.moe.expert_ffn = 48;
  EXPECT_EQ(error_of([&] { run_training(other); }),
            c.output.dir +
                "/checkpoint/trainer_state.json: cannot resume: model.moe is "
                "{\"allow_non_causal\":false,\"capacity_factor\":0.0,\"drop_policy\":\"position\","
                "\"expert_ffn\":48,\"num_experts\":4,\"router\":\"topk_softmax\","
                "\"router_options\":{},\"shared_experts\":0,\"shared_ffn\":0,\"shared_gate\":"
                "false,\"top_k\":2} in this config but "
                "{\"allow_non_causal\":false,\"capacity_factor\":0.0,\"drop_policy\":\"position\","
                "\"expert_ffn\":32,\"num_experts\":4,\"router\":\"topk_softmax\","
                "\"router_options\":{},\"shared_experts\":0,\"shared_ffn\":0,\"shared_gate\":"
                "false,\"top_k\":2} in the saved run; use a new output.dir or the same settings");
  // A trainer state edited by hand: its step must be an integer (a string threw json
  // type_error 302 from the resume, a float past int64_t's range was undefined).
  const std::string state = c.output.dir + "/checkpoint/trainer_state.json";
  const std::string saved = io::read_file(state);
  nlohmann::json edited = nlohmann::json::parse(saved);
  edited["trainer"]["step"] = 1e300;
  io::write_file_atomic(state, edited.dump());
  EXPECT_EQ(error_of([&] { run_training(c); }),
            state + ": key 'trainer.step' is 1e+300, expected an integer >= 0");
  io::write_file_atomic(state, saved);
  // A log line from elsewhere at the final step (its "event" not a string) is dropped on resume
  // like any line past the checkpoint; reading its event threw json type_error 302.
  const std::string log = c.output.dir + "/train.jsonl";
  io::write_file_atomic(log, io::read_file(log) + R"({"step":12,"event":5})" + "\n");
  run_training(c);
  for (const json& line : read_log(c.output.dir)) EXPECT_NE(line.value("event", json()), 5);
  // A flipped byte in the optimizer state: refused by its recorded hash, naming the file.
  const std::string opt = c.output.dir + "/checkpoint/optimizer.safetensors";
  std::string bytes = io::read_file(opt);
  bytes[bytes.size() - 3] ^= 0x10;
  io::write_file_atomic(opt, bytes);
  const std::string msg = error_of([&] { run_training(c); });
  EXPECT_NE(msg.find(opt), std::string::npos) << msg;
}

TEST(Trainer, TrainsItsOwnTokenizer) {
  const test::TempDir dir("sy_trainer");
  TrainConfig c = tiny_config(dir.str() + "/run");
  c.data.tokenizer.clear();
  c.train.steps = 3;
  const TrainResult r = run_training(c);
  // Trained on the training documents only: the same bytes as training on them directly.
  std::vector<std::string> docs = read_documents(corpus().text);
  std::vector<std::string> train_docs;
  for (const int64_t i : split_documents(static_cast<int64_t>(docs.size()), 0.2).train) {
    train_docs.push_back(docs[static_cast<size_t>(i)]);
  }
  // (The model records the thread count it was trained with.)
  const std::string want =
      train_sentencepiece(train_docs, {.vocab_size = 400, .num_threads = num_threads()});
  EXPECT_TRUE(io::read_file(c.output.dir + "/tokenizer.model") == want);
  EXPECT_TRUE(io::read_file(r.model_dir + "/tokenizer.model") == want);
}

}  // namespace
}  // namespace sy::train
