#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "moe/moe_layer.h"
#include "support/moe_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

// The layer chains three f32 GEMMs (reductions of <= 64 terms), a weighted sum of <= 8 expert
// outputs and, with a router, a softmax: rounding stays near 1e-6 relative to terms of order 1;
// the absolute part covers outputs that cancel. Algebra errors show at >= 1e-2.
constexpr float kAtol = 5e-5f;
constexpr float kRtol = 2e-4f;

struct LayerCase {
  std::string name;
  int64_t t, d, f, e, k;
  CapacityOptions capacity;
  int64_t shared = 0, shared_f = 0;
  bool shared_gate = false;
  Activation act = Activation::kSwiGLU;
  int64_t slots_per_expert = 0;  // > 0: dense (Soft MoE shaped) routing
  std::string router = "given";  // or "topk_softmax"
  bool normalize = true;
};

MoeLayerOptions layer_options(const LayerCase& c) {
  MoeLayerOptions o{.d_model = c.d,
                    .d_ff = c.f,
                    .num_experts = c.e,
                    .activation = c.act,
                    .capacity = c.capacity,
                    .shared_experts = c.shared,
                    .shared_d_ff = c.shared_f,
                    .shared_gate = c.shared_gate,
                    .allow_non_causal = c.slots_per_expert > 0,
                    .prefix = "model.layers.0.mlp."};
  o.router.name = c.router;
  o.router.top_k = c.k;
  if (c.router == "topk_softmax") o.router.options = {{"normalize", c.normalize}};
  return o;
}

std::unique_ptr<MoeLayer> make_layer(const LayerCase& c, Rng& rng,
                                     test::GivenRouter** given = nullptr) {
  const MoeLayerOptions o = layer_options(c);
  if (c.router != "given") return std::make_unique<MoeLayer>(o);
  moe::Routing routing = c.slots_per_expert > 0
                             ? test::random_dense_routing(c.t, c.e, c.slots_per_expert, rng)
                             : test::random_topk_routing(c.t, c.e, c.k, rng);
  auto router = std::make_unique<test::GivenRouter>(routing, c.e, c.slots_per_expert == 0);
  if (given != nullptr) *given = router.get();
  return std::make_unique<MoeLayer>(o, std::move(router));
}

std::string policy_name(DropPolicy p) { return p == DropPolicy::kScore ? "score" : "position"; }

