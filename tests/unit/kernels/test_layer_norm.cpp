#include <gtest/gtest.h>

#include "kernels/layer_norm.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using test::for_each_simd_path;

// f32 tolerances, as for RMSNorm: each output is a short reduction (D <= 4096 terms) and a few
// products, ~1e-6 relative rounding, so 2e-5 relative + 1e-5 absolute leaves headroom while an
// algebra error shows up at 1e-2. Inputs carry a mean offset of 3 (|mean| > std), so the mean
// subtraction is exercised. Weight and bias gradients sum over <= 12 rows.
constexpr float kAtol = 1e-5f;
constexpr float kRtol = 2e-5f;

Tensor offset_normal(const Shape& shape, Rng& rng) {
  Tensor x = test::random_normal(shape, rng, 2.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] += 3.0f;
  return x;
}

Tensor plus_one(const Tensor& t) {
  Tensor out = t.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<float>()[i] += 1.0f;
  return out;
}

TEST(LayerNorm, MatchesPyTorchWithAndWithoutBiasOnEverySimdPath) {
  // Widths: one element, below one vector, odd, rank 3, several vectors, a large row.
  const std::vector<Shape> shapes = {{2, 1}, {3, 5}, {2, 3, 37}, {4, 256}, {3, 4096}};
  const float eps = 1e-5f;
  Rng rng(19);
  std::vector<test::ReferenceCase> cases;
  for (const bool with_bias : {true, false}) {
    for (const Shape& shape : shapes) {
      test::NamedTensors in = {{"x", offset_normal(shape, rng)},
                               {"weight", test::random_uniform({shape.back()}, rng, 0.5f, 1.5f)},
                               {"d_out", test::random_normal(shape, rng)}};
      if (with_bias) in["bias"] = test::random_normal({shape.back()}, rng);
      cases.push_back({in, {{"eps", eps}, {"bias", with_bias}}});
    }
  }
  const auto refs = test::run_reference_cases("layer_norm", cases);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& in = cases[i].inputs;
    const Tensor& x = in.at("x");
    const bool with_bias = in.count("bias") > 0;
    const Tensor bias = with_bias ? in.at("bias") : Tensor();
    const auto& ref = refs[i];
    const int64_t d = x.cols();
    SCOPED_TRACE(shape_str(x.shape()) + (with_bias ? " with bias" : " without bias"));
    for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros(x.shape());
      Tensor mean = Tensor::zeros({x.rows()});
      Tensor rstd = Tensor::zeros({x.rows()});
      layer_norm_forward(y, mean, rstd, x, in.at("weight"), bias, {.eps = eps});
      EXPECT_ALL_CLOSE(y, ref.at("y"), kAtol, kRtol);
      EXPECT_ALL_CLOSE(mean, ref.at("mean"), kAtol, kRtol);
      EXPECT_ALL_CLOSE(rstd, ref.at("rstd"), kAtol, kRtol);
      Tensor d_x = Tensor::zeros(x.shape());
      Tensor d_w = Tensor::zeros({d});
      Tensor d_b = with_bias ? Tensor::zeros({d}) : Tensor();
      layer_norm_backward(d_x, d_w, d_b, in.at("d_out"), x, in.at("weight"), mean, rstd);
      EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), kAtol, kRtol);
      EXPECT_ALL_CLOSE(d_w, ref.at("d_weight"), kAtol, kRtol);
      if (with_bias) {
        EXPECT_ALL_CLOSE(d_b, ref.at("d_bias"), kAtol, kRtol);
      }
    });
  }
}

TEST(LayerNorm, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(3);
  Tensor x = offset_normal({3, 7}, rng);
  Tensor w = test::random_uniform({7}, rng, 0.5f, 1.5f);
  Tensor b = test::random_normal({7}, rng);
  const Tensor probe = test::random_normal({3, 7}, rng);
  Tensor y = Tensor::zeros({3, 7});
  Tensor mean = Tensor::zeros({3});
  Tensor rstd = Tensor::zeros({3});
  auto loss = [&] {
    layer_norm_forward(y, mean, rstd, x, w, b);
    return test::dot(y, probe);
  };
  const Tensor num_x = test::numeric_gradient(x, loss);
  const Tensor num_w = test::numeric_gradient(w, loss);
  const Tensor num_b = test::numeric_gradient(b, loss);
  loss();
  Tensor d_x = Tensor::zeros({3, 7});
  Tensor d_w = Tensor::zeros({7});
  Tensor d_b = Tensor::zeros({7});
  d_x.fill(1.0f);  // backward adds to what is there
  d_w.fill(1.0f);
  d_b.fill(1.0f);
  layer_norm_backward(d_x, d_w, d_b, probe, x, w, mean, rstd);
  // Finite differences in f32 with step 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_x, plus_one(num_x), 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(d_w, plus_one(num_w), 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(d_b, plus_one(num_b), 3e-3f, 3e-3f);

  // Skipped gradients: undefined d_weight / d_bias are allowed and d_x is unchanged by them.
  Tensor d_x2 = Tensor::zeros({3, 7});
  d_x2.fill(1.0f);
  Tensor none_w, none_b;
  layer_norm_backward(d_x2, none_w, none_b, probe, x, w, mean, rstd);
  EXPECT_ALL_CLOSE(d_x2, d_x, 0.0f, 0.0f);
}

TEST(LayerNorm, RejectsMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 8});
  Tensor w = Tensor::zeros({8});
  Tensor bad_bias = Tensor::zeros({4});
  Tensor y = Tensor::zeros({2, 8});
  Tensor mean = Tensor::zeros({2});
  Tensor rstd = Tensor::zeros({2});
  EXPECT_EQ(test::error_of([&] { layer_norm_forward(y, mean, rstd, x, w, bad_bias); }),
            "layer_norm_forward: bias: shape [4], expected [8]");
  Tensor short_rstd = Tensor::zeros({3});
  EXPECT_EQ(test::error_of([&] { layer_norm_forward(y, mean, short_rstd, x, w, Tensor()); }),
            "layer_norm_forward: rstd: shape [3], expected [2]");
}

}  // namespace
}  // namespace sy::kernels
