#include <gtest/gtest.h>

#include <cmath>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// Two softmaxes (over <= 64 entries) and a product in f32: rounding stays near 1e-6 relative to
// the largest terms (as for topk_softmax); the bounds leave 10x room. Algebra errors show at
// >= 1e-2.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct Case {
  int64_t tokens, d_model, experts, top_k, groups;
  nlohmann::json options;
};

TEST(Smile, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, 2, {{"groups", 2}}},
      {128, 48, 64, 8, 8, nlohmann::json::object()},  // default: 8 groups of 8
      {96, 16, 8, 1, 4, {{"groups", 4}, {"normalize", true}}},
      {80,
       24,
       16,
       4,
       2,
       {{"groups", 2},
        {"normalize", true},
        {"group_balance_coeff", 0.3},
        {"expert_balance_coeff", 0.5}}},
      {60,
       12,
       64,
       8,
       4,
       {{"groups", 4}, {"group_balance_coeff", 1.0}, {"expert_balance_coeff", 2.0}}},
      {40, 8, 12, 3, 3, {{"groups", 3}, {"expert_balance_coeff", 0.7}}},
  };
  Rng rng(44);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(table.size());
  for (const Case& c : table) {
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"wg", test::random_normal({c.groups, c.d_model}, rng, 0.3f)},
                      {"we", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"d_weight", test::random_normal({c.tokens * c.top_k}, rng)}},
                     {{"top_k", c.top_k},
                      {"groups", c.groups},
                      {"normalize", c.options.value("normalize", false)},
                      {"group_balance_coeff", c.options.value("group_balance_coeff", 0.01)},
                      {"expert_balance_coeff", c.options.value("expert_balance_coeff", 0.01)}}});
  }
  const auto refs = test::run_reference_cases("router_smile", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} G={} {}", c.tokens, c.experts, c.top_k, c.groups,
                             c.options.dump()));
    auto router = build("smile", c.experts, c.top_k, c.d_model, c.options);
    param(*router, "smile.group_gate.weight").value = cases[i].inputs.at("wg").clone();
    param(*router, "smile.expert_gate.weight").value = cases[i].inputs.at("we").clone();
    const RouterRun r = run(*router, {.x = cases[i].inputs.at("x"), .training = true},
                            cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    for (const char* name : {"group_balance", "expert_balance"}) {
      EXPECT_NEAR(loss(r.routing, name), scalar_of(ref.at(std::string("loss_") + name)), 1e-5)
          << name;
    }
    EXPECT_EQ(coeff(r.routing, "group_balance"), c.options.value("group_balance_coeff", 0.01));
    EXPECT_EQ(coeff(r.routing, "expert_balance"), c.options.value("expert_balance_coeff", 0.01));
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(param(*router, "smile.group_gate.weight").grad, ref.at("d_wg"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(param(*router, "smile.expert_gate.weight").grad, ref.at("d_we"), kAtol, kRtol);
  }
}

TEST(Smile, GradientsMatchFiniteDifferences) {
  for (const bool normalize : {false, true}) {
    SCOPED_TRACE(normalize ? "normalize" : "raw");
    Rng rng(13);
    Tensor x = test::random_normal({6, 5}, rng);
    const Tensor d_weight = test::random_normal({12}, rng);
    auto router = build("smile", 6, 2, 5,
                        {{"groups", 2},
                         {"normalize", normalize},
                         {"group_balance_coeff", 0.4},
                         {"expert_balance_coeff", 0.6}});
    Param& wg = param(*router, "smile.group_gate.weight");
    Param& we = param(*router, "smile.expert_gate.weight");
    wg.value = test::random_normal({2, 5}, rng, 0.7f);
    we.value = test::random_normal({6, 5}, rng, 0.7f);
    check_gradients(*router, x, d_weight, {&wg, &we});  // groups and top-2 stay put
  }
}

TEST(Smile, OneGroupIsFlatTopKWithTheSwitchLoss) {
  Rng rng(6);
  const Tensor x = test::random_normal({50, 16}, rng);
  const Tensor w = test::random_normal({8, 16}, rng, 0.5f);
  auto smile = build("smile", 8, 2, 16, {{"groups", 1}});
  auto flat = build("topk_softmax", 8, 2, 16, {{"normalize", false}});
  param(*smile, "smile.group_gate.weight").value = test::random_normal({1, 16}, rng);
  param(*smile, "smile.expert_gate.weight").value = w.clone();
  param(*flat, "gate.weight").value = w.clone();
  const Routing a = smile->forward({.x = x});
  const Routing b = flat->forward({.x = x});
  EXPECT_TRUE(same_ids(a.expert, b.expert));
  EXPECT_ALL_CLOSE(a.weight, b.weight, 1e-6f, 1e-5f);
  EXPECT_NEAR(loss(a, "group_balance"), 1.0, 1e-6);
  EXPECT_NEAR(loss(a, "expert_balance"), loss(b, "load_balance"), 1e-6);
  EXPECT_NEAR(a.entropy, b.entropy, 1e-6);
}

TEST(Smile, ExpertsStayInTheChosenGroupAndWeightsAreProducts) {
  Rng rng(9);
  const Tensor x = test::random_normal({30, 8}, rng);
  auto router = build("smile", 12, 2, 8, {{"groups", 3}});
  Rng init_rng(2);
  router->init(init_rng);
  param(*router, "smile.group_gate.weight").value = test::random_normal({3, 8}, rng);
  const Routing r = router->forward({.x = x});
  const int32_t* ex = r.expert.data<int32_t>();
  const float* w = r.weight.data<float>();
  for (int64_t t = 0; t < 30; ++t) {
    EXPECT_EQ(ex[2 * t] / 4, ex[2 * t + 1] / 4) << "token " << t;
    EXPECT_GT(w[2 * t], 0.0f);
    EXPECT_GE(w[2 * t], w[2 * t + 1]);
    // Products of two probabilities: the two weights sum to q_g (r_1 + r_2) < 1.
    EXPECT_LT(w[2 * t] + w[2 * t + 1], 1.0f);
  }
}

TEST(Smile, DefaultGroupsAndParameters) {
  for (const auto& [experts, groups] : std::vector<std::pair<int64_t, int64_t>>{
           {4, 2}, {8, 2}, {12, 3}, {16, 4}, {64, 8}, {7, 1}}) {
    auto router = build("smile", experts, 1, 4);
    EXPECT_EQ(param(*router, "smile.group_gate.weight").value.shape(), (Shape{groups, 4}))
        << "E = " << experts;
  }
  auto router = build("smile", 8, 2, 12, {{"groups", 4}});
  const auto params = router->params();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "layers.0.mlp.smile.group_gate.weight");
  EXPECT_EQ(params[0]->value.shape(), (Shape{4, 12}));
  EXPECT_EQ(params[1]->name, "layers.0.mlp.smile.expert_gate.weight");
  EXPECT_EQ(params[1]->value.shape(), (Shape{8, 12}));
  Rng rng(1);
  router->init(rng);
  const Routing r = router->forward({.x = test::random_normal({10, 12}, rng)});
  EXPECT_EQ(coeff(r, "group_balance"), 0.01);
  EXPECT_EQ(coeff(r, "expert_balance"), 0.01);
}

