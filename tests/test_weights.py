"""Sample and class weights: J = Σ s_i L_i / Σ s_i. Oracles: repeating rows (integer weights
count an example that many times), scikit-learn's MLP backprop and log_loss with sample_weight,
sklearn's compute_class_weight and accuracy_score; every backend against the reference."""

import numpy as np
import pytest

import pynn

from conftest import NET_TOL
from test_network import PAIRS, assert_grads_close, targets

sklearn = pytest.importorskip("sklearn")


def data(rng, loss, m, d, dtype=np.float64, n=4):
    return rng.normal(size=(n, d)).astype(dtype), targets(rng, loss, m, d, dtype)


@pytest.mark.parametrize("output,loss", PAIRS)
def test_integer_weights_equal_repeated_rows(backend, output, loss, rng):
    net = pynn.Network.from_sizes([4, 7, 3], hidden="tanh", output=output, dtype="float64", backend=backend, seed=0)
    X, Y = data(rng, loss, 3, 9)
    s = np.array([0, 1, 2, 3, 1, 0, 4, 1, 2])
    rows = np.repeat(np.arange(9), s)
    J, g = net.loss_and_grads(X, Y, loss, sample_weight=s)
    J_rep, g_rep = net.loss_and_grads(X[:, rows], Y[:, rows], loss)
    assert J == pytest.approx(J_rep, rel=1e-12)
    assert_grads_close(g, g_rep, np.dtype(np.float64))
    assert net.loss(X, Y, loss, sample_weight=s) == pytest.approx(J_rep, rel=1e-12)
    assert net.evaluate(X, Y, loss, sample_weight=s)["loss"] == pytest.approx(J_rep, rel=1e-12)


def test_class_indices_weighted_equal_one_hot(backend, rng):
    net = pynn.Network.from_sizes([4, 5, 3], dtype="float64", backend=backend, seed=1)
    X = rng.normal(size=(4, 10))
    y = rng.integers(0, 3, 10)
    s = rng.uniform(0, 2, 10)
    J, g = net.loss_and_grads(X, y, "cross_entropy", sample_weight=s)
    J1, g1 = net.loss_and_grads(X, np.eye(3)[:, y], "cross_entropy", sample_weight=s)
    assert J == pytest.approx(J1, rel=1e-13)
    assert_grads_close(g, g1, np.dtype(np.float64))


def test_uniform_weights_change_nothing(backend, dtype, rng):
    net = pynn.Network.from_sizes([4, 6, 3], dtype=dtype, backend=backend, seed=0)
    X, Y = data(rng, "cross_entropy", 3, 12, dtype)
    J, g = net.loss_and_grads(X, Y, "cross_entropy")
    Jw, gw = net.loss_and_grads(X, Y, "cross_entropy", sample_weight=np.full(12, 2.5))
    assert Jw == pytest.approx(J, rel=NET_TOL[dtype])
    assert_grads_close(gw, g, dtype)


@pytest.mark.parametrize("output,loss", PAIRS[:3])
def test_weighted_loss_and_grads_match_reference(backend, dtype, output, loss, rng):
    ref = pynn.Network.from_sizes([5, 8, 3], hidden="relu", output=output, dtype=dtype, backend="numpy", seed=2)
    net = pynn.Network.from_sizes([5, 8, 3], hidden="relu", output=output, dtype=dtype, backend=backend, seed=2)
    X, Y = data(rng, loss, 3, 17, dtype, n=5)
    s = rng.uniform(0, 3, 17)
    J_ref, g_ref = ref.loss_and_grads(X, Y, loss, sample_weight=s)
    J, g = net.loss_and_grads(X, Y, loss, sample_weight=s)
    assert J == pytest.approx(J_ref, rel=NET_TOL[dtype])
    assert_grads_close(g, g_ref, dtype)


def test_loss_and_grads_equal_sklearn_mlp_backprop(rng):
    # scikit-learn's MLPClassifier weights its loss and gradient as Σ s_i L_i / Σ s_i (alpha=0:
    # no L2 term); load our weights into it and compare its _backprop with ours
    import inspect

    from sklearn.neural_network import MLPClassifier

    if "sample_weight" not in inspect.signature(MLPClassifier._backprop).parameters:
        pytest.skip(f"scikit-learn {sklearn.__version__}'s MLP has no sample_weight (1.7 added it)")
    X = rng.normal(size=(30, 4))
    y = np.arange(30) % 3
    s = rng.uniform(0, 2, 30)
    clf = MLPClassifier(hidden_layer_sizes=(6,), activation="tanh", alpha=0.0, max_iter=1)
    with pytest.warns(Warning):  # ConvergenceWarning after one iteration: we only want its shapes
        clf.fit(X, y)
    net = pynn.Network.from_sizes([4, 6, 3], hidden="tanh", dtype="float64", seed=3)
    clf.coefs_ = [l.W.T.copy() for l in net.layers]
    clf.intercepts_ = [l.b[:, 0].copy() for l in net.layers]
    Y1 = np.eye(3)[y]
    acts = [X] + [None] * 2
    deltas = [None] * 2
    cg = [np.empty_like(c) for c in clf.coefs_]
    ig = [np.empty_like(b) for b in clf.intercepts_]
    J_sk, cg, ig = clf._backprop(X, Y1, s, acts, deltas, cg, ig)
    J, g = net.loss_and_grads(X.T, y, "cross_entropy", sample_weight=s)
    assert J == pytest.approx(J_sk, rel=1e-12)
    for (dW, db), cW, cb in zip(g, cg, ig):
        np.testing.assert_allclose(dW, cW.T, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(db[:, 0], cb, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "bce")])
