// The only file that knows BLAS: scipy-openblas32 prefixes every symbol with scipy_.
#pragma once
#include <cblas.h>

#include "view.hpp"

namespace pynn {

inline void gemm_rm(bool ta, bool tb, idx M, idx N, idx K, float alpha, const float* A, idx lda,
                    const float* B, idx ldb, float beta, float* C, idx ldc) {
    scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb,
                      beta, C, (blasint)ldc);
}
inline void gemm_rm(bool ta, bool tb, idx M, idx N, idx K, double alpha, const double* A, idx lda,
                    const double* B, idx ldb, double beta, double* C, idx ldc) {
    scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb,
                      beta, C, (blasint)ldc);
}

inline void gemv_rm(bool ta, idx M, idx N, float alpha, const float* A, idx lda, const float* x, idx incx,
                    float beta, float* y, idx incy) {
    scipy_cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A,
                      (blasint)lda, x, (blasint)incx, beta, y, (blasint)incy);
}
inline void gemv_rm(bool ta, idx M, idx N, double alpha, const double* A, idx lda, const double* x, idx incx,
                    double beta, double* y, idx incy) {
    scipy_cblas_dgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A,
                      (blasint)lda, x, (blasint)incx, beta, y, (blasint)incy);
}

// Below this many multiply-adds a plain loop beats a BLAS call's fixed cost. Measured here
// (dense_forward, float32, net of the Python call): 4 MACs 20 ns loop vs 100 ns BLAS, 512:
// 290 vs 250, 2048: 1100 vs 380. A 2-2-1 step makes six products of 2-4 multiply-adds.
// -DPYNN_SMALL_GEMM=... rebuilds with another threshold to measure again.
#ifndef PYNN_SMALL_GEMM
#define PYNN_SMALL_GEMM 512
#endif
constexpr idx SMALL_GEMM = PYNN_SMALL_GEMM;

// C = A B + beta C by plain loops, any strides.
template <class T>
void gemm_small(CMat<T> A, CMat<T> B, Mat<T> C, T beta) {
    for (idx j = 0; j < C.cols; ++j)
        for (idx i = 0; i < C.rows; ++i) {
            T s = 0;
            for (idx k = 0; k < A.cols; ++k) s += A(i, k) * B(k, j);
            C(i, j) = beta == T(0) ? s : beta * C(i, j) + s;
        }
}

// C = A B + beta C for an inner dimension of 1 (an outer product: the backward of a layer with one
// output, dA = Wᵀ dZ). Each C(i, j) is one product, exactly what BLAS gives; BLAS would zero C,
// pack both operands and run its kernel at a few GFLOP/s for it.
template <class T>
void gemm_outer(CMat<T> A, CMat<T> B, Mat<T> C, T beta) {
    for (idx j = 0; j < C.cols; ++j) {
        const T bj = B(0, j);
        T* c = C.p + j * C.cs;
        if (C.rs == 1 && A.rs == 1 && beta == T(0)) {  // F-ordered C and a contiguous column: vectorises
            for (idx i = 0; i < C.rows; ++i) c[i] = A.p[i] * bj;
        } else {
            for (idx i = 0; i < C.rows; ++i)
                c[i * C.rs] = beta == T(0) ? A(i, 0) * bj : beta * c[i * C.rs] + A(i, 0) * bj;
        }
    }
}

// y = A x + beta y as GEMV: A (M, K) any orientation, x (K, 1) and y (M, 1) as strided vectors.
template <class T>
void gemv(CMat<T> A, const T* x, idx incx, T* y, idx incy, T beta) {
    bool ta = !row_major(A);
    idx lda = ta ? row_ld(A.t()) : row_ld(A);
    // row-major GEMV sees the stored matrix: (M, K) untransposed, or (K, M) with Trans
    if (ta) gemv_rm(true, A.cols, A.rows, T(1), A.p, lda, x, incx, beta, y, incy);
    else gemv_rm(false, A.rows, A.cols, T(1), A.p, lda, x, incx, beta, y, incy);
}

// C (M, N) = A (M, K) @ B (K, N) + beta C, for views of any orientation: the transpose
// flags and leading dimensions come from the strides, so nothing is ever copied.
// Every view must be row_major() or col_major() (the bindings check this).
template <class T>
void gemm(CMat<T> A, CMat<T> B, Mat<T> C, T beta = T(0)) {
    if (C.rows == 0 || C.cols == 0) return;
    if (A.cols == 0) {  // empty inner dimension: the product is zero
        for_each_ij(C, [&](idx i, idx j) { C(i, j) = beta == T(0) ? T(0) : beta * C(i, j); });
        return;
    }
    if (C.rows * C.cols * A.cols <= SMALL_GEMM) return gemm_small(A, B, C, beta);
    if (A.cols == 1) return gemm_outer(A, B, C, beta);
    if (C.cols == 1 && C.rows > 1)  // one example: a matrix-vector product
        return gemv(A, B.p, B.rs, C.p, C.rs, beta);
    if (C.rows == 1 && C.cols > 1)  // one output row: Cᵀ = Bᵀ Aᵀ
        return gemv(B.t(), A.p, A.cs, C.p, C.cs, beta);
    if (!row_major(C)) {  // C is column-major: compute Cᵀ = Bᵀ Aᵀ into its row-major transpose
        CMat<T> At = A.t(), Bt = B.t();
        A = Bt;
        B = At;
        C = C.t();
    }
    bool ta = !row_major(A), tb = !row_major(B);
    idx lda = ta ? row_ld(A.t()) : row_ld(A);
    idx ldb = tb ? row_ld(B.t()) : row_ld(B);
    gemm_rm(ta, tb, C.rows, C.cols, A.cols, T(1), A.p, lda, B.p, ldb, beta, C.p, row_ld(C));
}

inline void blas_set_num_threads(int n) { scipy_openblas_set_num_threads(n); }
inline int blas_get_num_threads() { return scipy_openblas_get_num_threads(); }
inline const char* blas_config() { return scipy_openblas_get_config(); }

}  // namespace pynn