TEST(MoeLayer, MatchesPyTorchForwardAndBackward) {
  const std::vector<LayerCase> specs = {
      {"e8k2_dropless", 24, 16, 24, 8, 2, {}},
      {"e8k2_capacity_position", 24, 16, 24, 8, 2, {.capacity_factor = 1.0}},
      {"e8k2_capacity_score", 24, 16, 24, 8, 2, {0.75, DropPolicy::kScore}},
      {"e64k8_shared2_dropless", 32, 16, 8, 64, 8, {}, 2, 8, false},
      {"e64k8_shared2_gate_capacity", 32, 16, 8, 64, 8, {1.0, DropPolicy::kPosition}, 2, 8, true},
      {"e64k8_shared2_capacity_score", 32, 16, 8, 64, 8, {1.25, DropPolicy::kScore}, 2, 0, false},
      {"e4k1_gelu_tanh_capacity", 20, 8, 12, 4, 1, {0.5}, 0, 0, false, Activation::kGeluTanh},
      {"e4k2_relu_shared", 10, 8, 12, 4, 2, {}, 1, 6, true, Activation::kReLU},
      {"dense_soft_moe_e4", 10, 8, 12, 4, 1, {}, 1, 0, false, Activation::kSwiGLU, 2},
      {"topk_softmax_e8k2",
       24,
       16,
       24,
       8,
       2,
       {},
       0,
       0,
       false,
       Activation::kSwiGLU,
       0,
       "topk_softmax",
       true},
      {"topk_softmax_e8k2_capacity",
       24,
       16,
       24,
       8,
       2,
       {0.75, DropPolicy::kScore},
       0,
       0,
       false,
       Activation::kSwiGLU,
       0,
       "topk_softmax",
       true},
      {"topk_softmax_e64k8_shared2",
       32,
       16,
       8,
       64,
       8,
       {},
       2,
       8,
       true,
       Activation::kSwiGLU,
       0,
       "topk_softmax",
       false},
  };
  Rng rng(31);
  std::vector<std::unique_ptr<MoeLayer>> layers;
  std::vector<test::GivenRouter*> givens;
  std::vector<Tensor> ys;
  std::vector<test::ReferenceCase> cases;
  for (const auto& c : specs) {
    test::GivenRouter* given = nullptr;
    layers.push_back(make_layer(c, rng, &given));
    givens.push_back(given);
    MoeLayer& layer = *layers.back();
    layer.init(rng, 0.3f);
    for (Param* p : layer.router().params()) {  // a router gate with visible preferences
      for (int64_t i = 0; i < p->value.numel(); ++i) p->value.mutable_data<float>()[i] *= 30.0f;
    }
    test::ReferenceCase rc;
    rc.inputs["x"] = test::random_normal({c.t, c.d}, rng);
    rc.inputs["d_y"] = test::random_normal({c.t, c.d}, rng);
    ys.push_back(layer.forward(rc.inputs["x"], Tensor(), true, &rng));
    const Routing& r = layer.routing();
    if (r.dense()) {
      rc.inputs["dispatch"] = r.dispatch;
      rc.inputs["combine"] = r.combine;
    } else {
      rc.inputs["token"] = r.token;
      rc.inputs["expert"] = r.expert;
      rc.inputs["choice"] = r.choice;
      rc.inputs["weight"] = r.weight;
    }
    if (c.router == "topk_softmax") rc.inputs["router_weight"] = layer.router().params()[0]->value;
    const char* expert_names[] = {"gate_proj", "up_proj", "down_proj"};
    const auto ep = layer.experts().params();
    for (size_t i = 0; i < ep.size(); ++i) {
      rc.inputs[expert_names[i + (ep.size() == 2 ? 1 : 0)]] = ep[i]->value;
    }
    if (layer.shared() != nullptr) {
      const char* shared_names[] = {"shared_gate_proj", "shared_up_proj", "shared_down_proj",
                                    "shared_gate"};
      const auto sp = layer.shared()->params();
      const size_t skip = is_gated(c.act) ? 0 : 1;
      for (size_t i = 0; i < sp.size(); ++i) rc.inputs[shared_names[i + skip]] = sp[i]->value;
    }
    rc.params = {{"mode", "layer"},
                 {"activation", std::string(activation_name(c.act))},
                 {"num_experts", c.e},
                 {"capacity_factor", c.capacity.capacity_factor},
                 {"policy", policy_name(c.capacity.policy)},
                 {"router", c.router},
                 {"top_k", c.k},
                 {"normalize", c.normalize},
                 {"dense", c.slots_per_expert > 0}};
    cases.push_back(rc);
  }
  const auto refs = test::run_reference_cases("moe_layer", cases);
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerCase& c = specs[i];
    SCOPED_TRACE(c.name);
    MoeLayer& layer = *layers[i];
    const auto& ref = refs[i];
    EXPECT_ALL_CLOSE(ys[i], ref.at("y"), kAtol, kRtol);
    if (!layer.plan().dense) {
      const int32_t* slot_row = layer.plan().slot_row.data<int32_t>();
      const int64_t* kept = ref.at("kept").data<int64_t>();
      int64_t mismatches = 0;
      for (int64_t s = 0; s < layer.plan().slot_row.numel(); ++s) {
        mismatches += (slot_row[s] >= 0) != (kept[s] != 0) ? 1 : 0;
      }
      EXPECT_EQ(mismatches, 0);
      if (c.capacity.capacity_factor > 0 && c.capacity.capacity_factor < 1.0) {
        EXPECT_GT(layer.plan().dropped, 0);
      }
    }
    Tensor d_x = Tensor::zeros({c.t, c.d});
    layer.backward(cases[i].inputs.at("d_y"), d_x);
    EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), kAtol, kRtol);
    for (Param* p : layer.params()) {
      SCOPED_TRACE(p->name);
      std::string key;
      for (const char* n : {"gate_proj", "up_proj", "down_proj"}) {
        if (p->name.find(std::string("mlp.experts.") + n) != std::string::npos) key = n;
        if (p->name.find(std::string("mlp.shared_experts.") + n) != std::string::npos) {
          key = std::string("shared_") + n;
        }
      }
      if (p->name.ends_with("shared_expert_gate.weight")) key = "shared_gate";
      if (p->name.ends_with("mlp.gate.weight")) key = "router_weight";
      ASSERT_FALSE(key.empty()) << "unexpected parameter";
      EXPECT_ALL_CLOSE(p->grad, ref.at("d_" + key), kAtol, kRtol);
    }
    if (givens[i] != nullptr) {
      const RoutingGrad& g = givens[i]->last_grad;
      if (layer.plan().dense) {
        EXPECT_ALL_CLOSE(g.d_dispatch, ref.at("d_dispatch"), kAtol, kRtol);
        EXPECT_ALL_CLOSE(g.d_combine, ref.at("d_combine"), kAtol, kRtol);
      } else {
        EXPECT_ALL_CLOSE(g.d_weight, ref.at("d_weight"), kAtol, kRtol);
      }
    }
  }
}

