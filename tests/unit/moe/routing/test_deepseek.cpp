#include <gtest/gtest.h>

#include <set>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// Same bounds as topk_softmax (see test_topk_softmax.cpp): f32 rounding ~1e-6 relative; the
// routed scaling factor (up to 16) scales weights and gradients, hence the relative bound.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct Case {
  int64_t tokens, d_model, experts, top_k, seq_len;
  nlohmann::json options;
};

TEST(DeepSeek, MatchesPyTorchForwardBackwardAndSeqBalance) {
  const std::vector<Case> table = {
      // V3 shape in small: 8 groups, 4 used, sigmoid, normalised, scaled by 2.5.
      {128,
       32,
       64,
       8,
       32,
       {{"n_group", 8},
        {"topk_group", 4},
        {"routed_scaling_factor", 2.5},
        {"seq_aux_coeff", 0.01}}},
      // V2 style: softmax, group max, no norm, scale 16.
      {96,
       16,
       8,
       2,
       0,
       {{"score", "softmax"},
        {"n_group", 4},
        {"topk_group", 2},
        {"group_score", "max"},
        {"norm_topk_prob", false},
        {"routed_scaling_factor", 16.0},
        {"seq_aux_coeff", 1e-3}}},
      {64, 24, 8, 2, 16, nlohmann::json::object()},
      {256, 16, 64, 8, 64, {{"seq_aux_coeff", 0.1}, {"norm_topk_prob", false}}},
  };
  Rng rng(41);
  std::vector<test::ReferenceCase> cases;
  for (const Case& c : table) {
    const auto n_group = c.options.value("n_group", 1);
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"bias", test::random_normal({c.experts}, rng, 0.1f)},
                      {"d_weight", test::random_normal({c.tokens * c.top_k}, rng)}},
                     {{"router", "biased"},
                      {"top_k", c.top_k},
                      {"score", c.options.value("score", "sigmoid")},
                      {"n_group", n_group},
                      {"topk_group", c.options.value("topk_group", n_group)},
                      {"group_score", c.options.value("group_score", "top2_sum")},
                      {"normalize", c.options.value("norm_topk_prob", true)},
                      {"scaling", c.options.value("routed_scaling_factor", 1.0)},
                      {"seq_aux_coeff", c.options.value("seq_aux_coeff", 1e-4)},
                      {"seq_len", c.seq_len}}});
  }
  const auto refs = test::run_reference_cases("routers", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} {}", c.tokens, c.experts, c.top_k, c.options.dump()));
    auto router = build("deepseek", c.experts, c.top_k, c.d_model, c.options);
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    param(*router, "gate.e_score_correction_bias").value = cases[i].inputs.at("bias").clone();
    const RouterRun r =
        run(*router, {.x = cases[i].inputs.at("x"), .seq_len = c.seq_len, .training = true},
            cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_NEAR(loss(r.routing, "seq_balance"), scalar_of(ref.at("loss_seq_balance")), 1e-5);
    EXPECT_EQ(coeff(r.routing, "seq_balance"), c.options.value("seq_aux_coeff", 1e-4));
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, ref.at("d_w"), kAtol, kRtol);
  }
}

TEST(DeepSeek, EveryTokenStaysInsideItsTopGroups) {
  Rng rng(2);
  auto router = build("deepseek", 64, 8, 16, {{"n_group", 8}, {"topk_group", 3}});
  param(*router, "gate.weight").value = test::random_normal({64, 16}, rng);
  const Routing r = router->forward({.x = test::random_normal({100, 16}, rng)});
  for (int64_t t = 0; t < 100; ++t) {
    std::set<int> groups;
    for (int64_t j = 0; j < 8; ++j) groups.insert(r.expert.data<int32_t>()[t * 8 + j] / 8);
    EXPECT_LE(groups.size(), 3u) << "token " << t;
  }
}

