"""Every kernel on every backend against the NumPy reference: dtype × layout × odd shapes.

Outputs start as NaN, so a kernel that skips an element fails; inputs are compared with copies
afterwards, so a kernel that writes into one fails. Numba compile time dominates the runtime, so
the arrays' layouts are kept to a few combinations (each is a separate compiled specialisation).
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import pytest

from pynn.activations import BACKWARD_FROM_Z
from pynn.backends import ACTIVATION_KERNELS, LOSS_KERNELS
from conftest import TOL, assert_close, make, nans

TOL_RTOL = {dt: tol["rtol"] for dt, tol in TOL.items()}

# (h, n, d): layer width, input width, batch size. Widths 1..300, batches 1..300.
SHAPES = [(1, 1, 1), (2, 2, 1), (3, 5, 7), (64, 33, 128), (17, 300, 5), (9, 4, 300)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]
# Floating-point errors the stable formulas must never raise (underflow to 0 is expected).
NO_FP_ERRORS = dict(over="raise", invalid="raise", divide="raise")


@pytest.fixture(params=SHAPES, ids=SHAPE_IDS)
def shape(request):
    return request.param


@pytest.fixture
def new(rng, dtype, layout):
    """new(shape, low=-1, high=1): a random input in the test's dtype and layout."""
    return functools.partial(make, rng, dtype=dtype, layout=layout)


@pytest.fixture
def out(dtype, layout):
    """out(shape): a NaN-filled output buffer in the test's dtype and layout."""
    return functools.partial(nans, dtype=dtype, layout=layout)


@contextlib.contextmanager
def unchanged(*arrays):
    """Assert that the block leaves these (input) arrays exactly as they were."""
    copies = [a.copy(order="K") for a in arrays]
    yield
    for i, (a, c) in enumerate(zip(arrays, copies)):
        np.testing.assert_array_equal(a, c, err_msg=f"input {i} was modified")


def probabilities(rng, shape, dtype, layout):
    """Values strictly inside (0, 1), as a sigmoid or softmax output would be."""
    return make(rng, shape, dtype, layout, low=0.01, high=0.99)


def activation_output(ref, act, Z):
    """A = act(Z) by the reference, so backward kernels see realistic A (zeros for relu)."""
    A = np.empty_like(Z, order="K")
    getattr(ref, f"{act}_forward")(Z, A)
    return A


def backward_input(ref, act, Z):
    """What <act>_backward reads: A = act(Z), or Z itself for gelu (BACKWARD_FROM_Z)."""
    return Z if act in BACKWARD_FROM_Z else activation_output(ref, act, Z)


def with_zeros(Z):
    """Z with some exact zeros, the boundary of relu's and leaky_relu's `> 0`."""
    Z[::3, ::2] = 0
    return Z


# ---------------------------------------------------------------- dense layer
def test_dense_forward(kernels, ref, dtype, shape, new, out):
    h, n, d = shape
    W, A_prev, b = new((h, n)), new((n, d)), new((h, 1))
    Z, Z_ref = out((h, d)), out((h, d))
    with unchanged(W, A_prev, b):
        kernels.dense_forward(W, A_prev, b, Z)
    ref.dense_forward(W, A_prev, b, Z_ref)
    assert_close(Z, Z_ref, dtype)


@pytest.mark.parametrize("input_grad", [True, False], ids=["dA_prev", "no_dA_prev"])
def test_dense_backward(kernels, ref, dtype, shape, new, out, input_grad):
    h, n, d = shape
    dZ, A_prev, W = new((h, d)), new((n, d)), new((h, n))
    got = [out((h, n)), out((h, 1)), out((n, d)) if input_grad else None]
    want = [out((h, n)), out((h, 1)), out((n, d)) if input_grad else None]
    with unchanged(dZ, A_prev, W):
        kernels.dense_backward(dZ, A_prev, W, *got)
    ref.dense_backward(dZ, A_prev, W, *want)
    for g, w in zip(got, want):
        if w is not None:
            assert_close(g, w, dtype)