TEST(MoeLayer, BackwardMatchesFiniteDifferences) {
  Rng rng(12);
  const LayerCase c{"tiny", 5, 4, 6, 4, 2, {}, 1, 3, true, Activation::kSwiGLU, 0, "topk_softmax"};
  MoeLayer layer(layer_options(c));
  layer.init(rng, 0.5f);
  Tensor x = test::random_normal({c.t, c.d}, rng);
  const Tensor probe = test::random_normal({c.t, c.d}, rng);
  auto loss = [&] { return test::dot(layer.forward(x, Tensor(), false, nullptr), probe); };
  // Perturbations of 1e-3 keep every token's top-2 set (checked: the plan stays the same).
  const Tensor num_x = test::numeric_gradient(x, loss);
  Param& router_w = *layer.router().params()[0];
  const Tensor num_router = test::numeric_gradient(router_w.value, loss);
  Param& down = layer.experts().down_proj();
  const Tensor num_down = test::numeric_gradient(down.value, loss);
  loss();
  Tensor d_x = Tensor::zeros({c.t, c.d});
  layer.backward(probe, d_x);
  // f32 central differences with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(router_w.grad, num_router, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(down.grad, num_down, 3e-3f, 3e-3f);
}

TEST(MoeLayer, IsDeterministicAcrossRuns) {
  Rng rng(2);
  LayerCase c{"e64", 64, 16, 8, 64, 8, {}, 2, 8, true};
  c.router = "topk_softmax";
  MoeLayerOptions o = layer_options(c);
  o.parallelism = ExpertParallelism::kPerExpert;
  MoeLayer layer(o);
  layer.init(rng, 0.3f);
  const Tensor x = test::random_normal({c.t, c.d}, rng);
  const Tensor d_y = test::random_normal({c.t, c.d}, rng);
  std::vector<Tensor> runs;
  for (int i = 0; i < 2; ++i) {
    for (Param* p : layer.params()) p->grad.fill(0.0f);
    runs.push_back(layer.forward(x, Tensor(), false, nullptr));
    Tensor d_x = Tensor::zeros(x.shape());
    layer.backward(d_y, d_x);
    runs.push_back(d_x);
    for (Param* p : layer.params()) runs.push_back(p->grad.clone());
  }
  const size_t half = runs.size() / 2;
  for (size_t i = 0; i < half; ++i) EXPECT_ALL_CLOSE(runs[i], runs[half + i], 0.0f, 0.0f);
}

