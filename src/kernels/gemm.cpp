#include "kernels/gemm.h"

#include "kernels/cpu/gemm_cpu.h"

namespace sy::kernels {

namespace {
struct Dims {
  int64_t m, n, k;
};

// c_what names the output (or output gradient) in messages: "gemm: c", "gemm_backward: d_c".
Dims check_gemm(const Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                const char* op, const char* c_what) {
  for (const auto* t : {&a, &b}) {
    t->expect_dtype(DType::F32, op);
    SY_CHECK(t->rank() == 2, "{}: operands must be rank 2, got shape {}", op,
             shape_str(t->shape()));
  }
  const int64_t m = trans_a ? a.dim(1) : a.dim(0);
  const int64_t k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t kb = trans_b ? b.dim(1) : b.dim(0);
  const int64_t n = trans_b ? b.dim(0) : b.dim(1);
  SY_CHECK(k == kb, "{}: inner dimensions differ: op(a) is [{}, {}], op(b) is [{}, {}]", op, m, k,
           kb, n);
  c.expect_dtype(DType::F32, c_what);
  c.expect_shape({m, n}, c_what);
  return {m, n, k};
}
}  // namespace

void gemm(Tensor& c, const Tensor& a, const Tensor& b, const GemmOptions& opts) {
  const Dims d = check_gemm(c, a, b, opts.trans_a, opts.trans_b, "gemm", "gemm: c");
  cpu::sgemm(opts.trans_a, opts.trans_b, d.m, d.n, d.k, opts.alpha, a.data<float>(), a.dim(1),
             b.data<float>(), b.dim(1), opts.accumulate ? 1.0f : 0.0f, c.mutable_data<float>(),
             d.n);
}

void gemm_backward(Tensor& d_a, Tensor& d_b, const Tensor& d_c, const Tensor& a, const Tensor& b,
                   const GemmOptions& opts) {
  const Dims d =
      check_gemm(d_c, a, b, opts.trans_a, opts.trans_b, "gemm_backward", "gemm_backward: d_c");
  const float* g = d_c.data<float>();
  if (d_a.defined()) {
    d_a.expect_shape(a.shape(), "gemm_backward: d_a");
    // op(a) grad = alpha * d_c op(b)^T  [M, K]. Stored a^T needs the transpose of that:
    // d_a = alpha * op(b) d_c^T  [K, M].
    if (!opts.trans_a) {
      cpu::sgemm(false, !opts.trans_b, d.m, d.k, d.n, opts.alpha, g, d.n, b.data<float>(), b.dim(1),
                 1.0f, d_a.mutable_data<float>(), d.k);
    } else {
      cpu::sgemm(opts.trans_b, true, d.k, d.m, d.n, opts.alpha, b.data<float>(), b.dim(1), g, d.n,
                 1.0f, d_a.mutable_data<float>(), d.m);
    }
  }
  if (d_b.defined()) {
    d_b.expect_shape(b.shape(), "gemm_backward: d_b");
    // op(b) grad = alpha * op(a)^T d_c  [K, N]; stored b^T: d_b = alpha * d_c^T op(a)  [N, K].
    if (!opts.trans_b) {
      cpu::sgemm(!opts.trans_a, false, d.k, d.n, d.m, opts.alpha, a.data<float>(), a.dim(1), g, d.n,
                 1.0f, d_b.mutable_data<float>(), d.n);
    } else {
      cpu::sgemm(true, opts.trans_a, d.n, d.k, d.m, opts.alpha, g, d.n, a.data<float>(), a.dim(1),
                 1.0f, d_b.mutable_data<float>(), d.k);
    }
  }
}

void matvec(Tensor& y, const Tensor& a, const Tensor& x, const MatvecOptions& opts) {
  a.expect_dtype(DType::F32, "matvec: a");
  x.expect_dtype(DType::F32, "matvec: x");
  y.expect_dtype(DType::F32, "matvec: y");
  SY_CHECK(a.rank() == 2, "matvec: a must be rank 2, got shape {}", shape_str(a.shape()));
  const int64_t m = opts.trans_a ? a.dim(1) : a.dim(0);
  const int64_t k = opts.trans_a ? a.dim(0) : a.dim(1);
  x.expect_shape({k}, "matvec: x");
  y.expect_shape({m}, "matvec: y");
  cpu::sgemv(opts.trans_a, a.dim(0), a.dim(1), 1.0f, a.data<float>(), x.data<float>(),
             opts.accumulate ? 1.0f : 0.0f, y.mutable_data<float>());
}

}  // namespace sy::kernels
