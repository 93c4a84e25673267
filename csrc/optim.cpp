// Optimizer updates over one flat parameter buffer, in the reference's (and PyTorch's) order.
#include "kernels.hpp"

namespace pynn {

// p <- p - lr g (the seed's update); with momentum v <- μ v + g and a step of v (or g + μ v).
template <class T>
void sgd_update(T* p, const T* g, T* v, idx n, double lr, double momentum, bool nesterov) {
    const T lr_ = T(lr), mu = T(momentum);
    if (momentum == 0) {
        for (idx k = 0; k < n; ++k) p[k] -= lr_ * g[k];
        return;
    }
    for (idx k = 0; k < n; ++k) {
        T vk = mu * v[k] + g[k];
        v[k] = vk;
        p[k] -= lr_ * (nesterov ? g[k] + mu * vk : vk);
    }
}

// Adam at step t >= 1; weight_decay > 0 shrinks p first, decoupled from the gradient (AdamW).
template <class T>
void adam_update(T* p, const T* g, T* m, T* v, idx n, long long t, double lr, double beta1, double beta2,
                 double eps, double weight_decay) {
    const T decay = T(1 - lr * weight_decay), b1 = T(beta1), b2 = T(beta2), c1 = T(1 - beta1), c2 = T(1 - beta2);
    const T step = T(lr / (1 - std::pow(beta1, double(t))));
    const T root_bias2 = T(std::sqrt(1 - std::pow(beta2, double(t)))), eps_ = T(eps);
    for (idx k = 0; k < n; ++k) {
        T pk = p[k] * decay;
        T mk = b1 * m[k] + c1 * g[k];
        T vk = b2 * v[k] + c2 * g[k] * g[k];
        m[k] = mk;
        v[k] = vk;
        p[k] = pk - step * mk / (std::sqrt(vk) / root_bias2 + eps_);
    }
}

template void sgd_update<float>(float*, const float*, float*, idx, double, double, bool);
template void sgd_update<double>(double*, const double*, double*, idx, double, double, bool);
template void adam_update<float>(float*, const float*, float*, float*, idx, long long, double, double, double, double, double);
template void adam_update<double>(double*, const double*, double*, double*, idx, long long, double, double, double, double, double);

}  // namespace pynn
