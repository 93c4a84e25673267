"""fit(standardize=True) and pynn.Scaler: the oracle is scikit-learn's StandardScaler.

Training with ``standardize=True`` must equal training on ``StandardScaler().fit_transform``-ed
data (same seed, float64, 1e-10) on every backend and path (fused, per-kernel, sparse, LBFGS),
shuffled or in order, with batch sizes that divide the data and ones that do not; afterwards
every entry point takes raw inputs and equals a twin network without a scaler fed the scaled
data. fit's peak memory stays the data plus O(batch): the standardised data set is never stored.
"""

from __future__ import annotations


import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

import pynn
import pynn.network as network_module
import pynn.scaler as scaler_module
from pynn import _validate as V
from conftest import backend_module, require

N = 103  # examples: batch sizes 16 and 10 leave a short last batch, 103 does not
RNG = np.random.default_rng(0)
X_ROWS = RNG.normal(size=(N, 4)) * [1.0, 100.0, 0.01, 3.0] + [5.0, -200.0, 1.0, 0.0]  # row-major
Y_CLS = RNG.integers(0, 3, N)
TOL = 1e-10


def sk_scaled(X_rows, fit_on=None):
    sk = StandardScaler().fit(X_rows if fit_on is None else fit_on)
    return sk, sk.transform(X_rows)


def twin(net):
    """The same weights, no scaler: fed scaled data it must equal ``net`` fed raw data."""
    layers = [pynn.Dense(l.n_in, l.n_out, l.activation, init=(l.W, l.b)) for l in net.layers]
    return pynn.Network(layers, dtype=net.dtype, backend=net.backend)


def pair(backend, dtype="float64", sizes=(4, 8, 3), **kw):
    return [pynn.Network.from_sizes(list(sizes), hidden="tanh", dtype=dtype, backend=backend, seed=1, **kw)
            for _ in range(2)]


# ---------------------------------------------------------------- training equals sklearn-scaled training
@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
@pytest.mark.parametrize("batch_size", [16, 10, N], ids=["bs16", "bs10", "full"])
def test_fit_standardize_equals_training_on_sklearn_scaled_data(backend, shuffle, batch_size):
    sk, Xs = sk_scaled(X_ROWS)
    a, b = pair(backend)
    Xv = X_ROWS[:20] * 1.5  # validation data, scaled with the training scaler
    ha = a.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=3, batch_size=batch_size,
               seed=2, shuffle=shuffle, standardize=True, validation_data=(Xv.T, Y_CLS[:20]))
    hb = b.fit(Xs.T, Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=3, batch_size=batch_size,
               seed=2, shuffle=shuffle, validation_data=(sk.transform(Xv).T, Y_CLS[:20]))
    assert a.scaler is not None and b.scaler is None
    np.testing.assert_allclose(a.scaler.mean, sk.mean_, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(a.scaler.scale, sk.scale_, rtol=1e-13)
    assert np.abs(a._params - b._params).max() < TOL
    assert np.abs(a._params - pair(backend)[0]._params).max() > 1e-3  # it trained
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ha[key], hb[key], rtol=0, atol=TOL)


def test_numba_per_kernel_path_standardizes_too(monkeypatch):
    """Networks too large for the jitted fused model train through the numba kernels."""
    backend_module("numba")
    from pynn.backends import numba_fused

    monkeypatch.setattr(numba_fused, "MAX_PARAMS", 0)
    _, Xs = sk_scaled(X_ROWS)
    for shuffle in (True, False):
        a, b = pair("numba")
        assert a._model is None
        a.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=16, seed=3,
              shuffle=shuffle, standardize=True)
        b.fit(Xs.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=16, seed=3,
              shuffle=shuffle)
        assert np.abs(a._params - b._params).max() < TOL


def test_float32_network_standardizes_in_float64_then_rounds(backend):
    """float32 data: the scaler is measured in float64, each batch is scaled in float64 and
    rounded once to float32 — the same as training on that rounded data."""
    X32 = X_ROWS.astype(np.float32)
    sk = StandardScaler().fit(X32.astype(np.float64))
    Xs = ((X32.astype(np.float64) - sk.mean_) * (1 / sk.scale_)).astype(np.float32)
    a, b = pair(backend, "float32")
    a.fit(X32.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=16, seed=4,
          standardize=True)
    b.fit(Xs.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=16, seed=4)
    np.testing.assert_allclose(a.scaler.mean, sk.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-5, atol=1e-6)


