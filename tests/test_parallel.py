"""Training steps split over threads, and the compiled core's floating-point mode.

With two or more threads a large step of the compiled core is split by columns (csrc/parallel.hpp):
each thread runs the forward and backward pass on its share of the batch and the shares'
gradients are summed. The oracle is the NumPy reference, which never splits anything. The grain
is lowered here so that the small networks of these tests are split too, and ``parts_for`` shows
that they are.
"""

from __future__ import annotations

import multiprocessing
import threading
import warnings

import numpy as np
import pytest

import pynn
from conftest import NET_TOL, backend_module

F64 = np.float64


@pytest.fixture
def core():
    """pynn._core with the grain lowered so that every step of two examples or more is split;
    the grain and the thread count are put back afterwards."""
    backend_module("cpp")
    from pynn import _core

    grain, threads = _core._parallel_grain(), pynn.get_num_threads()
    _core._set_parallel_grain(1, 0)
    yield _core
    _core._set_parallel_grain(*grain)
    pynn.set_num_threads(threads)


# name -> (sizes, hidden, output, loss, optimizer factory, l1, l2, targets kind)
CASES = {
    "softmax-ce-index-adam-l2": ([5, 7, 4], "relu", "softmax", "cross_entropy", lambda: pynn.Adam(1e-2), 0.0, 1e-2,
                                 "index"),
    "sigmoid-bce-nesterov-l1": ([5, 6, 2], "tanh", "sigmoid", "bce", lambda: pynn.SGD(0.1, 0.9, nesterov=True),
                                1e-3, 0.0, "multilabel"),
    "linear-mse-sgd": ([5, 8, 3, 2], "sigmoid", "linear", "mse", lambda: pynn.SGD(0.05), 0.0, 0.0, "real"),
    "tanh-out-mse-rmsprop": ([5, 6, 2], "leaky_relu", "tanh", "mse", lambda: pynn.RMSprop(1e-2, momentum=0.5),
                             0.0, 1e-3, "real"),
}


def _data(kind, n, m, rng):
    X = rng.standard_normal((n, 5))
    if kind == "index":
        return X, rng.integers(0, m, n)
    if kind == "multilabel":
        return X, (rng.random((m, n)) < 0.5).astype(F64)
    return X, 0.5 * rng.standard_normal((m, n))


def _net(case, backend, dtype=F64):
    sizes, hidden, output, *_, l1, l2, _ = CASES[case]
    return pynn.Network.from_sizes(sizes, hidden=hidden, output=output, l1=l1, l2=l2, dtype=dtype,
                                   backend=backend, seed=3)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_split_fit_equals_the_reference(core, case, threads):
    """A fit whose every step is split into `threads` parts (batches of 7: parts of 2-4 examples;
    the last batch of the epoch holds one) equals the NumPy reference's fit."""
    sizes, _, _, loss, opt, *_, kind = CASES[case]
    X, Y = _data(kind, 50, sizes[-1], np.random.default_rng(0))
    pynn.set_num_threads(threads)
    net, ref = _net(case, "cpp"), _net(case, "numpy")
    assert net._model.parts_for(7) == threads and net._model.parts_for(1) == 1
    h = net.fit(X.T, Y, loss=loss, optimizer=opt(), epochs=3, batch_size=7, seed=5)
    h_ref = ref.fit(X.T, Y, loss=loss, optimizer=opt(), epochs=3, batch_size=7, seed=5)
    np.testing.assert_allclose(h.loss, h_ref.loss, rtol=NET_TOL[np.dtype(F64)])
    np.testing.assert_allclose(net._params, ref._params, rtol=NET_TOL[np.dtype(F64)], atol=1e-13)


@pytest.mark.parametrize("case", list(CASES))
def test_split_fit_is_a_loop_of_split_train_steps(core, case):
    """fit runs its split steps on the team from gathering to update (parameters by ranges, the
    penalty's gradient added by ranges); train_step sums the same gradients and updates in one
    pass: the weights are the same bits."""
    sizes, _, _, loss, opt, *_, kind = CASES[case]
    X, Y = _data(kind, 40, sizes[-1], np.random.default_rng(6))
    pynn.set_num_threads(2)
    a, b = _net(case, "cpp"), _net(case, "cpp")
    oa, ob = opt(), opt()
    a.fit(X.T, Y, loss=loss, optimizer=oa, epochs=2, batch_size=8, shuffle=False)
    for _ in range(2):
        for j in range(0, 40, 8):
            b.train_step(X.T[:, j:j + 8], Y[..., j:j + 8], loss, ob)
    assert np.array_equal(a._params, b._params)


