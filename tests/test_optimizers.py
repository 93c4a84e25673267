"""Optimizer steps against the hand-written formulas (textbook SGD, momentum, Nesterov, Adam/AdamW)."""

import numpy as np
import pytest

import pynn


def small_net(backend, seed=0):
    return pynn.Network.from_sizes([3, 4, 2], hidden="tanh", output="linear", dtype="float64",
                                   backend=backend, seed=seed)


def batch(rng):
    return rng.normal(size=(3, 5)), rng.normal(size=(2, 5))


def flat(net):
    return np.concatenate([np.concatenate([l.W.ravel(), l.b.ravel()]) for l in net.layers])


def flat_grads(grads):
    return np.concatenate([np.concatenate([dW.ravel(), db.ravel()]) for dW, db in grads])


def run(net, opt, X, Y, steps):
    """Apply `steps` updates; return the (params, grads) seen before each step."""
    seen = []
    for _ in range(steps):
        _, g = net.loss_and_grads(X, Y, "mse")
        seen.append((flat(net), flat_grads(g)))
        net.train_step(X, Y, "mse", opt)
    return seen


def test_sgd_plain(backend, rng):
    net, (X, Y) = small_net(backend), batch(rng)
    (p0, g0), = run(net, pynn.SGD(0.3), X, Y, 1)
    np.testing.assert_allclose(flat(net), p0 - 0.3 * g0, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(backend, nesterov, rng):
    net, (X, Y) = small_net(backend), batch(rng)
    mu, lr = 0.8, 0.1
    seen = run(net, pynn.SGD(lr, momentum=mu, nesterov=nesterov), X, Y, 4)
    p, v = seen[0][0].copy(), np.zeros_like(seen[0][0])
    for _, g in seen:
        v = mu * v + g
        p = p - lr * (g + mu * v if nesterov else v)
    np.testing.assert_allclose(flat(net), p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam(backend, wd, rng):
    net, (X, Y) = small_net(backend), batch(rng)
    lr, b1, b2, eps = 0.01, 0.9, 0.99, 1e-8
    seen = run(net, pynn.Adam(lr, b1, b2, eps, weight_decay=wd), X, Y, 5)
    p = seen[0][0].copy()
    m = v = np.zeros_like(p)
    for t, (_, g) in enumerate(seen, start=1):  # Kingma & Ba, with AdamW's decoupled decay
        p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
    np.testing.assert_allclose(flat(net), p, rtol=1e-10, atol=1e-13)


def test_optimizer_state_is_per_network(rng):
    # Two networks sharing one Adam object train exactly like one network with its own Adam.
    X, Y = batch(rng)
    shared, own = pynn.Adam(0.01), pynn.Adam(0.01)
    a, b, c = small_net("numpy"), small_net("numpy"), small_net("numpy")
    for _ in range(3):
        a.train_step(X, Y, "mse", shared)
        b.train_step(X, Y, "mse", shared)
        c.train_step(X, Y, "mse", own)
    np.testing.assert_array_equal(flat(a), flat(c))
    np.testing.assert_array_equal(flat(b), flat(c))


@pytest.mark.parametrize("make, exc, match", [
    (lambda: pynn.RMSprop(alpha=1.0), ValueError, "alpha"),
    (lambda: pynn.RMSprop(eps=0.0), ValueError, "eps"),
    (lambda: pynn.RMSprop(momentum=-0.1), ValueError, "momentum"),
    (lambda: pynn.RMSprop(weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda: pynn.RMSprop(centered="yes"), TypeError, "centered must be a bool"),
    (lambda: pynn.Rprop(lr=0.0), ValueError, "lr"),
    (lambda: pynn.Rprop(etas=(1.5, 1.2)), ValueError, r"0 < eta_minus < 1 < eta_plus, got \(1.5, 1.2\)"),
    (lambda: pynn.Rprop(etas=0.5), TypeError, "etas must be a pair"),
    (lambda: pynn.Rprop(step_sizes=(1.0, 0.1)), ValueError, r"step_min <= step_max, got \(1.0, 0.1\)"),
    (lambda: pynn.Rprop(step_sizes=(0.0, "big")), TypeError, r"step_sizes\[1\]"),
])
def test_rmsprop_and_rprop_settings_are_checked(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