def test_weighted_loss_and_accuracy_equal_sklearn_metrics(backend, output, loss, rng):
    from sklearn.metrics import accuracy_score, log_loss

    m = 3 if loss == "cross_entropy" else 1
    net = pynn.Network.from_sizes([4, 5, m], output=output, dtype="float64", backend=backend, seed=0)
    X = rng.normal(size=(4, 40))
    y = rng.integers(0, max(m, 2), 40)
    Y = y if m > 1 else y[None, :].astype(float)
    s = rng.uniform(0, 5, 40)
    P = net.predict(X)
    proba = P.T if m > 1 else np.c_[1 - P[0], P[0]]
    out = net.evaluate(X, Y, loss, sample_weight=s)
    assert out["loss"] == pytest.approx(log_loss(y, proba, sample_weight=s, labels=range(max(m, 2))), rel=1e-10)
    assert out["accuracy"] == pytest.approx(accuracy_score(y, net.predict_classes(X), sample_weight=s), rel=1e-12)


def test_train_step_with_weights_equals_repeated_rows(backend, rng):
    X, Y = data(rng, "mse", 2, 8)
    s = np.array([1, 2, 0, 3, 1, 1, 2, 5])
    rows = np.repeat(np.arange(8), s)
    a = pynn.Network.from_sizes([4, 6, 2], output="linear", dtype="float64", backend=backend, seed=0)
    b = pynn.Network.from_sizes([4, 6, 2], output="linear", dtype="float64", backend=backend, seed=0)
    oa, ob = pynn.Adam(0.01), pynn.Adam(0.01)
    for _ in range(5):
        Ja = a.train_step(X, Y, "mse", oa, sample_weight=s)
        Jb = b.train_step(X[:, rows], Y[:, rows], "mse", ob)
        assert Ja == pytest.approx(Jb, rel=1e-12)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_allclose(la.W, lb.W, rtol=1e-11, atol=1e-14)


def test_fit_full_batch_with_weights_equals_repeated_rows(backend, rng):
    X = rng.normal(size=(4, 12))
    y = rng.integers(0, 3, 12)
    s = rng.integers(0, 4, 12)
    rows = np.repeat(np.arange(12), s)
    a = pynn.Network.from_sizes([4, 6, 3], dtype="float64", backend=backend, seed=0)
    b = pynn.Network.from_sizes([4, 6, 3], dtype="float64", backend=backend, seed=0)
    ha = a.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.5), epochs=6, batch_size=12, shuffle=False,
               sample_weight=s)
    hb = b.fit(X[:, rows], y[rows], loss="cross_entropy", optimizer=pynn.SGD(0.5), epochs=6,
               batch_size=rows.size, shuffle=False)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-12)
    np.testing.assert_allclose(ha.accuracy, hb.accuracy, rtol=1e-12)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-11, atol=1e-14)


def test_weighted_fit_matches_reference(backend, dtype, rng):
    X = rng.normal(size=(5, 50)).astype(dtype)
    y = rng.integers(0, 3, 50)
    s = rng.uniform(0, 2, 50)
    nets = [pynn.Network.from_sizes([5, 8, 3], dtype=dtype, backend=b, seed=0) for b in ("numpy", backend)]
    hs = [n.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=3, batch_size=8, seed=4,
                sample_weight=s, class_weight={0: 2.0}) for n in nets]
    np.testing.assert_allclose(hs[1].loss, hs[0].loss, rtol=NET_TOL[dtype])
    np.testing.assert_allclose(nets[1]._params, nets[0]._params, rtol=NET_TOL[dtype], atol=NET_TOL[dtype])


def test_zero_weight_batch_is_skipped(rng):
    # the first batch has only zero weights: the fit equals one over the remaining examples
    X = rng.normal(size=(3, 8))
    Y = rng.normal(size=(1, 8))
    s = np.r_[np.zeros(4), np.ones(4)]
    a = pynn.Network.from_sizes([3, 4, 1], output="linear", dtype="float64", seed=0)
    b = pynn.Network.from_sizes([3, 4, 1], output="linear", dtype="float64", seed=0)
    ha = a.fit(X, Y, loss="mse", optimizer=pynn.Adam(0.01), epochs=3, batch_size=4, shuffle=False, sample_weight=s)
    hb = b.fit(X[:, 4:], Y[:, 4:], loss="mse", optimizer=pynn.Adam(0.01), epochs=3, batch_size=4, shuffle=False)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-12)
    np.testing.assert_array_equal(a._params, b._params)


