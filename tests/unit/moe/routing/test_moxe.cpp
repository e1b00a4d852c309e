#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// Two softmaxes, a sigmoid and sums over <= 64 terms in f32: rounding stays near 1e-6 relative
// to the largest terms (as for topk_softmax); the bounds leave 10x room. Algebra errors show at
// >= 1e-2.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct Case {
  int64_t tokens, d_model, experts, top_k;
  nlohmann::json options;
};

nlohmann::json reference_params(const Case& c) {
  const auto& o = c.options;
  return {{"top_k", c.top_k},
          {"gamma", o.value("gamma", 0.7)},
          {"threshold", o.value("difficulty_threshold", 0.9)},
          {"modulation", o.value("modulation", "standard")},
          {"group_loss", o.value("group_loss", "kl_div")},
          {"z_loss_coeff", o.value("z_loss_coeff", 1e-3)},
          {"aux_loss_coeff", o.value("aux_loss_coeff", 1e-2)},
          {"d_loss_coeff", o.value("d_loss_coeff", 1e-2)},
          {"group_loss_coeff", o.value("group_loss_coeff", 1e-2)}};
}

void set_params(Router& router, const test::NamedTensors& in) {
  param(router, "gate.weight").value = in.at("w").clone();
  if (in.count("b") != 0) param(router, "gate.bias").value = in.at("b").clone();
  param(router, "moxe.entropy_predictor.weight").value = in.at("wd").clone();
  param(router, "moxe.entropy_predictor.bias").value = in.at("bd").clone();
}

const char* const kLosses[] = {"z_loss", "load_balance", "d_loss", "group_loss"};

TEST(MoxE, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, nlohmann::json::object()},
      {128,
       48,
       64,
       8,
       {{"modulation", "proportional"},
        {"difficulty_threshold", 0.6},
        {"group_loss", "js_div"},
        {"d_loss_coeff", 0.3}}},
      {96,
       16,
       8,
       2,
       {{"modulation", "masked"},
        {"difficulty_threshold", 0.7},
        {"gamma", 2.0},
        {"group_loss", "self_balance"},
        {"gate_bias", false},
        {"group_loss_coeff", 0.5}}},
      {80,
       24,
       16,
       4,
       {{"group_loss", "bounded"},
        {"aux_loss_coeff", 0.4},
        {"z_loss_coeff", 0.05},
        {"group_loss_coeff", 0.2}}},
      {50, 12, 64, 8, {{"gamma", 0.3}, {"aux_loss_coeff", 2.0}, {"group_loss_coeff", 0.7}}},
  };
  Rng rng(17);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(table.size());
  for (const Case& c : table) {
    test::NamedTensors in = {{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                             {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                             {"wd", test::random_normal({1, c.d_model}, rng, 0.3f)},
                             {"bd", scalar(1.0)},
                             {"d_weight", test::random_normal({c.tokens * c.top_k}, rng)}};
    if (c.options.value("gate_bias", true)) in["b"] = test::random_normal({c.experts}, rng, 0.5f);
    cases.push_back({in, reference_params(c)});
  }
  const auto refs = test::run_reference_cases("router_moxe", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} {}", c.tokens, c.experts, c.top_k, c.options.dump()));
    auto router = build("moxe", c.experts, c.top_k, c.d_model, c.options);
    set_params(*router, cases[i].inputs);
    const RouterRun r = run(*router, {.x = cases[i].inputs.at("x"), .training = true},
                            cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    for (const char* name : kLosses) {
      const double want = scalar_of(ref.at(std::string("loss_") + name));
      EXPECT_NEAR(loss(r.routing, name), want, 1e-5 * std::max(1.0, std::abs(want))) << name;
    }
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(param(*router, "gate.weight").grad, ref.at("d_w"), kAtol, kRtol);
    if (c.options.value("gate_bias", true)) {
      EXPECT_ALL_CLOSE(param(*router, "gate.bias").grad, ref.at("d_b"), kAtol, kRtol);
    }
    EXPECT_ALL_CLOSE(param(*router, "moxe.entropy_predictor.weight").grad, ref.at("d_wd"), kAtol,
                     kRtol);
    EXPECT_ALL_CLOSE(param(*router, "moxe.entropy_predictor.bias").grad, ref.at("d_bd"), kAtol,
                     kRtol);
  }
}

TEST(MoxE, GradientsMatchFiniteDifferences) {
  const std::vector<nlohmann::json> variants = {
      {{"modulation", "standard"}, {"group_loss", "kl_div"}},
      {{"modulation", "proportional"}, {"group_loss", "js_div"}},
      {{"modulation", "masked"}, {"group_loss", "self_balance"}},
      {{"modulation", "standard"}, {"group_loss", "bounded"}, {"gate_bias", false}},
  };
  for (nlohmann::json options : variants) {
    SCOPED_TRACE(options.dump());
    options["gamma"] = 1.5;
    options["difficulty_threshold"] = 0.5;
    for (const char* key : {"z_loss_coeff", "aux_loss_coeff", "d_loss_coeff", "group_loss_coeff"}) {
      options[key] = 0.4;
    }
    Rng rng(23);
    Tensor x = test::random_normal({6, 5}, rng);
    const Tensor d_weight = test::random_normal({12}, rng);
    auto router = build("moxe", 4, 2, 5, options);
    Param& w = param(*router, "gate.weight");
    Param& wd = param(*router, "moxe.entropy_predictor.weight");
    Param& bd = param(*router, "moxe.entropy_predictor.bias");
    w.value = test::random_normal({4, 5}, rng, 0.7f);
    wd.value = test::random_normal({1, 5}, rng, 0.7f);
    bd.value = scalar(0.2);
    // The modulation's kink at the threshold must be out of reach of the perturbations.
    for (int64_t t = 0; t < 6; ++t) {
      double s = 0.2;
      for (int64_t c = 0; c < 5; ++c) s += x.data<float>()[t * 5 + c] * wd.value.data<float>()[c];
      ASSERT_GT(std::abs(1.0 / (1.0 + std::exp(-s)) - 0.5), 0.01) << "token " << t;
    }
    std::vector<Param*> checked = {&w, &wd, &bd};
    if (options.value("gate_bias", true)) checked.push_back(&param(*router, "gate.bias"));
    check_gradients(*router, x, d_weight, checked);
  }
}

TEST(MoxE, DifficultyPushesTokensTowardTheFirstGroup) {
  Rng rng(8);
  const Tensor x = test::random_normal({40, 8}, rng);
  auto count_in_a = [&](double gamma, float bias) {
    auto router = build("moxe", 8, 2, 8, {{"gamma", gamma}});
    Rng init_rng(3);
    router->init(init_rng);
    param(*router, "moxe.entropy_predictor.bias").value = scalar(bias);
    const Routing r = router->forward({.x = x});
    int64_t in_a = 0;
    for (int64_t i = 0; i < r.expert.numel(); ++i) in_a += r.expert.data<int32_t>()[i] < 4;
    return in_a;
  };
  // Hard tokens (d ~ 1) with a strong modulation all go to group A; with gamma 0 the plain gate
  // (N(0, 0.02) weights) spreads them over both groups.
  EXPECT_EQ(count_in_a(20.0, 10.0f), 80);
  const int64_t plain = count_in_a(0.0, 10.0f);
  EXPECT_GT(plain, 10);
  EXPECT_LT(plain, 70);
}

TEST(MoxE, ParametersAndDefaults) {
  auto router = build("moxe", 8, 2, 12);
  const auto params = router->params();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0]->name, "layers.0.mlp.gate.weight");
  EXPECT_EQ(params[1]->name, "layers.0.mlp.gate.bias");
  EXPECT_EQ(params[1]->value.shape(), (Shape{8}));
  EXPECT_EQ(params[2]->name, "layers.0.mlp.moxe.entropy_predictor.weight");
  EXPECT_EQ(params[2]->value.shape(), (Shape{1, 12}));
  EXPECT_EQ(params[3]->name, "layers.0.mlp.moxe.entropy_predictor.bias");
  EXPECT_EQ(params[3]->value.shape(), (Shape{1}));
  EXPECT_EQ(build("moxe", 8, 2, 12, {{"gate_bias", false}})->params().size(), 3u);
  Rng rng(1);
  router->init(rng);
  const Routing r = router->forward({.x = test::random_normal({10, 12}, rng)});
  EXPECT_EQ(coeff(r, "z_loss"), 1e-3);
  EXPECT_EQ(coeff(r, "load_balance"), 1e-2);
  EXPECT_EQ(coeff(r, "d_loss"), 1e-2);
  EXPECT_EQ(coeff(r, "group_loss"), 1e-2);
  // Renormalised weights sum to 1 per token.
  for (int64_t t = 0; t < 10; ++t) {
    EXPECT_NEAR(r.weight.data<float>()[2 * t] + r.weight.data<float>()[2 * t + 1], 1.0f, 1e-6f);
  }
}

