#include <gtest/gtest.h>

#include <algorithm>

#include "core/cpu_features.h"
#include "support/tensor_testing.h"

namespace sy {
namespace {

TEST(CpuFeatures, ForEachSimdPathReallySwitchesTheDispatchedPath) {
  const std::vector<std::string> available = simd_paths_available();
  ASSERT_FALSE(available.empty());
  std::vector<std::string> seen;
  test::for_each_simd_path([&](const std::string& name) {
    EXPECT_EQ(simd_path_chosen(), name);
    seen.push_back(name);
  });
  EXPECT_EQ(seen, available);
  // After the loop the best path is back in charge.
  EXPECT_EQ(simd_path_chosen(), available.front());
}

TEST(CpuFeatures, ReportsTheArchitecture) {
  const CpuFeatures& f = cpu_features();
  EXPECT_FALSE(f.arch.empty());
#if defined(__x86_64__)
  EXPECT_EQ(f.arch, "x86_64");
  // Our x86 builds require nothing, but AVX-512 implies AVX2 on every CPU that has it.
  if (f.avx512f) {
    EXPECT_TRUE(f.avx2);
  }
#endif
}

}  // namespace
}  // namespace sy
