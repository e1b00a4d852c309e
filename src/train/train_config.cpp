#include "train/train_config.h"

#include <cmath>

#include "core/error.h"
#include "io/config_file.h"
#include "train/json_keys.h"

namespace sy::train {

int64_t TrainConfig::total_steps() const {
  if (train.steps > 0) return train.steps;
  const int64_t per_step = tokens_per_step();
  return per_step > 0 ? (train.tokens + per_step - 1) / per_step : 0;
}

ScheduleOptions TrainConfig::schedule_options() const {
  ScheduleOptions s;
  s.kind = schedule_kind_from_name(optim.schedule);
  s.lr = optim.lr;
  s.min_lr = optim.min_lr;
  s.warmup_steps = optim.warmup_steps;
  s.total_steps = total_steps();
  s.decay_fraction = optim.decay_fraction;
  s.decay_shape = decay_shape_from_name(optim.decay_shape);
  return s;
}

DType TrainConfig::save_dtype() const { return dtype_from_name(output.save_dtype); }

void TrainConfig::validate() const {
  constexpr const char* w = "train config";
  model.validate();
  SY_CHECK(!data.files.empty(), "{}: data.files is empty, expected at least one text/JSONL file",
           w);
  SY_CHECK(data.tokenizer_sentences >= 0, "{}: data.tokenizer_sentences = {}, expected >= 0", w,
           data.tokenizer_sentences);
  SY_CHECK(data.validation_fraction > 0.0 && data.validation_fraction < 1.0,
           "{}: data.validation_fraction = {}, expected in (0, 1)", w, data.validation_fraction);
  SY_CHECK(train.batch_size >= 1, "{}: train.batch_size = {}, expected >= 1", w, train.batch_size);
  SY_CHECK(train.grad_accum >= 1, "{}: train.grad_accum = {}, expected >= 1", w, train.grad_accum);
  SY_CHECK(train.steps >= 0 && train.tokens >= 0,
           "{}: train.steps = {} and train.tokens = {}, expected >= 0", w, train.steps,
           train.tokens);
  SY_CHECK(total_steps() >= 1,
           "{}: neither train.steps nor train.tokens is set (one of them must be > 0)", w);
  SY_CHECK(train.max_bad_steps >= 1, "{}: train.max_bad_steps = {}, expected >= 1", w,
           train.max_bad_steps);
  SY_CHECK(std::isfinite(optim.grad_clip), "{}: optim.grad_clip = {}, expected a number", w,
           optim.grad_clip);
  (void)LrSchedule(schedule_options());  // names the bad schedule field
  (void)AdamW({}, optim.adamw);          // names the bad AdamW option
  SY_CHECK(!output.dir.empty(), "{}: output.dir is empty, expected the run folder", w);
  SY_CHECK(output.log_every >= 1, "{}: output.log_every = {}, expected >= 1", w, output.log_every);
  SY_CHECK(output.eval_every >= 0 && output.eval_batches >= 0 && output.save_every >= 0,
           "{}: output.eval_every, eval_batches and save_every must be >= 0", w);
  const DType d = save_dtype();
  SY_CHECK(d == DType::F32 || d == DType::BF16 || d == DType::F16,
           "{}: output.save_dtype = '{}', expected f32, bf16 or f16", w, output.save_dtype);
  SY_CHECK(output.progress == "auto" || output.progress == "on" || output.progress == "off",
           "{}: output.progress = '{}', expected auto, on or off", w, output.progress);
}

nlohmann::json TrainConfig::to_json() const {
  return {{"model", model.to_json()},
          {"data",
           {{"files", data.files},
            {"tokenizer", data.tokenizer},
            {"tokenizer_sentences", data.tokenizer_sentences},
            {"validation_fraction", data.validation_fraction}}},
          {"train",
           {{"batch_size", train.batch_size},
            {"grad_accum", train.grad_accum},
            {"steps", train.steps},
            {"tokens", train.tokens},
            {"seed", train.seed},
            {"max_bad_steps", train.max_bad_steps}}},
          {"optim",
           {{"lr", optim.lr},
            {"min_lr", optim.min_lr},
            {"schedule", optim.schedule},
            {"warmup_steps", optim.warmup_steps},
            {"decay_fraction", optim.decay_fraction},
            {"decay_shape", optim.decay_shape},
            {"beta1", optim.adamw.beta1},
            {"beta2", optim.adamw.beta2},
            {"eps", optim.adamw.eps},
            {"weight_decay", optim.adamw.weight_decay},
            {"grad_clip", optim.grad_clip}}},
          {"output",
           {{"dir", output.dir},
            {"log_every", output.log_every},
            {"eval_every", output.eval_every},
            {"eval_batches", output.eval_batches},
            {"save_every", output.save_every},
            {"save_dtype", output.save_dtype},
            {"progress", output.progress}}}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& source) {
  const std::string where = source.empty() ? "train config" : source;
  TrainConfig c;
  KeyReader r(where, j, "");
  if (const nlohmann::json* m = r.find("model")) {
    try {
      c.model = LmConfig::from_json(*m);
    } catch (const Error& e) {
      fail("{}: [model] {}", where, e.what());
    }
  } else {
    fail("{}: no [model] section (the model to train)", where);
  }
  if (const nlohmann::json* d = r.find("data")) {
    KeyReader s(where, *d, "data.");
    s.read("files", c.data.files);
    s.read("tokenizer", c.data.tokenizer);
    s.read("tokenizer_sentences", c.data.tokenizer_sentences);
    s.read("validation_fraction", c.data.validation_fraction);
    s.finish();
  }
  if (const nlohmann::json* t = r.find("train")) {
    KeyReader s(where, *t, "train.");
    s.read("batch_size", c.train.batch_size);
    s.read("grad_accum", c.train.grad_accum);
    s.read("steps", c.train.steps);
    s.read("tokens", c.train.tokens);
    s.read("seed", c.train.seed);
    s.read("max_bad_steps", c.train.max_bad_steps);
    s.finish();
  }
  if (const nlohmann::json* o = r.find("optim")) {
    KeyReader s(where, *o, "optim.");
    s.read("lr", c.optim.lr);
    s.read("min_lr", c.optim.min_lr);
    s.read("schedule", c.optim.schedule);
    s.read("warmup_steps", c.optim.warmup_steps);
    s.read("decay_fraction", c.optim.decay_fraction);
    s.read("decay_shape", c.optim.decay_shape);
    s.read("beta1", c.optim.adamw.beta1);
    s.read("beta2", c.optim.adamw.beta2);
    s.read("eps", c.optim.adamw.eps);
    s.read("weight_decay", c.optim.adamw.weight_decay);
    s.read("grad_clip", c.optim.grad_clip);
    s.finish();
  }
  if (const nlohmann::json* o = r.find("output")) {
    KeyReader s(where, *o, "output.");
    s.read("dir", c.output.dir);
    s.read("log_every", c.output.log_every);
    s.read("eval_every", c.output.eval_every);
    s.read("eval_batches", c.output.eval_batches);
    s.read("save_every", c.output.save_every);
    s.read("save_dtype", c.output.save_dtype);
    s.read("progress", c.output.progress);
    s.finish();
  }
  r.finish();
  try {
    c.validate();
  } catch (const Error& e) {
    const std::string msg = e.what();
    // validate() says "train config: ..."; name the file instead.
    const std::string prefix = "train config: ";
    fail("{}: {}", where, msg.rfind(prefix, 0) == 0 ? msg.substr(prefix.size()) : msg);
  }
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json j = io::read_config_file(path);
  for (const std::string& o : overrides) io::apply_override(j, o);
  return TrainConfig::from_json(j, path);
}

}  // namespace sy::train