@pytest.mark.parametrize("shape", [(1, 70, 40), (80, 1, 50)], ids=["one_output", "one_input"])
def test_dense_products_with_an_inner_dimension_of_one(kernels, ref, dtype, shape, new, out):
    """Products too large for the small-product loop whose inner dimension is 1 (the backward
    below a one-output layer, the forward of a one-input layer): outer products, not BLAS calls."""
    h, n, d = shape
    W, A_prev, b, dZ = new((h, n)), new((n, d)), new((h, 1)), new((h, d))
    Z, Z_ref = out((h, d)), out((h, d))
    kernels.dense_forward(W, A_prev, b, Z)
    ref.dense_forward(W, A_prev, b, Z_ref)
    assert_close(Z, Z_ref, dtype)
    got, want = [out((h, n)), out((h, 1)), out((n, d))], [out((h, n)), out((h, 1)), out((n, d))]
    kernels.dense_backward(dZ, A_prev, W, *got)
    ref.dense_backward(dZ, A_prev, W, *want)
    for g, w in zip(got, want):
        assert_close(g, w, dtype)


# ---------------------------------------------------------------- activations
@pytest.mark.parametrize("in_place", [False, True], ids=["A", "A_is_Z"])
@pytest.mark.parametrize("act", ACTIVATION_KERNELS)
def test_activation_forward(kernels, ref, dtype, shape, new, out, act, in_place):
    h, _, d = shape
    Z = with_zeros(new((h, d), low=-4, high=4))
    A_ref = out((h, d))
    getattr(ref, f"{act}_forward")(Z.copy(order="K"), A_ref)
    if in_place:
        getattr(kernels, f"{act}_forward")(Z, Z)
        A = Z
    else:
        A = out((h, d))
        with unchanged(Z):
            getattr(kernels, f"{act}_forward")(Z, A)
    assert_close(A, A_ref, dtype)


@pytest.mark.parametrize("in_place", [False, True], ids=["dZ", "dZ_is_dA"])
@pytest.mark.parametrize("act", ACTIVATION_KERNELS)
def test_activation_backward(kernels, ref, dtype, shape, new, out, act, in_place):
    h, _, d = shape
    A = backward_input(ref, act, with_zeros(new((h, d), low=-4, high=4)))
    dA = new((h, d))
    dZ_ref = out((h, d))
    getattr(ref, f"{act}_backward")(dA.copy(order="K"), A, dZ_ref)
    if in_place:
        with unchanged(A):
            getattr(kernels, f"{act}_backward")(dA, A, dA)
        dZ = dA
    else:
        dZ = out((h, d))
        with unchanged(dA, A):
            getattr(kernels, f"{act}_backward")(dA, A, dZ)
    assert_close(dZ, dZ_ref, dtype)


# ---------------------------------------------------------------- losses
def loss_inputs(rng, loss, shape, dtype, layout_yhat, layout_y):
    """(Yhat, Y) for a loss: probabilities for bce/cross_entropy, rates and counts for poisson,
    any values for mse, mae and huber (|Yhat - Y| on both sides of huber's delta 1)."""
    if loss in ("mse", "mae", "huber"):
        Yhat = make(rng, shape, dtype, layout_yhat, low=-2, high=2)
        return Yhat, make(rng, shape, dtype, layout_y, low=-2, high=2)
    if loss == "poisson":
        Yhat = make(rng, shape, dtype, layout_yhat, low=0.05, high=4)
        return Yhat, make(rng, shape, dtype, layout_y, low=0, high=6).round()
    Yhat = probabilities(rng, shape, dtype, layout_yhat)
    return Yhat, make(rng, shape, dtype, layout_y, low=0, high=1)


@pytest.mark.parametrize("loss", LOSS_KERNELS)
def test_loss_forward(kernels, ref, dtype, layout, shape, rng, loss):
    h, _, d = shape
    Yhat, Y = loss_inputs(rng, loss, (h, d), dtype, layout, layout)
    with unchanged(Yhat, Y):
        J = getattr(kernels, f"{loss}_forward")(Yhat, Y)
    assert type(J) is float
    assert_close(J, getattr(ref, f"{loss}_forward")(Yhat, Y), dtype)


