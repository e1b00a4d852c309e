#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/rope.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

// f32 tolerances. The reference uses the same f32 inv_freq (checked bit-exact below) and
// computes the angle and cos/sin in float64, as the kernel does in double; what remains is the
// f32 rounding of cos/sin and of a c - b s (three roundings of terms |x| <= ~5): ~1e-6.
// A wrong pair, sign or frequency shows up at 1e-1.
constexpr float kAtol = 3e-6f;
constexpr float kRtol = 1e-6f;

struct RopeCase {
  int64_t tokens, heads, head_dim;
  RopeOptions opts;
  bool explicit_positions;
};

const char* layout_name(RopeLayout layout) {
  return layout == RopeLayout::kNeox ? "neox" : "interleaved";
}

TEST(Rope, MatchesPyTorchForwardAndBackward) {
  std::vector<RopeCase> shapes;
  for (RopeLayout layout : {RopeLayout::kNeox, RopeLayout::kInterleaved}) {
    // Pair counts below, at and above a vector; partial rotary; large theta; KV-cache offsets;
    // explicit (packed-batch) positions up to 4096.
    shapes.push_back({3, 2, 6, {.layout = layout}, false});
    shapes.push_back({5, 3, 64, {.layout = layout, .position_offset = 17}, false});
    shapes.push_back({4, 2, 128, {.theta = 5e5f, .layout = layout}, true});
    shapes.push_back({6, 2, 64, {.layout = layout, .rotary_dim = 32}, true});
    shapes.push_back({3, 1, 80, {.theta = 1e6f, .layout = layout, .rotary_dim = 22}, false});
    shapes.push_back(
        {2, 4, 96, {.layout = layout, .rotary_dim = 64, .position_offset = 4000}, false});
  }
  Rng rng(12);
  std::vector<test::ReferenceCase> cases;
  for (const RopeCase& s : shapes) {
    const int64_t rotary = s.opts.rotary_dim == 0 ? s.head_dim : s.opts.rotary_dim;
    test::ReferenceCase c{{{"x", test::random_normal({s.tokens, s.heads, s.head_dim}, rng)},
                           {"d_out", test::random_normal({s.tokens, s.heads, s.head_dim}, rng)}},
                          {{"theta", s.opts.theta},
                           {"layout", layout_name(s.opts.layout)},
                           {"rotary_dim", rotary},
                           {"offset", s.opts.position_offset}}};
    if (s.explicit_positions) {
      std::vector<int32_t> pos(static_cast<size_t>(s.tokens));
      for (auto& p : pos) p = static_cast<int32_t>(rng.below(4097));
      pos[0] = 4096;
      c.inputs["positions"] = test::i32_tensor(pos);
    }
    cases.push_back(std::move(c));
  }
  const auto refs = test::run_reference_cases("rope", cases);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const RopeCase& s = shapes[i];
    const auto& in = cases[i].inputs;
    const auto& ref = refs[i];
    SCOPED_TRACE(::testing::Message()
                 << layout_name(s.opts.layout) << " T " << s.tokens << " H " << s.heads << " Dh "
                 << s.head_dim << " rotary_dim " << s.opts.rotary_dim << " theta " << s.opts.theta
                 << " offset " << s.opts.position_offset << " explicit " << s.explicit_positions);
    const Tensor positions = s.explicit_positions ? in.at("positions") : Tensor();
    const Tensor& x = in.at("x");

    const int64_t rotary = s.opts.rotary_dim == 0 ? s.head_dim : s.opts.rotary_dim;
    const std::vector<float> inv = rope_inv_freq(rotary, s.opts.theta);
    EXPECT_ALL_CLOSE(Tensor::from_f32({rotary / 2}, inv), ref.at("inv_freq"), 0.0f, 0.0f);

    test::for_each_simd_path([&](const std::string&) {
      Tensor y = Tensor::zeros(x.shape());
      rope_forward(y, x, positions, s.opts);
      EXPECT_ALL_CLOSE(y, ref.at("y"), kAtol, kRtol);
      Tensor in_place = x.clone();
      rope_forward(in_place, in_place, positions, s.opts);
      EXPECT_ALL_CLOSE(in_place, y, 0.0f, 0.0f);

      Tensor d_x = Tensor::zeros(x.shape());
      d_x.fill(0.25f);  // backward accumulates
      rope_backward(d_x, in.at("d_out"), positions, s.opts);
      Tensor expected = ref.at("d_x").clone();
      for (int64_t j = 0; j < expected.numel(); ++j) expected.mutable_data<float>()[j] += 0.25f;
      EXPECT_ALL_CLOSE(d_x, expected, kAtol, kRtol);
    });
  }
}

// Explicit positions equal to offset + t give the same bits as the offset; a packed batch of two
// sequences (positions restart at 0) matches two separate calls.
TEST(Rope, PositionsOffsetAndPackedBatchAgree) {
  Rng rng(3);
  const Tensor x = test::random_normal({5, 2, 8}, rng);
  const RopeOptions opts{.layout = RopeLayout::kInterleaved, .position_offset = 9};
  Tensor by_offset = Tensor::zeros(x.shape());
  rope_forward(by_offset, x, Tensor(), opts);
  Tensor by_positions = Tensor::zeros(x.shape());
  rope_forward(by_positions, x, test::i32_tensor({9, 10, 11, 12, 13}), {.layout = opts.layout});
  EXPECT_ALL_CLOSE(by_positions, by_offset, 0.0f, 0.0f);

  Tensor packed = Tensor::zeros(x.shape());
  rope_forward(packed, x, test::i32_tensor({0, 1, 2, 0, 1}), {});
  Tensor first = Tensor::zeros({3, 2, 8});
  rope_forward(first, x.slice_rows(0, 3), Tensor(), {});
  Tensor second = Tensor::zeros({2, 2, 8});
  rope_forward(second, x.slice_rows(3, 5), Tensor(), {});
  EXPECT_ALL_CLOSE(packed.slice_rows(0, 3), first, 0.0f, 0.0f);
  EXPECT_ALL_CLOSE(packed.slice_rows(3, 5), second, 0.0f, 0.0f);
}

