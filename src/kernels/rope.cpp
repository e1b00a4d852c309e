#include "kernels/rope.h"

#include <cmath>
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

void rope_forward(Tensor& out, const Tensor& x, const Tensor& positions, const RopeOptions& opts) {
  const Checked c = check_rope(x, positions, opts, "rope_forward", "rope_forward: x");
  out.expect_dtype(DType::F32, "rope_forward: out");
  out.expect_shape(x.shape(), "rope_forward: out");
  const std::vector<float> inv_freq = rope_inv_freq(c.shape.rotary_dim, opts.theta);
  cpu::rope_apply(out.mutable_data<float>(), x.data<float>(), c.positions, opts.position_offset,
                  inv_freq.data(), c.shape, opts.layout == RopeLayout::kInterleaved, 1.0f,
                  /*accumulate=*/false);
}

void rope_backward(Tensor& d_x, const Tensor& d_out, const Tensor& positions,
                   const RopeOptions& opts) {
  const Checked c = check_rope(d_out, positions, opts, "rope_backward", "rope_backward: d_out");
  d_x.expect_dtype(DType::F32, "rope_backward: d_x");
  d_x.expect_shape(d_out.shape(), "rope_backward: d_x");
  SY_CHECK(d_x.data<float>() != d_out.data<float>() || d_x.numel() == 0,
           "rope_backward: d_x and d_out share memory; d_x is accumulated and must be separate");
  const std::vector<float> inv_freq = rope_inv_freq(c.shape.rotary_dim, opts.theta);
  cpu::rope_apply(d_x.mutable_data<float>(), d_out.data<float>(), c.positions, opts.position_offset,
                  inv_freq.data(), c.shape, opts.layout == RopeLayout::kInterleaved, -1.0f,
                  /*accumulate=*/true);
}

}  // namespace sy::kernels
