#include <gtest/gtest.h>

#include <cmath>

#include "moe/moe_layer.h"
#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// One f32 GEMM (<= 32 terms), two softmaxes and, with normalize, two row normalisations: f32
// rounding stays near 1e-6 relative; the absolute part covers gradients that cancel to ~0.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

struct SoftRun {
  Routing routing;
  Tensor d_x, d_phi, d_scale;
};

// forward, then zeroed gradients and backward with the given dispatch/combine gradients.
SoftRun run_soft(Router& router, const Tensor& x, const Tensor& d_dispatch,
                 const Tensor& d_combine) {
  SoftRun out;
  const RouterInput in{.x = x, .training = true};
  out.routing = router.forward(in);
  for (Param* p : router.params()) p->grad.fill(0.0f);
  out.d_x = Tensor::zeros(x.shape());
  RoutingGrad grad;
  grad.d_dispatch = d_dispatch;
  grad.d_combine = d_combine;
  router.backward(in, out.routing, grad, out.d_x);
  out.d_phi = param(router, "soft_moe.phi").grad.clone();
  if (router.params().size() > 1) out.d_scale = param(router, "soft_moe.scale").grad.clone();
  return out;
}

struct Case {
  int64_t tokens, d_model, experts, slots_per_expert;
  bool normalize;
};

TEST(SoftMoe, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {32, 16, 8, 1, false},  {64, 24, 8, 2, true}, {48, 32, 64, 1, false},
      {128, 16, 64, 2, true}, {5, 8, 4, 3, false},
  };
  Rng rng(41);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(table.size());
  for (const Case& c : table) {
    const int64_t s = c.experts * c.slots_per_expert;
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"phi", test::random_normal({s, c.d_model}, rng, 0.3f)},
                      {"scale", scalar(c.normalize ? 3.5 : 1.0)},
                      {"d_dispatch", test::random_normal({s, c.tokens}, rng)},
                      {"d_combine", test::random_normal({c.tokens, s}, rng)}},
                     {{"mode", "router"},
                      {"num_experts", c.experts},
                      {"slots_per_expert", c.slots_per_expert},
                      {"normalize", c.normalize}}});
  }
  const auto refs = test::run_reference_cases("router_soft_moe", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} D={} E={} slots={} normalize={}", c.tokens, c.d_model, c.experts,
                             c.slots_per_expert, c.normalize));
    auto router = build("soft_moe", c.experts, 1, c.d_model,
                        {{"slots_per_expert", c.slots_per_expert}, {"normalize", c.normalize}});
    const auto& in = cases[i].inputs;
    param(*router, "soft_moe.phi").value = in.at("phi").clone();
    if (c.normalize) param(*router, "soft_moe.scale").value = in.at("scale").clone();
    const SoftRun r = run_soft(*router, in.at("x"), in.at("d_dispatch"), in.at("d_combine"));
    const auto& ref = refs[i];
    EXPECT_EQ(r.routing.slots_per_expert, c.slots_per_expert);
    EXPECT_TRUE(r.routing.dense());
    EXPECT_ALL_CLOSE(r.routing.dispatch, ref.at("dispatch"), 1e-6f, kRtol);
    EXPECT_ALL_CLOSE(r.routing.combine, ref.at("combine"), 1e-6f, kRtol);
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_TRUE(r.routing.losses.empty());
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_phi, ref.at("d_phi"), kAtol, kRtol);
    if (c.normalize) {
      EXPECT_NEAR(scalar_of(r.d_scale), scalar_of(ref.at("d_scale")),
                  1e-4 * std::abs(scalar_of(ref.at("d_scale"))) + 1e-5);
    }
  }
}

TEST(SoftMoe, GradientsMatchFiniteDifferences) {
  for (const bool normalize : {false, true}) {
    SCOPED_TRACE(normalize ? "normalize" : "plain");
    Rng rng(5);
    Tensor x = test::random_normal({5, 4}, rng);
    auto router = build("soft_moe", 3, 1, 4, {{"slots_per_expert", 2}, {"normalize", normalize}});
    Param& phi = param(*router, "soft_moe.phi");
    phi.value = test::random_normal({6, 4}, rng, 0.8f);
    const Tensor d_dispatch = test::random_normal({6, 5}, rng);
    const Tensor d_combine = test::random_normal({5, 6}, rng);
    if (normalize) param(*router, "soft_moe.scale").value = scalar(2.5);
    auto objective = [&] {
      const Routing r = router->forward({.x = x});
      return test::dot(r.dispatch, d_dispatch) + test::dot(r.combine, d_combine);
    };
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_phi = test::numeric_gradient(phi.value, objective);
    const SoftRun r = run_soft(*router, x, d_dispatch, d_combine);
    // f32 central differences with eps 1e-3 carry ~1e-3 error.
    EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(r.d_phi, num_phi, 3e-3f, 3e-3f);
    if (normalize) {
      Param& scale = param(*router, "soft_moe.scale");
      const Tensor num_scale = test::numeric_gradient(scale.value, objective);
      EXPECT_ALL_CLOSE(r.d_scale, num_scale, 3e-3f, 3e-3f);
    }
  }
}