@pytest.mark.parametrize("loss", LOSS_KERNELS)
def test_loss_backward(kernels, ref, dtype, layout, shape, rng, out, loss):
    h, _, d = shape
    Yhat, Y = loss_inputs(rng, loss, (h, d), dtype, layout, layout)
    dYhat, dYhat_ref = out((h, d)), out((h, d))
    with unchanged(Yhat, Y):
        getattr(kernels, f"{loss}_backward")(Yhat, Y, dYhat)
    getattr(ref, f"{loss}_backward")(Yhat, Y, dYhat_ref)
    assert_close(dYhat, dYhat_ref, dtype)


@pytest.mark.parametrize("loss", ["huber", "mae"])
def test_loss_at_and_around_huber_delta_and_zero(kernels, ref, dtype, loss):
    """Residuals exactly at 0 (mae's subgradient 0) and at ±delta, and a delta other than 1."""
    Yhat = np.array([[0.0, 0.5, -0.5, 1.5], [2.0, -2.0, 0.25, 3.0]], dtype=dtype, order="F")
    Y = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=dtype, order="F")
    for delta in ((0.5, 2.0) if loss == "huber" else (None,)):
        args = () if delta is None else (delta,)
        J = getattr(kernels, f"{loss}_forward")(Yhat, Y, *args)
        assert_close(J, getattr(ref, f"{loss}_forward")(Yhat, Y, *args), dtype)
        dYhat, dYhat_ref = nans(Yhat.shape, dtype), nans(Yhat.shape, dtype)
        getattr(kernels, f"{loss}_backward")(Yhat, Y, dYhat, *args)
        getattr(ref, f"{loss}_backward")(Yhat, Y, dYhat_ref, *args)
        assert_close(dYhat, dYhat_ref, dtype)
        assert dYhat[0, 0] == 0
    if loss == "huber":  # delta 0.5: r = 0.5 is quadratic (0.125), 1.5 linear: 0.5 (1.5 - 0.25)
        J = kernels.huber_forward(Yhat[:1], Y[:1], 0.5)
        assert_close(J, (0 + 0.125 + 0.125 + 0.625) / 4, dtype)


@pytest.mark.parametrize("loss", ["bce_logits", "cross_entropy_logits", "poisson_logits"])
def test_logits_loss_forward(kernels, ref, dtype, shape, new, loss):
    h, _, d = shape
    Z, Y = new((h, d), low=-6, high=6), new((h, d), low=0, high=1)
    with unchanged(Z, Y):
        J = getattr(kernels, f"{loss}_forward")(Z, Y)
    assert type(J) is float
    assert_close(J, getattr(ref, f"{loss}_forward")(Z, Y), dtype)


def test_output_backward(kernels, ref, dtype, shape, new, out):
    h, _, d = shape
    Yhat, Y = new((h, d), low=0.01, high=0.99), new((h, d), low=0, high=1)
    dZ, dZ_ref = out((h, d)), out((h, d))
    with unchanged(Yhat, Y):
        kernels.output_backward(Yhat, Y, dZ)
    ref.output_backward(Yhat, Y, dZ_ref)
    assert_close(dZ, dZ_ref, dtype)


# ---------------------------------------------------------------- one whole layer
def layer_inputs(new, shape):
    """W, A_prev, b for a layer of shape (h, n, d)."""
    h, n, d = shape
    return new((h, n)), new((n, d), low=-2, high=2), new((h, 1))


@pytest.mark.parametrize("alias", [False, True], ids=["Z_A", "Z_is_A"])
@pytest.mark.parametrize("act", ACTIVATION_KERNELS)
def test_layer_forward(kernels, ref, dtype, shape, new, out, act, alias):
    h, _, d = shape
    W, A_prev, b = layer_inputs(new, shape)
    Z_ref, A_ref = out((h, d)), out((h, d))
    ref.layer_forward(W, A_prev, b, act, Z_ref, A_ref)
    Z = out((h, d))
    A = Z if alias else out((h, d))
    with unchanged(W, A_prev, b):
        kernels.layer_forward(W, A_prev, b, act, Z, A)
    # A inherits Z's absolute rounding error (|act'| <= 1), which scales with Z, not with A.
    scale = max(1.0, float(np.abs(Z_ref).max()))
    assert_close(A, A_ref, dtype, scale=scale)
    if not alias:
        assert_close(Z, Z_ref, dtype, scale=scale)


