#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"

namespace sy {
namespace {

TEST(Rng, SameSeedSameStreamAcrossPlatforms) {
  // xoshiro256** seeded by splitmix64(0): the first output is fixed by the algorithm, so a
  // change here means every seeded run in the project changed.
  Rng a(0), b(0), c(1);
  const uint64_t first = a.next_u64();
  EXPECT_EQ(first, b.next_u64());
  EXPECT_NE(first, c.next_u64());
  EXPECT_EQ(first, 0x99ec5f36cb75f2b4ull);
}

TEST(Rng, DistributionsHaveTheRightMoments) {
  Rng rng(42);
  const int n = 200000;
  double sum = 0, sum2 = 0, usum = 0;
  std::vector<int> counts(7, 0);
  for (int i = 0; i < n; ++i) {
    const double z = rng.normal();
    sum += z;
    sum2 += z * z;
    const float u = rng.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    usum += u;
    const uint64_t k = rng.below(7);
    ASSERT_LT(k, 7u);
    ++counts[k];
  }
  // Standard errors: mean 1/sqrt(n) ~ 0.0022, variance ~ sqrt(2/n) ~ 0.0032; 5 sigma bounds.
  EXPECT_NEAR(sum / n, 0.0, 0.011);
  EXPECT_NEAR(sum2 / n, 1.0, 0.016);
  EXPECT_NEAR(usum / n, 0.5, 0.0035);
  for (int c : counts) EXPECT_NEAR(c, n / 7.0, 5 * std::sqrt(n / 7.0));
}

}  // namespace
}  // namespace sy
