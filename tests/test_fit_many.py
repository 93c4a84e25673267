"""pynn.fit_many: K networks trained in parallel threads, each equal bit for bit to the same
network trained alone with fit(..., deterministic=True)."""

import threading
import warnings

import numpy as np
import pytest
import threadpoolctl

import pynn


def _data(n=300, f=12, m=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f))
    return X, (X[:, :m].argmax(axis=1) + (rng.random(n) < 0.1)) % m


def _nets(backend, k=5, dtype="float32"):
    return [pynn.Network.from_sizes([12, 16 + 4 * i, 4], hidden=("tanh", "relu")[i % 2], backend=backend,
                                    dtype=dtype, seed=i) for i in range(k)]


def _pynn_blas():
    """The BLAS pools pynn calls: NumPy's and the compiled core's (not, e.g., SciPy's own)."""
    found = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
             and ("numpy" in i["filepath"] or "scipy_openblas32" in i["filepath"])]
    assert found
    return found


def _clone(net):
    return net._clone()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_network_equals_its_fit_alone(backend, dtype):
    X, y = _data()
    nets = _nets(backend, dtype=dtype)
    alone = [_clone(n) for n in nets]
    opts = [pynn.Adam(1e-2 * (i + 1)) for i in range(len(nets))]
    kw = dict(loss="cross_entropy", epochs=[3, 2, 3, 2, 3], batch_size=[16, 32, 24, 16, 64],
              validation_data=(X[:50].T, y[:50]))
    hs = pynn.fit_many(nets, X.T, y, optimizers=opts, seeds=[0, 1, 2, 3, None], n_jobs=2, **kw)
    for i, (net, ref) in enumerate(zip(nets, alone)):
        if i == 4:  # seed None: the shuffle is not reproducible; it trained all the same
            assert len(hs[i].loss) == 3 and np.isfinite(net._params).all()
            continue
        h = ref.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(1e-2 * (i + 1)), epochs=kw["epochs"][i],
                    batch_size=kw["batch_size"][i], seed=i, validation_data=kw["validation_data"],
                    deterministic=True)
        assert np.array_equal(net._params, ref._params), f"nets[{i}] differs from its fit alone"
        assert hs[i].loss == h.loss and hs[i].val_loss == h.val_loss and net.history is hs[i]


def test_mixed_backends_dtypes_and_a_shared_optimizer():
    X, y = _data()
    nets = [pynn.Network.from_sizes([12, 8, 4], backend=b, dtype=d, seed=3)
            for b in pynn.available_backends() for d in ("float32", "float64")]
    alone = [_clone(n) for n in nets]
    opt = pynn.SGD(0.1, momentum=0.9)  # one optimizer, state kept per network
    pynn.fit_many(nets, X.T, y, loss="cross_entropy", optimizers=opt, epochs=2, seeds=5)
    for net, ref in zip(nets, alone):
        ref.fit(X.T, y, loss="cross_entropy", optimizer=pynn.SGD(0.1, momentum=0.9), epochs=2, seed=5,
                deterministic=True)
        assert np.array_equal(net._params, ref._params)


def test_sparse_data(backend):
    sp = pytest.importorskip("scipy.sparse")
    X, y = _data()
    X[np.abs(X) < 1] = 0
    Xs = sp.csr_array(X)
    nets = _nets(backend, k=2)
    alone = [_clone(n) for n in nets]
    pynn.fit_many(nets, Xs, y, loss="cross_entropy", optimizers=pynn.Adam(0.01), epochs=2, seeds=[1, 2])
    for i, (net, ref) in enumerate(zip(nets, alone)):
        ref.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, seed=i + 1, deterministic=True)
        np.testing.assert_allclose(net._params, ref._params, rtol=1e-4, atol=1e-5)


def test_runs_in_parallel_threads_on_one_blas_thread_and_restores_counts(backend):
    X, y = _data()
    seen = []

    def probe(epoch, logs):
        blas = {i["num_threads"] for i in _pynn_blas()}
        seen.append((threading.current_thread().name, blas))

    before = pynn.get_num_threads()
    blas_before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    pynn.fit_many(_nets(backend, k=4), X.T, y, loss="cross_entropy", optimizers=pynn.SGD(0.1), epochs=2,
                  n_jobs=2, callbacks=[[probe]] * 4)
    assert len(seen) == 8 and all(name.startswith("pynn-fit-many") and blas == {1} for name, blas in seen)
    assert len({name for name, _ in seen}) == 2
    assert pynn.get_num_threads() == before
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == blas_before


def test_a_diverging_network_raises_after_the_others_finished(backend):
    X, y = _data()
    X = X * 1e3
    nets = _nets(backend, k=3, dtype="float64")
    # the reference backend warns on the overflow (the filters are process-wide, so cover the workers)
    with warnings.catch_warnings(), pytest.raises(pynn.Diverged):
        warnings.simplefilter("ignore", RuntimeWarning)
        pynn.fit_many(nets, X.T, y, loss="cross_entropy", optimizers=[pynn.SGD(0.01), pynn.SGD(1e300),
                                                                       pynn.SGD(0.01)], epochs=2, seeds=0)
    assert len(nets[0].history.loss) == 2 and len(nets[2].history.loss) == 2
    assert nets[1].history.stop_reason == "diverged"


@pytest.mark.parametrize("kw, exc, match", [
    (dict(nets="x"), TypeError, "nets must be a sequence of pynn.Network, got str"),
    (dict(nets=[]), ValueError, "nets must hold at least one Network, got none"),
    (dict(nets=[1]), TypeError, r"nets\[0\] must be a pynn.Network, got int"),
    (dict(optimizers=[pynn.SGD(0.1)] * 2), ValueError, "optimizers must be one value or a sequence of 3 .* got 2"),
    (dict(optimizers=[pynn.SGD(0.1), pynn.SGD(0.1), "adam"]), TypeError, r"optimizers\[2\] must be a pynn optimizer"),
    (dict(epochs=[1, 0, 1]), ValueError, r"epochs\[1\] must be an int >= 1, got 0"),
    (dict(seeds=-1), ValueError, "seeds must be an int >= 0, got -1"),
    (dict(callbacks=[()]), ValueError, "callbacks must be None or a sequence of 3 callback lists"),
    (dict(Y=np.zeros(7, int)), ValueError, r"Y \(for nets\[0\]\) as class indices must have shape \(300,\)"),
    # a check each fit makes of its own callbacks: made for all before any network trains
    (dict(callbacks=[(), (), [pynn.EarlyStopping("val_loss")]]), ValueError,
     r"callbacks\[2\]: EarlyStopping monitors 'val_loss', which this fit does not log"),
])
def test_errors_leave_every_network_untouched(kw, exc, match):
    X, y = _data()
    nets = _nets("numpy", k=3)
    before = [n._params.copy() for n in nets]
    args = dict(nets=nets, X=X.T, Y=y, loss="cross_entropy", optimizers=pynn.SGD(0.1))
    args.update(kw)
    with pytest.raises(exc, match=match):
        pynn.fit_many(args.pop("nets"), args.pop("X"), args.pop("Y"), **args)
    assert all(np.array_equal(n._params, b) for n, b in zip(nets, before))


def test_a_repeated_network_is_refused():
    net = _nets("numpy", k=1)[0]
    with pytest.raises(ValueError, match="nets must not repeat a Network"):
        pynn.fit_many([net, net], *(_data()[0].T, _data()[1]), loss="cross_entropy", optimizers=pynn.SGD(0.1))
