#include "kernels/layer_norm.h"

#include "kernels/cpu/layer_norm_cpu.h"

namespace sy::kernels {

namespace {
void check_common(const Tensor& x, const Tensor& weight, const char* x_what,
                  const char* weight_what) {
  x.expect_dtype(DType::F32, x_what);
  SY_CHECK(x.rank() >= 1, "{}: shape {}, expected [..., D] of rank >= 1", x_what,
           shape_str(x.shape()));
  weight.expect_dtype(DType::F32, weight_what);
  weight.expect_shape({x.cols()}, weight_what);
}

// Optional [D] tensors: checked when defined, null when not.
bool check_optional(const Tensor& t, int64_t width, const char* what) {
  if (!t.defined()) return false;
  t.expect_dtype(DType::F32, what);
  t.expect_shape({width}, what);
  return true;
}
}  // namespace

void layer_norm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, const LayerNormOptions& opts) {
  check_common(x, weight, "layer_norm_forward: x", "layer_norm_forward: weight");
  const float* b =
      check_optional(bias, x.cols(), "layer_norm_forward: bias") ? bias.data<float>() : nullptr;
  out.expect_dtype(DType::F32, "layer_norm_forward: out");
  out.expect_shape(x.shape(), "layer_norm_forward: out");
  mean.expect_dtype(DType::F32, "layer_norm_forward: mean");
  mean.expect_shape({x.rows()}, "layer_norm_forward: mean");
  rstd.expect_dtype(DType::F32, "layer_norm_forward: rstd");
  rstd.expect_shape({x.rows()}, "layer_norm_forward: rstd");
  SY_CHECK(opts.eps >= 0.0f, "layer_norm_forward: eps is {}, expected >= 0", opts.eps);
  cpu::layer_norm_forward(out.mutable_data<float>(), mean.mutable_data<float>(),
                          rstd.mutable_data<float>(), x.data<float>(), weight.data<float>(), b,
                          x.rows(), x.cols(), opts.eps);
}

void layer_norm_backward(Tensor& d_x, Tensor& d_weight, Tensor& d_bias, const Tensor& d_out,
                         const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd) {
  check_common(x, weight, "layer_norm_backward: x", "layer_norm_backward: weight");
  d_x.expect_dtype(DType::F32, "layer_norm_backward: d_x");
  d_x.expect_shape(x.shape(), "layer_norm_backward: d_x");
  d_out.expect_dtype(DType::F32, "layer_norm_backward: d_out");
  d_out.expect_shape(x.shape(), "layer_norm_backward: d_out");
  mean.expect_dtype(DType::F32, "layer_norm_backward: mean");
  mean.expect_shape({x.rows()}, "layer_norm_backward: mean");
  rstd.expect_dtype(DType::F32, "layer_norm_backward: rstd");
  rstd.expect_shape({x.rows()}, "layer_norm_backward: rstd");
  float* d_w = check_optional(d_weight, x.cols(), "layer_norm_backward: d_weight")
                   ? d_weight.mutable_data<float>()
                   : nullptr;
  float* d_b = check_optional(d_bias, x.cols(), "layer_norm_backward: d_bias")
                   ? d_bias.mutable_data<float>()
                   : nullptr;
  cpu::layer_norm_backward(d_x.mutable_data<float>(), d_w, d_b, d_out.data<float>(),
                           x.data<float>(), weight.data<float>(), mean.data<float>(),
                           rstd.data<float>(), x.rows(), x.cols());
}

}  // namespace sy::kernels