TEST(MoxE, RejectsBadOptions) {
  expect_error([] { build("moxe", 5, 2, 4); },
               "router 'moxe': num_experts = 5 must be even (two equal expert groups)");
  expect_error(
      [] {
        build("moxe", 8, 2, 4, {{"gamma", -0.1}});
      },
      "router 'moxe': option 'gamma' must be >= 0, got -0.1");
  expect_error(
      [] {
        build("moxe", 8, 2, 4, {{"difficulty_threshold", 1.5}});
      },
      "router 'moxe': option 'difficulty_threshold' must be in [0, 1], got 1.5");
  expect_error(
      [] {
        build("moxe", 8, 2, 4, {{"modulation", "soft"}});
      },
      "router 'moxe': option 'modulation' = \"soft\", expected one of: standard, "
      "proportional, masked");
  expect_error(
      [] {
        build("moxe", 8, 2, 4, {{"group_loss", "mse"}});
      },
      "router 'moxe': option 'group_loss' = \"mse\", expected one of: kl_div, "
      "self_balance, bounded, js_div");
  expect_error(
      [] {
        build("moxe", 8, 2, 4, {{"d_loss_coeff", -1.0}});
      },
      "router 'moxe': option 'd_loss_coeff' must be >= 0, got -1");
  expect_error(
      [] {
        build("moxe", 8, 2, 4, {{"tau", 0.5}});
      },
      "router 'moxe': unknown option 'tau'; valid options: aux_loss_coeff, "
      "d_loss_coeff, difficulty_threshold, gamma, gate_bias, group_loss, "
      "group_loss_coeff, modulation, z_loss_coeff");
}

TEST(MoxE, RunsInsideTheMoeLayer) {
  check_in_moe_layer(
      "moxe", {{"d_loss_coeff", 0.5}, {"group_loss_coeff", 0.5}},
      [](Router& r, Rng& rng) {
        param(r, "gate.weight").value = test::random_normal({4, 6}, rng, 0.7f);
        param(r, "moxe.entropy_predictor.weight").value = test::random_normal({1, 6}, rng, 0.7f);
      },
      "moxe.entropy_predictor.weight");
}

}  // namespace
}  // namespace sy::moe
