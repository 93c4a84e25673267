"""Regression tests for the defects the property-based tests (test_fuzz.py, test_fuzz_core.py)
found, each the smallest case that showed it, on every backend where it applies. Each test
says what was wrong before the fix ("Was:"); two guard against regressions the fixes
themselves caused ("Found in this branch")."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pynn
from conftest import backend_module


def misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.size * a.itemsize + 1, np.uint8)
    m = buf[1:].view(a.dtype).reshape(a.shape)
    m[...] = a
    return m


@pytest.fixture
def net_and_data():
    def make(backend, dtype="float32"):
        net = pynn.Network.from_sizes([3, 4, 3], hidden="tanh", dtype=dtype, backend=backend, seed=0)
        X = np.random.default_rng(0).normal(size=(3, 6)).astype(dtype)
        y = np.array([0, 1, 2, 1, 0, 2])
        return net, X, y

    return make


# Was: the compiled fast path rejected valid arrays it cannot read in place — X[:, ::-1] gave
# "ValueError: X must have positive strides", X[:, ::2] "must be contiguous along one axis",
# a misaligned X "must be aligned to its dtype" — instead of copying them once, as the other
# backends and the general path do.
@pytest.mark.parametrize("view", ["negative", "strided", "misaligned"])
def test_views_the_core_cannot_read_in_place_are_copied(backend, net_and_data, view):
    net, X, y = net_and_data(backend)
    wide = np.random.default_rng(1).normal(size=(3, 12)).astype(np.float32)
    Xv = {"negative": X[:, ::-1], "strided": wide[:, ::2], "misaligned": misaligned(X)}[view]
    Xc = np.ascontiguousarray(Xv)
    np.testing.assert_array_equal(net.predict(Xv), net.predict(Xc))
    assert net.loss(Xv, y, "cross_entropy") == net.loss(Xc, y, "cross_entropy")
    twin = pynn.Network.from_sizes([3, 4, 3], hidden="tanh", backend=backend, seed=0)
    assert net.train_step(Xv, y, "cross_entropy", pynn.SGD(0.1)) == twin.train_step(Xc, y, "cross_entropy",
                                                                                      pynn.SGD(0.1))
    np.testing.assert_array_equal(net.layers[0].W, twin.layers[0].W)


# Was: train_step on the cpp backend read big-endian targets ('>f8') as native doubles — the
# NumPy type number does not encode byte order — and trained on garbage: J = 0.002 instead of
# 0.44 for the seed's example, silently.
@pytest.mark.parametrize("which", ["X", "Y", "class indices"])
def test_byte_swapped_arrays_are_read_by_value(backend, which):
    net = pynn.Network([pynn.Dense(2, 3, "tanh"), pynn.Dense(3, 2, "softmax")], dtype="float64", backend=backend,
                       seed=0)
    twin = pynn.Network([pynn.Dense(2, 3, "tanh"), pynn.Dense(3, 2, "softmax")], dtype="float64", backend=backend,
                        seed=0)
    X, Y, y = np.array([[0.5, -1.0], [0.2, 0.3]]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    swapped = {"X": (X.astype(">f8"), Y), "Y": (X, Y.astype(">f8")), "class indices": (X, y.astype(">i8"))}[which]
    native = {"X": (X, Y), "Y": (X, Y), "class indices": (X, y)}[which]
    assert net.train_step(*swapped, "cross_entropy", pynn.SGD(0.1)) == \
        twin.train_step(*native, "cross_entropy", pynn.SGD(0.1))
    np.testing.assert_array_equal(net.layers[1].W, twin.layers[1].W)


# Found in this branch, after the core began refusing misaligned class indices (reading them
# was undefined behaviour): fit on cpp then leaked "_core.InvalidInput: Y indices do not match"
# because validation passed a misaligned int64 array through uncopied.
def test_misaligned_class_indices(backend, net_and_data):
    net, X, y = net_and_data(backend)
    twin, _, _ = net_and_data(backend)
    ym = misaligned(y.astype(np.int64))
    h1 = net.fit(X, ym, loss="cross_entropy", optimizer=pynn.SGD(0.1), batch_size=4, seed=0)
    h2 = twin.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), batch_size=4, seed=0)
    assert h1.loss == h2.loss


# Was: softmax + cross-entropy with target columns that do not sum to 1 (unnormalised soft
# labels, or any target of a one-output softmax) returned a gradient that is not the gradient
# of the loss it reports: the fused dJ/dZ = (Yhat - Y)/d assumes Σ_k y_k = 1. gradcheck
# reported 1.0 on every backend. Such targets are now refused; normalised ones agree with
# finite differences.
def test_cross_entropy_targets_of_a_softmax_must_be_distributions(backend):
    net = pynn.Network.from_sizes([3, 4, 3], hidden="tanh", dtype="float64", backend=backend, seed=0)
    X = np.random.default_rng(0).normal(size=(3, 5))
    Y = np.random.default_rng(1).random((3, 5))
    calls = [lambda: net.loss(X, Y, "cross_entropy"), lambda: net.train_step(X, Y, "cross_entropy", pynn.SGD(0.1)),
             lambda: net.fit(X, Y, loss="cross_entropy", optimizer=pynn.SGD(0.1)),
             lambda: pynn.gradcheck(net, X, Y, "cross_entropy")]
    before = net.layers[0].W.copy()
    for call in calls:
        with pytest.raises(ValueError, match=r"Y for loss 'cross_entropy' with a softmax output must have columns "
                                             r"that sum to 1 .*got column sums from 0\.64"):
            call()
    np.testing.assert_array_equal(net.layers[0].W, before)
    assert pynn.gradcheck(net, X, Y / Y.sum(axis=0), "cross_entropy") < 1e-6
    # a sigmoid output reads each target on its own: any values in [0, 1] are fine there
    sig = pynn.Network.from_sizes([3, 4, 3], hidden="tanh", output="sigmoid", dtype="float64", backend=backend,
                                  seed=0)
    assert pynn.gradcheck(sig, X, Y, "cross_entropy") < 1e-6


# Found in this branch, with the rule above: gradcheck validated float32 targets by its float64
# copy's rules, so probabilities rounded to float32 (column sums 1 ± 3e-8), which the float32
# network accepts, made gradcheck raise.
def test_gradcheck_takes_what_the_network_takes(backend):
    net = pynn.Network.from_sizes([3, 4, 3], hidden="tanh", backend=backend, seed=0)
    X = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    P = np.random.default_rng(1).random((3, 5))
    Y = (P / P.sum(axis=0)).astype(np.float32)
    net.loss(X, Y, "cross_entropy")  # accepted by the network
    assert pynn.gradcheck(net, X, Y, "cross_entropy") < 1e-5


# Was: where the true gradient is exactly zero, gradcheck compared rounding noise with
# rounding noise: 1.0 ("completely wrong") on the numpy backend, 0.0 on cpp.
def test_gradcheck_of_an_exactly_zero_gradient(backend):
    net = pynn.Network([pynn.Dense(1, 2, "softmax")], dtype="float64", backend=backend, seed=0)
    X, Y = np.zeros((1, 2)), np.zeros((2, 2))
    _, grads = net.loss_and_grads(X, Y, "mse")
    assert not any(g.any() for gb in grads for g in gb)
    assert pynn.gradcheck(net, X, Y, "mse") == 0.0


# Was: gradcheck(None, ...) raised AttributeError; eps=0 ZeroDivisionError; eps="a" NumPy's
# UFuncTypeError; eps=nan returned nan.
@pytest.mark.parametrize("kw, exc, pattern", [
    (dict(net=None), TypeError, r"net must be a pynn\.Network, got NoneType"),
    (dict(eps=0.0), ValueError, r"eps must be a number in \(0, inf\], got 0\.0"),
    (dict(eps=float("nan")), ValueError, r"eps must be a number .*got nan"),
    (dict(eps="a"), TypeError, r"eps must be a number .*got 'a'"),
])
def test_gradcheck_arguments(kw, exc, pattern):
    net = kw.pop("net", pynn.Network.from_sizes([2, 3, 2], seed=0))
    with pytest.raises(exc, match=pattern):
        pynn.gradcheck(net, np.ones((2, 3)), np.array([0, 1, 0]), "cross_entropy", **kw)


# Was: set_num_threads(2**31) raised pybind11's "incompatible function arguments" TypeError
# after recording the count, so get_num_threads() then reported 2147483648 anyway.
def test_set_num_threads_takes_any_positive_int():
    old = pynn.get_num_threads()
    try:
        pynn.set_num_threads(2**40)
        assert pynn.get_num_threads() == 2**40
        with pytest.raises(ValueError, match=r"n must be an int >= 1, got 0"):
            pynn.set_num_threads(0)
        assert pynn.get_num_threads() == 2**40
    finally:
        pynn.set_num_threads(old)


# Was: save(b"m.npz") raised "Can't mix strings and bytes in path components"; save(None) and
# load(3) raised os.fspath's message, which does not name the argument.
def test_paths_as_bytes_and_junk(tmp_path):
    net = pynn.Network.from_sizes([2, 3, 2], seed=0)
    path = os.fsencode(tmp_path / "m.npz")
    net.save(path)
    np.testing.assert_array_equal(pynn.load(path).layers[0].W, net.layers[0].W)
    for call in (lambda: net.save(None), lambda: pynn.load(3)):
        with pytest.raises(TypeError, match=r"path must be a str, bytes or os\.PathLike, got"):
            call()


# Was: Network(None) and from_sizes(3) raised "'NoneType' object is not iterable"; from_sizes
# ([2.0, 3]) blamed "n_in", an argument the caller never passed; fit(callbacks=3) raised
# "'int' object is not iterable".
@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: pynn.Network(None), TypeError, r"layers must be a sequence of pynn\.Dense layers, got NoneType"),
    (lambda: pynn.Network.from_sizes(3), TypeError, r"sizes must be a sequence of ints, got int"),
    (lambda: pynn.Network.from_sizes([2.0, 3]), TypeError, r"sizes\[0\] must be an int >= 1, got 2\.0"),
    (lambda: pynn.Network.from_sizes([2, 0]), ValueError, r"sizes\[1\] must be an int >= 1, got 0"),
    (lambda: pynn.Network.from_sizes([2, 2]).fit(np.ones((2, 2)), np.array([0, 1]), loss="cross_entropy",
                                                  optimizer=pynn.SGD(0.1), callbacks=3),
     TypeError, r"callbacks must be Callback objects or functions"),
])
def test_arguments_are_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# Was: forward(X, out=X) raised on cpp ("out must not overlap X") but on numpy and numba
# overwrote X while still reading it.
def test_out_must_not_be_X(backend):
    net = pynn.Network([pynn.Dense(2, 2, "tanh")], backend=backend, seed=0)
    X = np.array([[0.5, -1.0], [0.2, 0.3]], np.float32, order="F")
    before = X.copy()
    with pytest.raises(ValueError, match=r"out must not overlap X"):
        net.forward(X, out=X)
    np.testing.assert_array_equal(X, before)


# ---------------------------------------------------------------- pynn._core
# Was: Model.run_batches (fit's fused epoch) wrote a one-hot 1 at Yb[j*m + class] for every
# class index without checking it: an index of 10**12 wrote far outside the workspace and
# crashed the process (segmentation fault). Run in a subprocess so that a crash is a failure
# of this test, not of the test session.
def test_core_run_batches_refuses_class_indices_out_of_range():
    backend_module("cpp")
    code = textwrap.dedent("""
        import numpy as np, pynn
        net = pynn.Network.from_sizes([2, 3, 2], seed=0, backend="cpp")
        net._bind_optimizer(pynn.SGD(0.1))
        X = np.ones((2, 4), np.float32)
        for bad in (10**12, -1, 2):
            try:
                net._model.run_batches(X, np.array([0, 1, bad, 0]), None, 0, 1, 4, 2, False)
            except ValueError as e:
                print("refused:", e)
            else:
                print("accepted", bad)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"crashed ({run.returncode}): {run.stderr[-2000:]}"
    assert run.stdout.count("refused: Y class indices out of range") == 3, run.stdout


