"""The seed's worked 2-2-1 example (sigmoid hidden and output, bce), on every backend.

Exact float64 values are derived here straight from the formulas, independently of pynn, and
must match to 1e-12. The seed prints hand-rounded figures, some computed from already-rounded
intermediates (it gets Z2 ≈ 1.244 from A1 rounded to 3 places; exact is 1.2455), so those are
checked only within 1 % — their rounding, not ours.
"""

import numpy as np
import pytest

import pynn

X = np.array([[0.5], [0.2]])
Y = np.array([[1.0]])
W1 = np.array([[0.1, 0.4], [0.8, 0.6]])
b1 = np.array([[0.3], [0.9]])
W2 = np.array([[0.3, 0.7]])
b2 = np.array([[0.5]])


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---- exact float64, written out from the seed's equations
Z1 = W1 @ X + b1                       # [0.43, 1.42]
A1 = sig(Z1)                           # ≈ [0.606, 0.805]
Z2 = W2 @ A1 + b2                      # ≈ 1.2455
Yhat = sig(Z2)                         # ≈ 0.77652
J = float(-(Y * np.log(Yhat) + (1 - Y) * np.log(1 - Yhat)).sum())   # ≈ 0.25293
dZ2 = Yhat - Y                         # ≈ -0.22348
dW2 = dZ2 @ A1.T
db2 = dZ2
dZ1 = (W2.T @ dZ2) * (A1 * (1 - A1))
dW1 = dZ1 @ X.T
db1 = dZ1

# ---- the seed's printed figures
PRINTED = {
    "Z1": [[0.43], [1.42]], "A1": [[0.606], [0.805]], "Z2": [[1.244]], "Yhat": [[0.776]], "J": 0.253,
    "dZ2": [[-0.224]], "dW2": [[-0.136, -0.180]], "db2": [[-0.224]],
    "W2T_dZ2": [[-0.0672], [-0.1568]], "sigma_prime": [[0.239], [0.157]],
    "dZ1": [[-0.0161], [-0.0246]], "dW1": [[-0.0080, -0.0032], [-0.0123, -0.0049]], "db1": [[-0.0161], [-0.0246]],
}


def seed_net(backend, dtype="float64"):
    net = pynn.Network([pynn.Dense(2, 2, "sigmoid"), pynn.Dense(2, 1, "sigmoid")], dtype=dtype, backend=backend)
    net.layers[0].W, net.layers[0].b = W1, b1
    net.layers[1].W, net.layers[1].b = W2, b2
    return net


def test_exact_values_agree_with_printed_ones():
    # The oracle itself against the seed: exact where the seed is exact, 1 % where it rounds.
    np.testing.assert_allclose(Z1, PRINTED["Z1"], rtol=0, atol=1e-15)
    got = {"A1": A1, "Z2": Z2, "Yhat": Yhat, "J": J, "dZ2": dZ2, "dW2": dW2, "db2": db2,
           "W2T_dZ2": W2.T @ dZ2, "sigma_prime": A1 * (1 - A1), "dZ1": dZ1, "dW1": dW1, "db1": db1}
    for k, v in got.items():
        np.testing.assert_allclose(v, PRINTED[k], rtol=0.01, err_msg=k)


def test_forward(backend):
    net = seed_net(backend)
    np.testing.assert_allclose(net.predict(X), Yhat, rtol=1e-12, atol=0)
    np.testing.assert_allclose(net.predict(X), PRINTED["Yhat"], rtol=0.01)
    hidden = pynn.Network([pynn.Dense(2, 2, "sigmoid", init=(W1, b1))], dtype="float64", backend=backend)
    np.testing.assert_allclose(hidden.predict(X), A1, rtol=1e-12, atol=0)  # the hidden layer alone: A1
    np.testing.assert_allclose(hidden.predict(X), PRINTED["A1"], rtol=0.01)


def test_loss(backend):
    net = seed_net(backend)
    assert net.loss(X, Y, "bce") == pytest.approx(J, rel=1e-12, abs=0)
    assert net.loss(X, Y, "bce") == pytest.approx(PRINTED["J"], rel=0.01)


def test_gradients(backend):
    J_got, grads = seed_net(backend).loss_and_grads(X, Y, "bce")
    assert J_got == pytest.approx(J, rel=1e-12, abs=0)
    for got, want in zip([*grads[0], *grads[1]], [dW1, db1, dW2, db2]):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    (g_dW1, g_db1), (g_dW2, g_db2) = grads
    for k, v in {"dW1": g_dW1, "db1": g_db1, "dW2": g_dW2, "db2": g_db2}.items():
        np.testing.assert_allclose(v, PRINTED[k], rtol=0.01, err_msg=k)


@pytest.mark.parametrize("lr", [0.1, 1.0])
def test_sgd_update_is_the_seeds(backend, lr):
    # W <- W - η dJ/dW, b <- b - η dJ/db
    net = seed_net(backend)
    J_before = net.train_step(X, Y, "bce", pynn.SGD(lr))
    assert J_before == pytest.approx(J, rel=1e-12)
    for layer, W, b, dW, db in zip(net.layers, [W1, W2], [b1, b2], [dW1, dW2], [db1, db2]):
        np.testing.assert_allclose(layer.W, W - lr * dW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer.b, b - lr * db, rtol=1e-12, atol=1e-15)
    assert net.loss(X, Y, "bce") < J  # the step went downhill


def test_float32(backend):
    net = seed_net(backend, "float32")
    assert net.predict(X).dtype == np.float32
    np.testing.assert_allclose(net.predict(X), Yhat, rtol=1e-6)
    _, grads = net.loss_and_grads(X, Y, "bce")
    np.testing.assert_allclose(grads[0][0], dW1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grads[1][0], dW2, rtol=1e-5, atol=1e-7)
