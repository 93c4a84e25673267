"""Sparse CSR input (examples as rows): predict, loss, evaluate, loss_and_grads, train_step and fit
equal the dense results on X.toarray().T, on every backend; fit never builds the dense data set."""

import importlib
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import pynn
import pynn._sparse
from conftest import IN_CI, NET_TOL, assert_close

sp = importlib.import_module("scipy.sparse") if IN_CI else pytest.importorskip("scipy.sparse")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 7 examples (for 30 features) in predict/evaluate, so chunk seams are crossed."""
    monkeypatch.setattr(pynn._sparse, "CHUNK_ELEMENTS", 7 * 30)


def _data(rng, n=50, n_features=30, density=0.15, fmt=sp.csr_array):
    X = sp.random_array((n, n_features), density=density, rng=rng, format="csr") * 4 - 0
    X.data -= 2  # values in [-2, 2), zeros where not stored
    y = rng.integers(0, 3, n)
    return fmt(X), y


def _net(backend, dtype, seed=1):
    return pynn.Network.from_sizes([30, 16, 3], hidden="tanh", dtype=dtype, backend=backend, seed=seed)


@pytest.mark.parametrize("fmt", [sp.csr_array, sp.csr_matrix])
def test_predict_loss_evaluate_equal_dense(backend, dtype, rng, fmt):
    X, y = _data(rng, fmt=fmt)
    Xd = X.toarray().T
    net = _net(backend, dtype)
    assert_close(net.predict(X), net.predict(Xd), dtype)
    assert_close(net.predict(X.T), net.predict(Xd), dtype)  # CSC (features, examples): the X.T of a CSR
    assert net.loss(X, y, "cross_entropy") == pytest.approx(net.loss(Xd, y, "cross_entropy"), rel=NET_TOL[dtype])
    got, ref = net.evaluate(X, y, "cross_entropy"), net.evaluate(Xd, y, "cross_entropy")
    assert got["accuracy"] == ref["accuracy"] and got["loss"] == pytest.approx(ref["loss"], rel=NET_TOL[dtype])
    assert np.array_equal(net.predict_classes(X), net.predict_classes(Xd))


def test_int_and_other_dtype_csr_is_cast_like_dense(backend, rng):
    X, _ = _data(rng)
    Xi = sp.csr_array((np.round(X.data).astype(np.int64), X.indices, X.indptr), shape=X.shape)
    net = _net(backend, "float32")
    assert_close(net.predict(Xi), net.predict(Xi.toarray().T), "float32")


def test_loss_and_grads_and_train_step_equal_dense(backend, dtype, rng):
    X, y = _data(rng, n=9)
    Xd = X.toarray().T
    a, b = _net(backend, dtype), _net(backend, dtype)
    Ja, ga = a.loss_and_grads(X, y, "cross_entropy")
    Jb, gb = b.loss_and_grads(Xd, y, "cross_entropy")
    assert Ja == pytest.approx(Jb, rel=NET_TOL[dtype])
    for (dWa, dba), (dWb, dbb) in zip(ga, gb):
        assert_close(dWa, dWb, dtype) and assert_close(dba, dbb, dtype)
    a.train_step(X, y, "cross_entropy", pynn.SGD(0.5))
    b.train_step(Xd, y, "cross_entropy", pynn.SGD(0.5))
    assert_close(a._params, b._params, dtype)


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_equals_dense_fit(backend, dtype, rng, shuffle):
    X, y = _data(rng, n=70)
    Xv, yv = _data(rng, n=20)
    Xd = X.toarray().T
    a, b = _net(backend, dtype), _net(backend, dtype)
    kw = dict(loss="cross_entropy", epochs=3, batch_size=16, seed=4, shuffle=shuffle)
    ha = a.fit(X, y, optimizer=pynn.Adam(0.01), validation_data=(Xv, yv), **kw)
    hb = b.fit(Xd, y, optimizer=pynn.Adam(0.01), validation_data=(Xv.toarray().T, yv), **kw)
    tol = NET_TOL[dtype]
    assert_close(a._params, b._params, dtype, rtol=tol, atol=tol)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(getattr(ha, key), getattr(hb, key), rtol=tol)
    assert ha.accuracy == hb.accuracy and ha.val_accuracy == hb.val_accuracy


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_with_validation_fraction_equals_dense_fit(backend, rng, shuffle):
    # the held-out rows are split off and the class weights counted on the training part alone
    X, y = _data(rng, n=90)
    a, b = _net(backend, "float64"), _net(backend, "float64")
    kw = dict(loss="cross_entropy", epochs=3, batch_size=16, seed=4, shuffle=shuffle, validation_fraction=0.2,
              class_weight="balanced")
    ha = a.fit(X, y, optimizer=pynn.Adam(0.01), **kw)
    hb = b.fit(X.toarray().T, y, optimizer=pynn.Adam(0.01), **kw)
    assert_close(a._params, b._params, "float64", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ha.val_loss, hb.val_loss, rtol=1e-10)


def test_fit_does_not_densify_the_data_set(backend, monkeypatch):
    """8,000 × 8,000 float32 is 256 MB dense; fit and evaluate stay within a few MB (a batch of
    128 dense examples is 4 MB, a chunk of evaluate 8 MB)."""
    monkeypatch.setattr(pynn._sparse, "CHUNK_ELEMENTS", 1 << 21)
    rng = np.random.default_rng(0)
    n, f = 8_000, 8_000
    X = sp.random_array((n, f), density=5e-4, rng=rng, format="csr", dtype=np.float32)
    y = rng.integers(0, 2, n)
    net = pynn.Network.from_sizes([f, 8, 2], backend=backend, seed=0)
    net.predict(X[:64])  # JIT warm-up (numba) outside the measurement
    tracemalloc.start()
    try:
        net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=1, batch_size=128, seed=0)
        net.evaluate(X, y, "cross_entropy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    dense = n * f * 4
    assert peak < 32 << 20, f"peak {peak / 2**20:.1f} MiB while the dense data set would be {dense / 2**20:.0f} MiB"


@pytest.mark.parametrize("make, exc, match", [
    (lambda X: X.tocoo(), TypeError, r"X as a scipy.sparse matrix must be CSR .* got format 'coo' "
                                     r"\(convert with X.tocsr\(\)\)"),
    (lambda X: X[:, :29], ValueError, r"X as a sparse CSR matrix must have shape \(n_examples, 30\), one row per "
                                      r"example; got shape \(50, 29\)"),
    (lambda X: X[:, :29].T.tocsc(), ValueError, r"X as a sparse CSC matrix must have shape \(30, n_examples\), "
                                                r"one column per example; got shape \(29, 50\)"),
    (lambda X: sp.csr_array((np.where(np.arange(X.nnz) == 3, np.nan, X.data), X.indices, X.indptr),
                            shape=X.shape), ValueError, "X contains NaN or infinity"),
])
def test_bad_sparse_input(rng, make, exc, match):
    X, y = _data(rng)
    net = _net("numpy", "float64")
    before = net._params.copy()
    with pytest.raises(exc, match=match):
        net.predict(make(X))
    with pytest.raises(exc, match=match):
        net.fit(make(X), y, loss="cross_entropy", optimizer=pynn.SGD(0.1))
    assert np.array_equal(net._params, before)


def test_import_pynn_does_not_import_scipy():
    code = "import sys, pynn; pynn.Network.from_sizes([2, 2]).predict([[0.0], [1.0]]); print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fit_with_huber_delta_and_gelu_equals_dense_fit(backend, rng):
    """Sparse batches on a fused model go through the one-batch run: Huber's delta (and gelu's
    kept Z) must reach it as they reach the dense epoch."""
    X, _ = _data(rng, n=60)
    Y = rng.normal(size=(2, 60))
    nets = [pynn.Network.from_sizes([30, 8, 2], hidden="gelu", output="linear", dtype="float64", backend=backend,
                                    seed=1) for _ in range(2)]
    kw = dict(loss=pynn.losses.Huber(0.3), epochs=2, batch_size=16, seed=4)
    ha = nets[0].fit(X, Y, optimizer=pynn.Adam(0.01), **kw)
    hb = nets[1].fit(X.toarray().T, Y, optimizer=pynn.Adam(0.01), **kw)
    assert_close(nets[0]._params, nets[1]._params, np.dtype(np.float64), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-10)
