#include "kernels/cpu/gemm_cpu.h"

#include <cblas.h>

#include <algorithm>

namespace sy::kernels::cpu {

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  // The BLAS interface requires every leading dimension >= 1, even for an empty operand (k == 0
  // gives a stored [M, 0] or [0, N] matrix); reference BLAS rejects 0, OpenBLAS 0.3.21 happens
  // to accept it. Nothing is read then, so any value >= 1 is right.
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void sgemv(bool trans_a, int64_t rows, int64_t cols, float alpha, const float* a, const float* x,
           float beta, float* y) {
  if (rows == 0 || cols == 0) {
    // BLAS leaves y untouched for an empty product; honour beta ourselves.
    const int64_t out = trans_a ? cols : rows;
    for (int64_t i = 0; i < out; ++i) y[i] = beta == 0.0f ? 0.0f : beta * y[i];
    return;
  }
  cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, static_cast<blasint>(rows),
              static_cast<blasint>(cols), alpha, a, static_cast<blasint>(cols), x, 1, beta, y, 1);
}

const char* blas_info() { return openblas_get_config(); }

}  // namespace sy::kernels::cpu
