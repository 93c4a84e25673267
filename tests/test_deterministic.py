"""fit(deterministic=True): the same seed gives bit-identical weights whatever the thread counts of
pynn's pools and NumPy's BLAS; the counts are put back afterwards."""

import numpy as np
import pytest
import threadpoolctl  # a dependency of pynn

import pynn


def _blas_threads():
    """Threads of the BLAS pools pynn calls: NumPy's and the compiled core's (not SciPy's own)."""
    return sorted(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
                  and ("numpy" in i["filepath"] or "scipy_openblas32" in i["filepath"]))


def _fit(backend, threads, deterministic, callbacks=()):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, 300)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    net = pynn.Network.from_sizes([300, 256, 10], backend=backend, seed=1)
    before = pynn.get_num_threads()
    try:
        pynn.set_num_threads(threads)
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            net.fit(X.T, y, loss="cross_entropy", optimizer=pynn.Adam(1e-3), epochs=2, batch_size=256, seed=2,
                    deterministic=deterministic, callbacks=callbacks)
            after = _blas_threads()
    finally:
        pynn.set_num_threads(before)
    return net._params.copy(), after


# On these shapes a plain fit on 1 and on 2 threads differs in float32 on every backend here
# (max 2.2e-6 on cpp and numba, 1.5e-6 on numpy), so this test sees the guarantee at work.
def test_deterministic_fit_same_weights_on_1_and_2_threads(backend):
    one, _ = _fit(backend, 1, True)
    two, after = _fit(backend, 2, True)
    assert np.array_equal(one, two)
    assert after == [2] * len(after)  # the caller's counts are back after fit


def test_deterministic_fit_runs_blas_and_numba_on_one_thread(backend):
    seen = []

    def probe(epoch, logs):
        numba = __import__("sys").modules.get("numba")
        seen.append((_blas_threads(), numba.get_num_threads() if numba else 1))

    _fit(backend, 2, True, callbacks=[probe])
    assert seen and all(set(b) == {1} and n == 1 for b, n in seen)


def test_deterministic_equals_a_plain_fit_on_one_thread(backend):
    """deterministic=True only pins the thread count: on one thread it is the ordinary fit."""
    assert np.array_equal(_fit(backend, 1, True)[0], _fit(backend, 1, False)[0])


def test_deterministic_must_be_a_bool():
    net = pynn.Network.from_sizes([2, 2], seed=0)
    with pytest.raises(TypeError, match="deterministic must be a bool, got 'yes'"):
        net.fit(np.zeros((2, 4)), np.zeros(4, int), loss="cross_entropy", optimizer=pynn.SGD(0.1),
                deterministic="yes")
