"""Property-based tests of every public entry point on every backend (issue 6, item 1).

Each case draws a network and the arguments a user might pass — every dtype, C/F order,
transposes, strided, negative-stride, read-only, misaligned and broadcast arrays, Python lists,
0 and 1 sized axes, NaN/inf, huge and subnormal values, wrong names and types — and checks
that the call either

* raises ValueError/TypeError for one of the problems the rules of API.md find in the
  arguments (fuzzing.expect_*: stated independently of pynn/_validate.py), with a message
  naming the argument and what is wrong, and leaves the network and the arguments as they
  were; or
* returns what the NumPy reference backend returns for the clean arguments (a contiguous
  array of the network's dtype), within a tolerance scaled by a bound on the rounding error
  of the forward pass (``forward_bound``), and modifies none of the user's arrays.

A crash, a hang, another exception type, or a result the reference does not give fails the
test. ``PYNN_FUZZ_EXAMPLES=10000`` runs ≥ 10^4 cases per entry point (.ci/fuzz.sh); the
normal suite runs a few per test. Tests marked "Was a library bug" pin down what fuzzing found.
"""

from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import strategies as st

import pynn
from conftest import NET_TOL
from fuzzing import (FRACTIONS, LOSSES, PROBABILITY_OUTPUTS, RATES, Problem, assert_within,
                     expect_batch, expect_loss, expect_number, expect_rates, expect_targets, flag, fuzz, integer,
                     make_layout, number_arg, one_in, outcome, pick, same_weights, seed, snapshot, unchanged,
                     user_array, usually, weights)
from pynn.backends import get_backend

