"""The Numba backend: the reference's kernels as parallel loops, compiled on first call.

Matrix products go to NumPy's BLAS outside the jit (``np.matmul(..., out=)``, so no SciPy is
needed). Every other pass is a jitted loop whose body is the reference's formula for one element,
except two that a NumPy ufunc does in place: ``linear`` (a copy) and ``tanh`` forward (NumPy's SIMD
tanh is several times faster than the libm ``tanhf`` a jitted loop calls, and equals the reference).
Arithmetic stays in the arrays' dtype: constants are cast to it, since Numba would otherwise
promote float32 math to float64 through a Python literal. The one exception is the scalar ``J``
of the losses, whose terms (computed in the dtype) are summed in float64.

Layout: a batch is ``(features, examples)`` and our workspaces are F-ordered, so the 2-D loops
are handed the transposed, examples-major view ``(examples, features)``: C-contiguous for those
workspaces, ``prange`` runs over examples and the inner loop walks contiguous memory.
Elementwise loops don't care which axis is which, so they get all their arrays untransposed when
all are C-ordered: both layouts then share one compiled specialisation. Other layouts (mixed, or
strided views) compile their own, slower but correct one. Nothing is ever copied.

Compilation is lazy (on the first call per dtype/layout) and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math
import types

import numba
import numpy as np
from numba import prange

from pynn.backends import ACTIVATION_KERNELS
from pynn.backends.reference import (ELU_ALPHA, INV_SQRT_2PI, LEAKY_SLOPE, SOFTPLUS_A_THRESHOLD, SOFTPLUS_THRESHOLD,
                                     SQRT1_2)

# No fastmath: the backends must agree with the reference to float tolerance.
_jit = numba.njit(cache=True, nogil=True)

# Numba's worker threads spin after each parallel region, and so do the workers of NumPy's
# OpenBLAS, which does every product here: on 2 cores, many small parallel passes between
# products made the two pools starve each other (25x slower), and a passive wait policy would
# have to be set process-wide (it leaked into PyTorch's OpenMP, halving its speed). So the pool
# is only started for passes big enough to repay it (several ms); smaller ones run a serial
# twin. Measured: at 1 << 18 the SGD pass of a 270k-parameter net still went parallel, and that
# one launch per step between BLAS calls cut training from ~50k to ~15k samples/s.
PARALLEL_MIN = 1 << 22  # elements in the first array argument


class _ParallelAboveThreshold:
    """A kernel compiled twice — parallel, and serial (prange runs as range) — called by size."""

    def __init__(self, fn):
        self.parallel = numba.njit(parallel=True, cache=True, nogil=True)(fn)
        # a distinct name keeps the two versions apart in Numba's on-disk cache
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                  fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        self.serial = _jit(twin)
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__

    def __call__(self, *args):
        big = getattr(args[0], "size", 0) >= PARALLEL_MIN
        return (self.parallel if big else self.serial)(*args)


_pjit = _ParallelAboveThreshold

_FEATURE_BLOCK = 128  # features per parallel task when summing over examples (db)


# ---------------------------------------------------------------- helpers
def _gemm(A, B, C):
    """C = A @ B by NumPy's BLAS, straight into C (BLAS wants C's unit stride on its last axis)."""
    if C.strides[1] == C.itemsize:
        np.matmul(A, B, out=C)
    else:  # C's unit stride is on its first axis (F-ordered): compute Cᵀ = Bᵀ Aᵀ instead
        np.matmul(B.T, A.T, out=C.T)


def _elementwise(*arrays):
    """Arrays for an elementwise loop: as they are if all are C-ordered, else all transposed."""
    if all(a.flags.c_contiguous for a in arrays):
        return arrays
    return tuple(a.T for a in arrays)


@_jit
def _clip(x, lo, hi):
    """np.clip for one element (a NaN stays NaN)."""
    return lo if x < lo else (hi if x > hi else x)


# ---------------------------------------------------------------- dense layer
@_pjit
def _add_bias(Zt, b):
    """Zt[j, i] += b[i], on the examples-major view of Z."""
    for j in prange(Zt.shape[0]):
        for i in range(Zt.shape[1]):
            Zt[j, i] += b[i]


@_pjit
def _sum_over_examples(dZt, db):
    """db[i] = Σ_j dZt[j, i]: blocks of features in parallel, examples summed in order."""
    d, h = dZt.shape
    for block in prange((h + _FEATURE_BLOCK - 1) // _FEATURE_BLOCK):
        lo = block * _FEATURE_BLOCK
        hi = min(lo + _FEATURE_BLOCK, h)
        for i in range(lo, hi):
            db[i] = 0
        for j in range(d):
            for i in range(lo, hi):
                db[i] += dZt[j, i]


def dense_forward(W, A_prev, b, Z):
    """Z = W A_prev + b.   W (h, n), A_prev (n, d), b (h, 1) -> Z (h, d)."""
    _gemm(W, A_prev, Z)
    _add_bias(Z.T, b[:, 0])


def dense_backward(dZ, A_prev, W, dW, db, dA_prev):
    """dW = dZ A_prevᵀ, db = dZ·1, dA_prev = Wᵀ dZ.   dZ (h, d) -> dW (h, n), db (h, 1), dA_prev (n, d)."""
    _gemm(dZ, A_prev.T, dW)
    _sum_over_examples(dZ.T, db[:, 0])
    if dA_prev is not None:
        _gemm(W.T, dZ, dA_prev)


# ---------------------------------------------------------------- activations
# Forward: A = act(Z). Backward: dZ = dA ⊙ act'(Z), with act' written in terms of A.
@_pjit
def _sigmoid_forward(Z, A):
    """A = 1 / (1 + e) if z >= 0 else e / (1 + e), with e = exp(-|z|)."""
    one = Z.dtype.type(1)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            e = np.exp(-abs(z))
            A[r, c] = one / (one + e) if z >= 0 else e / (one + e)


@_pjit
def _sigmoid_backward(dA, A, dZ):
    """dZ = dA a (1 - a)."""
    one = A.dtype.type(1)
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            a = A[r, c]
            dZ[r, c] = dA[r, c] * (a * (one - a))


@_pjit
def _tanh_backward(dA, A, dZ):
    """dZ = dA (1 - a²)."""
    one = A.dtype.type(1)
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            a = A[r, c]
            dZ[r, c] = dA[r, c] * (one - a * a)


@_pjit
def _relu_forward(Z, A):
    """A = z if z > 0 else 0."""
    zero = Z.dtype.type(0)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            A[r, c] = z if z > 0 else zero


@_pjit
def _relu_backward(dA, A, dZ):
    """dZ = dA if a > 0 else 0."""
    zero = A.dtype.type(0)
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            dZ[r, c] = dA[r, c] if A[r, c] > 0 else zero


@_pjit
def _leaky_relu_forward(Z, A):
    """A = z if z > 0 else 0.01 z."""
    slope = Z.dtype.type(LEAKY_SLOPE)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            A[r, c] = z if z > 0 else slope * z


@_pjit
def _leaky_relu_backward(dA, A, dZ):
    """dZ = dA if a > 0 else 0.01 dA."""
    slope = A.dtype.type(LEAKY_SLOPE)
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            da = dA[r, c]
            dZ[r, c] = da if A[r, c] > 0 else slope * da


@_pjit
def _elu_forward(Z, A):
    """A = z if z > 0 else α expm1(z)."""
    alpha = Z.dtype.type(ELU_ALPHA)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            A[r, c] = z if z > 0 else alpha * np.expm1(z)


@_pjit
def _elu_backward(dA, A, dZ):
    """dZ = da if a > 0 else da (a + α)."""
    alpha = A.dtype.type(ELU_ALPHA)
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            a = A[r, c]
            dZ[r, c] = dA[r, c] if a > 0 else dA[r, c] * (a + alpha)


@_pjit
def _gelu_forward(Z, A):
    """A = z Φ(z), Φ(z) = erfc(-z/√2) / 2."""
    half, s = Z.dtype.type(0.5), Z.dtype.type(SQRT1_2)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            A[r, c] = z * (half * math.erfc(-z * s))


@_pjit
def _gelu_backward(dA, Z, dZ):
    """dZ = da (Φ(z) + z φ(z)), from Z."""
    half, s, k = Z.dtype.type(0.5), Z.dtype.type(SQRT1_2), Z.dtype.type(INV_SQRT_2PI)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            dZ[r, c] = dA[r, c] * (half * math.erfc(-z * s) + z * (k * np.exp(-half * z * z)))


@_pjit
def _softplus_forward(Z, A):
    """A = z above the threshold, else max(z, 0) + log1p(exp(-|z|))."""
    zero, t = Z.dtype.type(0), Z.dtype.type(SOFTPLUS_THRESHOLD)
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            A[r, c] = z if z > t else max(z, zero) + np.log1p(np.exp(-abs(z)))


@_pjit
def _softplus_backward(dA, A, dZ):
    """dZ = da in the linear region, else da (1 - exp(-a))."""
    t = A.dtype.type(SOFTPLUS_A_THRESHOLD)
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            a = A[r, c]
            dZ[r, c] = dA[r, c] if a > t else dA[r, c] * -np.expm1(-a)


@_pjit
def _exp_backward(dA, A, dZ):
    """dZ = da a."""
    for r in prange(A.shape[0]):
        for c in range(A.shape[1]):
            dZ[r, c] = dA[r, c] * A[r, c]


@_pjit
def _softmax_forward(Zt, At):
    """At[j] = exp(Zt[j] - max) / Σ exp(Zt[j] - max), one example j per task."""
    for j in prange(Zt.shape[0]):
        zmax = Zt[j, 0]
        for k in range(1, Zt.shape[1]):
            zmax = max(zmax, Zt[j, k])
        s = Zt.dtype.type(0)
        for k in range(Zt.shape[1]):
            e = np.exp(Zt[j, k] - zmax)
            At[j, k] = e
            s += e
        for k in range(Zt.shape[1]):
            At[j, k] /= s


@_pjit
def _softmax_backward(dAt, At, dZt):
    """dZt[j] = At[j] (dAt[j] - Σ_k dAt[j, k] At[j, k]), one example j per task."""
    for j in prange(At.shape[0]):
        s = At.dtype.type(0)
        for k in range(At.shape[1]):
            s += dAt[j, k] * At[j, k]
        for k in range(At.shape[1]):
            dZt[j, k] = At[j, k] * (dAt[j, k] - s)


def sigmoid_forward(Z, A):
    """A = 1 / (1 + exp(-Z)), in the form that never overflows: e = exp(-|Z|)."""
    _sigmoid_forward(*_elementwise(Z, A))


def sigmoid_backward(dA, A, dZ):
    """dZ = dA ⊙ A (1 - A)."""
    _sigmoid_backward(*_elementwise(dA, A, dZ))


def tanh_forward(Z, A):
    """A = tanh(Z)."""
    np.tanh(Z, out=A)


def tanh_backward(dA, A, dZ):
    """dZ = dA ⊙ (1 - A²)."""
    _tanh_backward(*_elementwise(dA, A, dZ))


def relu_forward(Z, A):
    """A = max(Z, 0)."""
    _relu_forward(*_elementwise(Z, A))


def relu_backward(dA, A, dZ):
    """dZ = dA ⊙ [A > 0]   (the derivative at 0 is taken as 0, as PyTorch does)."""
    _relu_backward(*_elementwise(dA, A, dZ))


def leaky_relu_forward(Z, A):
    """A = Z if Z > 0 else 0.01 Z."""
    _leaky_relu_forward(*_elementwise(Z, A))


def leaky_relu_backward(dA, A, dZ):
    """dZ = dA if A > 0 else 0.01 dA."""
    _leaky_relu_backward(*_elementwise(dA, A, dZ))


def elu_forward(Z, A):
    """A = Z if Z > 0 else α (exp(Z) - 1), α = 1 (torch.nn.ELU)."""
    _elu_forward(*_elementwise(Z, A))


def elu_backward(dA, A, dZ):
    """dZ = dA if A > 0 else dA (A + α)   (α exp(Z) = A + α where Z <= 0)."""
    _elu_backward(*_elementwise(dA, A, dZ))


def gelu_forward(Z, A):
    """A = Z Φ(Z), Φ(Z) = erfc(-Z/√2) / 2: the exact (erf) GELU of torch.nn.GELU()."""
    _gelu_forward(*_elementwise(Z, A))


def gelu_backward(dA, Z, dZ):
    """dZ = dA ⊙ (Φ(Z) + Z φ(Z)), φ(Z) = exp(-Z²/2) / √(2π). Reads Z, not A: see BACKWARD_FROM_Z."""
    _gelu_backward(*_elementwise(dA, Z, dZ))


def softplus_forward(Z, A):
    """A = log(1 + exp(Z)) as max(Z, 0) + log1p(exp(-|Z|)), and A = Z above the threshold 20."""
    _softplus_forward(*_elementwise(Z, A))


def softplus_backward(dA, A, dZ):
    """dZ = dA σ(Z) = dA (1 - exp(-A)), and dZ = dA in the linear region."""
    _softplus_backward(*_elementwise(dA, A, dZ))


def exp_forward(Z, A):
    """A = exp(Z) (overflow gives inf, which the network reports as divergence)."""
    with np.errstate(over="ignore"):
        np.exp(Z, out=A)


def exp_backward(dA, A, dZ):
    """dZ = dA ⊙ A."""
    _exp_backward(*_elementwise(dA, A, dZ))


def linear_forward(Z, A):
    """A = Z."""
    np.copyto(A, Z)


def linear_backward(dA, A, dZ):
    """dZ = dA."""
    np.copyto(dZ, dA)


def softmax_forward(Z, A):
    """A[:, i] = exp(Z[:, i]) / Σ_k exp(Z[k, i]), shifted by the column max so exp never overflows."""
    _softmax_forward(Z.T, A.T)


def softmax_backward(dA, A, dZ):
    """dZ = A ⊙ (dA - Σ_k dA_k A_k), column by column (the softmax Jacobian times dA)."""
    _softmax_backward(dA.T, A.T, dZ.T)


# ---------------------------------------------------------------- losses
# J = (1/d) Σ_i L(yhat_i, y_i), each L summed over the outputs k. The _*_sum loops return the
# float64 sum of the per-element terms; the wrappers scale it.
@_pjit
def _mse_sum(Yhat, Y):
    """Σ (yhat - y)²."""
    s = 0.0
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            diff = Yhat[r, c] - Y[r, c]
            s += diff * diff
    return s


@_pjit
def _bce_sum(Yhat, Y):
    """Σ y log p + (1 - y) log(1 - p), p = yhat clipped to [eps, 1 - eps]."""
    one = Yhat.dtype.type(1)
    eps = np.finfo(Yhat.dtype).eps
    s = 0.0
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            p, y = _clip(Yhat[r, c], eps, one - eps), Y[r, c]
            s += y * np.log(p) + (one - y) * np.log(one - p)
    return s


@_pjit
def _cross_entropy_sum(Yhat, Y):
    """Σ y log p, p = yhat clipped to [eps, 1]."""
    one = Yhat.dtype.type(1)
    eps = np.finfo(Yhat.dtype).eps
    s = 0.0
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            s += Y[r, c] * np.log(_clip(Yhat[r, c], eps, one))
    return s


@_pjit
def _bce_logits_sum(Z, Y):
    """Σ max(z, 0) - y z + log(1 + exp(-|z|))."""
    zero = Z.dtype.type(0)
    s = 0.0
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            s += max(z, zero) - Y[r, c] * z + np.log1p(np.exp(-abs(z)))
    return s


@_pjit
def _cross_entropy_logits_sum(Zt, Yt):
    """Σ_j Σ_k yt[j, k] (logsumexp(Zt[j]) - Zt[j, k]), one example j per task."""
    s = 0.0
    for j in prange(Zt.shape[0]):
        zmax = Zt[j, 0]
        for k in range(1, Zt.shape[1]):
            zmax = max(zmax, Zt[j, k])
        se = Zt.dtype.type(0)
        for k in range(Zt.shape[1]):
            se += np.exp(Zt[j, k] - zmax)
        lse = zmax + np.log(se)
        for k in range(Zt.shape[1]):
            s += Yt[j, k] * (lse - Zt[j, k])
    return s


@_pjit
def _mae_sum(Yhat, Y):
    """Σ |yhat - y|."""
    s = 0.0
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            s += abs(Yhat[r, c] - Y[r, c])
    return s


@_pjit
def _huber_sum(Yhat, Y, delta):
    """Σ r²/2 if |r| <= δ else δ (|r| - δ/2)."""
    half = Yhat.dtype.type(0.5)
    s = 0.0
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            a = abs(Yhat[r, c] - Y[r, c])
            s += half * a * a if a <= delta else delta * (a - half * delta)
    return s


@_pjit
def _poisson_sum(Yhat, Y):
    """Σ yhat - y log p, p = yhat clipped to >= eps."""
    eps = np.finfo(Yhat.dtype).eps
    s = 0.0
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            yh = Yhat[r, c]
            s += yh - Y[r, c] * np.log(max(yh, eps))
    return s


@_pjit
def _poisson_logits_sum(Z, Y):
    """Σ exp(z) - y z."""
    s = 0.0
    for r in prange(Z.shape[0]):
        for c in range(Z.shape[1]):
            z = Z[r, c]
            s += np.exp(z) - Y[r, c] * z
    return s


@_pjit
def _mae_backward(Yhat, Y, d, dYhat):
    """dYhat = sign(yhat - y) / d, sign(0) = 0."""
    one, zero = Yhat.dtype.type(1), Yhat.dtype.type(0)
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            diff = Yhat[r, c] - Y[r, c]
            dYhat[r, c] = (one if diff > 0 else (-one if diff < 0 else zero)) / d


@_pjit
def _huber_backward(Yhat, Y, d, delta, dYhat):
    """dYhat = clip(yhat - y, -δ, δ) / d."""
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            dYhat[r, c] = _clip(Yhat[r, c] - Y[r, c], -delta, delta) / d


@_pjit
def _poisson_backward(Yhat, Y, d, dYhat):
    """dYhat = (1 - y / p) / d, p = yhat clipped to >= eps."""
    one = Yhat.dtype.type(1)
    eps = np.finfo(Yhat.dtype).eps
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            dYhat[r, c] = (one - Y[r, c] / max(Yhat[r, c], eps)) / d


@_pjit
def _diff_over_d(Yhat, Y, d, out):
    """out = (yhat - y) / d."""
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            out[r, c] = (Yhat[r, c] - Y[r, c]) / d


@_pjit
def _bce_backward(Yhat, Y, d, dYhat):
    """dYhat = (p - y) / (p (1 - p)) / d, p = yhat clipped to [eps, 1 - eps]."""
    one = Yhat.dtype.type(1)
    eps = np.finfo(Yhat.dtype).eps
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            p = _clip(Yhat[r, c], eps, one - eps)
            dYhat[r, c] = (p - Y[r, c]) / (p * (one - p)) / d


@_pjit
def _cross_entropy_backward(Yhat, Y, d, dYhat):
    """dYhat = -y / p / d, p = yhat clipped to [eps, 1]."""
    one = Yhat.dtype.type(1)
    eps = np.finfo(Yhat.dtype).eps
    for r in prange(Yhat.shape[0]):
        for c in range(Yhat.shape[1]):
            dYhat[r, c] = -Y[r, c] / _clip(Yhat[r, c], eps, one) / d


def _examples(Yhat):
    """d, the number of examples, in Yhat's dtype (the reference divides by it in that dtype)."""
    return Yhat.dtype.type(Yhat.shape[1])


