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
