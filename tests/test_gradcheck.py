"""Backpropagation against central finite differences (float64), every activation × loss."""

import numpy as np
import pytest

import pynn
import pynn.backends.reference as reference

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "linear"]  # exp: an output activation
PAIRS = [("linear", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("exp", "poisson"), ("sigmoid", "mse"),
         ("tanh", "mse"), ("softmax", "mse"), ("softmax", "bce"), ("sigmoid", "cross_entropy"), ("leaky_relu", "mse"),
         ("softplus", "poisson"), ("linear", "mae"), ("linear", "huber"), ("linear", pynn.losses.Huber(0.3)),
         ("gelu", "huber"), ("elu", "mae"), ("softplus", "mse"), ("exp", "mse"), ("gelu", "mse")]


def data(rng, loss, m=3, d=6):
    X = rng.normal(size=(4, d))
    if loss == "cross_entropy":
        return X, rng.integers(0, m, d)
    if loss == "bce":
        return X, (rng.random((m, d)) > 0.5).astype(float)
    if loss == "poisson":
        return X, rng.poisson(1.5, size=(m, d)).astype(float)
    return X, rng.normal(size=(m, d))


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,loss", PAIRS)
def test_backprop_equals_finite_differences(backend, hidden, output, loss, rng):
    net = pynn.Network.from_sizes([4, 5, 4, 3], hidden=hidden, output=output, dtype="float64",
                                  backend=backend, seed=2)
    X, Y = data(rng, loss)
    assert pynn.gradcheck(net, X, Y, loss) < 1e-6


def test_gradcheck_of_float32_network_runs_in_float64(rng):
    net = pynn.Network.from_sizes([4, 5, 3], hidden="tanh", seed=0)
    before = net._params.copy()
    X, y = data(rng, "cross_entropy")
    assert pynn.gradcheck(net, X, y, "cross_entropy") < 1e-6
    assert net.dtype == np.float32 and np.array_equal(net._params, before)


def test_gradcheck_catches_a_wrong_derivative(monkeypatch, rng):
    # A broken sigmoid derivative (missing the (1 - A) factor) must be caught.
    monkeypatch.setattr(reference, "sigmoid_backward", lambda dA, A, dZ: np.multiply(dA, A, out=dZ))
    net = pynn.Network.from_sizes([4, 5, 3], hidden="sigmoid", dtype="float64", backend="numpy", seed=0)
    X, y = data(rng, "cross_entropy")
    assert pynn.gradcheck(net, X, y, "cross_entropy") > 1e-2


def test_seed_example_gradcheck():
    net = pynn.Network([pynn.Dense(2, 2, "sigmoid"), pynn.Dense(2, 1, "sigmoid")], dtype="float64", backend="numpy")
    net.layers[0].W, net.layers[0].b = [[0.1, 0.4], [0.8, 0.6]], [[0.3], [0.9]]
    net.layers[1].W, net.layers[1].b = [[0.3, 0.7]], [[0.5]]
    assert pynn.gradcheck(net, np.array([[0.5], [0.2]]), np.array([[1.0]]), "bce") < 1e-7
