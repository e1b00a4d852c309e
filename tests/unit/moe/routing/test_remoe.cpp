#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "moe/moe_layer.h"
#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// Same bounds as topk_softmax (see test_topk_softmax.cpp): one f32 GEMM, f32 rounding ~1e-6
// relative; the L1 term only adds per-expert constants.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

// d_weight of each slot: the entry of a dense [T, E] upstream gradient at its (token, expert).
Tensor slot_grad(const Routing& r, const Tensor& d_g) {
  const int64_t n = r.weight.numel(), e = d_g.dim(1);
  Tensor out = Tensor::zeros({n});
  for (int64_t i = 0; i < n; ++i) {
    out.mutable_data<float>()[i] =
        d_g.data<float>()[r.token.data<int32_t>()[i] * e + r.expert.data<int32_t>()[i]];
  }
  return out;
}

// The slots' weights scattered into a dense [T, E] matrix.
Tensor dense_gates(const Routing& r, int64_t tokens, int64_t experts) {
  Tensor g = Tensor::zeros({tokens, experts});
  for (int64_t i = 0; i < r.weight.numel(); ++i) {
    g.mutable_data<float>()[r.token.data<int32_t>()[i] * experts + r.expert.data<int32_t>()[i]] +=
        r.weight.data<float>()[i];
  }
  return g;
}

// The smallest |x w^T| over all (t, e): finite differences need it well above eps * |w|.
double min_abs_logit(const Tensor& x, const Tensor& w) {
  const int64_t t = x.dim(0), d = x.dim(1), e = w.dim(0);
  double best = INFINITY;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < e; ++j) {
      double l = 0;
      for (int64_t k = 0; k < d; ++k) l += x.data<float>()[i * d + k] * w.data<float>()[j * d + k];
      best = std::min(best, std::abs(l));
    }
  }
  return best;
}

struct Case {
  int64_t tokens, d_model, experts, top_k;
  bool load_balance;
  double lambda;
};

TEST(ReMoe, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, true, 0.5},   {128, 48, 64, 8, true, 2.0},  {96, 16, 8, 2, false, 0.7},
      {40, 24, 16, 4, true, 1e-8}, {200, 16, 64, 8, false, 3.0},
  };
  Rng rng(23);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(table.size());
  for (const Case& c : table) {
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"lam", scalar(c.lambda)},
                      {"d_g", test::random_normal({c.tokens, c.experts}, rng)}},
                     {{"mode", "router"}, {"top_k", c.top_k}, {"load_balance", c.load_balance}}});
  }
  const auto refs = test::run_reference_cases("router_remoe", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} load_balance={} lambda={}", c.tokens, c.experts,
                             c.top_k, c.load_balance, c.lambda));
    auto router = build("remoe", c.experts, c.top_k, c.d_model, {{"load_balance", c.load_balance}});
    const auto& in = cases[i].inputs;
    param(*router, "gate.weight").value = in.at("w").clone();
    param(*router, "remoe.l1_coeff").value = in.at("lam").clone();
    const RouterInput rin{.x = in.at("x"), .training = true};
    const Routing r = router->forward(rin);
    for (Param* p : router->params()) p->grad.fill(0.0f);
    Tensor d_x = Tensor::zeros(in.at("x").shape());
    RoutingGrad grad;
    grad.d_weight = slot_grad(r, in.at("d_g"));
    router->backward(rin, r, grad, d_x);

    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(r.token, ref.at("slot_token")));
    EXPECT_TRUE(same_ids(r.expert, ref.at("slot_expert")));
    EXPECT_ALL_CLOSE(dense_gates(r, c.tokens, c.experts), ref.at("gates"), kAtol, kRtol);
    // choice is the slot's rank within its token.
    const int32_t* tok = r.token.data<int32_t>();
    const int32_t* ch = r.choice.data<int32_t>();
    int64_t bad_choice = 0;
    for (int64_t s = 0; s < r.choice.numel(); ++s) {
      const int32_t expected = s > 0 && tok[s - 1] == tok[s] ? ch[s - 1] + 1 : 0;
      bad_choice += ch[s] != expected ? 1 : 0;
    }
    EXPECT_EQ(bad_choice, 0);
    const double n = static_cast<double>(r.weight.numel());
    EXPECT_NEAR(1.0 - n / static_cast<double>(c.tokens * c.experts), scalar_of(ref.at("sparsity")),
                1e-6);
    ASSERT_EQ(r.losses.size(), 1U);
    EXPECT_NEAR(loss(r, "l1_reg"), scalar_of(ref.at("loss_l1_reg")),
                1e-5 * scalar_of(ref.at("loss_l1_reg")));
    EXPECT_EQ(coeff(r, "l1_reg"), static_cast<float>(c.lambda));
    EXPECT_NEAR(r.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(param(*router, "gate.weight").grad, ref.at("d_w"), kAtol, kRtol);
  }
}

