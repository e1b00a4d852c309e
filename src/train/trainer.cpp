#include "train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/tokenizer/tokenizer.h"
#include "moe/balance.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace sy::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kLogFile = "train.jsonl";
constexpr const char* kConfigFile = "train_config.json";
constexpr const char* kTokenizerFile = "tokenizer.model";

double clean(double v) { return std::isfinite(v) ? v : NAN; }  // NaN dumps as null

// "model.layers.3.mlp.remoe.l1_coeff" -> "remoe.l1_coeff".
std::string short_buffer_name(const std::string& name) {
  const size_t pos = name.find(".mlp.");
  return pos == std::string::npos ? name : name.substr(pos + 5);
}

json layers_json(const std::vector<LayerSummary>& layers) {
  json out = json::array();
  for (const LayerSummary& l : layers) out.push_back(l.to_json());
  return out;
}

// The tokenizer files every checkpoint of the run carries.
std::vector<std::pair<std::string, std::string>> tokenizer_files(const std::string& model_bytes,
                                                                 int64_t seq_len) {
  const json config = {{"tokenizer_class", "LlamaTokenizer"},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"add_bos_token", true},
                       {"add_eos_token", false},
                       {"model_max_length", seq_len}};
  return {{kTokenizerFile, model_bytes}, {"tokenizer_config.json", config.dump(2) + "\n"}};
}

// Cross-entropy per target token of a unigram model (add-one counts of the training stream):
// the baseline the trained model's perplexity is compared with.
double unigram_loss(const PackedSequences& train, const PackedSequences& validation,
                    int64_t vocab) {
  std::vector<double> counts(static_cast<size_t>(vocab), 1.0);
  double total = static_cast<double>(vocab);
  for (const int32_t t : train.stream()) {
    counts[static_cast<size_t>(t)] += 1.0;
    total += 1.0;
  }
  double loss = 0.0;
  int64_t n = 0;
  std::vector<int32_t> tokens(static_cast<size_t>(validation.seq_len()));
  std::vector<int32_t> targets(tokens.size());
  for (int64_t i = 0; i < validation.size(); ++i) {
    validation.copy(i, tokens.data(), targets.data());
    for (const int32_t t : targets) {
      loss -= std::log(counts[static_cast<size_t>(t)] / total);
      ++n;
    }
  }
  return n > 0 ? loss / static_cast<double>(n) : NAN;
}

// The same config up to what may change between invocations of one run (its length and the
// output settings); names the first differing key.
void check_resumable(const json& saved, const json& now, const std::string& where) {
  for (const char* section : {"model", "data", "train", "optim"}) {
    const json& a = saved.at(section);
    const json& b = now.at(section);
    for (const auto& item : b.items()) {
      const std::string& key = item.key();
      if (std::string(section) == "train" && (key == "steps" || key == "tokens")) continue;
      const json& before = a.contains(key) ? a.at(key) : json();
      SY_CHECK(before == item.value(),
               "{}: cannot resume: {}.{} is {} in this config but {} in the saved run; use a new "
               "output.dir or the same settings",
               where, section, key, item.value().dump(), before.dump());
    }
  }
}

// Keeps the log lines written before the checkpoint of `step` (a resumed run rewrites what came
// after): those of earlier steps, and the step's own line and mid-run evaluation, which come
// before its checkpoint. The final evaluation (step == total) comes after the last checkpoint, so
// running a finished run again writes it once more in its place instead of adding a second one.
void truncate_log(const std::string& path, int64_t step, int64_t total) {
  if (!fs::exists(path)) return;
  std::istringstream in(io::read_file(path));
  std::string kept, line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    const int64_t at = j["step"].get<int64_t>();
    const bool final_eval = at == total && j.contains("event") && j["event"] == "eval";
    if (at < step || (at == step && !final_eval)) kept += line + "\n";
  }
  io::write_file_atomic(path, kept);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s / 60) % 60);
  return fmt::format("{}m{:02d}s", s / 60, s % 60);
}