# ---------------------------------------------------------------- class weights
@pytest.mark.parametrize("y", [np.r_[[0] * 7, [1] * 2, [2] * 11], np.r_[[0] * 3, [2] * 5]])
def test_balanced_class_weight_equals_sklearn(y):
    from sklearn.utils.class_weight import compute_class_weight

    from pynn._validate import class_weights

    classes = np.unique(y)
    want = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=y)))
    got = class_weights("balanced", y, 3)
    np.testing.assert_allclose(got, [want[c] for c in y], rtol=1e-15)


@pytest.mark.parametrize("cw", ["balanced", {0: 3.0, 2: 0.5}])
def test_fit_with_class_weight_equals_fit_with_its_sample_weights(backend, cw, rng):
    from sklearn.utils.class_weight import compute_class_weight

    X = rng.normal(size=(4, 30))
    y = rng.integers(0, 3, 30)
    if cw == "balanced":
        s = compute_class_weight("balanced", classes=np.arange(3), y=y)[y]
    else:
        s = np.array([3.0, 1.0, 0.5])[y]
    a = pynn.Network.from_sizes([4, 5, 3], dtype="float64", backend=backend, seed=0)
    b = pynn.Network.from_sizes([4, 5, 3], dtype="float64", backend=backend, seed=0)
    ha = a.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=7, seed=1, class_weight=cw)
    hb = b.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=7, seed=1, sample_weight=s)
    assert ha.loss == hb.loss
    np.testing.assert_array_equal(a._params, b._params)


def test_class_weight_for_one_output_bce(rng):
    X = rng.normal(size=(3, 20))
    y = (rng.random(20) > 0.7).astype(float)[None, :]
    a = pynn.Network.from_sizes([3, 4, 1], output="sigmoid", dtype="float64", seed=0)
    b = pynn.Network.from_sizes([3, 4, 1], output="sigmoid", dtype="float64", seed=0)
    a.fit(X, y, loss="bce", optimizer=pynn.SGD(0.1), epochs=2, batch_size=20, class_weight={1: 4.0})
    b.fit(X, y, loss="bce", optimizer=pynn.SGD(0.1), epochs=2, batch_size=20, sample_weight=np.where(y[0] > 0.5, 4, 1))
    np.testing.assert_allclose(a._params, b._params, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("s,pattern", [
    (np.zeros(6), "must not be all zero"),
    (np.r_[1, 1, -1, 1, 1, 1], "non-negative"),
    (np.r_[1, 1, np.nan, 1, 1, 1], "NaN or infinity"),
    (np.ones(5), r"shape \(6,\)"),
    (np.ones((6, 1)), r"shape \(6,\)"),
])
@pytest.mark.parametrize("call", ["loss", "loss_and_grads", "evaluate", "train_step", "fit"])
def test_bad_sample_weight_is_named_and_changes_nothing(backend, s, pattern, call, rng):
    net = pynn.Network.from_sizes([3, 4, 2], backend=backend, seed=0)
    X, y = rng.normal(size=(3, 6)), rng.integers(0, 2, 6)
    before = net._params.copy()
    args = {"train_step": (pynn.SGD(0.1),)}.get(call, ())
    kw = {"loss": "cross_entropy", "optimizer": pynn.SGD(0.1)} if call == "fit" else {}
    pos = (X, y) if call == "fit" else (X, y, "cross_entropy", *args)
    with pytest.raises(ValueError, match=f"sample_weight.*{pattern}|{pattern}.*sample_weight|sample_weight must"):
        getattr(net, call)(*pos, sample_weight=s, **kw)
    np.testing.assert_array_equal(net._params, before)


@pytest.mark.parametrize("cw,exc,pattern", [
    ("even", ValueError, "class_weight must be a dict"),
    ({5: 1.0}, ValueError, r"class indices in \[0, 1\]"),
    ({0: -1.0}, ValueError, r"class_weight\[0\]"),
    ([1, 2], TypeError, "class_weight must be a dict"),
])
def test_bad_class_weight(cw, exc, pattern, rng):
    net = pynn.Network.from_sizes([3, 4, 2], seed=0)
    before = net._params.copy()
    with pytest.raises(exc, match=pattern):
        net.fit(rng.normal(size=(3, 6)), np.arange(6) % 2, loss="cross_entropy", optimizer=pynn.SGD(0.1),
                class_weight=cw)
    np.testing.assert_array_equal(net._params, before)


def test_class_weight_needs_classification(rng):
    net = pynn.Network.from_sizes([3, 4, 2], output="linear", seed=0)
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        net.fit(rng.normal(size=(3, 6)), rng.normal(size=(2, 6)), loss="mse", optimizer=pynn.SGD(0.1),
                class_weight="balanced")