// One token at a time (a decode step), calls that share the position but not the frequencies,
// the scale or the direction each give their own rotation: the kernel keeps the last position's
// cos/sin, and must not hand them to a call they do not belong to.
TEST(Rope, OneTokenCallsAtOnePositionKeepTheirOwnAngles) {
  Rng rng(7);
  const int64_t dh = 8, half = dh / 2, pos = 7;
  const Tensor x = test::random_normal({1, 2, dh}, rng);
  // Neox rotation by hand, in double: pairs (i, i + half), angle pos * theta^(-2i / dh).
  const auto by_hand = [&](float theta, double scale) {
    Tensor out = Tensor::zeros(x.shape());
    for (int64_t h = 0; h < 2; ++h) {
      const float* xi = x.data<float>() + h * dh;
      float* o = out.mutable_data<float>() + h * dh;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = pos * std::pow(static_cast<double>(theta), -2.0 * i / dh);
        const double c = scale * std::cos(angle), s = scale * std::sin(angle);
        o[i] = static_cast<float>(xi[i] * c - xi[i + half] * s);
        o[i + half] = static_cast<float>(xi[i + half] * c + xi[i] * s);
      }
    }
    return out;
  };
  Tensor y = Tensor::zeros(x.shape());
  rope_forward(y, x, Tensor(), {.position_offset = pos});
  EXPECT_ALL_CLOSE(y, by_hand(10000.0f, 1.0), kAtol, kRtol);
  Tensor back = Tensor::zeros(x.shape());  // the inverse rotation: x again
  rope_backward(back, y, Tensor(), {.position_offset = pos});
  EXPECT_ALL_CLOSE(back, x, kAtol, kRtol);
  rope_forward(y, x, Tensor(), {.position_offset = pos});
  rope_forward(y, x, Tensor(), {.theta = 500.0f, .position_offset = pos});
  EXPECT_ALL_CLOSE(y, by_hand(500.0f, 1.0), kAtol, kRtol);
  rope_forward(y, x, Tensor(), {.theta = 500.0f, .position_offset = pos, .attention_factor = 2.0f});
  EXPECT_ALL_CLOSE(y, by_hand(500.0f, 2.0), 2 * kAtol, kRtol);
}

TEST(Rope, BackwardAccumulatesAndMatchesFiniteDifferences) {
  Rng rng(5);
  for (RopeLayout layout : {RopeLayout::kNeox, RopeLayout::kInterleaved}) {
    SCOPED_TRACE(layout_name(layout));
    const RopeOptions opts{.layout = layout, .rotary_dim = 6, .position_offset = 3};
    Tensor x = test::random_normal({3, 2, 10}, rng);
    const Tensor probe = test::random_normal({3, 2, 10}, rng);
    Tensor y = Tensor::zeros(x.shape());
    auto loss = [&] {
      rope_forward(y, x, Tensor(), opts);
      return test::dot(y, probe);
    };
    const Tensor numeric = test::numeric_gradient(x, loss);
    Tensor d_x = Tensor::zeros(x.shape());
    d_x.fill(1.0f);
    rope_backward(d_x, probe, Tensor(), opts);
    Tensor expected = numeric.clone();
    for (int64_t j = 0; j < expected.numel(); ++j) expected.mutable_data<float>()[j] += 1.0f;
    // Linear in x: central differences are exact up to f32 rounding of the loss (~1e-4).
    EXPECT_ALL_CLOSE(d_x, expected, 1e-3f, 1e-3f);
  }
}

TEST(Rope, RejectsBadArguments) {
  const Tensor x = Tensor::zeros({4, 2, 8});
  Tensor out = Tensor::zeros({4, 2, 8});
  auto message = [&](const Tensor& positions, const RopeOptions& opts) -> std::string {
    try {
      rope_forward(out, x, positions, opts);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message(Tensor(), {.rotary_dim = 5}),
            "rope_forward: rotary_dim is 5, expected an even number in [2, Dh = 8] (or 0 for Dh)");
  EXPECT_EQ(message(Tensor(), {.rotary_dim = 10}),
            "rope_forward: rotary_dim is 10, expected an even number in [2, Dh = 8] (or 0 for Dh)");
  EXPECT_EQ(message(test::i32_tensor({0, 1, 2}), {}),
            "rope_forward: positions: shape [3], expected [4]");
  EXPECT_EQ(message(test::i32_tensor({0, 1, -2, 3}), {}),
            "rope_forward: positions[2] is -2, expected >= 0");
  EXPECT_EQ(message(Tensor(), {.theta = 0.0f}), "rope_forward: theta is 0, expected > 0");
  Tensor flat = Tensor::zeros({4, 16});
  EXPECT_EQ(test::error_of([&] { rope_forward(flat, flat, Tensor(), {}); }),
            "rope_forward: x: shape [4, 16], expected [T, H, Dh]");
}

}  // namespace
}  // namespace sy::kernels
