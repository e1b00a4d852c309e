#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/softmax.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using test::for_each_simd_path;

// Softmax outputs are probabilities in [0, 1]: hn::Exp is within 1 ulp and each row sum is a
// float32 reduction of <= 4096 terms (~1e-6 relative), so 1e-6 absolute + 1e-5 relative holds
// with headroom; an algebra slip shows up at 1e-3 or worse. Log-softmax values reach ~-20 here,
// where one ulp of the log-sum-exp is ~2e-6: 1e-5 absolute + 1e-5 relative.
constexpr float kProbAtol = 1e-6f;
constexpr float kLogAtol = 1e-5f;
constexpr float kRtol = 1e-5f;

Tensor add_one(const Tensor& t) {
  Tensor out = t.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<float>()[i] += 1.0f;
  return out;
}

// One reference run serves both ops: the script returns softmax and log-softmax of each case.
TEST(Softmax, MatchesPyTorchForwardAndBackwardOnEverySimdPath) {
  // Widths: one element, below one vector, odd, several vectors plus a tail, a large row; a
  // rank-3 shape checks that leading dimensions flatten into rows.
  const std::vector<Shape> shapes = {{2, 1}, {3, 5}, {2, 3, 37}, {5, 67}, {4, 256}, {2, 4096}};
  Rng rng(11);
  std::vector<test::ReferenceCase> cases;
  for (const Shape& shape : shapes) {
    // Spread 4 makes rows far from uniform, so the max subtraction matters.
    Tensor x = test::random_normal(shape, rng, 4.0f);
    cases.push_back({{{"x", x}, {"d_out", test::random_normal(shape, rng)}}});
  }
  // A row with masked (-inf) entries: probability 0 there, gradient 0 there.
  Tensor masked = test::random_normal({2, 19}, rng, 2.0f);
  for (int64_t c = 0; c < 19; c += 3) masked.mutable_data<float>()[c] = -INFINITY;
  cases.push_back({{{"x", masked}, {"d_out", test::random_normal({2, 19}, rng)}}});
  // Large logits: a naive exp would overflow.
  Tensor big = test::random_uniform({2, 40}, rng, 500.0f, 520.0f);
  cases.push_back({{{"x", big}, {"d_out", test::random_normal({2, 40}, rng)}}});

  const auto refs = test::run_reference_cases("softmax", cases);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Tensor& x = cases[i].inputs.at("x");
    const Tensor& d_out = cases[i].inputs.at("d_out");
    const auto& ref = refs[i];
    SCOPED_TRACE("case " + std::to_string(i) + " " + shape_str(x.shape()));
    for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros(x.shape());
      softmax_forward(y, x);
      EXPECT_ALL_CLOSE(y, ref.at("y"), kProbAtol, kRtol);
      Tensor d_x = Tensor::zeros(x.shape());
      softmax_backward(d_x, d_out, y);
      EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), kLogAtol, kRtol);

      Tensor log_y = Tensor::zeros(x.shape());
      log_softmax_forward(log_y, x);
      EXPECT_ALL_CLOSE(log_y, ref.at("log_y"), kLogAtol, kRtol);
      Tensor log_d_x = Tensor::zeros(x.shape());
      log_softmax_backward(log_d_x, d_out, log_y);
      EXPECT_ALL_CLOSE(log_d_x, ref.at("log_d_x"), kLogAtol, kRtol);
    });
  }
}

TEST(Softmax, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(5);
  Tensor x = test::random_normal({3, 9}, rng);
  const Tensor probe = test::random_normal({3, 9}, rng);
  Tensor y = Tensor::zeros({3, 9});
  auto loss = [&] {
    softmax_forward(y, x);
    return test::dot(y, probe);
  };
  const Tensor numeric = test::numeric_gradient(x, loss);
  loss();
  Tensor d_x = Tensor::zeros({3, 9});
  d_x.fill(1.0f);  // backward adds to what is there
  softmax_backward(d_x, probe, y);
  // Central differences in f32 with step 1e-3 on outputs of size ~0.1 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_x, add_one(numeric), 2e-3f, 2e-3f);
}

TEST(LogSoftmax, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(6);
  Tensor x = test::random_normal({3, 9}, rng);
  const Tensor probe = test::random_normal({3, 9}, rng);
  Tensor y = Tensor::zeros({3, 9});
  auto loss = [&] {
    log_softmax_forward(y, x);
    return test::dot(y, probe);
  };
  const Tensor numeric = test::numeric_gradient(x, loss);
  loss();
  Tensor d_x = Tensor::zeros({3, 9});
  d_x.fill(1.0f);
  log_softmax_backward(d_x, probe, y);
  // Log-softmax values are O(1)-O(5): f32 rounding over a 2e-3 step gives ~3e-3 error.
  EXPECT_ALL_CLOSE(d_x, add_one(numeric), 5e-3f, 5e-3f);
}

TEST(Softmax, RowsOfOnlyMinusInfinityOrNanComeOutNan) {
  // hn::Exp maps NaN to 0, so without the kernel's check these rows would silently look fine.
  const float inf = std::numeric_limits<float>::infinity();
  for (const float bad : {-inf, std::numeric_limits<float>::quiet_NaN()}) {
    Tensor x = Tensor::from_f32({3, 33}, std::vector<float>(99, 0.5f));
    // Row 1: all -inf, or ordinary values with a single NaN among them.
    float* row1 = x.mutable_data<float>() + 33;
    for (int64_t c = 0; c < 33; ++c) row1[c] = std::isnan(bad) ? 0.25f : bad;
    if (std::isnan(bad)) row1[20] = bad;
    for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros({3, 33});
      softmax_forward(y, x);
      Tensor log_y = Tensor::zeros({3, 33});
      log_softmax_forward(log_y, x);
      for (int64_t c = 0; c < 33; ++c) {
        EXPECT_FLOAT_EQ(y.data<float>()[c], 1.0f / 33.0f);
        EXPECT_TRUE(std::isnan(y.data<float>()[33 + c])) << c;
        EXPECT_TRUE(std::isnan(log_y.data<float>()[33 + c])) << c;
        EXPECT_FLOAT_EQ(y.data<float>()[66 + c], 1.0f / 33.0f);
      }
    });
  }
}

TEST(Softmax, RejectsMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 4});
  Tensor y = Tensor::zeros({2, 3});
  EXPECT_EQ(test::error_of([&] { softmax_forward(y, x); }),
            "softmax_forward: out: shape [2, 3], expected [2, 4]");
  Tensor d_x = Tensor::zeros({2, 4});
  Tensor d_out = Tensor::zeros({4, 2});
  EXPECT_EQ(test::error_of([&] { log_softmax_backward(d_x, d_out, x); }),
            "log_softmax_backward: d_out: shape [4, 2], expected [2, 4]");
}

}  // namespace
}  // namespace sy::kernels
