#include "kernels/rms_norm.h"

#include <gtest/gtest.h>

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
  for (const Shape& shape : {Shape{3, 5}, Shape{2, 3, 37}, Shape{4, 256}, Shape{2, 4096}}) {
    SCOPED_TRACE(shape_str(shape));
    Rng rng(17);
    const Tensor x = test::random_normal(shape, rng, 2.0f);
    const Tensor w = test::random_uniform({shape.back()}, rng, 0.5f, 1.5f);
    const Tensor d_out = test::random_normal(shape, rng);
    const float eps = 1e-5f;
    auto ref = test::run_reference("rms_norm", {{"x", x}, {"weight", w}, {"d_out", d_out}},
                                   {{"eps", eps}});
    for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros(shape);
      Tensor inv = Tensor::zeros({x.rows()});
      rms_norm_forward(y, inv, x, w, {.eps = eps});
      EXPECT_ALL_CLOSE(y, ref["y"], kAtol, kRtol);
      Tensor d_x = Tensor::zeros(shape);
      Tensor d_w = Tensor::zeros({shape.back()});
      rms_norm_backward(d_x, d_w, d_out, x, w, inv);
      EXPECT_ALL_CLOSE(d_x, ref["d_x"], kAtol, kRtol);
      EXPECT_ALL_CLOSE(d_w, ref["d_weight"], kAtol, kRtol);
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
  try {
    rms_norm_forward(y, inv, x, w);
    FAIL() << "expected sy::Error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rms_norm: weight: shape [4], expected [8]");
  }
}

}  // namespace
}  // namespace sy::kernels
