"""The Numba backend's fused path, for small networks: a whole training step — and whole runs of
batches — in one jitted call, as the compiled core's ``Model`` does (same methods, so
``Network`` drives both alike).

For small layers the per-kernel path spends its time entering Numba and NumPy (a dozen calls a
step), not computing; here the products are plain loops in one compiled function. The loops
run serially: at these sizes starting threads costs more than it saves, and it keeps this path
clear of the thread-pool contention that NumPy's BLAS and Numba's pool have on 2 cores. Large
networks keep the per-kernel path, whose products run on NumPy's BLAS.

Activations live features-major, ``(h, d)`` C-ordered, so the inner loops run over examples:
independent lanes, no floating-point reduction to reorder. Formulas are the reference's.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from pynn.backends.numba_kernels import _dropout_mask, _jit  # imports Numba with the pool's wait policy set
from pynn.backends.reference import (ELU_ALPHA, INV_SQRT_2PI, LEAKY_SLOPE, SOFTPLUS_A_THRESHOLD, SOFTPLUS_THRESHOLD,
                                     SQRT1_2)

SIGMOID, TANH, RELU, LEAKY_RELU, ELU, GELU, SOFTPLUS, EXP, LINEAR, SOFTMAX = range(10)
ACT_CODES = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU, "gelu": GELU,
             "softplus": SOFTPLUS, "exp": EXP, "linear": LINEAR, "softmax": SOFTMAX}
MSE, BCE, CROSS_ENTROPY, MAE, HUBER, POISSON = range(6)  # the order of pynn.losses.LOSSES
NO_UPDATE, SGD, ADAM, RMSPROP, RPROP = range(5)  # NO_UPDATE: gradients only (run_batches(update=False))

# Above this many parameters the products dominate and NumPy's BLAS (the per-kernel path) wins.
MAX_PARAMS = 20_000


class InvalidInput(ValueError):
    """An argument the fused path does not take as it is; Network validates it fully instead."""


# ---------------------------------------------------------------- one element
@_jit
def _consts(a):
    """The activations' constants in a's dtype (a Python float would promote float32 math)."""
    T = a.dtype.type
    return (T(1), T(0), T(LEAKY_SLOPE), T(ELU_ALPHA), T(0.5), T(SQRT1_2), T(INV_SQRT_2PI), T(SOFTPLUS_THRESHOLD),
            T(SOFTPLUS_A_THRESHOLD))


@_jit
def _value(act, z, c):
    one, zero, slope, alpha, half, sqrt1_2, _, threshold, _ = c
    if act == SIGMOID:
        e = np.exp(-abs(z))
        return one / (one + e) if z >= zero else e / (one + e)
    if act == TANH:
        return np.tanh(z)
    if act == RELU:
        return z if z > zero else zero
    if act == LEAKY_RELU:
        return z if z > zero else slope * z
    if act == ELU:
        return z if z > zero else alpha * np.expm1(z)
    if act == GELU:
        return z * (half * math.erfc(-z * sqrt1_2))
    if act == SOFTPLUS:
        return z if z > threshold else max(z, zero) + np.log1p(np.exp(-abs(z)))
    if act == EXP:
        return np.exp(z)
    return z


@_jit
def _grad(act, da, a, c):
    """dz = da ⊙ act'(z), from a = act(z) — or, for gelu, from a = z (the caller passes Z)."""
    one, zero, slope, alpha, half, sqrt1_2, inv_sqrt_2pi, _, a_threshold = c
    if act == SIGMOID:
        return da * (a * (one - a))
    if act == TANH:
        return da * (one - a * a)
    if act == RELU:
        return da if a > zero else zero
    if act == LEAKY_RELU:
        return da if a > zero else slope * da
    if act == ELU:
        return da if a > zero else da * (a + alpha)
    if act == GELU:
        return da * (half * math.erfc(-a * sqrt1_2) + a * (inv_sqrt_2pi * np.exp(-half * a * a)))
    if act == SOFTPLUS:
        return da if a > a_threshold else da * -np.expm1(-a)
    if act == EXP:
        return da * a
    return da


# ---------------------------------------------------------------- views into the flat buffers
@_jit
def _W(buf, offs, sizes, l):
    h, n = sizes[l + 1], sizes[l]
    return buf[offs[l]:offs[l] + h * n].reshape((h, n))


@_jit
def _b(buf, offs, sizes, l):
    h, n = sizes[l + 1], sizes[l]
    return buf[offs[l] + h * n:offs[l] + h * n + h]


@_jit
def _act_view(ws, sizes, l, d):
    """A(l): (h_l, d) C-ordered at the start of the workspace, layer after layer."""
    o = 0
    for k in range(l):
        o += sizes[k + 1] * d
    return ws[o:o + sizes[l + 1] * d].reshape((sizes[l + 1], d))


