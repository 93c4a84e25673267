// Every kernel of the compiled core, templated on T = float or double.
// Shapes use the seed's letters: a batch is (features, examples), d = number of examples.
// Kernels trust their arguments: bindings.cpp checks shapes, strides and aliasing first.
#pragma once
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "view.hpp"

namespace pynn {

// Elementwise kernels compiled twice, for AVX2 (x86-64-v3) and baseline x86-64; the loader picks
// one per machine. Both clones compute the same IEEE operations per element in the same order
// (the core builds with -ffp-contract=off, so the AVX2 clone fuses no multiply-add, and FP
// reductions are never reordered without -ffast-math): wider vectors change speed, not results.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PYNN_SIMD __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PYNN_SIMD
#endif

enum class Act { sigmoid, tanh, relu, leaky_relu, elu, gelu, softplus, exp, linear, softmax };
// The order is pynn.losses.LOSSES: Python passes a loss as its index there.
enum class Loss { mse, bce, cross_entropy, mae, huber, poisson };

inline Act parse_act(const std::string& s) {
    if (s == "sigmoid") return Act::sigmoid;
    if (s == "tanh") return Act::tanh;
    if (s == "relu") return Act::relu;
    if (s == "leaky_relu") return Act::leaky_relu;
    if (s == "elu") return Act::elu;
    if (s == "gelu") return Act::gelu;
    if (s == "softplus") return Act::softplus;
    if (s == "exp") return Act::exp;
    if (s == "linear") return Act::linear;
    if (s == "softmax") return Act::softmax;
    throw std::invalid_argument("act must be one of sigmoid, tanh, relu, leaky_relu, elu, gelu, softplus, exp, linear, softmax; got '" + s + "'");
}

constexpr double LEAKY_SLOPE = 0.01;  // PyTorch's default negative slope
constexpr double ELU_ALPHA = 1.0;     // torch.nn.ELU's default alpha
constexpr double SOFTPLUS_THRESHOLD = 20.0;  // torch.nn.Softplus: A = Z above it
// The same boundary seen from A: softplus(20) = 20 + log1p(exp(-20)) (20 in float)
constexpr double SOFTPLUS_A_THRESHOLD = 20.000000002061153;
constexpr double SQRT1_2 = 0.70710678118654752440;
constexpr double INV_SQRT_2PI = 0.39894228040143267794;

// The backward of these activations reads Z, not A (gelu: A does not determine Z), so callers
// keep Z for those layers and pass it in the place of A.
inline bool backward_from_z(Act a) { return a == Act::gelu; }

// One element of each activation, and its derivative written in terms of a = act(z).
// The formulas are the reference's, term for term, so float64 agrees to the last bits.
template <class T>
inline T sigmoid(T z) {
    T e = std::exp(-std::abs(z));  // exp of a non-positive number never overflows
    return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// --- dense.cpp
// Z (h, d) = W (h, n) A_prev (n, d) + b (h, 1)
template <class T> void dense_forward(CMat<T> W, CMat<T> A_prev, CMat<T> b, Mat<T> Z);
// dW (h, n) = dZ A_prevᵀ;  db (h, 1) = dZ·1;  dA_prev (n, d) = Wᵀ dZ unless dA_prev is null
template <class T> void dense_backward(CMat<T> dZ, CMat<T> A_prev, CMat<T> W, Mat<T> dW, Mat<T> db, const Mat<T>* dA_prev);

// db (h, 1) = dZ·1 (accumulated in double)
template <class T> void row_sums(CMat<T> dZ, Mat<T> db);

// --- activations.cpp
// A = act(Z), elementwise (softmax: over each column). A may be Z.
template <class T> void act_forward(Act act, CMat<T> Z, Mat<T> A);
// dZ = dA ⊙ act'(Z), from A (softmax: A ⊙ (dA - Σ_k dA_k A_k) per column; gelu: from Z, passed
// as A). dZ may be dA.
template <class T> void act_backward(Act act, CMat<T> dA, CMat<T> A, Mat<T> dZ);
// Z = W A_prev + b, then A = act(Z) in the same pass over Z as the bias. Z may be A. For softmax,
// lse (d values, or null) receives each column's log Σ exp(z), for cross_entropy_lse_forward.
template <class T> void layer_forward(CMat<T> W, CMat<T> A_prev, CMat<T> b, Act act, Mat<T> Z, Mat<T> A,
                                      T* lse = nullptr);
// dZ = dA ⊙ act'(A), with db = dZ·1 in the same pass; then dW, dA_prev as dense_backward.
template <class T> void layer_backward(CMat<T> dA, CMat<T> A, Act act, CMat<T> W, CMat<T> A_prev, Mat<T> dZ, Mat<T> dW, Mat<T> db, const Mat<T>* dA_prev);

// --- losses.cpp   (Yhat, Y, Z: (m, d); J = (1/d) Σ_i L_i, L summed over the m outputs)
// delta is Huber's threshold; the other losses ignore it.
template <class T> double loss_forward(Loss loss, CMat<T> Yhat, CMat<T> Y, double delta = 1.0);
template <class T> void loss_backward(Loss loss, CMat<T> Yhat, CMat<T> Y, Mat<T> dYhat, double delta = 1.0);
template <class T> double bce_logits_forward(CMat<T> Z, CMat<T> Y);
template <class T> double cross_entropy_logits_forward(CMat<T> Z, CMat<T> Y);
// The same value from each column's log Σ exp(z) as layer_forward left it (no exp, no log).
template <class T> double cross_entropy_lse_forward(CMat<T> Z, CMat<T> Y, const T* lse);
// Σ_k exp(z) - y z: poisson of exp(Z), from the log-rate Z
template <class T> double poisson_logits_forward(CMat<T> Z, CMat<T> Y);
// dZ = (Yhat - Y) / d: the output gradient of the canonical pairs.
template <class T> void output_backward(CMat<T> Yhat, CMat<T> Y, Mat<T> dZ);

// --- dropout.cpp
// M (h, d) = inverted-dropout mask for (seed, step, layer): 0 with probability p, else 1/(1-p).
template <class T> void dropout_mask(uint64_t seed, uint64_t step, uint64_t layer, double p, Mat<T> M);

// --- optim.cpp   (flat buffers of n parameters)
template <class T> bool sgd_update(T* p, const T* g, T* v, idx n, double lr, double momentum, bool nesterov);
// save (3n values, or null): receives p, m and v as they were, in the same pass.
template <class T> bool adam_update(T* p, const T* g, T* m, T* v, idx n, long long t, double lr, double beta1,
                                    double beta2, double eps, double weight_decay, T* save = nullptr);
// gavg is read only when centered, buf only when momentum > 0 (either may be null otherwise).
template <class T> bool rmsprop_update(T* p, const T* g, T* sq, T* gavg, T* buf, idx n, double lr, double alpha,
                                       double eps, double weight_decay, double momentum, bool centered);
template <class T> bool rprop_update(T* p, const T* g, T* prev, T* step, idx n, double eta_minus, double eta_plus,
                                     double step_min, double step_max);
template <class T> void clip_gradient(T* g, idx n, double value, double max_norm);
// True if all n values are finite (all_finite of model.hpp, compiled per CPU level).
template <class T> bool finite_n(const T* p, idx n);
// A layer's weight penalty l1 Σ|W| + l2/2 Σ W² over its n weights, and dW += l1 sign(W) + l2 W.
template <class T> double penalty_forward(const T* W, idx n, double l1, double l2);
template <class T> void penalty_backward(const T* W, idx n, double l1, double l2, T* dW);
// Both in one pass: dW gains the gradient and the penalty is returned (the same value and dW).
template <class T> double penalty_step(const T* W, idx n, double l1, double l2, T* dW);

}  // namespace pynn
