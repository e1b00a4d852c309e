#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "kernels/attention.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

// f32 tolerances. Scores are Dh-term dot products (|q|, |k| ~ N(0,1), Dh <= 64) and outputs
// convex combinations of v rows; f32 rounding in the products and in hn::Exp (<= 1 ulp) leaves
// ~1e-6 error in out and lse (observed max 1e-6). Gradients chain two more GEMMs over up to
// T = 150 terms (observed max 2.4e-6). A masking, grouping or scaling error shows up at 1e-2.
constexpr float kOutAtol = 1e-5f;
constexpr float kOutRtol = 1e-5f;
constexpr float kGradAtol = 2e-5f;
constexpr float kGradRtol = 2e-5f;

Tensor plus_start(const Tensor& grad, float start) {
  Tensor out = grad.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<float>()[i] += start;
  return out;
}

struct AttnCase {
  int64_t batch;  // 0: rank-3 tensors
  int64_t tokens, q_heads, kv_heads, head_dim;
  AttentionOptions opts;
};

Shape qkv_shape(const AttnCase& s, int64_t heads) {
  return s.batch == 0 ? Shape{s.tokens, heads, s.head_dim}
                      : Shape{s.batch, s.tokens, heads, s.head_dim};
}
Shape lse_shape(const AttnCase& s) {
  return s.batch == 0 ? Shape{s.q_heads, s.tokens} : Shape{s.batch, s.q_heads, s.tokens};
}

TEST(Attention, MatchesPyTorchForwardAndBackward) {
  const std::vector<AttnCase> shapes = {
      {0, 1, 1, 1, 4, {}},                 // one token
      {0, 5, 2, 2, 3, {}},                 // MHA, odd head dim
      {0, 7, 4, 2, 8, {}},                 // GQA, 2 query heads per kv head
      {0, 6, 3, 1, 5, {.scale = 0.3f}},    // MQA, explicit scale
      {2, 9, 4, 1, 4, {}},                 // batched MQA
      {0, 8, 2, 1, 6, {.causal = false}},  // non-causal
      {2, 150, 4, 2, 64, {}},              // several query blocks, ragged last one
      {1, 70, 2, 2, 16, {.scale = 0.05f, .causal = false}},
  };
  Rng rng(77);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(shapes.size());
  for (const AttnCase& s : shapes) {
    cases.push_back({{{"q", test::random_normal(qkv_shape(s, s.q_heads), rng)},
                      {"k", test::random_normal(qkv_shape(s, s.kv_heads), rng)},
                      {"v", test::random_normal(qkv_shape(s, s.kv_heads), rng)},
                      {"d_out", test::random_normal(qkv_shape(s, s.q_heads), rng)}},
                     {{"scale", s.opts.scale}, {"causal", s.opts.causal}}});
  }
  const auto refs = test::run_reference_cases("attention", cases);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const AttnCase& s = shapes[i];
    const auto& in = cases[i].inputs;
    const auto& ref = refs[i];
    SCOPED_TRACE(::testing::Message() << "B " << s.batch << " T " << s.tokens << " Hq " << s.q_heads
                                      << " Hkv " << s.kv_heads << " Dh " << s.head_dim << " scale "
                                      << s.opts.scale << " causal " << s.opts.causal);
    test::for_each_simd_path([&](const std::string&) {
      Tensor out = Tensor::zeros(in.at("q").shape());
      Tensor lse = Tensor::zeros(lse_shape(s));
      attention_forward(out, lse, in.at("q"), in.at("k"), in.at("v"), s.opts);
      EXPECT_ALL_CLOSE(out, ref.at("out"), kOutAtol, kOutRtol);
      EXPECT_ALL_CLOSE(lse, ref.at("lse"), kOutAtol, kOutRtol);

      Tensor d_q = Tensor::zeros(in.at("q").shape());
      Tensor d_k = Tensor::zeros(in.at("k").shape());
      Tensor d_v = Tensor::zeros(in.at("v").shape());
      d_q.fill(0.5f);  // backward accumulates
      d_k.fill(-1.0f);
      d_v.fill(2.0f);
      attention_backward(d_q, d_k, d_v, in.at("d_out"), in.at("q"), in.at("k"), in.at("v"), out,
                         lse, s.opts);
      EXPECT_ALL_CLOSE(d_q, plus_start(ref.at("d_q"), 0.5f), kGradAtol, kGradRtol);
      EXPECT_ALL_CLOSE(d_k, plus_start(ref.at("d_k"), -1.0f), kGradAtol, kGradRtol);
      EXPECT_ALL_CLOSE(d_v, plus_start(ref.at("d_v"), 2.0f), kGradAtol, kGradRtol);
    });
  }
}