# ---------------------------------------------------------------- the products
@_jit
def _affine(W, b, P, A, d):
    """A = W P + b, a row of outputs at a time; the inner loop runs over the examples."""
    h, n = W.shape
    for i in range(h):
        for j in range(d):
            A[i, j] = b[i]
        for k in range(n):
            w = W[i, k]
            for j in range(d):
                A[i, j] += w * P[k, j]


@_jit
def _weight_grads(dZ, P, dW, db, d):
    """db = dZ·1, dW = dZ Pᵀ."""
    h, n = dW.shape
    zero = dZ.dtype.type(0)
    for i in range(h):
        s = zero
        for j in range(d):
            s += dZ[i, j]
        db[i] = s
        for k in range(n):
            s = zero
            for j in range(d):
                s += dZ[i, j] * P[k, j]
            dW[i, k] = s


@_jit
def _input_grad(W, dZ, dP, d):
    """dP = Wᵀ dZ, accumulated a row of W at a time; the inner loop runs over the examples."""
    h, n = W.shape
    dP[:, :] = 0
    for i in range(h):
        for k in range(n):
            w = W[i, k]
            for j in range(d):
                dP[k, j] += w * dZ[i, j]


# ---------------------------------------------------------------- forward
@_jit
def _dropped(drop, l, train):
    return train and drop[0][l] > 0


@_jit
def _forward(params, offs, sizes, acts, X, ws, wz, Zout, d, drop, train):
    """Every layer's A into the workspace; the output logits also into Zout, and the Z of hidden
    gelu layers (whose backward reads Z) into wz. In a training step (``train``) a dropout
    layer's successor reads D = A ⊙ M, drop = (rates, seed, step, M's workspace, D's workspace)
    and M = dropout_mask(seed, step, l); A stays for act'(A)."""
    c = _consts(params)
    zero = c[1]
    L = acts.shape[0]
    for l in range(L):
        W, b, A = _W(params, offs, sizes, l), _b(params, offs, sizes, l), _act_view(ws, sizes, l, d)
        h, n = W.shape
        if l == 0:
            _affine(W, b, X, A, d)
        elif _dropped(drop, l - 1, train):
            _affine(W, b, _act_view(drop[4], sizes, l - 1, d), A, d)
        else:
            _affine(W, b, _act_view(ws, sizes, l - 1, d), A, d)
        act = acts[l]
        if l == L - 1:
            Zout[:, :d] = A
        elif act == GELU:
            _act_view(wz, sizes, l, d)[:, :] = A
        if act == SOFTMAX:
            for j in range(d):
                zmax = A[0, j]
                for i in range(1, h):
                    zmax = max(zmax, A[i, j])
                s = zero
                for i in range(h):
                    e = np.exp(A[i, j] - zmax)
                    A[i, j] = e
                    s += e
                for i in range(h):
                    A[i, j] = A[i, j] / s
        elif act != LINEAR:
            for i in range(h):
                for j in range(d):
                    A[i, j] = _value(act, A[i, j], c)
        if _dropped(drop, l, train):
            M, D = _act_view(drop[3], sizes, l, d), _act_view(drop[4], sizes, l, d)
            _dropout_mask(drop[1][0], drop[2][0], l, drop[0][l], M, h, d)
            for i in range(h):
                for j in range(d):
                    D[i, j] = A[i, j] * M[i, j]


# ---------------------------------------------------------------- loss
@_jit
def _loss(acts, sizes, ws, Zout, Y, loss, d, eps, delta):
    """J = (1/d) Σ_i L_i; bce, cross-entropy and poisson from Z for the canonical pairs."""
    out = acts[acts.shape[0] - 1]
    Yhat = _act_view(ws, sizes, acts.shape[0] - 1, d)
    m = Yhat.shape[0]
    # each term in the arrays' dtype, as the other backends compute it; the sum in float64
    one, zero, half = Yhat.dtype.type(1), Yhat.dtype.type(0), Yhat.dtype.type(0.5)
    s = 0.0
    if out == SIGMOID and loss == BCE:
        for i in range(m):
            for j in range(d):
                z, y = Zout[i, j], Y[i, j]
                s += max(z, zero) - y * z + np.log1p(np.exp(-abs(z)))
    elif out == SOFTMAX and loss == CROSS_ENTROPY:
        for j in range(d):
            zmax = Zout[0, j]
            for i in range(1, m):
                zmax = max(zmax, Zout[i, j])
            se = zero
            for i in range(m):
                se += np.exp(Zout[i, j] - zmax)
            lse = zmax + np.log(se)
            for i in range(m):
                s += Y[i, j] * (lse - Zout[i, j])
    elif out == EXP and loss == POISSON:
        for i in range(m):
            for j in range(d):
                z = Zout[i, j]
                s += np.exp(z) - Y[i, j] * z
    elif loss == MSE:
        for i in range(m):
            for j in range(d):
                r = Yhat[i, j] - Y[i, j]
                s += half * (r * r)
    elif loss == BCE:
        e = Yhat.dtype.type(eps)
        for i in range(m):
            for j in range(d):
                p = min(max(Yhat[i, j], e), one - e)
                s -= Y[i, j] * np.log(p) + (one - Y[i, j]) * np.log(one - p)
    elif loss == MAE:
        for i in range(m):
            for j in range(d):
                s += abs(Yhat[i, j] - Y[i, j])
    elif loss == HUBER:
        dl = Yhat.dtype.type(delta)
        for i in range(m):
            for j in range(d):
                r = abs(Yhat[i, j] - Y[i, j])
                s += half * r * r if r <= dl else dl * (r - half * dl)
    elif loss == POISSON:
        e = Yhat.dtype.type(eps)
        for i in range(m):
            for j in range(d):
                yh = Yhat[i, j]
                s += yh - Y[i, j] * np.log(max(yh, e))
    else:
        e = Yhat.dtype.type(eps)
        for i in range(m):
            for j in range(d):
                s -= Y[i, j] * np.log(min(max(Yhat[i, j], e), one))
    return s / d