@pytest.mark.parametrize("act", ACTIVATION_KERNELS)
def test_layer_forward_is_dense_then_activation(kernels, new, out, act):
    """The fused kernel is *defined* as the two kernels in a row, on the same backend."""
    h, n, d = 17, 33, 29
    W, A_prev, b = layer_inputs(new, (h, n, d))
    Z, A = out((h, d)), out((h, d))
    kernels.layer_forward(W, A_prev, b, act, Z, A)
    Z2, A2 = out((h, d)), out((h, d))
    kernels.dense_forward(W, A_prev, b, Z2)
    getattr(kernels, f"{act}_forward")(Z2, A2)
    np.testing.assert_array_equal(Z, Z2)
    np.testing.assert_array_equal(A, A2)


@pytest.mark.parametrize(
    "alias, input_grad", [(False, True), (True, False)], ids=["dZ_dA_prev", "dZ_is_dA_no_dA_prev"]
)
@pytest.mark.parametrize("act", ACTIVATION_KERNELS)
def test_layer_backward(kernels, ref, dtype, shape, new, out, act, alias, input_grad):
    h, n, d = shape
    W, A_prev, _ = layer_inputs(new, shape)
    A = backward_input(ref, act, with_zeros(new((h, d), low=-4, high=4)))
    dA = new((h, d))

    def outputs():
        """dW, db, dA_prev (or None)."""
        return [out((h, n)), out((h, 1)), out((n, d)) if input_grad else None]

    want = outputs()
    dZ_ref = out((h, d))
    ref.layer_backward(dA.copy(order="K"), A, act, W, A_prev, dZ_ref, *want)
    got = outputs()
    if alias:
        with unchanged(A, W, A_prev):
            kernels.layer_backward(dA, A, act, W, A_prev, dA, *got)
        dZ = dA
    else:
        dZ = out((h, d))
        with unchanged(dA, A, W, A_prev):
            kernels.layer_backward(dA, A, act, W, A_prev, dZ, *got)
    assert_close(dZ, dZ_ref, dtype)
    for g, w in zip(got, want):
        if w is not None:
            assert_close(g, w, dtype)


# ---------------------------------------------------------------- optimizers (flat buffers)
SIZES = [1, 7, 1000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)],
    ids=["plain", "momentum", "nesterov"],
)
def test_sgd_update(kernels, ref, dtype, rng, size, momentum, nesterov):
    p, g, v = (make(rng, (size,), dtype) for _ in range(3))
    p0, v0 = p.copy(), v.copy()
    p_ref, v_ref = p.copy(), v.copy()
    ref.sgd_update(p_ref, g, v_ref, 0.1, momentum, nesterov)
    with unchanged(g):
        kernels.sgd_update(p, g, v, 0.1, momentum, nesterov)
    assert_close(p, p_ref, dtype)
    assert_close(v, v_ref, dtype)  # with momentum 0, v is left alone
    assert not np.array_equal(p, p0)
    assert np.array_equal(v, v0) == (momentum == 0)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("t", [1, 5])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["adam", "adamw"])
def test_adam_update(kernels, ref, dtype, rng, size, t, weight_decay):
    p, g, m = (make(rng, (size,), dtype) for _ in range(3))
    v = make(rng, (size,), dtype, low=0, high=0.1)
    p0 = p.copy()
    p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
    args = (t, 1e-2, 0.9, 0.999, 1e-8, weight_decay)
    ref.adam_update(p_ref, g, m_ref, v_ref, *args)
    with unchanged(g):
        kernels.adam_update(p, g, m, v, *args)
    assert_close(p, p_ref, dtype)
    assert_close(m, m_ref, dtype)
    assert_close(v, v_ref, dtype)
    assert not np.array_equal(p, p0)