TEST(SoftMoe, ParametersSlotsAndDistributions) {
  auto plain = build("soft_moe", 4, 2, 8, {{"slots_per_expert", 3}});
  EXPECT_EQ(plain->name(), "soft_moe");
  EXPECT_FALSE(plain->causal());
  ASSERT_EQ(plain->params().size(), 1U);
  EXPECT_EQ(plain->params()[0]->name, "layers.0.mlp.soft_moe.phi");
  EXPECT_EQ(plain->params()[0]->value.shape(), (Shape{12, 8}));
  EXPECT_TRUE(plain->buffers().empty());
  auto normalized = build("soft_moe", 4, 1, 8, {{"normalize", true}});
  ASSERT_EQ(normalized->params().size(), 2U);
  EXPECT_EQ(normalized->params()[0]->value.shape(), (Shape{4, 8}));
  EXPECT_EQ(normalized->params()[1]->name, "layers.0.mlp.soft_moe.scale");
  EXPECT_FALSE(normalized->params()[1]->decay);
  Rng rng(2);
  normalized->init(rng);
  EXPECT_EQ(scalar_of(normalized->params()[1]->value), 1.0);

  plain->init(rng);
  const Tensor x = test::random_normal({9, 8}, rng);
  const Routing r = plain->forward({.x = x});
  EXPECT_EQ(r.slots_per_expert, 3);
  EXPECT_EQ(r.dispatch.shape(), (Shape{12, 9}));
  EXPECT_EQ(r.combine.shape(), (Shape{9, 12}));
  // Each slot's dispatch row and each token's combine row is a distribution.
  for (int64_t s = 0; s < 12; ++s) {
    double total = 0;
    for (int64_t t = 0; t < 9; ++t) total += r.dispatch.data<float>()[s * 9 + t];
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  for (int64_t t = 0; t < 9; ++t) {
    double total = 0;
    for (int64_t s = 0; s < 12; ++s) total += r.combine.data<float>()[t * 12 + s];
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  // Equal logits everywhere: uniform over experts, entropy 1.
  param(*plain, "soft_moe.phi").value.fill(0.0f);
  EXPECT_NEAR(plain->forward({.x = x}).entropy, 1.0, 1e-6);
  // No tokens: empty dispatch and combine, no entropy.
  const Routing empty = plain->forward({.x = Tensor::zeros({0, 8})});
  EXPECT_EQ(empty.dispatch.shape(), (Shape{12, 0}));
  EXPECT_EQ(empty.combine.shape(), (Shape{0, 12}));
  EXPECT_TRUE(std::isnan(empty.entropy));
}

MoeLayerOptions soft_layer_options(bool normalize) {
  MoeLayerOptions o{.d_model = 6,
                    .d_ff = 5,
                    .num_experts = 3,
                    .allow_non_causal = true,
                    .prefix = "model.layers.0.mlp."};
  o.router.name = "soft_moe";
  o.router.options = {{"slots_per_expert", 2}, {"normalize", normalize}};
  return o;
}

TEST(SoftMoe, MoeLayerMatchesPyTorchAndFiniteDifferences) {
  Rng rng(17);
  std::vector<std::unique_ptr<MoeLayer>> layers;
  std::vector<test::ReferenceCase> cases;
  for (const bool normalize : {false, true}) {
    layers.push_back(std::make_unique<MoeLayer>(soft_layer_options(normalize)));
    MoeLayer& layer = *layers.back();
    layer.init(rng, 0.4f);
    EXPECT_TRUE(layer.non_causal());
    if (normalize) param(layer.router(), "soft_moe.scale").value = scalar(4.0);
    cases.push_back({{{"x", test::random_normal({7, 6}, rng)},
                      {"d_y", test::random_normal({7, 6}, rng)},
                      {"phi", param(layer.router(), "soft_moe.phi").value.clone()},
                      {"scale", scalar(normalize ? 4.0 : 1.0)},
                      {"gate_proj", layer.experts().gate_proj().value.clone()},
                      {"up_proj", layer.experts().up_proj().value.clone()},
                      {"down_proj", layer.experts().down_proj().value.clone()}},
                     {{"mode", "layer"},
                      {"num_experts", 3},
                      {"slots_per_expert", 2},
                      {"normalize", normalize}}});
  }
  const auto refs = test::run_reference_cases("router_soft_moe", cases);
  for (size_t i = 0; i < layers.size(); ++i) {
    const bool normalize = i == 1;
    SCOPED_TRACE(normalize ? "normalize" : "plain");
    MoeLayer& layer = *layers[i];
    const auto& ref = refs[i];
    Tensor x = cases[i].inputs.at("x").clone();
    const Tensor& d_y = cases[i].inputs.at("d_y");
    auto objective = [&] { return test::dot(layer.forward(x, Tensor(), true, nullptr), d_y); };
    Param& phi = param(layer.router(), "soft_moe.phi");
    Param& gate_proj = layer.experts().gate_proj();
    Param& up_proj = layer.experts().up_proj();
    Param& down_proj = layer.experts().down_proj();
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_phi = test::numeric_gradient(phi.value, objective);
    const Tensor num_gate = test::numeric_gradient(gate_proj.value, objective);
    const Tensor num_up = test::numeric_gradient(up_proj.value, objective);
    const Tensor num_down = test::numeric_gradient(down_proj.value, objective);

    for (Param* p : layer.params()) p->grad.fill(0.0f);
    const Tensor y = layer.forward(x, Tensor(), true, nullptr);
    EXPECT_TRUE(layer.plan().dense);
    Tensor d_x = Tensor::zeros(x.shape());
    layer.backward(d_y, d_x);
    // Against PyTorch: the layer adds two more GEMMs and SwiGLU to the router's rounding.
    EXPECT_ALL_CLOSE(y, ref.at("y"), 5e-5f, 2e-4f);
    EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), 5e-5f, 2e-4f);
    EXPECT_ALL_CLOSE(phi.grad, ref.at("d_phi"), 5e-5f, 2e-4f);
    EXPECT_ALL_CLOSE(gate_proj.grad, ref.at("d_gate_proj"), 5e-5f, 2e-4f);
    EXPECT_ALL_CLOSE(up_proj.grad, ref.at("d_up_proj"), 5e-5f, 2e-4f);
    EXPECT_ALL_CLOSE(down_proj.grad, ref.at("d_down_proj"), 5e-5f, 2e-4f);
    // Against central differences (eps 1e-3 in f32: ~1e-3 error).
    EXPECT_ALL_CLOSE(d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(phi.grad, num_phi, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(gate_proj.grad, num_gate, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(up_proj.grad, num_up, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(down_proj.grad, num_down, 3e-3f, 3e-3f);
    if (normalize) {
      Param& scale = param(layer.router(), "soft_moe.scale");
      EXPECT_NEAR(scalar_of(scale.grad), scalar_of(ref.at("d_scale")),
                  2e-4 * std::abs(scalar_of(ref.at("d_scale"))) + 5e-5);
      const Tensor grad = scale.grad.clone();
      const Tensor num_scale = test::numeric_gradient(scale.value, objective);
      EXPECT_ALL_CLOSE(grad, num_scale, 3e-3f, 3e-3f);
    }
  }
}

TEST(SoftMoe, CausalModelRefusesItWithoutOptIn) {
  MoeLayerOptions o = soft_layer_options(false);
  o.allow_non_causal = false;
  expect_error([&] { MoeLayer layer(o); },
               "moe_layer: router 'soft_moe' is not causal (a token's routing depends on later "
               "tokens), so it would leak the future in a causal model; set allow_non_causal to "
               "use it anyway (research comparisons only; the run is marked non-causal)");
  o.causal_model = false;  // an encoder may use it freely
  MoeLayer encoder(o);
  EXPECT_TRUE(encoder.non_causal());
}

TEST(SoftMoe, RejectsBadOptionsAndGradients) {
  expect_error(
      [] {
        build("soft_moe", 4, 1, 8, {{"slots_per_expert", 0}});
      },
      "router 'soft_moe': slots_per_expert = 0, expected >= 1");
  expect_error(
      [] {
        build("soft_moe", 4, 1, 8, {{"slots_per_expert", 1.5}});
      },
      "router 'soft_moe': option 'slots_per_expert' must be an integer, got 1.5");
  expect_error(
      [] {
        build("soft_moe", 4, 1, 8, {{"normalize", 1}});
      },
      "router 'soft_moe': option 'normalize' must be true or false, got 1");
  expect_error(
      [] {
        build("soft_moe", 4, 1, 8, {{"noise_std", 0.1}});
      },
      "router 'soft_moe': unknown option 'noise_std'; valid options: normalize, "
      "slots_per_expert");
  auto router = build("soft_moe", 4, 1, 8);
  const RouterInput in{.x = Tensor::zeros({3, 8})};
  const Routing r = router->forward(in);
  Tensor d_x = Tensor::zeros({3, 8});
  RoutingGrad sparse;
  sparse.d_weight = Tensor::zeros({4});
  expect_error([&] { router->backward(in, r, sparse, d_x); },
               "router 'soft_moe': backward: d_dispatch and d_combine are required (dense "
               "routing)");
}

}  // namespace
}  // namespace sy::moe
