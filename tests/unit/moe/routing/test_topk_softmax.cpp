#include <gtest/gtest.h>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// f32 tolerances: each weight is a softmax of a D-term dot product (D <= 64) and each gradient
// a sum over T <= 256 tokens of such terms; float32 rounding stays near 1e-6 relative, while any
// algebra slip (a missing softmax term, a wrong coefficient) shows at 1e-3 or worse.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct Case {
  int64_t tokens, d_model, experts, top_k;
  nlohmann::json options;
  const char* weights;  // reference mode: raw | renorm | after
};

Tensor upstream(int64_t n, Rng& rng) {
  // Some slots get exactly 0, as dropped slots do.
  Tensor d = test::random_normal({n}, rng);
  for (int64_t i = 0; i < n; i += 7) d.mutable_data<float>()[i] = 0.0f;
  return d;
}

TEST(TopKSoftmax, MatchesPyTorchForwardBackwardAndLosses) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, {{"aux_loss_coeff", 0.01}, {"z_loss_coeff", 1e-3}}, "renorm"},
      {128,
       48,
       64,
       8,
       {{"normalize", false}, {"aux_loss_coeff", 0.01}, {"z_loss_coeff", 1e-3}},
       "raw"},
      {96, 16, 8, 2, {{"softmax_after_topk", true}, {"aux_loss_coeff", 0.02}}, "after"},
      {256, 64, 64, 8, nlohmann::json::object(), "renorm"},
      {33, 8, 4, 1, {{"normalize", false}, {"z_loss_coeff", 0.1}}, "raw"},
      {40, 8, 8, 8, {{"normalize", false}, {"aux_loss_coeff", 0.5}}, "raw"},
  };
  Rng rng(2024);
  std::vector<test::ReferenceCase> cases;
  for (const Case& c : table) {
    nlohmann::json params = c.options;
    params["router"] = "softmax_topk";
    params["top_k"] = c.top_k;
    params["weights"] = c.weights;
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"d_weight", upstream(c.tokens * c.top_k, rng)}},
                     params});
  }
  const auto refs = test::run_reference_cases("routers", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} {}", c.tokens, c.experts, c.top_k, c.options.dump()));
    auto router = build("topk_softmax", c.experts, c.top_k, c.d_model, c.options);
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    RouterInput in{.x = cases[i].inputs.at("x"), .training = true};
    const RouterRun r = run(*router, in, cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_NEAR(loss(r.routing, "load_balance"), scalar_of(ref.at("loss_load_balance")), 1e-5);
    EXPECT_NEAR(loss(r.routing, "z_loss"), scalar_of(ref.at("loss_z_loss")),
                1e-5 * scalar_of(ref.at("loss_z_loss")));
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, ref.at("d_w"), kAtol, kRtol);
    // Slot layout: token-major, choice-minor.
    for (int64_t s = 0; s < c.tokens * c.top_k; ++s) {
      ASSERT_EQ(r.routing.token.data<int32_t>()[s], s / c.top_k);
      ASSERT_EQ(r.routing.choice.data<int32_t>()[s], s % c.top_k);
    }
  }
}

TEST(TopKSoftmax, RenormalizedEqualsSoftmaxAfterTopKInValueAndGradient) {
  Rng rng(5);
  const Tensor x = test::random_normal({128, 32}, rng);
  const Tensor w = test::random_normal({64, 32}, rng, 0.5f);
  const Tensor d_weight = upstream(128 * 8, rng);
  const nlohmann::json losses = {{"aux_loss_coeff", 0.01}, {"z_loss_coeff", 1e-3}};
  auto renorm = build("topk_softmax", 64, 8, 32, losses);
  nlohmann::json after_opts = losses;
  after_opts["softmax_after_topk"] = true;
  auto after = build("topk_softmax", 64, 8, 32, after_opts);
  param(*renorm, "gate.weight").value = w.clone();
  param(*after, "gate.weight").value = w.clone();
  RouterInput in{.x = x, .training = true};
  const RouterRun a = run(*renorm, in, d_weight);
  const RouterRun b = run(*after, in, d_weight);
  EXPECT_TRUE(same_ids(a.routing.expert, b.routing.expert));
  EXPECT_ALL_CLOSE(a.routing.weight, b.routing.weight, 1e-6f, 1e-5f);
  EXPECT_ALL_CLOSE(a.d_x, b.d_x, 1e-6f, 1e-5f);
  EXPECT_ALL_CLOSE(a.d_gate, b.d_gate, 1e-6f, 1e-5f);
  EXPECT_DOUBLE_EQ(loss(a.routing, "load_balance"), loss(b.routing, "load_balance"));
}

