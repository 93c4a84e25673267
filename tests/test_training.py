"""Training learns: XOR on every backend, and >= 95 % held-out accuracy on scikit-learn's
bundled digits; plus what fit promises (History, seeds, callbacks, progress)."""

import numpy as np
import pytest

import pynn

XOR_X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=float)
XOR_Y = np.array([[0, 1, 1, 0]], dtype=float)


def test_xor(backend):
    net = pynn.Network([pynn.Dense(2, 8, "tanh"), pynn.Dense(8, 1, "sigmoid")], backend=backend, seed=0)
    h = net.fit(XOR_X, XOR_Y, loss="bce", optimizer=pynn.Adam(0.05), epochs=300, batch_size=4)
    assert h.loss[-1] < 0.05 < h.loss[0]
    np.testing.assert_array_equal(net.predict_classes(XOR_X), XOR_Y[0])
    assert net.evaluate(XOR_X, XOR_Y, "bce")["accuracy"] == 1.0


def test_xor_with_the_seeds_plain_sgd(backend):
    # the seed's own setting: sigmoid layers, bce, W <- W - η dW, full batch
    net = pynn.Network([pynn.Dense(2, 4, "sigmoid"), pynn.Dense(4, 1, "sigmoid")], backend=backend, seed=1,
                       dtype="float64")
    for _ in range(3000):
        net.train_step(XOR_X, XOR_Y, "bce", pynn.SGD(2.0))
    np.testing.assert_array_equal(net.predict_classes(XOR_X), XOR_Y[0])


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = datasets.load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = model_selection.train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    return Xtr, Xte, ytr, yte


def test_digits_held_out_accuracy(backend, digits):
    Xtr, Xte, ytr, yte = digits
    net = pynn.Network.from_sizes([64, 64, 10], backend=backend, seed=0)
    h = net.fit(Xtr.T, ytr, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=30, batch_size=32, seed=0,
                validation_data=(Xte.T, yte))
    acc = np.mean(net.predict_classes(Xte.T) == yte)
    assert acc >= 0.95
    assert h.val_accuracy[-1] == pytest.approx(acc)
    assert net.evaluate(Xte.T, yte, "cross_entropy")["accuracy"] == pytest.approx(acc)


def test_history_records_every_epoch():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3, 40)), rng.integers(0, 2, 40)
    net = pynn.Network.from_sizes([3, 6, 2], seed=0)
    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=4, batch_size=8,
                validation_data=(X, y))
    assert h.epoch == [0, 1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "time"):
        assert len(h[key]) == 4 and getattr(h, key) is h[key]
    assert net.history is h
    # loss is the mean of the batch losses, each before its update: replay it by hand
    net2 = pynn.Network.from_sizes([3, 6, 2], seed=0)
    order = np.random.default_rng(5).permutation(40)
    h2 = net2.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=1, batch_size=8, seed=5)
    net3 = pynn.Network.from_sizes([3, 6, 2], seed=0)
    losses = [net3.train_step(X[:, order[s:s + 8]], y[order[s:s + 8]], "cross_entropy", pynn.SGD(0.1))
              for s in range(0, 40, 8)]
    assert h2.loss[0] == pytest.approx(np.mean(losses), rel=1e-5)
    np.testing.assert_allclose(net2.layers[0].W, net3.layers[0].W, rtol=1e-6)


def test_same_seed_same_training():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(200, 5)).T, rng.integers(0, 3, 200)
    runs = []
    for fit_seed in (3, 3, 4):
        net = pynn.Network.from_sizes([5, 8, 3], seed=0)
        net.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, batch_size=16, seed=fit_seed)
        runs.append(net._params.copy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_no_shuffle_and_partial_last_batch():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(2, 10)), rng.normal(size=(1, 10))
    net = pynn.Network.from_sizes([2, 3, 1], output="linear", dtype="float64", seed=0)
    ref = pynn.Network.from_sizes([2, 3, 1], output="linear", dtype="float64", seed=0)
    net.fit(X, Y, loss="mse", optimizer=pynn.SGD(0.1), epochs=1, batch_size=4, shuffle=False)
    for s in (0, 4, 8):  # batches of 4, 4 and 2, in order
        ref.train_step(X[:, s:s + 4], Y[:, s:s + 4], "mse", pynn.SGD(0.1))
    np.testing.assert_allclose(net._params, ref._params, rtol=1e-14)


def test_callbacks_and_stop_training():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(2, 30)), rng.integers(0, 2, 30)
    seen = []

    class Stopper(pynn.Callback):
        def on_epoch_end(self, net, epoch, logs):
            if epoch == 2:
                net.stop_training = True

    net = pynn.Network.from_sizes([2, 4, 2], seed=0)
    h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=10, batch_size=10,
                callbacks=[lambda epoch, logs: seen.append((epoch, logs["loss"])), Stopper()])
    assert [e for e, _ in seen] == [0, 1, 2] and len(h) == 3
    assert [l for _, l in seen] == h.loss


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = np.zeros((2, 8)), np.zeros(8, int)
    pynn.Network.from_sizes([2, 3, 2], seed=0).fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1),
                                                   epochs=2, batch_size=4, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "samples/s" in lines[1]
    pynn.Network.from_sizes([2, 3, 2], seed=0).fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2)
    assert capsys.readouterr().out == ""  # silent by default


def test_predict_classes_binary_and_multiclass():
    net = pynn.Network([pynn.Dense(1, 1, "sigmoid", init=([[10.0]], [[0.0]]))], dtype="float64")
    np.testing.assert_array_equal(net.predict_classes(np.array([[-1.0, 0.5, 2.0]])), [0, 1, 1])
    net = pynn.Network([pynn.Dense(2, 3, "softmax", init=([[1, 0], [0, 1], [-1, -1]], np.zeros(3)))],
                       dtype="float64")
    got = net.predict_classes(np.array([[5.0, 0.0, -5.0], [0.0, 5.0, -5.0]]))
    assert got.shape == (3,) and got.tolist() == [0, 1, 2]
