#include <gtest/gtest.h>

#include <algorithm>

#include "router_testing.h"

namespace sy::moe {
namespace {

TEST(RouterRegistry, NamesAreSortedAndEachBuilds) {
  const std::vector<std::string> names = router_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_NE(std::find(names.begin(), names.end(), "topk_softmax"), names.end());
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    RouterSpec spec{.name = name, .num_experts = 4, .top_k = 1, .d_model = 8};
    auto router = make_router(spec);
    EXPECT_EQ(router->name(), name);
    EXPECT_EQ(router->num_experts(), 4);
  }
}

TEST(RouterRegistry, UnknownNameListsRegisteredRouters) {
  RouterSpec spec{.name = "top2", .num_experts = 4, .top_k = 1, .d_model = 8};
  try {
    make_router(spec);
    FAIL() << "expected sy::Error";
  } catch (const Error& e) {
    std::string expected = "unknown router 'top2'; registered routers: ";
    const auto names = router_names();
    for (size_t i = 0; i < names.size(); ++i) expected += (i ? ", " : "") + names[i];
    EXPECT_EQ(std::string(e.what()), expected);
  }
}

}  // namespace
}  // namespace sy::moe
