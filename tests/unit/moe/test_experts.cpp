#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "moe/experts.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

// Each output is two or three chained f32 reductions of at most 64 terms over values of order 1:
// rounding stays near 1e-6 relative to the terms; outputs that cancel to small values need the
// absolute part. Any algebra error (wrong transpose, activation, missing term) is >= 1e-2.
constexpr float kAtol = 3e-5f;
constexpr float kRtol = 1e-4f;

void set(Param& p, const Tensor& v) {
  ASSERT_EQ(p.value.shape(), v.shape()) << p.name;
  std::memcpy(p.value.mutable_bytes(), v.bytes(), v.nbytes());
}

Tensor i64(const std::vector<int64_t>& v) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(v.size())}, DType::I64);
  std::copy(v.begin(), v.end(), t.mutable_data<int64_t>());
  return t;
}

struct ExpertCase {
  std::string name;
  Activation act;
  int64_t d, f;
  std::vector<int64_t> rows;  // rows per expert
  ExpertParallelism parallelism;
};

TEST(Experts, MatchPyTorchForwardAndBackward) {
  std::vector<ExpertCase> specs = {
      {"swiglu", Activation::kSwiGLU, 8, 12, {3, 0, 5, 2}, ExpertParallelism::kBlas},
      {"swiglu_per_expert",
       Activation::kSwiGLU,
       8,
       12,
       {3, 0, 5, 2},
       ExpertParallelism::kPerExpert},
      {"gelu_tanh", Activation::kGeluTanh, 6, 10, {4, 1, 0}, ExpertParallelism::kBlas},
      {"gelu", Activation::kGeluErf, 6, 10, {4, 1, 0}, ExpertParallelism::kPerExpert},
      {"relu", Activation::kReLU, 7, 9, {2, 6}, ExpertParallelism::kAuto},
      {"fine_grained_e64", Activation::kSwiGLU, 16, 8, {}, ExpertParallelism::kPerExpert},
  };
  Rng rng(21);
  for (int64_t e = 0; e < 64; ++e) specs.back().rows.push_back(static_cast<int64_t>(rng.below(5)));
  std::vector<test::ReferenceCase> cases;
  std::vector<std::vector<int64_t>> offsets;
  for (const auto& s : specs) {
    const auto e = static_cast<int64_t>(s.rows.size());
    std::vector<int64_t> off = {0};
    for (const int64_t r : s.rows) off.push_back(off.back() + r);
    offsets.push_back(off);
    test::ReferenceCase c;
    c.inputs["buffer"] = test::random_normal({off.back(), s.d}, rng);
    c.inputs["offsets"] = i64(off);
    if (is_gated(s.act)) c.inputs["gate_proj"] = test::random_normal({e, s.f, s.d}, rng, 0.3f);
    c.inputs["up_proj"] = test::random_normal({e, s.f, s.d}, rng, 0.3f);
    c.inputs["down_proj"] = test::random_normal({e, s.d, s.f}, rng, 0.3f);
    c.inputs["d_out"] = test::random_normal({off.back(), s.d}, rng);
    c.params = {{"mode", "experts"}, {"activation", std::string(activation_name(s.act))}};
    cases.push_back(c);
  }
  const auto refs = test::run_reference_cases("moe_layer", cases);
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    SCOPED_TRACE(s.name);
    const auto& in = cases[i].inputs;
    InMemoryExperts bank({.num_experts = static_cast<int64_t>(s.rows.size()),
                          .d_model = s.d,
                          .d_ff = s.f,
                          .activation = s.act,
                          .parallelism = s.parallelism});
    if (is_gated(s.act)) set(bank.gate_proj(), in.at("gate_proj"));
    set(bank.up_proj(), in.at("up_proj"));
    set(bank.down_proj(), in.at("down_proj"));
    const int64_t rows = offsets[i].back();
    Tensor out = Tensor::zeros({rows, s.d});
    FfnSaved saved;
    bank.forward(out, in.at("buffer"), offsets[i], &saved);
    EXPECT_ALL_CLOSE(out, refs[i].at("out"), kAtol, kRtol);
    Tensor d_buffer = Tensor::zeros({rows, s.d});
    bank.backward(d_buffer, in.at("d_out"), in.at("buffer"), offsets[i], saved);
    EXPECT_ALL_CLOSE(d_buffer, refs[i].at("d_buffer"), kAtol, kRtol);
    if (is_gated(s.act)) {
      EXPECT_ALL_CLOSE(bank.gate_proj().grad, refs[i].at("d_gate_proj"), kAtol, kRtol);
    }
    EXPECT_ALL_CLOSE(bank.up_proj().grad, refs[i].at("d_up_proj"), kAtol, kRtol);
    EXPECT_ALL_CLOSE(bank.down_proj().grad, refs[i].at("d_down_proj"), kAtol, kRtol);
  }
}

