"""Thread safety (issue 6, item 7), as README's "Thread safety" section states it.

* forward / predict / predict_classes / loss / evaluate may run from several threads on one
  network: results equal the serial ones (8 threads; test_network.py has the plain predict
  case).
* Training one network while another network predicts in a second thread, or training
  several networks in several threads, gives exactly the serial results.
* Training a network from two threads, or while it predicts, is not supported — but it must
  not crash or corrupt memory (run under AddressSanitizer by .ci/sanitize.sh): predictions
  stay well-formed, and training from two threads that keep rebinding and resetting their
  optimizers leaves finite weights.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import pynn
from conftest import NET_TOL

THREADS = 8


def data(seed, d=64, n=12, m=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, m, d)


def run_together(*fns):
    """Run the functions in threads released together; return their results (re-raising)."""
    barrier = threading.Barrier(len(fns))

    def go(fn):
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(fns)) as pool:
        return [f.result() for f in [pool.submit(go, fn) for fn in fns]]


def test_read_only_calls_from_8_threads_equal_serial(backend):
    net = pynn.Network.from_sizes([12, 32, 32, 4], backend=backend, seed=0)
    batches = [data(i, d) for i, d in enumerate((1, 3, 17, 64, 128, 5, 33, 200))]
    calls = {
        "predict_classes": lambda X, y: net.predict_classes(X),
        "loss": lambda X, y: net.loss(X, y, "cross_entropy"),
        "evaluate": lambda X, y: net.evaluate(X, y, "cross_entropy"),
        "forward": lambda X, y: net.forward(X),
    }
    serial = {name: [fn(X, y) for X, y in batches] for name, fn in calls.items()}

    def work(i):
        out = []
        for k in range(24):
            name = list(calls)[(i + k) % len(calls)]
            j = (i + 3 * k) % len(batches)
            out.append((name, j, calls[name](*batches[j])))
        return out

    for results in run_together(*[lambda i=i: work(i) for i in range(THREADS)]):
        for name, j, got in results:
            want = serial[name][j]
            if isinstance(want, np.ndarray):
                np.testing.assert_array_equal(got, want, err_msg=name)
            else:
                assert got == want, name


def train(net, X, y, steps=60, opt=None):
    opt = opt or pynn.Adam(0.01)
    losses = [net.train_step(X[:, k % 8::8], y[k % 8::8], "cross_entropy", opt) for k in range(steps)]
    return losses


def test_training_one_network_while_another_predicts(backend):
    trained = pynn.Network.from_sizes([12, 32, 4], backend=backend, seed=1)
    twin = pynn.Network.from_sizes([12, 32, 4], backend=backend, seed=1)
    other = pynn.Network.from_sizes([12, 16, 4], backend=backend, seed=2)
    X, y = data(3, d=256)
    Xp, _ = data(4, d=50)
    want_pred = other.predict(Xp)
    want_losses = train(twin, X, y)

    def predict_many():
        return [other.predict(Xp) for _ in range(300)]

    losses, preds = run_together(lambda: train(trained, X, y), predict_many)
    assert losses == want_losses
    for l, t in zip(trained.layers, twin.layers):
        np.testing.assert_array_equal(l.W, t.W)
        np.testing.assert_array_equal(l.b, t.b)
    for p in preds:
        np.testing.assert_array_equal(p, want_pred)


def test_fitting_several_networks_in_several_threads(backend):
    """fit in 4 threads at once, each its own network and optimizer: each history and each
    set of weights is the one a serial fit gives."""
    X, y = data(5, d=300)

    def fit(seed):
        net = pynn.Network.from_sizes([12, 24, 4], backend=backend, seed=seed)
        h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.05, momentum=0.9), epochs=3, batch_size=32,
                    seed=seed)
        return h.loss, [l.W.copy() for l in net.layers]

    serial = [fit(s) for s in range(4)]
    for (loss, Ws), (loss_s, Ws_s) in zip(run_together(*[lambda s=s: fit(s) for s in range(4)]), serial):
        assert loss == loss_s
        for W, W_s in zip(Ws, Ws_s):
            np.testing.assert_array_equal(W, W_s)


def test_predicting_while_the_same_network_trains_is_memory_safe(backend):
    """Not supported (the predictions see weights mid-update), but safe: no crash, and every
    prediction is a well-formed softmax output."""
    net = pynn.Network.from_sizes([12, 32, 4], backend=backend, seed=1)
    X, y = data(6, d=256)

    def predict_many():
        return [net.predict(X[:, :40]) for _ in range(200)]

    _, preds = run_together(lambda: train(net, X, y, steps=200, opt=pynn.SGD(0.01)), predict_many)
    for p in preds:
        assert p.shape == (4, 40) and np.isfinite(p).all()
        np.testing.assert_allclose(p.sum(axis=0), 1, rtol=NET_TOL[np.dtype(np.float32)])


def test_training_one_network_from_two_threads_is_memory_safe(backend):
    """Not supported either, and the results are meaningless — but two threads stepping one
    network while rebinding and resetting optimizers (which frees their state arrays) must
    not crash: the compiled core holds on to the state a step is using."""
    net = pynn.Network.from_sizes([12, 16, 4], backend=backend, seed=3)
    X, y = data(7, d=64)

    def worker(seed):
        rng = np.random.default_rng(seed)
        for k in range(300):
            opt = pynn.Adam(1e-3) if rng.random() < 0.5 else pynn.SGD(1e-3, momentum=0.5)
            try:
                net.train_step(X, y, "cross_entropy", opt)
            except FloatingPointError:
                pass
            opt.reset()
        return True

    assert all(run_together(lambda: worker(1), lambda: worker(2)))
    assert all(np.isfinite(l.W).all() for l in net.layers)