# The reference's overflow warnings on huge inputs are noise here: every result is judged.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ref = get_backend("numpy")
HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu", "linear", "identity")
OUTPUT = HIDDEN + ("softmax", "softmax", "sigmoid")
SMOOTH = ("sigmoid", "tanh", "linear", "identity", "softmax")
STEM = {"identity": "linear"}
CANONICAL = {("linear", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy")}
# Inputs besides arrays: what users pass by mistake for names, numbers and flags.
JUNK = (None, 0, -1, 1.5, float("nan"), "", "x", b"mse", ["mse"], (), {}, object(), np.float32(1.0), True)


# ---------------------------------------------------------------- networks and their reference twin
def draw_network(data, backend, *, max_layers=3, max_width=5, acts=None, wide=True):
    """A small network (sometimes one big enough for Numba's per-kernel path) on ``backend``."""
    n_layers = integer(data, 1, max_layers)
    sizes = [integer(data, 1, max_width) for _ in range(n_layers + 1)]
    if wide and one_in(data, 16):  # > 20,000 parameters: numba's per-kernel path
        sizes[0], sizes[1] = 150, 140
    hidden = [a for a in acts or HIDDEN if a != "softmax"]
    act = [pick(data, hidden) for _ in range(n_layers - 1)]
    act.append(pick(data, [a for a in OUTPUT if acts is None or a in acts]))
    layers = [pynn.Dense(sizes[i], sizes[i + 1], act[i]) for i in range(n_layers)]
    return pynn.Network(layers, dtype=pick(data, ("float32", "float64")), backend=backend, seed=seed(data))


def twin(net, backend="numpy", dtype=None):
    """The same network (same weights) on another backend: the reference by default."""
    layers = [pynn.Dense(l.n_in, l.n_out, l.activation, init=(l.W, l.b)) for l in net.layers]
    return pynn.Network(layers, dtype=dtype or net.dtype, backend=backend)


def twin_from(net, snap, backend="numpy"):
    """A reference network with the weights ``snap`` (as taken by ``weights``) and net's layout."""
    layers = [pynn.Dense(l.n_in, l.n_out, l.activation, init=wb) for l, wb in zip(net.layers, snap)]
    return pynn.Network(layers, dtype=net.dtype, backend=backend)


def ncols(X) -> int:
    """How many examples a drawn X has (for drawing matching targets)."""
    try:
        a = np.asarray(X)
    except (ValueError, TypeError):
        return 1
    return a.shape[-1] if a.ndim else 1


def output_stem(net) -> str:
    a = net.layers[-1].activation
    return STEM.get(a, a)


def forward_bound(net, X64):
    """Float64 forward pass, with an elementwise bound on the rounding error of any backend in
    units of the dtype's precision: each layer adds |W||A_prev| + |b| (the product and bias)
    to |W| times the error it was handed, and each activation (Lipschitz ≤ 1) adds |A|. The
    compiled core flushes subnormal results to zero (csrc/fpmode.hpp), each an absolute error
    below the dtype's smallest normal number: n_in + 2 of them a layer (products, sums, bias,
    activation). Returns (logits Z_L, outputs A_L, bound on Z_L's error, bound on A_L's error)."""
    A, E = X64, np.abs(X64)
    flush = float(np.finfo(net.dtype).tiny) / NET_TOL[net.dtype]  # in the same units
    with np.errstate(all="ignore"):
        for layer in net.layers:
            W, b = layer.W.astype(np.float64), layer.b.astype(np.float64)
            Z = np.empty((W.shape[0], A.shape[1]))
            ref.dense_forward(W, A, b, Z)
            E = np.abs(W) @ E + np.abs(W) @ np.abs(A) + np.abs(b) + (W.shape[1] + 2) * flush
            stem = STEM.get(layer.activation, layer.activation)
            A_next = np.empty_like(Z)
            getattr(ref, f"{stem}_forward")(Z, A_next)
            A, E_z = A_next, E
            E = E + np.abs(A)
    return Z, A, E_z, E


def sq(x: float) -> float:
    return x * x if x < 1e150 else math.inf


# ---------------------------------------------------------------- arguments
D_CHOICES = (1, 2, 3, 4, 5, 7, 1, 2, 8, 13, 33, 0)


def draw_batch(data, net, *, d=None, specials=True, exotic=True):
    """X for ``net``: mostly the right number of rows, sometimes not, sometimes not 2-D."""
    n = net.sizes[0]
    if d is None:
        d = pick(data, D_CHOICES)
    shape = (n, d)
    if exotic and one_in(data, 8):
        shape = pick(data, [(n + 1, d), (max(n - 1, 0), d), (d, n), (n,), (n, d, 1), ()])
    return user_array(data, shape, net_dtype=net.dtype, specials=specials, exotic=exotic)


def draw_loss(data, net):
    """A loss name that suits the network's output (mostly), one that does not, or junk."""
    out = output_stem(net)
    fits = [l for l in LOSSES if l not in PROBABILITY_OUTPUTS or out in PROBABILITY_OUTPUTS[l]]
    if one_in(data, 10):
        return pick(data, list(LOSSES) + ["MSE", "hinge", None, 3, ["mse"]])
    return pick(data, fits)


def draw_targets(data, net, loss, d, *, specials=True, exotic=True):
    """Y for ``loss``: right mostly, sometimes with the wrong shape or values out of range."""
    m = net.sizes[-1]
    rng = np.random.default_rng(seed(data))
    bad = exotic and one_in(data, 10)
    if loss == "cross_entropy" and m > 1 and flag(data):  # class indices
        shape = pick(data, [(d,), (d + 1,)]) if bad else (d,)
        values = rng.integers(0, m, size=shape).astype(np.float64)
        if bad and values.size:
            values.flat[0] = pick(data, [-1, m, 0.5, 2**40, np.nan])
        return user_array(data, shape, net_dtype=net.dtype, values=values, exotic=exotic)
    shape = (m, d)
    if bad:
        shape = pick(data, [(m + 1, d), (m, d + 1), (d, m), (d,), (m, d, 1)])
    if loss in ("bce", "cross_entropy") and not bad:
        values = rng.random(shape)
        if loss == "cross_entropy":
            kind = pick(data, ["one-hot", "distribution", "unnormalised"])
            if kind == "one-hot":
                values = np.eye(m)[:, rng.integers(0, m, size=d)]
            elif kind == "distribution":
                values = values / values.sum(axis=0)
        if flag(data):  # 0/1 targets, as ints or bools
            return user_array(data, shape, net_dtype=net.dtype, values=np.round(values), exotic=exotic)
        return user_array(data, shape, net_dtype=net.dtype, kinds="f", values=values, exotic=exotic)
    return user_array(data, shape, net_dtype=net.dtype, specials=specials, exotic=exotic)


def expect_XY(net, X, Y, loss, *, nonempty=True, names=("X", "Y")):
    """(clean X, clean Y, problems) for a call taking (X, Y, loss)."""
    problems = expect_loss(loss, net.layers[-1].activation)
    Xc, px = expect_batch(X, net.sizes[0], net.dtype, names[0], nonempty=nonempty)
    problems += px
    Yc = None
    if Xc is not None and not problems:
        Yc, py = expect_targets(Y, loss, net.sizes[-1], Xc.shape[1], net.dtype, names[1],
                                softmax=net.layers[-1].activation == "softmax")
        problems += py
    elif not isinstance(loss, str) or loss not in LOSSES or Xc is None:
        problems.append(Problem((ValueError, TypeError), rf"\b{names[1]}\b"))  # Y may be judged first
    return Xc, Yc, problems


def dense_Y(Yc, m, dtype):
    """Class indices as one-hot columns (what the loss sees), in float64."""
    if Yc.ndim == 1:
        Y = np.zeros((m, Yc.size))
        Y[Yc, np.arange(Yc.size)] = 1
        return Y
    return Yc.astype(np.float64)


def loss_tolerance(net, loss, Yc, X64):
    """A bound on |J_backend - J_reference| from forward_bound, and a scale for gradients."""
    tol = NET_TOL[net.dtype]
    Z, A, Ez, Ea = forward_bound(net, X64)
    Y = dense_Y(Yc, net.sizes[-1], net.dtype)
    d = max(X64.shape[1], 1)
    eps = np.finfo(net.dtype).eps
    with np.errstate(all="ignore"):
        if loss == "mse":
            s = np.sum((np.abs(A - Y) + Ea) * Ea) / d
        elif (output_stem(net), loss) in CANONICAL:
            s = 2 * np.sum(Ez) / d
        else:  # log of a clipped probability: its slope is 1/p
            p = np.clip(A, eps, 1 - eps)
            s = np.sum(Ea / np.minimum(p, 1 - p)) / d
        scale = max(1.0, float(np.max(Ea, initial=0)), float(np.abs(X64).max(initial=0)),
                    float(np.abs(Y).max(initial=0)))
    return tol * s, scale


# ---------------------------------------------------------------- forward / predict (with out=)
def expect_out(out, m, d, dtype, X):
    """forward's out=: a writable, aligned ndarray of the network's dtype and shape (m, d)
    with one unit stride (C- or F-ordered rows/columns), not overlapping X."""
    bad = [Problem(ValueError, r"\bout must be a writable")]
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != (m, d):
        return bad
    if not out.flags.writeable or not out.flags.aligned:
        return bad
    r, c = out.shape
    s0, s1 = (s // out.itemsize for s in out.strides)
    if any(s % out.itemsize for s in out.strides):
        return bad
    rows = (c <= 1 or s1 == 1) and (r <= 1 or s0 >= c)
    cols = (r <= 1 or s0 == 1) and (c <= 1 or s1 >= r)
    if not (rows or cols):
        return bad
    if isinstance(X, np.ndarray) and out.size and np.may_share_memory(out, X):
        return [Problem(ValueError, r"\bout must not overlap X")]
    return []


@fuzz("forward/predict(out=)", share=3)
def test_forward(backend, data):
    net = draw_network(data, backend)
    n, m = net.sizes[0], net.sizes[-1]
    X = draw_batch(data, net)
    Xc, problems = expect_batch(X, n, net.dtype, "X", nonempty=False)
    out_kind = pick(data, [None] * 4 + ["C", "F", "step", "neg", "readonly", "misaligned",
                                                       "dtype", "shape", "list", "X itself"])
    kw = {}
    if out_kind is not None:
        d = Xc.shape[1] if Xc is not None else 3
        base = np.full((m, d), np.nan, dtype=net.dtype)
        if out_kind == "dtype":
            out = base.astype(np.float64 if net.dtype == np.float32 else np.float32)
        elif out_kind == "shape":
            out = np.full((m + 1, d), np.nan, net.dtype)
        elif out_kind == "X itself":
            out = X
        else:
            out = make_layout(base, out_kind)
        kw["out"] = out
        problems += expect_out(out, m, d, net.dtype, X) if Xc is not None else \
            [Problem(ValueError, r"\bout must (be|not)")]
    before, x_snap = weights(net), snapshot(X)
    call = net.forward if flag(data) else net.predict
    status, got = outcome(lambda: call(X, **kw), problems)
    assert same_weights(net, before), "forward changed the weights"
    if status != "ok":
        assert unchanged(X, x_snap), "a rejected call modified X"
        if "out" in kw and isinstance(kw["out"], np.ndarray) and kw["out"] is not X:
            assert np.isnan(kw["out"]).all(), "a rejected call wrote into out"
        return
    assert unchanged(X, x_snap), "forward modified X"
    assert isinstance(got, np.ndarray) and got.dtype == net.dtype and got.shape == (m, Xc.shape[1])
    if "out" in kw:
        assert got is kw["out"]
    want = twin(net).predict(Xc)
    _, _, _, E = forward_bound(net, Xc.astype(np.float64))
    tol = NET_TOL[net.dtype]
    assert_within(got, want, tol * E, tol, "forward")


@fuzz("predict_classes", share=3)
def test_predict_classes(backend, data):
    net = draw_network(data, backend)
    X = draw_batch(data, net)
    Xc, problems = expect_batch(X, net.sizes[0], net.dtype, "X", nonempty=False)
    before, x_snap = weights(net), snapshot(X)
    status, got = outcome(lambda: net.predict_classes(X), problems)
    assert same_weights(net, before) and unchanged(X, x_snap)
    if status != "ok":
        return
    d = Xc.shape[1]
    assert got.shape == (d,) and got.dtype.kind == "i"
    Yhat = twin(net).predict(Xc).astype(np.float64)
    _, _, _, E = forward_bound(net, Xc.astype(np.float64))
    slack = NET_TOL[net.dtype] * (E + np.abs(Yhat)) * 2
    cols = np.arange(d)
    if Yhat.shape[0] == 1:  # one output: Yhat > 0.5, unless within rounding of 0.5
        want = (Yhat[0] > 0.5).astype(np.intp)
        assert np.all((got == want) | (np.abs(Yhat[0] - 0.5) <= slack[0])), (got, Yhat)
    else:  # the argmax, or a class within rounding of the largest output
        assert np.all((got >= 0) & (got < Yhat.shape[0]))
        top = Yhat.max(axis=0)
        assert np.all(Yhat[got, cols] >= top - slack[got, cols] - slack.max(axis=0)), (got, Yhat)


# ---------------------------------------------------------------- loss / loss_and_grads / evaluate
@fuzz("loss", share=3)
def test_loss(backend, data):
    net = draw_network(data, backend)
    loss = draw_loss(data, net)
    X = draw_batch(data, net)
    Y = draw_targets(data, net, loss, ncols(X))
    Xc, Yc, problems = expect_XY(net, X, Y, loss)
    before, snaps = weights(net), (snapshot(X), snapshot(Y))
    status, J = outcome(lambda: net.loss(X, Y, loss), problems)
    assert same_weights(net, before) and unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status != "ok":
        return
    assert isinstance(J, float)
    J_ref = twin(net).loss(Xc, Yc, loss)
    tol, _ = loss_tolerance(net, loss, Yc, Xc.astype(np.float64))
    assert_within(J, J_ref, tol, NET_TOL[net.dtype], "J")


def check_grads(net, grads, Xc, Yc, loss, J):
    t = twin(net)
    J_ref, g_ref = t.loss_and_grads(Xc, Yc, loss)
    tol_J, scale = loss_tolerance(net, loss, Yc, Xc.astype(np.float64))
    assert_within(J, J_ref, tol_J, NET_TOL[net.dtype], "J")
    assert len(grads) == len(net.layers)
    for l, ((dW, db), (dW_r, db_r), layer) in enumerate(zip(grads, g_ref, net.layers)):
        assert dW.shape == layer.W.shape and db.shape == layer.b.shape and dW.dtype == db.dtype == net.dtype
        g_scale = max(float(np.abs(dW_r).max(initial=0)), float(np.abs(db_r).max(initial=0)), 1.0)
        atol = NET_TOL[net.dtype] * max(g_scale, sq(scale)) * 10
        assert_within(dW, dW_r, atol, NET_TOL[net.dtype], f"dW[{l}]")
        assert_within(db, db_r, atol, NET_TOL[net.dtype], f"db[{l}]")
    return g_ref


@fuzz("loss_and_grads", share=3)
def test_loss_and_grads(backend, data):
    net = draw_network(data, backend)
    loss = draw_loss(data, net)
    X = draw_batch(data, net)
    Y = draw_targets(data, net, loss, ncols(X))
    Xc, Yc, problems = expect_XY(net, X, Y, loss)
    before, snaps = weights(net), (snapshot(X), snapshot(Y))
    status, got = outcome(lambda: net.loss_and_grads(X, Y, loss), problems)
    assert same_weights(net, before) and unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status == "ok":
        check_grads(net, got[1], Xc, Yc, loss, got[0])


def near_ties(Yhat, loss, slack):
    """Examples (or outputs) whose class could go either way within rounding."""
    if loss == "cross_entropy" and Yhat.shape[0] > 1:
        s = np.sort(Yhat, axis=0)
        return int(np.count_nonzero(s[-1] - s[-2] <= slack))
    return int(np.count_nonzero(np.abs(Yhat - 0.5) <= slack))


@fuzz("evaluate", share=3)
def test_evaluate(backend, data):
    net = draw_network(data, backend)
    loss = draw_loss(data, net)
    X = draw_batch(data, net)
    Y = draw_targets(data, net, loss, ncols(X))
    Xc, Yc, problems = expect_XY(net, X, Y, loss)
    before, snaps = weights(net), (snapshot(X), snapshot(Y))
    status, got = outcome(lambda: net.evaluate(X, Y, loss), problems)
    assert same_weights(net, before) and unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status != "ok":
        return
    t = twin(net)
    want = t.evaluate(Xc, Yc, loss)
    assert set(got) == set(want) == ({"loss", "accuracy"} if loss in PROBABILITY_OUTPUTS else {"loss"})
    tol_J, _ = loss_tolerance(net, loss, Yc, Xc.astype(np.float64))
    assert_within(got["loss"], want["loss"], tol_J, NET_TOL[net.dtype], "loss")
    if "accuracy" in got:
        Yhat = t.predict(Xc).astype(np.float64)
        _, _, _, E = forward_bound(net, Xc.astype(np.float64))
        slack = 4 * NET_TOL[net.dtype] * float((E + np.abs(Yhat)).max(initial=0))
        judged = Xc.shape[1] if loss == "cross_entropy" and Yhat.shape[0] > 1 else Yhat.size
        assert abs(got["accuracy"] - want["accuracy"]) * judged <= near_ties(Yhat, loss, slack) + 1e-9


# ---------------------------------------------------------------- train_step
def draw_optimizer(data):
    kind = pick(data, ["sgd", "momentum", "nesterov", "adam", "adamw", "junk"])
    lr = pick(data, [0.01, 1e-3, 0.1, 0.5])
    if kind == "sgd":
        return pynn.SGD(lr)
    if kind == "momentum":
        return pynn.SGD(lr, momentum=0.9)
    if kind == "nesterov":
        return pynn.SGD(lr, momentum=0.5, nesterov=True)
    if kind == "adam":
        return pynn.Adam(lr)
    if kind == "adamw":
        return pynn.Adam(lr, weight_decay=0.1)
    return pick(data, ["sgd", pynn.SGD, None, 0.1])


def expected_first_step(p, g, opt, dtype=np.float64):
    """Parameters after a first step from fresh optimizer state, in float64, and a bound on how
    much an error δ in g can move them: SGD is linear in g; Adam's first step is
    lr g / (|g| + eps) exactly, whose slope is lr eps / (|g| + eps)^2. Where g² overflows the
    dtype, Adam's second moment is inf and its step 0 (as in PyTorch): allow either."""
    with np.errstate(all="ignore"):
        return _expected_first_step(p, g, opt, np.dtype(dtype))


def _expected_first_step(p, g, opt, dtype):
    cfg = opt.get_config()
    lr = cfg["lr"]
    if isinstance(opt, pynn.SGD):
        k = lr * (1 + cfg["momentum"]) if cfg["nesterov"] else lr
        return p - k * g, lambda delta: k * delta
    eps = cfg["eps"]
    p0 = p * (1 - lr * cfg["weight_decay"])
    step = lr * g / (np.abs(g) + eps)
    overflow = np.abs(g) * np.sqrt(1 - cfg["beta2"]) >= np.sqrt(np.finfo(dtype).max)
    return p0 - step, lambda delta: np.where(
        overflow, 2 * lr, np.minimum(2 * lr, lr * eps * delta / (np.maximum(np.abs(g) - delta, 0) + eps) ** 2))


@fuzz("train_step", share=3)
def test_train_step(backend, data):
    net = draw_network(data, backend)
    loss = draw_loss(data, net)
    X = draw_batch(data, net)
    Y = draw_targets(data, net, loss, ncols(X))
    opt = draw_optimizer(data)
    Xc, Yc, problems = expect_XY(net, X, Y, loss)
    if not isinstance(opt, pynn.Optimizer):
        problems = problems + [Problem(TypeError, r"\boptimizer must be a pynn optimizer")]
    before, snaps = weights(net), (snapshot(X), snapshot(Y))
    status, J = outcome(lambda: net.train_step(X, Y, loss, opt), problems, allow=(FloatingPointError,))
    assert unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status == "rejected":
        assert same_weights(net, before), "a rejected step changed the weights"
        return
    # the reference, on the same weights: J, gradients, and whether the step is taken
    t = twin_from(net, before)
    J_ref, g_ref = t.loss_and_grads(Xc, Yc, loss)
    finite = math.isfinite(J_ref) and all(np.isfinite(a).all() for ab in g_ref for a in ab)
    if status == "raised":  # FloatingPointError: the loss or a gradient was not finite; nothing changed
        assert same_weights(net, before), "a step that raised FloatingPointError changed the weights"
        tol_J, scale = loss_tolerance(net, loss, Yc, Xc.astype(np.float64))
        if finite:  # the reference found finite values: only a float32 rounding edge excuses this
            assert net.dtype == np.float32 and scale > 1e6, f"FloatingPointError, reference J={J_ref}: {J}"
        return
    tol_J, scale = loss_tolerance(net, loss, Yc, Xc.astype(np.float64))
    assert_within(J, J_ref, tol_J, NET_TOL[net.dtype], "J")
    assert finite or scale > 1e6, f"step applied although the reference's loss or gradient is not finite (J={J_ref})"
    for l, ((W0, b0), (dW, db), layer) in enumerate(zip(before, g_ref, net.layers)):
        g_scale = max(float(np.abs(dW).max(initial=0)), float(np.abs(db).max(initial=0)), 1.0)
        delta = NET_TOL[net.dtype] * max(g_scale, sq(scale)) * 10
        for name, p0, g, got in (("W", W0, dW, layer.W), ("b", b0, db, layer.b)):
            want, slope = expected_first_step(p0.astype(np.float64), g.astype(np.float64), opt, net.dtype)
            atol = slope(delta) + NET_TOL[net.dtype] * (np.abs(p0) + 1)
            assert_within(got, want, atol, NET_TOL[net.dtype], f"{name}[{l}] after the step")


# ---------------------------------------------------------------- fit
@fuzz("fit", share=3)
def test_fit(backend, data):
    net = draw_network(data, backend, max_layers=2, max_width=4)
    loss = draw_loss(data, net)
    d = integer(data, 1, 12)
    # moderate values: several steps of training compound rounding; huge values are fuzzed above
    X = draw_batch(data, net, d=d, specials=False)
    if one_in(data, 6):
        X = draw_batch(data, net, d=d)
    Y = draw_targets(data, net, loss, d, specials=False)
    kw = dict(loss=loss, optimizer=pynn.SGD(0.05), epochs=integer(data, 1, 2),
              batch_size=integer(data, 1, d + 2))
    problems: list[Problem] = []
    shuffle = flag(data)
    kw["shuffle"] = shuffle
    kw["seed"] = seed(data) if shuffle or flag(data) else None
    junk_arg = usually(data, [None], ["epochs", "batch_size", "shuffle", "seed", "verbose",
                                    "optimizer", "callbacks", "validation_data"], odds=4)
    if junk_arg:
        value = pick(data, JUNK)
        kw[junk_arg] = value
        problems += expect_fit_arg(junk_arg, value)
    val = None
    if one_in(data, 4) and "validation_data" not in kw:
        dv = integer(data, 1, 5)
        Xv = draw_batch(data, net, d=dv, specials=False)
        Yv = draw_targets(data, net, loss, dv, specials=False)
        kw["validation_data"] = (Xv, Yv)
        Xvc, Yvc, pv = expect_XY(net, Xv, Yv, loss, names=("validation_data[0]", "validation_data[1]"))
        val = (Xvc, Yvc)
        problems += pv
    Xc, Yc, pxy = expect_XY(net, X, Y, loss)
    problems += pxy
    logged = []
    if "callbacks" not in kw:
        kw["callbacks"] = [lambda epoch, logs: logged.append(epoch)]
    before, snaps = weights(net), (snapshot(X), snapshot(Y))
    status, hist = outcome(lambda: net.fit(X, Y, **kw), problems, allow=(FloatingPointError,))
    assert unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status == "rejected":
        assert same_weights(net, before), "a rejected fit changed the weights"
        return
    t = twin_from(net, before)
    ref_kw = {k: v for k, v in kw.items() if k != "callbacks"}
    ref_kw["optimizer"] = pynn.SGD(kw["optimizer"].lr) if isinstance(kw["optimizer"], pynn.SGD) else kw["optimizer"]
    if val is not None:
        ref_kw["validation_data"] = val
    if kw.get("shuffle") and kw.get("seed") is None:
        return  # shuffled from fresh entropy: nothing to reproduce
    try:  # (not through outcome(): the reference's run is not a case of its own)
        ref_status, ref_hist = "ok", t.fit(Xc, Yc, **ref_kw)
    except FloatingPointError:
        ref_status, ref_hist = "raised", None
    assert status == ref_status, f"fit {status} but the reference {ref_status}"
    tol = 10 * NET_TOL[net.dtype]
    for layer, ref_layer in zip(net.layers, t.layers):
        scale = max(1.0, float(np.abs(ref_layer.W).max()), sq(float(np.abs(Xc).max(initial=0))))
        assert_within(layer.W, ref_layer.W, tol * scale, tol, "W after fit")
        assert_within(layer.b, ref_layer.b, tol * scale, tol, "b after fit")
    if status == "ok":
        if junk_arg != "callbacks":
            assert logged == list(range(kw["epochs"]))
        assert set(hist.history) == set(ref_hist.history)
        for key in hist.history:
            if key == "time":
                continue
            if "accuracy" in key:  # near-ties may flip a class; the losses are compared closely
                assert len(hist[key]) == len(ref_hist[key])
                continue
            scale = max(1.0, sq(float(np.abs(Xc).max(initial=0))), max(map(abs, ref_hist[key])))
            assert_within(hist[key], ref_hist[key], tol * scale, tol, f"history[{key!r}]")


def expect_fit_arg(name, value):
    """fit's own arguments: epochs, batch_size (int >= 1, or None: one full batch), verbose (int >= 0), seed (None or int
    >= 0), shuffle (bool), optimizer (a pynn optimizer), callbacks (Callbacks or functions),
    validation_data (a pair)."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if name in ("epochs", "batch_size", "verbose", "seed"):
        if name in ("seed", "batch_size") and value is None:
            return []
        low = 1 if name in ("epochs", "batch_size") else 0
        if not is_int:
            return [Problem(TypeError, rf"\b{name} must be an int >= {low}")]
        return [Problem(ValueError, rf"\b{name} must be an int >= {low}")] if value < low else []
    if name == "shuffle":
        return [] if isinstance(value, (bool, np.bool_)) else [Problem(TypeError, r"\bshuffle must be a bool")]
    if name == "optimizer":
        return [Problem(TypeError, r"\boptimizer must be a pynn optimizer")]
    if name == "callbacks":
        if value is None or callable(value):
            return []
        if isinstance(value, (list, tuple, str, dict)) and all(callable(v) for v in value):
            return []
        return [Problem(TypeError, r"\bcallbacks must be")]
    if name == "validation_data":
        if value is None:
            return []
        return [Problem((TypeError, ValueError), r"\bvalidation_data")]
    raise AssertionError(name)


# ---------------------------------------------------------------- gradcheck
@fuzz("gradcheck", share=3)
def test_gradcheck(backend, data):
    smooth = flag(data)
    net = draw_network(data, backend, max_layers=2, max_width=3, acts=SMOOTH if smooth else None, wide=False)
    loss = draw_loss(data, net)
    d = usually(data, [1, 2, 3, 4, 5], [0])
    moderate = flag(data)
    X = draw_batch(data, net, d=d, specials=not moderate)
    Y = draw_targets(data, net, loss, d, specials=not moderate)
    Xc, Yc, problems = expect_XY(net, X, Y, loss)
    kw = {}
    if one_in(data, 6):
        kw["eps"] = pick(data, [1e-5, 1e-7, 0.0, -1e-6, float("nan"), float("inf"), "1e-6", None,
                                               True])
        e = kw["eps"]
        if isinstance(e, (bool, str)) or e is None:
            problems.append(Problem(TypeError, r"\beps must be a number"))
        elif not (math.isfinite(e) and e > 0):
            problems.append(Problem(ValueError, r"\beps must be a number"))
    if one_in(data, 16):
        target = pick(data, [None, "net", 3, net.layers[0]])
        problems.append(Problem(TypeError, r"\bnet must be a pynn\.Network"))
    else:
        target = net
    before, snaps = weights(net), (snapshot(X), snapshot(Y))
    status, err = outcome(lambda: pynn.gradcheck(target, X, Y, loss, **kw), problems)
    assert same_weights(net, before) and unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status != "ok":
        return
    assert isinstance(err, float)
    want = pynn.gradcheck(twin(net), Xc, Yc, loss, **kw)
    if math.isnan(want):
        assert math.isnan(err)
        return
    assert err >= 0
    if smooth and moderate and np.abs(Xc).max(initial=0) < 100:
        # backpropagation is right, so it agrees with finite differences on every backend
        assert err < 1e-4 and want < 1e-4, (err, want, net, loss, Xc, Yc)


# ---------------------------------------------------------------- save / load
@fuzz("save/load", share=3)
def test_save_load(backend, data, tmp_path_factory):
    net = draw_network(data, backend)
    if flag(data):  # trained weights, not just the initial ones
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            X = np.random.default_rng(0).normal(size=(net.sizes[0], 4))
            Y = np.random.default_rng(1).random((net.sizes[-1], 4))
            try:
                net.train_step(X, Y, "mse", pynn.SGD(0.1))
            except FloatingPointError:
                pass
    where = tmp_path_factory.mktemp("save")
    kind = pick(data, ["str", "Path", "bytes", "missing-dir", "directory", "junk"])
    path = where / "model.npz"
    arg = {"str": str(path), "Path": path, "bytes": os.fsencode(path), "missing-dir": where / "no" / "m.npz",
           "directory": where, "junk": pick(data, [None, 3, 1.5, ["m.npz"]])}[kind]
    if kind == "junk":
        outcome(lambda: net.save(arg), [Problem(TypeError, r"\bpath must be a str, bytes or os\.PathLike")])
        return
    if kind in ("missing-dir", "directory"):  # the OS's error, naming the place
        with pytest.raises(OSError, match=re.escape(str(where))):
            net.save(arg)
        assert sorted(p.name for p in where.iterdir()) == [], "a failed save left files behind"
        return
    status, _ = outcome(lambda: net.save(arg), [])
    assert sorted(p.name for p in where.iterdir()) == ["model.npz"]
    backend_arg = pick(data, [None, None, "auto", "numpy", backend, "cuda", 3])
    kw = {} if backend_arg is None else {"backend": backend_arg}
    problems = []
    if backend_arg == "cuda":
        problems.append(Problem(ValueError, r"\bbackend must be one of"))
    elif backend_arg == 3:
        problems.append(Problem(TypeError, r"\bbackend must be a str"))
    status, loaded = outcome(lambda: pynn.load(arg, **kw), problems)
    if status != "ok":
        return
    assert loaded.sizes == net.sizes and loaded.dtype == net.dtype
    assert [l.activation for l in loaded.layers] == [l.activation for l in net.layers]
    assert same_weights(loaded, weights(net))
    assert loaded.backend == (pynn.available_backends()[0] if backend_arg == "auto" else backend_arg or backend)
    X = np.random.default_rng(2).normal(size=(net.sizes[0], 5)).astype(net.dtype)
    if loaded.backend == backend:  # the same backend and weights: the same predictions, bit for bit
        assert np.array_equal(loaded.predict(X), net.predict(X))


# ---------------------------------------------------------------- constructors and setters
JUNK_SIZES = [0, -1, -3, 10**12, 2**70, True, False, 2.0, 3.5, "3", None, np.int64(4), np.uint8(2), np.float64(2.0)]


def size_arg(data, *, huge=True):
    """A layer width as users pass it: mostly a small int, sometimes anything."""
    junk = JUNK_SIZES if huge else [v for v in JUNK_SIZES if not (isinstance(v, int) and v > 100)]
    return usually(data, list(range(1, 9)), junk, odds=5)


def expect_size(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return [Problem(TypeError, rf"\b{name} must be an int >= 1")]
    return [Problem(ValueError, rf"\b{name} must be an int >= 1")] if value < 1 else []


JUNK_ACTS = ["Sigmoid", "swish", "", None, 3, ["relu"]]
INIT_NAMES = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")


def expect_activation(value, name="activation"):
    if isinstance(value, str) and value in OUTPUT:
        return []
    return [Problem((ValueError, TypeError), rf"\b{name} must be one of")]


def expect_param(value, shape, name, *, flat_ok=False):
    arr, problems = __import__("fuzzing").as_numeric(value, name)
    if problems:
        return None, problems
    if flat_ok and arr.shape == shape[:1]:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        return None, [Problem(ValueError, rf"\b{re.escape(name)} must have shape")]
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return None, [Problem(ValueError, rf"\b{re.escape(name)} contains NaN or infinity")]
    return arr, []


@fuzz("Dense(...)")
def test_dense(data):
    n_in, n_out = size_arg(data), size_arg(data)
    activation = usually(data, OUTPUT, JUNK_ACTS)
    problems = expect_size(n_in, "n_in") + expect_size(n_out, "n_out") + expect_activation(activation)
    kind = usually(data, ["none", "name", "pair"], ["junk"])
    init, given = None, None
    if kind == "name":
        init = usually(data, INIT_NAMES, ("uniform", "Zeros", ""))
        if init not in INIT_NAMES:
            problems.append(Problem(ValueError, r"\binit must be None, \(W, b\) or one of"))
    elif kind == "pair" and not problems and int(n_in) * int(n_out) <= 64:
        wshape = usually(data, [(n_out, n_in)], [(n_in, n_out), (n_out,), (n_out, n_in, 1)])
        bshape = usually(data, [(n_out, 1), (n_out,)], [(n_out, 2), (1,)])
        W = user_array(data, wshape)
        b = user_array(data, bshape)
        init = pick(data, [(W, b), [W, b]])
        Wc, pw = expect_param(W, (n_out, n_in), "init[0]")
        bc, pb = expect_param(b, (n_out, 1), "init[1]", flat_ok=True)
        problems += pw + pb
        given = (Wc, bc)
    elif kind == "junk":
        init = pick(data, [3, 1.5, (1, 2, 3), {}, b"zeros"])
        problems.append(Problem((TypeError, ValueError), r"\binit must be"))
    status, layer = outcome(lambda: pynn.Dense(n_in, n_out, activation, init=init), problems)
    if status != "ok":
        return
    assert (layer.n_in, layer.n_out, layer.activation) == (n_in, n_out, activation)
    if int(n_in) * int(n_out) <= 10**4:
        assert layer.W.shape == (n_out, n_in) and layer.b.shape == (n_out, 1)
    if given is not None:
        assert np.array_equal(layer.W, np.asarray(given[0], np.float64))
        assert np.array_equal(layer.b, np.asarray(given[1], np.float64).reshape(n_out, 1))


@fuzz("Dense.W/b setters", share=3)
def test_weight_setters(backend, data):
    net = draw_network(data, backend, wide=False)
    l = integer(data, 0, len(net.layers) - 1)
    layer = net.layers[l]
    which = pick(data, ["W", "b"])
    shape = layer.W.shape if which == "W" else layer.b.shape
    drawn = pick(data, [shape] * 6 + [shape[::-1], (shape[0],), (shape[0] + 1, shape[1]),
                                                     (1, 1), ()])
    value = user_array(data, drawn, net_dtype=net.dtype)
    clean, problems = expect_param(value, shape, which, flat_ok=which == "b")
    if clean is not None:
        clean, problems = __import__("fuzzing").finite_cast(clean, net.dtype, which)
    before, v_snap = weights(net), snapshot(value)
    status, _ = outcome(lambda: setattr(layer, which, value), problems)
    assert unchanged(value, v_snap)
    if status != "ok":
        assert same_weights(net, before), f"a rejected {which} changed the weights"
        return
    got = getattr(layer, which)
    assert got.dtype == net.dtype and got.shape == shape
    # cast once to the dtype (values that pass through float64 on the way round at most once more)
    np.testing.assert_array_max_ulp(got, clean.reshape(shape), maxulp=1)
    for k, (other, (W0, b0)) in enumerate(zip(net.layers, before)):  # nothing else moved
        assert np.array_equal(other.W, W0) or (k == l and which == "W")
        assert np.array_equal(other.b, b0) or (k == l and which == "b")
    # and the network computes with the new weights (the fused path shares the buffer)
    X = np.random.default_rng(0).normal(size=(net.sizes[0], 3)).astype(net.dtype)
    _, _, _, E = forward_bound(net, X.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_within(net.predict(X), twin(net).predict(X), NET_TOL[net.dtype] * E, NET_TOL[net.dtype], "forward")


F64 = np.dtype("float64")


def expect_layers(seq):
    """Network's rules for its layers: Dense objects, not yet in a network, not repeated,
    chaining (n_out of one is n_in of the next), softmax only last."""
    if not seq:
        return [Problem(ValueError, r"\blayers must hold at least one Dense layer")]
    problems = []
    for i, layer in enumerate(seq):
        if not isinstance(layer, pynn.Dense):
            return problems + [Problem(TypeError, rf"\blayers\[{i}\] must be a pynn\.Dense")]
        if layer.activation == "softmax" and i < len(seq) - 1:
            problems.append(Problem(ValueError, rf"\blayers\[{i}\] has activation 'softmax'"))
        if i and seq[i - 1].n_out != layer.n_in:
            problems.append(Problem(ValueError, rf"\blayer sizes must chain: layers\[{i - 1}\] has n_out"))
    if len(set(map(id, seq))) < len(seq):
        problems.append(Problem(ValueError, r"\blayers must not repeat a Dense instance"))
    return problems


@fuzz("Network(...)")
def test_network(data):
    n = integer(data, 0, 4)
    sizes = [integer(data, 1, 4) for _ in range(n + 1)]
    chain = not one_in(data, 10)
    layers, problems = [], []
    for i in range(n):
        n_in = sizes[i] if chain else integer(data, 1, 4)
        init = None
        if one_in(data, 5):
            W = np.random.default_rng(i).normal(size=(sizes[i + 1], n_in))
            if one_in(data, 4):
                W[0, 0] = 1e39  # fine in float64, beyond float32
            init = (W, np.zeros(sizes[i + 1]))
        act = pick(data, OUTPUT) if i == n - 1 else usually(data, HIDDEN, ["softmax"], odds=10)
        layers.append(pynn.Dense(n_in, sizes[i + 1], act, init=init))
    shape = usually(data, ["list", "tuple", "generator", "single"], ["junk", "item", "repeat", "taken"])
    arg: object = layers
    seq = list(layers)
    if shape == "tuple":
        arg = tuple(layers)
    elif shape == "generator":
        arg = (l for l in layers)
    elif shape == "single" and layers:
        arg = layers[0]
        seq = [layers[0]]
    elif shape == "junk":
        arg = pick(data, [None, 3, 1.5])
    elif shape == "item":
        arg = seq = layers + [pick(data, [None, 3, "dense", pynn.Dense])]
    elif shape == "repeat" and layers:
        arg = seq = layers + [layers[-1]]
    elif shape == "taken" and layers:
        pynn.Network([layers[-1]], dtype="float64")
        problems.append(Problem(ValueError, r"\blayers\[\d+\] already belongs to a Network"))
    if shape == "junk":
        problems.append(Problem(TypeError, r"\blayers must be a sequence of pynn\.Dense"))
    else:
        problems += expect_layers(seq)
    dtype = usually(data, ["float32", "float64", np.float32, F64], ["float16", "int32", None, "floaty"])
    backend = usually(data, ["auto", "cpp", "numba", "numpy"], ["CPP", "", None, 1])
    seed_arg = usually(data, [None, 0, 7, 2**40, 2**70, np.int64(3)], [-1, 1.5, True, "1"])
    # (not `dtype in (...)`: NumPy's dtype compares equal to None)
    if not ((isinstance(dtype, str) and dtype in ("float32", "float64")) or dtype is np.float32 or dtype is F64):
        problems.append(Problem(ValueError, r"\bdtype must be 'float32' or 'float64'"))
    if not isinstance(backend, str):
        problems.append(Problem(TypeError, r"\bbackend must be a str"))
    elif backend not in ("auto", "cpp", "numba", "numpy"):
        problems.append(Problem(ValueError, r"\bbackend must be one of"))
    if seed_arg is not None and (isinstance(seed_arg, bool) or not isinstance(seed_arg, (int, np.integer))):
        problems.append(Problem(TypeError, r"\bseed must be an int >= 0"))
    elif seed_arg is not None and seed_arg < 0:
        problems.append(Problem(ValueError, r"\bseed must be an int >= 0"))
    big = [i for i, l in enumerate(seq) if isinstance(l, pynn.Dense) and l.init == "given" and np.abs(l.W).max() > 3e38]
    if big and (dtype == "float32" or dtype is np.float32):
        problems.append(Problem(ValueError, rf"\blayers\[{big[0]}\]\.W has values beyond the range of float32"))
    status, net = outcome(lambda: pynn.Network(arg, dtype=dtype, backend=backend, seed=seed_arg), problems)
    if status != "ok":
        assert all(l._net is None for l in layers if shape != "taken"), "a rejected Network kept its layers"
        return
    assert net.sizes == [seq[0].n_in] + [l.n_out for l in seq]
    assert net.dtype == np.dtype(dtype) and net.backend in pynn.available_backends()
    if seed_arg is not None:  # the same seed gives the same weights on every backend
        same = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=None if l.init != "given" else
                                        (l.W, l.b)) for l in seq], dtype=dtype, backend="numpy", seed=seed_arg)
        assert same_weights(net, weights(same))


@fuzz("Network.from_sizes")
def test_from_sizes(data):
    kind = usually(data, ["list", "tuple", "array"], ["junk"])
    n = usually(data, [2, 3, 4], [0, 1])
    sizes = [size_arg(data, huge=False) for _ in range(n)]
    arg: object = sizes
    problems = []
    if kind == "tuple":
        arg = tuple(sizes)
    elif kind == "array":
        arg = np.array([s if isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 < s < 100 else 2
                        for s in sizes], dtype=np.int64)
        sizes = [int(s) for s in arg]
    elif kind == "junk":
        arg = pick(data, [None, 3, 2.5])
        problems.append(Problem(TypeError, r"\bsizes must be"))
    hidden = usually(data, HIDDEN, JUNK_ACTS + ["softmax"])
    output = usually(data, OUTPUT, JUNK_ACTS)
    if kind != "junk":
        if len(sizes) < 2:
            problems.append(Problem(ValueError, r"\bsizes must list at least an input and an output width"))
        for i, s in enumerate(sizes):
            problems += expect_size(s, rf"sizes\[{i}\]")
    problems += expect_activation(hidden, "hidden") + expect_activation(output, "output")
    if hidden == "softmax" and len(sizes) > 2:
        problems.append(Problem(ValueError, r"has activation 'softmax'"))
    kw = {"backend": pick(data, ["auto", "numpy"]), "seed": 1}
    if one_in(data, 7):
        kw["colour"] = "blue"
        problems.append(Problem(TypeError, r"colour"))
    status, net = outcome(lambda: pynn.Network.from_sizes(arg, hidden=hidden, output=output, **kw), problems)
    if status == "ok":
        assert net.sizes == [int(s) for s in sizes]
        assert [l.activation for l in net.layers] == [hidden] * (len(sizes) - 2) + [output]


def check_first_step(opt):
    """The optimizer really uses its settings: a first step on the cpp backend moves the
    weights as expected_first_step says."""
    backend = pynn.available_backends()[0]
    net = pynn.Network.from_sizes([3, 4, 2], hidden="tanh", output="linear", dtype="float64", backend=backend, seed=0)
    X, Y = np.random.default_rng(0).normal(size=(3, 5)), np.random.default_rng(1).normal(size=(2, 5))
    before = weights(net)
    _, grads = net.loss_and_grads(X, Y, "mse")
    net.train_step(X, Y, "mse", opt)
    for (W0, b0), (dW, db), layer in zip(before, grads, net.layers):
        for p0, g, got in ((W0, dW, layer.W), (b0, db, layer.b)):
            want, slope = expected_first_step(p0, g, opt)
            with np.errstate(all="ignore"):
                atol = slope(1e-12) + 1e-10 * (1 + np.abs(p0))
            assert_within(got, want, atol, 1e-10, "a first step")


@fuzz("SGD(...)")
def test_sgd(data):
    lr, momentum = number_arg(data, RATES), number_arg(data, FRACTIONS)
    nesterov = usually(data, [False, True, np.bool_(True)], [0, 1, "yes", None])
    problems = expect_number(lr, "lr", low=0, low_open=True) + expect_number(momentum, "momentum", 0, 1,
                                                                             high_open=True)
    if not isinstance(nesterov, (bool, np.bool_)):
        problems.append(Problem(TypeError, r"\bnesterov must be a bool"))
    elif nesterov and not problems and float(momentum) == 0:
        problems.append(Problem(ValueError, r"\bnesterov=True needs momentum > 0"))
    status, opt = outcome(lambda: pynn.SGD(lr, momentum=momentum, nesterov=nesterov), problems)
    if status == "ok":
        assert opt.get_config() == {"lr": float(lr), "momentum": float(momentum), "nesterov": bool(nesterov),
                                    "clip_value": None, "clip_norm": None}
        if float(lr) <= 10:
            check_first_step(opt)


@fuzz("Adam(...)")
def test_adam(data):
    typical = {"lr": RATES, "beta1": FRACTIONS, "beta2": FRACTIONS, "eps": [1e-8, 1e-6, 1.0, 1e-300],
               "weight_decay": [0.0, 1e-4, 0.1, 1.0]}
    args = {k: number_arg(data, v) for k, v in typical.items() if one_in(data, 3)}
    problems = expect_rates(args)
    status, opt = outcome(lambda: pynn.Adam(**args), problems)
    if status == "ok":
        cfg = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip_value=None, clip_norm=None) \
            | {k: float(v) for k, v in args.items()}
        assert opt.get_config() == cfg
        if cfg["lr"] <= 10 and cfg["lr"] * cfg["weight_decay"] < 1e6:
            check_first_step(opt)


JUNK_THREADS = st.one_of(st.integers(-2**70, 0), st.sampled_from([True, 2.0, "2", None]), st.floats(),
                         st.text(max_size=2))
BIG_THREADS = st.integers(9, 2**70)


def thread_count(data):
    """Mostly 1 to 8, sometimes huge (2**63 and more), sometimes not a count at all."""
    if one_in(data, 5):
        return data.draw(JUNK_THREADS)
    if one_in(data, 8):
        return data.draw(BIG_THREADS)
    return usually(data, list(range(1, 9)), [np.int32(3), np.int64(1), np.uint64(2)])


@fuzz("set_num_threads")
def test_set_num_threads(data):
    n = thread_count(data)
    problems = expect_size(n, "n")
    old = pynn.get_num_threads()
    try:
        status, _ = outcome(lambda: pynn.set_num_threads(n), problems)
        if status == "ok":
            assert pynn.get_num_threads() == n
        else:
            assert pynn.get_num_threads() == old, "a rejected set_num_threads changed the thread count"
    finally:
        pynn.set_num_threads(old)