@_jit
def _weighted_loss(acts, sizes, ws, Zout, Y, loss, d, eps, sw, delta):
    """J = Σ s_j L_j / Σ s_j, each L_j being _loss on a batch of that one column."""
    L, m = acts.shape[0], Y.shape[0]
    o = 0
    for k in range(L - 1):
        o += sizes[k + 1]
    ws1 = np.empty(o + m, ws.dtype)  # the d = 1 workspace layout: only the output layer is read
    Z1, Y1 = np.empty((m, 1), ws.dtype), np.empty((m, 1), ws.dtype)
    A = _act_view(ws, sizes, L - 1, d)
    num, den = 0.0, 0.0
    for j in range(d):
        if sw[j] == 0:
            continue
        for i in range(m):
            ws1[o + i], Z1[i, 0], Y1[i, 0] = A[i, j], Zout[i, j], Y[i, j]
        num += sw[j] * _loss(acts, sizes, ws1, Z1, Y1, loss, 1, eps, delta)
        den += sw[j]
    return num / den


# ---------------------------------------------------------------- backward
@_jit
def _scale_columns(dZ, sw, d):
    """Column j of dZ times s_j d / Σ s: the weighted mean's output gradient."""
    total = 0.0
    for j in range(d):
        total += sw[j]
    for j in range(d):
        c = dZ.dtype.type(sw[j] * d / total)
        for i in range(dZ.shape[0]):
            dZ[i, j] *= c


@_jit
def _backward(params, grads, offs, sizes, acts, X, ws, wz, Zout, dbuf0, dbuf1, Y, loss, d, eps, delta, sw, use_w, drop,
              train):
    """The seed's recursion: dZ(L) from the loss, then dW, db, dA_prev layer by layer;
    with use_w the output gradient's columns are weighted by the sample weights sw; in a
    training step, back through the dropout masks of the forward (dA ⊙ M)."""
    c = _consts(params)
    one, zero = c[0], c[1]
    e, dd, dl = params.dtype.type(eps), params.dtype.type(d), params.dtype.type(delta)
    L = acts.shape[0]
    out = acts[L - 1]
    for l in range(L - 1, -1, -1):
        W, dW, db = _W(params, offs, sizes, l), _W(grads, offs, sizes, l), _b(grads, offs, sizes, l)
        h, n = W.shape
        A = _act_view(ws, sizes, l, d)
        dZ = (dbuf0 if l % 2 == 0 else dbuf1)[:h * d].reshape((h, d))
        act = acts[l]
        if l == L - 1 and ((out == LINEAR and loss == MSE) or (out == SIGMOID and loss == BCE)
                           or (out == SOFTMAX and loss == CROSS_ENTROPY) or (out == EXP and loss == POISSON)):
            for i in range(h):  # the canonical pairs: dZ = (Yhat - Y) / d
                for j in range(d):
                    dZ[i, j] = (A[i, j] - Y[i, j]) / dd
            if use_w:
                _scale_columns(dZ, sw, d)
        else:
            if _dropped(drop, l, train):
                M = _act_view(drop[3], sizes, l, d)
                for i in range(h):
                    for j in range(d):
                        dZ[i, j] *= M[i, j]
            if l == L - 1:  # dJ/dYhat, then through the output activation below
                for i in range(h):
                    for j in range(d):
                        yh, y = A[i, j], Y[i, j]
                        if loss == MSE:
                            dZ[i, j] = (yh - y) / dd
                        elif loss == BCE:
                            p = min(max(yh, e), one - e)
                            dZ[i, j] = (p - y) / (p * (one - p)) / dd
                        elif loss == MAE:
                            r = yh - y
                            dZ[i, j] = (one if r > zero else (-one if r < zero else zero)) / dd
                        elif loss == HUBER:
                            dZ[i, j] = min(max(yh - y, -dl), dl) / dd
                        elif loss == POISSON:
                            dZ[i, j] = (one - y / max(yh, e)) / dd
                        else:
                            dZ[i, j] = -y / min(max(yh, e), one) / dd
                if use_w:
                    _scale_columns(dZ, sw, d)
            if act == SOFTMAX:
                for j in range(d):
                    s = zero
                    for i in range(h):
                        s += dZ[i, j] * A[i, j]
                    for i in range(h):
                        dZ[i, j] = A[i, j] * (dZ[i, j] - s)
            elif act == GELU:  # from Z
                Z = Zout[:, :d] if l == L - 1 else _act_view(wz, sizes, l, d)
                for i in range(h):
                    for j in range(d):
                        dZ[i, j] = _grad(act, dZ[i, j], Z[i, j], c)
            elif act != LINEAR:
                for i in range(h):
                    for j in range(d):
                        dZ[i, j] = _grad(act, dZ[i, j], A[i, j], c)
        if l == 0:  # db = dZ·1, dW = dZ A_prevᵀ
            _weight_grads(dZ, X, dW, db, d)
        else:
            _weight_grads(dZ, _act_view(drop[4] if _dropped(drop, l - 1, train) else ws, sizes, l - 1, d), dW, db, d)
            _input_grad(W, dZ, (dbuf1 if l % 2 == 0 else dbuf0)[:n * d].reshape((n, d)), d)


