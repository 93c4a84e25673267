"""Loss names and how each meets the output activation.

With the canonical pairs the output gradient is ``dJ/dZ(L) = (Yhat - Y) / d`` (the seed's
``Yhat - Y`` for one example), computed by the fused ``output_backward`` kernel; bce,
cross-entropy and poisson are then computed from the pre-activation ``Z(L)`` (logits, or the
log-rate for poisson), so a saturated output never takes ``log(0)``. Other pairs use the general
chain rule ``dZ = <act>_backward(<loss>_backward(...))``.

Every loss is ``J = (1/d) Σ_i Σ_k L_ik``: summed over the outputs, averaged over the examples
(PyTorch's ``reduction="sum"`` divided by ``d``). A loss is given by name, one of ``LOSSES``, or
for Huber with another threshold as a :class:`Huber` object.

Examples
--------
>>> import numpy as np, pynn
>>> pynn.losses.LOSSES
('mse', 'bce', 'cross_entropy', 'mae', 'huber', 'poisson')
>>> net = pynn.Network([pynn.Dense(1, 1, "exp", init=([[1.0]], [[0.0]]))], dtype="float64")
>>> net.loss(np.array([[0.0]]), np.array([[3.0]]), "poisson")  # exp(z) - y z at z = 0
1.0
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

# The order is the compiled core's Loss enum (csrc/kernels.hpp) and numba_fused's codes.
LOSSES = ("mse", "bce", "cross_entropy", "mae", "huber", "poisson")

# (output kernel stem, loss) -> the canonical pairs
CANONICAL = frozenset({("linear", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("exp", "poisson")})

# canonical pairs whose loss is computed from the pre-activation Z rather than from Yhat
FROM_LOGITS = {("sigmoid", "bce"): "bce_logits_forward", ("softmax", "cross_entropy"): "cross_entropy_logits_forward",
               ("exp", "poisson"): "poisson_logits_forward"}

# losses that read Yhat as probabilities, or as positive rates, need an output that gives them
REQUIRED_OUTPUTS = {"bce": (("sigmoid", "softmax"), "probabilities"),
                    "cross_entropy": (("softmax", "sigmoid"), "probabilities"),
                    "poisson": (("exp", "softplus"), "positive rates")}

CLASSIFICATION = frozenset({"bce", "cross_entropy"})


class Huber:
    """The Huber loss with threshold ``delta``, as ``torch.nn.HuberLoss(delta=delta)`` per element.

    ``L = Σ_k h(yhat_k - y_k)`` with ``h(r) = r²/2`` for ``|r| <= delta`` and
    ``delta (|r| - delta/2)`` beyond: quadratic like ``"mse"`` near the target, linear (robust to
    outliers) far from it. ``loss="huber"`` is ``Huber(1.0)``, PyTorch's default.

    Parameters
    ----------
    delta : float
        The positive threshold between the quadratic and the linear part.

    Examples
    --------
    >>> import numpy as np, pynn
    >>> net = pynn.Network([pynn.Dense(1, 1, "linear", init=([[1.0]], [[0.0]]))], dtype="float64")
    >>> net.loss(np.array([[3.0]]), np.array([[0.0]]), pynn.losses.Huber(delta=2.0))  # 2 (3 - 1)
    4.0
    """

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        from ._validate import check_float

        self.delta = check_float(delta, "delta", low=0.0, low_open=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Huber) and other.delta == self.delta

    def __hash__(self) -> int:
        return hash(("huber", self.delta))

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta!r})"


LossSpec = Union[str, Huber]


def loss_name(loss: LossSpec) -> str:
    """The LOSSES name of a checked loss (a name, or a Huber object)."""
    return loss if isinstance(loss, str) else loss.name


def loss_delta(loss: LossSpec) -> float:
    """Huber's delta (1.0 for ``"huber"`` given by name, and for every other loss, which ignores it)."""
    return loss.delta if isinstance(loss, Huber) else 1.0


def loss_params(loss: LossSpec) -> tuple:
    """Extra arguments of the loss kernels: ``(delta,)`` for huber, none for the others."""
    return (loss_delta(loss),) if loss_name(loss) == "huber" else ()


def check_loss(loss: object, output_stem: str) -> LossSpec:
    """Validate ``loss`` against the network's output activation; return the loss name (or the
    Huber object)."""
    if isinstance(loss, Huber):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)} or a pynn.losses.Huber(delta), got {loss!r}")
    allowed, what = REQUIRED_OUTPUTS.get(loss, (None, None))
    if allowed and output_stem not in allowed:
        raise ValueError(
            f"loss {loss!r} reads the outputs as {what} and needs a {' or '.join(map(repr, allowed))} "
            f"output layer; this network's output activation is {output_stem!r}"
        )
    return loss


def example_losses(k, loss: Any, output_stem: str, Z: np.ndarray, Yhat: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Each example's loss ``L_i`` (shape ``(d,)``, float64), for the weighted mean
    ``Σ s_i L_i / Σ s_i``: the backend's own loss kernel on each column (a batch of one), from
    the logits ``Z`` for the canonical bce/cross-entropy pairs as the unweighted loss is."""
    name, params = loss_name(loss), loss_params(loss)
    if (output_stem, name) in FROM_LOGITS:
        fn, A, params = getattr(k, FROM_LOGITS[output_stem, name]), Z, ()
    else:
        fn, A = getattr(k, f"{name}_forward"), Yhat
    return np.array([fn(A[:, j:j + 1], Y[:, j:j + 1], *params) for j in range(A.shape[1])], np.float64)