def mse_forward(Yhat, Y):
    """L = 1/2 Σ_k (yhat_k - y_k)²."""
    return 0.5 * _mse_sum(*_elementwise(Yhat, Y)) / Yhat.shape[1]


def mse_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = (Yhat - Y) / d."""
    Yhat_, Y_, dYhat_ = _elementwise(Yhat, Y, dYhat)
    _diff_over_d(Yhat_, Y_, _examples(Yhat), dYhat_)


def bce_forward(Yhat, Y):
    """L = -Σ_k [y log yhat + (1 - y) log(1 - yhat)], yhat clipped to [eps, 1 - eps]."""
    return -_bce_sum(*_elementwise(Yhat, Y)) / Yhat.shape[1]


def bce_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = (yhat - y) / (yhat (1 - yhat)) / d, yhat clipped as in the forward."""
    Yhat_, Y_, dYhat_ = _elementwise(Yhat, Y, dYhat)
    _bce_backward(Yhat_, Y_, _examples(Yhat), dYhat_)


def cross_entropy_forward(Yhat, Y):
    """L = -Σ_k y_k log yhat_k, yhat clipped to [eps, 1]."""
    return -_cross_entropy_sum(*_elementwise(Yhat, Y)) / Yhat.shape[1]


def cross_entropy_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = -y / yhat / d, yhat clipped as in the forward."""
    Yhat_, Y_, dYhat_ = _elementwise(Yhat, Y, dYhat)
    _cross_entropy_backward(Yhat_, Y_, _examples(Yhat), dYhat_)


def mae_forward(Yhat, Y):
    """L = Σ_k |yhat_k - y_k|   (torch.nn.L1Loss)."""
    return _mae_sum(*_elementwise(Yhat, Y)) / Yhat.shape[1]


def mae_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = sign(Yhat - Y) / d, with sign(0) = 0 as PyTorch takes it."""
    Yhat_, Y_, dYhat_ = _elementwise(Yhat, Y, dYhat)
    _mae_backward(Yhat_, Y_, _examples(Yhat), dYhat_)


