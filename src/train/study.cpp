// `switchyard study`: the model, each router's recommended settings, the runs and the files.
// The summary's JSON form, the ordering sentences and report.md are in study_report.cpp.
#include "train/study.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "moe/routing/router.h"
#include "train/data.h"
#include "train/trainer.h"

namespace sy::train {

namespace fs = std::filesystem;

StudyModel study_model(bool quick) {
  if (quick) {
    // A few seconds per run on two threads: every router of both variants in a few minutes.
    return {.vocab = 384,
            .d_model = 32,
            .layers = 2,
            .heads = 2,
            .seq = 32,
            .batch = 4,
            .variants = {{"e8k2", 8, 2, 32}, {"e32k8", 32, 8, 8}}};
  }
  // 17.7M parameters, 8.3M active per token (e8k2; e32k8 the same up to its router).
  return {.vocab = 8000,
          .d_model = 256,
          .layers = 4,
          .heads = 4,
          .seq = 256,
          .batch = 8,
          .variants = {{"e8k2", 8, 2, 512}, {"e32k8", 32, 8, 128}}};
}

nlohmann::json study_router_options(const std::string& router, const StudyVariant& v) {
  using nlohmann::json;
  const int64_t e = v.experts, k = v.top_k;
  if (router == "topk_softmax") {
    // Switch/OLMoE balance loss 0.01, ST-MoE/OLMoE z-loss 1e-3; Mixtral's renormalised top-k.
    return {{"aux_loss_coeff", 0.01}, {"z_loss_coeff", 1e-3}, {"normalize", true}};
  }
  if (router == "switch") return {{"aux_loss_coeff", 0.01}, {"jitter_eps", 0.01}};
  if (router == "loss_free") return {{"score", "sigmoid"}, {"bias_update_rate", 1e-3}};
  if (router == "deepseek") {
    // DeepSeek-V3: sigmoid, group-limited (half the groups kept, as V3's 4 of 8), bias update
    // 1e-3, sequence-wise balance 1e-4, scaling 2.5; one routed pick (e8k2) is not normalised
    // (Megatron's rule for top-1, else its weight would be the constant 1).
    const int64_t routed = k - 1;
    const int64_t groups = e >= 32 ? 4 : 2;
    return {{"score", "sigmoid"},           {"n_group", groups},
            {"topk_group", groups / 2},     {"group_score", "top2_sum"},
            {"norm_topk_prob", routed > 1}, {"routed_scaling_factor", routed > 1 ? 2.5 : 1.0},
            {"seq_aux_coeff", 1e-4},        {"bias_update_rate", 1e-3}};
  }
  if (router == "hash") return {{"hash", "random"}, {"seed", 0}};
  if (router == "default_moe") {
    return {{"aux_loss_coeff", 0.01}, {"ema_beta", 0.95}, {"normalize", false}};
  }
  if (router == "remoe") {
    return {{"target_sparsity", 1.0 - static_cast<double>(k) / static_cast<double>(e)},
            {"lambda0", 1e-8},
            {"alpha", 1.2},
            {"load_balance", true}};
  }
  if (router == "xmoe") {
    return {{"proj_dim", 16}, {"temperature_init", 0.07}, {"aux_loss_coeff", 0.01}};
  }
  if (router == "moxe") {
    return {{"gamma", 0.7},           {"difficulty_threshold", 0.9}, {"modulation", "standard"},
            {"gate_bias", true},      {"group_loss", "kl_div"},      {"z_loss_coeff", 1e-3},
            {"aux_loss_coeff", 1e-2}, {"d_loss_coeff", 1e-2},        {"group_loss_coeff", 1e-2}};
  }
  if (router == "smile") {
    // Two levels: groups of sqrt(E)-ish experts (the router's own default rule), Switch's 0.01.
    return {
        {"groups", e >= 32 ? 4 : 2}, {"group_balance_coeff", 0.01}, {"expert_balance_coeff", 0.01}};
  }
  if (router == "expert_choice") {
    return {{"capacity_factor", static_cast<double>(k)}};  // K experts per token on average
  }
  if (router == "soft_moe") return {{"slots_per_expert", 1}, {"normalize", true}};
  if (router == "sinkhorn") return {{"tol", 1e-4}, {"max_iterations", 1000}};
  return json::object();  // dense, random, and routers this study does not know: defaults
}

LmConfig study_lm_config(const StudyModel& m, const StudyVariant& v, const std::string& router) {
  LmConfig c;
  c.vocab_size = m.vocab;
  c.d_model = m.d_model;
  c.n_layers = m.layers;
  c.n_heads = m.heads;
  c.seq_len = m.seq;
  c.dense_ffn = v.top_k * v.expert_ffn;
  if (router == kDenseBaseline) return c;  // moe.num_experts = 0: every layer dense
  c.moe.num_experts = v.experts;
  c.moe.top_k = v.top_k;
  c.moe.expert_ffn = v.expert_ffn;
  c.moe.router = router;
  c.moe.router_options = study_router_options(router, v);
  if (router == "switch" || router == "hash") c.moe.top_k = 1;  // top-1 by definition
  if (router == "switch") c.moe.capacity_factor = 1.25;         // Switch's training capacity
  if (router == "deepseek") {
    c.moe.top_k = v.top_k - 1;  // one shared expert of the same width keeps K active experts
    c.moe.shared_experts = 1;
    c.moe.shared_ffn = v.expert_ffn;
  }
  c.moe.allow_non_causal = !study_router_is_causal(router);
  return c;
}

bool study_router_is_causal(const std::string& router) {
  const StudyModel m = study_model(true);
  LmConfig c;
  c.d_model = m.d_model;
  c.moe.num_experts = m.variants[0].experts;
  c.moe.top_k = (router == "switch" || router == "hash") ? 1 : m.variants[0].top_k;
  c.moe.router = router;
  c.moe.router_options = study_router_options(router, m.variants[0]);
  return moe::make_router(c.router_spec(0))->causal();
}

namespace {

std::string run_settings(const LmConfig& c) {
  if (c.moe.num_experts == 0) return fmt::format("dense SwiGLU FFN of width {}", c.dense_ffn);
  std::string s = fmt::format("{} experts of width {}, top-{}", c.moe.num_experts, c.moe.expert_ffn,
                              c.moe.top_k);
  if (c.moe.shared_experts > 0) s += fmt::format(" + {} shared expert", c.moe.shared_experts);
  if (c.moe.capacity_factor > 0) s += fmt::format(", capacity factor {}", c.moe.capacity_factor);
  return s;
}

double mean_of(const std::vector<LayerSummary>& layers, double LayerSummary::*field) {
  if (layers.empty()) return NAN;
  double sum = 0.0;
  for (const LayerSummary& l : layers) sum += l.*field;
  return sum / static_cast<double>(layers.size());
}

// The token budget of a run when --tokens is not given, and why (the report prints it).
constexpr const char* kBudgetNote =
    "The full budget is chosen so that the whole study (12 causal routers x 2 variants + the "
    "dense baseline = 25 runs) takes about two hours on this 2-core machine. Measured tokens/s "
    "of one training step of the study model (`switchyard -t 2 bench train`, the machine shared "
    "with other work): 870 (e8k2) and 520 (e32k8); a short `study` run of e8k2/topk_softmax "
    "trained at 650. Taking 700 tokens/s and weighting the runs by their expert compute (the "
    "`dense` router runs every expert: 2.4x a top-K run; ReMoE's dense warm-up ~1.2x; Switch "
    "and Hash top-1 ~0.8x) gives 27.4 top-K-run equivalents; validation (4 passes of 8 batches, "
    "forward only) adds ~15%. 7200 s x 700 tokens/s / (27.4 x 1.15) = 160k tokens per run: "
    "72 steps of 8 x 256 = 147,456 tokens, leaving ~10 s per run for loading and tokenizing "
    "the corpus.";
int64_t default_tokens(bool quick, const StudyModel& m) {
  return quick ? 200 * m.batch * m.seq : 72 * m.batch * m.seq;
}

// Quick mode trains on every 10th document of the corpus (all genres, a tenth of the text).
std::string quick_corpus(const std::string& data, const std::string& out_dir) {
  const std::vector<std::string> docs = read_documents(data);
  std::string text;
  for (size_t i = 0; i < docs.size(); i += 10) text += docs[i] + "\n\n";
  std::string path = (fs::path(out_dir) / "quick_corpus.txt").string();
  io::write_file_atomic(path, text);
  return path;
}

void read_train_log(const std::string& path, int64_t num_experts, StudyRun& run) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  const std::string text = io::read_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) add_log_event(j, num_experts, run);  // a torn last line is skipped
  }
}

}  // namespace