TEST(ReMoe, GradientsMatchFiniteDifferences) {
  for (const bool load_balance : {true, false}) {
    SCOPED_TRACE(load_balance ? "load-balanced L1" : "plain L1");
    Rng rng(4);
    Tensor x = test::random_normal({6, 5}, rng);
    auto router = build("remoe", 4, 2, 5, {{"load_balance", load_balance}});
    Param& gate = param(*router, "gate.weight");
    gate.value = test::random_normal({4, 5}, rng, 0.7f);
    param(*router, "remoe.l1_coeff").value = scalar(0.8);
    const Tensor d_g = test::random_normal({6, 4}, rng);
    // Perturbations of 1e-3 move a logit by < 1e-2: no gate crosses 0, the slots stay.
    ASSERT_GT(min_abs_logit(x, gate.value), 0.05);
    auto objective = [&] {
      const Routing r = router->forward({.x = x, .training = true});
      return test::dot(dense_gates(r, 6, 4), d_g) + coeff(r, "l1_reg") * loss(r, "l1_reg");
    };
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_w = test::numeric_gradient(gate.value, objective);
    const RouterInput in{.x = x, .training = true};
    const Routing r = router->forward(in);
    ASSERT_GT(r.weight.numel(), 0);
    ASSERT_LT(r.weight.numel(), 24);  // some gates are off: their gradient must be 0
    gate.grad.fill(0.0f);
    Tensor d_x = Tensor::zeros(x.shape());
    RoutingGrad grad;
    grad.d_weight = slot_grad(r, d_g);
    router->backward(in, r, grad, d_x);
    // f32 central differences with eps 1e-3 carry ~1e-3 error.
    EXPECT_ALL_CLOSE(d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(gate.grad, num_w, 3e-3f, 3e-3f);
  }
}

TEST(ReMoe, LambdaTrajectoryMatchesTheReferenceController) {
  // Feature D-1 of x is a shift c added to every logit (its gate column is 1), so each step's
  // sparsity lands on either side of the target 1 - 2/8 = 0.75.
  constexpr int64_t kD = 12, kE = 8;
  const std::vector<double> shift = {-3.0, 1.0, -2.5, 0.5, -4.0, NAN, 2.0, -1.0, 1.5};
  const int64_t steps = static_cast<int64_t>(shift.size());
  Rng rng(31);
  Tensor w = test::random_normal({kE, kD}, rng, 0.3f);
  for (int64_t e = 0; e < kE; ++e) w.mutable_data<float>()[e * kD + kD - 1] = 1.0f;
  struct Forward {
    Tensor x;
    int64_t step;
    bool training;
  };
  std::vector<Forward> forwards;
  auto batch = [&](int64_t tokens, double c) {
    Tensor x = test::random_normal({tokens, kD}, rng);
    for (int64_t t = 0; t < tokens; ++t)
      x.mutable_data<float>()[t * kD + kD - 1] = static_cast<float>(c);
    return x;
  };
  for (int64_t s = 0; s < steps; ++s) {
    if (!std::isnan(shift[s])) {  // two micro-batches of different sizes
      forwards.push_back({batch(24, shift[s]), s, true});
      forwards.push_back({batch(40, shift[s] + 0.5), s, true});
    }
    forwards.push_back({batch(16, -shift[s] * 2.0 + 1.0), s, false});  // eval: not counted
  }
  test::ReferenceCase rc;
  rc.inputs["w"] = w;
  std::vector<float> xs;
  Tensor sizes = Tensor::zeros({static_cast<int64_t>(forwards.size())}, DType::I32);
  Tensor step_of = Tensor::zeros({static_cast<int64_t>(forwards.size())}, DType::I32);
  Tensor training = Tensor::zeros({static_cast<int64_t>(forwards.size())}, DType::I32);
  for (size_t i = 0; i < forwards.size(); ++i) {
    const Tensor& x = forwards[i].x;
    xs.insert(xs.end(), x.data<float>(), x.data<float>() + x.numel());
    sizes.mutable_data<int32_t>()[i] = static_cast<int32_t>(x.dim(0));
    step_of.mutable_data<int32_t>()[i] = static_cast<int32_t>(forwards[i].step);
    training.mutable_data<int32_t>()[i] = forwards[i].training ? 1 : 0;
  }
  rc.inputs["x"] = Tensor::from_f32({static_cast<int64_t>(xs.size()) / kD, kD}, xs);
  rc.inputs["sizes"] = sizes;
  rc.inputs["step"] = step_of;
  rc.inputs["training"] = training;
  rc.params = {{"mode", "trajectory"},
               {"lambda0", 1e-3},
               {"alpha", 1.5},
               {"target_sparsity", 0.75},
               {"steps", steps}};
  const auto ref = test::run_reference("router_remoe", rc.inputs, rc.params);
  const float* lambdas = ref.at("lambdas").data<float>();
  const float* step_sparsity = ref.at("step_sparsity").data<float>();
  int64_t above = 0, below = 0;
  for (int64_t s = 0; s < steps; ++s) {
    if (std::isnan(step_sparsity[s])) continue;
    (step_sparsity[s] < 0.75f ? below : above) += 1;
  }
  EXPECT_GE(above, 3);  // the trajectory goes both ways
  EXPECT_GE(below, 3);

  auto router = build("remoe", kE, 2, kD, {{"lambda0", 1e-3}, {"alpha", 1.5}});
  param(*router, "gate.weight").value = w.clone();
  size_t next = 0;
  for (int64_t s = 0; s < steps; ++s) {
    SCOPED_TRACE(fmt::format("step {}", s));
    const float lambda = param(*router, "remoe.l1_coeff").value.data<float>()[0];
    // lambda is rounded to f32 once per step: relative error <= steps * 6e-8.
    EXPECT_NEAR(lambda, lambdas[s], 1e-6 * lambdas[s]);
    for (; next < forwards.size() && forwards[next].step == s; ++next) {
      const Routing r =
          router->forward({.x = forwards[next].x, .training = forwards[next].training});
      EXPECT_EQ(coeff(r, "l1_reg"), lambda);
    }
    router->end_step();
  }
  EXPECT_NEAR(param(*router, "remoe.l1_coeff").value.data<float>()[0], lambdas[steps],
              1e-6 * lambdas[steps]);
}

TEST(ReMoe, ControllerBoundaryDefaultsAndBuffer) {
  // E = 4, K = 2: default target 0.5, lambda0 1e-8, alpha 1.2. Gate = identity, so the signs of
  // x are the active experts.
  auto router = build("remoe", 4, 2, 4);
  Param& lambda = param(*router, "remoe.l1_coeff");
  EXPECT_EQ(lambda.name, "layers.0.mlp.remoe.l1_coeff");
  EXPECT_FALSE(lambda.trainable_param());
  ASSERT_EQ(router->buffers().size(), 1U);
  EXPECT_EQ(lambda.value.shape(), (Shape{1}));
  EXPECT_EQ(scalar_of(lambda.value), 1e-8f);
  Tensor eye = Tensor::zeros({4, 4});
  for (int64_t e = 0; e < 4; ++e) eye.mutable_data<float>()[e * 5] = 1.0f;
  param(*router, "gate.weight").value = eye;
  const Tensor half = Tensor::from_f32({2, 4}, {1, -1, 2, -3, -1, 1, -2, 3});      // S = 0.5
  const Tensor dense = Tensor::from_f32({2, 4}, {1, 1, 2, -3, 1, 1, -2, 3});       // S = 0.25
  const Tensor sparse = Tensor::from_f32({2, 4}, {1, -1, -2, -3, -1, -1, -2, 3});  // S = 0.75

  // Sparsity exactly at the target divides (ReMoE: `if S < target: *= else: /=`).
  router->forward({.x = half, .training = true});
  router->end_step();
  EXPECT_EQ(scalar_of(lambda.value), static_cast<float>(double(1e-8f) / 1.2));
  float expected = scalar_of(lambda.value);
  // Below the target multiplies; the mean over the step's training forwards decides:
  // (0.25 + 0.5) / 2 < 0.5. The eval forward (S = 0.75) is not counted.
  router->forward({.x = dense, .training = true});
  router->forward({.x = half, .training = true});
  router->forward({.x = sparse, .training = false});
  router->end_step();
  expected = static_cast<float>(double(expected) * 1.2);
  EXPECT_EQ(scalar_of(lambda.value), expected);
  // (0.25 + 0.75) / 2 = 0.5: divides.
  router->forward({.x = dense, .training = true});
  router->forward({.x = sparse, .training = true});
  router->end_step();
  expected = static_cast<float>(double(expected) / 1.2);
  EXPECT_EQ(scalar_of(lambda.value), expected);
  // No training forward since: lambda stays.
  router->forward({.x = dense});
  router->end_step();
  EXPECT_EQ(scalar_of(lambda.value), expected);
  // A restored checkpoint value is what the next forward's loss uses.
  lambda.value = scalar(0.25);
  EXPECT_EQ(coeff(router->forward({.x = dense}), "l1_reg"), 0.25);
  // init() restarts the controller.
  Rng rng(1);
  router->init(rng);
  EXPECT_EQ(scalar_of(lambda.value), 1e-8f);
}

TEST(ReMoe, SparsityControllerSettlesNearTheTarget) {
  // Closed loop: SGD on the gate with a task gradient that rewards every active gate (d_weight
  // = -1) against lambda * L1. The controller must raise lambda from 1e-8 until the sparsity
  // reaches 1 - K/E and then hold it there.
  Rng rng(13);
  constexpr int64_t kT = 128, kD = 16, kE = 8, kK = 2;
  auto router = build("remoe", kE, kK, kD, {{"alpha", 1.2}});
  Param& gate = param(*router, "gate.weight");
  gate.value = test::random_normal({kE, kD}, rng, 0.3f);
  // A constant feature gives each gate a bias: without one, relu(x . w) of zero-mean symmetric
  // inputs is on for half the tokens whatever w is, and no penalty could change the sparsity.
  Tensor x = test::random_normal({kT, kD}, rng);
  for (int64_t t = 0; t < kT; ++t) x.mutable_data<float>()[t * kD] = 1.0f;
  std::vector<double> sparsity;
  for (int step = 0; step < 400; ++step) {
    const RouterInput in{.x = x, .training = true};
    const Routing r = router->forward(in);
    sparsity.push_back(1.0 - double(r.weight.numel()) / double(kT * kE));
    gate.grad.fill(0.0f);
    Tensor d_x = Tensor::zeros(x.shape());
    RoutingGrad grad;
    grad.d_weight = Tensor::zeros({r.weight.numel()});
    grad.d_weight.fill(-1.0f);
    router->backward(in, r, grad, d_x);
    float* w = gate.value.mutable_data<float>();
    for (int64_t i = 0; i < gate.value.numel(); ++i) w[i] -= 1e-3f * gate.grad.data<float>()[i];
    router->end_step();
  }
  // Three stages (ReMoE Fig. 4): dense warm-up while lambda is tiny, sparsifying, stable.
  EXPECT_LT(*std::min_element(sparsity.begin(), sparsity.begin() + 150), 0.2);
  double late = 0;
  for (size_t i = sparsity.size() - 100; i < sparsity.size(); ++i) late += sparsity[i];
  late /= 100;
  EXPECT_NEAR(late, 0.75, 0.05);
  EXPECT_GT(scalar_of(param(*router, "remoe.l1_coeff").value), 1e-4);
}

MoeLayerOptions remoe_layer_options(int64_t shared) {
  MoeLayerOptions o{.d_model = 6,
                    .d_ff = 5,
                    .num_experts = 4,
                    .shared_experts = shared,
                    .prefix = "model.layers.0.mlp."};
  o.router.name = "remoe";
  o.router.top_k = 2;
  return o;
}

TEST(ReMoe, TokenWithNoPositiveGateGetsNoExperts) {
  for (const int64_t shared : {0, 1}) {
    SCOPED_TRACE(fmt::format("shared experts: {}", shared));
    Rng rng(7);
    MoeLayer layer(remoe_layer_options(shared));
    layer.init(rng, 0.5f);
    EXPECT_FALSE(layer.non_causal());
    Param& gate = param(layer.router(), "gate.weight");
    gate.value = test::random_normal({4, 6}, rng, 0.5f);
    for (int64_t e = 0; e < 4; ++e) gate.value.mutable_data<float>()[e * 6] = 2.0f;
    Tensor x = test::random_normal({5, 6}, rng);
    x.mutable_data<float>()[0] = -20.0f;  // token 0: every logit < 0
    for (int64_t d = 0; d < 6; ++d) x.mutable_data<float>()[6 + d] = 0.0f;  // token 1: logits 0
    const Tensor y = layer.forward(x, Tensor(), true, nullptr);
    const Routing& r = layer.routing();
    for (int64_t s = 0; s < r.token.numel(); ++s) EXPECT_GE(r.token.data<int32_t>()[s], 2);
    EXPECT_DOUBLE_EQ(layer.stats().no_expert_fraction, 2.0 / 5.0);
    // The routed part of tokens 0 and 1 is 0: y is the shared experts' output alone.
    Tensor expected = Tensor::zeros({2, 6});
    if (layer.shared() != nullptr) {
      SharedSaved saved;
      layer.shared()->forward(expected, x.slice_rows(0, 2).clone(), saved);
      EXPECT_GT(std::abs(expected.data<float>()[0]), 1e-4f);
    }
    EXPECT_ALL_CLOSE(y.slice_rows(0, 2).clone(), expected, 1e-6f, 1e-6f);
    const Tensor d_y = test::random_normal({5, 6}, rng);
    Tensor d_x = Tensor::zeros({5, 6});
    layer.backward(d_y, d_x);
    if (shared == 0) {  // no routed path and no router gradient reaches them
      EXPECT_ALL_CLOSE(d_x.slice_rows(0, 2).clone(), Tensor::zeros({2, 6}), 0.0f, 0.0f);
    }
  }
  // No token routed at all: N = 0, y = 0, entropy undefined, backward still works.
  MoeLayer layer(remoe_layer_options(0));
  Rng rng(3);
  layer.init(rng);
  const Tensor y = layer.forward(Tensor::zeros({3, 6}), Tensor(), true, nullptr);
  EXPECT_EQ(layer.routing().weight.numel(), 0);
  EXPECT_TRUE(std::isnan(layer.routing().entropy));
  EXPECT_EQ(loss(layer.routing(), "l1_reg"), 0.0);
  EXPECT_ALL_CLOSE(y, Tensor::zeros({3, 6}), 0.0f, 0.0f);
  Tensor d_x = Tensor::zeros({3, 6});
  layer.backward(test::random_normal({3, 6}, rng), d_x);
  EXPECT_ALL_CLOSE(d_x, Tensor::zeros({3, 6}), 0.0f, 0.0f);
}

TEST(ReMoe, MoeLayerGradientsMatchFiniteDifferences) {
  for (const int64_t shared : {0, 1}) {
    SCOPED_TRACE(fmt::format("shared experts: {}", shared));
    Rng rng(19);
    MoeLayer layer(remoe_layer_options(shared));
    layer.init(rng, 0.5f);
    Param& gate = param(layer.router(), "gate.weight");
    param(layer.router(), "remoe.l1_coeff").value = scalar(0.6);
    // Draw until no logit is within 0.03 of 0, so eps 1e-3 flips no gate (FD needs fixed slots).
    Tensor x;
    do {
      gate.value = test::random_normal({4, 6}, rng, 0.6f);
      x = test::random_normal({8, 6}, rng);
    } while (min_abs_logit(x, gate.value) < 0.03);
    const Tensor d_y = test::random_normal({8, 6}, rng);
    auto objective = [&] {
      double total = test::dot(layer.forward(x, Tensor(), true, nullptr), d_y);
      for (const AuxLoss& l : layer.routing().losses) total += l.coeff * l.value;
      return total;
    };
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_gate = test::numeric_gradient(gate.value, objective);
    Param& down = layer.experts().down_proj();
    const Tensor num_down = test::numeric_gradient(down.value, objective);
    for (Param* p : layer.params()) p->grad.fill(0.0f);
    objective();
    const int64_t n = layer.routing().weight.numel();
    EXPECT_GT(n, 0);
    EXPECT_LT(n, 32);
    Tensor d_x = Tensor::zeros(x.shape());
    layer.backward(d_y, d_x);
    // f32 central differences with eps 1e-3 carry ~1e-3 error.
    EXPECT_ALL_CLOSE(d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(gate.grad, num_gate, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(down.grad, num_down, 3e-3f, 3e-3f);
  }
}

TEST(ReMoe, RejectsBadOptions) {
  expect_error(
      [] {
        build("remoe", 8, 2, 4, {{"target_sparsity", 1.5}});
      },
      "router 'remoe': target_sparsity = 1.5, expected 0 <= target_sparsity < 1");
  expect_error(
      [] {
        build("remoe", 8, 2, 4, {{"alpha", 0.5}});
      },
      "router 'remoe': alpha = 0.5, expected a finite value >= 1");
  expect_error(
      [] {
        build("remoe", 8, 2, 4, {{"lambda0", -1e-8}});
      },
      "router 'remoe': lambda0 = -1e-08, expected a finite value >= 0");
  expect_error(
      [] {
        build("remoe", 8, 2, 4, {{"load_balance", "yes"}});
      },
      "router 'remoe': option 'load_balance' must be true or false, got \"yes\"");
  expect_error(
      [] {
        build("remoe", 8, 2, 4, {{"jitter_eps", 0.01}});
      },
      "router 'remoe': unknown option 'jitter_eps'; valid options: alpha, lambda0, "
      "load_balance, target_sparsity");
  expect_error([] { build("remoe", 8, 9, 4); },
               "router 'remoe': top_k = 9, expected 1 <= top_k <= num_experts = 8");
}

}  // namespace
}  // namespace sy::moe