@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
@pytest.mark.parametrize("momentum", [0.0, 0.9], ids=["no-momentum", "momentum"])
@pytest.mark.parametrize("alpha, weight_decay", [(0.99, 0.0), (0.3, 0.01)], ids=["a.99", "a.3-wd"])
def test_rmsprop_update(kernels, ref, dtype, rng, size, centered, momentum, alpha, weight_decay):
    """alpha 0.3 takes the other branch of torch's lerp (weight 1 - alpha >= 0.5)."""
    p, g, ga, buf = (make(rng, (size,), dtype) for _ in range(4))
    sq = (ga * ga + make(rng, (size,), dtype, low=0.01, high=0.1)).astype(dtype)  # s > ḡ², as a run keeps it
    p0, ga0, buf0 = p.copy(), ga.copy(), buf.copy()
    want = [a.copy() for a in (p, sq, ga, buf)]
    args = (1e-2, alpha, 1e-8, weight_decay, momentum, centered)
    ref.rmsprop_update(*want[:1], g, *want[1:], *args)
    with unchanged(g):
        kernels.rmsprop_update(p, g, sq, ga, buf, *args)
    for got, w in zip((p, sq, ga, buf), want):
        assert_close(got, w, dtype)
    assert not np.array_equal(p, p0)
    assert np.array_equal(ga, ga0) != centered and np.array_equal(buf, buf0) == (momentum == 0)


@pytest.mark.parametrize("size", SIZES)
def test_rprop_update(kernels, ref, dtype, rng, size):
    """Signs kept, flipped and zero (prev = 0), and step sizes that hit both clamps."""
    p, g, prev = (make(rng, (size,), dtype) for _ in range(3))
    prev[::3] = 0
    step = make(rng, (size,), dtype, low=1e-4, high=0.2)
    step[::5] = 0.19  # * 1.2 > step_max where the sign is kept
    step[1::5] = 2e-3  # * 0.5 < step_min where it flips
    p0 = p.copy()
    want = [a.copy() for a in (p, prev, step)]
    args = (0.5, 1.2, 1e-3, 0.2)
    ref.rprop_update(want[0], g, want[1], want[2], *args)
    with unchanged(g):
        kernels.rprop_update(p, g, prev, step, *args)
    for got, w in zip((p, prev, step), want):
        assert_close(got, w, dtype, rtol=0, atol=0)  # only products by eta and sign moves: exact
    flipped = g * prev < 0
    assert np.array_equal(prev[flipped], np.zeros(flipped.sum(), dtype)) and np.array_equal(p[flipped], p0[flipped])
    assert step.max() <= dtype.type(0.2) and step.min() >= dtype.type(1e-3)


# ---------------------------------------------------------------- layouts
# Layout handling doesn't depend on the dtype, and every layout combination is a separate Numba
# compilation, so these run in the default dtype only.
F32 = pytest.mark.parametrize("dtype", [np.dtype(np.float32)], ids=["f32"])


@F32
def test_mixed_layouts(kernels, ref, dtype, rng):
    """Y C-ordered while Yhat is F-ordered (Y = y.T for a user's F-ordered y), and other mixes."""
    h, n, d = 6, 11, 23
    F, C = "F", "C"

    def check(name, inputs, out_layout=F):
        """Kernel `name` on inputs and a NaN output of out_layout, against the reference."""
        out, out_ref = nans((h, d), dtype, out_layout), nans((h, d), dtype, out_layout)
        with unchanged(*inputs):
            getattr(kernels, name)(*inputs, out)
        getattr(ref, name)(*inputs, out_ref)
        assert_close(out, out_ref, dtype)

    for loss in LOSS_KERNELS:
        Yhat, Y = loss_inputs(rng, loss, (h, d), dtype, F, C)
        with unchanged(Yhat, Y):
            J = getattr(kernels, f"{loss}_forward")(Yhat, Y)
        assert_close(J, getattr(ref, f"{loss}_forward")(Yhat, Y), dtype)
        check(f"{loss}_backward", (Yhat, Y))
    Yhat, Y = probabilities(rng, (h, d), dtype, F), make(rng, (h, d), dtype, C, low=0, high=1)
    check("output_backward", (Yhat, Y), out_layout=C)
    Z = make(rng, (h, d), dtype, F, low=-6, high=6)
    for loss in ("bce_logits", "cross_entropy_logits", "poisson_logits"):
        J = getattr(kernels, f"{loss}_forward")(Z, Y)
        assert_close(J, getattr(ref, f"{loss}_forward")(Z, Y), dtype)
    check("sigmoid_forward", (make(rng, (h, d), dtype, C, low=-4, high=4),))
    check("softmax_forward", (make(rng, (h, d), dtype, C, low=-4, high=4),))
    A = activation_output(ref, "softmax", make(rng, (h, d), dtype, F))
    check("softmax_backward", (make(rng, (h, d), dtype, C), A))
    A = activation_output(ref, "relu", with_zeros(Z.copy()))
    check("relu_backward", (make(rng, (h, d), dtype, C), A))
    check("gelu_backward", (make(rng, (h, d), dtype, C), make(rng, (h, d), dtype, F, low=-4, high=4)))
    check("huber_backward", (make(rng, (h, d), dtype, F, low=-2, high=2), make(rng, (h, d), dtype, C)))

    # The layer kernels: C-ordered inputs (X.T of an F-ordered X), F-ordered weights and workspace.
    W, A_prev = make(rng, (h, n), dtype, F), make(rng, (n, d), dtype, C)
    b = make(rng, (h, 1), dtype, F)
    check("dense_forward", (W, A_prev, b))
    dZ = make(rng, (h, d), dtype, C)
    got = [nans((h, n), dtype, C), nans((h, 1), dtype, F), nans((n, d), dtype, F)]
    want = [nans((h, n), dtype, C), nans((h, 1), dtype, F), nans((n, d), dtype, F)]
    with unchanged(dZ, A_prev, W):
        kernels.dense_backward(dZ, A_prev, W, *got)
    ref.dense_backward(dZ, A_prev, W, *want)
    for g, w in zip(got, want):
        assert_close(g, w, dtype)