class ProgressBar {
 public:
  ProgressBar(std::FILE* out, int64_t total) : out_(out), total_(total) {}
  void update(int64_t step, double loss, double tokens_per_s, double eta_s) {
    if (out_ == nullptr) return;
    const auto now = std::chrono::steady_clock::now();
    if (step < total_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    constexpr int kWidth = 24;
    const double frac = static_cast<double>(step) / static_cast<double>(total_);
    const int filled = static_cast<int>(frac * kWidth);
    fmt::print(out_, "\r{:>6}/{} [{}{}] {:3.0f}% loss {:.4f} {:.0f} tok/s ETA {}   ", step, total_,
               std::string(static_cast<size_t>(filled), '#'),
               std::string(static_cast<size_t>(kWidth - filled), '.'), 100.0 * frac, loss,
               tokens_per_s, format_duration(eta_s));
    std::fflush(out_);
  }
  void finish() {
    if (out_ != nullptr) {
      fmt::print(out_, "\n");
      std::fflush(out_);
    }
  }

 private:
  std::FILE* out_;
  int64_t total_;
  std::chrono::steady_clock::time_point last_{};
};

uint64_t step_seed(uint64_t seed, int64_t step, int64_t micro) {
  // splitmix64-style mixing of (seed, step, micro): distinct streams per micro-batch.
  uint64_t x = seed ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(step + 1)) ^
               (0xbf58476d1ce4e5b9ull * static_cast<uint64_t>(micro + 1));
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Data {
  std::string tokenizer_bytes;
  Dataset dataset;
  int32_t bos = 1;
};

Data prepare_data(const TrainConfig& config, const fs::path& run_dir, bool resuming) {
  std::vector<std::string> documents;
  for (const std::string& file : config.data.files) {
    std::vector<std::string> d = read_documents(file);
    documents.insert(documents.end(), std::make_move_iterator(d.begin()),
                     std::make_move_iterator(d.end()));
  }
  const fs::path tok_path = run_dir / kTokenizerFile;
  if (!config.data.tokenizer.empty()) {
    io::write_file_atomic(tok_path.string(), io::read_file(config.data.tokenizer));
  } else if (!(resuming && fs::exists(tok_path))) {
    const DocumentSplit split =
        split_documents(static_cast<int64_t>(documents.size()), config.data.validation_fraction);
    std::vector<std::string> train_docs;
    train_docs.reserve(split.train.size());
    for (const int64_t i : split.train) train_docs.push_back(documents[static_cast<size_t>(i)]);
    log_info("training a {}-piece SentencePiece tokenizer on {} documents", config.model.vocab_size,
             train_docs.size());
    train_tokenizer(train_docs, tok_path.string(),
                    {.vocab_size = static_cast<int32_t>(config.model.vocab_size),
                     .max_sentences = config.data.tokenizer_sentences,
                     .num_threads = num_threads()});
  }
  Data data;
  data.tokenizer_bytes = io::read_file(tok_path.string());
  const std::unique_ptr<io::Tokenizer> tokenizer = io::load_tokenizer(tok_path.string());
  SY_CHECK(tokenizer->vocab_size() <= config.model.vocab_size,
           "{}: the tokenizer has {} tokens, more than model.vocab_size = {}", tok_path.string(),
           tokenizer->vocab_size(), config.model.vocab_size);
  SY_CHECK(tokenizer->bos_id().has_value(), "{}: the tokenizer has no BOS token",
           tok_path.string());
  data.bos = *tokenizer->bos_id();
  data.dataset = build_dataset(
      tokenize_documents(*tokenizer, documents), data.bos,
      {.seq_len = config.model.seq_len, .validation_fraction = config.data.validation_fraction});
  SY_CHECK(data.dataset.train.size() >= config.train.batch_size,
           "{}: {} training sequences of {} tokens, fewer than train.batch_size = {}",
           fmt::join(config.data.files, ", "), data.dataset.train.size(), config.model.seq_len,
           config.train.batch_size);
  SY_CHECK(data.dataset.validation.size() >= 1,
           "{}: the held-out documents make no sequence of {} tokens; raise "
           "data.validation_fraction or lower model.seq_len",
           fmt::join(config.data.files, ", "), config.model.seq_len);
  return data;
}

}  // namespace

json LayerSummary::to_json() const {
  json aux_j = json::object(), state_j = json::object();
  for (const auto& [name, v] : aux) aux_j[name] = clean(v);
  for (const auto& [name, v] : state) state_j[name] = clean(v);
  return {{"layer", layer},
          {"load", load},
          {"max_vio", clean(max_vio)},
          {"load_cv", clean(load_cv)},
          {"dropped", clean(dropped)},
          {"entropy", clean(entropy)},
          {"active_per_token", clean(active_per_token)},
          {"aux", aux_j},
          {"state", state_j}};
}

