#include <gtest/gtest.h>

#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// Same bounds as topk_softmax (see test_topk_softmax.cpp): f32 rounding ~1e-6 relative.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

// The jitter factors the router draws: row-major over x, one uniform(1 - eps, 1 + eps) each.
Tensor expected_noise(const Shape& shape, uint64_t seed, double eps) {
  Rng rng(seed);
  Tensor noise = Tensor::zeros(shape);
  const auto lo = static_cast<float>(1.0 - eps), hi = static_cast<float>(1.0 + eps);
  for (int64_t i = 0; i < noise.numel(); ++i) noise.mutable_data<float>()[i] = rng.uniform(lo, hi);
  return noise;
}

struct Case {
  int64_t tokens, d_model, experts;
  bool training;
  nlohmann::json options;
};

TEST(Switch, MatchesPyTorchWithJitterAuxAndZLoss) {
  const std::vector<Case> table = {
      {64, 32, 8, true, {{"z_loss_coeff", 1e-3}}},
      {128, 48, 64, true, {{"jitter_eps", 0.1}, {"aux_loss_coeff", 0.05}}},
      {200, 16, 8, false, {{"z_loss_coeff", 1e-2}}},  // eval: no jitter
      {96, 24, 16, true, {{"jitter_eps", 0.0}}},
  };
  Rng rng(77);
  std::vector<test::ReferenceCase> cases;
  std::vector<uint64_t> seeds;
  for (const Case& c : table) {
    nlohmann::json params = {{"router", "softmax_topk"},
                             {"top_k", 1},
                             {"weights", "raw"},
                             {"aux_loss_coeff", c.options.value("aux_loss_coeff", 0.01)},
                             {"z_loss_coeff", c.options.value("z_loss_coeff", 0.0)}};
    test::NamedTensors inputs = {{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                                 {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                                 {"d_weight", test::random_normal({c.tokens}, rng)}};
    seeds.push_back(1000 + cases.size());
    const double eps = c.options.value("jitter_eps", 0.01);
    if (c.training && eps > 0) {
      inputs["noise"] = expected_noise({c.tokens, c.d_model}, seeds.back(), eps);
    }
    cases.push_back({inputs, params});
  }
  const auto refs = test::run_reference_cases("routers", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(
        fmt::format("T={} E={} training={} {}", c.tokens, c.experts, c.training, c.options.dump()));
    auto router = build("switch", c.experts, 1, c.d_model, c.options);
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    Rng jitter_rng(seeds[i]);
    RouterInput in{.x = cases[i].inputs.at("x"), .training = c.training, .rng = &jitter_rng};
    const RouterRun r = run(*router, in, cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, 1), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_NEAR(loss(r.routing, "load_balance"), scalar_of(ref.at("loss_load_balance")), 1e-5);
    EXPECT_NEAR(loss(r.routing, "z_loss"), scalar_of(ref.at("loss_z_loss")),
                1e-5 * scalar_of(ref.at("loss_z_loss")));
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, ref.at("d_w"), kAtol, kRtol);
  }
}

TEST(Switch, JitterOnlyInTrainingAndDefaultsFromThePaper) {
  Rng rng(3);
  const Tensor x = test::random_normal({50, 16}, rng);
  const Tensor w = test::random_normal({8, 16}, rng);
  auto jittered = build("switch", 8, 1, 16);
  auto clean = build("switch", 8, 1, 16, {{"jitter_eps", 0.0}});
  param(*jittered, "gate.weight").value = w.clone();
  param(*clean, "gate.weight").value = w.clone();
  Rng r1(1), r2(1);
  const Routing eval = jittered->forward({.x = x, .training = false, .rng = &r1});
  const Routing ref = clean->forward({.x = x, .training = true, .rng = &r2});
  EXPECT_TRUE(same_ids(eval.expert, ref.expert));
  EXPECT_ALL_CLOSE(eval.weight, ref.weight, 0.0f, 0.0f);
  const Routing train = jittered->forward({.x = x, .training = true, .rng = &r1});
  EXPECT_FALSE(test::all_close(train.weight, ref.weight, 1e-7f, 0.0f));
  EXPECT_EQ(coeff(eval, "load_balance"), 0.01);
  EXPECT_EQ(coeff(eval, "z_loss"), 0.0);
}

TEST(Switch, GradientsWithJitterMatchFiniteDifferences) {
  Rng rng(8);
  Tensor x = test::random_normal({7, 5}, rng);
  const Tensor d_weight = test::random_normal({7}, rng);
  auto router = build("switch", 4, 1, 5,
                      {{"jitter_eps", 0.2}, {"aux_loss_coeff", 0.3}, {"z_loss_coeff", 0.1}});
  Param& gate = param(*router, "gate.weight");
  gate.value = test::random_normal({4, 5}, rng, 0.7f);
  auto objective = [&] {
    Rng noise_rng(42);  // the same noise every evaluation
    const Routing r = router->forward({.x = x, .training = true, .rng = &noise_rng});
    double total = test::dot(r.weight, d_weight);
    for (const AuxLoss& l : r.losses) total += l.coeff * l.value;
    return total;
  };
  const Tensor num_x = test::numeric_gradient(x, objective);
  const Tensor num_w = test::numeric_gradient(gate.value, objective);
  Rng noise_rng(42);
  const RouterRun r = run(*router, {.x = x, .training = true, .rng = &noise_rng}, d_weight);
  EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
}

TEST(Switch, RejectsBadConfigurationsWithClearErrors) {
  expect_error([] { build("switch", 8, 2, 4); },
               "router 'switch': top_k = 2, expected 1 (Switch routes each token to one expert)");
  expect_error(
      [] {
        build("switch", 8, 1, 4, {{"jitter_eps", 1.5}});
      },
      "router 'switch': jitter_eps = 1.5, expected 0 <= jitter_eps < 1");
  expect_error(
      [] {
        build("switch", 8, 1, 4, {{"capacity_factor", 1.25}});
      },
      "router 'switch': unknown option 'capacity_factor'; valid options: "
      "aux_loss_coeff, jitter_eps, z_loss_coeff");
  auto router = build("switch", 8, 1, 4);
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({3, 4}), .training = true});
      },
      "router 'switch': jitter_eps > 0 in training needs RouterInput.rng");
}

}  // namespace
}  // namespace sy::moe
