// The study's summary in JSON (the plot script's input and a restarted study's record), the
// paper orderings as sentences computed from the measured numbers, and report.md.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/study.h"

namespace sy::train {

namespace {

using nlohmann::json;

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
// An integer of a study record: a float or anything else is refused, naming `what`.
int64_t integer_of(const json& v, const std::string& what) {
  SY_CHECK(v.is_number_integer(), "{} is {}, expected an integer", what, v.dump().substr(0, 40));
  return v.get<int64_t>();
}
// j[key] as an integer; 0 when absent.
int64_t integer_field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() ? 0 : integer_of(*it, fmt::format("'{}'", key));
}
double number_of(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

json points_json(const std::vector<StudyPoint>& points) {
  json a = json::array();
  for (const StudyPoint& p : points) a.push_back({p.step, p.tokens, number(p.value)});
  return a;
}
std::vector<StudyPoint> points_of(const json& j, const char* key) {
  std::vector<StudyPoint> out;
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const json& p : *it) {
    out.push_back({integer_of(p.at(0), fmt::format("a step of '{}'", key)),
                   integer_of(p.at(1), fmt::format("a token count of '{}'", key)),
                   p.at(2).is_number() ? p.at(2).get<double>() : NAN});
  }
  return out;
}

// Mean of a numeric field over a layers array (NaN when none has it).
double layers_mean(const json& layers, const char* key) {
  double sum = 0.0;
  int64_t n = 0;
  for (const json& l : layers) {
    const double v = number_of(l, key);
    if (std::isfinite(v)) {
      sum += v;
      ++n;
    }
  }
  return n > 0 ? sum / static_cast<double>(n) : NAN;
}

// Mean over layers of the router state values whose name contains `part` (ReMoE's lambda).
double state_mean(const json& layers, const std::string& part) {
  double sum = 0.0;
  int64_t n = 0;
  for (const json& l : layers) {
    const auto it = l.find("state");
    if (it == l.end()) continue;
    auto take = [&](const std::string& name, const json& v) {
      if (name.find(part) != std::string::npos && v.is_number()) {
        sum += v.get<double>();
        ++n;
      }
    };
    if (it->is_object()) {
      for (const auto& [name, v] : it->items()) take(name, v);
    } else if (it->is_array()) {
      for (const json& pair : *it) {
        if (pair.is_array() && pair.size() == 2 && pair[0].is_string()) take(pair[0], pair[1]);
      }
    }
  }
  return n > 0 ? sum / static_cast<double>(n) : NAN;
}

std::string fixed(double v, int digits) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "n/a";
}

// ---- Orderings ----------------------------------------------------------------------------------

const StudyRun* find_run(const StudySummary& s, const std::string& variant,
                         const std::string& router) {
  for (const StudyRun& r : s.runs) {
    const bool variant_ok = router == kDenseBaseline || r.variant == variant;
    if (r.router == router && variant_ok) return &r;
  }
  return nullptr;
}

// Why a run cannot be compared, or nullopt when it can.
std::optional<std::string> unusable(const StudyRun* r, const std::string& router) {
  if (r == nullptr) return fmt::format("{} was not run", router);
  if (!r->stable) return fmt::format("{} was unstable", router);
  if (!r->finished) return fmt::format("{} did not finish", router);
  return std::nullopt;
}

enum class Relation { kLower, kAtMost, kClose };