void add_layer_stats(const MoeLm& model, std::vector<LayerSummary>& sums) {
  const std::vector<LmLayerStats>& layers = model.stats().layers;
  if (sums.empty()) sums.resize(layers.size());
  SY_CHECK(sums.size() == layers.size(), "trainer: {} MoE layers in the stats, {} expected",
           layers.size(), sums.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const moe::RouterStats& r = layers[i].router;
    LayerSummary& s = sums[i];
    s.layer = layers[i].layer;
    if (s.load.empty()) s.load.assign(r.tokens_per_expert.size(), 0);
    for (size_t e = 0; e < s.load.size() && e < r.tokens_per_expert.size(); ++e) {
      s.load[e] += r.tokens_per_expert[e];
    }
    s.dropped += r.dropped_fraction;
    s.entropy += r.entropy;  // NaN stays NaN: the router reports none
    s.active_per_token +=
        r.tokens > 0 ? static_cast<double>(r.kept) / static_cast<double>(r.tokens) : 0.0;
    for (const moe::AuxLoss& loss : r.losses) {
      auto it = std::find_if(s.aux.begin(), s.aux.end(),
                             [&](const auto& a) { return a.first == loss.name; });
      if (it == s.aux.end()) {
        s.aux.emplace_back(loss.name, loss.value);
      } else {
        it->second += loss.value;
      }
    }
  }
}

void finish_layer_summaries(MoeLm& model, int64_t forwards, std::vector<LayerSummary>& sums) {
  const double n = static_cast<double>(std::max<int64_t>(1, forwards));
  const std::vector<moe::MoeLayer*> layers = model.moe_layers();
  for (size_t i = 0; i < sums.size(); ++i) {
    LayerSummary& s = sums[i];
    s.dropped /= n;
    s.entropy /= n;
    s.active_per_token /= n;
    for (auto& a : s.aux) a.second /= n;
    const moe::LoadBalance b = moe::load_balance(s.load);
    s.max_vio = b.max_vio;
    s.load_cv = b.load_cv;
    s.state.clear();
    if (i < layers.size()) {
      for (const Param* p : layers[i]->buffers()) {
        if (p->value.numel() == 1) {
          s.state.emplace_back(short_buffer_name(p->name),
                               static_cast<double>(p->value.data<float>()[0]));
        }
      }
    }
  }
}

EvalResult evaluate(MoeLm& model, const PackedSequences& data, int64_t batch_size,
                    int64_t max_batches) {
  SY_CHECK(batch_size >= 1, "evaluate: batch_size = {}, expected >= 1", batch_size);
  EvalResult r;
  double loss_sum = 0.0;
  int64_t forwards = 0;
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    if (max_batches > 0 && forwards >= max_batches) break;
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(data.size(), start + batch_size); ++i) idx.push_back(i);
    const Batch b = data.batch(idx);
    // Routers that draw random numbers (random routing) draw them in inference too: a fixed
    // seed per batch keeps the evaluation deterministic.
    Rng rng(0x5eed0000ull + static_cast<uint64_t>(forwards));
    model.forward_backward(b.tokens, b.targets, &rng, /*backward=*/false);
    const LmStats& s = model.stats();
    loss_sum += s.ce * static_cast<double>(s.valid_tokens);
    r.tokens += s.valid_tokens;
    add_layer_stats(model, r.layers);
    ++forwards;
  }
  finish_layer_summaries(model, forwards, r.layers);
  r.loss = r.tokens > 0 ? loss_sum / static_cast<double>(r.tokens) : NAN;
  r.ppl = std::exp(r.loss);
  return r;
}

