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

struct Case {
  int64_t tokens, d_model, experts;
  double capacity_factor;
  int64_t capacity;  // ceil(T * cf / E), at most T
};

TEST(ExpertChoice, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2.0, 16},
      {256, 48, 64, 2.0, 8},
      {100, 16, 8, 1.25, 16},
      {10, 8, 4, 8.0, 10},  // capacity clamped to T
  };
  Rng rng(31);
  std::vector<test::ReferenceCase> cases;
  for (const Case& c : table) {
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"d_weight", test::random_normal({c.experts * c.capacity}, rng)}},
                     {{"router", "expert_choice"}, {"capacity", c.capacity}}});
  }
  const auto refs = test::run_reference_cases("routers", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} cf={}", c.tokens, c.experts, c.capacity_factor));
    auto router =
        build("expert_choice", c.experts, 1, c.d_model, {{"capacity_factor", c.capacity_factor}});
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    const RouterRun r =
        run(*router, {.x = cases[i].inputs.at("x")}, cases[i].inputs.at("d_weight"));
    const auto& ref = refs[i];
    ASSERT_EQ(r.routing.token.numel(), c.experts * c.capacity);
    EXPECT_TRUE(same_ids(r.routing.token.reshape({c.experts, c.capacity}), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, ref.at("d_w"), kAtol, kRtol);
    for (int64_t s = 0; s < c.experts * c.capacity; ++s) {
      ASSERT_EQ(r.routing.expert.data<int32_t>()[s], s / c.capacity);
      ASSERT_EQ(r.routing.choice.data<int32_t>()[s], s % c.capacity);
    }
    EXPECT_TRUE(r.routing.losses.empty());
  }
}

TEST(ExpertChoice, GradientsMatchFiniteDifferences) {
  Rng rng(4);
  Tensor x = test::random_normal({6, 5}, rng);
  auto router = build("expert_choice", 3, 1, 5, {{"capacity_factor", 1.0}});  // C = 2
  Param& gate = param(*router, "gate.weight");
  gate.value = test::random_normal({3, 5}, rng, 0.7f);
  const Tensor d_weight = test::random_normal({3 * 2}, rng);
  auto objective = [&] { return test::dot(router->forward({.x = x}).weight, d_weight); };
  const Tensor num_x = test::numeric_gradient(x, objective);
  const Tensor num_w = test::numeric_gradient(gate.value, objective);
  const RouterRun r = run(*router, {.x = x}, d_weight);
  EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
}

TEST(ExpertChoice, IsNotCausalAndRejectsBadCapacity) {
  EXPECT_FALSE(build("expert_choice", 4, 1, 8)->causal());
  EXPECT_TRUE(build("topk_softmax", 4, 1, 8)->causal());
  expect_error(
      [] {
        build("expert_choice", 8, 1, 4, {{"capacity_factor", 0}});
      },
      "router 'expert_choice': capacity_factor = 0, expected > 0");
  expect_error(
      [] {
        build("expert_choice", 8, 1, 4, {{"capacity_factor", -1.5}});
      },
      "router 'expert_choice': capacity_factor = -1.5, expected > 0");
  expect_error(
      [] {
        build("expert_choice", 8, 1, 4, {{"cf", 2}});
      },
      "router 'expert_choice': unknown option 'cf'; valid options: capacity_factor");
}

}  // namespace
}  // namespace sy::moe
