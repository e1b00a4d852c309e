#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/activations.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using test::for_each_simd_path;

// Tolerances. Each value is a handful of f32 operations on one input: exp and the Newton-refined
// reciprocal within ~1 ulp, our erfc within ~3e-7 relative (|x| < 2; beyond, the tail is tiny
// in absolute terms). All ops pass at 6e-7 absolute + 6e-7 relative on every SIMD path (the
// absolute part comes from silu'(g) = s + g s (1 - s), which cancels near g = -1.28, times
// |d_out * up| up to ~10); 2e-6 + 2e-6 leaves ~3x headroom, while a wrong constant or
// derivative term shows up at 1e-3 or worse.
constexpr float kAtol = 2e-6f;
constexpr float kRtol = 2e-6f;

// Normal values plus the places where formulas break: 0, large magnitudes where exp overflows
// or tanh saturates, and the GELU tail where 1 + erf(x) would cancel.
Tensor activation_input(const Shape& shape, Rng& rng) {
  Tensor x = test::random_normal(shape, rng, 3.0f);
  const float special[] = {0.0f,  -0.0f, 1e-4f,  -1e-4f, 5.0f,   -5.0f,  9.5f,
                           -9.5f, 20.0f, -20.0f, 88.0f,  -88.0f, 120.0f, -120.0f};
  float* p = x.mutable_data<float>();
  for (size_t i = 0; i < std::size(special) && static_cast<int64_t>(i) < x.numel(); ++i) {
    p[(i * 7) % static_cast<size_t>(x.numel())] = special[i];
  }
  return x;
}

Tensor plus_one(const Tensor& t) {
  Tensor out = t.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<float>()[i] += 1.0f;
  return out;
}

Tensor ones_like(const Shape& shape) {
  Tensor t = Tensor::zeros(shape);
  t.fill(1.0f);
  return t;
}

// Every activation in one reference run: unary ops on several shapes, then SwiGLU in both
// layouts. Shapes: below one vector, odd tails, and spans longer than one OpenMP chunk.
TEST(Activations, MatchPyTorchForwardAndBackwardOnEverySimdPath) {
  const std::vector<Shape> shapes = {{3}, {2, 5}, {3, 37}, {4, 1027}, {2, 20000}};
  const std::vector<std::string> unary = {"silu", "gelu", "gelu_tanh"};
  Rng rng(23);
  std::vector<test::ReferenceCase> cases;
  for (const std::string& op : unary) {
    for (const Shape& shape : shapes) {
      cases.push_back(
          {{{"x", activation_input(shape, rng)}, {"d_out", test::random_normal(shape, rng)}},
           {{"op", op}}});
    }
  }
  const size_t first_swiglu = cases.size();
  for (const Shape& shape : shapes) {
    cases.push_back({{{"gate", activation_input(shape, rng)},
                      {"up", test::random_normal(shape, rng, 2.0f)},
                      {"d_out", test::random_normal(shape, rng)}},
                     {{"op", "swiglu"}}});
    Shape fused = shape;
    fused.back() *= 2;
    cases.push_back(
        {{{"gate_up", activation_input(fused, rng)}, {"d_out", test::random_normal(shape, rng)}},
         {{"op", "swiglu_fused"}}});
  }
  const auto refs = test::run_reference_cases("activations", cases);

  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& in = cases[i].inputs;
    const auto& ref = refs[i];
    const std::string op = cases[i].params["op"];
    const Tensor& d_out = in.at("d_out");
    SCOPED_TRACE(op + " " + shape_str(d_out.shape()));
    for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros(d_out.shape());
      if (i < first_swiglu) {
        const Tensor& x = in.at("x");
        Tensor d_x = Tensor::zeros(x.shape());
        if (op == "silu") {
          silu_forward(y, x);
          silu_backward(d_x, d_out, x);
        } else {
          const GeluOptions opts{.approximate = op == "gelu_tanh" ? GeluApproximation::kTanh
                                                                  : GeluApproximation::kNone};
          gelu_forward(y, x, opts);
          gelu_backward(d_x, d_out, x, opts);
        }
        EXPECT_ALL_CLOSE(y, ref.at("y"), kAtol, kRtol);
        EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), kAtol, kRtol);
      } else if (op == "swiglu") {
        const Tensor& gate = in.at("gate");
        Tensor d_gate = Tensor::zeros(gate.shape());
        Tensor d_up = Tensor::zeros(gate.shape());
        swiglu_forward(y, gate, in.at("up"));
        swiglu_backward(d_gate, d_up, d_out, gate, in.at("up"));
        EXPECT_ALL_CLOSE(y, ref.at("y"), kAtol, kRtol);
        EXPECT_ALL_CLOSE(d_gate, ref.at("d_gate"), kAtol, kRtol);
        EXPECT_ALL_CLOSE(d_up, ref.at("d_up"), kAtol, kRtol);
      } else {
        const Tensor& gate_up = in.at("gate_up");
        Tensor d_gate_up = Tensor::zeros(gate_up.shape());
        swiglu_fused_forward(y, gate_up);
        swiglu_fused_backward(d_gate_up, d_out, gate_up);
        EXPECT_ALL_CLOSE(y, ref.at("y"), kAtol, kRtol);
        EXPECT_ALL_CLOSE(d_gate_up, ref.at("d_gate_up"), kAtol, kRtol);
      }
    });
  }
}

