// Activations, forward and backward, and the fused whole-layer kernels.
// Each activation is a pair of one-element functions; the loops are shared and specialised
// per activation at compile time, so the elementwise passes vectorise where the math allows.
#include <type_traits>

#include "blas.hpp"
#include "fastmath.hpp"
#include "kernels.hpp"

namespace pynn {

// value: a = act(z);  grad: dz = da ⊙ act'(z), from a = act(z)
template <class T, Act A>
struct Fn;
template <class T>
struct Fn<T, Act::sigmoid> {
    static T value(T z) { return sigmoid(z); }  // double only: float goes to fastmath.cpp
    static T grad(T da, T a) { return da * (a * (T(1) - a)); }
};
template <class T>
struct Fn<T, Act::tanh> {
    static T value(T z) { return std::tanh(z); }  // double only: float goes to fastmath.cpp
    static T grad(T da, T a) { return da * (T(1) - a * a); }
};

// float sigmoid and tanh always go to the vectorised, CPU-dispatched loops of fastmath.cpp.
template <class T, Act K>
constexpr bool vectorised = std::is_same_v<T, float> && (K == Act::sigmoid || K == Act::tanh);
template <class T>
struct Fn<T, Act::relu> {
    static T value(T z) { return z > T(0) ? z : T(0); }
    static T grad(T da, T a) { return a > T(0) ? da : T(0); }
};
template <class T>
struct Fn<T, Act::leaky_relu> {
    static T value(T z) { return z > T(0) ? z : T(LEAKY_SLOPE) * z; }
    static T grad(T da, T a) { return a > T(0) ? da : T(LEAKY_SLOPE) * da; }
};
template <class T>
struct Fn<T, Act::elu> {
    static T value(T z) { return z > T(0) ? z : T(ELU_ALPHA) * std::expm1(z); }
    static T grad(T da, T a) { return a > T(0) ? da : da * (a + T(ELU_ALPHA)); }  // α exp(z) = a + α
};
// gelu's grad takes z, not a: callers pass Z in the place of A (backward_from_z).
template <class T>
struct Fn<T, Act::gelu> {
    static T value(T z) { return z * (T(0.5) * std::erfc(-z * T(SQRT1_2))); }  // z Φ(z), exact
    static T grad(T da, T z) {
        return da * (T(0.5) * std::erfc(-z * T(SQRT1_2)) + z * (T(INV_SQRT_2PI) * std::exp(T(-0.5) * z * z)));
    }
};
template <class T>
struct Fn<T, Act::softplus> {
    static T value(T z) {
        return z > T(SOFTPLUS_THRESHOLD) ? z : std::max(z, T(0)) + std::log1p(std::exp(-std::abs(z)));
    }
    static T grad(T da, T a) { return a > T(SOFTPLUS_A_THRESHOLD) ? da : da * -std::expm1(-a); }  // σ(z) = 1 - e^-a
};
template <class T>
struct Fn<T, Act::exp> {
    static T value(T z) { return std::exp(z); }
    static T grad(T da, T a) { return da * a; }
};
template <class T>
struct Fn<T, Act::linear> {
    static T value(T z) { return z; }
    static T grad(T da, T) { return da; }
};

// Calls f.template operator()<Act>() for the runtime activation (softmax handled by callers).
#define PYNN_DISPATCH_ELEMENTWISE(act, BODY)                              \
    switch (act) {                                                        \
        case Act::sigmoid: { constexpr Act K = Act::sigmoid; BODY; } break;       \
        case Act::tanh: { constexpr Act K = Act::tanh; BODY; } break;             \
        case Act::relu: { constexpr Act K = Act::relu; BODY; } break;             \
        case Act::leaky_relu: { constexpr Act K = Act::leaky_relu; BODY; } break; \
        case Act::elu: { constexpr Act K = Act::elu; BODY; } break;               \
        case Act::gelu: { constexpr Act K = Act::gelu; BODY; } break;             \
        case Act::softplus: { constexpr Act K = Act::softplus; BODY; } break;     \
        case Act::exp: { constexpr Act K = Act::exp; BODY; } break;               \
        case Act::linear: { constexpr Act K = Act::linear; BODY; } break;         \
        case Act::softmax: break;                                         \
    }

// softmax over one column of m values at stride s: shift by the max, exp, normalise; with lse,
// also *lse = log Σ exp(z) = zmax + log(sum), as cross_entropy_logits_forward computes it.
template <class T>
PYNN_SIMD static void softmax_column(const T* z, idx zs, T* a, idx as, idx m, T* lse = nullptr) {
    T zmax = z[0];
    for (idx i = 1; i < m; ++i) zmax = std::max(zmax, z[i * zs]);
    T sum = 0;
    if constexpr (std::is_same_v<T, float>) {  // fastmath.cpp's vectorised exp, then the same sum
        fast::exp_shifted_n(z, zs, zmax, a, as, m);
        for (idx i = 0; i < m; ++i) sum += a[i * as];
    } else {
        for (idx i = 0; i < m; ++i) {
            T e = std::exp(z[i * zs] - zmax);
            a[i * as] = e;
            sum += e;
        }
    }
    for (idx i = 0; i < m; ++i) a[i * as] = a[i * as] / sum;
    if (lse) *lse = zmax + std::log(sum);
}

template <class T, Act K>
PYNN_SIMD static void act_forward_k(CMat<T> Z, Mat<T> A) {
    if constexpr (vectorised<T, K>) {
        auto f = K == Act::sigmoid ? fast::sigmoid_n : fast::tanh_n;
        if (idx n = flat_size(Z, CMat<T>(A))) return f(Z.p, 1, A.p, 1, n);
        if (A.rs == 1 || A.rows == 1) {  // one run per column
            for (idx j = 0; j < A.cols; ++j) f(Z.p + j * Z.cs, Z.rs, A.p + j * A.cs, A.rs, A.rows);
        } else {  // one run per row
            for (idx i = 0; i < A.rows; ++i) f(Z.p + i * Z.rs, Z.cs, A.p + i * A.rs, A.cs, A.cols);
        }
    } else {
        map1<T>(Z, A, [](T z) { return Fn<T, K>::value(z); });
    }
}

template <class T>
PYNN_SIMD void act_forward(Act act, CMat<T> Z, Mat<T> A) {
    if (act == Act::softmax) {
        for (idx j = 0; j < Z.cols; ++j)
            if (Z.rows > 0) softmax_column(Z.p + j * Z.cs, Z.rs, A.p + j * A.cs, A.rs, Z.rows);
        return;
    }
    PYNN_DISPATCH_ELEMENTWISE(act, (act_forward_k<T, K>(Z, A)))
}

template <class T>
PYNN_SIMD void act_backward(Act act, CMat<T> dA, CMat<T> A, Mat<T> dZ) {
    if (act == Act::softmax) {  // dZ = A ⊙ (dA - Σ_k dA_k A_k), column by column
        for (idx j = 0; j < A.cols; ++j) {
            T s = 0;
            for (idx i = 0; i < A.rows; ++i) s += dA(i, j) * A(i, j);
            for (idx i = 0; i < A.rows; ++i) dZ(i, j) = A(i, j) * (dA(i, j) - s);
        }
        return;
    }
    PYNN_DISPATCH_ELEMENTWISE(act, map2<T>(dA, A, dZ, [](T da, T a) { return Fn<T, K>::grad(da, a); }))
}

// One pass over Z after the GEMM: z += b, then a = act(z) (Z keeps z unless Z is A).
template <class T, Act K>
PYNN_SIMD static void bias_act(CMat<T> b, Mat<T> Z, Mat<T> A) {
    const T* bp = b.p;
    idx bs = b.rs;
    if (Z.rs == 1 && A.rs == 1) {  // columns contiguous: the common, F-ordered case
        if constexpr (vectorised<T, K>) {
            for (idx j = 0; j < Z.cols; ++j)
                (K == Act::sigmoid ? fast::bias_sigmoid_n : fast::bias_tanh_n)(Z.p + j * Z.cs, bp, bs, A.p + j * A.cs, Z.rows);
            return;
        }
        for (idx j = 0; j < Z.cols; ++j) {
            T* zc = Z.p + j * Z.cs;
            T* ac = A.p + j * A.cs;
            if (bs == 1) {  // a contiguous bias (network.py's): a unit-stride loop vectorises
                for (idx i = 0; i < Z.rows; ++i) {
                    T z = zc[i] + bp[i];
                    zc[i] = z;
                    ac[i] = Fn<T, K>::value(z);
                }
                continue;
            }
            for (idx i = 0; i < Z.rows; ++i) {
                T z = zc[i] + bp[i * bs];
                zc[i] = z;
                ac[i] = Fn<T, K>::value(z);
            }
        }
        return;
    }
    if constexpr (vectorised<T, K>) {
        for_each_ij(Z, [&](idx i, idx j) { Z(i, j) += bp[i * bs]; });
        act_forward_k<T, K>(Z, A);
    } else {
        for_each_ij(Z, [&](idx i, idx j) {
            T z = Z(i, j) + bp[i * bs];
            Z(i, j) = z;
            A(i, j) = Fn<T, K>::value(z);
        });
    }
}

template <class T>
PYNN_SIMD void layer_forward(CMat<T> W, CMat<T> A_prev, CMat<T> b, Act act, Mat<T> Z, Mat<T> A, T* lse) {
    gemm<T>(W, A_prev, Z);  // Z = W A_prev
    if (act == Act::softmax) {
        for_each_ij(Z, [&](idx i, idx j) { Z(i, j) += b(i, 0); });
        if (!lse) return act_forward<T>(act, Z, A);
        for (idx j = 0; j < Z.cols; ++j)
            if (Z.rows > 0) softmax_column(Z.p + j * Z.cs, Z.rs, A.p + j * A.cs, A.rs, Z.rows, lse + j);
        return;
    }
    PYNN_DISPATCH_ELEMENTWISE(act, (bias_act<T, K>(b, Z, A)))
}

// dZ = dA ⊙ act'(A) with db = dZ·1 accumulated in the same pass when columns are contiguous.
// The running sums are in T, one per feature, walked alongside each column: this is what the
// reference's sum over the examples of an F-ordered array does, and it vectorises.
template <class T, Act K>
PYNN_SIMD static void grad_rowsum(CMat<T> dA, CMat<T> A, Mat<T> dZ, Mat<T> db) {
    constexpr idx B = 512;
    if (!(dA.rs == 1 && A.rs == 1 && dZ.rs == 1 && db.rs == 1) || dZ.rows > B) {
        map2<T>(dA, A, dZ, [](T da, T a) { return Fn<T, K>::grad(da, a); });
        row_sums<T>(dZ, db);
        return;
    }
    T acc[B];
    idx h = dZ.rows;
    std::fill(acc, acc + h, T(0));
    for (idx j = 0; j < dZ.cols; ++j) {
        const T* dac = dA.p + j * dA.cs;
        const T* ac = A.p + j * A.cs;
        T* dzc = dZ.p + j * dZ.cs;
        for (idx i = 0; i < h; ++i) {
            T g = Fn<T, K>::grad(dac[i], ac[i]);
            dzc[i] = g;
            acc[i] += g;
        }
    }
    std::copy(acc, acc + h, db.p);
}

template <class T>
PYNN_SIMD void layer_backward(CMat<T> dA, CMat<T> A, Act act, CMat<T> W, CMat<T> A_prev, Mat<T> dZ, Mat<T> dW,
                    Mat<T> db, const Mat<T>* dA_prev) {
    if (act == Act::softmax) {
        act_backward<T>(act, dA, A, dZ);
        row_sums<T>(dZ, db);
    } else {
        PYNN_DISPATCH_ELEMENTWISE(act, (grad_rowsum<T, K>(dA, A, dZ, db)))
    }
    gemm<T>(dZ, A_prev.t(), dW);                 // dW = dZ A_prevᵀ
    if (dA_prev) gemm<T>(W.t(), dZ, *dA_prev);  // dA_prev = Wᵀ dZ
}

#define PYNN_INSTANTIATE(T)                                                                        \
    template void act_forward<T>(Act, CMat<T>, Mat<T>);                                            \
    template void act_backward<T>(Act, CMat<T>, CMat<T>, Mat<T>);                                  \
    template void layer_forward<T>(CMat<T>, CMat<T>, CMat<T>, Act, Mat<T>, Mat<T>, T*);            \
    template void layer_backward<T>(CMat<T>, CMat<T>, Act, CMat<T>, CMat<T>, Mat<T>, Mat<T>, Mat<T>, \
                                    const Mat<T>*);
PYNN_INSTANTIATE(float)
PYNN_INSTANTIATE(double)

}  // namespace pynn
