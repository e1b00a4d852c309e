#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moe/moe_layer.h"
#include "router_testing.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

using namespace test_routing;  // NOLINT(google-build-using-namespace)

// As topk_softmax (f32 rounding ~1e-6 relative on terms of order 1); extra_out and its gradient
// add one f32 GEMM over <= 64 experts, well inside the same bounds.
constexpr float kAtol = 2e-5f;
constexpr float kRtol = 1e-4f;

// forward, zeroed gradients, backward with both the slot gradient and the output gradient.
RouterRun run_dense(Router& router, const RouterInput& in, const Tensor& d_weight,
                    const Tensor& d_out) {
  RouterRun out;
  out.routing = router.forward(in);
  for (Param* p : router.params()) p->grad.fill(0.0f);
  out.d_x = Tensor::zeros(in.x.shape());
  RoutingGrad grad;
  grad.d_weight = d_weight;
  grad.d_out = d_out;
  router.backward(in, out.routing, grad, out.d_x);
  out.d_gate = router.params().front()->grad.clone();
  return out;
}

struct Case {
  int64_t tokens, d_model, experts, top_k;
  nlohmann::json options;
};

TEST(DefaultMoe, MatchesPyTorchForwardAndBackward) {
  const std::vector<Case> table = {
      {64, 32, 8, 2, nlohmann::json::object()},
      {128, 48, 64, 8, {{"normalize", true}, {"aux_loss_coeff", 0.05}, {"z_loss_coeff", 1e-3}}},
      {96, 16, 8, 2, {{"normalize", true}}},
      {40, 24, 16, 4, {{"aux_loss_coeff", 0.01}, {"ema_beta", 0.5}}},
  };
  Rng rng(31);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(table.size());
  for (const Case& c : table) {
    cases.push_back({{{"x", test::random_normal({c.tokens, c.d_model}, rng)},
                      {"w", test::random_normal({c.experts, c.d_model}, rng, 0.3f)},
                      {"ema", test::random_normal({c.experts, c.d_model}, rng, 0.5f)},
                      {"d_weight", test::random_normal({c.tokens * c.top_k}, rng)},
                      {"d_out", test::random_normal({c.tokens, c.d_model}, rng)}},
                     {{"mode", "forward"},
                      {"top_k", c.top_k},
                      {"normalize", c.options.value("normalize", false)},
                      {"aux_loss_coeff", c.options.value("aux_loss_coeff", 0.0)},
                      {"z_loss_coeff", c.options.value("z_loss_coeff", 0.0)}}});
  }
  const auto refs = test::run_reference_cases("router_default_moe", cases);
  for (size_t i = 0; i < table.size(); ++i) {
    const Case& c = table[i];
    SCOPED_TRACE(fmt::format("T={} E={} K={} {}", c.tokens, c.experts, c.top_k, c.options.dump()));
    auto router = build("default_moe", c.experts, c.top_k, c.d_model, c.options);
    param(*router, "gate.weight").value = cases[i].inputs.at("w").clone();
    param(*router, "default_moe.ema").value = cases[i].inputs.at("ema").clone();
    const RouterRun r = run_dense(*router, {.x = cases[i].inputs.at("x"), .training = true},
                                  cases[i].inputs.at("d_weight"), cases[i].inputs.at("d_out"));
    const auto& ref = refs[i];
    EXPECT_TRUE(same_ids(expert_ids(r.routing, c.tokens, c.top_k), ref.at("expert")));
    EXPECT_ALL_CLOSE(r.routing.weight, ref.at("weight"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.routing.extra_out, ref.at("extra_out"), kAtol, kRtol);
    EXPECT_NEAR(loss(r.routing, "load_balance"), scalar_of(ref.at("loss_load_balance")), 1e-5);
    EXPECT_NEAR(loss(r.routing, "z_loss"), scalar_of(ref.at("loss_z_loss")),
                1e-5 * scalar_of(ref.at("loss_z_loss")));
    EXPECT_EQ(coeff(r.routing, "load_balance"), c.options.value("aux_loss_coeff", 0.0));
    EXPECT_EQ(coeff(r.routing, "z_loss"), c.options.value("z_loss_coeff", 0.0));
    EXPECT_NEAR(r.routing.entropy, scalar_of(ref.at("entropy")), 1e-5);
    EXPECT_ALL_CLOSE(r.d_x, ref.at("d_x"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(r.d_gate, ref.at("d_w"), kAtol, kRtol);
  }
}

TEST(DefaultMoe, DefaultTermGivesEveryExpertAGradient) {
  // With the default vectors at zero the router is plain top-K (raw weights): unchosen experts'
  // logits get no gradient from the weights. With Ê set, every gate row gets one.
  Rng rng(4);
  const int64_t t = 1, d = 6, e = 5;
  const Tensor x = test::random_normal({t, d}, rng);
  auto router = build("default_moe", e, 1, d);
  param(*router, "gate.weight").value = test::random_normal({e, d}, rng, 0.5f);
  const Tensor d_weight = Tensor::zeros({t});
  const Tensor d_out = test::random_normal({t, d}, rng);
  const RouterRun zero = run_dense(*router, {.x = x}, d_weight, d_out);
  EXPECT_ALL_CLOSE(zero.routing.extra_out, Tensor::zeros({t, d}), 0.0f, 0.0f);
  EXPECT_ALL_CLOSE(zero.d_gate, Tensor::zeros({e, d}), 0.0f, 0.0f);
  param(*router, "default_moe.ema").value = test::random_normal({e, d}, rng);
  const RouterRun dense = run_dense(*router, {.x = x}, d_weight, d_out);
  for (int64_t row = 0; row < e; ++row) {
    double norm = 0.0;
    for (int64_t j = 0; j < d; ++j) norm += std::abs(dense.d_gate.data<float>()[row * d + j]);
    EXPECT_GT(norm, 1e-4) << "gate row " << row;
  }
}

TEST(DefaultMoe, EmaUpdatesAtEndStepMatchPyTorch) {
  const int64_t e = 6, d = 5;
  const double beta = 0.8;
  Rng rng(17);
  auto router = build("default_moe", e, 2, d, {{"ema_beta", beta}});
  EXPECT_TRUE(router->wants_expert_outputs());
  Param& ema = param(*router, "default_moe.ema");
  EXPECT_EQ(ema.name, "layers.0.mlp.default_moe.ema");
  EXPECT_FALSE(ema.trainable_param());
  EXPECT_ALL_CLOSE(ema.value, Tensor::zeros({e, d}), 0.0f, 0.0f);  // starts at zero
  const Tensor ema0 = test::random_normal({e, d}, rng);
  ema.value = ema0.clone();

  // Steps of observations; step 1 observes twice (gradient accumulation), step 2 nothing, step 3
  // only experts 0..2 (the others must keep their vectors), step 4 an empty batch then rows.
  const std::vector<std::vector<int64_t>> step_batches = {{7}, {5, 9}, {}, {6}, {0, 8}};
  std::vector<int64_t> all_expert, all_step;
  std::vector<Tensor> all_out;
  std::vector<Tensor> after_step;
  for (size_t s = 0; s < step_batches.size(); ++s) {
    for (int64_t rows : step_batches[s]) {
      Tensor ids = Tensor::zeros({rows}, DType::I32);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t limit = s == 3 ? 3 : e;
        const auto id = static_cast<int64_t>(rng.uniform() * static_cast<float>(limit));
        ids.mutable_data<int32_t>()[r] = static_cast<int32_t>(std::min(id, limit - 1));
        all_expert.push_back(ids.data<int32_t>()[r]);
        all_step.push_back(static_cast<int64_t>(s));
      }
      const Tensor out = test::random_normal({rows, d}, rng);
      all_out.push_back(out);
      const Tensor before = ema.value.clone();
      router->observe_expert_outputs(ids, out);
      // Observing never moves Ê: forward and backward of a micro-batch see the same vectors.
      EXPECT_ALL_CLOSE(ema.value, before, 0.0f, 0.0f);
    }
    router->end_step();
    after_step.push_back(ema.value.clone());
  }
  const auto rows = static_cast<int64_t>(all_expert.size());
  Tensor row_expert = Tensor::zeros({rows}, DType::I32),
         row_step = Tensor::zeros({rows}, DType::I32);
  Tensor row_out = Tensor::zeros({rows, d});
  int64_t at = 0;
  for (const Tensor& out : all_out) {
    std::copy(out.data<float>(), out.data<float>() + out.numel(),
              row_out.mutable_data<float>() + at * d);
    at += out.dim(0);
  }
  for (int64_t r = 0; r < rows; ++r) {
    row_expert.mutable_data<int32_t>()[r] = static_cast<int32_t>(all_expert[r]);
    row_step.mutable_data<int32_t>()[r] = static_cast<int32_t>(all_step[r]);
  }
  const auto steps = static_cast<int64_t>(step_batches.size());
  const test::NamedTensors ref =
      test::run_reference("router_default_moe",
                          {{"ema0", ema0},
                           {"row_expert", row_expert},
                           {"row_out", row_out},
                           {"row_step", row_step},
                           {"steps", Tensor::from_f32({1}, {static_cast<float>(steps)})}},
                          {{"mode", "ema"}, {"beta", beta}});
  const Tensor& expected = ref.at("ema");
  ASSERT_EQ(expected.shape(), Shape({steps, e, d}));
  for (int64_t s = 0; s < steps; ++s) {
    SCOPED_TRACE(fmt::format("after step {}", s));
    // One f32 multiply-add per step on values of order 1.
    EXPECT_ALL_CLOSE(after_step[static_cast<size_t>(s)],
                     expected.slice_rows(s, s + 1).reshape({e, d}), 1e-6f, 1e-6f);
  }
  // Step 2 saw nothing, step 3 left experts 3..5 alone.
  EXPECT_ALL_CLOSE(after_step[2], after_step[1], 0.0f, 0.0f);
  EXPECT_ALL_CLOSE(after_step[3].slice_rows(3, 6), after_step[2].slice_rows(3, 6), 0.0f, 0.0f);
}

TEST(DefaultMoe, BackwardUsesTheVectorsItsForwardUsed) {
  Rng rng(23);
  const int64_t t = 12, d = 6, e = 8;
  auto router = build("default_moe", e, 2, d);
  param(*router, "gate.weight").value = test::random_normal({e, d}, rng, 0.5f);
  param(*router, "default_moe.ema").value = test::random_normal({e, d}, rng);
  const RouterInput in{.x = test::random_normal({t, d}, rng), .training = true};
  const Tensor d_weight = test::random_normal({t * 2}, rng);
  const Tensor d_out = test::random_normal({t, d}, rng);
  const RouterRun first = run_dense(*router, in, d_weight, d_out);
  // An EMA step between forward and backward must not change this routing's gradient.
  Tensor ids = Tensor::zeros({e}, DType::I32);
  for (int64_t i = 0; i < e; ++i) ids.mutable_data<int32_t>()[i] = static_cast<int32_t>(i);
  router->observe_expert_outputs(ids, test::random_normal({e, d}, rng, 3.0f));
  router->end_step();
  for (Param* p : router->params()) p->grad.fill(0.0f);
  Tensor d_x = Tensor::zeros({t, d});
  RoutingGrad grad;
  grad.d_weight = d_weight;
  grad.d_out = d_out;
  router->backward(in, first.routing, grad, d_x);
  EXPECT_ALL_CLOSE(d_x, first.d_x, 0.0f, 0.0f);
  EXPECT_ALL_CLOSE(router->params().front()->grad, first.d_gate, 0.0f, 0.0f);
}

TEST(DefaultMoe, GradientsMatchFiniteDifferences) {
  for (const bool normalize : {false, true}) {
    SCOPED_TRACE(normalize ? "normalize" : "raw");
    Rng rng(6);
    Tensor x = test::random_normal({6, 5}, rng);
    auto router = build("default_moe", 5, 2, 5,
                        {{"normalize", normalize}, {"aux_loss_coeff", 0.3}, {"z_loss_coeff", 0.1}});
    Param& gate = param(*router, "gate.weight");
    gate.value = test::random_normal({5, 5}, rng, 0.7f);
    param(*router, "default_moe.ema").value = test::random_normal({5, 5}, rng);
    const Tensor d_weight = test::random_normal({12}, rng);
    const Tensor d_out = test::random_normal({6, 5}, rng);
    const Tensor chosen = router->forward({.x = x}).expert.clone();
    auto objective = [&] {
      const Routing r = router->forward({.x = x});
      EXPECT_TRUE(same_ids(r.expert, chosen));  // the perturbation keeps every top-2 set
      double total = test::dot(r.weight, d_weight) + test::dot(r.extra_out, d_out);
      for (const AuxLoss& l : r.losses) total += l.coeff * l.value;
      return total;
    };
    const Tensor num_x = test::numeric_gradient(x, objective);
    const Tensor num_w = test::numeric_gradient(gate.value, objective);
    const RouterRun r = run_dense(*router, {.x = x}, d_weight, d_out);
    // f32 central differences with eps 1e-3 carry ~1e-3 error.
    EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
    EXPECT_ALL_CLOSE(r.d_gate, num_w, 3e-3f, 3e-3f);
  }
}

MoeLayerOptions layer_options(const std::string& router, int64_t t_experts) {
  MoeLayerOptions o{.d_model = 4, .d_ff = 6, .num_experts = t_experts, .prefix = "model.mlp."};
  o.router.name = router;
  o.router.top_k = 2;
  if (router == "topk_softmax") o.router.options = {{"normalize", false}};
  return o;
}

TEST(DefaultMoe, LayerAddsDefaultTermAndBackpropagatesIt) {
  const int64_t t = 5, d = 4, e = 4;
  Rng init_a(12), init_b(12), rng(3);
  MoeLayer layer(layer_options("default_moe", e));
  MoeLayer plain(layer_options("topk_softmax", e));
  layer.init(init_a, 0.5f);
  plain.init(init_b, 0.5f);  // same draws: same gate and experts
  Param& ema = param(layer.router(), "default_moe.ema");
  ema.value = test::random_normal({e, d}, rng);
  Tensor x = test::random_normal({t, d}, rng);
  const Tensor probe = test::random_normal({t, d}, rng);

  // y = the plain top-2 layer (raw weights) + sum over unchosen experts of p Ê.
  const Tensor y = layer.forward(x, Tensor(), true, nullptr).clone();
  const Tensor y_plain = plain.forward(x, Tensor(), true, nullptr);
  const float* w = layer.router().params().front()->value.data<float>();
  const int32_t* chosen = layer.routing().expert.data<int32_t>();
  Tensor expected = y_plain.clone();
  for (int64_t tok = 0; tok < t; ++tok) {
    std::vector<double> logit(e);
    for (int64_t ex = 0; ex < e; ++ex) {
      for (int64_t j = 0; j < d; ++j) logit[ex] += x.data<float>()[tok * d + j] * w[ex * d + j];
    }
    const double m = *std::max_element(logit.begin(), logit.end());
    double z = 0.0;
    for (double l : logit) z += std::exp(l - m);
    for (int64_t ex = 0; ex < e; ++ex) {
      if (ex == chosen[tok * 2] || ex == chosen[tok * 2 + 1]) continue;
      const double p = std::exp(logit[ex] - m) / z;
      for (int64_t j = 0; j < d; ++j) {
        expected.mutable_data<float>()[tok * d + j] +=
            static_cast<float>(p * ema.value.data<float>()[ex * d + j]);
      }
    }
  }
  // Same f32 rounding bounds as the layer's own tests (test_moe_layer.cpp).
  EXPECT_ALL_CLOSE(y, expected, 5e-5f, 2e-4f);

  // Training forwards only accumulate observations; Ê stays fixed until end_step, so finite
  // differences see one function. Perturbations of 1e-3 keep every token's top-2 set.
  const Tensor ema_before = ema.value.clone();
  auto objective = [&] { return test::dot(layer.forward(x, Tensor(), true, nullptr), probe); };
  const Tensor num_x = test::numeric_gradient(x, objective);
  Param& gate = *layer.router().params().front();
  const Tensor num_gate = test::numeric_gradient(gate.value, objective);
  EXPECT_ALL_CLOSE(ema.value, ema_before, 0.0f, 0.0f);
  for (Param* p : layer.params()) p->grad.fill(0.0f);
  objective();
  Tensor d_x = Tensor::zeros({t, d});
  layer.backward(probe, d_x);
  // f32 central differences with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(gate.grad, num_gate, 3e-3f, 3e-3f);
}

TEST(DefaultMoe, LayerFeedsItsExpertOutputsIntoTheEma) {
  const int64_t t = 9, d = 4, e = 4;
  Rng rng(8);
  MoeLayerOptions o = layer_options("default_moe", e);
  o.router.options = {{"ema_beta", 0.9}};
  MoeLayer layer(o);
  layer.init(rng, 0.5f);
  Param& ema = param(layer.router(), "default_moe.ema");
  ema.value = test::random_normal({e, d}, rng);
  const Tensor ema0 = ema.value.clone();
  const Tensor x = test::random_normal({t, d}, rng);

  layer.forward(x, Tensor(), false, nullptr);  // eval: not observed
  layer.end_step();
  EXPECT_ALL_CLOSE(ema.value, ema0, 0.0f, 0.0f);

  layer.forward(x, Tensor(), true, nullptr);
  // The experts' unweighted outputs of the plan's rows, recomputed.
  const DispatchPlan& plan = layer.plan();
  const int64_t rows = plan.rows();
  Tensor buffer = Tensor::zeros({rows, d}), out = Tensor::zeros({rows, d});
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t tok = plan.row_token.data<int32_t>()[r];
    std::copy(x.data<float>() + tok * d, x.data<float>() + (tok + 1) * d,
              buffer.mutable_data<float>() + r * d);
  }
  layer.experts().forward(out, buffer, plan.offsets, nullptr);
  Tensor expected = ema0.clone();
  for (int64_t ex = 0; ex < e; ++ex) {
    const int64_t lo = plan.offsets[ex], hi = plan.offsets[ex + 1];
    if (hi == lo) continue;
    for (int64_t j = 0; j < d; ++j) {
      double mean = 0.0;
      for (int64_t r = lo; r < hi; ++r) mean += out.data<float>()[r * d + j];
      mean /= static_cast<double>(hi - lo);
      float& v = expected.mutable_data<float>()[ex * d + j];
      v = static_cast<float>(0.9 * v + 0.1 * mean);
    }
  }
  layer.end_step();
  EXPECT_ALL_CLOSE(ema.value, expected, 1e-6f, 1e-5f);
  EXPECT_FALSE(test::all_close(ema.value, ema0, 1e-4f, 0.0f));
}

TEST(DefaultMoe, RejectsBadOptionsAndInputs) {
  expect_error(
      [] {
        build("default_moe", 8, 2, 4, {{"ema_beta", 1.0}});
      },
      "router 'default_moe': ema_beta = 1, expected 0 <= ema_beta < 1");
  expect_error(
      [] {
        build("default_moe", 8, 2, 4, {{"ema_beta", -0.5}});
      },
      "router 'default_moe': ema_beta = -0.5, expected 0 <= ema_beta < 1");
  expect_error(
      [] {
        build("default_moe", 8, 2, 4, {{"aux_loss_coeff", -1.0}});
      },
      "router 'default_moe': aux_loss_coeff = -1, expected >= 0");
  expect_error(
      [] {
        build("default_moe", 8, 2, 4, {{"jitter_eps", 0.1}});
      },
      "router 'default_moe': unknown option 'jitter_eps'; valid options: aux_loss_coeff, "
      "ema_beta, normalize, z_loss_coeff");
  expect_error([] { build("default_moe", 4, 5, 4); },
               "router 'default_moe': top_k = 5, expected 1 <= top_k <= num_experts = 4");

  auto router = build("default_moe", 4, 2, 3);
  expect_error(
      [&] {
        Tensor ids = Tensor::zeros({2}, DType::I32);
        ids.mutable_data<int32_t>()[1] = 4;
        router->observe_expert_outputs(ids, Tensor::zeros({2, 3}));
      },
      "router 'default_moe': observe_expert_outputs: row 1 has expert 4, expected 0 <= expert "
      "< 4");
  const RouterInput in{.x = Tensor::zeros({2, 3})};
  const Routing r = router->forward(in);
  Tensor d_x = Tensor::zeros({2, 3});
  RoutingGrad grad;
  grad.d_weight = Tensor::zeros({4});
  expect_error([&] { router->backward(in, r, grad, d_x); },
               "router 'default_moe': backward needs RoutingGrad.d_out (the layer output's "
               "gradient, f32 [T, D]) for the default-vector term");
}

}  // namespace
}  // namespace sy::moe