@F32
def test_strided_views(kernels, ref, dtype, rng):
    """Arrays with one unit stride but a larger leading dimension (a slice of a workspace)."""
    h, n, d = 5, 7, 9

    def view(shape, order, fill=False):
        """A slice of a bigger array (random, or NaN if fill): one unit stride, not contiguous."""
        big_shape = (shape[0] + 3, shape[1] + 2)
        big = nans(big_shape, dtype, order) if fill else make(rng, big_shape, dtype, order)
        v = big[1 : shape[0] + 1, 1 : shape[1] + 1]
        assert not (v.flags.c_contiguous or v.flags.f_contiguous)
        return v

    W, A_prev, b = view((h, n), "F"), view((n, d), "C"), view((h, 1), "C")
    Z, Z_ref = view((h, d), "F", fill=True), nans((h, d), dtype)
    with unchanged(W, A_prev, b):
        kernels.dense_forward(W, A_prev, b, Z)
    ref.dense_forward(W, A_prev, b, Z_ref)
    assert_close(Z, Z_ref, dtype)

    A, A_ref = view((h, d), "F", fill=True), nans((h, d), dtype)
    with unchanged(Z):
        kernels.sigmoid_forward(Z, A)
    ref.sigmoid_forward(Z, A_ref)
    assert_close(A, A_ref, dtype)

    got = [view((h, n), "C", fill=True), view((h, 1), "C", fill=True), view((n, d), "F", fill=True)]
    want = [nans((h, n), dtype), nans((h, 1), dtype), nans((n, d), dtype)]
    with unchanged(A, A_prev, W):
        kernels.dense_backward(A, A_prev, W, *got)
    ref.dense_backward(A, A_prev, W, *want)
    for g, w in zip(got, want):
        assert_close(g, w, dtype)


# ---------------------------------------------------------------- numerical stability
def test_sigmoid_saturates_exactly(kernels, ref, dtype):
    Z = np.array([[800, -800, 0], [88, -88, 20], [-20, 1e-3, -1e-3]], dtype=dtype, order="F")
    A = nans(Z.shape, dtype)
    with np.errstate(**NO_FP_ERRORS):
        kernels.sigmoid_forward(Z, A)
    assert A[0, 0] == 1 and A[0, 1] == 0 and A[0, 2] == 0.5
    assert np.all((A >= 0) & (A <= 1))
    A_ref = nans(Z.shape, dtype)
    ref.sigmoid_forward(Z, A_ref)
    assert_close(A, A_ref, dtype)


def test_softmax_of_logits_far_apart(kernels, dtype):
    # Columns are examples: a winner 1000 above, a winner 1000 below the rest, a tie at 1000.
    Z = np.array([[0, 1000, 1000], [1000, 0, 1000], [-1000, -1000, -1000]], dtype=dtype, order="F")
    A = nans(Z.shape, dtype)
    with np.errstate(**NO_FP_ERRORS):
        kernels.softmax_forward(Z, A)
    np.testing.assert_array_equal(A, np.array([[0, 1, 0.5], [1, 0, 0.5], [0, 0, 0]], dtype=dtype))