// d/dx and d/dW of sum(weight * d_weight) + sum(coeff * loss), by central differences.
void check_finite_differences(const nlohmann::json& options) {
  SCOPED_TRACE(options.dump());
  Rng rng(11);
  Tensor x = test::random_normal({6, 5}, rng);
  const Tensor d_weight = test::random_normal({6 * 2}, rng);
  auto router = build("topk_softmax", 5, 2, 5, options);
  Param& gate = param(*router, "gate.weight");
  gate.value = test::random_normal({5, 5}, rng, 0.7f);
  RouterInput in{.x = x, .training = true};
  auto objective = [&] {
    const Routing r = router->forward(in);
    double total = test::dot(r.weight, d_weight);
    for (const AuxLoss& l : r.losses) total += l.coeff * l.value;
    return total;
  };
  const Tensor num_x = test::numeric_gradient(x, objective);
  const Tensor num_w = test::numeric_gradient(gate.value, objective);
  const RouterRun r = run(*router, in, d_weight);
  // f32 central differences with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
}

TEST(TopKSoftmax, GradientsMatchFiniteDifferences) {
  check_finite_differences({{"normalize", false}, {"aux_loss_coeff", 0.3}, {"z_loss_coeff", 0.1}});
  check_finite_differences({{"aux_loss_coeff", 0.3}, {"z_loss_coeff", 0.1}});
  check_finite_differences({{"softmax_after_topk", true}});
}

TEST(TopKSoftmax, UniformRouterReportsUnitBalanceLossAndEntropy) {
  // W = 0: p uniform, ties go to the lower index, so every token picks experts 0..K-1:
  // f_e = 1/K for e < K, P_e = 1/E, loss = E * K * (1/K) * (1/E) = 1; entropy 1.
  auto router = build("topk_softmax", 8, 2, 4);
  const Routing r = router->forward({.x = Tensor::zeros({10, 4})});
  EXPECT_NEAR(loss(r, "load_balance"), 1.0, 1e-6);
  EXPECT_NEAR(loss(r, "z_loss"), std::log(8.0) * std::log(8.0), 1e-5);
  EXPECT_EQ(coeff(r, "load_balance"), 0.0);
  EXPECT_EQ(coeff(r, "z_loss"), 0.0);
  EXPECT_NEAR(r.entropy, 1.0, 1e-6);
  EXPECT_NEAR(r.weight.data<float>()[0], 0.5f, 1e-7f);
  EXPECT_EQ(r.expert.data<int32_t>()[1], 1);
}

TEST(TopKSoftmax, RejectsBadConfigurationsWithClearErrors) {
  expect_error([] { build("topk_softmax", 8, 9, 4); },
               "router 'topk_softmax': top_k = 9, expected 1 <= top_k <= num_experts = 8");
  expect_error([] { build("topk_softmax", 8, 0, 4); },
               "router 'topk_softmax': top_k = 0, expected 1 <= top_k <= num_experts = 8");
  expect_error(
      [] {
        build("topk_softmax", 8, 2, 4, {{"normalise", true}});
      },
      "router 'topk_softmax': unknown option 'normalise'; valid options: "
      "aux_loss_coeff, normalize, softmax_after_topk, z_loss_coeff");
  expect_error(
      [] {
        build("topk_softmax", 8, 2, 4, {{"normalize", 1}});
      },
      "router 'topk_softmax': option 'normalize' must be true or false, got 1");
  expect_error(
      [] {
        build("topk_softmax", 8, 2, 4, {{"aux_loss_coeff", -1}});
      },
      "router 'topk_softmax': aux_loss_coeff = -1, expected >= 0");
  expect_error(
      [] {
        build("topk_softmax", 8, 2, 4, {{"normalize", false}, {"softmax_after_topk", true}});
      },
      "router 'topk_softmax': softmax_after_topk gives weights that sum to 1; it cannot be "
      "combined with normalize = false");
  auto router = build("topk_softmax", 8, 2, 4);
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({3, 5})});
      },
      "router 'topk_softmax': x: shape [3, 5], expected [*, 4]");
}

}  // namespace
}  // namespace sy::moe