# ---------------------------------------------------------------- weight penalties
@_jit
def _penalty(params, offs, sizes, pen):
    """Σ_l l1 Σ|W| + l2/2 Σ W², pen[l] = (l1, l2); sums in float64."""
    J = 0.0
    for l in range(pen.shape[0]):
        l1, l2 = pen[l, 0], pen[l, 1]
        if l1 == 0 and l2 == 0:
            continue
        h, n = sizes[l + 1], sizes[l]
        s1, s2 = 0.0, 0.0
        for k in range(offs[l], offs[l] + h * n):
            w = float(params[k])
            s1 += abs(w)
            s2 += w * w
        J += l1 * s1 + 0.5 * l2 * s2
    return J


@_jit
def _penalty_backward(params, grads, offs, sizes, pen):
    """dW += l1 sign(W) + l2 W."""
    T = params.dtype.type
    zero = T(0)
    for l in range(pen.shape[0]):
        if pen[l, 0] == 0 and pen[l, 1] == 0:
            continue
        a, c = T(pen[l, 0]), T(pen[l, 1])
        h, n = sizes[l + 1], sizes[l]
        for k in range(offs[l], offs[l] + h * n):
            w = params[k]
            sign = T(1) if w > zero else (T(-1) if w < zero else zero)
            grads[k] = (grads[k] + a * sign) + c * w


# ---------------------------------------------------------------- update and step
@_jit
def _all_finite(a):
    """Every element of a 1-D or 2-D array (any layout) is finite."""
    if a.ndim == 1:
        for k in range(a.shape[0]):
            if not np.isfinite(a[k]):
                return False
        return True
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not np.isfinite(a[i, j]):
                return False
    return True


@_jit
def _clip(grads, clip_value, clip_norm):
    """torch.nn.utils.clip_grad_value_ then clip_grad_norm_ over the flat gradient (0 = off)."""
    T = grads.dtype.type
    if clip_value > 0:
        hi = T(clip_value)
        for k in range(grads.shape[0]):
            grads[k] = min(max(grads[k], -hi), hi)
    if clip_norm > 0:
        s = 0.0
        for k in range(grads.shape[0]):
            s += float(grads[k]) * float(grads[k])
        coef = clip_norm / (np.sqrt(s) + 1e-6)
        if coef < 1:
            c = T(coef)
            for k in range(grads.shape[0]):
                grads[k] *= c