def test_validation_fraction_measures_the_scaler_on_the_training_part_only(backend):
    a, b = pair(backend)
    a.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, batch_size=16, seed=5,
          standardize=True, validation_fraction=0.25, shuffle=False)  # in order: the split used the rng
    tr, va = V.split_indices(N, 0.25, Y_CLS, np.random.default_rng(5))  # fit's own split, from its seed
    sk = StandardScaler().fit(X_ROWS[tr])
    np.testing.assert_allclose(a.scaler.mean, sk.mean_, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(a.scaler.scale, sk.scale_, rtol=1e-13)
    assert not np.allclose(a.scaler.mean, X_ROWS.mean(axis=0), rtol=1e-6)
    h = b.fit(sk.transform(X_ROWS[tr]).T, Y_CLS[tr], loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2,
              batch_size=16, seed=5, validation_data=(sk.transform(X_ROWS[va]).T, Y_CLS[va]), shuffle=False)
    assert np.abs(a._params - b._params).max() < TOL
    np.testing.assert_allclose(a.history["val_loss"], h["val_loss"], rtol=0, atol=TOL)


def test_sparse_X_gets_scale_only(backend):
    """A CSR X: mean 0 and StandardScaler(with_mean=False)'s scale; training equals dense X / scale."""
    sp = require("scipy.sparse")
    Xd = np.where(np.abs(X_ROWS) > np.abs(X_ROWS).mean(axis=0), X_ROWS, 0.0)
    sk = StandardScaler(with_mean=False).fit(Xd)
    a, b = pair(backend)
    a.fit(sp.csr_matrix(Xd), Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, batch_size=16,
          seed=6, standardize=True)
    b.fit((Xd / sk.scale_).T, Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, batch_size=16,
          seed=6)
    assert (a.scaler.mean == 0).all()
    np.testing.assert_allclose(a.scaler.scale, sk.scale_, rtol=1e-12)
    assert np.abs(a._params - b._params).max() < TOL
    # and a sparse X to predict is densified chunk by chunk, then scaled
    np.testing.assert_allclose(a.predict(sp.csr_matrix(Xd)), b.predict((Xd / sk.scale_).T), rtol=0, atol=1e-12)


def test_lbfgs_standardizes_its_full_batch():
    require("scipy.optimize")
    _, Xs = sk_scaled(X_ROWS)
    a, b = pair("numpy")
    a.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.LBFGS(), epochs=5, standardize=True)
    b.fit(Xs.T, Y_CLS, loss="cross_entropy", optimizer=pynn.LBFGS(), epochs=5)
    assert np.abs(a._params - b._params).max() < 1e-9
    np.testing.assert_allclose(a.history["accuracy"], b.history["accuracy"])


def test_second_fit_keeps_the_scaler(backend):
    net = pair(backend)[0]
    net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=1, standardize=True, health=False)
    first = net.scaler
    other = X_ROWS[::-1] * 1.2 + 0.5
    net.fit(other.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=1, standardize=True, health=False)
    assert net.scaler is first  # a warm start stays in the same input space
    net.scaler = None
    net.fit(other.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=1, standardize=True, health=False)
    np.testing.assert_allclose(net.scaler.mean, StandardScaler().fit(other).mean_, rtol=1e-13)


