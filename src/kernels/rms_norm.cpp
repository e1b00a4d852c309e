#include "kernels/rms_norm.h"

#include "kernels/cpu/rms_norm_cpu.h"

namespace sy::kernels {

namespace {
void check_common(const Tensor& x, const Tensor& weight, const char* op) {
  x.expect_dtype(DType::F32, op);
  weight.expect_dtype(DType::F32, op);
  SY_CHECK(x.rank() >= 1, "{}: x must have rank >= 1", op);
  weight.expect_shape({x.cols()}, "rms_norm: weight");
}
}  // namespace

void rms_norm_forward(Tensor& out, Tensor& inv_rms, const Tensor& x, const Tensor& weight,
                      const RmsNormOptions& opts) {
  check_common(x, weight, "rms_norm_forward");
  out.expect_dtype(DType::F32, "rms_norm_forward: out");
  out.expect_shape(x.shape(), "rms_norm_forward: out");
  inv_rms.expect_shape({x.rows()}, "rms_norm_forward: inv_rms");
  SY_CHECK(opts.eps >= 0.0f, "rms_norm_forward: eps is {}, expected >= 0", opts.eps);
  cpu::rms_norm_forward(out.mutable_data<float>(), inv_rms.mutable_data<float>(), x.data<float>(),
                        weight.data<float>(), x.rows(), x.cols(), opts.eps);
}

void rms_norm_backward(Tensor& d_x, Tensor& d_weight, const Tensor& d_out, const Tensor& x,
                       const Tensor& weight, const Tensor& inv_rms) {
  check_common(x, weight, "rms_norm_backward");
  d_x.expect_shape(x.shape(), "rms_norm_backward: d_x");
  d_out.expect_shape(x.shape(), "rms_norm_backward: d_out");
  d_weight.expect_shape({x.cols()}, "rms_norm_backward: d_weight");
  inv_rms.expect_shape({x.rows()}, "rms_norm_backward: inv_rms");
  cpu::rms_norm_backward(d_x.mutable_data<float>(), d_weight.mutable_data<float>(),
                         d_out.data<float>(), x.data<float>(), weight.data<float>(),
                         inv_rms.data<float>(), x.rows(), x.cols());
}

}  // namespace sy::kernels
