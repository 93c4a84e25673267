// The dense layer: one GEMM for the forward, two for the backward, plus one pass for b / db.
#include "blas.hpp"
#include "kernels.hpp"

namespace pynn {

// Z (h, d) = W A_prev + b: b is written into Z first, then one GEMM with beta = 1.
template <class T>
PYNN_SIMD void dense_forward(CMat<T> W, CMat<T> A_prev, CMat<T> b, Mat<T> Z) {
    for_each_ij(Z, [&](idx i, idx j) { Z(i, j) = b(i, 0); });
    gemm<T>(W, A_prev, Z, T(1));
}

// db (h, 1) = Σ_j dZ(:, j), accumulated in double. When the columns are contiguous (our
// F-ordered workspaces) walk them in order, a block of rows at a time, on the stack.
template <class T>
PYNN_SIMD void row_sums(CMat<T> dZ, Mat<T> db) {
    if (dZ.rs != 1) {
        for (idx i = 0; i < dZ.rows; ++i) {
            double s = 0;
            for (idx j = 0; j < dZ.cols; ++j) s += dZ(i, j);
            db(i, 0) = T(s);
        }
        return;
    }
    constexpr idx B = 256;
    double acc[B];
    for (idx i0 = 0; i0 < dZ.rows; i0 += B) {
        idx nb = std::min(B, dZ.rows - i0);
        std::fill(acc, acc + nb, 0.0);
        for (idx j = 0; j < dZ.cols; ++j) {
            const T* col = dZ.p + j * dZ.cs + i0;
            for (idx i = 0; i < nb; ++i) acc[i] += col[i];
        }
        for (idx i = 0; i < nb; ++i) db(i0 + i, 0) = T(acc[i]);
    }
}
template void row_sums<float>(CMat<float>, Mat<float>);
template void row_sums<double>(CMat<double>, Mat<double>);

template <class T>
PYNN_SIMD void dense_backward(CMat<T> dZ, CMat<T> A_prev, CMat<T> W, Mat<T> dW, Mat<T> db, const Mat<T>* dA_prev) {
    gemm<T>(dZ, A_prev.t(), dW);             // dW = dZ A_prevᵀ
    row_sums(dZ, db);                        // db = dZ·1
    if (dA_prev) gemm<T>(W.t(), dZ, *dA_prev);  // dA_prev = Wᵀ dZ
}

template void dense_forward<float>(CMat<float>, CMat<float>, CMat<float>, Mat<float>);
template void dense_forward<double>(CMat<double>, CMat<double>, CMat<double>, Mat<double>);
template void dense_backward<float>(CMat<float>, CMat<float>, CMat<float>, Mat<float>, Mat<float>, const Mat<float>*);
template void dense_backward<double>(CMat<double>, CMat<double>, CMat<double>, Mat<double>, Mat<double>, const Mat<double>*);

}  // namespace pynn