def huber_forward(Yhat, Y, delta=1.0):
    """L = Σ_k r²/2 if |r| <= δ else δ (|r| - δ/2), r = yhat_k - y_k   (torch.nn.HuberLoss(δ))."""
    return _huber_sum(*_elementwise(Yhat, Y), Yhat.dtype.type(delta)) / Yhat.shape[1]


def huber_backward(Yhat, Y, dYhat, delta=1.0):
    """∂J/∂Yhat = clip(Yhat - Y, -δ, δ) / d."""
    Yhat_, Y_, dYhat_ = _elementwise(Yhat, Y, dYhat)
    _huber_backward(Yhat_, Y_, _examples(Yhat), Yhat.dtype.type(delta), dYhat_)


def poisson_forward(Yhat, Y):
    """L = Σ_k yhat - y log yhat (the Poisson deviance up to terms free of yhat), yhat clipped to >= eps."""
    return _poisson_sum(*_elementwise(Yhat, Y)) / Yhat.shape[1]


def poisson_backward(Yhat, Y, dYhat):
    """∂J/∂Yhat = (1 - y / yhat) / d, yhat clipped as in the forward."""
    Yhat_, Y_, dYhat_ = _elementwise(Yhat, Y, dYhat)
    _poisson_backward(Yhat_, Y_, _examples(Yhat), dYhat_)


