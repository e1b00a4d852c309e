// `switchyard study`: the study model and router settings, the train.jsonl reader, the summary's
// JSON round trip, and report.md generated from a hand-made summary (table values and the
// ordering sentences computed from them).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "moe/routing/router.h"
#include "train/study.h"

namespace sy::train {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Study, ModelVariantsHaveEqualActiveAndTotalExpertParameters) {
  for (bool quick : {false, true}) {
    const StudyModel m = study_model(quick);
    ASSERT_EQ(m.variants.size(), 2u);
    const StudyVariant& a = m.variants[0];
    const StudyVariant& b = m.variants[1];
    EXPECT_EQ(a.top_k * a.expert_ffn, b.top_k * b.expert_ffn);
    EXPECT_EQ(a.experts * a.expert_ffn, b.experts * b.expert_ffn);
    const LmParamCount ca = count_params(study_lm_config(m, a, "topk_softmax"));
    const LmParamCount dense = count_params(study_lm_config(m, a, kDenseBaseline));
    // The dense baseline has the MoE's active parameters but the router's.
    EXPECT_EQ(dense.total + a.experts * m.d_model * m.layers, ca.active);
    if (!quick) {  // "about 10-20M parameters" (issue #4)
      EXPECT_GE(ca.total, 10'000'000);
      EXPECT_LE(ca.total, 20'000'000);
    }
  }
}

TEST(Study, EveryRegisteredRouterGetsAValidConfig) {
  const StudyModel m = study_model(true);
  for (const StudyVariant& v : m.variants) {
    for (const std::string& r : moe::router_names()) {
      SCOPED_TRACE(v.name + "/" + r);
      const LmConfig c = study_lm_config(m, v, r);
      EXPECT_NO_THROW(c.validate());
      EXPECT_EQ(c.moe.allow_non_causal, !study_router_is_causal(r));
    }
  }
  EXPECT_FALSE(study_router_is_causal("expert_choice"));
  EXPECT_FALSE(study_router_is_causal("soft_moe"));
  EXPECT_TRUE(study_router_is_causal("topk_softmax"));
  EXPECT_TRUE(study_router_is_causal("remoe"));
  const StudyVariant& v = m.variants[0];
  EXPECT_EQ(study_lm_config(m, v, "switch").moe.top_k, 1);
  EXPECT_DOUBLE_EQ(study_lm_config(m, v, "switch").moe.capacity_factor, 1.25);
  EXPECT_EQ(study_lm_config(m, v, "deepseek").moe.shared_experts, 1);
  EXPECT_DOUBLE_EQ(study_router_options("remoe", v).at("target_sparsity").get<double>(),
                   1.0 - 2.0 / 8.0);
  EXPECT_EQ(study_lm_config(m, v, kDenseBaseline).moe.num_experts, 0);
  EXPECT_EQ(study_lm_config(m, v, kDenseBaseline).dense_ffn, v.top_k * v.expert_ffn);
}

TEST(Study, LogEventsBecomeCurves) {
  StudyRun run;
  run.router = "remoe";
  const auto step = nlohmann::json::parse(R"({"event":"step","step":10,"tokens":1000,
    "loss":3.0,"layers":[
      {"layer":0,"load":[1,2],"max_vio":0.5,"active_per_token":2.0,"state":{"remoe.l1_coeff":1e-4}},
      {"layer":1,"load":[1,2],"max_vio":1.5,"active_per_token":4.0,"state":{"remoe.l1_coeff":3e-4}}]})");
  add_log_event(step, 8, run);
  add_log_event(nlohmann::json::parse(R"({"event":"eval","step":10,"tokens":1000,
                                         "val_loss":2.5,"val_ppl":12.2,"layers":[]})"),
                8, run);
  ASSERT_EQ(run.max_vio_curve.size(), 1u);
  EXPECT_EQ(run.max_vio_curve[0].tokens, 1000);
  EXPECT_DOUBLE_EQ(run.max_vio_curve[0].value, 1.0);
  ASSERT_EQ(run.sparsity_curve.size(), 1u);
  EXPECT_DOUBLE_EQ(run.sparsity_curve[0].value, 1.0 - 3.0 / 8.0);
  ASSERT_EQ(run.lambda_curve.size(), 1u);
  EXPECT_DOUBLE_EQ(run.lambda_curve[0].value, 2e-4);
  ASSERT_EQ(run.val_curve.size(), 1u);
  EXPECT_EQ(run.val_curve[0].step, 10);
  EXPECT_DOUBLE_EQ(run.val_curve[0].value, 2.5);
  // Lines the trainer did not write are skipped, not thrown at the study.
  for (const char* text :
       {R"({"event":"eval","step":"10","val_loss":2.5})", R"({"event":"eval","tokens":1.5})",
        R"({"event":7,"step":10})", R"({"step":10,"layers":[{"max_vio":1}]})"}) {
    EXPECT_NO_THROW(add_log_event(nlohmann::json::parse(text), 8, run)) << text;
  }
  EXPECT_EQ(run.val_curve.size(), 1u);
  EXPECT_EQ(run.max_vio_curve.size(), 1u);
  add_log_event(nlohmann::json::parse(R"({"event":"step","layers":[3,{"max_vio":0.5},[]]})"), 8,
                run);
  ASSERT_EQ(run.max_vio_curve.size(), 2u);
  EXPECT_DOUBLE_EQ(run.max_vio_curve[1].value, 0.5);
}

