#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "kernels/cpu/rope_cpu.h"

namespace sy::kernels {

namespace {

struct Checked {
  cpu::RopeShape shape;
  const int32_t* positions;
};

// Validates everything but the output tensor; returns the shape with rotary_dim resolved.
Checked check_rope(const Tensor& x, const Tensor& positions, const RopeOptions& opts,
                   const char* op, const char* x_what) {
  x.expect_dtype(DType::F32, x_what);
  SY_CHECK(x.rank() == 3, "{}: shape {}, expected [T, H, Dh]", x_what, shape_str(x.shape()));
  const int64_t tokens = x.dim(0), head_dim = x.dim(2);
  const int64_t rotary = opts.rotary_dim == 0 ? head_dim : opts.rotary_dim;
  SY_CHECK(rotary > 0 && rotary <= head_dim && rotary % 2 == 0,
           "{}: rotary_dim is {}, expected an even number in [2, Dh = {}] (or 0 for Dh)", op,
           opts.rotary_dim, head_dim);
  SY_CHECK(std::isfinite(opts.theta) && opts.theta > 0.0f, "{}: theta is {}, expected > 0", op,
           opts.theta);
  SY_CHECK(opts.inv_freq.empty() || static_cast<int64_t>(opts.inv_freq.size()) == rotary / 2,
           "{}: inv_freq has {} entries, expected rotary_dim / 2 = {}", op, opts.inv_freq.size(),
           rotary / 2);
  SY_CHECK(std::isfinite(opts.attention_factor) && opts.attention_factor > 0.0f,
           "{}: attention_factor is {}, expected > 0", op, opts.attention_factor);
  const int32_t* pos = nullptr;
  if (positions.defined()) {
    const std::string what = std::string(op) + ": positions";
    positions.expect_dtype(DType::I32, what.c_str());
    positions.expect_shape({tokens}, what.c_str());
    pos = positions.data<int32_t>();
    for (int64_t t = 0; t < tokens; ++t) {
      SY_CHECK(pos[t] >= 0, "{}: positions[{}] is {}, expected >= 0", op, t, pos[t]);
    }
  } else {
    SY_CHECK(opts.position_offset >= 0, "{}: position_offset is {}, expected >= 0", op,
             opts.position_offset);
  }
  return {{tokens, x.dim(1), head_dim, rotary}, pos};
}

}  // namespace

std::vector<float> rope_inv_freq(int64_t rotary_dim, float theta) {
  std::vector<float> inv(static_cast<size_t>(rotary_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    const auto power = static_cast<float>(std::pow(static_cast<double>(theta), exponent));
    inv[i] = 1.0f / power;
  }
  return inv;
}

std::vector<float> rope_yarn_inv_freq(int64_t rotary_dim, float theta, const YarnOptions& yarn) {
  SY_CHECK(
      yarn.factor >= 1.0f && yarn.original_max_position > 0 && yarn.beta_fast > 0.0f &&
          yarn.beta_slow > 0.0f,
      "rope_yarn_inv_freq: factor {} (expected >= 1), original_max_position {} (expected > 0), "
      "beta_fast {} and beta_slow {} (expected > 0)",
      yarn.factor, yarn.original_max_position, yarn.beta_fast, yarn.beta_slow);
  std::vector<float> extra = rope_inv_freq(rotary_dim, theta);
  const int64_t half = rotary_dim / 2;
  // The dimension whose wavelength completes `rotations` turns over the original context.
  const auto correction_dim = [&](double rotations) {
    return static_cast<double>(rotary_dim) *
           std::log(static_cast<double>(yarn.original_max_position) /
                    (rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(static_cast<double>(theta)));
  };
  const double low = std::max(std::floor(correction_dim(yarn.beta_fast)), 0.0);
  double high =
      std::min(std::ceil(correction_dim(yarn.beta_slow)), static_cast<double>(rotary_dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const auto ramp =
        static_cast<float>(std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0));
    const float keep = 1.0f - ramp;  // 1: extrapolate (original frequency), 0: interpolate
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    const auto power = static_cast<float>(std::pow(static_cast<double>(theta), exponent));
    const float inter = 1.0f / (yarn.factor * power);
    extra[static_cast<size_t>(i)] = inter * (1.0f - keep) + extra[static_cast<size_t>(i)] * keep;
  }
  return extra;
}

float yarn_mscale(float factor, float mscale) {
  return factor <= 1.0f ? 1.0f : 0.1f * mscale * std::log(factor) + 1.0f;
}

void rope_forward(Tensor& out, const Tensor& x, const Tensor& positions, const RopeOptions& opts) {
  const Checked c = check_rope(x, positions, opts, "rope_forward", "rope_forward: x");
  out.expect_dtype(DType::F32, "rope_forward: out");
  out.expect_shape(x.shape(), "rope_forward: out");
  const std::vector<float> inv_freq =
      opts.inv_freq.empty() ? rope_inv_freq(c.shape.rotary_dim, opts.theta) : opts.inv_freq;
  cpu::rope_apply(out.mutable_data<float>(), x.data<float>(), c.positions, opts.position_offset,
                  inv_freq.data(), c.shape, opts.layout == RopeLayout::kInterleaved, 1.0f,
                  /*accumulate=*/false, opts.attention_factor);
}

void rope_backward(Tensor& d_x, const Tensor& d_out, const Tensor& positions,
                   const RopeOptions& opts) {
  const Checked c = check_rope(d_out, positions, opts, "rope_backward", "rope_backward: d_out");
  d_x.expect_dtype(DType::F32, "rope_backward: d_x");
  d_x.expect_shape(d_out.shape(), "rope_backward: d_x");
  SY_CHECK(d_x.data<float>() != d_out.data<float>() || d_x.numel() == 0,
           "rope_backward: d_x and d_out share memory; d_x is accumulated and must be separate");
  const std::vector<float> inv_freq =
      opts.inv_freq.empty() ? rope_inv_freq(c.shape.rotary_dim, opts.theta) : opts.inv_freq;
  cpu::rope_apply(d_x.mutable_data<float>(), d_out.data<float>(), c.positions, opts.position_offset,
                  inv_freq.data(), c.shape, opts.layout == RopeLayout::kInterleaved, -1.0f,
                  /*accumulate=*/true, opts.attention_factor);
}

}  // namespace sy::kernels
