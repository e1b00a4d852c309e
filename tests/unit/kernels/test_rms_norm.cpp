#include <gtest/gtest.h>

#include "kernels/rms_norm.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using test::for_each_simd_path;

// f32 tolerances: each output is a short reduction (D <= 4096 terms) then a product of three
// factors; float32 rounding accumulates to ~1e-6 relative, so 2e-5 relative + 1e-6 absolute
// leaves headroom while catching any algebra error (which shows up at 1e-2 or worse).
constexpr float kAtol = 1e-5f;
constexpr float kRtol = 2e-5f;

TEST(RmsNorm, MatchesPyTorchForwardAndBackward) {
  // Widths cover: below one vector, not a multiple of any vector width, and a large row.
  const std::vector<Shape> shapes = {{3, 5}, {2, 3, 37}, {4, 256}, {2, 4096}};
  const float eps = 1e-5f;
  Rng rng(17);
  std::vector<test::ReferenceCase> cases;
  for (const Shape& shape : shapes) {
    cases.push_back({{{"x", test::random_normal(shape, rng, 2.0f)},
                      {"weight", test::random_uniform({shape.back()}, rng, 0.5f, 1.5f)},
                      {"d_out", test::random_normal(shape, rng)}},
                     {{"eps", eps}}});
  }
  const auto refs = test::run_reference_cases("rms_norm", cases);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape& shape = shapes[i];
    SCOPED_TRACE(shape_str(shape));
    const Tensor& x = cases[i].inputs.at("x");
    const Tensor& w = cases[i].inputs.at("weight");
    const auto& ref = refs[i];
    for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros(shape);
      Tensor inv = Tensor::zeros({x.rows()});
      rms_norm_forward(y, inv, x, w, {.eps = eps});
      EXPECT_ALL_CLOSE(y, ref.at("y"), kAtol, kRtol);
      Tensor d_x = Tensor::zeros(shape);
      Tensor d_w = Tensor::zeros({shape.back()});
      rms_norm_backward(d_x, d_w, cases[i].inputs.at("d_out"), x, w, inv);
      EXPECT_ALL_CLOSE(d_x, ref.at("d_x"), kAtol, kRtol);
      EXPECT_ALL_CLOSE(d_w, ref.at("d_weight"), kAtol, kRtol);
    });
  }
}

TEST(RmsNorm, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(3);
  Tensor x = test::random_normal({3, 7}, rng);
  const Tensor w = test::random_uniform({7}, rng, 0.5f, 1.5f);
  const Tensor probe = test::random_normal({3, 7}, rng);
  Tensor y = Tensor::zeros({3, 7});
  Tensor inv = Tensor::zeros({3});
  auto loss = [&] {
    rms_norm_forward(y, inv, x, w);
    return test::dot(y, probe);
  };
  const Tensor numeric = test::numeric_gradient(x, loss);
  loss();
  Tensor d_x = Tensor::zeros({3, 7});
  d_x.fill(1.0f);  // backward adds to what is there
  Tensor d_w = Tensor::zeros({7});
  rms_norm_backward(d_x, d_w, probe, x, w, inv);
  Tensor expected = numeric.clone();
  for (int64_t i = 0; i < expected.numel(); ++i) expected.mutable_data<float>()[i] += 1.0f;
  // Finite differences in f32 with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_x, expected, 3e-3f, 3e-3f);
}

TEST(RmsNorm, RejectsMismatchedWeight) {
  Tensor x = Tensor::zeros({2, 8});
  Tensor w = Tensor::zeros({4});
  Tensor y = Tensor::zeros({2, 8});
  Tensor inv = Tensor::zeros({2});
  EXPECT_EQ(test::error_of([&] { rms_norm_forward(y, inv, x, w); }),
            "rms_norm: weight: shape [4], expected [8]");
}

}  // namespace
}  // namespace sy::kernels