@pytest.mark.parametrize("call, pattern", [
    # sizes whose parameter count overflows int64 (was: undefined behaviour, a wrapped count)
    (lambda C: C.Model32(np.zeros(4, np.float32), np.zeros(4, np.float32), [2**62, 4, 2], ["relu", "linear"]),
     r"sizes are too large"),
    # a loss code that is not one (was: computed with an unnamed enum value)
    (lambda C: C.Model32(np.zeros(3, np.float32), np.zeros(3, np.float32), [2, 1], ["linear"]).loss(
        np.ones((2, 3), np.float32), np.ones((1, 3), np.float32), 7, False), r"loss must be 0 \(mse\)"),
    # misaligned flat buffers (was: read through a misaligned pointer)
    (lambda C: C.sgd_update(misaligned(np.ones(5, np.float32)), np.ones(5, np.float32), np.zeros(0, np.float32),
                            0.1, 0.0, False), r"p must be aligned"),
])
def test_core_refuses(call, pattern):
    backend_module("cpp")
    from pynn import _core

    with pytest.raises(ValueError, match=pattern):
        call(_core)


def _bound(C):
    m = C.Model32(np.zeros(3, np.float32), np.zeros(3, np.float32), [2, 1], ["linear"])
    m.set_sgd(0.1, 0.0, False, np.zeros(0, np.float32))
    return m