StudyRun make_run(const std::string& variant, const std::string& router, double loss,
                  double max_vio) {
  StudyRun r;
  r.variant = variant;
  r.router = router;
  r.finished = true;
  r.val_loss = loss;
  r.val_ppl = std::exp(loss);
  r.max_vio = max_vio;
  r.dropped = 0.0;
  r.active_per_token = 2.0;
  r.tokens_per_s = 1234.0;
  r.params_total = 17'700'000;
  r.params_active = 8'300'000;
  r.val_curve = {{10, 40960, loss + 1.0}, {20, 81920, loss}};
  r.final_load = {{10, 20, 30, 40, 50, 60, 70, 80}};
  return r;
}

StudySummary hand_made_summary() {
  StudySummary s;
  s.settings = {{"quick", false},
                {"model",
                 {{"vocab", 8000},
                  {"d_model", 256},
                  {"layers", 4},
                  {"heads", 4},
                  {"seq", 256},
                  {"batch", 16}}},
                {"tokens", 3000000},
                {"steps", 733},
                {"tokens_per_step", 4096},
                {"seed", 1},
                {"data", "data/brown.txt"},
                {"lr", 1e-3},
                {"budget_note", "Budget arithmetic: 7200 s x 700 tokens/s."}};
  s.variants = {{"e8k2", 8, 2, 512}, {"e32k8", 32, 8, 128}};
  s.runs.push_back(make_run("e8k2", "topk_softmax", 4.5, 0.45));
  s.runs.push_back(make_run("e8k2", "loss_free", 4.6, 0.12));
  s.runs.push_back(make_run("e8k2", "remoe", 4.4, 0.8));
  s.runs.back().sparsity_curve = {{20, 81920, 0.74}};
  StudyRun unstable = make_run("e8k2", "moxe", NAN, NAN);
  unstable.stable = false;
  unstable.finished = false;
  unstable.error = "stopped at step 12: 5 steps in a row had a non-finite loss";
  s.runs.push_back(unstable);
  s.runs.push_back(make_run("e32k8", "topk_softmax", 4.3, 0.9));
  s.runs.push_back(make_run("dense", kDenseBaseline, 4.7, NAN));
  s.plots = {"val_loss_e8k2.png", "load_e8k2.png"};
  return s;
}

TEST(Study, OrderingSentencesComeFromTheNumbers) {
  const StudySummary s = hand_made_summary();
  const std::vector<std::string> lines = study_ordering_sentences(s, s.variants[0]);
  auto find = [&](const std::string& start) {
    for (const std::string& l : lines) {
      if (l.rfind(start, 0) == 0) return l;
    }
    ADD_FAILURE() << "no sentence starting with " << start;
    return std::string();
  };
  EXPECT_TRUE(contains(find("loss_free reaches lower MaxVio than topk_softmax"),
                       ": reproduced (0.12 vs 0.45)"));
  EXPECT_TRUE(contains(find("loss_free's validation loss is at most topk_softmax's"),
                       ": not reproduced (4.600 vs 4.500)"));
  EXPECT_TRUE(contains(find("remoe reaches a lower validation loss than topk_softmax"),
                       ": reproduced (4.400 vs 4.500)"));
  EXPECT_TRUE(contains(find("remoe holds its sparsity"),
                       "reproduced (final training sparsity "
                       "0.740)"));
  EXPECT_TRUE(contains(find("topk_softmax (MoE) reaches a lower validation loss than the dense"),
                       ": reproduced (4.500 vs 4.700)"));
  EXPECT_TRUE(contains(find("topk_softmax reaches a lower validation loss than hash"),
                       ": not checked (hash was not run)"));
  // The fine-grained variant has no loss_free run.
  const std::vector<std::string> fine = study_ordering_sentences(s, s.variants[1]);
  bool saw = false;
  for (const std::string& l : fine) {
    if (l.rfind("loss_free reaches lower MaxVio", 0) == 0) {
      saw = true;
      EXPECT_TRUE(contains(l, "not checked (loss_free was not run)")) << l;
    }
  }
  EXPECT_TRUE(saw);
}

