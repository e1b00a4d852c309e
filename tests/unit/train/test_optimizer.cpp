#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"
#include "train/optimizer.h"

namespace sy::train {
namespace {

using ::sy::test::error_of;

using ::sy::test::same_bits;

// A few parameters of different shapes, with random values, and the gradients of each step.
struct Problem {
  std::vector<Param> params;
  std::vector<std::vector<Tensor>> grads;  // [step][param]

  Problem(const std::vector<Shape>& shapes, const std::vector<bool>& decay, int steps,
          uint64_t seed, float grad_scale = 1.0f) {
    Rng rng(seed);
    for (size_t i = 0; i < shapes.size(); ++i) {
      params.push_back(Param::trainable("w" + std::to_string(i), shapes[i], decay[i]));
      params.back().value = test::random_normal(shapes[i], rng);
    }
    for (int s = 0; s < steps; ++s) {
      grads.emplace_back();
      for (const Shape& shape : shapes) {
        grads.back().push_back(test::random_normal(shape, rng, grad_scale));
      }
    }
  }
  std::vector<Param*> ptrs() {
    std::vector<Param*> out;
    for (Param& p : params) out.push_back(&p);
    return out;
  }
  void set_grads(int step) {
    for (size_t i = 0; i < params.size(); ++i) params[i].grad = grads[step][i].clone();
  }
  test::ReferenceCase reference_case(const AdamWOptions& o, const std::vector<double>& lr,
                                     double max_norm) const {
    test::ReferenceCase c;
    nlohmann::json decay = nlohmann::json::array();
    for (size_t i = 0; i < params.size(); ++i) {
      c.inputs["p" + std::to_string(i)] = params[i].value.clone();
      decay.push_back(params[i].decay);
      for (size_t s = 0; s < grads.size(); ++s) {
        c.inputs["g" + std::to_string(i) + "_s" + std::to_string(s)] = grads[s][i];
      }
    }
    c.params = {{"lr", lr},
                {"beta1", o.beta1},
                {"beta2", o.beta2},
                {"eps", o.eps},
                {"weight_decay", o.weight_decay},
                {"decay", decay},
                {"max_norm", max_norm},
                {"steps", grads.size()}};
    return c;
  }
};

const std::vector<Shape> kShapes = {{4, 5}, {7}, {3, 2, 2}};
const std::vector<bool> kDecay = {true, false, true};

// The tolerance against PyTorch: both run in f32 with the same operations, but torch's CPU
// kernels fuse multiply-adds (m, v) and compute clip_grad_norm_ in f32 where we use double, so
// results differ by rounding: 1 ulp observed after 6 steps. Allowed: 1e-7 + 1e-6 * |torch|.
constexpr float kAtol = 1e-7f;
constexpr float kRtol = 1e-6f;

TEST(AdamW, MatchesTorchAdamWOverSeveralSteps) {
  struct Setup {
    AdamWOptions options;
    std::vector<double> lr;
    double max_norm;
    float grad_scale;
  };
  const std::vector<Setup> setups = {
      // LM-style defaults with a warmup, no clipping.
      {{}, {1e-3, 2e-3, 3e-3, 3e-3, 2.5e-3, 1e-3}, 0.0, 1.0f},
      // torch's defaults, a larger eps.
      {{.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-3, .weight_decay = 0.01},
       {0.1, 0.1, 0.05, 0.05, 0.02, 0.01},
       0.0,
       1.0f},
      // Clipping on every step (the gradients' norm is ~20 > 1).
      {{.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.5},
       {1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2},
       1.0,
       4.0f},
      // Clipping threshold above the norm: measured, not applied.
      {{}, {1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2}, 1e3, 1.0f},
  };
  std::vector<Problem> problems;
  std::vector<test::ReferenceCase> cases;
  for (size_t k = 0; k < setups.size(); ++k) {
    problems.emplace_back(kShapes, kDecay, 6, 100 + k, setups[k].grad_scale);
    cases.push_back(
        problems[k].reference_case(setups[k].options, setups[k].lr, setups[k].max_norm));
  }
  const auto expected = test::run_reference_cases("adamw", cases);
  for (size_t k = 0; k < setups.size(); ++k) {
    SCOPED_TRACE("setup " + std::to_string(k));
    Problem& pb = problems[k];
    AdamW opt(pb.ptrs(), setups[k].options);
    for (int s = 0; s < 6; ++s) {
      pb.set_grads(s);
      if (setups[k].max_norm > 0) {
        const GradNorm n = clip_grad_norm(pb.ptrs(), setups[k].max_norm);
        const Tensor& ref = expected[k].at("norm_s" + std::to_string(s));
        EXPECT_NEAR(n.norm, ref.data<float>()[0], 1e-5 * n.norm) << "step " << s;
        EXPECT_EQ(n.scale < 1.0, setups[k].max_norm < n.norm) << "step " << s;
        for (size_t i = 0; i < pb.params.size(); ++i) {
          EXPECT_ALL_CLOSE(
              pb.params[i].grad,
              expected[k].at("g" + std::to_string(i) + "_s" + std::to_string(s) + "_clipped"),
              1e-7f, 1e-6f);
        }
      }
      opt.step(setups[k].lr[s]);
    }
    EXPECT_EQ(opt.step_count(), 6);
    const io::NamedTensors state = opt.state();
    for (size_t i = 0; i < pb.params.size(); ++i) {
      const std::string n = std::to_string(i);
      EXPECT_ALL_CLOSE(pb.params[i].value, expected[k].at("p" + n), kAtol, kRtol);
      EXPECT_ALL_CLOSE(state[1 + 2 * i].second, expected[k].at("m" + n), kAtol, kRtol);
      EXPECT_ALL_CLOSE(state[2 + 2 * i].second, expected[k].at("v" + n), kAtol, kRtol);
    }
  }
}

TEST(AdamW, DecaysOnlyParamsWithTheDecayFlag) {
  // Zero gradients: Adam's update is 0 / (0 + eps) = 0, so only the decay moves a parameter.
  Problem pb(kShapes, kDecay, 0, 7);
  std::vector<Tensor> before;
  for (const Param& p : pb.params) before.push_back(p.value.clone());
  AdamW opt(pb.ptrs(), {.weight_decay = 0.5});
  opt.step(0.1);
  const float factor = static_cast<float>(1.0 - 0.1 * 0.5);
  for (size_t i = 0; i < pb.params.size(); ++i) {
    SCOPED_TRACE(pb.params[i].name);
    if (!pb.params[i].decay) {
      EXPECT_TRUE(same_bits(pb.params[i].value, before[i]));
      continue;
    }
    const float* x = pb.params[i].value.data<float>();
    const float* x0 = before[i].data<float>();
    for (int64_t j = 0; j < before[i].numel(); ++j) EXPECT_EQ(x[j], x0[j] * factor) << j;
  }
}

TEST(AdamW, StateRoundTripGivesIdenticalSteps) {
  const test::TempDir dir("sy_adamw");
  Problem a(kShapes, kDecay, 6, 11);
  AdamW opt_a(a.ptrs(), {});
  for (int s = 0; s < 3; ++s) {
    a.set_grads(s);
    opt_a.step(1e-2);
  }
  // Checkpoint: parameters and optimizer state through a safetensors file.
  const std::string path = (dir.path / "optimizer.safetensors").string();
  io::write_safetensors(path, opt_a.state());
  Problem b = a;
  for (size_t i = 0; i < a.params.size(); ++i) b.params[i].value = a.params[i].value.clone();
  Problem fresh = b;
  for (size_t i = 0; i < a.params.size(); ++i) fresh.params[i].value = a.params[i].value.clone();
  AdamW opt_b(b.ptrs(), {});
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  io::NamedTensors loaded;
  for (const std::string& name : file.names()) loaded.emplace_back(name, file.tensor(name));
  opt_b.load_state(loaded, path);
  EXPECT_EQ(opt_b.step_count(), 3);
  AdamW opt_fresh(fresh.ptrs(), {});
  for (int s = 3; s < 6; ++s) {
    a.set_grads(s);
    b.set_grads(s);
    fresh.set_grads(s);
    opt_a.step(1e-2);
    opt_b.step(1e-2);
    opt_fresh.step(1e-2);
  }
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_TRUE(same_bits(a.params[i].value, b.params[i].value)) << a.params[i].name;
    // Without the state the run differs: the test can tell.
    EXPECT_FALSE(same_bits(a.params[i].value, fresh.params[i].value)) << a.params[i].name;
  }
  const io::NamedTensors sa = opt_a.state();
  const io::NamedTensors sb = opt_b.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(same_bits(sa[i].second, sb[i].second)) << sa[i].first;
  }
}