def test_core_clamps_a_batch_range_that_would_overflow():
    """first * batch_size beyond int64 (was: undefined behaviour): the range is clamped to the
    batches that exist, so nothing runs and nothing is read out of bounds."""
    backend_module("cpp")
    from pynn import _core as C

    out = _bound(C).run_batches(np.ones((2, 3), np.float32), np.ones((1, 3), np.float32), None, 2**62, 2, 2**62, 0,
                                False)
    assert out[4] == 0 and out[1] == 0  # no batch ran, no example seen


# ---------------------------------------------------------------- found by test_fuzz_more.py
@pytest.mark.parametrize("call, pattern", [
    (lambda: pynn.SGD(10**400), r"\blr must be a number in \(0"),
    (lambda: pynn.RMSprop(momentum=-10**400), r"\bmomentum must be a number in \[0, 1\)"),
    (lambda: pynn.losses.Huber(10**400), r"\bdelta must be a number"),
    (lambda: pynn.LBFGS(tol=10**400), r"\btol must be a number"),
    (lambda: pynn.schedules.StepLR(pynn.SGD(0.1), 2, gamma=10**400), r"\bgamma must be a number"),
    (lambda: pynn.EarlyStopping("loss", min_delta=10**400), r"\bmin_delta must be a finite number"),
])
def test_ints_beyond_float_range_are_refused(call, pattern):
    """Was: OverflowError ("int too large to convert to float") from float(value) in the checks."""
    with pytest.raises(ValueError, match=pattern):
        call()


