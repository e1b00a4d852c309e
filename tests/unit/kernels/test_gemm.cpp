#include <gtest/gtest.h>

#include "kernels/gemm.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

// f32 tolerances: every output is a dot product of K terms with |a|, |b| <= 1. For K <= 64 the
// worst-case f32 rounding is K * 2^-24 * sum|a_i b_i| ~ 64 * 6e-8 * 21 ~ 8e-5; for K = 2048 the
// error is a random walk, ~sqrt(K) * 6e-8 * |a_i b_i| ~ 1e-6 typical and below 1e-4 by far. A
// wrong transpose, a missed alpha/accumulate or a misplaced column piece shows up at 1e-1.
constexpr float kAtol = 1e-4f;
constexpr float kRtol = 1e-5f;

struct GemmCase {
  int64_t m, k, n;
};

// Sizes: odd and non-square, a single row, a single inner term, one bigger than a BLAS tile, and
// two with few rows and a large B, which run split by columns across threads (a router's
// [1, 2048] x [2048, 64] in decode; 3 rows with N = 70, not a multiple of the 16-column pieces).
const std::vector<GemmCase> kSizes = {{3, 5, 7},    {1, 9, 6},     {5, 1, 4},
                                      {64, 33, 17}, {1, 2048, 64}, {3, 1100, 70}};

Shape stored_a(const GemmCase& s, bool trans_a) {
  return trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k};
}
Shape stored_b(const GemmCase& s, bool trans_b) {
  return trans_b ? Shape{s.n, s.k} : Shape{s.k, s.n};
}

Tensor plus(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  float* po = out.mutable_data<float>();
  const float* pb = b.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) po[i] += pb[i];
  return out;
}

// Every size x every transpose combination, alternating alpha and the accumulate flag, forward
// and backward (backward accumulates on top of a random start).
TEST(Gemm, MatchesPyTorchForAllTransposesForwardAndBackward) {
  Rng rng(11);
  std::vector<test::ReferenceCase> cases;
  std::vector<GemmOptions> options;
  int variant = 0;
  for (const GemmCase& s : kSizes) {
    for (int t = 0; t < 4; ++t, ++variant) {
      const GemmOptions o{.trans_a = (t & 1) != 0,
                          .trans_b = (t & 2) != 0,
                          .alpha = variant % 3 == 0 ? 1.0f : -0.75f,
                          .accumulate = variant % 2 == 1};
      options.push_back(o);
      cases.push_back({{{"a", test::random_uniform(stored_a(s, o.trans_a), rng)},
                        {"b", test::random_uniform(stored_b(s, o.trans_b), rng)},
                        {"c0", test::random_uniform({s.m, s.n}, rng)},
                        {"d_c", test::random_uniform({s.m, s.n}, rng)}},
                       {{"op", "gemm"},
                        {"trans_a", o.trans_a},
                        {"trans_b", o.trans_b},
                        {"alpha", o.alpha},
                        {"accumulate", o.accumulate}}});
    }
  }
  const auto refs = test::run_reference_cases("gemm", cases);
  for (size_t i = 0; i < cases.size(); ++i) {
    const GemmOptions& o = options[i];
    const auto& in = cases[i].inputs;
    SCOPED_TRACE(::testing::Message()
                 << "a " << shape_str(in.at("a").shape()) << " b " << shape_str(in.at("b").shape())
                 << " trans_a " << o.trans_a << " trans_b " << o.trans_b << " alpha " << o.alpha
                 << " accumulate " << o.accumulate);
    Tensor c = in.at("c0").clone();
    gemm(c, in.at("a"), in.at("b"), o);
    EXPECT_ALL_CLOSE(c, refs[i].at("c"), kAtol, kRtol);

    const Tensor start_a = test::random_uniform(in.at("a").shape(), rng);
    const Tensor start_b = test::random_uniform(in.at("b").shape(), rng);
    Tensor d_a = start_a.clone();
    Tensor d_b = start_b.clone();
    gemm_backward(d_a, d_b, in.at("d_c"), in.at("a"), in.at("b"), o);
    EXPECT_ALL_CLOSE(d_a, plus(start_a, refs[i].at("d_a")), kAtol, kRtol);
    EXPECT_ALL_CLOSE(d_b, plus(start_b, refs[i].at("d_b")), kAtol, kRtol);
  }
}