// Finite differences for one unary op, and that backward adds onto a gradient of ones.
void check_unary_gradient(void (*forward)(Tensor&, const Tensor&),
                          void (*backward)(Tensor&, const Tensor&, const Tensor&)) {
  Rng rng(7);
  Tensor x = test::random_normal({4, 9}, rng, 2.0f);
  const Tensor probe = test::random_normal({4, 9}, rng);
  Tensor y = Tensor::zeros(x.shape());
  const Tensor numeric = test::numeric_gradient(x, [&] {
    forward(y, x);
    return test::dot(y, probe);
  });
  Tensor d_x = ones_like(x.shape());
  backward(d_x, probe, x);
  // f32 central differences with step 1e-3 on O(1)-O(5) outputs: ~2e-3 error.
  EXPECT_ALL_CLOSE(d_x, plus_one(numeric), 3e-3f, 3e-3f);
}

TEST(Silu, BackwardAccumulatesAndMatchesFiniteDifferences) {
  check_unary_gradient(
      [](Tensor& y, const Tensor& x) { silu_forward(y, x); },
      [](Tensor& d_x, const Tensor& d_y, const Tensor& x) { silu_backward(d_x, d_y, x); });
}

TEST(Gelu, BackwardAccumulatesAndMatchesFiniteDifferencesBothForms) {
  check_unary_gradient(
      [](Tensor& y, const Tensor& x) { gelu_forward(y, x); },
      [](Tensor& d_x, const Tensor& d_y, const Tensor& x) { gelu_backward(d_x, d_y, x); });
  check_unary_gradient(
      [](Tensor& y, const Tensor& x) {
        gelu_forward(y, x, {.approximate = GeluApproximation::kTanh});
      },
      [](Tensor& d_x, const Tensor& d_y, const Tensor& x) {
        gelu_backward(d_x, d_y, x, {.approximate = GeluApproximation::kTanh});
      });
}

TEST(SwiGlu, BackwardAccumulatesAndMatchesFiniteDifferencesBothLayouts) {
  Rng rng(8);
  Tensor gate = test::random_normal({3, 5}, rng, 2.0f);
  Tensor up = test::random_normal({3, 5}, rng, 2.0f);
  const Tensor probe = test::random_normal({3, 5}, rng);
  Tensor y = Tensor::zeros({3, 5});
  auto loss = [&] {
    swiglu_forward(y, gate, up);
    return test::dot(y, probe);
  };
  const Tensor num_gate = test::numeric_gradient(gate, loss);
  const Tensor num_up = test::numeric_gradient(up, loss);
  Tensor d_gate = ones_like({3, 5});
  Tensor d_up = ones_like({3, 5});
  swiglu_backward(d_gate, d_up, probe, gate, up);
  // As above: f32 central differences carry ~2e-3 error.
  EXPECT_ALL_CLOSE(d_gate, plus_one(num_gate), 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(d_up, plus_one(num_up), 3e-3f, 3e-3f);

  // Fused layout: row t of gate_up is [gate[t, :], up[t, :]].
  Tensor gate_up = Tensor::zeros({3, 10});
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t f = 0; f < 5; ++f) {
      gate_up.mutable_data<float>()[t * 10 + f] = gate.data<float>()[t * 5 + f];
      gate_up.mutable_data<float>()[t * 10 + 5 + f] = up.data<float>()[t * 5 + f];
    }
  }
  Tensor y_fused = Tensor::zeros({3, 5});
  const Tensor num_fused = test::numeric_gradient(gate_up, [&] {
    swiglu_fused_forward(y_fused, gate_up);
    return test::dot(y_fused, probe);
  });
  EXPECT_ALL_CLOSE(y_fused, y, 0.0f, 0.0f);  // same arithmetic, same bits
  Tensor d_gate_up = ones_like({3, 10});
  swiglu_fused_backward(d_gate_up, probe, gate_up);
  EXPECT_ALL_CLOSE(d_gate_up, plus_one(num_fused), 3e-3f, 3e-3f);
}

TEST(Activations, RejectBadShapes) {
  Tensor x = Tensor::zeros({2, 3});
  Tensor out = Tensor::zeros({3, 2});
  EXPECT_EQ(test::error_of([&] { gelu_forward(out, x); }),
            "gelu_forward: out: shape [3, 2], expected [2, 3]");
  Tensor gate_up = Tensor::zeros({4, 7});
  Tensor y = Tensor::zeros({4, 3});
  EXPECT_EQ(test::error_of([&] { swiglu_fused_forward(y, gate_up); }),
            "swiglu_fused_forward: gate_up: shape [4, 7], expected [..., 2F] (last "
            "dimension even)");
  Tensor gate_up_ok = Tensor::zeros({4, 8});
  Tensor d_out = Tensor::zeros({4, 8});
  Tensor d_gate_up = Tensor::zeros({4, 8});
  EXPECT_EQ(test::error_of([&] { swiglu_fused_backward(d_gate_up, d_out, gate_up_ok); }),
            "swiglu_fused_backward: d_out: shape [4, 8], expected [4, 4]");
}

}  // namespace
}  // namespace sy::kernels