TEST(Experts, SharedExpertsMatchPyTorch) {
  Rng rng(4);
  const int64_t t = 9, d = 8, f = 2 * 6;  // two shared experts of width 6 = one FFN of width 12
  std::vector<test::ReferenceCase> cases;
  for (const bool gate : {false, true}) {
    test::ReferenceCase c;
    c.inputs["x"] = test::random_normal({t, d}, rng);
    c.inputs["shared_gate_proj"] = test::random_normal({f, d}, rng, 0.3f);
    c.inputs["shared_up_proj"] = test::random_normal({f, d}, rng, 0.3f);
    c.inputs["shared_down_proj"] = test::random_normal({d, f}, rng, 0.3f);
    if (gate) c.inputs["shared_gate"] = test::random_normal({1, d}, rng, 0.5f);
    c.inputs["d_out"] = test::random_normal({t, d}, rng);
    c.params = {{"mode", "shared"}, {"activation", "swiglu"}};
    cases.push_back(c);
  }
  const auto refs = test::run_reference_cases("moe_layer", cases);
  for (size_t i = 0; i < cases.size(); ++i) {
    const bool gate = i == 1;
    SCOPED_TRACE(gate ? "gated" : "ungated");
    const auto& in = cases[i].inputs;
    SharedExperts shared({.d_model = d, .d_ff = f, .gate = gate, .prefix = "mlp."});
    const auto params = shared.params();
    ASSERT_EQ(params.size(), gate ? 4U : 3U);
    EXPECT_EQ(params[0]->name, "mlp.shared_experts.gate_proj.weight");
    if (gate) {
      EXPECT_EQ(params[3]->name, "mlp.shared_expert_gate.weight");
    }
    const char* names[] = {"shared_gate_proj", "shared_up_proj", "shared_down_proj", "shared_gate"};
    for (size_t p = 0; p < params.size(); ++p) set(*params[p], in.at(names[p]));
    Tensor y = Tensor::zeros({t, d});
    y.fill(1.0f);  // forward accumulates
    SharedSaved saved;
    shared.forward(y, in.at("x"), saved);
    Tensor expected_y = refs[i].at("y").clone();
    for (int64_t k = 0; k < t * d; ++k) expected_y.mutable_data<float>()[k] += 1.0f;
    EXPECT_ALL_CLOSE(y, expected_y, kAtol, kRtol);
    Tensor d_x = Tensor::zeros({t, d});
    shared.backward(d_x, in.at("d_out"), in.at("x"), saved);
    EXPECT_ALL_CLOSE(d_x, refs[i].at("d_x"), kAtol, kRtol);
    for (size_t p = 0; p < params.size(); ++p) {
      EXPECT_ALL_CLOSE(params[p]->grad, refs[i].at(std::string("d_") + names[p]), kAtol, kRtol);
    }
  }
}

TEST(Experts, BackwardMatchesFiniteDifferencesAndAccumulatesWeightGrads) {
  Rng rng(8);
  const std::vector<int64_t> off = {0, 2, 3};
  InMemoryExperts bank({.num_experts = 2, .d_model = 3, .d_ff = 4});
  bank.init(rng, 0.5f);
  Tensor buffer = test::random_normal({3, 3}, rng);
  const Tensor probe = test::random_normal({3, 3}, rng);
  Tensor out = Tensor::zeros({3, 3});
  FfnSaved saved;
  auto loss = [&] {
    bank.forward(out, buffer, off, &saved);
    return test::dot(out, probe);
  };
  const Tensor num_buffer = test::numeric_gradient(buffer, loss);
  const Tensor num_up = test::numeric_gradient(bank.up_proj().value, loss);
  loss();
  bank.up_proj().grad.fill(1.0f);
  Tensor d_buffer = Tensor::zeros({3, 3});
  bank.backward(d_buffer, probe, buffer, off, saved);
  Tensor expected_up = num_up.clone();
  for (int64_t i = 0; i < expected_up.numel(); ++i) expected_up.mutable_data<float>()[i] += 1.0f;
  // f32 central differences with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_buffer, num_buffer, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(bank.up_proj().grad, expected_up, 3e-3f, 3e-3f);
}

TEST(Experts, RejectsBadOffsetsAndNames) {
  InMemoryExperts bank({.num_experts = 2, .d_model = 3, .d_ff = 4});
  Tensor buffer = Tensor::zeros({3, 3}), out = Tensor::zeros({3, 3});
  EXPECT_EQ(test::error_of([&] {
              bank.forward(out, buffer, {0, 3}, nullptr);
            }),
            "experts.forward: buffer: offsets has 2 entries, expected 3 (E + 1)");
  try {
    parse_activation("swish");
    FAIL() << "expected sy::Error";
  } catch (const Error& e) {
    EXPECT_STREQ(
        e.what(),
        "unknown expert activation 'swish', expected one of swiglu, gelu_tanh, gelu, relu");
  }
  EXPECT_EQ(parse_activation("gelu_tanh"), Activation::kGeluTanh);
}

}  // namespace
}  // namespace sy::moe