TEST(MoeLayer, ReportsRouterStatistics) {
  // 4 tokens, top-2 over 3 experts (as in test_dispatch): expert loads 3, 4, 1 dropless.
  Routing r;
  auto i32 = [](std::vector<int32_t> v) {
    Tensor t = Tensor::zeros({static_cast<int64_t>(v.size())}, DType::I32);
    std::copy(v.begin(), v.end(), t.mutable_data<int32_t>());
    return t;
  };
  r.token = i32({0, 0, 1, 1, 2, 2, 3, 3});
  r.expert = i32({1, 0, 1, 2, 0, 1, 1, 0});
  r.choice = i32({0, 1, 0, 1, 0, 1, 0, 1});
  r.weight = Tensor::from_f32({8}, {0.6f, 0.4f, 0.3f, 0.7f, 0.9f, 0.1f, 0.8f, 0.2f});
  r.entropy = 0.5;
  r.losses = {{"load_balance", 1.25, 0.01}};
  MoeLayerOptions o{.d_model = 4, .d_ff = 4, .num_experts = 3};
  o.router.top_k = 2;
  for (const double cf : {0.0, 0.75}) {
    o.capacity.capacity_factor = cf;
    MoeLayer layer(o, std::make_unique<test::GivenRouter>(r, 3));
    layer.forward(Tensor::zeros({4, 4}), Tensor(), false, nullptr);
    const RouterStats& s = layer.stats();
    EXPECT_EQ(s.tokens, 4);
    EXPECT_EQ(s.slots, 8);
    EXPECT_DOUBLE_EQ(s.entropy, 0.5);
    ASSERT_EQ(s.losses.size(), 1U);
    EXPECT_EQ(s.losses[0].name, "load_balance");
    if (cf == 0.0) {
      EXPECT_EQ(s.tokens_per_expert, (std::vector<int64_t>{3, 4, 1}));
      // mean 8/3; variance ((1/3)^2 + (4/3)^2 + (5/3)^2) / 3 = 14/9.
      EXPECT_NEAR(s.load_cv, std::sqrt(14.0 / 9.0) / (8.0 / 3.0), 1e-12);
      EXPECT_NEAR(s.max_vio, (4.0 - 8.0 / 3.0) / (8.0 / 3.0), 1e-12);
      EXPECT_EQ(s.dropped_fraction, 0.0);
      EXPECT_EQ(s.no_expert_fraction, 0.0);
    } else {
      // Capacity 2 (see test_dispatch): loads 2, 2, 1; token 3 lost both slots.
      EXPECT_EQ(s.tokens_per_expert, (std::vector<int64_t>{2, 2, 1}));
      EXPECT_DOUBLE_EQ(s.dropped_fraction, 3.0 / 8.0);
      EXPECT_DOUBLE_EQ(s.no_expert_fraction, 1.0 / 4.0);
      EXPECT_NEAR(s.max_vio, (2.0 - 5.0 / 3.0) / (5.0 / 3.0), 1e-12);
    }
  }
}

using test::expect_error;

TEST(MoeLayer, RejectsBadConfigurations) {
  const MoeLayerOptions base{.d_model = 4, .d_ff = 4, .num_experts = 4};
  auto with = [&](auto edit) {
    MoeLayerOptions o = base;
    o.router.name = "topk_softmax";
    o.router.top_k = 2;
    edit(o);
    return o;
  };
  expect_error([&] { MoeLayer l(with([](MoeLayerOptions& o) { o.router.top_k = 5; })); },
               "moe_layer: top_k must be in [1, num_experts = 4], got 5");
  expect_error(
      [&] { MoeLayer l(with([](MoeLayerOptions& o) { o.capacity.capacity_factor = -0.5; })); },
      "moe_layer: capacity_factor must be > 0 (capacity mode) or 0 (dropless), got -0.5");
  expect_error([&] { MoeLayer l(with([](MoeLayerOptions& o) { o.shared_gate = true; })); },
               "moe_layer: shared_gate needs shared_experts > 0");
  expect_error([&] { MoeLayer l(with([](MoeLayerOptions& o) { o.router.num_experts = 8; })); },
               "moe_layer: router.num_experts is 8, the layer has 4 experts");
  const std::string non_causal =
      "moe_layer: router 'given' is not causal (a token's routing depends on later tokens), so "
      "it would leak the future in a causal model; set allow_non_causal to use it anyway "
      "(research comparisons only; the run is marked non-causal)";
  Rng rng(1);
  auto dense = [&] { return test::random_dense_routing(3, 4, 1, rng); };
  expect_error([&] { MoeLayer l(base, std::make_unique<test::GivenRouter>(dense(), 4, false)); },
               non_causal);
  MoeLayerOptions opted = base;
  opted.allow_non_causal = true;
  MoeLayer ok(opted, std::make_unique<test::GivenRouter>(dense(), 4, false));
  EXPECT_TRUE(ok.non_causal());
  MoeLayerOptions not_causal_model = base;
  not_causal_model.causal_model = false;
  MoeLayer encoder(not_causal_model, std::make_unique<test::GivenRouter>(dense(), 4, false));
  EXPECT_TRUE(encoder.non_causal());
  expect_error([&] { MoeLayer l(with([](MoeLayerOptions& o) { o.router.name = "nope"; })); },
               "unknown router 'nope'; registered routers: " +
                   fmt::format("{}", fmt::join(router_names(), ", ")));
}

