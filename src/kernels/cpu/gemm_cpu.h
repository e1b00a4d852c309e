// Raw f32 GEMM/GEMV on row-major buffers; OpenBLAS underneath. No checks.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

// c[M,N] = alpha * op(a) op(b) + beta * c, with leading dimensions of the stored matrices.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// y[M] = alpha * op(a) x + beta * y; a stored [rows, cols] row-major.
void sgemv(bool trans_a, int64_t rows, int64_t cols, float alpha, const float* a, const float* x,
           float beta, float* y);
// Name of the BLAS library and its configuration, for `switchyard env`.
const char* blas_info();

}  // namespace sy::kernels::cpu
