"""The training-health monitor: every recorded figure against NumPy computed from the network
itself, and the warnings on a deep sigmoid stack (vanishing) and a blown-up linear one."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import pynn
from pynn.health import PROBE, TrainingHealthWarning


def test_figures_equal_numpy(backend, rng, monkeypatch):
    """Full-batch float64, no shuffle: the epoch's last gradient is the gradient at the weights
    the epoch started from, which a callback keeps; every figure is recomputed from those."""
    monkeypatch.setattr(pynn.health, "BUDGET", math.inf)  # record every epoch however short
    X, y = rng.normal(size=(5, 300)), rng.integers(0, 3, size=300)
    net = pynn.Network.from_sizes([5, 12, 7, 3], hidden="relu", dtype=np.float64, backend=backend, seed=2)
    starts = []

    class Keep(pynn.Callback):
        def on_epoch_begin(self, net, epoch, logs):
            starts.append([(l.W.copy(), l.b.copy()) for l in net.layers])

    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=3, batch_size=300, shuffle=False,
                callbacks=[Keep()])
    ref = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=start) for l, start in
                        zip(net.layers, starts[-1])], dtype=np.float64, backend="numpy")
    _, grads = ref.loss_and_grads(X, y, "cross_entropy")
    A = X[:, :PROBE]
    for l, layer in enumerate(net.layers):
        rec = h.health[l]
        assert all(len(v) == 3 for v in rec.values()) and h.health_epochs == [0, 1, 2]
        W0 = starts[-1][l][0]
        np.testing.assert_allclose(rec["weight_norm"][-1], np.linalg.norm(layer.W), rtol=1e-12)
        np.testing.assert_allclose(rec["grad_norm"][-1], np.linalg.norm(grads[l][0]), rtol=1e-10)
        np.testing.assert_allclose(rec["update_ratio"][-1], np.linalg.norm(layer.W - W0) / np.linalg.norm(W0),
                                   rtol=1e-10)
        A = layer.W @ A + layer.b
        if l < 2:
            A = np.maximum(A, 0)
            assert rec["dead"][-1] == np.mean(np.all(A <= 0, axis=1))
        else:
            assert math.isnan(rec["dead"][-1])
        assert math.isnan(rec["saturated"][-1])


def test_dead_and_saturated_units_are_counted(backend, rng):
    X, y = rng.normal(size=(4, 100)), rng.integers(0, 2, size=100)
    net = pynn.Network([pynn.Dense(4, 10, "relu"), pynn.Dense(10, 6, "sigmoid"), pynn.Dense(6, 2, "softmax")],
                       backend=backend, seed=0)
    b = net.layers[0].b.copy()
    b[:4] = -1e3  # four units can never fire
    net.layers[0].b = b
    net.layers[1].W = 1e3 * np.sign(net.layers[1].W)  # pinned to 0 or 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingHealthWarning)  # layer 0's gradient vanishes, of course
        h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(1e-6), epochs=1)
    assert h.health[0]["dead"][0] >= 0.4
    A1 = 1 / (1 + np.exp(-np.clip(net.layers[1].W @ np.maximum(net.layers[0].W @ X + net.layers[0].b, 0)
                                  + net.layers[1].b, -500, 500)))
    want = np.count_nonzero((A1 < 0.01) | (A1 > 0.99)) / A1.size
    assert abs(h.health[1]["saturated"][0] - want) <= 0.02 and want > 0.5


def test_vanishing_gradient_warns_and_names_the_layer(backend, rng):
    """The seed's warning: in a deep sigmoid stack the first layers' gradients vanish."""
    sizes = [4] + [6] * 14 + [1]
    net = pynn.Network.from_sizes(sizes, hidden="sigmoid", output="sigmoid", backend=backend, seed=0)
    X, y = rng.normal(size=(4, 64)), rng.integers(0, 2, size=(1, 64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = net.fit(X, y, loss="bce", optimizer=pynn.SGD(0.1), epochs=2)
    msgs = [str(w.message) for w in caught if w.category is TrainingHealthWarning]
    assert msgs[0].startswith("layer 0 (4->6, sigmoid): vanishing gradient in epoch 0")
    rel = [rec["grad_norm"][0] / rec["weight_norm"][0] for rec in h.health]
    # exactly the layers below the threshold are named, once each
    assert sorted(int(m.split()[1]) for m in msgs) == [l for l, r in enumerate(rel) if r < 1e-6 * max(rel[l + 1:], default=0)]
    assert rel[0] < 1e-6 * max(rel)


def test_exploding_gradient_warns(backend, rng):
    net = pynn.Network([pynn.Dense(3, 3, "linear"), pynn.Dense(3, 1, "linear")], dtype=np.float64,
                       backend=backend, seed=0)
    net.layers[0].W = 1e-6 * np.eye(3)
    X, Y = 1e6 * rng.normal(size=(3, 8)), rng.normal(size=(1, 8))
    with pytest.warns(TrainingHealthWarning, match=r"layer 0 .*: exploding gradient"):
        net.fit(X, Y, loss="mse", optimizer=pynn.SGD(1e-30), epochs=1)


def test_short_epochs_are_sampled(monkeypatch, rng):
    """With no time to spare only the first and the last epoch are recorded."""
    monkeypatch.setattr(pynn.health, "BUDGET", 0.0)
    X, y = rng.normal(size=(4, 16)), rng.integers(0, 2, size=16)
    h = pynn.Network.from_sizes([4, 5, 2], seed=0).fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1),
                                                       epochs=6)
    assert h.health_epochs == [0, 5] and all(len(v) == 2 for v in h.health[0].values())


def test_converged_network_is_not_flagged(backend):
    """XOR trained to a tiny loss: every layer's gradient is small, none is flagged."""
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
    y = np.array([[0, 1, 1, 0]], float)
    net = pynn.Network.from_sizes([2, 8, 1], hidden="tanh", output="sigmoid", dtype=np.float64, backend=backend,
                                  seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingHealthWarning)
        h = net.fit(X, y, loss="bce", optimizer=pynn.Adam(0.05), epochs=600, batch_size=4)
    assert h.loss[-1] < 1e-3


def test_health_off_records_nothing_and_bad_flag_is_rejected(rng):
    X, y = rng.normal(size=(4, 32)), rng.integers(0, 2, size=32)
    net = pynn.Network.from_sizes([4, 5, 2], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, health=False)
    assert h.health == []
    with pytest.raises(TypeError, match="health must be a bool"):
        net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), health="yes")