TEST(Study, ReportHasTheTablesSettingsAndPlots) {
  const std::string md = render_study_report(hand_made_summary());
  // One row per router of the variant plus the dense baseline, sorted by validation loss.
  EXPECT_TRUE(contains(md, "| router | val loss | ppl | MaxVio | dropped % | active experts/token"))
      << md;
  EXPECT_TRUE(contains(md,
                       "| remoe | 4.400 | 81.5 | 0.80 | 0.0 | 2.00 | 17.7M / 8.3M | 1234 | "
                       "yes | yes |"))
      << md;
  EXPECT_TRUE(contains(md, "| dense_ffn | 4.700 | 109.9 | - | - | - |")) << md;
  EXPECT_TRUE(contains(md,
                       "| moxe | n/a | n/a | n/a | 0.0 | 2.00 | 17.7M / 8.3M | 1234 | no | "
                       "yes |"))
      << md;
  EXPECT_LT(md.find("| remoe | 4.400"), md.find("| topk_softmax | 4.500"));
  EXPECT_LT(md.find("| topk_softmax | 4.500"), md.find("| moxe | n/a"));
  EXPECT_TRUE(contains(md, "| topk_softmax | 4.300 |")) << md;  // the e32k8 table
  // Settings, scale, errors, plots (only those drawn are linked).
  EXPECT_TRUE(contains(md, "3000000 tokens per run (733 optimizer steps of 4096 tokens)")) << md;
  EXPECT_TRUE(contains(md, "\nBudget arithmetic: 7200 s x 700 tokens/s.\n")) << md;
  EXPECT_TRUE(contains(md, "| ReMoE (ICLR 2025) | 182M active, E=8, k=1 | 30B | 10000x |")) << md;
  EXPECT_TRUE(contains(md, "- e8k2/moxe: stopped at step 12")) << md;
  EXPECT_TRUE(contains(md, "![validation loss vs tokens](val_loss_e8k2.png)")) << md;
  EXPECT_TRUE(contains(md, "![final expert load per layer](load_e8k2.png)")) << md;
  EXPECT_FALSE(contains(md, "maxvio_e8k2.png")) << md;
  EXPECT_TRUE(contains(md,
                       "with topk_softmax [DeepSeekMoE, OLMoE 64x8 > 8x2, ReMoE Fig 6c]: "
                       "reproduced (4.300 vs 4.500)"))
      << md;
}

TEST(Study, SummaryJsonRoundTrip) {
  const StudySummary s = hand_made_summary();
  const nlohmann::json j = s.to_json();
  const StudySummary back = StudySummary::from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.to_json(), j);
  ASSERT_EQ(back.runs.size(), s.runs.size());
  EXPECT_TRUE(std::isnan(back.runs[3].val_loss));
  EXPECT_EQ(back.runs[0].final_load, s.runs[0].final_load);
  EXPECT_EQ(render_study_report(back), render_study_report(s));
}

TEST(Study, RunRecordCountsMustBeIntegers) {
  // Found by fuzz_train_config: a float count was converted to int64_t (undefined past its range).
  const nlohmann::json good = hand_made_summary().runs[0].to_json();
  const auto error_with = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json j = good;
    j[key] = value;
    try {
      StudyRun::from_json(j);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_with("steps", 3e25), "'steps' is 3e+25, expected an integer");
  EXPECT_EQ(error_with("tokens", "12"), "'tokens' is \"12\", expected an integer");
  EXPECT_EQ(error_with("val_curve", nlohmann::json::array({nlohmann::json::array({1.5, 2, 3.0})})),
            "a step of 'val_curve' is 1.5, expected an integer");
  EXPECT_EQ(error_with("final_load", nlohmann::json::parse("[[1, 2.5]]")),
            "a count of 'final_load' is 2.5, expected an integer");
  EXPECT_EQ(error_with("steps", 12), "no error");
}

}  // namespace
}  // namespace sy::train