def test_bce_logits_saturated(kernels, dtype):
    Z = np.array([[800, -800, 800, -800], [-800, 800, 5, -5]], dtype=dtype, order="F")
    Y = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=dtype, order="F")
    with np.errstate(**NO_FP_ERRORS):
        J = kernels.bce_logits_forward(Z, Y)
    # At |z| = 800 the loss is exactly max(z, 0) - y z; both ±5 cost log1p(exp(-5)).
    expected = (0 + 800 + 800 + 0 + 800 + 0 + 2 * math.log1p(math.exp(-5))) / 4
    assert math.isfinite(J)
    assert_close(J, expected, dtype)


def test_cross_entropy_logits_saturated(kernels, dtype):
    Z = np.array([[800, -800, 800], [-800, 800, 800], [0, 0, -800]], dtype=dtype, order="F")
    Y = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=dtype, order="F")
    with np.errstate(**NO_FP_ERRORS):
        J = kernels.cross_entropy_logits_forward(Z, Y)
    # Column 0: lse = 800, y picks -800: 1600. Column 1: y picks the max: 0. Column 2: a tie: log 2.
    assert math.isfinite(J)
    assert_close(J, (1600 + 0 + math.log(2)) / 3, dtype)


def test_probability_losses_at_exact_0_and_1(kernels, ref, dtype):
    Yhat = np.array([[0, 1, 0, 1], [0.5, 1, 0, 0.25]], dtype=dtype, order="F")
    Y = np.array([[0, 1, 1, 0], [1, 0, 1, 0]], dtype=dtype, order="F")
    eps = np.finfo(dtype).eps
    for loss in LOSS_KERNELS:
        with np.errstate(**NO_FP_ERRORS):
            J = getattr(kernels, f"{loss}_forward")(Yhat, Y)
            dYhat = nans(Yhat.shape, dtype)
            getattr(kernels, f"{loss}_backward")(Yhat, Y, dYhat)
        assert math.isfinite(J), loss
        assert np.all(np.isfinite(dYhat)), loss
        assert_close(J, getattr(ref, f"{loss}_forward")(Yhat, Y), dtype)
        dYhat_ref = nans(Yhat.shape, dtype)
        getattr(ref, f"{loss}_backward")(Yhat, Y, dYhat_ref)
        assert_close(dYhat, dYhat_ref, dtype)
    # A confidently wrong bce prediction costs -log(eps), not infinity.
    J = kernels.bce_forward(Yhat[:1, 2:3], Y[:1, 2:3])
    assert_close(J, -math.log(eps), dtype, rtol=1e-4)


@pytest.mark.parametrize("act", ACTIVATION_KERNELS)
def test_large_arrays_take_the_parallel_path(kernels, ref, act):
    """Above numba_kernels.PARALLEL_MIN elements the Numba kernels run their parallel version
    (below it, a serial twin): both must equal the reference. (2048, 2048) = 4,194,304 elements."""
    from pynn.backends.numba_kernels import PARALLEL_MIN

    rng = np.random.default_rng(7)
    h, n, d = 2048, 8, 2048
    assert h * d >= PARALLEL_MIN
    W = rng.uniform(-0.2, 0.2, (h, n)).astype(np.float32)
    A_prev = np.asfortranarray(rng.uniform(-1, 1, (n, d)).astype(np.float32))
    b = rng.uniform(-1, 1, (h, 1)).astype(np.float32)
    Z, A, Zr, Ar = (np.full((h, d), np.nan, np.float32, order="F") for _ in range(4))
    kernels.layer_forward(W, A_prev, b, act, Z, A)
    ref.layer_forward(W, A_prev, b, act, Zr, Ar)
    assert_close(A, Ar, np.float32)
    dA = np.asfortranarray(rng.uniform(-1, 1, (h, d)).astype(np.float32))
    outs = []
    for k in (kernels, ref):
        dZ, dW, db = np.full((h, d), np.nan, np.float32, order="F"), np.empty((h, n), np.float32), np.empty((h, 1), np.float32)
        dAp = np.full((n, d), np.nan, np.float32, order="F")
        k.layer_backward(dA, Zr if act in BACKWARD_FROM_Z else Ar, act, W, A_prev, dZ, dW, db, dAp)
        outs.append((dZ, dW, db, dAp))
    for got, want in zip(*outs):
        assert_close(got, want, np.float32)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9])