def poisson_logits_forward(Z, Y):
    """poisson of exp(Z) from the log-rate Z: L = Σ_k exp(z) - y z   (torch.nn.PoissonNLLLoss())."""
    return _poisson_logits_sum(*_elementwise(Z, Y)) / Z.shape[1]


def bce_logits_forward(Z, Y):
    """bce of sigmoid(Z) from the logits: L = Σ_k max(z, 0) - y z + log(1 + exp(-|z|))."""
    return _bce_logits_sum(*_elementwise(Z, Y)) / Z.shape[1]


def cross_entropy_logits_forward(Z, Y):
    """Cross-entropy of softmax(Z) from the logits: L = Σ_k y_k (logsumexp(z) - z_k)."""
    return _cross_entropy_logits_sum(Z.T, Y.T) / Z.shape[1]


def output_backward(Yhat, Y, dZ):
    """dZ = (Yhat - Y) / d: ∂J/∂Z for linear+mse, sigmoid+bce, softmax+cross_entropy and exp+poisson."""
    Yhat_, Y_, dZ_ = _elementwise(Yhat, Y, dZ)
    _diff_over_d(Yhat_, Y_, _examples(Yhat), dZ_)


# ---------------------------------------------------------------- one whole layer
# Two passes after the GEMM (bias, then activation), exactly as the reference defines them.
def layer_forward(W, A_prev, b, act, Z, A):
    """dense_forward then <act>_forward.   Z may be A."""
    dense_forward(W, A_prev, b, Z)
    _FORWARD[act](Z, A)


