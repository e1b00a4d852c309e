#include "kernels/softmax.h"

#include <cmath>

namespace sy::kernels {

void softmax_forward(Tensor& out, const Tensor& x) {
  x.expect_dtype(DType::F32, "softmax_forward: x");
  out.expect_shape(x.shape(), "softmax_forward: out");
  const int64_t rows = x.rows(), cols = x.cols();
  const float* px = x.data<float>();
  float* py = out.mutable_data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * cols;
    float* yr = py + r * cols;
    float m = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, xr[c]);
    float s = 0.0f;
    for (int64_t c = 0; c < cols; ++c) s += (yr[c] = std::exp(xr[c] - m));
    for (int64_t c = 0; c < cols; ++c) yr[c] /= s;
  }
}

void softmax_backward(Tensor& d_x, const Tensor& d_out, const Tensor& out) {
  out.expect_dtype(DType::F32, "softmax_backward: out");
  d_out.expect_shape(out.shape(), "softmax_backward: d_out");
  d_x.expect_shape(out.shape(), "softmax_backward: d_x");
  const int64_t rows = out.rows(), cols = out.cols();
  const float* py = out.data<float>();
  const float* pg = d_out.data<float>();
  float* pd = d_x.mutable_data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float dot = 0.0f;
    for (int64_t c = 0; c < cols; ++c) dot += pg[r * cols + c] * py[r * cols + c];
    for (int64_t c = 0; c < cols; ++c) pd[r * cols + c] += py[r * cols + c] * (pg[r * cols + c] - dot);
  }
}

}  // namespace sy::kernels
