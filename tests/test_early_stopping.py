"""EarlyStopping and validation_fraction. Oracles: Keras's stopping rule written out on fixed
score sequences; scikit-learn's MLPClassifier(early_stopping=True) on its own validation
scores; sklearn's train_test_split(stratify=) class counts."""

import math

import numpy as np
import pytest

import pynn


def keras_stop_epoch(values, patience, min_delta=0.0, mode="min", start_from_epoch=0):
    """Keras's EarlyStopping rule, written out: (epoch it stops after or None, best epoch)."""
    sign = 1 if mode == "min" else -1
    best, wait, best_epoch = math.inf, 0, 0
    for e, v in enumerate(values):
        if e < start_from_epoch:
            continue
        wait += 1
        if sign * v < best - min_delta:
            best, best_epoch, wait = sign * v, e, 0
            continue
        if wait >= patience and e > 0:
            return e, best_epoch
    return None, best_epoch


class Replay(pynn.Callback):
    """Puts a fixed score sequence into the logs, before EarlyStopping reads them."""

    def __init__(self, key, values):
        self.key, self.values, self.params = key, values, []

    def on_epoch_end(self, net, epoch, logs):
        logs[self.key] = self.values[epoch]
        self.params.append(net._params.copy())


SEQUENCES = [
    ([1.0, 0.9, 0.95, 0.93, 0.97, 0.5], dict(patience=2)),                  # stops after epoch 3
    ([1.0, 0.9, 0.95, 0.93, 0.89, 0.91, 0.92, 0.93], dict(patience=3)),     # improves at 4, stops at 7
    ([1.0, 0.99, 0.985, 0.984, 0.9], dict(patience=2, min_delta=0.01)),    # small gains do not count
    ([5.0, 6.0, 7.0, 8.0, 1.0], dict(patience=1, start_from_epoch=2)),     # warm-up epochs ignored
    ([1.0, 2.0, 3.0], dict(patience=0)),                                    # patience 0: stop at epoch 1
    ([3.0, 2.0, 1.0, 0.5], dict(patience=1)),                               # never stops
]


@pytest.mark.parametrize("values,kw", SEQUENCES)
@pytest.mark.parametrize("mode", ["min", "max"])
def test_stopping_epoch_follows_keras_rule(values, kw, mode, rng):
    values = values if mode == "min" else [-v for v in values]
    stop_at, best_epoch = keras_stop_epoch(values, mode=mode, **kw)
    net = pynn.Network.from_sizes([2, 3, 1], output="linear", dtype="float64", seed=0)
    replay = Replay("loss", values)
    es = pynn.EarlyStopping(monitor="loss", mode=mode, restore_best_weights=True, **kw)
    X, Y = rng.normal(size=(2, 8)), rng.normal(size=(1, 8))
    h = net.fit(X, Y, loss="mse", optimizer=pynn.SGD(0.05), epochs=len(values), batch_size=4,
                callbacks=[replay, es])
    assert len(h) == (stop_at + 1 if stop_at is not None else len(values))
    assert es.stopped_epoch == (stop_at or 0)
    # fit records a stop only when epochs were left to run
    assert h.stop_reason == ("stop_training" if stop_at is not None and stop_at + 1 < len(values) else None)
    assert es.best_epoch == best_epoch
    np.testing.assert_array_equal(net._params, replay.params[best_epoch])  # the best epoch's weights


def test_no_restore_keeps_the_last_weights(rng):
    net = pynn.Network.from_sizes([2, 3, 1], output="linear", dtype="float64", seed=0)
    replay = Replay("loss", [1.0, 2.0, 3.0, 4.0])
    net.fit(rng.normal(size=(2, 8)), rng.normal(size=(1, 8)), loss="mse", optimizer=pynn.SGD(0.05), epochs=4,
            callbacks=[replay, pynn.EarlyStopping(monitor="loss", patience=2)])
    np.testing.assert_array_equal(net._params, replay.params[-1])
    assert len(replay.params) == 3


