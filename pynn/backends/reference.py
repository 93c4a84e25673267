"""The NumPy reference: each kernel is the seed's equation, written for clarity, never for speed.

This module is the oracle every other backend is tested against. Arrays are
``(features, examples)``; ``d`` is the number of examples. Outputs are written with ``out[...] =``
so the caller's buffers are filled, never replaced.
"""

from __future__ import annotations

import math

import numpy as np

LEAKY_SLOPE = 0.01  # PyTorch's default negative slope
ELU_ALPHA = 1.0  # torch.nn.ELU's default alpha
SOFTPLUS_THRESHOLD = 20.0  # torch.nn.Softplus(beta=1, threshold=20): linear (A = Z) above it
# The same boundary seen from A: softplus(20) = 20 + log1p(exp(-20)); every A above it came from
# the linear region. (In float32 it rounds to 20.)
SOFTPLUS_A_THRESHOLD = SOFTPLUS_THRESHOLD + math.log1p(math.exp(-SOFTPLUS_THRESHOLD))
SQRT1_2 = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)

# NumPy has no erfc ufunc (SciPy is not a dependency): the reference applies the C library's,
# one element at a time, in float64.
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _eps(a: np.ndarray) -> float:
    # Probabilities are clipped to [eps, 1 - eps] on the general (non-logit) loss path.
    return float(np.finfo(a.dtype).eps)


# ---------------------------------------------------------------- dense layer
def dense_forward(W, A_prev, b, Z):
    """Z = W A_prev + b.   W (h, n), A_prev (n, d), b (h, 1) -> Z (h, d)."""
    Z[...] = W @ A_prev + b


def dense_backward(dZ, A_prev, W, dW, db, dA_prev):
    """dW = dZ A_prevᵀ, db = dZ·1, dA_prev = Wᵀ dZ.   dZ (h, d) -> dW (h, n), db (h, 1), dA_prev (n, d)."""
    dW[...] = dZ @ A_prev.T
    db[...] = dZ.sum(axis=1, keepdims=True)
    if dA_prev is not None:
        dA_prev[...] = W.T @ dZ


# ---------------------------------------------------------------- activations
# Forward: A = act(Z). Backward: dZ = dA ⊙ act'(Z), with act' written in terms of A.
def sigmoid_forward(Z, A):
    """A = 1 / (1 + exp(-Z)), in the form that never overflows: e = exp(-|Z|)."""
    e = np.exp(-np.abs(Z))
    A[...] = np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dA, A, dZ):
    """dZ = dA ⊙ A (1 - A)."""
    dZ[...] = dA * (A * (1 - A))


def tanh_forward(Z, A):
    """A = tanh(Z)."""
    A[...] = np.tanh(Z)


def tanh_backward(dA, A, dZ):
    """dZ = dA ⊙ (1 - A²)."""
    dZ[...] = dA * (1 - A * A)


def relu_forward(Z, A):
    """A = max(Z, 0)."""
    A[...] = np.where(Z > 0, Z, 0)


def relu_backward(dA, A, dZ):
    """dZ = dA ⊙ [A > 0]   (the derivative at 0 is taken as 0, as PyTorch does)."""
    dZ[...] = np.where(A > 0, dA, 0)


def leaky_relu_forward(Z, A):
    """A = Z if Z > 0 else 0.01 Z."""
    A[...] = np.where(Z > 0, Z, LEAKY_SLOPE * Z)


def leaky_relu_backward(dA, A, dZ):
    """dZ = dA if A > 0 else 0.01 dA."""
    dZ[...] = np.where(A > 0, dA, LEAKY_SLOPE * dA)


def elu_forward(Z, A):
    """A = Z if Z > 0 else α (exp(Z) - 1), α = 1 (torch.nn.ELU)."""
    A[...] = np.where(Z > 0, Z, ELU_ALPHA * np.expm1(np.minimum(Z, 0)))


def elu_backward(dA, A, dZ):
    """dZ = dA if A > 0 else dA (A + α)   (α exp(Z) = A + α where Z <= 0)."""
    dZ[...] = np.where(A > 0, dA, dA * (A + ELU_ALPHA))


def gelu_forward(Z, A):
    """A = Z Φ(Z), Φ(Z) = erfc(-Z/√2) / 2: the exact (erf) GELU of torch.nn.GELU()."""
    A[...] = Z * (0.5 * _erfc(-Z * SQRT1_2))


def gelu_backward(dA, Z, dZ):
    """dZ = dA ⊙ (Φ(Z) + Z φ(Z)), φ(Z) = exp(-Z²/2) / √(2π). Reads Z, not A: see BACKWARD_FROM_Z."""
    dZ[...] = dA * (0.5 * _erfc(-Z * SQRT1_2) + Z * (INV_SQRT_2PI * np.exp(-0.5 * Z * Z)))


def softplus_forward(Z, A):
    """A = log(1 + exp(Z)) as max(Z, 0) + log1p(exp(-|Z|)), and A = Z above the threshold 20."""
    A[...] = np.where(Z > SOFTPLUS_THRESHOLD, Z, np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z))))


