#include <gtest/gtest.h>

#include <cmath>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// f32 rounding of a softmax of logits up to 1/tau ~ 15 and of two row normalisations stays near
// 1e-6 relative to the largest terms (measured: d_tau within 1e-6 relative of the float64
// reference); the bounds leave 10x room. Algebra errors show at >= 1e-2.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct Case {
  int64_t tokens, d_model, experts, top_k, proj_dim;
  float tau;
  nlohmann::json options;
};

void set_params(Router& router, const test::NamedTensors& in) {
  param(router, "xmoe.proj.weight").value = in.at("proj").clone();
  param(router, "xmoe.expert_emb").value = in.at("emb").clone();
  param(router, "xmoe.temperature").value = in.at("tau").clone();
}

TEST(XMoE, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, 16, 0.07f, nlohmann::json::object()},
      {128, 48, 64, 8, 16, 0.07f, {{"normalize", true}, {"aux_loss_coeff", 0.05}}},
      {50, 24, 8, 1, 4, 0.5f, {{"proj_dim", 4}}},
      {96, 16, 16, 4, 8, 0.2f, {{"proj_dim", 8}, {"normalize", true}, {"aux_loss_coeff", 0.0}}},
      {80, 20, 64, 8, 32, 1.3f, {{"proj_dim", 32}, {"aux_loss_coeff", 0.3}}},
  };
  Rng rng(31);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(table.size());
  for (const Case& c : table) {
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"proj", test::random_normal({c.proj_dim, c.d_model}, rng, 0.3f)},
                      {"emb", test::random_normal({c.experts, c.proj_dim}, rng)},
                      {"tau", scalar(c.tau)},
                      {"d_weight", test::random_normal({c.tokens * c.top_k}, rng)}},
                     {{"top_k", c.top_k},
                      {"normalize", c.options.value("normalize", false)},
                      {"aux_loss_coeff", c.options.value("aux_loss_coeff", 0.01)}}});
  }
  const auto refs = test::run_reference_cases("router_xmoe", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} P={} tau={} {}", c.tokens, c.experts, c.top_k,
                             c.proj_dim, c.tau, c.options.dump()));
    auto router = build("xmoe", c.experts, c.top_k, c.d_model, c.options);
    set_params(*router, cases[i].inputs);
    const RouterRun r = run(*router, {.x = cases[i].inputs.at("x"), .training = true},
                            cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_NEAR(loss(r.routing, "load_balance"), scalar_of(ref.at("loss_load_balance")), 1e-5);
    EXPECT_EQ(coeff(r.routing, "load_balance"), c.options.value("aux_loss_coeff", 0.01));
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(param(*router, "xmoe.proj.weight").grad, ref.at("d_proj"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(param(*router, "xmoe.expert_emb").grad, ref.at("d_emb"), kAtol, kRtol);
    const double d_tau = scalar_of(ref.at("d_tau"));
    EXPECT_NEAR(scalar_of(param(*router, "xmoe.temperature").grad), d_tau,
                2e-5 * std::abs(d_tau) + 1e-6);
  }
}

TEST(XMoE, GradientsMatchFiniteDifferences) {
  for (const bool normalize : {false, true}) {
    SCOPED_TRACE(normalize ? "normalize" : "raw");
    Rng rng(5);
    Tensor x = test::random_normal({6, 5}, rng);
    const Tensor d_weight = test::random_normal({12}, rng);
    auto router = build("xmoe", 4, 2, 5,
                        {{"proj_dim", 3}, {"normalize", normalize}, {"aux_loss_coeff", 0.3}});
    Param& proj = param(*router, "xmoe.proj.weight");
    Param& emb = param(*router, "xmoe.expert_emb");
    Param& tau = param(*router, "xmoe.temperature");
    proj.value = test::random_normal({3, 5}, rng, 0.7f);
    emb.value = test::random_normal({4, 3}, rng);
    tau.value = scalar(0.6);
    check_gradients(*router, x, d_weight, {&proj, &emb, &tau});
    EXPECT_GT(std::abs(scalar_of(tau.grad)), 1e-3);  // the check above is not vacuous
  }
}

TEST(XMoE, TemperatureIsFlooredAndScoresIgnoreNorms) {
  Rng rng(2);
  const Tensor x = test::random_normal({20, 8}, rng);
  auto router = build("xmoe", 8, 2, 8, {{"proj_dim", 4}});
  param(*router, "xmoe.proj.weight").value = test::random_normal({4, 8}, rng);
  param(*router, "xmoe.expert_emb").value = test::random_normal({8, 4}, rng);
  // Scaling x, the projection or an expert embedding leaves the cosine scores unchanged.
  const Routing base = router->forward({.x = x});
  Tensor emb = param(*router, "xmoe.expert_emb").value.clone();
  for (int64_t i = 0; i < emb.numel(); ++i) emb.mutable_data<float>()[i] *= 3.0f;
  param(*router, "xmoe.expert_emb").value = emb;
  const Routing scaled = router->forward({.x = x});
  EXPECT_TRUE(same_ids(base.expert, scaled.expert));
  EXPECT_ALL_CLOSE(scaled.weight, base.weight, 1e-6f, 1e-5f);
  // Below the floor the temperature acts as 1e-4 and gets no gradient.
  param(*router, "xmoe.temperature").value = scalar(1e-6);
  const RouterRun low = run(*router, {.x = x}, test::random_normal({40}, rng));
  param(*router, "xmoe.temperature").value = scalar(1e-4);
  const Routing floor = router->forward({.x = x});
  EXPECT_ALL_CLOSE(low.routing.weight, floor.weight, 0.0f, 0.0f);
  EXPECT_EQ(scalar_of(param(*router, "xmoe.temperature").grad), 0.0);
}

TEST(XMoE, ParametersAndDefaults) {
  auto router = build("xmoe", 8, 2, 12);
  const auto params = router->params();
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params[0]->name, "layers.0.mlp.xmoe.proj.weight");
  EXPECT_EQ(params[0]->value.shape(), (Shape{16, 12}));
  EXPECT_EQ(params[1]->name, "layers.0.mlp.xmoe.expert_emb");
  EXPECT_EQ(params[1]->value.shape(), (Shape{8, 16}));
  EXPECT_EQ(params[2]->name, "layers.0.mlp.xmoe.temperature");
  EXPECT_EQ(params[2]->value.shape(), (Shape{1}));
  EXPECT_FLOAT_EQ(scalar_of(params[2]->value), 0.07f);
  Rng rng(1);
  router->init(rng);
  EXPECT_FLOAT_EQ(scalar_of(params[2]->value), 0.07f);
  const Routing r = router->forward({.x = test::random_normal({10, 12}, rng)});
  EXPECT_EQ(coeff(r, "load_balance"), 0.01);
  // Raw gate: the K weights are probabilities of the full softmax and sum to less than 1.
  for (int64_t t = 0; t < 10; ++t) {
    EXPECT_LT(r.weight.data<float>()[2 * t] + r.weight.data<float>()[2 * t + 1], 1.0f);
  }
}

