#include <gtest/gtest.h>

#include <cmath>

#include "router_testing.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

TEST(Hash, ModuloSendsIdModE) {
  auto router = build("hash", 5, 1, 2, {{"hash", "modulo"}});
  const Routing r = router->forward(
      {.x = Tensor::zeros({6, 2}), .token_ids = test::i32_tensor({0, 1, 7, 12, 5, 99})});
  EXPECT_TRUE(same_ids(r.expert, test::i32_tensor({0, 1, 2, 2, 0, 4})));
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(r.weight.data<float>()[i], 1.0f);
  EXPECT_TRUE(std::isnan(r.entropy));
  EXPECT_TRUE(r.losses.empty());
}

TEST(Hash, RandomHashIsAFixedFunctionOfTheIdAndSpreadsTheVocabulary) {
  constexpr int64_t kVocab = 16000, kExperts = 16;
  std::vector<int32_t> v(kVocab);
  for (int32_t i = 0; i < kVocab; ++i) v[i] = i;
  auto router = build("hash", kExperts, 1, 2);
  const Routing r =
      router->forward({.x = Tensor::zeros({kVocab, 2}), .token_ids = test::i32_tensor(v)});
  // The same id maps to the same expert wherever it appears, in any batch, with any router
  // built from the same options.
  auto again = build("hash", kExperts, 1, 2, {{"hash", "random"}, {"seed", 0}});
  const Routing r2 = again->forward(
      {.x = Tensor::zeros({3, 2}), .token_ids = test::i32_tensor({42, 7, 42}), .training = true});
  EXPECT_EQ(r2.expert.data<int32_t>()[0], r.expert.data<int32_t>()[42]);
  EXPECT_EQ(r2.expert.data<int32_t>()[1], r.expert.data<int32_t>()[7]);
  EXPECT_EQ(r2.expert.data<int32_t>()[2], r.expert.data<int32_t>()[42]);
  std::vector<int> count(kExperts, 0);
  for (int64_t t = 0; t < kVocab; ++t) ++count[r.expert.data<int32_t>()[t]];
  // 1000 ids per expert expected, sd ~ 31: 150 is five sd.
  for (int e = 0; e < kExperts; ++e) EXPECT_NEAR(count[e], 1000, 150) << "expert " << e;
  // Another seed gives another map; the modulo map is not what "random" gives.
  auto other = build("hash", kExperts, 1, 2, {{"seed", 7}});
  const Routing r3 =
      other->forward({.x = Tensor::zeros({kVocab, 2}), .token_ids = test::i32_tensor(v)});
  EXPECT_FALSE(same_ids(r3.expert, r.expert));
  int agree_modulo = 0;
  for (int32_t i = 0; i < kVocab; ++i) agree_modulo += r.expert.data<int32_t>()[i] == i % kExperts;
  EXPECT_LT(agree_modulo, 2 * kVocab / kExperts);
}

TEST(Hash, RejectsMissingIdsAndBadConfigs) {
  auto router = build("hash", 8, 1, 4);
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({3, 4})});
      },
      "router 'hash': needs RouterInput.token_ids (i32 [3]), got none");
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({3, 4}), .token_ids = test::i32_tensor({1, 2})});
      },
      "router 'hash': token_ids: shape [2], expected [3]");
  expect_error(
      [&] {
        router->forward({.x = Tensor::zeros({2, 4}), .token_ids = test::i32_tensor({1, -2})});
      },
      "router 'hash': token_ids[1] = -2, expected >= 0");
  expect_error(
      [] { build("hash", 8, 2, 4); },
      "router 'hash': top_k = 2, expected 1 (hash routing sends each token to one expert)");
  expect_error(
      [] {
        build("hash", 8, 1, 4, {{"hash", "balanced"}});
      },
      "router 'hash': option 'hash' = \"balanced\", expected one of: random, modulo");
}

}  // namespace
}  // namespace sy::moe
