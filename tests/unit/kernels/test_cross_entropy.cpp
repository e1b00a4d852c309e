#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cross_entropy.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using test::for_each_simd_path;

// Token losses are lse - logit: two O(10) numbers whose difference is ~ulp(10) = 1e-6 exact at
// best, so 1e-5 absolute + 1e-5 relative. The mean adds in double: same band. Gradients are
// probabilities times d_loss / n_valid (<= 1): hn::Exp at 1 ulp, lse rounded to ulp(lse),
// so 1e-6 absolute + 1e-5 relative. Algebra slips show up at 1e-3 or worse.
constexpr float kLossAtol = 1e-5f;
constexpr float kGradAtol = 1e-6f;
constexpr float kRtol = 1e-5f;

Tensor targets_tensor(const Shape& shape, int64_t vocab, Rng& rng, int ignore_every,
                      int32_t ignore_index) {
  Tensor t = Tensor::zeros(shape, DType::I32);
  int32_t* p = t.mutable_data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const bool ignore = ignore_every > 0 && i % ignore_every == 1;
    p[i] = ignore ? ignore_index : static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  }
  return t;
}

struct CeCase {
  Shape logits_shape;
  int ignore_every;  // every ignore_every-th token (from the second) is ignored; 0: none
  int32_t ignore_index;
  float d_loss;
};

TEST(CrossEntropy, MatchesPyTorchLossTokenLossesAndGradientOnEverySimdPath) {
  // Vocab widths: below one vector, odd, larger than several vectors; a rank-3 batch; a
  // non-default ignore index; d_loss != 1 to check the scaling.
  const std::vector<CeCase> specs = {
      {{4, 7}, 0, -100, 1.0f},
      {{6, 37}, 3, -100, 1.0f},
      {{2, 5, 301}, 2, -100, 0.5f},
      {{9, 4099}, 4, 7, 2.0f},  // ignore index 7 is also a valid class id here
  };
  Rng rng(31);
  std::vector<test::ReferenceCase> cases;
  for (const CeCase& s : specs) {
    Shape leading = s.logits_shape;
    leading.pop_back();
    const int64_t vocab = s.logits_shape.back();
    cases.push_back(
        {{{"logits", test::random_normal(s.logits_shape, rng, 3.0f)},
          {"targets", targets_tensor(leading, vocab, rng, s.ignore_every, s.ignore_index)}},
         {{"ignore_index", s.ignore_index}, {"d_loss", s.d_loss}}});
  }
  const auto refs = test::run_reference_cases("cross_entropy", cases);
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& logits = cases[i].inputs.at("logits");
    const Tensor& targets = cases[i].inputs.at("targets");
    const auto& ref = refs[i];
    SCOPED_TRACE("case " + std::to_string(i) + " " + shape_str(logits.shape()));
    for_each_simd_path([&](const std::string&) {
      CrossEntropySaved saved;
      const float loss =
          cross_entropy_forward(saved, logits, targets, {.ignore_index = specs[i].ignore_index});
      const float ref_loss = ref.at("loss").data<float>()[0];
      EXPECT_NEAR(loss, ref_loss, kLossAtol + kRtol * std::fabs(ref_loss));
      EXPECT_ALL_CLOSE(saved.token_loss.reshape(targets.shape()), ref.at("token_loss"), kLossAtol,
                       kRtol);
      Tensor d_logits = Tensor::zeros(logits.shape());
      cross_entropy_backward(d_logits, specs[i].d_loss, logits, targets, saved);
      EXPECT_ALL_CLOSE(d_logits, ref.at("d_logits"), kGradAtol, kRtol);
    });
  }
}

TEST(CrossEntropy, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(4);
  Tensor logits = test::random_normal({5, 11}, rng);
  const Tensor targets = targets_tensor({5}, 11, rng, 3, -100);  // token 1 ignored
  CrossEntropySaved saved;
  const Tensor numeric =
      test::numeric_gradient(logits, [&] { return cross_entropy_forward(saved, logits, targets); });
  cross_entropy_forward(saved, logits, targets);
  Tensor d_logits = Tensor::zeros({5, 11});
  d_logits.fill(1.0f);
  cross_entropy_backward(d_logits, 1.0f, logits, targets, saved);
  Tensor expected = numeric.clone();
  for (int64_t i = 0; i < expected.numel(); ++i) expected.mutable_data<float>()[i] += 1.0f;
  // The loss is an f32 mean of O(2) values; central differences over a 2e-3 step carry ~1e-3.
  EXPECT_ALL_CLOSE(d_logits, expected, 2e-3f, 2e-3f);
  // The ignored row got nothing: still exactly the ones it started with.
  for (int64_t v = 0; v < 11; ++v) EXPECT_EQ(d_logits.data<float>()[11 + v], 1.0f);
}

TEST(CrossEntropy, AllTokensIgnoredGivesZeroLossAndNoGradient) {
  Tensor logits = Tensor::zeros({3, 5});
  Tensor targets = Tensor::zeros({3}, DType::I32);
  for (int64_t t = 0; t < 3; ++t) targets.mutable_data<int32_t>()[t] = -100;
  CrossEntropySaved saved;
  EXPECT_EQ(cross_entropy_forward(saved, logits, targets), 0.0f);
  EXPECT_EQ(saved.n_valid, 0);
  Tensor d_logits = Tensor::zeros({3, 5});
  cross_entropy_backward(d_logits, 1.0f, logits, targets, saved);
  for (int64_t i = 0; i < 15; ++i) EXPECT_EQ(d_logits.data<float>()[i], 0.0f);
}

TEST(CrossEntropy, RejectsOutOfRangeTargetsAndBadShapes) {
  Tensor logits = Tensor::zeros({4, 10});
  Tensor targets = Tensor::zeros({4}, DType::I32);
  targets.mutable_data<int32_t>()[2] = 10;
  CrossEntropySaved saved;
  EXPECT_EQ(test::error_of([&] { cross_entropy_forward(saved, logits, targets); }),
            "cross_entropy_forward: targets[2] is 10, expected in [0, V=10) or "
            "ignore_index -100");
  targets.mutable_data<int32_t>()[2] = -1;
  EXPECT_EQ(
      test::error_of([&] { cross_entropy_forward(saved, logits, targets, {.ignore_index = -2}); }),
      "cross_entropy_forward: targets[2] is -1, expected in [0, V=10) or "
      "ignore_index -2");
  Tensor short_targets = Tensor::zeros({3}, DType::I32);
  EXPECT_EQ(test::error_of([&] { cross_entropy_forward(saved, logits, short_targets); }),
            "cross_entropy_forward: targets: shape [3], expected [4]");
}

}  // namespace
}  // namespace sy::kernels