TEST(XMoE, RejectsBadOptions) {
  expect_error(
      [] {
        build("xmoe", 8, 2, 4, {{"proj_dim", 0}});
      },
      "router 'xmoe': option 'proj_dim' must be >= 1, got 0");
  expect_error(
      [] {
        build("xmoe", 8, 2, 4, {{"temperature_init", 0.0}});
      },
      "router 'xmoe': option 'temperature_init' must be > 0.0001 (the temperature "
      "floor), got 0");
  expect_error(
      [] {
        build("xmoe", 8, 2, 4, {{"aux_loss_coeff", -1.0}});
      },
      "router 'xmoe': option 'aux_loss_coeff' must be >= 0, got -1");
  expect_error(
      [] {
        build("xmoe", 8, 2, 4, {{"proj_dim", 2.5}});
      },
      "router 'xmoe': option 'proj_dim' must be an integer, got 2.5");
  expect_error(
      [] {
        build("xmoe", 8, 2, 4, {{"tau", 0.1}});
      },
      "router 'xmoe': unknown option 'tau'; valid options: aux_loss_coeff, normalize, "
      "proj_dim, temperature_init");
  expect_error([] { build("xmoe", 8, 9, 4); },
               "router 'xmoe': top_k = 9, expected 1 <= top_k <= num_experts = 8");
}

TEST(XMoE, RunsInsideTheMoeLayer) {
  check_in_moe_layer(
      "xmoe", {{"proj_dim", 3}, {"temperature_init", 0.5}},
      [](Router& r, Rng& rng) {
        param(r, "xmoe.proj.weight").value = test::random_normal({3, 6}, rng, 0.7f);
      },
      "xmoe.proj.weight");
}

}  // namespace
}  // namespace sy::moe