@pytest.mark.parametrize("optimizer", [lambda: pynn.SGD(1e38), lambda: pynn.Adam(1e38)], ids=["sgd", "adam"])
def test_a_split_step_that_overflows_changes_nothing(core, optimizer):
    """An update that overflows in any range is taken back in every range (and Adam's count)."""
    X, y = _data("index", 64, 4, np.random.default_rng(7))
    pynn.set_num_threads(2)
    net = _net("softmax-ce-index-adam-l2", "cpp", np.float32)
    net.layers[0].W *= 1e30  # large weights: a step of lr 1e38 overflows some of them
    before = net._params.copy()
    opt = optimizer()
    with pytest.raises(pynn.Diverged):
        net.fit(X.T, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=32)
    assert np.array_equal(net._params, before)
    state = opt._state[net]
    for v in state.values():  # velocity or moments all zero again, Adam's step count 0
        if isinstance(v, np.ndarray):
            assert not v.any()


@pytest.mark.parametrize("case", list(CASES))
def test_split_gradient_and_step_equal_the_reference(core, case):
    sizes, _, _, loss, opt, *_, kind = CASES[case]
    X, Y = _data(kind, 9, sizes[-1], np.random.default_rng(1))
    pynn.set_num_threads(2)
    net, ref = _net(case, "cpp"), _net(case, "numpy")
    J, grads = net.loss_and_grads(X.T, Y, loss)
    J_ref, grads_ref = ref.loss_and_grads(X.T, Y, loss)
    assert J == pytest.approx(J_ref, rel=1e-12)
    for (dW, db), (dW_ref, db_ref) in zip(grads, grads_ref):
        np.testing.assert_allclose(dW, dW_ref, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(db, db_ref, rtol=1e-11, atol=1e-14)
    assert net.train_step(X.T, Y, loss, opt()) == pytest.approx(ref.train_step(X.T, Y, loss, opt()), rel=1e-12)
    np.testing.assert_allclose(net._params, ref._params, rtol=1e-11, atol=1e-14)


def test_split_with_sample_weights_equals_the_reference(core):
    """Weighted steps: each part's gradient is weighted by its share of Σ s, and a part whose
    weights are all zero adds nothing (the first part of the batch here)."""
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 4, 12)
    s = rng.random(12)
    s[:3] = 0.0
    pynn.set_num_threads(2)
    nets = [_net("softmax-ce-index-adam-l2", b) for b in ("cpp", "numpy")]
    Js = [n.train_step(X.T, y, "cross_entropy", pynn.SGD(0.1), sample_weight=s) for n in nets]
    assert Js[0] == pytest.approx(Js[1], rel=1e-12)
    np.testing.assert_allclose(nets[0]._params, nets[1]._params, rtol=1e-11, atol=1e-14)
    hs = [n.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(1e-2), epochs=2, batch_size=6, seed=0,
                sample_weight=s) for n in nets]
    np.testing.assert_allclose(hs[0].loss, hs[1].loss, rtol=1e-10)
    np.testing.assert_allclose(nets[0]._params, nets[1]._params, rtol=1e-10, atol=1e-13)


def test_float32_split_fit_is_close_to_the_reference(core):
    X, y = _data("index", 64, 4, np.random.default_rng(3))
    pynn.set_num_threads(2)
    nets = [_net("softmax-ce-index-adam-l2", b, np.float32) for b in ("cpp", "numpy")]
    hs = [n.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(1e-2), epochs=3, batch_size=16, seed=1)
          for n in nets]
    np.testing.assert_allclose(hs[0].loss, hs[1].loss, rtol=NET_TOL[np.dtype(np.float32)])
    np.testing.assert_allclose(nets[0]._params, nets[1]._params, rtol=1e-3, atol=1e-4)


def _digits_like(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 64)).astype(np.float32), rng.integers(0, 10, n)


def _fit_split(seed, out=None):
    X, y = _digits_like()
    net = pynn.Network.from_sizes([64, 48, 10], seed=seed, backend="cpp")
    net.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(1e-3), epochs=3, batch_size=100, seed=seed)
    if out is not None:
        out[seed] = net._params.copy()
    return net._params.copy()


def test_split_results_do_not_depend_on_which_thread_runs_a_part(core):
    """The same split fit twice gives the same bits; so do four fits at once, where all but one
    find the team busy and run their parts one after another on their own thread."""
    pynn.set_num_threads(2)
    serial = {s: _fit_split(s) for s in range(4)}
    assert np.array_equal(serial[0], _fit_split(0))
    got: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=_fit_split, args=(s, got)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(4):
        assert np.array_equal(got[s], serial[s]), s


