"""Activations and losses against PyTorch (float64): every kernel's value and derivative on every
backend, and whole networks' loss and gradients against torch.autograd.

The loss convention is pynn's J = (1/d) Σ_i Σ_k L_ik, i.e. torch's ``reduction="sum"`` over d.
"""

from __future__ import annotations

import numpy as np
import pytest

import pynn
from conftest import IN_CI, assert_close, nans

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    if IN_CI:
        raise
    torch = None
pytestmark = pytest.mark.skipif(torch is None, reason="torch (the oracle) is not installed")

F64 = np.dtype(np.float64)

# pynn name -> the torch module it follows (default arguments, as pynn documents)
TORCH_ACT = {
    "elu": lambda: torch.nn.ELU(),                  # alpha = 1
    "gelu": lambda: torch.nn.GELU(),                # approximate="none": the exact erf form
    "softplus": lambda: torch.nn.Softplus(),        # beta = 1, threshold = 20
    "exp": lambda: torch.exp,
}

# Points on both sides of every branch: elu's 0, softplus's threshold 20 (19.5, 20 itself, 20.5),
# large negative values where exp and erfc underflow, and small ones around 0.
Z_POINTS = np.array([-800.0, -40.0, -20.0, -7.5, -3.0, -1.0, -0.25, -1e-8, 0.0, 1e-8, 0.3, 1.0, 2.5, 6.0,
                     19.5, 20.0, 20.5, 35.0, 300.0])


def torch_act(act, z):
    """(act(z), act'(z)) by torch.autograd, float64."""
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    a = TORCH_ACT[act]()(t)
    (g,) = torch.autograd.grad(a.sum(), t)
    return a.detach().numpy(), g.numpy()


@pytest.mark.parametrize("act", list(TORCH_ACT))
def test_activation_value_and_derivative_equal_torch(kernels, act):
    Z = Z_POINTS if act != "exp" else Z_POINTS[np.abs(Z_POINTS) < 700]  # exp(800) is inf in both
    Z = np.asfortranarray(np.stack([Z, Z[::-1]]))
    A_t, dZ_t = torch_act(act, Z)
    A = nans(Z.shape, F64)
    getattr(kernels, f"{act}_forward")(Z, A)
    assert_close(A, A_t, F64)
    dA = np.asfortranarray(np.linspace(-2, 2, Z.size).reshape(Z.shape))
    dZ = nans(Z.shape, F64)
    getattr(kernels, f"{act}_backward")(dA, Z if act == "gelu" else A, dZ)  # gelu's backward reads Z
    assert_close(dZ, dA * dZ_t, F64)


def test_softplus_linear_region_is_torchs(kernels):
    """Above the threshold A = Z and dA/dZ = 1 exactly, as in torch.nn.Softplus."""
    Z = np.array([[20.0 + 1e-6, 25.0, 1e4]])
    A, dZ = nans(Z.shape, F64), nans(Z.shape, F64)
    kernels.softplus_forward(Z, A)
    kernels.softplus_backward(np.ones_like(Z), A, dZ)
    A_t, dZ_t = torch_act("softplus", Z)
    assert np.array_equal(A, Z) and np.array_equal(A, A_t)
    assert np.array_equal(dZ, dZ_t) and (dZ == 1).all()


def loss_data(loss, rng, shape=(3, 7)):
    """(Yhat or Z, Y) for a loss, with Yhat - Y on both sides of huber's delta and exact ties for mae."""
    if loss in ("poisson", "poisson_logits"):
        Y = rng.poisson(2.0, size=shape).astype(np.float64)
        Yhat = rng.uniform(-2, 2, shape) if loss == "poisson_logits" else rng.uniform(0.05, 5, shape)
        return np.asfortranarray(Yhat), Y
    Y = rng.normal(size=shape)
    Yhat = Y + rng.uniform(-3, 3, shape)
    Yhat[0, :2] = Y[0, :2]  # residual exactly 0: mae's subgradient is 0 there, as torch's sign
    return np.asfortranarray(Yhat), Y


