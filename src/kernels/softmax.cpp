#include "kernels/softmax.h"

#include "kernels/cpu/softmax_cpu.h"

namespace sy::kernels {

namespace {
void check_forward(const Tensor& out, const Tensor& x, const char* op_x, const char* op_out) {
  x.expect_dtype(DType::F32, op_x);
  out.expect_dtype(DType::F32, op_out);
  out.expect_shape(x.shape(), op_out);
}

void check_backward(const Tensor& d_x, const Tensor& d_out, const Tensor& out, const char* op_out,
                    const char* op_d_out, const char* op_d_x) {
  out.expect_dtype(DType::F32, op_out);
  d_out.expect_dtype(DType::F32, op_d_out);
  d_x.expect_dtype(DType::F32, op_d_x);
  d_out.expect_shape(out.shape(), op_d_out);
  d_x.expect_shape(out.shape(), op_d_x);
}
}  // namespace

void softmax_forward(Tensor& out, const Tensor& x) {
  check_forward(out, x, "softmax_forward: x", "softmax_forward: out");
  cpu::softmax_forward(out.mutable_data<float>(), x.data<float>(), x.rows(), x.cols());
}

void softmax_backward(Tensor& d_x, const Tensor& d_out, const Tensor& out) {
  check_backward(d_x, d_out, out, "softmax_backward: out", "softmax_backward: d_out",
                 "softmax_backward: d_x");
  cpu::softmax_backward(d_x.mutable_data<float>(), d_out.data<float>(), out.data<float>(),
                        out.rows(), out.cols());
}

void log_softmax_forward(Tensor& out, const Tensor& x) {
  check_forward(out, x, "log_softmax_forward: x", "log_softmax_forward: out");
  cpu::log_softmax_forward(out.mutable_data<float>(), x.data<float>(), x.rows(), x.cols());
}

void log_softmax_backward(Tensor& d_x, const Tensor& d_out, const Tensor& out) {
  check_backward(d_x, d_out, out, "log_softmax_backward: out", "log_softmax_backward: d_out",
                 "log_softmax_backward: d_x");
  cpu::log_softmax_backward(d_x.mutable_data<float>(), d_out.data<float>(), out.data<float>(),
                            out.rows(), out.cols());
}

}  // namespace sy::kernels
