// Losses J = (1/d) Σ_i L(yhat_i, y_i), each L summed over the m outputs; sums in double.
// The canonical pairs are computed from the logits Z, so a saturated sigmoid or softmax
// never takes log(0); the general path clips yhat to [eps, 1 - eps] like the reference.
#include <limits>

#include "kernels.hpp"

namespace pynn {

template <class T>
static T clip01(T p) {
    constexpr T eps = std::numeric_limits<T>::epsilon();
    return std::min(std::max(p, eps), T(1) - eps);
}

template <class T>
double loss_forward(Loss loss, CMat<T> Yhat, CMat<T> Y, double delta) {
    double d = double(Yhat.cols), s = 0;
    constexpr T eps = std::numeric_limits<T>::epsilon();
    switch (loss) {
        case Loss::mse:  // 1/2 Σ_k (yhat - y)²
            s = 0.5 * sum2<T>(Yhat, Y, [](T yh, T y) { T r = yh - y; return double(r * r); });
            break;
        case Loss::bce:  // -Σ_k y log p + (1 - y) log(1 - p)
            s = -sum2<T>(Yhat, Y, [](T yh, T y) {
                T p = clip01(yh);
                return double(y * std::log(p) + (T(1) - y) * std::log(T(1) - p));
            });
            break;
        case Loss::cross_entropy:  // -Σ_k y log p
            s = -sum2<T>(Yhat, Y, [eps](T yh, T y) { return double(y * std::log(std::min(std::max(yh, eps), T(1)))); });
            break;
        case Loss::mae:  // Σ_k |yhat - y|
            s = sum2<T>(Yhat, Y, [](T yh, T y) { return double(std::abs(yh - y)); });
            break;
        case Loss::huber:  // Σ_k r²/2 if |r| <= δ else δ (|r| - δ/2)
            s = sum2<T>(Yhat, Y, [dl = T(delta)](T yh, T y) {
                T r = std::abs(yh - y);
                return double(r <= dl ? T(0.5) * r * r : dl * (r - T(0.5) * dl));
            });
            break;
        case Loss::poisson:  // Σ_k yhat - y log p, p = yhat clipped to >= eps
            s = sum2<T>(Yhat, Y, [eps](T yh, T y) { return double(yh - y * std::log(std::max(yh, eps))); });
            break;
    }
    return s / d;
}

template <class T>
PYNN_SIMD void loss_backward(Loss loss, CMat<T> Yhat, CMat<T> Y, Mat<T> dYhat, double delta) {
    T d = T(Yhat.cols);
    constexpr T eps = std::numeric_limits<T>::epsilon();
    switch (loss) {
        case Loss::mse:
            map2<T>(Yhat, Y, dYhat, [d](T yh, T y) { return (yh - y) / d; });
            break;
        case Loss::bce:
            map2<T>(Yhat, Y, dYhat, [d](T yh, T y) { T p = clip01(yh); return (p - y) / (p * (T(1) - p)) / d; });
            break;
        case Loss::cross_entropy:
            map2<T>(Yhat, Y, dYhat, [d, eps](T yh, T y) { return -y / std::min(std::max(yh, eps), T(1)) / d; });
            break;
        case Loss::mae:  // sign(yhat - y) / d, sign(0) = 0 as PyTorch takes it
            map2<T>(Yhat, Y, dYhat, [d](T yh, T y) { T r = yh - y; return T((r > T(0)) - (r < T(0))) / d; });
            break;
        case Loss::huber:  // clip(yhat - y, -δ, δ) / d
            map2<T>(Yhat, Y, dYhat, [d, dl = T(delta)](T yh, T y) { return std::min(std::max(yh - y, -dl), dl) / d; });
            break;
        case Loss::poisson:  // (1 - y / p) / d
            map2<T>(Yhat, Y, dYhat, [d, eps](T yh, T y) { return (T(1) - y / std::max(yh, eps)) / d; });
            break;
    }
}

// Σ_k max(z, 0) - y z + log(1 + exp(-|z|)) = -[y log σ(z) + (1 - y) log(1 - σ(z))]
template <class T>
double bce_logits_forward(CMat<T> Z, CMat<T> Y) {
    double s = sum2<T>(Z, Y, [](T z, T y) {
        return double(std::max(z, T(0)) - y * z + std::log1p(std::exp(-std::abs(z))));
    });
    return s / double(Z.cols);
}

// Σ_k y_k (logsumexp(z) - z_k) = -Σ_k y_k log softmax(z)_k, column by column
template <class T>
double cross_entropy_logits_forward(CMat<T> Z, CMat<T> Y) {
    double s = 0;
    for (idx j = 0; j < Z.cols; ++j) {
        if (Z.rows == 0) break;
        T zmax = Z(0, j);
        for (idx i = 1; i < Z.rows; ++i) zmax = std::max(zmax, Z(i, j));
        T se = 0;
        for (idx i = 0; i < Z.rows; ++i) se += std::exp(Z(i, j) - zmax);
        T lse = zmax + std::log(se);
        for (idx i = 0; i < Z.rows; ++i) s += double(Y(i, j) * (lse - Z(i, j)));
    }
    return s / double(Z.cols);
}

template <class T>
double cross_entropy_lse_forward(CMat<T> Z, CMat<T> Y, const T* lse) {
    double s = 0;
    for (idx j = 0; j < Z.cols; ++j)
        for (idx i = 0; i < Z.rows; ++i) s += double(Y(i, j) * (lse[j] - Z(i, j)));
    return s / double(Z.cols);
}

// Σ_k exp(z) - y z = Σ_k yhat - y log yhat with yhat = exp(z), never taking log(0)
template <class T>
double poisson_logits_forward(CMat<T> Z, CMat<T> Y) {
    return sum2<T>(Z, Y, [](T z, T y) { return double(std::exp(z) - y * z); }) / double(Z.cols);
}

template <class T>
PYNN_SIMD void output_backward(CMat<T> Yhat, CMat<T> Y, Mat<T> dZ) {
    T d = T(Yhat.cols);
    map2<T>(Yhat, Y, dZ, [d](T yh, T y) { return (yh - y) / d; });
}

#define PYNN_INSTANTIATE(T)                                                \
    template double loss_forward<T>(Loss, CMat<T>, CMat<T>, double);       \
    template void loss_backward<T>(Loss, CMat<T>, CMat<T>, Mat<T>, double); \
    template double poisson_logits_forward<T>(CMat<T>, CMat<T>);           \
    template double bce_logits_forward<T>(CMat<T>, CMat<T>);               \
    template double cross_entropy_logits_forward<T>(CMat<T>, CMat<T>);     \
    template double cross_entropy_lse_forward<T>(CMat<T>, CMat<T>, const T*); \
    template void output_backward<T>(CMat<T>, CMat<T>, Mat<T>);
PYNN_INSTANTIATE(float)
PYNN_INSTANTIATE(double)

}  // namespace pynn
