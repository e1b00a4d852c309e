#include "kernels/topk.h"

#include "kernels/cpu/topk_cpu.h"

namespace sy::kernels {

void topk_forward(Tensor& values, Tensor& indices, const Tensor& x) {
  x.expect_dtype(DType::F32, "topk_forward: x");
  SY_CHECK(x.rank() == 2, "topk_forward: x: shape {}, expected [T, E]", shape_str(x.shape()));
  const int64_t rows = x.dim(0), cols = x.dim(1);
  values.expect_dtype(DType::F32, "topk_forward: values");
  indices.expect_dtype(DType::I32, "topk_forward: indices");
  values.expect_shape({rows, -1}, "topk_forward: values");
  const int64_t k = values.dim(1);
  indices.expect_shape({rows, k}, "topk_forward: indices");
  SY_CHECK(k >= 1 && k <= cols, "topk_forward: K = {} (values shape {}), expected 1 <= K <= E = {}",
           k, shape_str(values.shape()), cols);
  const int64_t nan_at =
      cpu::topk_forward(values.mutable_data<float>(), indices.mutable_data<int32_t>(),
                        x.data<float>(), rows, cols, k);
  SY_CHECK(nan_at < 0, "topk_forward: x[{}, {}] is NaN", nan_at / cols, nan_at % cols);
}

void topk_backward(Tensor& d_x, const Tensor& d_values, const Tensor& indices) {
  d_x.expect_dtype(DType::F32, "topk_backward: d_x");
  SY_CHECK(d_x.rank() == 2, "topk_backward: d_x: shape {}, expected [T, E]",
           shape_str(d_x.shape()));
  const int64_t rows = d_x.dim(0), cols = d_x.dim(1);
  indices.expect_dtype(DType::I32, "topk_backward: indices");
  indices.expect_shape({rows, -1}, "topk_backward: indices");
  const int64_t k = indices.dim(1);
  d_values.expect_dtype(DType::F32, "topk_backward: d_values");
  d_values.expect_shape({rows, k}, "topk_backward: d_values");
  const int32_t* idx = indices.data<int32_t>();
  for (int64_t i = 0; i < indices.numel(); ++i) {
    SY_CHECK(idx[i] >= 0 && idx[i] < cols, "topk_backward: indices[{}, {}] = {}, expected < E = {}",
             i / k, i % k, idx[i], cols);
  }
  cpu::topk_backward(d_x.mutable_data<float>(), d_values.data<float>(), idx, rows, cols, k);
}

}  // namespace sy::kernels
