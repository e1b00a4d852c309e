#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "kernels/embedding.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

Tensor random_ids(int64_t tokens, int64_t vocab, Rng& rng) {
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  for (auto& id : ids) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  return test::i32_tensor(ids);
}

// Forward copies rows, so it is exact. The gradient sums up to a few dozen f32 terms per row
// (repeated ids) in token order, against PyTorch's float64 sum rounded once: the difference is
// ~n * 2^-24 * sum|terms| <= 1e-5 here.
constexpr float kGradAtol = 1e-5f;
constexpr float kGradRtol = 1e-5f;

TEST(Embedding, MatchesPyTorchWithRepeatedIds) {
  struct Case {
    int64_t vocab, width, tokens;
  };
  // Widths: one column block, several with a ragged last one; tokens far above the vocabulary
  // so ids repeat many times.
  const std::vector<Case> shapes = {{1, 1, 3}, {5, 3, 17}, {11, 64, 200}, {50, 150, 300}};
  Rng rng(31);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(shapes.size());
  for (const Case& s : shapes) {
    cases.push_back({{{"table", test::random_normal({s.vocab, s.width}, rng)},
                      {"ids", random_ids(s.tokens, s.vocab, rng)},
                      {"d_out", test::random_normal({s.tokens, s.width}, rng)}}});
  }
  const auto refs = test::run_reference_cases("embedding", cases);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Case& s = shapes[i];
    SCOPED_TRACE(::testing::Message() << "V " << s.vocab << " D " << s.width << " T " << s.tokens);
    const auto& in = cases[i].inputs;
    Tensor out = Tensor::zeros({s.tokens, s.width});
    embedding_forward(out, in.at("table"), in.at("ids"));
    EXPECT_ALL_CLOSE(out, refs[i].at("out"), 0.0f, 0.0f);
    Tensor d_table = Tensor::zeros({s.vocab, s.width});
    d_table.fill(-1.0f);  // backward accumulates
    embedding_backward(d_table, in.at("d_out"), in.at("ids"));
    Tensor expected = refs[i].at("d_table").clone();
    for (int64_t j = 0; j < expected.numel(); ++j) expected.mutable_data<float>()[j] -= 1.0f;
    EXPECT_ALL_CLOSE(d_table, expected, kGradAtol, kGradRtol);
  }
}

// The gradient is the same bits whatever the thread count: each element sums in token order.
TEST(Embedding, BackwardIsDeterministicAcrossThreadCounts) {
  Rng rng(2);
  const Tensor ids = random_ids(4000, 7, rng);
  const Tensor d_out = test::random_normal({4000, 300}, rng);
  Tensor one = Tensor::zeros({7, 300});
  Tensor many = Tensor::zeros({7, 300});
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  embedding_backward(one, d_out, ids);
  omp_set_num_threads(5);
  embedding_backward(many, d_out, ids);
  omp_set_num_threads(saved);
  EXPECT_ALL_CLOSE(many, one, 0.0f, 0.0f);
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  Rng rng(6);
  Tensor table = test::random_normal({4, 3}, rng);
  const Tensor ids = test::i32_tensor({2, 0, 2, 2, 3});
  const Tensor probe = test::random_normal({5, 3}, rng);
  Tensor out = Tensor::zeros({5, 3});
  auto loss = [&] {
    embedding_forward(out, table, ids);
    return test::dot(out, probe);
  };
  const Tensor numeric = test::numeric_gradient(table, loss);
  Tensor d_table = Tensor::zeros({4, 3});
  d_table.fill(0.5f);
  embedding_backward(d_table, probe, ids);
  Tensor expected = numeric.clone();
  for (int64_t j = 0; j < expected.numel(); ++j) expected.mutable_data<float>()[j] += 0.5f;
  // The loss is linear in the table: differences are exact up to f32 rounding of the loss.
  EXPECT_ALL_CLOSE(d_table, expected, 1e-3f, 1e-3f);
  // Row 1 is never looked up: its gradient stays at the starting value exactly.
  for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(d_table.data<float>()[3 + c], 0.5f);
}

TEST(Embedding, RejectsOutOfRangeIdsAndBadShapes) {
  const Tensor table = Tensor::zeros({10, 4});
  Tensor out = Tensor::zeros({3, 4});
  EXPECT_EQ(test::error_of([&] {
              embedding_forward(out, table, test::i32_tensor({1, 10, 2}));
            }),
            "embedding_forward: ids[1] = 10 is out of range for a vocabulary of V = 10 rows");
  Tensor d_table = Tensor::zeros({10, 4});
  EXPECT_EQ(test::error_of([&] {
              embedding_backward(d_table, out, test::i32_tensor({0, 0, -3}));
            }),
            "embedding_backward: ids[2] = -3 is out of range for a vocabulary of V = 10 rows");
  Tensor wrong_out = Tensor::zeros({3, 5});
  EXPECT_EQ(test::error_of([&] {
              embedding_forward(wrong_out, table, test::i32_tensor({1, 2, 3}));
            }),
            "embedding_forward: out: shape [3, 5], expected [3, 4]");
}

}  // namespace
}  // namespace sy::kernels
