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

enum class Act { sigmoid, tanh, relu, leaky_relu, linear, softmax };
enum class Loss { mse, bce, cross_entropy };

inline Act parse_act(const std::string& s) {
    if (s == "sigmoid") return Act::sigmoid;
    if (s == "tanh") return Act::tanh;
    if (s == "relu") return Act::relu;
    if (s == "leaky_relu") return Act::leaky_relu;
    if (s == "linear") return Act::linear;
    if (s == "softmax") return Act::softmax;
    throw std::invalid_argument("act must be one of sigmoid, tanh, relu, leaky_relu, linear, softmax; got '" + s + "'");
}

constexpr double LEAKY_SLOPE = 0.01;  // PyTorch's default negative slope

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
// dZ = dA ⊙ act'(Z), from A (softmax: A ⊙ (dA - Σ_k dA_k A_k) per column). dZ may be dA.
template <class T> void act_backward(Act act, CMat<T> dA, CMat<T> A, Mat<T> dZ);
// Z = W A_prev + b, then A = act(Z) in the same pass over Z as the bias. Z may be A.
template <class T> void layer_forward(CMat<T> W, CMat<T> A_prev, CMat<T> b, Act act, Mat<T> Z, Mat<T> A);
// dZ = dA ⊙ act'(A), with db = dZ·1 in the same pass; then dW, dA_prev as dense_backward.
template <class T> void layer_backward(CMat<T> dA, CMat<T> A, Act act, CMat<T> W, CMat<T> A_prev, Mat<T> dZ, Mat<T> dW, Mat<T> db, const Mat<T>* dA_prev);

// --- losses.cpp   (Yhat, Y, Z: (m, d); J = (1/d) Σ_i L_i, L summed over the m outputs)
template <class T> double loss_forward(Loss loss, CMat<T> Yhat, CMat<T> Y);
template <class T> void loss_backward(Loss loss, CMat<T> Yhat, CMat<T> Y, Mat<T> dYhat);
template <class T> double bce_logits_forward(CMat<T> Z, CMat<T> Y);
template <class T> double cross_entropy_logits_forward(CMat<T> Z, CMat<T> Y);
// dZ = (Yhat - Y) / d: the output gradient of the three canonical pairs.
template <class T> void output_backward(CMat<T> Yhat, CMat<T> Y, Mat<T> dZ);

// --- optim.cpp   (flat buffers of n parameters)
template <class T> bool sgd_update(T* p, const T* g, T* v, idx n, double lr, double momentum, bool nesterov);
template <class T> bool adam_update(T* p, const T* g, T* m, T* v, idx n, long long t, double lr, double beta1,
                                    double beta2, double eps, double weight_decay);
template <class T> void clip_gradient(T* g, idx n, double value, double max_norm);
// A layer's weight penalty l1 Σ|W| + l2/2 Σ W² over its n weights, and dW += l1 sign(W) + l2 W.
template <class T> double penalty_forward(const T* W, idx n, double l1, double l2);
template <class T> void penalty_backward(const T* W, idx n, double l1, double l2, T* dW);

}  // namespace pynn
