"""Network-level equality: every backend's forward, loss, gradients, steps and fits match the
NumPy reference backend, over activations × losses × dtypes × layouts × sizes."""

import numpy as np
import pytest

import pynn
from pynn.backends import BACKENDS

from conftest import NET_TOL, make

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "linear"]
# canonical pairs first, then pairs that take the general chain rule
PAIRS = [("linear", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("exp", "poisson"),
         ("sigmoid", "mse"), ("tanh", "mse"), ("softmax", "mse"), ("relu", "mse"),
         ("softmax", "bce"), ("sigmoid", "cross_entropy"), ("softplus", "poisson"), ("linear", "mae"),
         ("linear", "huber"), ("gelu", pynn.losses.Huber(0.3)), ("elu", "mse")]


def targets(rng, loss, m, d, dtype):
    if loss == "cross_entropy":
        Y = np.zeros((m, d), dtype)
        Y[rng.integers(0, m, d), np.arange(d)] = 1
        return Y
    if loss == "bce":
        return (rng.random((m, d)) > 0.5).astype(dtype)
    if loss == "poisson":
        return rng.poisson(1.5, size=(m, d)).astype(dtype)
    return rng.normal(size=(m, d)).astype(dtype)


def pair_of_nets(sizes, hidden, output, dtype, backend, seed=0):
    ref = pynn.Network.from_sizes(sizes, hidden=hidden, output=output, dtype=dtype, backend="numpy", seed=seed)
    other = pynn.Network.from_sizes(sizes, hidden=hidden, output=output, dtype=dtype, backend=backend, seed=seed)
    for a, b in zip(ref.layers, other.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)  # same seed, same start
    return ref, other


def assert_grads_close(got, want, dtype):
    tol = NET_TOL[dtype]
    for l, ((gW, gb), (wW, wb)) in enumerate(zip(got, want)):
        scale = max(1e-3, float(np.abs(wW).max()), float(np.abs(wb).max()))
        np.testing.assert_allclose(gW, wW, rtol=tol, atol=tol * scale, err_msg=f"dW of layer {l}")
        np.testing.assert_allclose(gb, wb, rtol=tol, atol=tol * scale, err_msg=f"db of layer {l}")


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,loss", PAIRS)
def test_loss_and_grads_match_reference(backend, dtype, layout, hidden, output, loss, rng):
    sizes, d = [6, 9, 5, 4], 11
    ref, net = pair_of_nets(sizes, hidden, output, dtype, backend)
    X = make(rng, (6, d), dtype, layout, low=-2, high=2)
    Y = targets(rng, loss, 4, d, dtype)
    J_ref, g_ref = ref.loss_and_grads(X, Y, loss)
    J, g = net.loss_and_grads(X, Y, loss)
    assert J == pytest.approx(J_ref, rel=NET_TOL[dtype])
    assert_grads_close(g, g_ref, dtype)
    np.testing.assert_allclose(net.predict(X), ref.predict(X), rtol=NET_TOL[dtype], atol=NET_TOL[dtype])


@pytest.mark.parametrize("sizes,d", [([1, 1], 1), ([1, 1, 1], 1), ([2, 2, 1], 3), ([20, 64, 33, 4], 128),
                                     ([10, 300, 3], 257), ([300, 7, 2], 1), ([5, 1, 5], 200)])
def test_sizes_grid(backend, dtype, layout, sizes, d, rng):
    ref, net = pair_of_nets(sizes, "relu", "softmax", dtype, backend, seed=3)
    X = make(rng, (sizes[0], d), dtype, layout)
    y = rng.integers(0, sizes[-1], d)
    J_ref, g_ref = ref.loss_and_grads(X, y, "cross_entropy")
    J, g = net.loss_and_grads(X, y, "cross_entropy")
    assert J == pytest.approx(J_ref, rel=NET_TOL[dtype])
    assert_grads_close(g, g_ref, dtype)


def test_class_indices_equal_one_hot(backend, dtype, rng):
    net = pynn.Network.from_sizes([4, 6, 3], dtype=dtype, backend=backend, seed=1)
    X = make(rng, (4, 9), dtype)
    y = rng.integers(0, 3, 9)
    Y = np.eye(3, dtype=dtype)[:, y]
    J1, g1 = net.loss_and_grads(X, y, "cross_entropy")
    J2, g2 = net.loss_and_grads(X, Y, "cross_entropy")
    assert J1 == J2
    for (a, b), (c, e) in zip(g1, g2):
        assert np.array_equal(a, c) and np.array_equal(b, e)


def test_row_major_data_is_not_copied(backend, dtype, rng):
    # API.md: row-major data is passed as X.T — a view — and the core must not copy it.
    net = pynn.Network.from_sizes([5, 4, 2], dtype=dtype, backend=backend, seed=0)
    data = rng.normal(size=(50, 5)).astype(dtype)
    assert np.shares_memory(net._check_X(data.T), data)
    assert np.shares_memory(net._check_X(np.ascontiguousarray(data.T)), data) is False  # a new C array, itself
    c = np.ascontiguousarray(data.T)
    assert net._check_X(c) is c
    np.testing.assert_allclose(net.predict(data.T), net.predict(c), rtol=NET_TOL[dtype])


def test_other_dtypes_are_cast_once(backend, rng):
    net = pynn.Network.from_sizes([3, 4, 2], backend=backend, seed=0)  # float32
    X = rng.normal(size=(3, 6))
    assert net.predict(X).dtype == np.float32
    np.testing.assert_allclose(net.predict(X), net.predict(X.astype(np.float32)), rtol=0, atol=0)
    np.testing.assert_allclose(net.predict(X.round().astype(int)), net.predict(X.round().astype(np.float32)))


def test_train_step_matches_reference(backend, dtype, layout, rng):
    ref, net = pair_of_nets([8, 16, 16, 3], "tanh", "softmax", dtype, backend)
    X = make(rng, (8, 32), dtype, layout)
    y = rng.integers(0, 3, 32)
    for opt_r, opt in [(pynn.SGD(0.1), pynn.SGD(0.1)), (pynn.SGD(0.05, momentum=0.9, nesterov=True),) * 2,
                       (pynn.Adam(0.01, weight_decay=0.01), pynn.Adam(0.01, weight_decay=0.01))]:
        for _ in range(3):
            assert net.train_step(X, y, "cross_entropy", opt) == pytest.approx(
                ref.train_step(X, y, "cross_entropy", opt_r), rel=NET_TOL[dtype])
    for a, b in zip(ref.layers, net.layers):
        np.testing.assert_allclose(b.W, a.W, rtol=NET_TOL[dtype], atol=NET_TOL[dtype])
        np.testing.assert_allclose(b.b, a.b, rtol=NET_TOL[dtype], atol=NET_TOL[dtype])


def test_fit_matches_reference(backend, rng):
    # float64, so a few hundred steps stay within tolerance of the reference's trajectory
    ref, net = pair_of_nets([4, 12, 3], "sigmoid", "softmax", "float64", backend)
    X = rng.normal(size=(200, 4)).T
    y = rng.integers(0, 3, 200)
    kw = dict(loss="cross_entropy", epochs=3, batch_size=16, seed=7, validation_data=(X[:, :50], y[:50]))
    h_ref = ref.fit(X, y, optimizer=pynn.SGD(0.5, momentum=0.5), **kw)
    h = net.fit(X, y, optimizer=pynn.SGD(0.5, momentum=0.5), **kw)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h[key], h_ref[key], rtol=1e-9, err_msg=key)
    for a, b in zip(ref.layers, net.layers):
        np.testing.assert_allclose(b.W, a.W, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("hidden, output, loss", [("gelu", "exp", "poisson"), ("elu", "linear", pynn.losses.Huber(0.5)),
                                                  ("softplus", "linear", "mae"), ("gelu", "gelu", "huber")])
def test_fit_and_train_step_with_new_losses_match_reference(backend, hidden, output, loss, rng):
    """The fused paths (whole epochs in the core, one train_step) get Huber's delta and keep
    gelu's Z as the per-kernel reference does."""
    ref, net = pair_of_nets([4, 10, 6, 3], hidden, output, "float64", backend)
    X = rng.normal(size=(120, 4)).T
    Y = targets(rng, getattr(loss, "name", loss), 3, 120, np.float64) * (1 if loss == "poisson" else 2)
    kw = dict(loss=loss, epochs=2, batch_size=16, seed=3, validation_data=(X[:, :30], Y[:, :30]))
    h_ref = ref.fit(X, Y, optimizer=pynn.Adam(0.01), **kw)
    h = net.fit(X, Y, optimizer=pynn.Adam(0.01), **kw)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(h[key], h_ref[key], rtol=1e-9, err_msg=key)
    opt, opt_ref = pynn.SGD(0.05, momentum=0.9), pynn.SGD(0.05, momentum=0.9)
    for _ in range(3):
        assert net.train_step(X, Y, loss, opt) == pytest.approx(ref.train_step(X, Y, loss, opt_ref), rel=1e-10)
    np.testing.assert_allclose(net._params, ref._params, rtol=1e-9, atol=1e-12)


def test_forward_out_and_no_state(backend, rng):
    net = pynn.Network.from_sizes([3, 5, 2], backend=backend, seed=0)
    X = rng.normal(size=(3, 7)).astype(np.float32)
    out = np.empty((2, 7), np.float32)
    res = net.forward(X, out=out)
    assert res is out
    np.testing.assert_array_equal(out, net.predict(X))
    before = [l.W.copy() for l in net.layers]
    net.predict(X), net.loss(X, np.array([0, 1, 0, 1, 1, 0, 0]), "cross_entropy"), net.evaluate(X, np.zeros(7, int), "cross_entropy")
    assert all(np.array_equal(a, l.W) for a, l in zip(before, net.layers))


def test_predict_empty_batch(backend):
    net = pynn.Network.from_sizes([3, 4, 2], backend=backend, seed=0)
    assert net.predict(np.empty((3, 0))).shape == (2, 0)


def test_same_seed_same_network_on_every_backend():
    nets = [pynn.Network.from_sizes([7, 5, 3], seed=42, backend="numpy", dtype=dt) for dt in ("float32", "float64")]
    other = pynn.Network.from_sizes([7, 5, 3], seed=43, backend="numpy")
    np.testing.assert_allclose(nets[0].layers[0].W, nets[1].layers[0].W, rtol=1e-7)  # drawn in float64, then cast
    assert not np.array_equal(nets[0].layers[0].W, other.layers[0].W)
    assert {b for b in BACKENDS} >= set(pynn.available_backends())


def test_initialisation_scales():
    # Glorot: Var W = 2 / (n_in + n_out); He: Var W = 2 / n_in; biases zero
    net = pynn.Network([pynn.Dense(400, 300, "tanh"), pynn.Dense(300, 200, "relu")], seed=0, dtype="float64")
    assert np.var(net.layers[0].W) == pytest.approx(2 / 700, rel=0.03)
    assert np.var(net.layers[1].W) == pytest.approx(2 / 300, rel=0.03)
    assert not net.layers[0].b.any()
    normal = pynn.Network([pynn.Dense(400, 300, "tanh", init="he_normal")], seed=0)
    assert np.var(normal.layers[0].W) == pytest.approx(2 / 400, rel=0.03)


@pytest.mark.parametrize("act, var", [("elu", 2 / 400), ("gelu", 2 / 400), ("softplus", 2 / 400),
                                      ("exp", 2 / 700), ("tanh", 2 / 700)])
def test_default_initialisation_of_the_new_activations(act, var):
    # the rectifier family (elu, gelu, softplus) draws He-uniform, like relu; exp, Glorot-uniform
    net = pynn.Network([pynn.Dense(400, 300, act)], seed=0, dtype="float64")
    assert np.var(net.layers[0].W) == pytest.approx(var, rel=0.03)


def test_weights_are_views_of_one_buffer():
    net = pynn.Network.from_sizes([3, 4, 2], seed=0, backend="numpy")
    net.layers[0].W[0, 0] = 5.0          # in-place edits reach the network
    assert net._params[0] == 5.0
    net.layers[1].b = [1.0, 2.0]         # assignment copies into the buffer, (h,) accepted for b
    assert net.layers[1].b.shape == (2, 1) and net._params[-1] == 2.0


def test_weights_read_before_joining_are_kept():
    layer = pynn.Dense(2, 3, "tanh")
    layer.W[:] = 0.25
    net = pynn.Network([layer, pynn.Dense(3, 1, "linear")], seed=0)
    assert (net.layers[0].W == 0.25).all()


@pytest.mark.parametrize("hidden", ["sigmoid", "relu", "gelu"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weighted"])
def test_per_kernel_path_matches_fused_path(backend, dtype, hidden, weighted, rng):
    # cpp and (small-net) numba run whole steps in a fused model; the per-kernel loop is what
    # large numba networks use. Both must give the reference's numbers, with sample weights too
    # (whose first batch of 8, in order, weighs nothing and is skipped).
    sizes = [6, 9, 4]
    fused, per_kernel = (pynn.Network.from_sizes(sizes, hidden=hidden, dtype=dtype, backend=backend, seed=0)
                         for _ in range(2))
    per_kernel._model = None
    ref = pynn.Network.from_sizes(sizes, hidden=hidden, dtype=dtype, backend="numpy", seed=0)
    X, y = make(rng, (6, 40), dtype, "F"), rng.integers(0, 4, 40)
    s = np.r_[np.zeros(8), rng.uniform(0, 3, 32)] if weighted else None
    for net in (fused, per_kernel):
        J, g = net.loss_and_grads(X, y, "cross_entropy", sample_weight=s)
        J_ref, g_ref = ref.loss_and_grads(X, y, "cross_entropy", sample_weight=s)
        assert J == pytest.approx(J_ref, rel=NET_TOL[dtype])
        assert_grads_close(g, g_ref, dtype)
    for shuffle in (True, False) if weighted else (True,):
        kw = dict(loss="cross_entropy", epochs=2, batch_size=8, seed=1, sample_weight=s, shuffle=shuffle)
        h_ref = ref.fit(X, y, optimizer=pynn.Adam(0.01), **kw)
        for net in (fused, per_kernel):
            h = net.fit(X, y, optimizer=pynn.Adam(0.01), **kw)
            np.testing.assert_allclose(h.loss, h_ref.loss, rtol=10 * NET_TOL[dtype])
            np.testing.assert_allclose(h.accuracy, h_ref.accuracy, rtol=10 * NET_TOL[dtype])
            np.testing.assert_allclose(net._params, ref._params, rtol=10 * NET_TOL[dtype],
                                       atol=10 * NET_TOL[dtype])


def test_large_numba_network_takes_the_per_kernel_path():
    pytest.importorskip("numba")
    from pynn.backends import numba_fused

    small = pynn.Network.from_sizes([10, 20, 3], backend="numba", seed=0)
    large = pynn.Network.from_sizes([200, 200, 3], backend="numba", seed=0)
    assert small.n_params <= numba_fused.MAX_PARAMS < large.n_params
    assert isinstance(small._model, numba_fused.Model) and large._model is None


def test_concurrent_predictions_equal_serial_ones(backend, rng):
    # README: predictions may run from several threads on one network (per-thread or pooled
    # workspaces; the compiled kernels release the GIL). Batch sizes differ per thread so the
    # threads would trample each other's buffers if they were shared.
    from concurrent.futures import ThreadPoolExecutor

    net = pynn.Network.from_sizes([16, 32, 32, 4], backend=backend, seed=0)
    batches = [make(rng, (16, d), np.float32, "F") for d in (1, 3, 17, 64, 128, 5, 33, 200)]
    serial = [net.predict(X) for X in batches]

    def work(i):
        return [net.predict(batches[(i + k) % len(batches)]) for k in range(40)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for i, outs in enumerate(results):
        for k, got in enumerate(outs):
            np.testing.assert_array_equal(got, serial[(i + k) % len(batches)])


def test_fused_codes_follow_the_python_tables():
    """numba_fused numbers activations and losses as the tables do (the compiled core's enums in
    csrc/kernels.hpp are checked by every loss × activation equality test above)."""
    from conftest import backend_module
    from pynn.backends import ACTIVATION_KERNELS
    from pynn.losses import LOSSES

    backend_module("numba")
    from pynn.backends import numba_fused as nf

    assert list(nf.ACT_CODES) == list(ACTIVATION_KERNELS) and list(nf.ACT_CODES.values()) == list(range(10))
    assert [nf.MSE, nf.BCE, nf.CROSS_ENTROPY, nf.MAE, nf.HUBER, nf.POISSON] == [LOSSES.index(n) for n in LOSSES]
    assert LOSSES == ("mse", "bce", "cross_entropy", "mae", "huber", "poisson")
