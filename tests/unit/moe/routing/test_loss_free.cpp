#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// Same bounds as topk_softmax (see test_topk_softmax.cpp): f32 rounding ~1e-6 relative.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct Case {
  int64_t tokens, d_model, experts, top_k;
  nlohmann::json options;
};

TEST(LossFree, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, nlohmann::json::object()},
      {128, 48, 64, 8, {{"normalize", true}}},
      {96, 16, 8, 2, {{"score", "softmax"}}},
      {256, 24, 64, 8, {{"score", "softmax"}, {"normalize", true}}},
  };
  Rng rng(12);
  std::vector<test::ReferenceCase> cases;
  for (const Case& c : table) {
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"bias", test::random_normal({c.experts}, rng, 0.1f)},
                      {"d_weight", test::random_normal({c.tokens * c.top_k}, rng)}},
                     {{"router", "biased"},
                      {"top_k", c.top_k},
                      {"score", c.options.value("score", "sigmoid")},
                      {"normalize", c.options.value("normalize", false)}}});
  }
  const auto refs = test::run_reference_cases("routers", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} {}", c.tokens, c.experts, c.top_k, c.options.dump()));
    auto router = build("loss_free", c.experts, c.top_k, c.d_model, c.options);
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    param(*router, "gate.expert_bias").value = cases[i].inputs.at("bias").clone();
    const RouterRun r = run(*router, {.x = cases[i].inputs.at("x"), .training = true},
                            cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, ref.at("d_w"), kAtol, kRtol);
    EXPECT_TRUE(r.routing.losses.empty());
  }
}

TEST(LossFree, BiasSteersSelectionButNotTheWeight) {
  Rng rng(1);
  const Tensor x = test::random_normal({20, 8}, rng);
  auto router = build("loss_free", 4, 1, 8);
  param(*router, "gate.weight").value = test::random_normal({4, 8}, rng);
  EXPECT_FALSE(param(*router, "gate.expert_bias").trainable_param());
  param(*router, "gate.expert_bias").value = Tensor::from_f32({4}, {0, 0, 0, 10});
  const Routing r = router->forward({.x = x});
  Tensor logits = Tensor::zeros({20, 4});
  const float* w = param(*router, "gate.weight").value.data<float>();
  for (int64_t t = 0; t < 20; ++t) {
    ASSERT_EQ(r.expert.data<int32_t>()[t], 3);
    double l = 0;
    for (int64_t d = 0; d < 8; ++d) l += x.data<float>()[t * 8 + d] * w[3 * 8 + d];
    EXPECT_NEAR(r.weight.data<float>()[t], 1.0 / (1.0 + std::exp(-l)), 1e-6);
  }
}

std::vector<double> counts_of(const Routing& r, int64_t experts) {
  std::vector<double> c(static_cast<size_t>(experts), 0.0);
  for (int64_t i = 0; i < r.expert.numel(); ++i) c[r.expert.data<int32_t>()[i]] += 1.0;
  return c;
}

TEST(LossFree, BiasUpdateUsesCountsOfTrainingForwardsSinceLastStep) {
  Rng rng(9);
  auto router = build("loss_free", 8, 2, 16, {{"bias_update_rate", 0.25}});
  param(*router, "gate.weight").value = test::random_normal({8, 16}, rng);
  const Tensor x1 = test::random_normal({40, 16}, rng), x2 = test::random_normal({24, 16}, rng);
  const Routing a = router->forward({.x = x1, .training = true});
  const Routing b = router->forward({.x = x2, .training = true});
  router->forward({.x = x1, .training = false});  // not counted
  std::vector<double> c = counts_of(a, 8);
  const std::vector<double> cb = counts_of(b, 8);
  for (size_t e = 0; e < 8; ++e) c[e] += cb[e];
  const double mean = (40 + 24) * 2 / 8.0;
  router->end_step();
  const float* bias = param(*router, "gate.expert_bias").value.data<float>();
  for (size_t e = 0; e < 8; ++e) {
    const float expected = c[e] < mean ? 0.25f : (c[e] > mean ? -0.25f : 0.0f);
    EXPECT_EQ(bias[e], expected) << "expert " << e << " count " << c[e];
  }
  // No training forward since: the bias stays.
  const Tensor before = param(*router, "gate.expert_bias").value.clone();
  router->end_step();
  EXPECT_ALL_CLOSE(param(*router, "gate.expert_bias").value, before, 0.0f, 0.0f);
}

TEST(LossFree, BiasUpdatesBalanceASkewedRouter) {
  // A gate that favours expert 0 heavily; the updates alone must even the load out.
  Rng rng(21);
  auto router = build("loss_free", 8, 2, 16, {{"bias_update_rate", 1e-2}});
  Tensor w = test::random_normal({8, 16}, rng, 0.2f);
  for (int64_t d = 0; d < 16; ++d) w.mutable_data<float>()[d] += 0.5f;
  param(*router, "gate.weight").value = w;
  Tensor x = test::random_normal({256, 16}, rng);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] += 0.5f;
  auto max_vio = [&] {
    const auto c = counts_of(router->forward({.x = x}), 8);
    const double mean = 256 * 2 / 8.0;
    return (*std::max_element(c.begin(), c.end()) - mean) / mean;
  };
  const double start = max_vio();
  for (int step = 0; step < 300; ++step) {
    router->forward({.x = x, .training = true});
    router->end_step();
  }
  const double end = max_vio();
  EXPECT_GT(start, 1.0);
  EXPECT_LT(end, 0.25);
}

TEST(LossFree, GradientsMatchFiniteDifferences) {
  for (const char* score : {"sigmoid", "softmax"}) {
    SCOPED_TRACE(score);
    Rng rng(6);
    Tensor x = test::random_normal({6, 5}, rng);
    auto router = build("loss_free", 5, 2, 5, {{"score", score}, {"normalize", true}});
    Param& gate = param(*router, "gate.weight");
    gate.value = test::random_normal({5, 5}, rng, 0.7f);
    param(*router, "gate.expert_bias").value = test::random_normal({5}, rng, 0.1f);
    const Tensor d_weight = test::random_normal({12}, rng);
    auto objective = [&] { return test::dot(router->forward({.x = x}).weight, d_weight); };
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_w = test::numeric_gradient(gate.value, objective);
    const RouterRun r = run(*router, {.x = x}, d_weight);
    EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
  }
}

TEST(LossFree, RejectsBadOptions) {
  expect_error(
      [] {
        build("loss_free", 8, 2, 4, {{"score", "relu"}});
      },
      "router 'loss_free': option 'score' = \"relu\", expected one of: sigmoid, softmax");
  expect_error(
      [] {
        build("loss_free", 8, 2, 4, {{"bias_update_rate", -1e-3}});
      },
      "router 'loss_free': bias_update_rate = -0.001, expected >= 0");
  expect_error(
      [] {
        build("loss_free", 8, 2, 4, {{"n_group", 2}});
      },
      "router 'loss_free': unknown option 'n_group'; valid options: bias_update_rate, "
      "normalize, score");
}

}  // namespace
}  // namespace sy::moe