StudySummary run_study(const StudyOptions& opt) {
  const StudyModel model = study_model(opt.quick);
  const int64_t tokens = opt.tokens > 0 ? opt.tokens : default_tokens(opt.quick, model);
  std::vector<std::string> routers = opt.routers;
  if (routers.empty()) {
    for (const std::string& r : moe::router_names()) {
      if (opt.non_causal || study_router_is_causal(r)) routers.push_back(r);
    }
  }
  const std::vector<std::string> known = moe::router_names();
  for (const std::string& r : routers) {
    SY_CHECK(std::find(known.begin(), known.end(), r) != known.end(),
             "study: unknown router '{}'; registered routers: {}", r, fmt::join(known, ", "));
    SY_CHECK(opt.non_causal || study_router_is_causal(r),
             "study: router '{}' is not causal (its choice for a token depends on later tokens); "
             "pass --non-causal to include it, marked as such in the report",
             r);
  }
  fs::create_directories(opt.out_dir);
  FILE* out = opt.progress;

  StudySummary summary;
  summary.variants = model.variants;
  const std::string data = opt.quick ? quick_corpus(opt.data, opt.out_dir) : opt.data;

  // One tokenizer for every run, trained on the training side of the split.
  const std::string tokenizer = (fs::path(opt.out_dir) / "tokenizer.model").string();
  const double validation_fraction = 0.1;
  if (!fs::exists(tokenizer)) {
    if (out)
      std::fprintf(out, "study: training the tokenizer (%lld pieces) on %s\n",
                   static_cast<long long>(model.vocab), data.c_str());
    const std::vector<std::string> docs = read_documents(data);
    const DocumentSplit split =
        split_documents(static_cast<int64_t>(docs.size()), validation_fraction);
    std::vector<std::string> train_docs;
    for (int64_t i : split.train) train_docs.push_back(docs[static_cast<size_t>(i)]);
    train_tokenizer(train_docs, tokenizer,
                    {.vocab_size = static_cast<int32_t>(model.vocab), .num_threads = 2});
  }

  // The same loop settings for every run.
  TrainConfig base;
  base.data.files = {data};
  base.data.tokenizer = tokenizer;
  base.data.validation_fraction = validation_fraction;
  base.train.batch_size = model.batch;
  base.train.tokens = tokens;
  base.train.seed = opt.seed;
  base.model.seq_len = model.seq;
  const int64_t steps = base.total_steps();
  base.optim.lr = opt.quick ? 3e-3 : 1e-3;
  base.optim.min_lr = base.optim.lr / 10.0;
  base.optim.schedule = "cosine";
  base.optim.warmup_steps = std::max<int64_t>(1, steps / 20);
  base.optim.grad_clip = 1.0;
  base.output.log_every = std::max<int64_t>(1, steps / 200);
  base.output.eval_every = std::max<int64_t>(1, steps / (opt.quick ? 10 : 4));
  base.output.eval_batches = opt.quick ? 4 : 8;
  base.output.save_dtype = "bf16";
  base.output.progress = opt.progress_is_tty ? "auto" : "off";

  const LmParamCount dense_count =
      count_params(study_lm_config(model, model.variants[0], kDenseBaseline));
  summary.settings = {{"quick", opt.quick},
                      {"model",
                       {{"vocab", model.vocab},
                        {"d_model", model.d_model},
                        {"layers", model.layers},
                        {"heads", model.heads},
                        {"seq", model.seq},
                        {"batch", model.batch}}},
                      {"tokens", tokens},
                      {"steps", steps},
                      {"tokens_per_step", base.tokens_per_step()},
                      {"seed", opt.seed},
                      {"data", opt.data},
                      {"corpus", data},
                      {"validation_fraction", validation_fraction},
                      {"lr", base.optim.lr},
                      {"min_lr", base.optim.min_lr},
                      {"schedule", base.optim.schedule},
                      {"warmup_steps", base.optim.warmup_steps},
                      {"weight_decay", base.optim.adamw.weight_decay},
                      {"betas", {base.optim.adamw.beta1, base.optim.adamw.beta2}},
                      {"grad_clip", base.optim.grad_clip},
                      {"eval_every", base.output.eval_every},
                      {"eval_batches", base.output.eval_batches},
                      {"budget_note", opt.quick || opt.tokens > 0 ? "" : kBudgetNote},
                      {"dense_params", dense_count.total},
                      {"non_causal", opt.non_causal}};
  // A restarted study reuses finished runs only when nothing about them changed.
  const std::string settings_path = (fs::path(opt.out_dir) / "study_settings.json").string();
  if (fs::exists(settings_path)) {
    const nlohmann::json old = nlohmann::json::parse(io::read_file(settings_path), nullptr, false);
    nlohmann::json a = old, b = summary.settings;
    for (nlohmann::json* j : {&a, &b}) {
      if (j->is_object()) j->erase("non_causal");
    }
    SY_CHECK(a == b,
             "study: {} holds a study with other settings ({}), expected {}; use another --out",
             settings_path, old.dump(), summary.settings.dump());
  }
  io::write_file_atomic(settings_path, summary.settings.dump(2) + "\n");

  struct Job {
    std::string variant, router;
    LmConfig config;
  };
  std::vector<Job> jobs;
  for (const StudyVariant& v : model.variants) {
    for (const std::string& r : routers) jobs.push_back({v.name, r, study_lm_config(model, v, r)});
  }
  if (opt.dense_baseline) {
    jobs.push_back(
        {"dense", kDenseBaseline, study_lm_config(model, model.variants[0], kDenseBaseline)});
  }

  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    const fs::path dir = fs::path(opt.out_dir) / "runs" / job.variant / job.router;
    const std::string record = (dir / "study_run.json").string();
    if (fs::exists(record)) {
      const std::string text = io::read_file(record);  // names the file itself if unreadable
      try {
        summary.runs.push_back(StudyRun::from_json(nlohmann::json::parse(text)));
      } catch (const nlohmann::json::exception& e) {  // edited or damaged by hand
        fail("{}: not a study run record: {}", record, e.what());
      } catch (const Error& e) {  // a field of the wrong type
        fail("{}: not a study run record: {}", record, e.what());
      }
      if (out)
        std::fprintf(out, "study: [%zu/%zu] %s/%s: done before, kept\n", i + 1, jobs.size(),
                     job.variant.c_str(), job.router.c_str());
      continue;
    }
    if (opt.should_stop && opt.should_stop()) {
      summary.interrupted = true;
      break;
    }
    StudyRun run;
    run.variant = job.variant;
    run.router = job.router;
    run.options = job.config.moe.router_options;
    run.settings = run_settings(job.config);
    run.causal = !job.config.moe.allow_non_causal;
    const LmParamCount count = count_params(job.config);
    run.params_total = count.total;
    run.params_active = count.active;
    if (out)
      std::fprintf(out, "study: [%zu/%zu] %s/%s: %s, %.1fM parameters (%.1fM active)\n", i + 1,
                   jobs.size(), job.variant.c_str(), job.router.c_str(), run.settings.c_str(),
                   static_cast<double>(count.total) / 1e6, static_cast<double>(count.active) / 1e6);
    TrainConfig config = base;
    config.model = job.config;
    config.output.dir = dir.string();
    TrainHooks hooks;
    hooks.should_stop = opt.should_stop;
    hooks.progress = out;
    hooks.progress_is_tty = opt.progress_is_tty;
    TrainResult result;
    try {
      result = run_training(config, hooks);
    } catch (const std::exception& e) {
      run.stable = false;
      run.error = e.what();
      if (out)
        std::fprintf(out, "study: %s/%s failed: %s\n", job.variant.c_str(), job.router.c_str(),
                     e.what());
    }
    read_train_log((dir / "train.jsonl").string(), job.config.moe.num_experts, run);
    if (run.error.empty() && result.interrupted) {
      summary.interrupted = true;  // not recorded: a restarted study resumes this run
      summary.runs.push_back(run);
      break;
    }
    if (run.error.empty()) {
      const EvalResult& ev = result.final_eval;
      run.finished = true;
      run.steps = result.steps;
      run.skipped_steps = result.skipped;
      run.tokens = result.steps * config.tokens_per_step();
      run.val_loss = ev.loss;
      run.val_ppl = ev.ppl;
      run.stable = std::isfinite(ev.loss);
      if (!run.stable) run.error = "non-finite validation loss";
      run.tokens_per_s = result.tokens_per_s;
      run.max_vio = mean_of(ev.layers, &LayerSummary::max_vio);
      run.dropped = mean_of(ev.layers, &LayerSummary::dropped);
      run.active_per_token = mean_of(ev.layers, &LayerSummary::active_per_token);
      for (const LayerSummary& l : ev.layers) run.final_load.push_back(l.load);
      // The optimizer state is of no further use; model/ stays.
      std::error_code ec;
      if (!result.checkpoint_dir.empty()) fs::remove_all(result.checkpoint_dir, ec);
      if (out)
        std::fprintf(out, "study: %s/%s: validation loss %.4f, %.0f tokens/s\n",
                     job.variant.c_str(), job.router.c_str(), run.val_loss, run.tokens_per_s);
    } else if (!run.val_curve.empty()) {
      run.val_loss = run.val_curve.back().value;  // the last validation before it failed
      run.val_ppl = std::exp(run.val_loss);
    }
    io::write_file_atomic(record, run.to_json().dump() + "\n");
    summary.runs.push_back(std::move(run));
  }

  // Plots, then the report that links them.
  const std::string summary_path = (fs::path(opt.out_dir) / "summary.json").string();
  io::write_file_atomic(summary_path, summary.to_json().dump() + "\n");
  if (opt.plot_script.empty()) {
    summary.plot_error = "no plot script was given";
  } else {
    const std::string cmd = fmt::format("'{}' '{}' '{}' '{}' 2>&1", opt.python, opt.plot_script,
                                        summary_path, opt.out_dir);
    FILE* pipe = popen(cmd.c_str(), "r");
    std::string text;
    if (pipe != nullptr) {
      char buf[512];
      while (fgets(buf, sizeof buf, pipe) != nullptr) text += buf;
    }
    const int rc = pipe != nullptr ? pclose(pipe) : -1;
    // The script prints one PNG name per line; anything else is a message.
    size_t start = 0;
    std::string messages;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, end - start);
      start = end + 1;
      if (line.size() > 4 && line.compare(line.size() - 4, 4, ".png") == 0 &&
          line.find(' ') == std::string::npos) {
        summary.plots.push_back(line);
      } else if (!line.empty()) {
        messages += line + "\n";
      }
    }
    if (rc != 0) {
      summary.plot_error = fmt::format("{} exited with status {}: {}", opt.plot_script, rc,
                                       messages.empty() ? "no output" : messages);
    }
    if (out && rc != 0) std::fprintf(out, "study: plots failed: %s\n", summary.plot_error.c_str());
  }
  io::write_file_atomic(summary_path, summary.to_json().dump() + "\n");
  io::write_file_atomic((fs::path(opt.out_dir) / "report.md").string(),
                        render_study_report(summary));
  if (out)
    std::fprintf(out, "study: wrote %s\n", (fs::path(opt.out_dir) / "report.md").string().c_str());
  return summary;
}

}  // namespace sy::train
