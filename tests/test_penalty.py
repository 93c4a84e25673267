"""Per-layer L1/L2 weight penalties: J + Σ_l (l1 Σ|W| + l2/2 Σ W²), dW += l1 sign(W) + l2 W.

Oracles: central finite differences (gradcheck), the formula itself evaluated in float64 on the
weights, and the NumPy reference backend for the fused paths (cpp, numba).
"""

from __future__ import annotations

import numpy as np
import pytest

import pynn
from conftest import NET_TOL, assert_close

PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "bce"), ("linear", "mse"), ("tanh", "mse")]


def data(rng, loss, n_in=4, m=3, d=9):
    X = rng.normal(size=(n_in, d))
    if loss == "cross_entropy":
        return X, rng.integers(0, m, d)
    if loss == "bce":
        return X, (rng.random((m, d)) > 0.5).astype(float)
    return X, rng.normal(size=(m, d))


def penalty_by_hand(net) -> float:
    return sum(l.l1 * np.abs(l.W.astype(np.float64)).sum() + 0.5 * l.l2 * (l.W.astype(np.float64) ** 2).sum()
               for l in net.layers)


@pytest.mark.parametrize("hidden", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("output,loss", PAIRS)
def test_penalised_gradients_equal_finite_differences(backend, hidden, output, loss, rng):
    layers = [pynn.Dense(4, 5, hidden, l1=0.03, l2=0.2), pynn.Dense(5, 4, hidden, l2=0.5),
              pynn.Dense(4, 3, output, l1=0.1)]
    net = pynn.Network(layers, dtype="float64", backend=backend, seed=3)
    X, Y = data(rng, loss)
    assert pynn.gradcheck(net, X, Y, loss) < 1e-6


@pytest.mark.parametrize("output,loss", PAIRS)
def test_penalty_adds_the_formula_to_J_and_its_gradient_to_dW_only(backend, dtype, output, loss, rng):
    X, Y = data(rng, loss)
    plain = pynn.Network.from_sizes([4, 6, 3], hidden="tanh", output=output, dtype=dtype, backend=backend, seed=5)
    pen = pynn.Network.from_sizes([4, 6, 3], hidden="tanh", output=output, dtype=dtype, backend=backend, seed=5,
                                  l1=0.02, l2=0.3)
    J0, g0 = plain.loss_and_grads(X, Y, loss)
    J1, g1 = pen.loss_and_grads(X, Y, loss)
    tol = NET_TOL[dtype]
    assert J1 == pytest.approx(J0 + penalty_by_hand(pen), rel=tol)
    assert pen.loss(X, Y, loss) == pytest.approx(J1, rel=tol)
    assert pen.evaluate(X, Y, loss)["loss"] == pytest.approx(J1, rel=tol)
    for layer, (dW0, db0), (dW1, db1) in zip(pen.layers, g0, g1):
        W = layer.W
        assert_close(dW1, dW0 + (0.02 * np.sign(W) + 0.3 * W).astype(dtype), dtype, rtol=tol, atol=tol)
        np.testing.assert_array_equal(db1, db0)  # biases are not penalised
    # one full batch: fit's epoch loss and train_step both report J before the update
    h = pen.fit(X, Y, loss=loss, optimizer=pynn.SGD(1e-3), epochs=1, batch_size=X.shape[1], shuffle=False)
    assert h.loss[0] == pytest.approx(J1, rel=tol)
    J2 = pen.loss(X, Y, loss)
    assert pen.train_step(X, Y, loss, pynn.SGD(1e-3)) == pytest.approx(J2, rel=tol)


@pytest.mark.parametrize("sizes", [[4, 6, 3], [50, 300, 40, 3]], ids=["small", "large"])
def test_fused_training_with_penalties_equals_the_reference(backend, dtype, sizes, rng):
    # "large" has more parameters than the numba backend fuses, so it runs kernel by kernel
    X = rng.normal(size=(sizes[0], 40))
    y = rng.integers(0, 3, 40)
    nets, first = {}, {}
    for name in ("numpy", backend):
        layers = [pynn.Dense(a, b, "relu" if i < len(sizes) - 2 else "softmax", l1=1e-3 * i, l2=0.05)
                  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        net = nets[name] = pynn.Network(layers, dtype=dtype, backend=name, seed=11)
        first[name] = net.train_step(X[:, :8], y[:8], "cross_entropy", pynn.SGD(0.05, momentum=0.9))
        net.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(1e-2), epochs=2, batch_size=16, seed=1)
    ref, got = nets["numpy"], nets[backend]
    tol = NET_TOL[dtype]
    assert first[backend] == pytest.approx(first["numpy"], rel=tol)
    np.testing.assert_allclose(got.history.loss, ref.history.loss, rtol=tol)
    assert_close(got._params, ref._params, dtype, rtol=tol, atol=tol)


@pytest.mark.parametrize("loss", ["cross_entropy", pynn.losses.Huber(0.3)], ids=["cross_entropy", "huber"])
def test_penalties_with_dropout_sample_weights_and_gelu_equal_the_reference(backend, loss, rng):
    # the penalty is added once to the weighted mean, and its gradient after dropout's backward
    X = rng.normal(size=(5, 40))
    s = rng.uniform(0.1, 2.0, 40)
    classify = loss == "cross_entropy"
    Y = rng.integers(0, 3, 40) if classify else rng.normal(size=(3, 40))
    nets, J = {}, {}
    for name in ("numpy", backend):
        layers = [pynn.Dense(5, 8, "gelu", dropout=0.2, l1=0.01, l2=0.03),
                  pynn.Dense(8, 3, "softmax" if classify else "linear", l2=0.05)]
        net = nets[name] = pynn.Network(layers, dtype="float64", backend=name, seed=1)
        J[name] = net.loss(X, Y, loss, sample_weight=s)
        if name == "numpy":  # the same weights without penalties: J differs by the formula exactly
            plain = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=(l.W, l.b)) for l in net.layers],
                                 dtype="float64", backend="numpy")
            assert J[name] == pytest.approx(plain.loss(X, Y, loss, sample_weight=s) + penalty_by_hand(net), rel=1e-13)
        net.fit(X, Y, loss=loss, optimizer=pynn.Adam(1e-2), epochs=3, batch_size=8, seed=2, sample_weight=s)
    ref = nets["numpy"]
    assert J[backend] == pytest.approx(J["numpy"], rel=1e-12)
    np.testing.assert_allclose(nets[backend].history.loss, ref.history.loss, rtol=1e-10)
    np.testing.assert_allclose(nets[backend]._params, ref._params, rtol=1e-10, atol=1e-12)