def softplus_backward(dA, A, dZ):
    """dZ = dA σ(Z) = dA (1 - exp(-A)), and dZ = dA in the linear region."""
    dZ[...] = np.where(A > SOFTPLUS_A_THRESHOLD, dA, dA * -np.expm1(-A))


def exp_forward(Z, A):
    """A = exp(Z) (overflow gives inf, which the network reports as divergence)."""
    with np.errstate(over="ignore"):
        A[...] = np.exp(Z)


def exp_backward(dA, A, dZ):
    """dZ = dA ⊙ A."""
    dZ[...] = dA * A


def linear_forward(Z, A):
    """A = Z."""
    A[...] = Z


def linear_backward(dA, A, dZ):
    """dZ = dA."""
    dZ[...] = dA


def softmax_forward(Z, A):
    """A[:, i] = exp(Z[:, i]) / Σ_k exp(Z[k, i]), shifted by the column max so exp never overflows."""
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    A[...] = e / e.sum(axis=0, keepdims=True)


def softmax_backward(dA, A, dZ):
    """dZ = A ⊙ (dA - Σ_k dA_k A_k), column by column (the softmax Jacobian times dA)."""
    dZ[...] = A * (dA - (dA * A).sum(axis=0, keepdims=True))


# ---------------------------------------------------------------- losses
# J = (1/d) Σ_i L(yhat_i, y_i), each L summed over the outputs k.
def mse_forward(Yhat, Y):
    """L = 1/2 Σ_k (yhat_k - y_k)²."""
    d = Yhat.shape[1]
    return float(0.5 * np.sum((Yhat - Y) ** 2) / d)


def mse_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = (Yhat - Y) / d."""
    dYhat[...] = (Yhat - Y) / Yhat.shape[1]


def bce_forward(Yhat, Y):
    """L = -Σ_k [y log yhat + (1 - y) log(1 - yhat)], yhat clipped to [eps, 1 - eps]."""
    d, eps = Yhat.shape[1], _eps(Yhat)
    P = np.clip(Yhat, eps, 1 - eps)
    return float(-np.sum(Y * np.log(P) + (1 - Y) * np.log(1 - P)) / d)


def bce_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = (yhat - y) / (yhat (1 - yhat)) / d, yhat clipped as in the forward."""
    d, eps = Yhat.shape[1], _eps(Yhat)
    P = np.clip(Yhat, eps, 1 - eps)
    dYhat[...] = (P - Y) / (P * (1 - P)) / d


def cross_entropy_forward(Yhat, Y):
    """L = -Σ_k y_k log yhat_k, yhat clipped to [eps, 1]."""
    d, eps = Yhat.shape[1], _eps(Yhat)
    return float(-np.sum(Y * np.log(np.clip(Yhat, eps, 1))) / d)


def cross_entropy_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = -y / yhat / d, yhat clipped as in the forward."""
    d, eps = Yhat.shape[1], _eps(Yhat)
    dYhat[...] = -Y / np.clip(Yhat, eps, 1) / d


def mae_forward(Yhat, Y):
    """L = Σ_k |yhat_k - y_k|   (torch.nn.L1Loss)."""
    d = Yhat.shape[1]
    return float(np.sum(np.abs(Yhat - Y)) / d)


def mae_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = sign(Yhat - Y) / d, with sign(0) = 0 as PyTorch takes it."""
    dYhat[...] = np.sign(Yhat - Y) / Yhat.shape[1]


def huber_forward(Yhat, Y, delta=1.0):
    """L = Σ_k r²/2 if |r| <= δ else δ (|r| - δ/2), r = yhat_k - y_k   (torch.nn.HuberLoss(δ))."""
    d, r = Yhat.shape[1], np.abs(Yhat - Y)
    return float(np.sum(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta))) / d)


def huber_backward(Yhat, Y, dYhat, delta=1.0):
    """∂J/∂Yhat = clip(Yhat - Y, -δ, δ) / d."""
    dYhat[...] = np.clip(Yhat - Y, -delta, delta) / Yhat.shape[1]


def poisson_forward(Yhat, Y):
    """L = Σ_k yhat - y log yhat (the Poisson deviance up to terms free of yhat), yhat clipped to >= eps."""
    d, eps = Yhat.shape[1], _eps(Yhat)
    return float(np.sum(Yhat - Y * np.log(np.maximum(Yhat, eps))) / d)