@_jit
def _update(params, grads, kind, hyper, v, m, u, t, undo):
    """Clip, then update; an update whose result is not finite is taken back from ``undo``
    (4 x n), so the network keeps its last finite weights. Returns whether it was applied.

    ``hyper`` holds lr, momentum, nesterov (or centered), beta1 (or alpha, or eta_minus), beta2
    (or eta_plus), eps, weight_decay, clip_value, clip_norm, step_min, step_max; the state arrays
    ``v, m, u`` are as in the compiled core's OptState (empty where unused)."""
    if kind == NO_UPDATE:  # run_batches(update=False): gradients only, nothing clipped or changed
        return True
    lr, mom, nesterov, b1, b2, eps, wd = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], hyper[6]
    _clip(grads, hyper[7], hyper[8])
    n = params.shape[0]
    T = params.dtype.type
    undo[:n] = params
    undo[n:n + v.shape[0]] = v
    undo[2 * n:2 * n + m.shape[0]] = m
    undo[3 * n:3 * n + u.shape[0]] = u
    ok = True
    if kind == RMSPROP:
        centered = nesterov != 0
        lr_, a, one_minus_a, e, decay, mu = T(lr), T(b1), T(1 - b1), T(eps), T(wd), T(mom)
        w = 1 - b1
        low = w < 0.5
        lw = T(w if low else 1 - w)
        for k in range(n):
            g = grads[k] + decay * params[k] if wd != 0 else grads[k]
            s = a * v[k] + one_minus_a * (g * g)
            v[k] = s
            if centered:
                ak = m[k]
                ak = ak + lw * (g - ak) if low else g - (g - ak) * lw
                m[k] = ak
                avg = np.sqrt(s - ak * ak) + e
                ok &= np.isfinite(ak)
            else:
                avg = np.sqrt(s) + e
            if mom > 0:
                b = mu * u[k] + g / avg
                u[k] = b
                params[k] -= lr_ * b
                ok &= np.isfinite(b)
            else:
                params[k] -= lr_ * (g / avg)
            ok &= np.isfinite(params[k]) and np.isfinite(s)
    elif kind == RPROP:
        em, ep, lo, hi, zero = T(b1), T(b2), T(hyper[9]), T(hyper[10]), T(0)
        for k in range(n):
            g = grads[k]
            s = g * v[k]
            st = m[k]
            if s > zero:
                st = st * ep
            elif s < zero:
                st = st * em
                g = zero
            st = min(max(st, lo), hi)
            m[k] = st
            if g > zero:
                params[k] -= st
            elif g < zero:
                params[k] += st
            v[k] = g
            ok &= np.isfinite(params[k])
    elif kind == SGD:
        lr_, mu = T(lr), T(mom)
        if mom == 0:
            for k in range(n):
                params[k] -= lr_ * grads[k]
                ok &= np.isfinite(params[k])
        else:
            for k in range(n):
                vk = mu * v[k] + grads[k]
                v[k] = vk
                params[k] -= lr_ * (grads[k] + mu * vk if nesterov else vk)
                ok &= np.isfinite(params[k]) and np.isfinite(vk)
    elif kind == ADAM:
        t[0] += 1
        decay, B1, B2, C1, C2 = T(1 - lr * wd), T(b1), T(b2), T(1 - b1), T(1 - b2)
        step = T(lr / (1 - b1 ** t[0]))
        root = T(np.sqrt(1 - b2 ** t[0]))
        e = T(eps)
        for k in range(n):
            g = grads[k]
            mk = B1 * m[k] + C1 * g
            vk = B2 * v[k] + C2 * g * g
            m[k] = mk
            v[k] = vk
            params[k] = params[k] * decay - step * mk / (np.sqrt(vk) / root + e)
            ok &= np.isfinite(params[k]) and np.isfinite(vk)
        if not ok:
            t[0] -= 1
    if not ok:
        params[:] = undo[:n]
        v[:] = undo[n:n + v.shape[0]]
        m[:] = undo[2 * n:2 * n + m.shape[0]]
        u[:] = undo[3 * n:3 * n + u.shape[0]]
    return ok


@_jit
def _step(params, grads, offs, sizes, acts, X, Y, loss, delta, ws, wz, Zout, dbuf0, dbuf1, d, eps, sw, use_w, drop,
          pen, penalised, kind, hyper, v, m, u, t, undo):
    _forward(params, offs, sizes, acts, X, ws, wz, Zout, d, drop, True)
    if use_w:
        J = _weighted_loss(acts, sizes, ws, Zout, Y, loss, d, eps, sw, delta)
    else:
        J = _loss(acts, sizes, ws, Zout, Y, loss, d, eps, delta)
    if penalised:
        J += _penalty(params, offs, sizes, pen)
    _backward(params, grads, offs, sizes, acts, X, ws, wz, Zout, dbuf0, dbuf1, Y, loss, d, eps, delta, sw, use_w, drop,
              True)
    if penalised:
        _penalty_backward(params, grads, offs, sizes, pen)
    if drop[0].shape[0] > 0 and drop[0].max() > 0:
        drop[2][0] += 1  # the next step draws new masks
    applied = np.isfinite(J) and _all_finite(grads) and _update(params, grads, kind, hyper, v, m, u, t, undo)
    return J, applied


