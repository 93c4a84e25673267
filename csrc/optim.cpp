// Optimizer updates over one flat parameter buffer, in the reference's (and PyTorch's) order.
#include "kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace pynn {

// An integer as wide as T, so an AND reduction over comparisons of T vectorises.
template <class T>
using Flag = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;

// p <- p - lr g (the seed's update); with momentum v <- μ v + g and a step of v (or g + μ v).
template <class T>
PYNN_SIMD bool sgd_update(T* p, const T* g, T* v, idx n, double lr, double momentum, bool nesterov) {
    const T lr_ = T(lr), mu = T(momentum);
    Flag<T> ok = 1;  // every new value finite (x - x is 0 exactly for finite x): an AND reduction
    if (momentum == 0) {
        for (idx k = 0; k < n; ++k) {
            T pk = p[k] - lr_ * g[k];
            p[k] = pk;
            ok &= (pk - pk) == T(0);
        }
        return ok;
    }
    for (idx k = 0; k < n; ++k) {
        T vk = mu * v[k] + g[k];
        v[k] = vk;
        T pk = p[k] - lr_ * (nesterov ? g[k] + mu * vk : vk);
        p[k] = pk;
        ok &= ((pk - pk) == T(0)) & ((vk - vk) == T(0));
    }
    return ok;
}

// Adam at step t >= 1; weight_decay > 0 shrinks p first, decoupled from the gradient (AdamW).
// Both updates return whether every new value is finite.
template <class T>
PYNN_SIMD bool adam_update(T* p, const T* g, T* m, T* v, idx n, long long t, double lr, double beta1, double beta2,
                 double eps, double weight_decay, T* save) {
    const T decay = T(1 - lr * weight_decay), b1 = T(beta1), b2 = T(beta2), c1 = T(1 - beta1), c2 = T(1 - beta2);
    const T step = T(lr / (1 - std::pow(beta1, double(t))));
    const T root_bias2 = T(std::sqrt(1 - std::pow(beta2, double(t)))), eps_ = T(eps);
    Flag<T> ok = 1;
    // with_save: keep p, m, v in save[0:n], [n:2n], [2n:3n] in the same pass (see Model::update).
    // save overlaps none of the others (Model::update's own buffer), nor do p, g, m, v: without
    // ivdep the alias checks for six arrays keep GCC from vectorising the loop
    auto pass = [&](auto with_save) {
#pragma GCC ivdep
        for (idx k = 0; k < n; ++k) {
            if constexpr (decltype(with_save)::value) {
                save[k] = p[k];
                save[n + k] = m[k];
                save[2 * n + k] = v[k];
            }
            T mk = b1 * m[k] + c1 * g[k];
            T vk = b2 * v[k] + c2 * g[k] * g[k];
            m[k] = mk;
            v[k] = vk;
            T pk = p[k] * decay - step * mk / (std::sqrt(vk) / root_bias2 + eps_);
            p[k] = pk;
            ok &= ((pk - pk) == T(0)) & ((vk - vk) == T(0));
        }
        return bool(ok);
    };
    return save ? pass(std::true_type{}) : pass(std::false_type{});
}