// A layer made with_bank runs the given bank: the same outputs as a default layer holding the
// same weights. Its in-memory bank does not exist, and a bank of another shape is refused.
TEST(MoeLayer, WithBankRunsTheGivenBank) {
  Rng rng(4);
  LayerCase c{"e8k2", 12, 16, 24, 8, 2, {}};
  c.router = "topk_softmax";
  const MoeLayerOptions o = layer_options(c);
  MoeLayer reference(o);
  reference.init(rng, 0.3f);
  auto bank = std::make_unique<InMemoryExperts>(
      ExpertBankOptions{.num_experts = c.e, .d_model = c.d, .d_ff = c.f, .activation = c.act});
  bank->gate_proj().value = reference.experts().gate_proj().value.clone();
  bank->up_proj().value = reference.experts().up_proj().value.clone();
  bank->down_proj().value = reference.experts().down_proj().value.clone();
  const std::unique_ptr<MoeLayer> layer = MoeLayer::with_bank(o, std::move(bank));
  layer->router().params().front()->value = reference.router().params().front()->value.clone();
  const Tensor x = test::random_normal({c.t, c.d}, rng);
  EXPECT_ALL_CLOSE(layer->forward(x, Tensor(), false, nullptr),
                   reference.forward(x, Tensor(), false, nullptr), 0.0f, 0.0f);
  expect_error([&] { layer->experts(); },
               "moe_layer: the experts are not an in-memory bank (with_bank)");
  expect_error(
      [&] {
        MoeLayer::with_bank(o, std::make_unique<InMemoryExperts>(ExpertBankOptions{
                                   .num_experts = c.e, .d_model = c.d, .d_ff = 32}));
      },
      "moe_layer.with_bank: the bank has 8 experts of [16 -> 32] (swiglu), the layer 8 of "
      "[16 -> 24] (swiglu)");
  expect_error([&] { MoeLayer::with_bank(o, nullptr); }, "moe_layer.with_bank: no bank");
}

TEST(MoeLayer, NamesEveryParameter) {
  MoeLayerOptions o{.d_model = 4,
                    .d_ff = 4,
                    .num_experts = 4,
                    .shared_experts = 2,
                    .shared_gate = true,
                    .prefix = "model.layers.3.mlp."};
  o.router.name = "topk_softmax";
  o.router.top_k = 2;
  MoeLayer layer(o);
  std::vector<std::string> names;
  for (Param* p : layer.params()) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.layers.3.mlp.gate.weight",
                       "model.layers.3.mlp.experts.gate_proj.weight",
                       "model.layers.3.mlp.experts.up_proj.weight",
                       "model.layers.3.mlp.experts.down_proj.weight",
                       "model.layers.3.mlp.shared_experts.gate_proj.weight",
                       "model.layers.3.mlp.shared_experts.up_proj.weight",
                       "model.layers.3.mlp.shared_experts.down_proj.weight",
                       "model.layers.3.mlp.shared_expert_gate.weight",
                   }));
  EXPECT_EQ(layer.experts().params()[0]->value.shape(), (Shape{4, 4, 4}));
  EXPECT_EQ(layer.shared()->params()[0]->value.shape(), (Shape{8, 4}));
}

}  // namespace
}  // namespace sy::moe