def test_parts_follow_the_thread_count_and_dropout(core):
    net = pynn.Network.from_sizes([64, 48, 10], seed=0, backend="cpp")
    pynn.set_num_threads(1)
    assert net._model.parts_for(100) == 1
    pynn.set_num_threads(2)
    assert net._model.parts_for(100) == 2
    assert core.get_num_threads() == 2
    drop = pynn.Network([pynn.Dense(64, 48, "relu", dropout=0.2), pynn.Dense(48, 10, "softmax")], seed=0,
                        backend="cpp")
    assert drop._model.parts_for(100) == 1  # dropout masks are drawn for the whole batch
    core._set_parallel_grain(40, 0)
    assert net._model.parts_for(100) == 2 and net._model.parts_for(79) == 1
    core._set_parallel_grain(1, 10**12)
    assert net._model.parts_for(100) == 1


def test_deterministic_fit_is_not_split(core):
    """deterministic=True runs on one thread, so a split-sized fit on 2 threads is the 1-thread fit."""
    X, y = _digits_like()

    def fit(threads):
        pynn.set_num_threads(threads)
        net = pynn.Network.from_sizes([64, 48, 10], seed=1, backend="cpp")
        net.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(1e-3), epochs=2, batch_size=100, seed=2,
                deterministic=True)
        return net._params.copy()

    assert np.array_equal(fit(1), fit(2))


def _child_fit(conn):
    conn.send(_fit_split(7))
    conn.close()


def test_a_forked_child_trains_split_steps(core):
    """After the parent's team has run, a fork() child (which has none of its threads) makes its
    own team instead of waiting forever for workers that don't exist."""
    pynn.set_num_threads(2)
    want = _fit_split(7)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    with warnings.catch_warnings():  # Python >= 3.12 warns that fork() in a threaded process may deadlock
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=_child_fit, args=(child,))
        proc.start()
    try:
        assert parent.poll(120), "the child did not answer: it hangs"
        assert np.array_equal(parent.recv(), want)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0


def test_threaded_products_run_on_the_team(core):
    """With two threads the core's OpenBLAS hands its parallel jobs to pynn's team (its threads
    callback): large products still equal NumPy's."""
    pynn.set_num_threads(2)
    rng = np.random.default_rng(4)
    W, A, b = rng.standard_normal((300, 400)), rng.standard_normal((400, 500)), rng.standard_normal((300, 1))
    Z = np.full((300, 500), np.nan)
    core.dense_forward(W, A, b, Z)
    np.testing.assert_allclose(Z, W @ A + b, rtol=1e-12, atol=1e-11)
    net = pynn.Network.from_sizes([400, 300, 10], dtype="float64", backend="cpp", seed=0)
    ref = pynn.Network.from_sizes([400, 300, 10], dtype="float64", backend="numpy", seed=0)
    np.testing.assert_allclose(net.predict(A), ref.predict(A), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ floating-point mode
def test_fused_calls_flush_subnormals_and_leave_no_trace():
    """The compiled core's fused calls flush subnormal results to zero (an x86 core takes a
    microcode assist for each), and put the caller's mode back: NumPy still makes subnormals.
    A subnormal operand is read as itself (no DAZ): 1e-40 · 1e30 is 1e-10, not 0."""
    backend_module("cpp")
    tiny = np.float32(1e-40)  # subnormal in float32
    net = pynn.Network([pynn.Dense(3, 2, "linear", init=([[tiny, 0, 0], [1, 1, 1]], [[0], [0]]))], backend="cpp")
    X = np.ones((3, 5), np.float32)
    assert (net.layers[0].W @ X)[0, 0] == tiny  # what the arithmetic gives without flushing
    Y = net.predict(X)
    assert np.array_equal(Y[0], np.zeros(5, np.float32)) and np.array_equal(Y[1], np.full(5, 3, np.float32))
    J, grads = net.loss_and_grads(X, np.zeros((2, 5), np.float32), "mse")
    assert grads[0][0][0, 0] == 0 and J == pytest.approx(4.5)
    assert (net.layers[0].W @ X)[0, 0] == tiny  # the caller's mode is back: NumPy still makes subnormals
    big = np.full((3, 5), 1e30, np.float32)
    np.testing.assert_allclose(net.predict(big)[0], (net.layers[0].W @ big)[0], rtol=1e-6)  # ~1e-10
