"""Divergence: a step whose loss, gradient or update is not finite is refused and the network keeps
its last finite weights; ``fit`` stops with :class:`pynn.Diverged` (or a callback decides) and the
History records where. Gradient clipping by value and by global norm, against the formulas of
``torch.nn.utils.clip_grad_value_`` / ``clip_grad_norm_`` written out in NumPy (float64)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import pynn
from conftest import NET_TOL


def small_net(backend, dtype=np.float64, seed=1, sizes=(3, 5, 2), hidden="tanh", output="linear"):
    return pynn.Network.from_sizes(list(sizes), hidden=hidden, output=output, dtype=dtype, backend=backend,
                                   seed=seed)


def data(rng, n_in=3, n_out=2, d=8):
    return rng.normal(size=(n_in, d)), rng.normal(size=(n_out, d))


# ---------------------------------------------------------------- clipping
def clipped(g, value=None, norm=None):
    """torch.nn.utils.clip_grad_value_ then clip_grad_norm_, on a flat float64 copy."""
    g = g.copy()
    if value is not None:
        np.clip(g, -value, value, out=g)
    if norm is not None:
        coef = norm / (math.sqrt(float(np.dot(g, g))) + 1e-6)
        if coef < 1:
            g *= coef
    return g


@pytest.mark.parametrize("clip", [dict(clip_norm=0.05), dict(clip_norm=1e3), dict(clip_value=0.01),
                                  dict(clip_value=0.01, clip_norm=0.02)], ids=["norm", "norm-off", "value", "both"])
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_clipped_step_equals_the_formula(backend, rng, clip, opt):
    """One step with clipping equals: the reference gradient, clipped by the formula above, then
    the optimizer's update written out (float64)."""
    X, Y = data(rng)
    net = small_net(backend)
    p0 = net._params.copy()
    _, grads = small_net("numpy").loss_and_grads(X, Y, "mse")
    g = clipped(np.concatenate([np.concatenate([dW.ravel(), db.ravel()]) for dW, db in grads]),
                clip.get("clip_value"), clip.get("clip_norm"))
    if opt == "adam":
        optimizer, lr = pynn.Adam(0.01, **clip), 0.01
        m, v = 0.1 * g, 0.001 * g * g
        want = p0 - lr / (1 - 0.9) * m / (np.sqrt(v) / math.sqrt(1 - 0.999) + 1e-8)
    else:
        mu = 0.9 if opt == "momentum" else 0.0
        optimizer = pynn.SGD(0.1, momentum=mu, **clip)
        want = p0 - 0.1 * g  # the first momentum step: v = g
    net.train_step(X, Y, "mse", optimizer)
    np.testing.assert_allclose(net._params, want, rtol=1e-10, atol=1e-12)
    if "clip_norm" in clip and clip["clip_norm"] < 1:  # the clip was active: the step is that short
        assert np.linalg.norm(net._params - p0) <= (0.1 if opt != "adam" else 1.0) * clip["clip_norm"] * 1.0001 \
            or opt == "adam"


def test_clip_settings_are_checked():
    with pytest.raises(ValueError, match="clip_norm"):
        pynn.SGD(0.1, clip_norm=0)
    with pytest.raises(ValueError, match="clip_value"):
        pynn.Adam(clip_value=-1.0)
    with pytest.raises(TypeError):
        pynn.SGD(0.1, 0.0, False, 1.0)  # keyword-only
    assert pynn.SGD(0.1, clip_norm=1.0).get_config()["clip_norm"] == 1.0


