"""LBFGS (full batch, SciPy's L-BFGS-B) against scikit-learn's ``MLPClassifier(solver="lbfgs")``
started from the same weights: the same loss and weights after the same number of iterations
(float64). Then how it runs inside ``fit``: one History row per iteration, convergence, callbacks,
and the TypeError from ``train_step``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pynn
from conftest import IN_CI

try:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
except ImportError:  # pragma: no cover - scikit-learn is in the test extra
    if IN_CI:
        raise
    MLPClassifier = None
pytestmark = pytest.mark.skipif(MLPClassifier is None, reason="scikit-learn (the oracle) is not installed")

# name: (hidden activation, pynn output, loss, number of classes)
PROBLEMS = {"multiclass-tanh": ("tanh", "softmax", "cross_entropy", 3),
            "binary-relu": ("relu", "sigmoid", "bce", 2)}


def problem(rng, classes, n=80):
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.5).astype(np.int64)
    if classes == 3:
        y += X[:, 2] > 0.3
    return X, y


def sklearn_lbfgs(net, X, y, hidden, iterations, tol):
    """MLPClassifier(solver="lbfgs", alpha=0) run from ``net``'s weights (sklearn holds W.T)."""
    clf = MLPClassifier(hidden_layer_sizes=(net.sizes[1],), activation=hidden, solver="lbfgs", alpha=0.0,
                        max_iter=1, tol=tol, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)  # builds the layers; warm_start keeps the weights set below
        clf.coefs_ = [layer.W.T.copy() for layer in net.layers]
        clf.intercepts_ = [layer.b.ravel().copy() for layer in net.layers]
        clf.max_iter = iterations
        clf.fit(X, y)
    return clf


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_lbfgs_equals_sklearn(backend, rng, name):
    hidden, output, loss, classes = PROBLEMS[name]
    X, y = problem(rng, classes)
    net = pynn.Network.from_sizes([4, 7, 1 if classes == 2 else classes], hidden=hidden, output=output,
                                  dtype="float64", backend=backend, seed=5)
    clf = sklearn_lbfgs(net, X, y, "relu" if hidden == "relu" else hidden, 20, 1e-8)
    Y = y.reshape(1, -1).astype(np.float64) if classes == 2 else y
    h = net.fit(X.T, Y, loss=loss, optimizer=pynn.LBFGS(tol=1e-8), epochs=20)
    assert clf.n_iter_ == 20 and len(h) == 20 and h.stop_reason is None
    np.testing.assert_allclose(h.loss[-1], clf.loss_, rtol=1e-9)
    for layer, W, b in zip(net.layers, clf.coefs_, clf.intercepts_):
        np.testing.assert_allclose(layer.W, W.T, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(layer.b.ravel(), b, rtol=1e-7, atol=1e-9)


def net_and_data(backend, rng, dtype="float64"):
    X, y = problem(rng, 3)
    net = pynn.Network.from_sizes([4, 7, 3], hidden="tanh", output="softmax", dtype=dtype, backend=backend, seed=5)
    return net, X.T, y


def test_history_is_one_row_per_iteration(backend, rng):
    """Each row holds the loss and accuracy at the iterate it ended on (the last one is the
    network's), plus validation scores; the loss falls."""
    net, X, y = net_and_data(backend, rng)
    seen = []
    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.LBFGS(), epochs=6, validation_data=(X[:, :20], y[:20]),
                callbacks=[lambda epoch, logs: seen.append((epoch, net.loss(X, y, "cross_entropy")))])
    assert h.epoch == [0, 1, 2, 3, 4, 5] and set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                                                "time"}
    assert [e for e, _ in seen] == h.epoch
    np.testing.assert_allclose(h.loss, [J for _, J in seen], rtol=1e-12)  # callbacks see each iterate
    assert h.loss[-1] == net.loss(X, y, "cross_entropy")
    assert h.accuracy[-1] == net.evaluate(X, y, "cross_entropy")["accuracy"]
    assert h.val_loss[-1] == net.loss(X[:, :20], y[:20], "cross_entropy")
    assert all(a > b for a, b in zip(h.loss, h.loss[1:]))


def test_float32_network(rng):
    """The line search runs in float64; a float32 network still trains and keeps its dtype."""
    net, X, y = net_and_data("numpy", rng, "float32")
    J0 = net.loss(X, y, "cross_entropy")
    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.LBFGS(), epochs=30)
    assert net._params.dtype == np.float32 and h.loss[-1] < 0.5 * J0
    np.testing.assert_allclose(h.loss[-1], net.loss(X, y, "cross_entropy"), rtol=1e-6)


def test_converged_ends_early(rng):
    net, X, y = net_and_data("numpy", rng)
    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.LBFGS(tol=1e-2), epochs=500)
    assert len(h) < 500 and h.stop_reason == "converged" and h.stopped_at["epoch"] == len(h)
    assert "PROJECTED GRADIENT" in h.stopped_at["message"]  # SciPy's gtol test, on every component:
    assert max(np.abs(g).max() for pair in net.loss_and_grads(X, y, "cross_entropy")[1] for g in pair) <= 1e-2


def test_stop_training_in_a_callback(backend, rng):
    """Stopping after epoch 2 leaves the weights of a 3-iteration run."""
    net, X, y = net_and_data(backend, rng)
    twin, _, _ = net_and_data(backend, rng)

    def stop(epoch, logs):
        if epoch == 2:
            net.stop_training = True

    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.LBFGS(), epochs=10, callbacks=[stop])
    assert len(h) == 3 and h.stop_reason == "stop_training"
    twin.fit(X, y, loss="cross_entropy", optimizer=pynn.LBFGS(), epochs=3)
    assert np.array_equal(net._params, twin._params)


def test_train_step_refuses_lbfgs(backend, rng):
    net, X, y = net_and_data(backend, rng)
    before = net._params.copy()
    with pytest.raises(TypeError, match=r"LBFGS is a full-batch optimizer.*net\.fit"):
        net.train_step(X, y, "cross_entropy", pynn.LBFGS())
    assert np.array_equal(net._params, before)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(tol=-1.0), ValueError, "tol"), (dict(max_fun=0), ValueError, "max_fun"),
    (dict(history_size=2.5), TypeError, "history_size")])
def test_settings_are_checked(kw, exc, match):
    with pytest.raises(exc, match=match):
        pynn.LBFGS(**kw)