def layer_backward(dA, A, act, W, A_prev, dZ, dW, db, dA_prev):
    """<act>_backward then dense_backward.   dZ may be dA; dA_prev may be None."""
    _BACKWARD[act](dA, A, dZ)
    dense_backward(dZ, A_prev, W, dW, db, dA_prev)


# ---------------------------------------------------------------- optimizers (flat buffers)
# Hyperparameters arrive as Python floats; they are cast to the buffers' dtype (after any
# arithmetic the reference does on Python floats) so the loops compute in that dtype.
@_pjit
def _sgd(p, g, lr):
    """p <- p - lr g."""
    for k in prange(p.shape[0]):
        p[k] -= lr * g[k]


@_pjit
def _sgd_momentum(p, g, v, lr, momentum, nesterov):
    """v <- μ v + g; p <- p - lr (g + μ v) if nesterov else p - lr v."""
    for k in prange(p.shape[0]):
        v[k] = momentum * v[k] + g[k]
        p[k] -= lr * (g[k] + momentum * v[k] if nesterov else v[k])


@_pjit
def _adam(p, g, m, v, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, step, sqrt_bias2, eps):
    """p <- decay p; m, v <- averages of g, g²; p <- p - step m / (√v / √bias2 + eps)."""
    for k in prange(p.shape[0]):
        p[k] *= decay
        m[k] = beta1 * m[k] + one_minus_beta1 * g[k]
        v[k] = beta2 * v[k] + one_minus_beta2 * g[k] * g[k]
        p[k] -= step * m[k] / (np.sqrt(v[k]) / sqrt_bias2 + eps)