// "<claim> [<source>]: reproduced (a vs b)" for metric(a) <relation> metric(b).
std::string compare(const StudySummary& s, const std::string& variant, const std::string& a,
                    const std::string& b, double StudyRun::*metric, Relation relation,
                    const std::string& claim, const std::string& source, int digits) {
  const StudyRun* ra = find_run(s, variant, a);
  const StudyRun* rb = find_run(s, variant, b);
  const std::string head = fmt::format("{} [{}]", claim, source);
  if (auto why = unusable(ra, a)) return fmt::format("{}: not checked ({})", head, *why);
  if (auto why = unusable(rb, b)) return fmt::format("{}: not checked ({})", head, *why);
  const double x = ra->*metric, y = rb->*metric;
  if (!std::isfinite(x) || !std::isfinite(y)) {
    return fmt::format("{}: not checked (no value: {} vs {})", head, fixed(x, digits),
                       fixed(y, digits));
  }
  bool ok = false;
  switch (relation) {
    case Relation::kLower:
      ok = x < y;
      break;
    case Relation::kAtMost:
      ok = x <= y;
      break;
    case Relation::kClose:
      ok = std::fabs(x - y) <= 0.02 * std::fabs(y);
      break;
  }
  return fmt::format("{}: {} ({} vs {})", head, ok ? "reproduced" : "not reproduced",
                     fixed(x, digits), fixed(y, digits));
}

double last_value(const std::vector<StudyPoint>& points) {
  return points.empty() ? NAN : points.back().value;
}

}  // namespace

// ---- JSON ---------------------------------------------------------------------------------------

json StudyRun::to_json() const {
  json loads = json::array();
  for (const auto& l : final_load) loads.push_back(l);
  return {{"variant", variant},
          {"router", router},
          {"options", options},
          {"settings", settings},
          {"causal", causal},
          {"stable", stable},
          {"finished", finished},
          {"error", error},
          {"params_total", params_total},
          {"params_active", params_active},
          {"steps", steps},
          {"tokens", tokens},
          {"skipped_steps", skipped_steps},
          {"val_loss", number(val_loss)},
          {"val_ppl", number(val_ppl)},
          {"max_vio", number(max_vio)},
          {"dropped", number(dropped)},
          {"active_per_token", number(active_per_token)},
          {"tokens_per_s", number(tokens_per_s)},
          {"val_curve", points_json(val_curve)},
          {"max_vio_curve", points_json(max_vio_curve)},
          {"sparsity_curve", points_json(sparsity_curve)},
          {"lambda_curve", points_json(lambda_curve)},
          {"final_load", loads}};
}

StudyRun StudyRun::from_json(const json& j) {
  StudyRun r;
  r.variant = j.at("variant").get<std::string>();
  r.router = j.at("router").get<std::string>();
  r.options = j.value("options", json::object());
  r.settings = j.value("settings", "");
  r.causal = j.value("causal", true);
  r.stable = j.value("stable", true);
  r.finished = j.value("finished", false);
  r.error = j.value("error", "");
  r.params_total = integer_field(j, "params_total");
  r.params_active = integer_field(j, "params_active");
  r.steps = integer_field(j, "steps");
  r.tokens = integer_field(j, "tokens");
  r.skipped_steps = integer_field(j, "skipped_steps");
  r.val_loss = number_of(j, "val_loss");
  r.val_ppl = number_of(j, "val_ppl");
  r.max_vio = number_of(j, "max_vio");
  r.dropped = number_of(j, "dropped");
  r.active_per_token = number_of(j, "active_per_token");
  r.tokens_per_s = number_of(j, "tokens_per_s");
  r.val_curve = points_of(j, "val_curve");
  r.max_vio_curve = points_of(j, "max_vio_curve");
  r.sparsity_curve = points_of(j, "sparsity_curve");
  r.lambda_curve = points_of(j, "lambda_curve");
  if (j.contains("final_load")) {
    for (const json& l : j.at("final_load")) {
      std::vector<int64_t>& counts = r.final_load.emplace_back();
      for (const json& c : l) counts.push_back(integer_of(c, "a count of 'final_load'"));
    }
  }
  return r;
}

json StudySummary::to_json() const {
  json variants_json = json::array();
  for (const StudyVariant& v : variants) {
    variants_json.push_back({{"name", v.name},
                             {"experts", v.experts},
                             {"top_k", v.top_k},
                             {"expert_ffn", v.expert_ffn}});
  }
  json runs_json = json::array();
  for (const StudyRun& r : runs) runs_json.push_back(r.to_json());
  return {{"settings", settings}, {"variants", variants_json}, {"runs", runs_json},
          {"plots", plots},       {"plot_error", plot_error},  {"interrupted", interrupted}};
}