TEST(Attention, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(15);
  Tensor q = test::random_normal({4, 2, 3}, rng);
  Tensor k = test::random_normal({4, 1, 3}, rng);
  Tensor v = test::random_normal({4, 1, 3}, rng);
  const Tensor probe = test::random_normal({4, 2, 3}, rng);
  Tensor out = Tensor::zeros({4, 2, 3});
  Tensor lse = Tensor::zeros({2, 4});
  auto loss = [&] {
    attention_forward(out, lse, q, k, v);
    return test::dot(out, probe);
  };
  const Tensor num_q = test::numeric_gradient(q, loss);
  const Tensor num_k = test::numeric_gradient(k, loss);
  const Tensor num_v = test::numeric_gradient(v, loss);
  loss();
  Tensor d_q = Tensor::zeros(q.shape());
  Tensor d_k = Tensor::zeros(k.shape());
  Tensor d_v = Tensor::zeros(v.shape());
  d_q.fill(1.0f);
  d_k.fill(1.0f);
  d_v.fill(1.0f);
  attention_backward(d_q, d_k, d_v, probe, q, k, v, out, lse);
  // Central differences in f32 with eps 1e-3: truncation ~eps^2 * |f'''| plus loss rounding
  // ~1e-7 / 1e-3: a few 1e-4.
  EXPECT_ALL_CLOSE(d_q, plus_start(num_q, 1.0f), 2e-3f, 2e-3f);
  EXPECT_ALL_CLOSE(d_k, plus_start(num_k, 1.0f), 2e-3f, 2e-3f);
  EXPECT_ALL_CLOSE(d_v, plus_start(num_v, 1.0f), 2e-3f, 2e-3f);
}

// GQA gradients of shared kv heads are summed in head order: the same bits for any thread count.
TEST(Attention, IsDeterministicAcrossThreadCounts) {
  Rng rng(8);
  const Tensor q = test::random_normal({2, 100, 6, 16}, rng);
  const Tensor k = test::random_normal({2, 100, 2, 16}, rng);
  const Tensor v = test::random_normal({2, 100, 2, 16}, rng);
  const Tensor d_out = test::random_normal({2, 100, 6, 16}, rng);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor out = Tensor::zeros(q.shape());
    Tensor lse = Tensor::zeros({2, 6, 100});
    attention_forward(out, lse, q, k, v);
    std::vector<Tensor> grads = {Tensor::zeros(q.shape()), Tensor::zeros(k.shape()),
                                 Tensor::zeros(v.shape())};
    attention_backward(grads[0], grads[1], grads[2], d_out, q, k, v, out, lse);
    omp_set_num_threads(saved);
    grads.push_back(out);
    return grads;
  };
  const auto one = run(1);
  const auto many = run(3);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_ALL_CLOSE(many[i], one[i], 0.0f, 0.0f);
}

TEST(Attention, RejectsBadShapes) {
  const Tensor q = Tensor::zeros({4, 6, 8});
  Tensor out = Tensor::zeros({4, 6, 8});
  Tensor lse = Tensor::zeros({6, 4});
  auto message = [&](const Tensor& k, const Tensor& v, Tensor& lse_arg) -> std::string {
    try {
      attention_forward(out, lse_arg, q, k, v);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const Tensor k4 = Tensor::zeros({4, 4, 8});
  EXPECT_EQ(message(k4, k4, lse),
            "attention_forward: q has 6 heads and k/v 4, expected a multiple (grouped-query "
            "attention)");
  const Tensor k2 = Tensor::zeros({4, 2, 8});
  const Tensor v_bad = Tensor::zeros({4, 2, 7});
  EXPECT_EQ(message(k2, v_bad, lse), "attention_forward: v: shape [4, 2, 7], expected [4, 2, 8]");
  const Tensor k_short = Tensor::zeros({3, 2, 8});
  EXPECT_EQ(message(k_short, k2, lse), "attention_forward: k: shape [3, 2, 8], expected [4, 2, 8]");
  Tensor lse_bad = Tensor::zeros({4, 6});
  EXPECT_EQ(message(k2, k2, lse_bad), "attention_forward: lse: shape [4, 6], expected [6, 4]");
  EXPECT_EQ(message(k2, k2, lse), "no error");
}

}  // namespace
}  // namespace sy::kernels