def poisson_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = (1 - y / yhat) / d, yhat clipped as in the forward."""
    d, eps = Yhat.shape[1], _eps(Yhat)
    dYhat[...] = (1 - Y / np.maximum(Yhat, eps)) / d


def bce_logits_forward(Z, Y):
    """bce of sigmoid(Z) from the logits: L = Σ_k max(z, 0) - y z + log(1 + exp(-|z|))."""
    d = Z.shape[1]
    return float(np.sum(np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z)))) / d)


def cross_entropy_logits_forward(Z, Y):
    """Cross-entropy of softmax(Z) from the logits: L = Σ_k y_k (logsumexp(z) - z_k)."""
    d = Z.shape[1]
    zmax = Z.max(axis=0, keepdims=True)
    lse = zmax + np.log(np.exp(Z - zmax).sum(axis=0, keepdims=True))
    return float(np.sum(Y * (lse - Z)) / d)


def poisson_logits_forward(Z, Y):
    """poisson of exp(Z) from the log-rate Z: L = Σ_k exp(z) - y z   (torch.nn.PoissonNLLLoss())."""
    d = Z.shape[1]
    with np.errstate(over="ignore"):
        return float(np.sum(np.exp(Z) - Y * Z) / d)


def output_backward(Yhat, Y, dZ):
    """dZ = (Yhat - Y) / d: ∂J/∂Z for linear+mse, sigmoid+bce, softmax+cross_entropy and exp+poisson."""
    dZ[...] = (Yhat - Y) / Yhat.shape[1]


# ---------------------------------------------------------------- dropout
# A counter-based generator: element k of a mask is a pure function of (seed, step, layer, k), so
# every backend (csrc/dropout.cpp, numba_kernels.py) draws the same masks without shared state.
# The hash is splitmix64's finaliser; all arithmetic is modulo 2^64.
_GOLDEN, _M64 = 0x9E3779B97F4A7C15, (1 << 64) - 1


def _splitmix64_int(z):
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def dropout_mask(seed, step, layer, p, M):
    """M (h, d) = inverted-dropout mask: 0 where u_k < p, else 1/(1 - p), with u_k the top 53 bits
    of splitmix64(key + (k + 1) * golden) / 2^53, k = i + j h, key = mix(mix(mix(seed) + step) + layer)."""
    key = _splitmix64_int(_splitmix64_int(_splitmix64_int(seed) + step) + layer)
    h, d = M.shape
    u64 = np.uint64
    k = np.arange(h * d, dtype=u64).reshape(d, h).T  # column-major element index
    z = u64(key) + (k + u64(1)) * u64(_GOLDEN)  # uint64 arrays wrap modulo 2^64
    z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
    z = z ^ (z >> u64(31))
    u = (z >> u64(11)).astype(np.float64) * 2.0**-53
    M[...] = np.where(u < p, 0, M.dtype.type(1) / M.dtype.type(1.0 - p))  # 1/(1-p) in M's dtype, as torch


# ---------------------------------------------------------------- one whole layer
def layer_forward(W, A_prev, b, act, Z, A):
    """dense_forward then <act>_forward.   Z may be A."""
    dense_forward(W, A_prev, b, Z)
    globals()[f"{act}_forward"](Z, A)


def layer_backward(dA, A, act, W, A_prev, dZ, dW, db, dA_prev):
    """<act>_backward then dense_backward.   dZ may be dA; dA_prev may be None."""
    globals()[f"{act}_backward"](dA, A, dZ)
    dense_backward(dZ, A_prev, W, dW, db, dA_prev)


# ---------------------------------------------------------------- optimizers (flat buffers)
def sgd_update(p, g, v, lr, momentum, nesterov):
    """p <- p - lr g (the seed's update); with momentum v <- μ v + g, step g + μ v if nesterov else v."""
    if momentum == 0:
        p -= lr * g
        return
    v[...] = momentum * v + g
    p -= lr * (g + momentum * v if nesterov else v)


def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """Adam at step t >= 1, with decoupled weight decay (AdamW) when weight_decay > 0."""
    p *= 1 - lr * weight_decay
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    bias1, bias2 = 1 - beta1**t, 1 - beta2**t
    p -= (lr / bias1) * m / (np.sqrt(v) / math.sqrt(bias2) + eps)


def rmsprop_update(p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered):
    """RMSprop as ``torch.optim.RMSprop``: s <- α s + (1-α) g²; p <- p - lr g / (√s + eps).

    ``g`` gains ``weight_decay p`` first (L2, coupled). Centered: ḡ <- lerp(ḡ, g, 1-α) and the
    root is √(s - ḡ²). Momentum μ: buf <- μ buf + g / (root + eps); p <- p - lr buf.
    ``grad_avg`` is unused (may be empty) unless centered, ``buf`` unless momentum > 0."""
    if weight_decay != 0:
        g = g + weight_decay * p
    square_avg[...] = alpha * square_avg + (1 - alpha) * (g * g)
    if centered:
        w = 1 - alpha  # torch's lerp: the form it picks by the weight's size
        grad_avg[...] = grad_avg + w * (g - grad_avg) if w < 0.5 else g - (g - grad_avg) * (1 - w)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf[...] = momentum * buf + g / avg
        p -= lr * buf
    else:
        p -= lr * (g / avg)


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    """iRprop− as ``torch.optim.Rprop``: each step size grows by eta_plus where g keeps its sign
    (g·prev > 0), shrinks by eta_minus where it flips — and there g counts as 0 for this step —
    clipped to [step_min, step_max]; p <- p - sign(g) step_size; prev <- g."""
    T = p.dtype.type
    s = g * prev
    factor = np.where(s > 0, T(eta_plus), np.where(s < 0, T(eta_minus), T(1)))
    step_size[...] = np.clip(step_size * factor, T(step_min), T(step_max))
    g = np.where(s < 0, T(0), g)
    p -= np.sign(g) * step_size
    prev[...] = g