StudySummary StudySummary::from_json(const json& j) {
  StudySummary s;
  s.settings = j.value("settings", json::object());
  for (const json& v : j.at("variants")) {
    s.variants.push_back({v.at("name").get<std::string>(), integer_of(v.at("experts"), "'experts'"),
                          integer_of(v.at("top_k"), "'top_k'"),
                          integer_of(v.at("expert_ffn"), "'expert_ffn'")});
  }
  for (const json& r : j.at("runs")) s.runs.push_back(StudyRun::from_json(r));
  s.plots = j.value("plots", std::vector<std::string>{});
  s.plot_error = j.value("plot_error", "");
  s.interrupted = j.value("interrupted", false);
  return s;
}

void add_log_event(const json& event, int64_t num_experts, StudyRun& run) {
  // Lines the trainer did not write (edited by hand, or from another program) are skipped.
  const auto field = [&](const char* key) -> const json* {
    const auto it = event.find(key);
    return it == event.end() ? nullptr : &*it;
  };
  const json* kind_field = field("event");
  const json* step_field = field("step");
  const json* tokens_field = field("tokens");
  if (kind_field == nullptr || !kind_field->is_string()) return;
  if (step_field != nullptr && !step_field->is_number_integer()) return;
  if (tokens_field != nullptr && !tokens_field->is_number_integer()) return;
  const std::string& kind = kind_field->get_ref<const std::string&>();
  const int64_t step = step_field != nullptr ? step_field->get<int64_t>() : 0;
  const int64_t tokens = tokens_field != nullptr ? tokens_field->get<int64_t>() : 0;
  if (kind == "eval") {
    run.val_curve.push_back({step, tokens, number_of(event, "val_loss")});
    return;
  }
  if (kind != "step") return;
  const auto it = event.find("layers");
  if (it == event.end() || !it->is_array() || it->empty()) return;
  run.max_vio_curve.push_back({step, tokens, layers_mean(*it, "max_vio")});
  if (run.router == "remoe" && num_experts > 0) {
    const double active = layers_mean(*it, "active_per_token");
    run.sparsity_curve.push_back({step, tokens, 1.0 - active / static_cast<double>(num_experts)});
    run.lambda_curve.push_back({step, tokens, state_mean(*it, "l1_coeff")});
  }
}

// ---- Orderings and report -----------------------------------------------------------------------

std::vector<std::string> study_ordering_sentences(const StudySummary& s, const StudyVariant& v) {
  const std::string& n = v.name;
  std::vector<std::string> out;
  constexpr auto loss = &StudyRun::val_loss;
  out.push_back(compare(s, n, "remoe", "topk_softmax", loss, Relation::kLower,
                        "remoe reaches a lower validation loss than topk_softmax",
                        "ReMoE Tab 2: 1.921 vs 1.936 at 182M, 30B tokens", 3));
  {
    const StudyRun* r = find_run(s, n, "remoe");
    const double target = 1.0 - static_cast<double>(v.top_k) / static_cast<double>(v.experts);
    const std::string head = fmt::format(
        "remoe holds its sparsity at the target 1 - K/E = {} (within 0.05) [ReMoE Fig 3-4]",
        fixed(target, 3));
    if (auto why = unusable(r, "remoe")) {
      out.push_back(fmt::format("{}: not checked ({})", head, *why));
    } else {
      const double got = last_value(r->sparsity_curve);
      const bool ok = std::isfinite(got) && std::fabs(got - target) <= 0.05;
      out.push_back(fmt::format("{}: {} (final training sparsity {})", head,
                                ok ? "reproduced" : "not reproduced", fixed(got, 3)));
    }
  }
  out.push_back(compare(s, n, "topk_softmax", kDenseBaseline, loss, Relation::kLower,
                        "topk_softmax (MoE) reaches a lower validation loss than the dense model "
                        "of equal active parameters",
                        "ReMoE Tab 2, OLMoE", 3));
  out.push_back(compare(s, n, "topk_softmax", "hash", loss, Relation::kLower,
                        "topk_softmax reaches a lower validation loss than hash routing",
                        "ReMoE Tab 2: dMoE 39.67 vs Hash 38.79 avg accuracy", 3));
  out.push_back(compare(s, n, "loss_free", "topk_softmax", &StudyRun::max_vio, Relation::kLower,
                        "loss_free reaches lower MaxVio than topk_softmax with aux loss",
                        "Wang et al. 2024 Tab 2: MaxVio_global 0.04 vs 0.72", 2));
  out.push_back(compare(s, n, "loss_free", "topk_softmax", loss, Relation::kAtMost,
                        "loss_free's validation loss is at most topk_softmax's",
                        "Wang et al. 2024 Tab 2: ppl 9.50 vs 9.56", 3));
  out.push_back(compare(s, n, "default_moe", "topk_softmax", loss, Relation::kLower,
                        "default_moe reaches a lower validation loss than topk_softmax",
                        "Default MoE Fig 1", 3));
  out.push_back(compare(s, n, "expert_choice", "topk_softmax", loss, Relation::kLower,
                        "expert_choice (non-causal) reaches a lower validation loss than "
                        "topk_softmax",
                        "Expert Choice abstract, encoder setting", 3));
  out.push_back(compare(s, n, "smile", "switch", loss, Relation::kClose,
                        "smile's validation loss is within 2% of switch's",
                        "SMILE: convergence parity with flat Switch", 3));
  out.push_back(compare(s, n, "topk_softmax", "random", loss, Relation::kLower,
                        "topk_softmax beats random routing", "sanity check, no paper", 3));
  return out;
}