# ---------------------------------------------------------------- raw inputs everywhere afterwards
def test_every_entry_point_takes_raw_inputs(backend, monkeypatch):
    monkeypatch.setattr(network_module, "CHUNK_ELEMENTS", 4 * 7)  # predict/evaluate in chunks of 7 examples
    sk, Xs = sk_scaled(X_ROWS)
    net = pair(backend)[0]
    net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, standardize=True, seed=0)
    ref = twin(net)
    Xr, Xt = X_ROWS.T, Xs.T
    np.testing.assert_allclose(net.predict(Xr), ref.predict(Xt), rtol=0, atol=1e-13)
    np.testing.assert_allclose(net.forward(np.asfortranarray(Xr)), ref.forward(Xt), rtol=0, atol=1e-13)
    out = np.empty((3, N), order="F")
    assert net.forward(Xr, out=out) is out
    np.testing.assert_allclose(out, ref.predict(Xt), rtol=0, atol=1e-13)
    assert (net.predict_classes(Xr) == ref.predict_classes(Xt)).all()
    for k, v in ref.evaluate(Xt, Y_CLS, "cross_entropy").items():
        assert abs(net.evaluate(Xr, Y_CLS, "cross_entropy")[k] - v) < 1e-12
    assert abs(net.loss(Xr, Y_CLS, "cross_entropy") - ref.loss(Xt, Y_CLS, "cross_entropy")) < 1e-12
    Ja, ga = net.loss_and_grads(Xr[:, :9], Y_CLS[:9], "cross_entropy")
    Jb, gb = ref.loss_and_grads(Xt[:, :9], Y_CLS[:9], "cross_entropy")
    assert abs(Ja - Jb) < 1e-13
    for (dWa, dba), (dWb, dbb) in zip(ga, gb):
        np.testing.assert_allclose(dWa, dWb, rtol=0, atol=1e-13)
        np.testing.assert_allclose(dba, dbb, rtol=0, atol=1e-13)
    assert abs(net.train_step(Xr[:, :9], Y_CLS[:9], "cross_entropy", pynn.SGD(0.1))
               - ref.train_step(Xt[:, :9], Y_CLS[:9], "cross_entropy", pynn.SGD(0.1))) < 1e-13
    assert np.abs(net._params - ref._params).max() < 1e-13
    assert pynn.gradcheck(net, Xr[:, :5], Y_CLS[:5], "cross_entropy") < 1e-6


def test_scaler_by_hand_and_its_validation():
    net = pynn.Network([pynn.Dense(2, 1, "linear", init=([[1.0, 1.0]], [[0.0]]))], dtype="float64")
    with pytest.raises(TypeError, match="scaler must be a pynn.Scaler or None, got dict"):
        net.scaler = {"mean": [0, 0]}
    with pytest.raises(ValueError, match=r"scaler must have one value per input feature \(2\), got 3"):
        net.scaler = pynn.Scaler([0, 0, 0], [1, 1, 1])
    assert net.scaler is None
    net.scaler = pynn.Scaler([1.0, 2.0], [2.0, 4.0])
    assert net.predict(np.array([[3.0], [6.0]]))[0, 0] == 2.0  # (3-1)/2 + (6-2)/4


def test_fit_standardize_must_be_a_bool_and_leaves_the_network_untouched(backend):
    net = pair(backend)[0]
    before = net._params.copy()
    with pytest.raises(TypeError, match="standardize must be a bool, got 'yes'"):
        net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), standardize="yes")
    with pytest.raises(ValueError, match="validation_data"):  # a later check fails: no scaler is kept
        net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), standardize=True,
                validation_data=(X_ROWS.T[:3], Y_CLS))
    assert net.scaler is None and np.array_equal(net._params, before)


def test_fit_standardize_with_comm_is_refused():
    net = pair("numpy")[0]
    with pytest.raises(ValueError, match="does not apply an input scaler"):
        net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), standardize=True, comm=object())
    assert net.scaler is None


# ---------------------------------------------------------------- the Scaler against sklearn
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_scaler_fit_equals_sklearn_in_chunks(monkeypatch, dtype):
    monkeypatch.setattr(scaler_module, "_CHUNK_ELEMENTS", 5 * 4)  # chunks of 4 examples (and a short last one)
    rng = np.random.default_rng(7)
    X = (rng.normal(size=(1001, 5)) * [1, 1e3, 1e-3, 0, 7] + [0, 1e6, 3, 2.5, -1]).astype(dtype)
    sk = StandardScaler().fit(X.astype(np.float64))
    for data in (X.T, np.asfortranarray(X.T), np.ascontiguousarray(X.T)):
        s = pynn.Scaler.fit(data)
        np.testing.assert_allclose(s.mean, sk.mean_, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.scale, sk.scale_, rtol=1e-10)
    assert s.scale[3] == 1.0  # the constant feature, as sklearn
    np.testing.assert_allclose(s.transform(X.T.astype(np.float64)), sk.transform(X.astype(np.float64)).T,
                               rtol=0, atol=1e-9)  # the mean of 1e6 leaves ~1e-10 after the subtraction