// An undefined d_a or d_b is skipped; the other gradient is still exact. Checked against the
// full backward (already checked against PyTorch above) for every transpose combination.
TEST(Gemm, BackwardSkipsUndefinedGradients) {
  Rng rng(5);
  const GemmCase s{4, 6, 3};
  for (int t = 0; t < 4; ++t) {
    const GemmOptions o{.trans_a = (t & 1) != 0, .trans_b = (t & 2) != 0, .alpha = 2.0f};
    SCOPED_TRACE(::testing::Message() << "trans_a " << o.trans_a << " trans_b " << o.trans_b);
    const Tensor a = test::random_uniform(stored_a(s, o.trans_a), rng);
    const Tensor b = test::random_uniform(stored_b(s, o.trans_b), rng);
    const Tensor d_c = test::random_uniform({s.m, s.n}, rng);
    Tensor full_a = Tensor::zeros(a.shape());
    Tensor full_b = Tensor::zeros(b.shape());
    gemm_backward(full_a, full_b, d_c, a, b, o);

    Tensor none;
    Tensor only_a = Tensor::zeros(a.shape());
    gemm_backward(only_a, none, d_c, a, b, o);
    EXPECT_ALL_CLOSE(only_a, full_a, 0.0f, 0.0f);
    Tensor only_b = Tensor::zeros(b.shape());
    gemm_backward(none, only_b, d_c, a, b, o);
    EXPECT_ALL_CLOSE(only_b, full_b, 0.0f, 0.0f);
    EXPECT_FALSE(none.defined());
  }
}

TEST(Gemm, BackwardMatchesFiniteDifferences) {
  Rng rng(8);
  const GemmOptions o{.trans_a = true, .trans_b = false, .alpha = 0.5f};
  Tensor a = test::random_uniform({4, 3}, rng);  // op(a) [3, 4]
  Tensor b = test::random_uniform({4, 5}, rng);
  const Tensor probe = test::random_uniform({3, 5}, rng);
  Tensor c = Tensor::zeros({3, 5});
  auto loss = [&] {
    gemm(c, a, b, o);
    return test::dot(c, probe);
  };
  const Tensor num_a = test::numeric_gradient(a, loss);
  const Tensor num_b = test::numeric_gradient(b, loss);
  Tensor d_a = Tensor::zeros(a.shape());
  d_a.fill(1.0f);
  Tensor d_b = Tensor::zeros(b.shape());
  d_b.fill(-2.0f);
  gemm_backward(d_a, d_b, probe, a, b, o);
  Tensor ones = Tensor::zeros(a.shape());
  ones.fill(1.0f);
  Tensor minus_twos = Tensor::zeros(b.shape());
  minus_twos.fill(-2.0f);
  // The loss is bilinear, so central differences are exact up to f32 rounding of the loss
  // (~1e-7 / 2e-3 ~ 1e-4).
  EXPECT_ALL_CLOSE(d_a, plus(ones, num_a), 1e-3f, 1e-3f);
  EXPECT_ALL_CLOSE(d_b, plus(minus_twos, num_b), 1e-3f, 1e-3f);
}