@_jit
def _run_batches(params, grads, offs, sizes, acts, X, Y, index, use_index, order, use_order, first, count, bs,
                 loss, delta, ws, wz, Zout, dbuf0, dbuf1, Xb, Yb, eps, sw, Sb, use_w, drop, pen, penalised, kind, hyper,
                 v, m, u, t, undo, count_correct, mean, inv_scale, use_scale):
    """Batches [first, first + count) of an epoch, gathered (in ``order`` if use_order) into Xb/Yb
    (and the sample weights sw into Sb when use_w; a batch whose weights are all zero is skipped).
    use_scale: each input is standardised as it is gathered, (x - mean_i) * inv_scale_i in float64.
    ``order`` may pick a subset of X's columns (fit's training part): the epoch is its length."""
    N = order.shape[0] if use_order else X.shape[1]
    n_in, mo = Xb.shape[0], Yb.shape[0]
    one, zero = params.dtype.type(1), params.dtype.type(0)
    loss_sum, seen, right, judged, done = 0.0, 0.0, 0.0, 0.0, 0
    diverged, bad = False, 0.0
    for kb in range(first, first + count):
        s = kb * bs
        nb = min(N, s + bs) - s
        if nb <= 0:
            break
        for j in range(nb):
            c = order[s + j] if use_order else s + j
            if use_scale:
                for i in range(n_in):
                    Xb[i, j] = (np.float64(X[i, c]) - mean[i]) * inv_scale[i]
            else:
                for i in range(n_in):
                    Xb[i, j] = X[i, c]
            if use_index:
                for i in range(mo):
                    Yb[i, j] = zero
                Yb[index[c], j] = one
            else:
                for i in range(mo):
                    Yb[i, j] = Y[i, c]
            if use_w:
                Sb[j] = sw[c]
        size = float(nb)
        if use_w:
            size = 0.0
            for j in range(nb):
                size += Sb[j]
            if size == 0:  # Σ s_i = 0: nothing to learn from this batch
                done += 1
                continue
        J, applied = _step(params, grads, offs, sizes, acts, Xb, Yb, loss, delta, ws, wz, Zout, dbuf0, dbuf1, nb, eps,
                           Sb, use_w, drop, pen, penalised, kind, hyper, v, m, u, t, undo)
        if not applied:
            diverged, bad = True, J
            break
        loss_sum += J * size
        seen += size
        done += 1
        if count_correct:
            A = _act_view(ws, sizes, acts.shape[0] - 1, nb)
            if loss == CROSS_ENTROPY and mo > 1:
                for j in range(nb):
                    best, truth = 0, 0
                    for i in range(1, mo):
                        if A[i, j] > A[best, j]:
                            best = i
                        if Yb[i, j] > Yb[truth, j]:
                            truth = i
                    w = Sb[j] if use_w else 1.0
                    right += w * (best == truth)
                    judged += w
            else:  # with weights: each example's share of outputs right, times its weight
                for j in range(nb):
                    r = 0.0
                    for i in range(mo):
                        r += (A[i, j] > 0.5) == (Yb[i, j] > 0.5)
                    if use_w:
                        right += Sb[j] * r / mo
                        judged += Sb[j]
                    else:
                        right += r
                        judged += mo
    return loss_sum, seen, right, judged, done, diverged, bad


@_jit
def _values_ok(X, Y, index, use_index, loss, m, sum_tol):
    """_validate's value checks; sum_tol > 0: cross-entropy target columns must sum to 1."""
    if not _all_finite(X):
        return False
    if use_index:
        for c in index:
            if c < 0 or c >= m:
                return False
        return True
    if not _all_finite(Y):
        return False
    if loss == BCE or loss == CROSS_ENTROPY or loss == POISSON:
        hi = np.inf if loss == POISSON else 1.0  # counts: only >= 0
        for i in range(Y.shape[0]):
            for j in range(Y.shape[1]):
                if Y[i, j] < 0 or Y[i, j] > hi:
                    return False
    if loss == CROSS_ENTROPY and sum_tol > 0:
        for j in range(Y.shape[1]):
            s = 0.0
            for i in range(Y.shape[0]):
                s += Y[i, j]
            if abs(s - 1.0) > sum_tol:
                return False
    return True