def test_clip_norm_keeps_a_large_learning_rate_finite(backend, rng):
    """Without clipping this fit diverges; with clip_norm it does not, on every backend."""
    X, Y = rng.normal(size=(3, 64)), 100 * rng.normal(size=(2, 64))
    fit = dict(loss="mse", epochs=30, batch_size=16, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy/numba report the overflow as well
        with pytest.raises(pynn.Diverged):
            small_net(backend, hidden="relu").fit(X, Y, optimizer=pynn.SGD(0.5), **fit)
    h = small_net(backend, hidden="relu").fit(X, Y, optimizer=pynn.SGD(0.5, clip_norm=1.0), **fit)
    assert h.stop_reason is None and len(h) == 30 and all(map(math.isfinite, h.loss))


# ---------------------------------------------------------------- an update that overflows
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam", "rmsprop"])
@pytest.mark.parametrize("sizes", [(3, 5, 2), (3, 200, 200, 2)], ids=["small", "large"])
def test_update_that_overflows_is_taken_back(backend, rng, opt, sizes):
    """Finite loss and gradient, but lr so large that the new weights are inf: the step raises
    and W, b and the optimizer state are exactly as before; the next sane step matches a twin.
    (The large net takes the numba backend's per-kernel path instead of its fused one.)"""
    X, Y = data(rng)
    Y *= 1e3  # gradients of about 1e3: lr * g overflows below
    net, twin = small_net(backend, sizes=sizes), small_net(backend, sizes=sizes)
    make = {"sgd": lambda lr: pynn.SGD(lr), "momentum": lambda lr: pynn.SGD(lr, momentum=0.9),
            "adam": lambda lr: pynn.Adam(lr),
            "rmsprop": lambda lr: pynn.RMSprop(lr, momentum=0.9, centered=True)}[opt]  # all 3 state arrays
    o_net, o_twin = make(1e-3), make(1e-3)
    net.train_step(X, Y, "mse", o_net)
    twin.train_step(X, Y, "mse", o_twin)
    before = net._params.copy()
    state = {k: np.array(v, copy=True) for k, v in o_net.state(net).items()
             if isinstance(v, np.ndarray) and not k.startswith("_")}  # _undo is scratch
    o_net.lr = 1e308
    if opt == "adam":  # Adam's step is about lr whatever g is; the decay factor 1 - lr * wd overflows
        o_net.weight_decay = 1e300
    with pytest.raises(pynn.Diverged, match="gradient or the updated weights are not finite"):
        net.train_step(X, Y, "mse", o_net)
    assert np.array_equal(net._params, before)
    for k, v in state.items():
        assert np.array_equal(o_net.state(net)[k], v), k
    o_net.lr = 1e-3
    if opt == "adam":
        o_net.weight_decay = 0.0
    assert net.train_step(X, Y, "mse", o_net) == twin.train_step(X, Y, "mse", o_twin)
    assert np.array_equal(net._params, twin._params)


# ---------------------------------------------------------------- fit
def exploding(backend, rng, dtype=np.float64):
    """A linear net and an lr that make the weights grow until the loss overflows."""
    net = pynn.Network([pynn.Dense(4, 6, "linear"), pynn.Dense(6, 3, "linear")], dtype=dtype, backend=backend,
                       seed=7)
    X, Y = rng.normal(size=(4, 40)), rng.normal(size=(3, 40))
    return net, X, Y


def replay(backend, X, Y, steps, lr, bs, dtype=np.float64):
    """The same net after ``steps`` train_steps over the in-order batches: the oracle for
    'the weights of the last completed step'."""
    net, _, _ = exploding(backend, np.random.default_rng(0), dtype)
    opt = pynn.SGD(lr)
    n = X.shape[1]
    for k in range(steps):
        s = (k * bs) % n
        net.train_step(X[:, s:s + bs], Y[:, s:s + bs], "mse", opt)
    return net


def test_fit_stops_with_diverged_and_keeps_the_last_finite_weights(backend, rng, dtype):
    net, X, Y = exploding(backend, rng, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(pynn.Diverged, match=r"fit stopped at epoch \d+, batch \d+: the loss is not finite") \
                as err:
            net.fit(X, Y, loss="mse", optimizer=pynn.SGD(1.5), epochs=500, batch_size=8, shuffle=False)
    assert isinstance(err.value, FloatingPointError)
    h = err.value.history
    assert h is net.history and h.stop_reason == "diverged"
    at = h.stopped_at
    assert at["epoch"] == len(h) and 0 <= at["batch"] < 5 and not math.isfinite(at["loss"])
    assert all(math.isfinite(v) for v in h.loss)
    assert np.isfinite(net._params).all()
    steps = len(h) * 5 + at["batch"]
    want = replay(backend, X, Y, steps, 1.5, 8, dtype)
    np.testing.assert_allclose(net._params, want._params, rtol=NET_TOL[np.dtype(dtype)] * 10)


def test_a_callback_can_stop_quietly(backend, rng):
    seen = []

    class Stop(pynn.Callback):
        def on_divergence(self, net, logs):
            seen.append(dict(logs))
            net.stop_training = True

    net, X, Y = exploding(backend, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = net.fit(X, Y, loss="mse", optimizer=pynn.SGD(1.5), epochs=500, batch_size=8, shuffle=False,
                    callbacks=[Stop()])
    assert h.stop_reason == "diverged" and len(seen) == 1
    assert seen[0]["epoch"] == h.stopped_at["epoch"] == len(h) and seen[0]["batch"] == h.stopped_at["batch"]
    assert np.isfinite(net._params).all()


def test_a_callback_can_roll_back_lower_the_rate_and_go_on(backend, rng):
    """The refused batch is skipped; the callback restores the starting weights and lowers lr,
    and training runs to the end with a finite loss."""
    calls = []

    class Calm(pynn.Callback):
        def __init__(self, opt):
            self.opt, self.saved = opt, None

        def on_train_begin(self, net, logs):
            self.saved = [(l.W.copy(), l.b.copy()) for l in net.layers]

        def on_divergence(self, net, logs):
            calls.append(logs["batch"])
            for layer, (W, b) in zip(net.layers, self.saved):
                layer.W, layer.b = W, b
            self.opt.lr /= 10

    net, X, Y = exploding(backend, rng)
    opt = pynn.SGD(1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = net.fit(X, Y, loss="mse", optimizer=opt, epochs=200, batch_size=8, shuffle=False,
                    callbacks=[Calm(opt)])
    assert calls and h.stop_reason is None and len(h) == 200 and opt.lr < 1.5
    assert np.isfinite(net._params).all() and math.isfinite(h.loss[-1]) and h.loss[-1] < 10


@pytest.mark.parametrize("loss", ["poisson", "mse"])
def test_exp_output_overflow_is_divergence(backend, loss):
    """exp(Z) overflowing to inf is a refused step (Diverged, weights kept), never a warning."""
    net = pynn.Network.from_sizes([2, 3, 1], hidden="gelu", output="exp", dtype="float64", backend=backend, seed=0)
    net.layers[1].W = np.full((1, 3), 400.0)
    before = net._params.copy()
    with pytest.raises(pynn.Diverged, match=r"the loss is not finite \(J = inf\)"):
        net.train_step(np.ones((2, 4)), np.ones((1, 4)), loss, pynn.SGD(0.1))
    assert np.array_equal(net._params, before)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # NumPy's matmul says so
@pytest.mark.parametrize("opt", ["adam", "adam-clipped", "sgd"])
def test_a_non_finite_gradient_under_a_finite_loss_is_refused(backend, opt):
    """Inputs near float32's largest value and weights near its smallest: the forward pass and J
    stay finite while dW = dZ Xᵀ overflows. The step is refused and nothing changes (the compiled
    Adam without clipping relies on its own update to notice; the others check the gradient)."""
    X = np.full((2, 10), 3e38, np.float32)
    Y = np.zeros((1, 10), np.float32)
    W, b = np.full((1, 2), 1.6e-38, np.float32), np.zeros(1, np.float32)  # Z ≈ 9.6, dW ≈ 3e39
    net = pynn.Network([pynn.Dense(2, 1, "linear", init=(W, b))], dtype="float32", backend=backend)
    J, grads = net.loss_and_grads(X, Y, "mse")
    assert np.isfinite(J) and not np.isfinite(grads[0][0]).all()  # the premise
    optimizer = {"adam": lambda: pynn.Adam(1e-3), "adam-clipped": lambda: pynn.Adam(1e-3, clip_norm=1.0),
                 "sgd": lambda: pynn.SGD(1e-3, momentum=0.9)}[opt]()
    net.train_step(X * 0, Y, "mse", optimizer)  # a finite step first, so the state is not all zeros
    before = net._params.copy()
    state = {k: np.array(v, copy=True) for k, v in optimizer.state(net).items()
             if isinstance(v, np.ndarray) and not k.startswith("_")}
    with pytest.raises(pynn.Diverged, match="not finite"):
        net.train_step(X, Y, "mse", optimizer)
    assert np.array_equal(net._params, before)
    for k, v in state.items():
        assert np.array_equal(optimizer.state(net)[k], v), k