// RMSprop as torch.optim.RMSprop: g gains weight_decay p (coupled L2); s <- α s + (1-α) g²;
// centered: ḡ <- lerp(ḡ, g, 1-α) (torch's two-sided lerp) and the root is √(s - ḡ²); the step is
// lr g / (root + eps), or with momentum μ: buf <- μ buf + g / (root + eps), step lr buf.
template <class T>
PYNN_SIMD bool rmsprop_update(T* p, const T* g, T* sq, T* gavg, T* buf, idx n, double lr, double alpha, double eps,
                    double weight_decay, double momentum, bool centered) {
    const T lr_ = T(lr), a = T(alpha), one_minus_a = T(1 - alpha), eps_ = T(eps), wd = T(weight_decay),
            mu = T(momentum);
    const double w = 1 - alpha;
    const bool lerp_low = w < 0.5;
    const T lw = T(lerp_low ? w : 1 - w);
    Flag<T> ok = 1;
    for (idx k = 0; k < n; ++k) {
        T gk = weight_decay != 0 ? g[k] + wd * p[k] : g[k];
        T s = a * sq[k] + one_minus_a * (gk * gk);
        sq[k] = s;
        T avg;
        if (centered) {
            T ak = gavg[k];
            ak = lerp_low ? ak + lw * (gk - ak) : gk - (gk - ak) * lw;
            gavg[k] = ak;
            avg = std::sqrt(s - ak * ak) + eps_;
            ok &= (ak - ak) == T(0);
        } else {
            avg = std::sqrt(s) + eps_;
        }
        T pk;
        if (momentum > 0) {
            T b = mu * buf[k] + gk / avg;
            buf[k] = b;
            pk = p[k] - lr_ * b;
            ok &= (b - b) == T(0);
        } else {
            pk = p[k] - lr_ * (gk / avg);
        }
        p[k] = pk;
        ok &= ((pk - pk) == T(0)) & ((s - s) == T(0));
    }
    return ok;
}

// iRprop− as torch.optim.Rprop: a step size grows by eta_plus where g keeps its sign (g·prev > 0)
// and shrinks by eta_minus where it flips — there g counts as 0 this step — clipped to
// [step_min, step_max]; p <- p - sign(g) step; prev <- g.
template <class T>
PYNN_SIMD bool rprop_update(T* p, const T* g, T* prev, T* step, idx n, double eta_minus, double eta_plus, double step_min,
                  double step_max) {
    const T em = T(eta_minus), ep = T(eta_plus), lo = T(step_min), hi = T(step_max), zero = T(0);
    Flag<T> ok = 1;
    for (idx k = 0; k < n; ++k) {
        T gk = g[k];
        const T s = gk * prev[k];
        T st = step[k];
        if (s > zero) {
            st = st * ep;
        } else if (s < zero) {
            st = st * em;
            gk = zero;
        }
        st = std::min(std::max(st, lo), hi);
        step[k] = st;
        T pk = gk > zero ? p[k] - st : gk < zero ? p[k] + st : p[k];
        p[k] = pk;
        prev[k] = gk;
        ok &= (pk - pk) == T(0);
    }
    return ok;
}

// Clip the gradient in place, as torch.nn.utils.clip_grad_value_ (each element to [-value, value])
// then clip_grad_norm_ (scaled by max_norm / (‖g‖ + 1e-6) when that is below 1); 0 turns either off.
template <class T>
PYNN_SIMD void clip_gradient(T* g, idx n, double value, double max_norm) {
    if (value > 0) {
        const T hi = T(value), lo = -hi;
        for (idx k = 0; k < n; ++k) g[k] = std::min(std::max(g[k], lo), hi);
    }
    if (max_norm > 0) {
        double s = 0;
        for (idx k = 0; k < n; ++k) s += double(g[k]) * double(g[k]);
        double coef = max_norm / (std::sqrt(s) + 1e-6);
        if (coef < 1) {
            const T c = T(coef);
            for (idx k = 0; k < n; ++k) g[k] *= c;
        }
    }
}

// l2/2 Σ W² (l1 = 0) in sixteen running sums, so the vector adds in double need not wait on each
// other; with dW also dW += l2 W in the same pass (penalty_step), so a training step reads W
// once for the penalty.
template <class T>
static inline __attribute__((always_inline)) double penalty_l2(const T* W, idx n, double l2, T* dW) {
    constexpr int S = 16;
    double s2[S] = {};
    const T c = T(l2);
    idx k = 0;
    if (dW) {
#pragma GCC ivdep
        for (; k + S <= n; k += S)
            for (int j = 0; j < S; ++j) {
                T w = W[k + j];
                s2[j] += double(w) * double(w);
                dW[k + j] += c * w;
            }
        for (; k < n; ++k) {
            s2[k % S] += double(W[k]) * double(W[k]);
            dW[k] += c * W[k];
        }
    } else {
        for (; k + S <= n; k += S)
            for (int j = 0; j < S; ++j) s2[j] += double(W[k + j]) * double(W[k + j]);
        for (; k < n; ++k) s2[k % S] += double(W[k]) * double(W[k]);
    }
    for (int w = S / 2; w > 0; w /= 2)  // pairwise: s2[j] += s2[j + w]
        for (int j = 0; j < w; ++j) s2[j] += s2[j + w];
    return 0.5 * l2 * s2[0];
}