def test_class_weight_beyond_float_range_is_refused(backend):
    """Was: OverflowError from fit, through the same check, for a class weight of 10**400."""
    net = pynn.Network.from_sizes([2, 3, 2], dtype="float64", backend=backend, seed=0)
    before = net._params.copy()
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be a number"):
        net.fit(np.ones((2, 4)), np.array([0, 1, 0, 1]), loss="cross_entropy", optimizer=pynn.SGD(0.1),
                class_weight={1: 10**400})
    np.testing.assert_array_equal(net._params, before)


def test_lbfgs_history_size_beyond_scipys_workspace_is_refused():
    """Was: a segmentation fault. SciPy's L-BFGS-B indexes its workspace of 2 m n + 5 n + 11 m² + 8 m
    floats with 32-bit ints (scipy/scipy#5102); history_size=13973 passes 2**31. Run in a child
    process, so a regression fails this test instead of killing the suite."""
    code = textwrap.dedent("""
        import numpy as np, pynn
        net = pynn.Network.from_sizes([3, 4, 2], output="linear", dtype="float64", seed=0)
        before = net._params.copy()
        try:
            net.fit(np.ones((3, 5)), np.ones((2, 5)), loss="mse", optimizer=pynn.LBFGS(history_size=13973))
        except ValueError as e:
            assert "history_size=13973 is too large" in str(e), e
            assert (net._params == before).all()
            print("refused")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "refused", (out.returncode, out.stdout, out.stderr)


def test_schedule_rates_that_overflow_are_inf_as_in_torch():
    """Was: OverflowError from Python's float power in lr_at (e.g. ExponentialLR(gamma=1e300) at epoch 2),
    raised from fit's epoch end. torch's rates become inf; InverseScaling's (e + 1) ** -power is 0."""
    S = pynn.schedules
    assert S.ExponentialLR(pynn.SGD(1.0), gamma=1e300).lr_at(2) == math.inf
    assert S.StepLR(pynn.SGD(1.0), step_size=1, gamma=1e300).lr_at(3) == math.inf
    assert S.InverseScaling(pynn.SGD(1.0), power=1e300).lr_at(1) == 0.0


@pytest.mark.parametrize("call, pattern", [
    # was: accepted; fit then raised KeyError(3) at the first epoch's end
    (lambda: pynn.schedules.ReduceLROnPlateau(pynn.SGD(0.1), monitor=3), r"\bmonitor must be None or a str"),
    # was: accepted and taken as True
    (lambda: pynn.EarlyStopping("loss", restore_best_weights="no"), r"\brestore_best_weights must be a bool"),
])
def test_junk_callback_arguments_are_refused(call, pattern):
    with pytest.raises(TypeError, match=pattern):
        call()


def test_fit_many_checks_every_callback_list_before_any_network_trains(backend):
    """Was: callbacks=[[], [3]] trained nets[0], then raised the TypeError of nets[1]'s fit, so a
    refused call had changed a network."""
    X, y = np.random.default_rng(0).normal(size=(3, 8)), np.arange(8) % 2
    nets = [pynn.Network.from_sizes([3, 4, 2], backend=backend, seed=s) for s in range(2)]
    before = [n._params.copy() for n in nets]
    with pytest.raises(TypeError, match=r"callbacks\[1\]: callbacks must be Callback objects"):
        pynn.fit_many(nets, X, y, loss="cross_entropy", optimizers=pynn.SGD(0.1), callbacks=[[], [3]], seeds=0)
    for net, p in zip(nets, before):
        np.testing.assert_array_equal(net._params, p)


@pytest.mark.parametrize("step", [2, -1])
def test_one_sample_weight_with_any_stride(backend, step):
    """Was (cpp): "ValueError: sample_weight must be a contiguous float64 array" from fit and
    train_step for one example whose weight is a strided view (np.ones(2)[::2]): NumPy calls a
    one-element array contiguous whatever its stride, so it reached the core with stride 16."""
    s = np.full(2, 0.5)[::step][:1]
    X, Y = np.ones((1, 1)), np.full((1, 1), 2.0)
    net = pynn.Network.from_sizes([1, 1], output="linear", dtype="float64", backend=backend, seed=0)
    ref = pynn.Network.from_sizes([1, 1], output="linear", dtype="float64", backend="numpy", seed=0)
    for n in (net, ref):
        n.fit(X, Y, loss="mse", optimizer=pynn.SGD(0.1), epochs=2, batch_size=1, sample_weight=s)
        n.train_step(X, Y, "mse", pynn.SGD(0.1), sample_weight=s)
    np.testing.assert_allclose(net._params, ref._params, rtol=1e-12)


def test_a_mode_that_is_an_array_is_refused_by_name():
    """ReduceLROnPlateau(mode=np.array(...)) raised NumPy's ambiguous-truth ValueError, which did
    not name the argument (`mode not in (...)` compared the array elementwise)."""
    import pynn.schedules as S

    for make in (lambda m: S.ReduceLROnPlateau(pynn.SGD(0.1), mode=m),
                 lambda m: S.ReduceLROnPlateau(pynn.SGD(0.1), threshold_mode=m),
                 lambda m: pynn.EarlyStopping(mode=m)):
        with pytest.raises(TypeError, match=r"mode must be one of \[.*\], got ndarray"):
            make(np.array(["min", "max"]))