TEST(DeepSeek, GradientsIncludingSeqBalanceMatchFiniteDifferences) {
  for (const char* score : {"sigmoid", "softmax"}) {
    SCOPED_TRACE(score);
    Rng rng(13);
    Tensor x = test::random_normal({6, 5}, rng);
    auto router = build("deepseek", 8, 2, 5,
                        {{"score", score},
                         {"n_group", 4},
                         {"topk_group", 2},
                         {"routed_scaling_factor", 2.5},
                         {"seq_aux_coeff", 0.5}});
    Param& gate = param(*router, "gate.weight");
    gate.value = test::random_normal({8, 5}, rng, 0.7f);
    param(*router, "gate.e_score_correction_bias").value = test::random_normal({8}, rng, 0.1f);
    const Tensor d_weight = test::random_normal({12}, rng);
    auto objective = [&] {
      const Routing r = router->forward({.x = x, .seq_len = 3});
      return test::dot(r.weight, d_weight) + r.losses[0].coeff * r.losses[0].value;
    };
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_w = test::numeric_gradient(gate.value, objective);
    const RouterRun r = run(*router, {.x = x, .seq_len = 3}, d_weight);
    EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
  }
}

TEST(DeepSeek, CorrectionBiasUpdatesAcrossStepsAndCanBeFrozen) {
  Rng rng(5);
  const Tensor x = test::random_normal({64, 8}, rng);
  const Tensor w = test::random_normal({16, 8}, rng);
  auto moving = build("deepseek", 16, 2, 8, {{"n_group", 4}, {"topk_group", 2}});
  auto frozen = build("deepseek", 16, 2, 8, {{"bias_update_rate", 0.0}});
  param(*moving, "gate.weight").value = w.clone();
  param(*frozen, "gate.weight").value = w.clone();
  const Routing r = moving->forward({.x = x, .training = true});
  frozen->forward({.x = x, .training = true});
  std::vector<double> c(16, 0.0);
  for (int64_t i = 0; i < r.expert.numel(); ++i) c[r.expert.data<int32_t>()[i]] += 1.0;
  moving->end_step();
  frozen->end_step();
  const float* b = param(*moving, "gate.e_score_correction_bias").value.data<float>();
  for (size_t e = 0; e < 16; ++e) {
    EXPECT_EQ(b[e], c[e] < 8.0 ? 1e-3f : (c[e] > 8.0 ? -1e-3f : 0.0f)) << "expert " << e;
    EXPECT_EQ(param(*frozen, "gate.e_score_correction_bias").value.data<float>()[e], 0.0f);
  }
}

TEST(DeepSeek, RejectsBadGroupsAndSequences) {
  expect_error(
      [] {
        build("deepseek", 8, 2, 4, {{"n_group", 3}});
      },
      "router 'deepseek': n_group = 3 does not divide num_experts = 8");
  expect_error(
      [] {
        build("deepseek", 8, 2, 4, {{"n_group", 4}, {"topk_group", 5}});
      },
      "router 'deepseek': topk_group = 5, expected 1 <= topk_group <= n_group = 4");
  expect_error(
      [] {
        build("deepseek", 16, 6, 4, {{"n_group", 4}, {"topk_group", 1}});
      },
      "router 'deepseek': top_k = 6 exceeds the 4 experts in topk_group = 1 groups of 4");
  expect_error(
      [] {
        build("deepseek", 8, 2, 4, {{"group_score", "sum"}});
      },
      "router 'deepseek': option 'group_score' = \"sum\", expected one of: top2_sum, max");
  expect_error(
      [] {
        build("deepseek", 8, 2, 4, {{"n_group", 2.0}});
      },
      "router 'deepseek': option 'n_group' must be an integer, got 2.0");
  auto router = build("deepseek", 8, 2, 4);
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({10, 4}), .seq_len = 4});
      },
      "router 'deepseek': 10 tokens are not a whole number of sequences of 4");
}

}  // namespace
}  // namespace sy::moe