def torch_loss(loss, Yhat, Y, delta):
    """(J, dJ/dYhat) by torch with reduction="sum" / d."""
    t = torch.tensor(Yhat, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(Y, dtype=torch.float64)
    fn = {
        "mae": lambda: torch.nn.L1Loss(reduction="sum"),
        "huber": lambda: torch.nn.HuberLoss(reduction="sum", delta=delta),
        # the general path takes the rate itself: torch's log_input=True on log(yhat)
        "poisson": lambda: (lambda a, b: torch.nn.PoissonNLLLoss(log_input=True, full=False, reduction="sum")(
            torch.log(a), b)),
        "poisson_logits": lambda: torch.nn.PoissonNLLLoss(log_input=True, full=False, reduction="sum"),
    }[loss]()
    J = fn(t, y) / Yhat.shape[1]
    (g,) = torch.autograd.grad(J, t)
    return J.item(), g.numpy()


@pytest.mark.parametrize("loss, delta", [("mae", None), ("huber", None), ("huber", 0.4), ("huber", 2.5),
                                         ("poisson", None), ("poisson_logits", None)])
def test_loss_value_and_gradient_equal_torch(kernels, loss, delta, rng):
    Yhat, Y = loss_data(loss, rng)
    args = () if delta is None else (delta,)
    J_t, g_t = torch_loss(loss, Yhat, Y, 1.0 if delta is None else delta)
    assert_close(getattr(kernels, f"{loss}_forward")(Yhat, Y, *args), J_t, F64)
    if loss == "poisson_logits":  # its gradient is the canonical pair's (exp(Z) - Y) / d
        dZ = nans(Yhat.shape, F64)
        kernels.output_backward(np.exp(Yhat), Y, dZ)
    else:
        dZ = nans(Yhat.shape, F64)
        getattr(kernels, f"{loss}_backward")(Yhat, Y, dZ, *args)
    assert_close(dZ, g_t, F64)


# ---------------------------------------------------------------- whole networks vs torch.autograd
TORCH_LOSS = {
    "mse": lambda delta: (lambda a, y: 0.5 * torch.nn.MSELoss(reduction="sum")(a, y)),
    "mae": lambda delta: torch.nn.L1Loss(reduction="sum"),
    "huber": lambda delta: torch.nn.HuberLoss(reduction="sum", delta=delta),
}


def torch_net_loss_and_grads(net, X, Y, loss, delta):
    """The same MLP in torch (weights copied), J = loss / d and its gradients."""
    Ws = [torch.tensor(l.W, dtype=torch.float64, requires_grad=True) for l in net.layers]
    bs = [torch.tensor(l.b, dtype=torch.float64, requires_grad=True) for l in net.layers]
    A = torch.tensor(X, dtype=torch.float64)
    y = torch.tensor(Y, dtype=torch.float64)
    for l, (W, b) in enumerate(zip(Ws, bs)):
        Z = W @ A + b
        act = net.layers[l].activation
        if l == len(Ws) - 1 and loss == "poisson" and act == "exp":  # torch's log_input=True takes Z
            J = torch.nn.PoissonNLLLoss(log_input=True, full=False, reduction="sum")(Z, y)
            break
        A = Z if act == "linear" else TORCH_ACT[act]()(Z)
    else:
        if loss == "poisson":
            J = torch.nn.PoissonNLLLoss(log_input=True, full=False, reduction="sum")(torch.log(A), y)
        else:
            J = TORCH_LOSS[loss](delta)(A, y)
    J = J / X.shape[1]
    grads = torch.autograd.grad(J, [*Ws, *bs])
    L = len(Ws)
    return J.item(), [(grads[l].numpy(), grads[L + l].numpy()) for l in range(L)]


@pytest.mark.parametrize("hidden", ["elu", "gelu", "softplus"])
@pytest.mark.parametrize("output, loss, delta", [("exp", "poisson", None), ("softplus", "poisson", None),
                                                 ("linear", "mae", None), ("linear", "huber", None),
                                                 ("gelu", "huber", 0.3), ("elu", "mse", None)])
def test_network_loss_and_grads_equal_torch_autograd(backend, hidden, output, loss, delta, rng):
    net = pynn.Network.from_sizes([4, 6, 5, 3], hidden=hidden, output=output, dtype="float64", backend=backend,
                                  seed=4)
    X = rng.normal(size=(4, 9))
    Y = rng.poisson(1.5, size=(3, 9)).astype(float) if loss == "poisson" else rng.normal(size=(3, 9))
    spec = pynn.losses.Huber(delta) if delta is not None else loss
    J, grads = net.loss_and_grads(X, Y, spec)
    J_t, grads_t = torch_net_loss_and_grads(net, X, Y, loss, 1.0 if delta is None else delta)
    assert J == pytest.approx(J_t, rel=1e-12)
    for (dW, db), (tW, tb) in zip(grads, grads_t):
        assert_close(dW, tW, F64, rtol=1e-10)
        assert_close(db, tb, F64, rtol=1e-10)