def test_changing_a_layer_penalty_reaches_the_fused_model(backend, rng):
    X, y = data(rng, "cross_entropy")
    net = pynn.Network.from_sizes([4, 5, 3], dtype="float64", backend=backend, seed=0)
    J0 = net.loss_and_grads(X, y, "cross_entropy")[0]
    net.layers[0].l2 = 2.0
    J1, g1 = net.loss_and_grads(X, y, "cross_entropy")
    assert J1 == pytest.approx(J0 + (net.layers[0].W ** 2).sum(), rel=1e-12)
    net.layers[0].l2 = 0.0
    assert net.train_step(X, y, "cross_entropy", pynn.SGD(0.1)) == pytest.approx(J0, rel=1e-12)


def test_from_sizes_gives_every_layer_the_penalties():
    net = pynn.Network.from_sizes([3, 4, 5, 2], l1=0.5, l2=0.25)
    assert [(l.l1, l.l2) for l in net.layers] == [(0.5, 0.25)] * 3
    assert "l1=0.5" in repr(net.layers[0]) and "l1" not in repr(pynn.Dense(2, 2))


@pytest.mark.parametrize("value,error", [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                         ("0.1", TypeError), (None, TypeError)])
@pytest.mark.parametrize("name", ["l1", "l2"])
def test_bad_penalty_names_the_argument_and_changes_nothing(name, value, error):
    with pytest.raises(error, match=name):
        pynn.Dense(2, 3, **{name: value})
    net = pynn.Network.from_sizes([2, 3, 2], l2=0.1, seed=0)
    with pytest.raises(error, match=name):
        setattr(net.layers[0], name, value)
    assert (net.layers[0].l1, net.layers[0].l2) == (0.0, 0.1)


def test_save_and_load_keep_the_penalties(tmp_path, rng):
    net = pynn.Network([pynn.Dense(3, 4, "tanh", l1=0.01), pynn.Dense(4, 2, "softmax", l2=0.5)], seed=0)
    net.save(tmp_path / "m.npz")
    back = pynn.load(tmp_path / "m.npz")
    assert [(l.l1, l.l2) for l in back.layers] == [(0.01, 0.0), (0.0, 0.5)]
    X, y = rng.normal(size=(3, 6)), rng.integers(0, 2, 6)
    assert back.loss(X, y, "cross_entropy") == net.loss(X, y, "cross_entropy")


def test_files_without_penalties_have_no_keys_and_load_as_zero(tmp_path):
    import json

    pynn.Network.from_sizes([2, 3, 2], seed=0).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        header = json.loads(bytes(f["header"]).decode())
    assert all(set(spec) == {"n_in", "n_out", "activation"} for spec in header["layers"])
    assert all(l.l1 == 0 and l.l2 == 0 for l in pynn.load(tmp_path / "m.npz").layers)


def test_a_file_with_a_bad_penalty_is_refused(tmp_path):
    import json

    net = pynn.Network.from_sizes([2, 3, 2], seed=0, l2=0.1)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        arrays = dict(f)
    header = json.loads(bytes(arrays["header"]).decode())
    header["layers"][0]["l2"] = -1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="l2"):
        pynn.load(tmp_path / "bad.npz")