namespace {

std::string millions(int64_t n) {
  const double m = static_cast<double>(n) / 1e6;
  return m >= 1.0 ? fmt::format("{:.1f}", m) : fmt::format("{:.3f}", m);
}

// "yes", "interrupted", "no" (non-finite loss or gradient) or "failed" (any other error, listed
// under the tables: a configuration or library error is not an instability of the router).
std::string stability(const StudyRun& r) {
  if (r.stable) return r.finished ? "yes" : "interrupted";
  return r.error.find("non-finite") != std::string::npos ? "no" : "failed";
}

std::string row(const StudyRun& r) {
  const bool moe = r.router != kDenseBaseline;
  return fmt::format("| {} | {} | {} | {} | {} | {} | {}M / {}M | {} | {} | {} |\n", r.router,
                     fixed(r.val_loss, 3), fixed(r.val_ppl, 1), moe ? fixed(r.max_vio, 2) : "-",
                     moe ? fixed(100.0 * r.dropped, 1) : "-",
                     moe ? fixed(r.active_per_token, 2) : "-", millions(r.params_total),
                     millions(r.params_active), fixed(r.tokens_per_s, 0), stability(r),
                     r.causal ? "yes" : "no");
}

std::string plot_link(const StudySummary& s, const std::string& name, const std::string& title) {
  if (std::find(s.plots.begin(), s.plots.end(), name) == s.plots.end()) return "";
  return fmt::format("![{}]({})\n\n", title, name);
}

}  // namespace

