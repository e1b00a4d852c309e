// Every registered router through the whole MoE layer, in both dispatch modes: the layer's
// backward (input, router parameters, every expert weight) against central differences of the
// objective the layer's backward differentiates, sum(y * probe) + sum_losses coeff * value.
// Each router's own math is checked against PyTorch in tests/unit/moe/routing/; this test
// proves the layer carries every router's gradient through plan, gather, experts and combine.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "core/threads.h"
#include "moe/moe_layer.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

constexpr int64_t kTokens = 12, kWidth = 4, kFfn = 3, kExperts = 8, kTopK = 2;

// Router options that differ from the defaults for this test (small, visible effects).
const std::map<std::string, nlohmann::json>& special_options() {
  static const std::map<std::string, nlohmann::json> options = {
      {"topk_softmax", {{"aux_loss_coeff", 0.05}, {"z_loss_coeff", 0.01}}},
      {"switch", {{"aux_loss_coeff", 0.05}, {"z_loss_coeff", 0.01}, {"jitter_eps", 0.0}}},
      {"deepseek", {{"n_group", 4}, {"topk_group", 2}, {"seq_aux_coeff", 0.05}}},
      {"loss_free", {{"score", "softmax"}}},
      {"hash", {{"hash", "modulo"}}},  // one expert per token (top_k 1 below)
  };
  return options;
}

// Runs router `name` through a layer and checks every gradient.
void check_router(const std::string& name, const CapacityOptions& capacity) {
  MoeLayerOptions o{.d_model = kWidth, .d_ff = kFfn, .num_experts = kExperts};
  o.router.name = name;
  o.router.top_k = name == "hash" || name == "switch" ? 1 : kTopK;
  const auto special = special_options().find(name);
  if (special != special_options().end()) o.router.options = special->second;
  o.capacity = capacity;
  o.allow_non_causal = true;
  o.prefix = "mlp.";
  MoeLayer layer(o);
  Rng init_rng(21);
  layer.init(init_rng);
  // Visible router preferences and expert outputs of order 1, so every path carries gradient.
  for (Param* p : layer.params()) {
    float* v = p->value.mutable_data<float>();
    for (int64_t i = 0; i < p->value.numel(); ++i) v[i] = init_rng.normal(0.0f, 0.6f);
  }
  // Router state as after some training (a selection bias, ReMoE's lambda, Default MoE's EMA),
  // so the paths that depend on it are exercised too. Positive: lambda must be.
  for (Param* p : layer.buffers()) {
    float* v = p->value.mutable_data<float>();
    for (int64_t i = 0; i < p->value.numel(); ++i) v[i] = init_rng.uniform(0.0f, 0.5f);
  }
  Rng data_rng(5);
  Tensor x = test::random_normal({kTokens, kWidth}, data_rng);
  const Tensor probe = test::random_normal({kTokens, kWidth}, data_rng);
  Tensor ids = Tensor::zeros({kTokens}, DType::I32);
  for (int64_t t = 0; t < kTokens; ++t)
    ids.mutable_data<int32_t>()[t] = static_cast<int32_t>(3 * t);

  // Training mode with a fresh generator each call: jitter and random draws repeat exactly.
  auto forward = [&] {
    Rng rng(9);
    return layer.forward(x, ids, /*training=*/true, &rng);
  };
  auto objective = [&] {
    double value = test::dot(forward(), probe);
    for (const AuxLoss& l : layer.routing().losses) value += l.coeff * l.value;
    return value;
  };
  const Tensor num_x = test::numeric_gradient(x, objective);
  std::vector<Tensor> num_params;
  for (Param* p : layer.params()) num_params.push_back(test::numeric_gradient(p->value, objective));

  const Tensor y = forward();
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_TRUE(std::isfinite(y.data<float>()[i]));
  const RouterStats& stats = layer.stats();
  EXPECT_GE(stats.dropped_fraction, 0.0);
  EXPECT_LE(stats.dropped_fraction, capacity.capacity_factor > 0 ? 1.0 : 0.0);
  for (Param* p : layer.params()) p->grad.fill(0.0f);
  Tensor d_x = Tensor::zeros(x.shape());
  layer.backward(probe, d_x);
  // Central differences in f32 with eps 1e-3 on values of order 1 carry ~1e-3 error; a routing
  // decision that flips inside +-eps would show up as an error of order 1.
  EXPECT_ALL_CLOSE(d_x, num_x, 5e-3f, 5e-3f) << "d_x";
  const std::vector<Param*> params = layer.params();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_ALL_CLOSE(params[i]->grad, num_params[i], 5e-3f, 5e-3f) << params[i]->name;
  }
}

// One thread: thousands of tiny forwards, where OpenMP wake-ups would dominate (and spin for
// long on a busy host). Threaded expert paths are covered by test_moe_layer.cpp.
class RouterZoo : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = num_threads();
    set_num_threads(1);
  }
  void TearDown() override { set_num_threads(threads_); }

 private:
  int threads_ = 0;
};

TEST_F(RouterZoo, EveryRouterTrainsThroughTheLayerDropless) {
  for (const std::string& name : router_names()) {
    SCOPED_TRACE("router " + name);
    check_router(name, {});
  }
}

TEST_F(RouterZoo, EveryRouterTrainsThroughTheLayerWithCapacity) {
  for (const std::string& name : router_names()) {
    for (DropPolicy policy : {DropPolicy::kPosition, DropPolicy::kScore}) {
      SCOPED_TRACE(fmt::format("router {} policy {}", name,
                               policy == DropPolicy::kPosition ? "position" : "score"));
      check_router(name, {.capacity_factor = 1.0, .policy = policy});
    }
  }
}

TEST_F(RouterZoo, SpecialOptionsNameRegisteredRouters) {
  const auto names = router_names();
  const std::set<std::string> registered(names.begin(), names.end());
  for (const auto& [name, options] : special_options()) {
    EXPECT_TRUE(registered.count(name) == 1) << "stale entry: " << name;
  }
}

}  // namespace
}  // namespace sy::moe