def test_mode_auto():
    assert pynn.EarlyStopping("val_loss").mode == "min"
    assert pynn.EarlyStopping("val_accuracy").mode == "max"
    with pytest.raises(ValueError, match="mode='auto' cannot tell"):
        pynn.EarlyStopping("val_f1")
    with pytest.raises(ValueError, match="mode must be one of"):
        pynn.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience must be"):
        pynn.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="min_delta must be a finite number"):
        pynn.EarlyStopping(min_delta=float("nan"))


def test_missing_monitor_is_refused_before_training(rng):
    net = pynn.Network.from_sizes([2, 3, 2], seed=0)
    before = net._params.copy()
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_loss'.*val_\\* needs validation_data"):
        net.fit(rng.normal(size=(2, 6)), np.arange(6) % 2, loss="cross_entropy", optimizer=pynn.SGD(0.1),
                callbacks=[pynn.EarlyStopping()])
    np.testing.assert_array_equal(net._params, before)


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    return X / 16.0, y


def test_equals_sklearn_mlp_early_stopping_on_its_scores(digits):
    # sklearn counts an epoch as not improving when score < best + tol and stops once the count
    # exceeds n_iter_no_change; on accuracies (steps of 1/n_val) with a tol below one step that is
    # Keras's rule with min_delta = tol and patience = n_iter_no_change + 1 (see EarlyStopping)
    from sklearn.neural_network import MLPClassifier

    X, y = digits
    tol, k = 1e-9, 3
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.2, tol=tol,
                        n_iter_no_change=k, max_iter=200, learning_rate_init=0.01, random_state=0).fit(X, y)
    scores = clf.validation_scores_
    assert clf.n_iter_ < 200  # it did stop early
    net = pynn.Network.from_sizes([64, 4, 10], dtype="float64", seed=0)
    replay = Replay("val_accuracy", scores)
    es = pynn.EarlyStopping("val_accuracy", patience=k + 1, min_delta=tol)
    h = net.fit(X.T[:, :50], y[:50], loss="cross_entropy", optimizer=pynn.SGD(0.01), epochs=len(scores),
                batch_size=50, validation_fraction=0.2, callbacks=[replay, es])
    assert len(h) == clf.n_iter_
    assert scores[es.best_epoch] == clf.best_validation_score_
    assert es.best_epoch == int(np.argmax(scores))


# ---------------------------------------------------------------- validation_fraction
def test_validation_fraction_is_stratified_like_sklearn(rng):
    from sklearn.model_selection import train_test_split

    from pynn._validate import split_indices

    y = np.r_[[0] * 50, [1] * 30, [2] * 17, [3] * 3]
    rng.shuffle(y)
    _, y_val = train_test_split(y, test_size=0.2, stratify=y, random_state=0)
    tr, va = split_indices(y.size, 0.2, y, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y[va], minlength=4), np.bincount(y_val, minlength=4))
    assert va.size == math.ceil(0.2 * y.size) and np.intersect1d(tr, va).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[tr, va]), np.arange(y.size))


def test_fit_validation_fraction(backend, rng):
    X = rng.normal(size=(3, 40))
    y = np.r_[[0] * 30, [1] * 10]
    kw = dict(loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=3, batch_size=8, seed=5)
    a = pynn.Network.from_sizes([3, 4, 2], dtype="float64", backend=backend, seed=0)
    h = a.fit(X, y, validation_fraction=0.25, **kw)
    assert {"val_loss", "val_accuracy"} <= set(h.history)
    # the same as passing the split by hand: same seed, same held-out examples
    from pynn._validate import split_indices

    tr, va = split_indices(40, 0.25, y, np.random.default_rng(5))
    assert np.bincount(y[va]).tolist() == [8, 2]
    b = pynn.Network.from_sizes([3, 4, 2], dtype="float64", backend=backend, seed=0)
    b_rng = np.random.default_rng(5)
    split_indices(40, 0.25, y, b_rng)  # fit draws its shuffles after the split, from the same stream
    h_b = _fit_with_rng(b, X[:, tr], y[tr], (X[:, va], y[va]), b_rng, **kw)
    np.testing.assert_allclose(h.val_loss, h_b.val_loss, rtol=1e-12)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-12, atol=1e-15)