// The weight penalty of one layer's W (n elements): l1 Σ|W| + l2/2 Σ W², summed in double
// (four running sums: a reduction in double does not vectorise, but it need not wait on itself).
template <class T>
PYNN_SIMD double penalty_forward(const T* W, idx n, double l1, double l2) {
    if (l1 == 0) return penalty_l2<T>(W, n, l2, nullptr);
    double s1[4] = {0, 0, 0, 0}, s2[4] = {0, 0, 0, 0};
    idx k = 0;
    for (; k + 4 <= n; k += 4)
        for (int j = 0; j < 4; ++j) {
            double w = double(W[k + j]);
            s1[j] += std::abs(w);
            s2[j] += w * w;
        }
    for (; k < n; ++k) {
        double w = double(W[k]);
        s1[0] += std::abs(w);
        s2[0] += w * w;
    }
    double a = (s1[0] + s1[1]) + (s1[2] + s1[3]), b = (s2[0] + s2[1]) + (s2[2] + s2[3]);
    return (l1 != 0 ? l1 * a : 0.0) + 0.5 * l2 * b;
}

// Its gradient added to the loss's: dW <- dW + l1 sign(W) + l2 W (sign(0) = 0, as NumPy's).
template <class T>
PYNN_SIMD void penalty_backward(const T* W, idx n, double l1, double l2, T* dW) {
    const T a = T(l1), c = T(l2);
    if (l1 == 0) {  // the common case (scikit-learn's alpha): one multiply-add per weight
        for (idx k = 0; k < n; ++k) dW[k] += c * W[k];
        return;
    }
    for (idx k = 0; k < n; ++k) {
        T w = W[k];
        T sign = T((w > T(0)) - (w < T(0)));
        dW[k] = (dW[k] + a * sign) + c * w;
    }
}

template <class T>
PYNN_SIMD bool finite_n(const T* p, idx n) {
    Flag<T> ok = 1;
    for (idx k = 0; k < n; ++k) ok &= (p[k] - p[k]) == T(0);
    return ok;
}

template bool finite_n<float>(const float*, idx);
template bool finite_n<double>(const double*, idx);
template <class T>
PYNN_SIMD double penalty_step(const T* W, idx n, double l1, double l2, T* dW) {
    if (l1 == 0) return penalty_l2<T>(W, n, l2, dW);
    double J = penalty_forward<T>(W, n, l1, l2);
    penalty_backward<T>(W, n, l1, l2, dW);
    return J;
}

template double penalty_step<float>(const float*, idx, double, double, float*);
template double penalty_step<double>(const double*, idx, double, double, double*);
template double penalty_forward<float>(const float*, idx, double, double);
template double penalty_forward<double>(const double*, idx, double, double);
template void penalty_backward<float>(const float*, idx, double, double, float*);
template void penalty_backward<double>(const double*, idx, double, double, double*);
template void clip_gradient<float>(float*, idx, double, double);
template void clip_gradient<double>(double*, idx, double, double);
template bool sgd_update<float>(float*, const float*, float*, idx, double, double, bool);
template bool sgd_update<double>(double*, const double*, double*, idx, double, double, bool);
template bool adam_update<float>(float*, const float*, float*, float*, idx, long long, double, double, double, double, double, float*);
template bool adam_update<double>(double*, const double*, double*, double*, idx, long long, double, double, double, double, double, double*);
template bool rmsprop_update<float>(float*, const float*, float*, float*, float*, idx, double, double, double, double, double, bool);
template bool rmsprop_update<double>(double*, const double*, double*, double*, double*, idx, double, double, double, double, double, bool);
template bool rprop_update<float>(float*, const float*, float*, float*, idx, double, double, double, double);
template bool rprop_update<double>(double*, const double*, double*, double*, idx, double, double, double, double);

}  // namespace pynn