// An empty inner dimension gives c = 0 (or leaves c unchanged when accumulating); empty rows
// are a no-op. (The BLAS interface forbids a leading dimension of 0, which an empty stored
// operand would otherwise produce.)
TEST(Gemm, HandlesEmptyDimensions) {
  const Tensor a = Tensor::zeros({3, 0});
  const Tensor b = Tensor::zeros({0, 4});
  Tensor c = Tensor::zeros({3, 4});
  c.fill(7.0f);
  gemm(c, a, b);
  Tensor zeros = Tensor::zeros({3, 4});
  EXPECT_ALL_CLOSE(c, zeros, 0.0f, 0.0f);
  c.fill(7.0f);
  gemm(c, a, b, {.accumulate = true});
  Tensor sevens = Tensor::zeros({3, 4});
  sevens.fill(7.0f);
  EXPECT_ALL_CLOSE(c, sevens, 0.0f, 0.0f);
  Tensor d_a = Tensor::zeros({3, 0});
  Tensor d_b = Tensor::zeros({0, 4});
  gemm_backward(d_a, d_b, c, a, b);
  // Transposed empty inner dimension: a stored [0, 3], b stored [4, 0].
  const Tensor at = Tensor::zeros({0, 3});
  const Tensor bt = Tensor::zeros({4, 0});
  c.fill(7.0f);
  gemm(c, at, bt, {.trans_a = true, .trans_b = true});
  EXPECT_ALL_CLOSE(c, zeros, 0.0f, 0.0f);
  Tensor empty_c = Tensor::zeros({0, 4});
  gemm(empty_c, Tensor::zeros({0, 5}), Tensor::zeros({5, 4}));
}

TEST(Gemm, RejectsMismatchedInnerDimensions) {
  const Tensor a = Tensor::zeros({3, 5});
  const Tensor b = Tensor::zeros({4, 7});
  Tensor c = Tensor::zeros({3, 7});
  EXPECT_EQ(test::error_of([&] { gemm(c, a, b); }),
            "gemm: inner dimensions differ: op(a) is [3, 5], op(b) is [4, 7]");
  Tensor wrong_c = Tensor::zeros({3, 6});
  const Tensor b_ok = Tensor::zeros({5, 7});
  EXPECT_EQ(test::error_of([&] { gemm(wrong_c, a, b_ok); }),
            "gemm: c: shape [3, 6], expected [3, 7]");
  Tensor d_a = Tensor::zeros({3, 5});
  Tensor none;
  EXPECT_EQ(test::error_of([&] { gemm_backward(d_a, none, wrong_c, a, b_ok); }),
            "gemm_backward: d_c: shape [3, 6], expected [3, 7]");
}

TEST(Matvec, MatchesPyTorchWithAndWithoutTransposeAndAccumulate) {
  Rng rng(21);
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{7, 5}, {1, 13}, {33, 1}, {64, 65}};
  std::vector<test::ReferenceCase> cases;
  std::vector<MatvecOptions> options;
  for (const auto& [m, k] : sizes) {
    for (int t = 0; t < 4; ++t) {
      const MatvecOptions o{.trans_a = (t & 1) != 0, .accumulate = (t & 2) != 0};
      options.push_back(o);
      cases.push_back({{{"a", test::random_uniform(o.trans_a ? Shape{k, m} : Shape{m, k}, rng)},
                        {"x", test::random_uniform({k}, rng)},
                        {"y0", test::random_uniform({m}, rng)}},
                       {{"op", "matvec"}, {"trans_a", o.trans_a}, {"accumulate", o.accumulate}}});
    }
  }
  const auto refs = test::run_reference_cases("gemm", cases);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& in = cases[i].inputs;
    SCOPED_TRACE(::testing::Message()
                 << "a " << shape_str(in.at("a").shape()) << " trans_a " << options[i].trans_a
                 << " accumulate " << options[i].accumulate);
    Tensor y = in.at("y0").clone();
    matvec(y, in.at("a"), in.at("x"), options[i]);
    EXPECT_ALL_CLOSE(y, refs[i].at("y"), kAtol, kRtol);
  }
}

TEST(Matvec, RejectsMismatchedVector) {
  const Tensor a = Tensor::zeros({3, 5});
  const Tensor x = Tensor::zeros({3});
  Tensor y = Tensor::zeros({3});
  EXPECT_EQ(test::error_of([&] { matvec(y, a, x); }), "matvec: x: shape [3], expected [5]");
}

}  // namespace
}  // namespace sy::kernels
