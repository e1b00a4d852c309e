// The router registry: name -> factory. Adding a router is its own file defining
// `std::unique_ptr<Router> make_<name>_router(const RouterSpec&)` plus one X(name) line below.
#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"
#include "moe/routing/router.h"

// clang-format off
#define SY_ROUTERS(X) \
  X(topk_softmax) \
  X(switch) \
  X(expert_choice) \
  X(loss_free) \
  X(deepseek) \
  X(dense) \
  X(random) \
  X(hash) \
  X(default_moe) \
  X(sinkhorn) \
  X(soft_moe) \
  X(remoe) \
  X(xmoe) \
  X(moxe) \
  X(smile)
// clang-format on

namespace sy::moe {

#define SY_DECLARE_ROUTER(name) std::unique_ptr<Router> make_##name##_router(const RouterSpec&);
SY_ROUTERS(SY_DECLARE_ROUTER)
#undef SY_DECLARE_ROUTER

namespace {

using Factory = std::unique_ptr<Router> (*)(const RouterSpec&);

const std::pair<const char*, Factory> kRouters[] = {
#define SY_ROUTER_ENTRY(name) {#name, &make_##name##_router},
    SY_ROUTERS(SY_ROUTER_ENTRY)
#undef SY_ROUTER_ENTRY
};

}  // namespace

std::vector<std::string> router_names() {
  std::vector<std::string> names;
  for (const auto& entry : kRouters) names.emplace_back(entry.first);
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<Router> make_router(const RouterSpec& spec) {
  for (const auto& entry : kRouters) {
    if (spec.name == entry.first) return entry.second(spec);
  }
  fail("unknown router '{}'; registered routers: {}", spec.name, fmt::join(router_names(), ", "));
}

}  // namespace sy::moe
