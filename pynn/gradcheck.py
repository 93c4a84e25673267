"""Check backpropagation against central finite differences."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .network import Network


def gradcheck(net: Network, X: Any, Y: Any, loss: str, *, eps: float = 1e-6) -> float:
    """Largest relative error between the backprop gradients and central finite differences
    ``(J(p + eps) - J(p - eps)) / (2 eps)``, over every weight and bias.

    The check runs on a float64 copy of ``net`` (on the same backend), so a float32 network is
    judged without float32 rounding; ``net`` itself is left untouched. The error of each
    component is ``|g - f| / max(|g| + |f|, 1e-2 · max_j(|g_j| + |f_j|))``: relative, with
    components near zero judged against the gradient's overall scale.

    Examples
    --------
    >>> import numpy as np, pynn
    >>> net = pynn.Network.from_sizes([3, 4, 2], hidden="tanh", seed=0, dtype="float64")
    >>> X = np.random.default_rng(0).normal(size=(3, 5))
    >>> bool(pynn.gradcheck(net, X, np.array([0, 1, 1, 0, 1]), "cross_entropy") < 1e-6)
    True
    """
    net64 = net._clone(dtype="float64")
    X, Y, loss = net64._validated(X, Y, loss)
    net64._loss_and_grads(X, Y, loss)
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
    floor = max(1e-2 * float(mag.max(initial=0.0)), np.finfo(np.float64).tiny)
    return float((np.abs(g - f) / np.maximum(mag, floor)).max(initial=0.0))