def test_dropout_mask(kernels, ref, dtype, layout, shape, p):
    # the same counter-based mask on every backend, element for element
    h, _, d = shape
    M, M_ref = nans((h, d), dtype, layout), nans((h, d), dtype, "F")
    kernels.dropout_mask(2**63 - 5, 17, 3, p, M)
    ref.dropout_mask(2**63 - 5, 17, 3, p, M_ref)
    np.testing.assert_array_equal(M, M_ref)
    assert np.all((M == 0) | (M == dtype.type(1) / dtype.type(1 - p)))


def test_elu_softplus_exp_at_extremes(kernels, ref, dtype):
    """No overflow warning from the branch not taken; softplus is Z above 20 and its derivative
    1 there; elu saturates at -1; exp overflows to inf quietly (the network calls it divergence)."""
    Z = np.array([[-800, -30, -1e-3, 0], [1e-3, 19.5, 20, 20.5], [30, 80, 700, 800]], dtype=dtype, order="F")
    big = Z > np.log(np.finfo(dtype).max)
    with np.errstate(**NO_FP_ERRORS):
        for act in ("elu", "softplus"):
            A, A_ref = nans(Z.shape, dtype), nans(Z.shape, dtype)
            getattr(kernels, f"{act}_forward")(Z, A)
            getattr(ref, f"{act}_forward")(Z, A_ref)
            assert_close(A, A_ref, dtype)
            dZ, dZ_ref = nans(Z.shape, dtype), nans(Z.shape, dtype)
            getattr(kernels, f"{act}_backward")(np.ones_like(Z), A, dZ)
            getattr(ref, f"{act}_backward")(np.ones_like(Z), A_ref, dZ_ref)
            assert_close(dZ, dZ_ref, dtype)
            if act == "softplus":
                assert np.array_equal(A[1:, 3:], Z[1:, 3:]) and A[2, 0] == 30 and (dZ[2] == 1).all()
                assert A[0, 0] == 0 and dZ[0, 0] == 0
                assert A[1, 2] > 20 if dtype == np.float64 else A[1, 2] == 20  # log1p(exp(20)) = 20 + 2e-9
            else:
                assert A[0, 0] == -1 and dZ[0, 0] == 0 and (dZ[1:, 1:] == 1).all()
    A = nans(Z.shape, dtype)
    with np.errstate(over="ignore"):
        kernels.exp_forward(Z, A)
    assert np.isinf(A[big]).all() and np.isfinite(A[~big]).all()


def test_gelu_at_extremes(kernels, ref, dtype):
    Z = np.array([[-800, -40, -5, 0], [5, 40, 800, 1e-3]], dtype=dtype, order="F")
    A, dZ = nans(Z.shape, dtype), nans(Z.shape, dtype)
    with np.errstate(**NO_FP_ERRORS):
        kernels.gelu_forward(Z, A)
        kernels.gelu_backward(np.ones_like(Z), Z, dZ)
    assert A[0, 0] == 0 and A[0, 3] == 0 and A[1, 2] == 800 and dZ[1, 2] == 1 and dZ[0, 0] == 0
    A_ref, dZ_ref = nans(Z.shape, dtype), nans(Z.shape, dtype)
    ref.gelu_forward(Z, A_ref)
    ref.gelu_backward(np.ones_like(Z), Z, dZ_ref)
    assert_close(A, A_ref, dtype)
    assert_close(dZ, dZ_ref, dtype)


def test_poisson_logits_equals_poisson_of_exp(kernels, dtype, rng):
    """The log-rate form is the same loss as the general one at exp(Z), where that is accurate."""
    Z = make(rng, (3, 40), dtype, "F", low=-3, high=3)
    Y = make(rng, (3, 40), dtype, "F", low=0, high=5).round()
    Yhat = np.exp(Z)
    assert_close(kernels.poisson_logits_forward(Z, Y), kernels.poisson_forward(Yhat, Y), dtype,
                 rtol=10 * TOL_RTOL[np.dtype(dtype)])