TrainResult run_training(const TrainConfig& config, const TrainHooks& hooks) {
  config.validate();
  const fs::path run_dir(config.output.dir);
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  SY_CHECK(!ec, "{}: cannot create the run folder: {}", run_dir.string(), ec.message());
  const std::string ckpt_dir = (run_dir / "checkpoint").string();
  const std::string model_dir = (run_dir / "model").string();
  const std::string log_path = (run_dir / kLogFile).string();
  const bool resuming = has_training_state(ckpt_dir);
  const json config_json = config.to_json();

  // A resumed run must be the same run: checked before the data work.
  TrainingState saved;
  const std::string state_where = ckpt_dir + "/trainer_state.json";
  if (resuming) {
    saved = load_training_state(ckpt_dir);
    const json& t = saved.trainer;
    SY_CHECK(t.contains("config") && t.contains("step") && t.contains("iterator") &&
                 t.contains("tokens"),
             "{}: not a switchyard trainer state (expected keys config, step, iterator, tokens)",
             state_where);
    for (const char* key : {"step", "tokens"}) {
      const json& v = t.at(key);
      SY_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0,
               "{}: key 'trainer.{}' is {}, expected an integer >= 0", state_where, key,
               v.dump().substr(0, 40));
    }
    check_resumable(t.at("config"), config_json, state_where);
  }

  TrainResult result;
  result.checkpoint_dir = ckpt_dir;
  result.model_dir = model_dir;
  const Data data = prepare_data(config, run_dir, resuming);
  const Dataset& ds = data.dataset;
  const auto files = tokenizer_files(data.tokenizer_bytes, config.model.seq_len);

  std::unique_ptr<MoeLm> model;
  BatchIterator batches(ds.train, config.train.batch_size, config.train.seed);
  int64_t step = 0;
  int64_t tokens_seen = 0;
  std::unique_ptr<AdamW> optimizer;
  if (resuming) {
    const json& t = saved.trainer;
    model = load_model(ckpt_dir);
    optimizer = std::make_unique<AdamW>(model->params(), config.optim.adamw);
    optimizer->load_state(saved.optimizer, ckpt_dir + "/optimizer.safetensors");
    batches.restore(BatchIteratorState::from_json(t.at("iterator"), state_where), state_where);
    step = t.at("step").get<int64_t>();
    tokens_seen = t.at("tokens").get<int64_t>();
    truncate_log(log_path, step, config.total_steps());
    log_info("resuming {} at step {} ({} tokens)", run_dir.string(), step, tokens_seen);
  } else {
    model = std::make_unique<MoeLm>(config.model);
    Rng init_rng(config.train.seed);
    model->init(init_rng);
    optimizer = std::make_unique<AdamW>(model->params(), config.optim.adamw);
    io::write_file_atomic(log_path, "");
  }
  io::write_file_atomic((run_dir / kConfigFile).string(), config_json.dump(2) + "\n");
  result.start_step = step;
  result.non_causal = model->non_causal();

  const LrSchedule schedule(config.schedule_options());
  const int64_t total = config.total_steps();
  const std::vector<Param*> params = model->params();
  const std::vector<Param*> buffers = model->buffers();
  const LmParamCount counts = count_params(config.model);
  log_info(
      "{}: {} parameters ({} active per token), {} training / {} validation sequences of {}, "
      "{} steps of {} tokens",
      run_dir.string(), counts.total, counts.active, ds.train.size(), ds.validation.size(),
      config.model.seq_len, total, config.tokens_per_step());

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(std::fopen(log_path.c_str(), "ab"),
                                                      &std::fclose);
  SY_CHECK(log != nullptr, "{}: cannot open for appending", log_path);
  auto write_log = [&](const json& j) {
    const std::string line = j.dump() + "\n";
    SY_CHECK(std::fwrite(line.data(), 1, line.size(), log.get()) == line.size() &&
                 std::fflush(log.get()) == 0,
             "{}: cannot write", log_path);
    if (hooks.on_log) hooks.on_log(j);
  };
  auto save_checkpoint = [&] {
    TrainingState state;
    state.optimizer = optimizer->state();
    state.trainer = {{"config", config_json},
                     {"step", step},
                     {"tokens", tokens_seen},
                     {"iterator", batches.state().to_json()}};
    save_model(*model, ckpt_dir, {.dtype = DType::F32, .extra_files = files}, &state);
  };
  auto run_eval = [&] {
    EvalResult e =
        evaluate(*model, ds.validation, config.train.batch_size, config.output.eval_batches);
    write_log({{"event", "eval"},
               {"step", step},
               {"tokens", tokens_seen},
               {"val_loss", clean(e.loss)},
               {"val_ppl", clean(e.ppl)},
               {"layers", layers_json(e.layers)}});
    return e;
  };

  const bool show_bar =
      config.output.progress == "on" || (config.output.progress == "auto" && hooks.progress_is_tty);
  ProgressBar bar(show_bar ? hooks.progress : nullptr, total);
  const auto t_start = std::chrono::steady_clock::now();
  int64_t tokens_this_run = 0;
  int64_t bad_streak = 0;
  int64_t steps_this_run = 0;
  const int64_t accum = config.train.grad_accum;
  std::vector<Tensor> buffer_snapshot(buffers.size());
  while (step < total) {
    if ((hooks.should_stop && hooks.should_stop()) ||
        (hooks.stop_after > 0 && steps_this_run >= hooks.stop_after)) {
      result.interrupted = true;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < buffers.size(); ++i) buffer_snapshot[i] = buffers[i]->value.clone();
    model->zero_grad();
    double loss = 0.0, ce = 0.0, aux = 0.0;
    std::vector<LayerSummary> layers;
    for (int64_t m = 0; m < accum; ++m) {
      const Batch b = batches.next();
      Rng rng(step_seed(config.train.seed, step, m));
      loss += model->forward_backward(b.tokens, b.targets, &rng, /*backward=*/true);
      ce += model->stats().ce;
      aux += model->stats().aux;
      add_layer_stats(*model, layers);
    }
    finish_layer_summaries(*model, accum, layers);
    loss /= static_cast<double>(accum);
    ce /= static_cast<double>(accum);
    aux /= static_cast<double>(accum);
    if (accum > 1) {
      const float scale = 1.0f / static_cast<float>(accum);
      for (Param* p : params) {
        float* g = p->grad.mutable_data<float>();
        for (int64_t i = 0; i < p->grad.numel(); ++i) g[i] *= scale;
      }
    }
    if (hooks.after_backward) hooks.after_backward(*model, step);
    const GradNorm gn = clip_grad_norm(params, config.optim.grad_clip);
    const double lr = schedule.lr(step);
    const bool finite = std::isfinite(loss) && gn.finite();
    model->end_step();  // also clears what the routers gathered for a skipped step
    if (finite) {
      optimizer->step(lr);
      bad_streak = 0;
    } else {
      for (size_t i = 0; i < buffers.size(); ++i) {
        std::memcpy(buffers[i]->value.mutable_data<float>(), buffer_snapshot[i].data<float>(),
                    static_cast<size_t>(buffer_snapshot[i].numel()) * sizeof(float));
      }
      ++result.skipped;
      ++bad_streak;
      log_warn("step {}: non-finite {} (loss {}, grad norm {}); skipped", step + 1,
               std::isfinite(loss) ? "gradient" : "loss", loss, gn.norm);
    }
    ++step;
    ++steps_this_run;
    const int64_t step_tokens = config.tokens_per_step();
    tokens_seen += step_tokens;
    tokens_this_run += step_tokens;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const double tps = static_cast<double>(tokens_this_run) / elapsed;
    if (step % config.output.log_every == 0 || !finite || step == total) {
      write_log({{"event", "step"},
                 {"step", step},
                 {"tokens", tokens_seen},
                 {"loss", clean(loss)},
                 {"ce", clean(ce)},
                 {"aux", clean(aux)},
                 {"lr", lr},
                 {"grad_norm", clean(gn.norm)},
                 {"clipped", gn.scale < 1.0},
                 {"skipped", !finite},
                 {"step_s", dt},
                 {"tokens_per_s", tps},
                 {"layers", layers_json(layers)}});
    }
    if (bad_streak >= config.train.max_bad_steps) {
      bar.finish();
      fail(
          "{}: stopped at step {}: {} steps in a row had a non-finite loss or gradient (last: "
          "loss {}, grad norm {}); {}",
          run_dir.string(), step, bad_streak, loss, gn.norm,
          has_training_state(ckpt_dir) ? fmt::format("the last checkpoint ({}) is intact", ckpt_dir)
                                       : std::string("no checkpoint was saved before"));
    }
    bar.update(step, loss, tps,
               elapsed / static_cast<double>(steps_this_run) * static_cast<double>(total - step));
    if (config.output.eval_every > 0 && step % config.output.eval_every == 0 && step < total) {
      run_eval();
    }
    if (finite && config.output.save_every > 0 && step % config.output.save_every == 0 &&
        step < total) {
      save_checkpoint();
    }
  }
  bar.finish();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  result.tokens_per_s = elapsed > 0 ? static_cast<double>(tokens_this_run) / elapsed : 0.0;
  result.steps = step;
  save_checkpoint();
  if (result.interrupted) {
    log_info("stopped at step {}: checkpoint saved to {}", step, ckpt_dir);
    return result;
  }
  result.final_eval = run_eval();
  const double unigram = unigram_loss(ds.train, ds.validation, config.model.vocab_size);
  auto final_files = files;
  final_files.emplace_back("training_summary.json",
                           json({{"steps", step},
                                 {"tokens", tokens_seen},
                                 {"parameters", counts.total},
                                 {"active_parameters", counts.active},
                                 {"val_loss", clean(result.final_eval.loss)},
                                 {"val_ppl", clean(result.final_eval.ppl)},
                                 {"val_tokens", result.final_eval.tokens},
                                 {"unigram_val_loss", clean(unigram)},
                                 {"unigram_val_ppl", clean(std::exp(unigram))},
                                 {"train_config", config_json}})
                                   .dump(2) +
                               "\n");
  save_model(*model, model_dir, {.dtype = config.save_dtype(), .extra_files = final_files});
  log_info(
      "done: {} steps, validation loss {:.4f} (perplexity {:.2f}; unigram baseline {:.2f}); "
      "model saved to {}",
      step, result.final_eval.loss, result.final_eval.ppl, std::exp(unigram), model_dir);
  return result;
}

}  // namespace sy::train