def test_scaler_rejects_bad_values():
    with pytest.raises(ValueError, match="scale must be positive"):
        pynn.Scaler([0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="scale must be positive"):
        pynn.Scaler([0.0], [-1.0])
    with pytest.raises(ValueError, match="mean"):
        pynn.Scaler([np.nan], [1.0])
    with pytest.raises(ValueError, match="scale must have the shape of mean"):
        pynn.Scaler([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        pynn.Scaler([[0.0]], [[1.0]])
    with pytest.raises(TypeError, match="with_mean must be a bool"):
        pynn.Scaler.fit(np.ones((2, 3)), with_mean=1)
    with pytest.raises(ValueError, match="at least one example"):
        pynn.Scaler.fit(np.ones((2, 0)))
    s = pynn.Scaler([0.0], [1.0])
    with pytest.raises(ValueError):
        s.mean[0] = 5.0  # read-only: a network's scaler cannot change behind its back


def test_onnx_export_includes_the_scaler():
    require("onnx")
    ort = require("onnxruntime")
    net = pair("numpy", "float32")[0]
    net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=1, standardize=True)
    model = net.to_onnx()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"X": X_ROWS.astype(np.float32)})[0]
    np.testing.assert_allclose(got, net.predict(X_ROWS.T).T, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- memory: no standardised copy of X
@pytest.mark.rss
def test_fit_standardize_never_copies_X(backend):
    """The peak measurement of test_memory (fresh process, VmHWM reset just before fit) with
    standardize=True, in order (and shuffled with PYNN_MEMORY_STEPS set): the scaler is measured chunk by chunk and each
    batch scaled as it is gathered, so fit's peak stays < 30 MB above the 100 MB of data."""
    from test_memory import PEAK_LIMIT, STEPS, describe, fit_peak

    backend_module(backend)
    for shuffle in (True, False) if STEPS else (False,):  # in order (the new gather); both with PYNN_MEMORY_STEPS
        m = fit_peak(backend, "rows", shuffle, "standardize")
        assert m["extra"] < PEAK_LIMIT, describe(m)


def test_train_step_with_a_scaler_allocates_no_scaled_copy_per_step(backend):
    """train_step and loss_and_grads standardise each batch into a per-thread scratch reused from
    step to step: NumPy's traced allocations over a loop of steps are those of the same network
    without a scaler, plus a constant (no copy of the batch, which would be X.nbytes or more)."""
    import tracemalloc

    backend_module(backend)
    rng = np.random.default_rng(0)
    X, y = rng.normal(3.0, 2.0, size=(200, 4096)).astype(np.float32), rng.integers(0, 10, 4096)

    def step_peak(scaler):
        net = pynn.Network.from_sizes([200, 16, 10], backend=backend, seed=0)
        net.scaler, opt = scaler, pynn.SGD(0.01)
        steps = [lambda: net.train_step(X, y, "cross_entropy", opt), lambda: net.loss_and_grads(X, y, "cross_entropy")]
        for f in steps:  # warm: workspaces, the scratch, the JIT
            f()
        tracemalloc.start()
        try:
            for _ in range(5):
                for f in steps:
                    f()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    plain, scaled = step_peak(None), step_peak(pynn.Scaler.fit(X))
    assert scaled < plain + 256 * 1024 < X.nbytes, (plain, scaled, X.nbytes)


@pytest.mark.parametrize("fused", ["cpp", "numba"])
def test_fused_models_check_the_standardisation_arguments(fused):
    """pynn._core (and the jitted model) can be called directly: bad mean/inv_scale raise, never crash."""
    backend_module(fused)
    net = pair(fused)[0]
    model = net._model
    X = np.asfortranarray(X_ROWS.T)
    y = Y_CLS.astype(np.int64)
    net._bind_optimizer(pynn.SGD(0.1))
    before = net._params.copy()
    ok = np.zeros(4)
    for kw in ({"mean": ok}, {"inv_scale": ok}, {"mean": np.zeros(3), "inv_scale": np.ones(3)},
               {"mean": np.zeros(8)[::2], "inv_scale": np.ones(4)}):
        with pytest.raises(ValueError, match="mean and inv_scale|give both"):
            model.run_batches(X, y, None, 0, 2, 16, 2, False, **kw)
    assert np.array_equal(net._params, before)
    model.run_batches(X, y, None, 0, 1, 16, 2, False, mean=ok, inv_scale=np.ones(4))  # the good call runs