TEST(AdamW, StateNamesAndShapes) {
  Problem pb(kShapes, kDecay, 1, 3);
  AdamW opt(pb.ptrs(), {});
  const io::NamedTensors s = opt.state();
  ASSERT_EQ(s.size(), 7u);
  EXPECT_EQ(s[0].first, "optimizer.step");
  EXPECT_EQ(s[0].second.dtype(), DType::I64);
  EXPECT_EQ(s[0].second.data<int64_t>()[0], 0);
  EXPECT_EQ(s[1].first, "w0.exp_avg");
  EXPECT_EQ(s[2].first, "w0.exp_avg_sq");
  EXPECT_EQ(s[6].first, "w2.exp_avg_sq");
  EXPECT_EQ(s[6].second.shape(), (Shape{3, 2, 2}));
}

TEST(AdamW, BadStateIsRefusedNamingTheTensor) {
  Problem pb(kShapes, kDecay, 1, 5);
  AdamW source(pb.ptrs(), {});
  pb.set_grads(0);
  source.step(0.1);
  const io::NamedTensors good = source.state();
  const auto with = [&](const std::function<void(io::NamedTensors&)>& edit) {
    io::NamedTensors s = good;
    edit(s);
    return s;
  };
  Problem target(kShapes, kDecay, 1, 6);
  AdamW opt(target.ptrs(), {});
  const io::NamedTensors before = opt.state();
  const auto load = [&](const io::NamedTensors& s) {
    return error_of([&] { opt.load_state(s, "ck/optimizer.safetensors"); });
  };
  EXPECT_EQ(load(with([](io::NamedTensors& s) { s.erase(s.begin() + 3); })),
            "ck/optimizer.safetensors: optimizer state has no tensor 'w1.exp_avg'");
  EXPECT_EQ(load(with([](io::NamedTensors& s) { s.erase(s.begin()); })),
            "ck/optimizer.safetensors: optimizer state has no tensor 'optimizer.step'");
  EXPECT_EQ(load(with([](io::NamedTensors& s) { s[2].second = Tensor::zeros({20}); })),
            "ck/optimizer.safetensors: optimizer state tensor 'w0.exp_avg_sq' has shape [20], "
            "expected [4, 5]");
  EXPECT_EQ(load(with([](io::NamedTensors& s) { s[1].second = s[1].second.to(DType::F16); })),
            "ck/optimizer.safetensors: optimizer state tensor 'w0.exp_avg' has dtype f16, "
            "expected f32");
  EXPECT_EQ(load(with([](io::NamedTensors& s) { s[0].second = Tensor::zeros({1}); })),
            "ck/optimizer.safetensors: optimizer state tensor 'optimizer.step' has dtype f32, "
            "expected i64");
  EXPECT_EQ(load(with([](io::NamedTensors& s) {
              s[0].second = Tensor::zeros({1}, DType::I64);
              s[0].second.mutable_data<int64_t>()[0] = -4;
            })),
            "ck/optimizer.safetensors: optimizer state 'optimizer.step' is -4, expected a count "
            ">= 0");
  EXPECT_EQ(
      load(with([](io::NamedTensors& s) { s.emplace_back("w9.exp_avg", Tensor::zeros({1})); })),
      "ck/optimizer.safetensors: optimizer state has an unknown tensor 'w9.exp_avg' (no such "
      "parameter)");
  EXPECT_EQ(load(with([](io::NamedTensors& s) { s.push_back(s[1]); })),
            "ck/optimizer.safetensors: optimizer state has tensor 'w0.exp_avg' twice");
  // Nothing changed on any of those errors.
  const io::NamedTensors after = opt.state();
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(same_bits(before[i].second, after[i].second));
  opt.load_state(good, "ok");
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(AdamW, BadParamsAndOptionsAreRefused) {
  Param w = Param::trainable("w", {2});
  Param bias = Param::buffer("router.bias", {4});
  EXPECT_EQ(error_of([&] {
              AdamW({&w, &bias}, {});
            }),
            "AdamW: 'router.bias' is a buffer (no gradient), not a parameter");
  EXPECT_EQ(error_of([&] { AdamW({&w, &w}, {}); }), "AdamW: parameter name 'w' appears twice");
  EXPECT_EQ(error_of([&] { AdamW({&w}, {.beta1 = 1.0}); }), "AdamW: beta1 = 1 is not in [0, 1)");
  EXPECT_EQ(error_of([&] { AdamW({&w}, {.beta2 = -0.1}); }),
            "AdamW: beta2 = -0.1 is not in [0, 1)");
  EXPECT_EQ(error_of([&] { AdamW({&w}, {.eps = -1}); }), "AdamW: eps = -1 is not a number >= 0");
  EXPECT_EQ(error_of([&] { AdamW({&w}, {.weight_decay = std::nan("")}); }),
            "AdamW: weight_decay = nan is not a number >= 0");
  Param odd = Param::trainable("odd", {2, 3});
  odd.grad = Tensor::zeros({3, 2});
  EXPECT_NE(error_of([&] { AdamW({&odd}, {}); }).find("odd gradient"), std::string::npos);
  AdamW opt({&w}, {});
  EXPECT_EQ(error_of([&] { opt.step(-1.0); }), "AdamW: learning rate -1 is not a number >= 0");
  EXPECT_EQ(opt.step_count(), 0);
}

TEST(AdamW, ZeroGradClearsEveryGradient) {
  Problem pb(kShapes, kDecay, 1, 9);
  pb.set_grads(0);
  AdamW opt(pb.ptrs(), {});
  opt.zero_grad();
  for (const Param& p : pb.params) {
    for (int64_t j = 0; j < p.grad.numel(); ++j) EXPECT_EQ(p.grad.data<float>()[j], 0.0f);
  }
}

TEST(ClipGradNorm, NonFiniteNormIsReportedAndGradientsAreLeftAlone) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::nanf("")}) {
    Problem pb(kShapes, kDecay, 1, 4);
    pb.set_grads(0);
    pb.params[1].grad.mutable_data<float>()[3] = bad;
    std::vector<Tensor> before;
    for (const Param& p : pb.params) before.push_back(p.grad.clone());
    const GradNorm n = clip_grad_norm(pb.ptrs(), 1.0);
    EXPECT_FALSE(n.finite());
    EXPECT_EQ(std::isnan(n.norm), std::isnan(bad));
    EXPECT_EQ(n.scale, 1.0);
    for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(same_bits(pb.params[i].grad, before[i]));
  }
}

