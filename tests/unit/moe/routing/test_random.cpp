#include <gtest/gtest.h>

#include "router_testing.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

TEST(RandomRouter, DeterministicGivenTheSeedDistinctAndUniform) {
  auto router = build("random", 8, 2, 4);
  EXPECT_TRUE(router->params().empty());
  const Tensor x = Tensor::zeros({4096, 4});
  Rng a(123), b(123), c(124);
  const Routing ra = router->forward({.x = x, .training = true, .rng = &a});
  const Routing rb = router->forward({.x = x, .training = false, .rng = &b});
  const Routing rc = router->forward({.x = x, .training = true, .rng = &c});
  EXPECT_TRUE(same_ids(ra.expert, rb.expert));
  EXPECT_FALSE(same_ids(ra.expert, rc.expert));
  std::vector<int> count(8, 0);
  for (int64_t t = 0; t < 4096; ++t) {
    const int32_t e0 = ra.expert.data<int32_t>()[2 * t], e1 = ra.expert.data<int32_t>()[2 * t + 1];
    ASSERT_NE(e0, e1) << "token " << t;
    ++count[e0];
    ++count[e1];
    ASSERT_EQ(ra.weight.data<float>()[2 * t], 0.5f);
  }
  // Each count is Binomial-like around 1024 with sd ~ 30; 150 is five sd.
  for (int e = 0; e < 8; ++e) EXPECT_NEAR(count[e], 1024, 150) << "expert " << e;
  EXPECT_EQ(ra.entropy, 1.0);
  // No gradient reaches x.
  Tensor d_x = Tensor::zeros({4096, 4});
  RoutingGrad grad;
  grad.d_weight = Tensor::zeros({8192});
  grad.d_weight.fill(1.0f);
  router->backward({.x = x}, ra, grad, d_x);
  EXPECT_ALL_CLOSE(d_x, Tensor::zeros({4096, 4}), 0.0f, 0.0f);
}

TEST(RandomRouter, NeedsAnRng) {
  auto router = build("random", 8, 2, 4);
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({3, 4})});
      },
      "router 'random': needs RouterInput.rng (random routing draws from it)");
  expect_error(
      [] {
        build("random", 8, 2, 4, {{"seed", 1}});
      },
      "router 'random': unknown option 'seed'; it takes no options");
}

}  // namespace
}  // namespace sy::moe