# ---------------------------------------------------------------- the Model
class Model:
    """The fused path of one network, over its flat parameter and gradient buffers."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, sizes, acts) -> None:
        self.params, self.grads = params, grads
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.acts = np.array([ACT_CODES[a] for a in acts], dtype=np.int64)
        self.keeps_z = GELU in self.acts[:-1]  # hidden layers whose backward reads Z
        offs, o = [], 0
        for n, h in zip(sizes[:-1], sizes[1:]):
            offs.append(o)
            o += h * n + h
        self.offs = np.asarray(offs, dtype=np.int64)
        self.dtype = params.dtype
        self.eps = float(np.finfo(self.dtype).eps)
        self.n_in, self.n_out, self.hmax = int(sizes[0]), int(sizes[-1]), int(max(sizes[1:]))
        # softmax + cross-entropy: target columns must sum to 1 (as _validate.as_targets says)
        self.sum_tol = 64.0 * self.n_out * self.eps if acts[-1] == "softmax" else 0.0
        self._tls = threading.local()
        self._no_index = np.zeros(1, np.int64)
        self._opt = None
        self._undo = np.empty(4 * params.shape[0], params.dtype)  # see _update
        self.pen = np.zeros((len(acts), 2), np.float64)  # per-layer (l1, l2)
        self.penalised = False
        self._no_weights = np.zeros(1, np.float64)
        self._rates, self._dseed, self._dstep = np.zeros(len(acts)), np.zeros(1, np.uint64), np.zeros(1, np.int64)
        # optimizer arguments that update nothing: run_batches(update=False) leaves the gradients
        self._no_update = (NO_UPDATE, np.zeros(11, np.float64), params[:0], params[:0], params[:0],
                           np.zeros(1, np.int64), self._undo)

    def set_dropout(self, rates, seed, step) -> None:
        """Inverted dropout per layer in training steps, masks from (seed, step[0], layer); every
        training step increments step[0] (the caller's 1-element int64 array), as the C++ model."""
        self._rates, self._dseed, self._dstep = np.asarray(rates, np.float64), np.array([seed], np.uint64), step

    def _drop(self, ws):
        return self._rates, self._dseed, self._dstep, ws[7], ws[8]

    def set_penalties(self, l1, l2) -> None:
        self.pen[:, 0], self.pen[:, 1] = l1, l2
        self.penalised = bool(self.pen.any())

    def _ws(self, d: int):
        cache = getattr(self._tls, "ws", None)
        if cache is None or cache[0] < d:
            cap = max(d, 1)
            total = int(sum(self.sizes[1:])) * cap
            cache = self._tls.ws = (cap, np.empty(total, self.dtype), np.empty((self.n_out, cap), self.dtype),
                                    np.empty(self.hmax * cap, self.dtype), np.empty(self.hmax * cap, self.dtype),
                                    np.empty((self.n_in, cap), self.dtype), np.empty((self.n_out, cap), self.dtype),
                                    np.empty(total, self.dtype), np.empty(total, self.dtype),  # dropout M and D
                                    np.empty(total if self.keeps_z else 0, self.dtype))  # Z of gelu layers
        return cache

    def _vector(self, a):
        if type(a) is not np.ndarray or a.dtype != np.float64 or a.shape != (self.n_in,) \
                or not a.flags.c_contiguous:  # as the compiled core takes them (and one jit signature)
            raise InvalidInput("mean and inv_scale must be contiguous float64 arrays of one value per input")
        return a

    def _batch(self, X):
        if type(X) is not np.ndarray or X.dtype != self.dtype or X.ndim != 2 or X.shape[0] != self.n_in:
            raise InvalidInput("X is not a matching 2-D array")
        return X

    def _targets(self, Y, loss: int, d: int):
        """(dense Y, index, use_index) as the jitted functions take them."""
        if type(Y) is not np.ndarray:
            raise InvalidInput("Y is not an array")
        if Y.ndim == 1 and loss == CROSS_ENTROPY and self.n_out > 1 and Y.dtype == np.int64 and Y.shape[0] == d:
            return None, Y, True
        if Y.ndim != 2 or Y.dtype != self.dtype or Y.shape != (self.n_out, d):
            raise InvalidInput("Y does not match")
        return Y, self._no_index, False

    def _dense(self, Y, index, use_index, d, ws):
        if not use_index:
            return Y
        Yb = ws[6][:, :d]
        Yb[...] = 0
        Yb[index, np.arange(d)] = 1
        return Yb

    def forward(self, X, out) -> None:
        X = self._batch(X)
        d = X.shape[1]
        if not _all_finite(X):
            raise InvalidInput("X is not finite")
        if d == 0:
            return
        ws = self._ws(d)
        _forward(self.params, self.offs, self.sizes, self.acts, X, ws[1], ws[9], ws[2], d, self._drop(ws), False)
        out[...] = _act_view(ws[1], self.sizes, len(self.acts) - 1, d)

    def _weights(self, s, d: int):
        if s is None:
            return self._no_weights, False
        if type(s) is not np.ndarray or s.dtype != np.float64 or s.shape != (d,):
            raise InvalidInput("sample_weight must be a float64 array of one weight per example")
        return s, True

    def _batch_args(self, X, Y, loss: int, sample_weight):
        """One batch's checked arguments, as train_step and loss take them: (X, d, weights,
        whether weighted, the workspace, dense targets)."""
        X = self._batch(X)
        d = X.shape[1]
        sw, use_w = self._weights(sample_weight, d)
        Y, index, use_index = self._targets(Y, loss, d)
        if d == 0 or not _values_ok(X, Y if Y is not None else X, index, use_index, loss, self.n_out, self.sum_tol):
            raise InvalidInput("values out of range")
        ws = self._ws(d)
        return X, d, sw, use_w, ws, self._dense(Y, index, use_index, d, ws)

    def loss(self, X, Y, loss: int, grads: bool, sample_weight=None, delta: float = 1.0) -> float:
        X, d, sw, use_w, ws, Yd = self._batch_args(X, Y, loss, sample_weight)
        _forward(self.params, self.offs, self.sizes, self.acts, X, ws[1], ws[9], ws[2], d, self._drop(ws), False)
        if use_w:
            J = _weighted_loss(self.acts, self.sizes, ws[1], ws[2], Yd, loss, d, self.eps, sw, float(delta))
        else:
            J = _loss(self.acts, self.sizes, ws[1], ws[2], Yd, loss, d, self.eps, float(delta))
        if self.penalised:
            J += _penalty(self.params, self.offs, self.sizes, self.pen)
        if grads:
            _backward(self.params, self.grads, self.offs, self.sizes, self.acts, X, ws[1], ws[9], ws[2], ws[3], ws[4],
                      Yd, loss, d, self.eps, float(delta), sw, use_w, self._drop(ws), False)
            if self.penalised:
                _penalty_backward(self.params, self.grads, self.offs, self.sizes, self.pen)
        return J

    def set_sgd(self, lr, momentum, nesterov, v, clip_value=0.0, clip_norm=0.0) -> None:
        hyper = np.array([lr, momentum, float(nesterov), 0, 0, 0, 0, clip_value, clip_norm, 0, 0], np.float64)
        none = self.params[:0]
        self._opt = (SGD, hyper, v if momentum else none, none, none, np.zeros(1, np.int64), self._undo)

    def set_adam(self, lr, beta1, beta2, eps, weight_decay, m, v, t, clip_value=0.0, clip_norm=0.0) -> None:
        hyper = np.array([lr, 0, 0, beta1, beta2, eps, weight_decay, clip_value, clip_norm, 0, 0], np.float64)
        self._opt = (ADAM, hyper, v, m, self.params[:0], t, self._undo)

    def set_rmsprop(self, lr, alpha, eps, weight_decay, momentum, centered, square_avg, grad_avg, buf,
                    clip_value=0.0, clip_norm=0.0) -> None:
        hyper = np.array([lr, momentum, float(centered), alpha, 0, eps, weight_decay, clip_value, clip_norm, 0, 0],
                         np.float64)
        none = self.params[:0]
        self._opt = (RMSPROP, hyper, square_avg, grad_avg if centered else none, buf if momentum > 0 else none,
                     np.zeros(1, np.int64), self._undo)

    def set_rprop(self, eta_minus, eta_plus, step_min, step_max, prev, step_size) -> None:
        hyper = np.array([0, 0, 0, eta_minus, eta_plus, 0, 0, 0, 0, step_min, step_max], np.float64)
        self._opt = (RPROP, hyper, prev, step_size, self.params[:0], np.zeros(1, np.int64), self._undo)

    def train_step(self, X, Y, loss: int, sample_weight=None, delta: float = 1.0):
        X, d, sw, use_w, ws, Yd = self._batch_args(X, Y, loss, sample_weight)
        return _step(self.params, self.grads, self.offs, self.sizes, self.acts, X, Yd, loss, float(delta), ws[1], ws[9],
                     ws[2], ws[3], ws[4], d, self.eps, sw, use_w, self._drop(ws), self.pen,
                     self.penalised, *self._opt)

    # jitted code cannot run Python's signal handlers: fit hands this model short chunks instead
    polls_signals = False

    def run_batches(self, X, Y, order, first, count, bs, loss, count_correct, poll_signals=False,
                    sample_weight=None, delta=1.0, update=True, mean=None, inv_scale=None):
        X = self._batch(X)
        use_scale = mean is not None
        if use_scale != (inv_scale is not None):
            raise InvalidInput("give both mean and inv_scale, or neither")
        if use_scale:
            mean, inv_scale = self._vector(mean), self._vector(inv_scale)
        else:
            mean = inv_scale = self._no_weights
        N = X.shape[1]
        Yd, index, use_index = self._targets(Y, loss, N)
        sw, use_w = self._weights(sample_weight, N)
        Sb = np.empty(bs if use_w else 1)
        ws = self._ws(bs)
        use_order = order is not None
        if use_order:
            if not isinstance(order, np.ndarray) or order.dtype != np.int64 or order.ndim != 1 or order.shape[0] > N:
                raise InvalidInput("order must be a 1-D int64 array of at most one index per example")
            read = order[max(first, 0) * bs:(max(first, 0) + max(count, 0)) * bs]  # only what these batches read
            if read.size and (read.min() < 0 or read.max() >= N):
                raise InvalidInput("order out of range")
        return _run_batches(self.params, self.grads, self.offs, self.sizes, self.acts, X,
                            Yd if Yd is not None else ws[6], index, use_index,
                            order if use_order else self._no_index, use_order, first, count, bs, loss, float(delta),
                            ws[1], ws[9], ws[2], ws[3], ws[4], ws[5], ws[6], self.eps, sw, Sb, use_w, self._drop(ws),
                            self.pen, self.penalised, *(self._opt if update else self._no_update),
                            count_correct, mean, inv_scale, use_scale) + (None,)