def sgd_update(p, g, v, lr, momentum, nesterov):
    """p <- p - lr g (the seed's update); with momentum v <- μ v + g, step g + μ v if nesterov else v."""
    T = p.dtype.type
    if momentum == 0:
        _sgd(p, g, T(lr))
        return
    _sgd_momentum(p, g, v, T(lr), T(momentum), bool(nesterov))


def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """Adam at step t >= 1, with decoupled weight decay (AdamW) when weight_decay > 0."""
    T = p.dtype.type
    bias1, bias2 = 1 - beta1**t, 1 - beta2**t
    _adam(p, g, m, v, T(1 - lr * weight_decay), T(beta1), T(1 - beta1), T(beta2), T(1 - beta2),
          T(lr / bias1), T(np.sqrt(bias2)), T(eps))



@_pjit
def _rmsprop(p, g, square_avg, grad_avg, buf, lr, alpha, one_minus_alpha, eps, weight_decay, momentum,
             centered, lerp_low, lerp_w):
    """The reference's rmsprop_update, one element at a time."""
    for k in prange(p.shape[0]):
        gk = g[k] + weight_decay * p[k] if weight_decay != 0 else g[k]
        s = alpha * square_avg[k] + one_minus_alpha * (gk * gk)
        square_avg[k] = s
        if centered:
            a = grad_avg[k]
            a = a + lerp_w * (gk - a) if lerp_low else gk - (gk - a) * lerp_w
            grad_avg[k] = a
            avg = np.sqrt(s - a * a) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum > 0:
            b = momentum * buf[k] + gk / avg
            buf[k] = b
            p[k] -= lr * b
        else:
            p[k] -= lr * (gk / avg)