def test_fit_validation_fraction_with_balanced_class_weights(backend, rng):
    # "balanced" counts the training part only (scikit-learn's compute_class_weight on it); the
    # held-out examples are neither trained on nor copied into the training set
    from sklearn.utils.class_weight import compute_class_weight
    from pynn._validate import split_indices

    X = rng.normal(size=(3, 40))
    y = np.r_[[0] * 30, [1] * 10]
    kw = dict(loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=3, batch_size=8, seed=5)
    a = pynn.Network.from_sizes([3, 4, 2], dtype="float64", backend=backend, seed=0)
    h = a.fit(X, y, validation_fraction=0.3, class_weight="balanced", **kw)
    b = pynn.Network.from_sizes([3, 4, 2], dtype="float64", backend=backend, seed=0)
    b_rng = np.random.default_rng(5)
    tr, va = split_indices(40, 0.3, y, b_rng)
    w = compute_class_weight("balanced", classes=np.array([0, 1]), y=y[tr])[y[tr]]
    h_b = _fit_with_rng(b, X[:, tr], y[tr], (X[:, va], y[va]), b_rng, sample_weight=w, **kw)
    np.testing.assert_allclose(h.val_loss, h_b.val_loss, rtol=1e-12)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-12, atol=1e-15)


def _fit_with_rng(net, X, y, val, rng, *, epochs, batch_size, optimizer, loss, seed, sample_weight=None):
    """fit's loop by hand with train_step, for the comparisons above."""
    h = pynn.History()
    n = X.shape[1]
    for e in range(epochs):
        order = rng.permutation(n)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            sw = None if sample_weight is None else sample_weight[idx]
            net.train_step(X[:, idx], y[idx], loss, optimizer, sample_weight=sw)
        h.append(e, val_loss=net.loss(*val, loss))
    return h


@pytest.mark.parametrize("kw,exc,pattern", [
    (dict(validation_fraction=0.0), ValueError, r"validation_fraction must be a number in \(0"),
    (dict(validation_fraction=1.0), ValueError, r"validation_fraction must be a number in \(0"),
    (dict(validation_fraction="a"), TypeError, "validation_fraction must be a number"),
    (dict(validation_fraction=0.99), ValueError, "leaves an empty training or validation set"),
])
def test_bad_validation_fraction(kw, exc, pattern, rng):
    net = pynn.Network.from_sizes([3, 4, 2], seed=0)
    before = net._params.copy()
    with pytest.raises(exc, match=pattern):
        net.fit(rng.normal(size=(3, 6)), np.arange(6) % 2, loss="cross_entropy", optimizer=pynn.SGD(0.1), **kw)
    np.testing.assert_array_equal(net._params, before)


def test_validation_data_and_fraction_are_exclusive(rng):
    X, y = rng.normal(size=(3, 6)), np.arange(6) % 2
    net = pynn.Network.from_sizes([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match="validation_data or validation_fraction, not both"):
        net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), validation_data=(X, y), validation_fraction=0.5)


def test_early_stopping_on_real_validation_loss(digits):
    X, y = digits
    net = pynn.Network.from_sizes([64, 32, 10], seed=0)
    es = pynn.EarlyStopping(patience=3, restore_best_weights=True)
    h = net.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(0.05), epochs=200, batch_size=32, seed=0,
                validation_fraction=0.2, callbacks=[es])
    assert len(h) < 200 and h.stop_reason == "stop_training"
    assert len(h) == es.stopped_epoch + 1 and es.best_epoch == int(np.argmin(h.val_loss))
