"""Check backpropagation against central finite differences."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._validate import check_float

if TYPE_CHECKING:
    from .network import Network


def gradcheck(net: Network, X: Any, Y: Any, loss: str, *, eps: float = 1e-6) -> float:
    """Largest relative error between the backprop gradients and central finite differences
    ``(J(p + eps) - J(p - eps)) / (2 eps)``, over every weight and bias.

    The check runs on a float64 copy of ``net`` (on the same backend), so a float32 network is
    judged without float32 rounding; ``net`` itself is left untouched. The error of each
    component is ``max(|g - f| - r, 0) / max(|g| + |f|, 1e-2 · max_j(|g_j| + |f_j|), r)``, where
    ``r = 4 ε |J| / eps`` (ε = 2.2e-16) is the rounding error of the differences themselves:
    relative, with components near zero judged against the gradient's overall scale, and no
    discrepancy counted that rounding alone explains (so an exactly zero gradient is not
    reported as wrong).

    Parameters
    ----------
    net : Network
        The network to check (any dtype and backend).
    X, Y, loss
        A batch, its targets and the loss name, as for :meth:`Network.loss`.
    eps : float
        The finite-difference step, > 0.

    Examples
    --------
    >>> import numpy as np, pynn
    >>> net = pynn.Network.from_sizes([3, 4, 2], hidden="tanh", seed=0, dtype="float64")
    >>> X = np.random.default_rng(0).normal(size=(3, 5))
    >>> bool(pynn.gradcheck(net, X, np.array([0, 1, 1, 0, 1]), "cross_entropy") < 1e-6)
    True
    """
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"net must be a pynn.Network, got {type(net).__name__}")
    eps = check_float(eps, "eps", low=0, low_open=True)
    X, Y, loss = net._validated(X, Y, loss)  # the network's own rules, in its dtype
    X = net._scaled_batch(X).astype(np.float64)  # in the input space: net64 has no scaler
    if Y.dtype.kind == "f":
        Y = Y.astype(np.float64)
        if loss == "cross_entropy" and net._stems[-1] == "softmax":  # distributions to float64 precision
            Y /= Y.sum(axis=0)
    net64 = net._clone(dtype="float64")
    net64._scaler = None
    J = net64._loss_and_grads(X, Y, loss)
    g = net64._grads.copy()
    p = net64._params
    f = np.empty_like(g)
    for i in range(p.size):
        old = p[i]
        p[i] = old + eps
        jp = net64._loss_from_checked(X, Y, loss)
        p[i] = old - eps
        jm = net64._loss_from_checked(X, Y, loss)
        p[i] = old
        f[i] = (jp - jm) / (2 * eps)
    mag = np.abs(g) + np.abs(f)
    # the differences' own rounding error (a few ulps of J over 2 eps) is no evidence either way
    noise = 4 * np.finfo(np.float64).eps * max(abs(J), np.finfo(np.float64).tiny) / eps
    floor = max(1e-2 * float(mag.max(initial=0.0)), noise)
    return float((np.maximum(np.abs(g - f) - noise, 0.0) / np.maximum(mag, floor)).max(initial=0.0))