@_pjit
def _rprop(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    """The reference's rprop_update, one element at a time."""
    zero = p.dtype.type(0)
    for k in prange(p.shape[0]):
        gk = g[k]
        s = gk * prev[k]
        st = step_size[k]
        if s > zero:
            st = st * eta_plus
        elif s < zero:
            st = st * eta_minus
            gk = zero
        st = min(max(st, step_min), step_max)
        step_size[k] = st
        if gk > zero:
            p[k] -= st
        elif gk < zero:
            p[k] += st
        prev[k] = gk


def rmsprop_update(p, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, centered):
    """RMSprop as ``torch.optim.RMSprop`` (see the reference)."""
    T = p.dtype.type
    w = 1 - alpha
    low = w < 0.5
    _rmsprop(p, g, square_avg, grad_avg if centered else p[:0], buf if momentum > 0 else p[:0], T(lr), T(alpha),
             T(1 - alpha), T(eps), T(weight_decay), T(momentum), bool(centered), low, T(w if low else 1 - w))


def rprop_update(p, g, prev, step_size, eta_minus, eta_plus, step_min, step_max):
    """iRprop− as ``torch.optim.Rprop`` (see the reference)."""
    T = p.dtype.type
    _rprop(p, g, prev, step_size, T(eta_minus), T(eta_plus), T(step_min), T(step_max))

_FORWARD = {a: globals()[f"{a}_forward"] for a in ACTIVATION_KERNELS}
_BACKWARD = {a: globals()[f"{a}_backward"] for a in ACTIVATION_KERNELS}


# an earlier pynn.set_num_threads(n) applies to Numba's pool too
from pynn._threads import on_numba_import  # noqa: E402

on_numba_import()


# ---------------------------------------------------------------- dropout (see reference.dropout_mask)
@_jit
def _splitmix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@_jit
def _dropout_mask(seed, step, layer, p, M, h, d):
    key = _splitmix64(_splitmix64(_splitmix64(np.uint64(seed)) + np.uint64(step)) + np.uint64(layer))
    scale = M.dtype.type(1) / M.dtype.type(1.0 - p)
    zero = M.dtype.type(0)
    for j in range(d):
        for i in range(h):
            k = np.uint64(i + j * h)
            u = np.float64(_splitmix64(key + (k + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11))
            M[i, j] = zero if u * 2.0**-53 < p else scale


def dropout_mask(seed, step, layer, p, M):
    """M (h, d) = inverted-dropout mask for (seed, step, layer): 0 with probability p, else 1/(1 - p)."""
    _dropout_mask(seed, step, layer, p, M, M.shape[0], M.shape[1])
