#include "kernels/cpu/gemm_cpu.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

namespace sy::kernels::cpu {

namespace {

void blas_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

// A product of a few rows with a large B (a router's logits in a decode step: [1, 2048] x
// [2048, 64]) is a matrix-vector product bound by reading B, which OpenBLAS runs on one thread
// while the others wait. It is split by columns of C here, one BLAS call per thread on its own
// columns: the same products per element, on every thread's bandwidth.
constexpr int64_t kSmallM = 4;
constexpr int64_t kSplitMinB = int64_t{1} << 16;  // elements of B
constexpr int64_t kSplitAlign = 16;               // columns per piece, a multiple of this

bool split_by_columns(int64_t m, int64_t n, int64_t k) {
  return m <= kSmallM && n * k >= kSplitMinB && n >= 2 * kSplitAlign && omp_get_max_threads() > 1 &&
         omp_in_parallel() == 0;
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  // The BLAS interface requires every leading dimension >= 1, even for an empty operand (k == 0
  // gives a stored [M, 0] or [0, N] matrix); reference BLAS rejects 0, OpenBLAS 0.3.21 happens
  // to accept it. Nothing is read then, so any value >= 1 is right.
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  if (!split_by_columns(m, n, k)) {
    blas_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#pragma omp parallel
  {
    const int64_t parts = omp_get_num_threads(), p = omp_get_thread_num();
    const int64_t blocks = (n + kSplitAlign - 1) / kSplitAlign;
    const int64_t n0 = std::min(n, blocks * p / parts * kSplitAlign);
    const int64_t n1 = std::min(n, blocks * (p + 1) / parts * kSplitAlign);
    if (n1 > n0) {
      // Column n0 of op(b): row n0 of a stored [N, K] b, or column n0 of a stored [K, N] one.
      const float* b0 = b + (trans_b ? n0 * ldb : n0);
      blas_sgemm(trans_a, trans_b, m, n1 - n0, k, alpha, a, lda, b0, ldb, beta, c + n0, ldc);
    }
  }
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