TEST(ClipGradNorm, ExactOnAKnownVectorAndMeasuresWithoutClippingWhenMaxIsZero) {
  Param a = Param::trainable("a", {2});
  Param b = Param::trainable("b", {1});
  a.grad = Tensor::from_f32({2}, {3.0f, 0.0f});
  b.grad = Tensor::from_f32({1}, {4.0f});
  GradNorm n = clip_grad_norm({&a, &b}, 0.0);
  EXPECT_EQ(n.norm, 5.0);
  EXPECT_EQ(a.grad.data<float>()[0], 3.0f);
  n = clip_grad_norm({&a, &b}, 1.0);
  EXPECT_EQ(n.norm, 5.0);
  const auto scale = static_cast<float>(1.0 / (5.0 + 1e-6));
  EXPECT_EQ(n.scale, scale);
  EXPECT_EQ(a.grad.data<float>()[0], 3.0f * scale);
  EXPECT_EQ(b.grad.data<float>()[0], 4.0f * scale);
  EXPECT_NEAR(clip_grad_norm({&a, &b}, 0.0).norm, 1.0, 1e-6);
}

TEST(ClipGradNorm, SameNormForAnyThreadCount) {
  // Several chunks per tensor, so the threads split the work differently.
  Rng rng(12);
  Param big = Param::trainable("big", {300'000});
  big.grad = test::random_normal({300'000}, rng);
  Param small = Param::trainable("small", {5});
  small.grad = test::random_normal({5}, rng);
  const int saved = num_threads();
  set_num_threads(1);
  const double one = clip_grad_norm({&big, &small}, 0.0).norm;
  set_num_threads(2);
  const double two = clip_grad_norm({&big, &small}, 0.0).norm;
  set_num_threads(saved);
  EXPECT_EQ(one, two);
  double sum = 0;
  for (int64_t i = 0; i < big.grad.numel(); ++i)
    sum += double{big.grad.data<float>()[i]} * big.grad.data<float>()[i];
  for (int64_t i = 0; i < 5; ++i)
    sum += double{small.grad.data<float>()[i]} * small.grad.data<float>()[i];
  EXPECT_NEAR(one, std::sqrt(sum), 1e-9 * one);
}

}  // namespace
}  // namespace sy::train
