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

TEST(DenseRouter, MatchesPyTorchSoftmaxOverAllExperts) {
  const std::vector<std::array<int64_t, 3>> shapes = {{64, 32, 8}, {128, 16, 64}};  // T, D, E
  Rng rng(8);
  std::vector<test::ReferenceCase> cases;
  for (const auto& [t, d, e] : shapes) {
    cases.push_back({{{"x", test::random_normal({t, d}, rng)},
                      {"w", test::random_normal({e, d}, rng, 0.3f)},
                      {"d_weight", test::random_normal({t * e}, rng)}},
                     {{"router", "softmax_topk"}, {"top_k", e}, {"weights", "raw"}}});
  }
  const auto refs = test::run_reference_cases("routers", cases);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [t, d, e] = shapes[i];
    SCOPED_TRACE(fmt::format("T={} E={}", t, e));
    auto router = build("dense", e, 1, d);  // top_k is ignored: every expert is used
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    const RouterRun r =
        run(*router, {.x = cases[i].inputs.at("x")}, cases[i].inputs.at("d_weight"));
    EXPECT_TRUE(same_ids(expert_ids(r.routing, t, e), refs[i].at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, refs[i].at("weight"), kAtol, kRtol);
    EXPECT_NEAR(r.routing.entropy, scalar_of(refs[i].at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, refs[i].at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, refs[i].at("d_w"), kAtol, kRtol);
    EXPECT_TRUE(r.routing.losses.empty());
  }
}

TEST(DenseRouter, GradientsMatchFiniteDifferences) {
  Rng rng(10);
  Tensor x = test::random_normal({5, 4}, rng);
  auto router = build("dense", 3, 1, 4);
  Param& gate = param(*router, "gate.weight");
  gate.value = test::random_normal({3, 4}, rng, 0.7f);
  const Tensor d_weight = test::random_normal({15}, rng);
  auto objective = [&] { return test::dot(router->forward({.x = x}).weight, d_weight); };
  const Tensor num_x = test::numeric_gradient(x, objective);
  const Tensor num_w = test::numeric_gradient(gate.value, objective);
  const RouterRun r = run(*router, {.x = x}, d_weight);
  EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
}

}  // namespace
}  // namespace sy::moe