TEST(Smile, RejectsBadOptions) {
  expect_error(
      [] {
        build("smile", 8, 2, 4, {{"groups", 3}});
      },
      "router 'smile': option 'groups' (3) must divide num_experts (8)");
  expect_error(
      [] {
        build("smile", 8, 2, 4, {{"groups", 0}});
      },
      "router 'smile': option 'groups' must be >= 1, got 0");
  expect_error(
      [] {
        build("smile", 8, 5, 4, {{"groups", 2}});
      },
      "router 'smile': top_k = 5 exceeds the 4 experts of a group (num_experts 8 / "
      "groups 2)");
  expect_error(
      [] {
        build("smile", 8, 2, 4, {{"expert_balance_coeff", -0.5}});
      },
      "router 'smile': option 'expert_balance_coeff' must be >= 0, got -0.5");
  expect_error(
      [] {
        build("smile", 8, 2, 4, {{"nodes", 2}});
      },
      "router 'smile': unknown option 'nodes'; valid options: expert_balance_coeff, "
      "group_balance_coeff, groups, normalize");
}

TEST(Smile, RunsInsideTheMoeLayer) {
  check_in_moe_layer(
      "smile", {{"normalize", true}, {"expert_balance_coeff", 0.5}},
      [](Router& r, Rng& rng) {
        param(r, "smile.group_gate.weight").value = test::random_normal({2, 6}, rng, 0.7f);
        param(r, "smile.expert_gate.weight").value = test::random_normal({4, 6}, rng, 0.7f);
      },
      "smile.group_gate.weight");
}

}  // namespace
}  // namespace sy::moe