std::string render_study_report(const StudySummary& s) {
  const json& st = s.settings;
  const json m = st.value("model", json::object());
  std::string md = "# switchyard study: MoE routers on one model, one corpus, one budget\n\n";
  if (st.value("quick", false)) {
    md +=
        "**Quick mode**: a tiny model and a few hundred steps per router (a smoke test; the "
        "numbers say nothing about the routers).\n\n";
  }
  if (s.interrupted) md += "**Interrupted**: the table holds the runs finished so far.\n\n";

  const auto tokens = st.value("tokens", int64_t{0});
  md += "## Setup\n\n";
  md += fmt::format(
      "- Model: decoder-only transformer, vocabulary {}, width {}, {} layers of {} heads, "
      "RMSNorm, RoPE, SwiGLU experts, untied head; sequences of {} tokens in batches of {}.\n",
      m.value("vocab", 0), m.value("d_model", 0), m.value("layers", 0), m.value("heads", 0),
      m.value("seq", 0), m.value("batch", 0));
  for (const StudyVariant& v : s.variants) {
    md += fmt::format("- Variant `{}`: {} experts top-{} of width {} in every layer.\n", v.name,
                      v.experts, v.top_k, v.expert_ffn);
  }
  if (!s.variants.empty()) {
    md += fmt::format(
        "- Dense baseline `{}`: one SwiGLU FFN of width K x F = {} per layer (the active "
        "parameters of a top-K MoE), {:.1f}M parameters.\n",
        kDenseBaseline, s.variants[0].top_k * s.variants[0].expert_ffn,
        st.value("dense_params", 0.0) / 1e6);
  }
  md += fmt::format(
      "- Data: `{}` (the Brown Corpus), {} of the documents held out for validation; one "
      "SentencePiece BPE tokenizer trained once on the training documents and used by every "
      "run{}.\n",
      st.value("data", std::string()), fixed(100.0 * st.value("validation_fraction", 0.0), 0) + "%",
      st.value("quick", false) ? " (quick mode: every 10th document of the corpus)" : "");
  md += fmt::format(
      "- Budget: {} tokens per run ({} optimizer steps of {} tokens), seed {}; AdamW lr {:g} "
      "({} schedule, {} warmup steps, down to {:g}), weight decay {:g}, gradient clipping {:g}; "
      "validation every {} steps on {} batches.\n\n",
      tokens, st.value("steps", 0), st.value("tokens_per_step", 0), st.value("seed", 0),
      st.value("lr", 0.0), st.value("schedule", std::string()), st.value("warmup_steps", 0),
      st.value("min_lr", 0.0), st.value("weight_decay", 0.0), st.value("grad_clip", 0.0),
      st.value("eval_every", 0), st.value("eval_batches", 0));

  const std::string note = st.value("budget_note", std::string());
  if (!note.empty()) md += note + "\n\n";
  md +=
      "Router settings (each as its paper recommends; the study model's own shape otherwise):\n\n";
  md += "| variant | router | experts | options |\n| --- | --- | --- | --- |\n";
  for (const StudyRun& r : s.runs) {
    md +=
        fmt::format("| {} | {} | {} | `{}` |\n", r.variant, r.router, r.settings, r.options.dump());
  }
  md += "\n";

  for (const StudyVariant& v : s.variants) {
    md += fmt::format("## Results: `{}` ({} experts top-{} of width {})\n\n", v.name, v.experts,
                      v.top_k, v.expert_ffn);
    md +=
        "Validation loss and perplexity over the held-out documents at the end of training; "
        "MaxVio = (max load - mean load) / mean load, dropped % and active experts per token "
        "from the same final validation pass, each the mean over the MoE layers. Stable: no = "
        "stopped by non-finite losses or gradients, failed = another error (both listed at "
        "the end).\n\n";
    md +=
        "| router | val loss | ppl | MaxVio | dropped % | active experts/token | params "
        "(total / active) | tokens/s | stable | causal |\n";
    md += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    std::vector<const StudyRun*> rows;
    for (const StudyRun& r : s.runs) {
      if (r.variant == v.name || r.router == kDenseBaseline) rows.push_back(&r);
    }
    std::stable_sort(rows.begin(), rows.end(), [](const StudyRun* a, const StudyRun* b) {
      const double x = std::isfinite(a->val_loss) ? a->val_loss : INFINITY;
      const double y = std::isfinite(b->val_loss) ? b->val_loss : INFINITY;
      return x < y;
    });
    bool non_causal = false;
    for (const StudyRun* r : rows) {
      md += row(*r);
      non_causal = non_causal || !r->causal;
    }
    md += "\n";
    if (non_causal) {
      md +=
          "Routers with causal = no pick experts using later tokens of the batch (in training "
          "and, for expert_choice and soft_moe, in validation too), so their losses are not "
          "those of a language model that could generate; they are shown for reference.\n\n";
    }
    md += plot_link(s, fmt::format("val_loss_{}.png", v.name), "validation loss vs tokens");
    md += plot_link(s, fmt::format("maxvio_{}.png", v.name), "MaxVio over training");
    md += plot_link(s, fmt::format("load_{}.png", v.name), "final expert load per layer");
    md += plot_link(s, fmt::format("remoe_{}.png", v.name), "ReMoE sparsity and lambda");
    md += "Paper orderings, checked on this variant:\n\n";
    for (const std::string& line : study_ordering_sentences(s, v)) md += "- " + line + "\n";
    md += "\n";
  }

  // Granularity across variants.
  if (s.variants.size() >= 2) {
    const StudyVariant& coarse = s.variants[0];
    const StudyVariant& fine = s.variants[1];
    md += "## Across variants\n\n";
    for (const std::string& router : {std::string("topk_softmax"), std::string("remoe")}) {
      const StudyRun* a = find_run(s, fine.name, router);
      const StudyRun* b = find_run(s, coarse.name, router);
      const std::string head = fmt::format(
          "fine-grained experts ({}) beat coarse ones ({}) at equal active parameters with {} "
          "[DeepSeekMoE, OLMoE 64x8 > 8x2, ReMoE Fig 6c]",
          fine.name, coarse.name, router);
      std::optional<std::string> why = unusable(a, router);
      if (!why) why = unusable(b, router);
      if (why) {
        md += fmt::format("- {}: not checked ({})\n", head, *why);
      } else {
        md += fmt::format("- {}: {} ({} vs {})\n", head,
                          a->val_loss < b->val_loss ? "reproduced" : "not reproduced",
                          fixed(a->val_loss, 3), fixed(b->val_loss, 3));
      }
    }
    md += "\n";
  }

  md += "## Scale compared with the papers\n\n";
  int64_t params = 0;
  for (const StudyRun& r : s.runs) params = std::max(params, r.params_total);
  const double ours = static_cast<double>(tokens);
  md += fmt::format(
      "This study trains models of at most {:.1f}M parameters on {:.2f}M tokens each. The papers' "
      "settings are orders of magnitude larger, so every ordering above is a reduced-scale "
      "check, not a replication:\n\n",
      static_cast<double>(params) / 1e6, ours / 1e6);
  md += "| paper | model | tokens | tokens / ours |\n| --- | --- | --- | --- |\n";
  struct Paper {
    const char* name;
    const char* model;
    double tokens;
  };
  const Paper papers[] = {
      {"ReMoE (ICLR 2025)", "182M active, E=8, k=1", 30e9},
      {"Loss-Free Balancing (Wang et al. 2024)", "1B total (DeepSeekMoE-style)", 100e9},
      {"Default MoE (2025)", "2B total, 500M active", 320e9},
      {"OLMoE", "1.3B active / 6.9B total, 64 experts top-8", 5e12},
      {"Switch Transformer", "T5-Base FLOPs, 128 experts", 0.0},
      {"Expert Choice", "8B, 64 experts", 0.0},
  };
  for (const Paper& p : papers) {
    md += fmt::format("| {} | {} | {} | {} |\n", p.name, p.model,
                      p.tokens > 0 ? fmt::format("{:g}B", p.tokens / 1e9) : "n/a",
                      p.tokens > 0 && ours > 0 ? fmt::format("{:.0f}x", p.tokens / ours) : "n/a");
  }
  md += "\n";

  bool any_error = false;
  for (const StudyRun& r : s.runs) any_error = any_error || !r.error.empty() || r.skipped_steps > 0;
  if (any_error) {
    md += "## Unstable or failed runs\n\n";
    for (const StudyRun& r : s.runs) {
      if (!r.error.empty()) md += fmt::format("- {}/{}: {}\n", r.variant, r.router, r.error);
      if (r.skipped_steps > 0) {
        md += fmt::format("- {}/{}: {} non-finite steps skipped\n", r.variant, r.router,
                          r.skipped_steps);
      }
    }
    md += "\n";
  }
  if (!s.plot_error.empty()) md += fmt::format("Plots were not drawn: {}\n", s.plot_error);
  return md;
}

}  // namespace sy::train
