"""Loss names and how each meets the output activation.

With the three canonical pairs the output gradient is ``dJ/dZ(L) = (Yhat - Y) / d`` (the seed's
``Yhat - Y`` for one example), computed by the fused ``output_backward`` kernel; bce and
cross-entropy are then computed from the logits ``Z(L)``, so a saturated output never takes
``log(0)``. Other pairs use the general chain rule ``dZ = <act>_backward(<loss>_backward(...))``.
"""

from __future__ import annotations

import numpy as np

LOSSES = ("mse", "bce", "cross_entropy")

# (output kernel stem, loss) -> the canonical pairs
CANONICAL = frozenset({("linear", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy")})

# canonical pairs whose loss is computed from the logits Z rather than from Yhat
FROM_LOGITS = {("sigmoid", "bce"): "bce_logits_forward", ("softmax", "cross_entropy"): "cross_entropy_logits_forward"}

# losses that read Yhat as probabilities need an output that gives them
PROBABILITY_OUTPUTS = {"bce": ("sigmoid", "softmax"), "cross_entropy": ("softmax", "sigmoid")}

CLASSIFICATION = frozenset({"bce", "cross_entropy"})


def check_loss(loss: object, output_stem: str) -> str:
    """Validate ``loss`` against the network's output activation; return the loss name."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    allowed = PROBABILITY_OUTPUTS.get(loss)
    if allowed and output_stem not in allowed:
        raise ValueError(
            f"loss {loss!r} reads the outputs as probabilities and needs a {' or '.join(map(repr, allowed))} "
            f"output layer; this network's output activation is {output_stem!r}"
        )
    return loss


def example_losses(k, loss: str, output_stem: str, Z: np.ndarray, Yhat: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Each example's loss ``L_i`` (shape ``(d,)``, float64), for the weighted mean
    ``Σ s_i L_i / Σ s_i``: the backend's own loss kernel on each column (a batch of one), from
    the logits ``Z`` for the canonical bce/cross-entropy pairs as the unweighted loss is."""
    if (output_stem, loss) in FROM_LOGITS:
        fn, A = getattr(k, FROM_LOGITS[output_stem, loss]), Z
    else:
        fn, A = getattr(k, f"{loss}_forward"), Yhat
    return np.array([fn(A[:, j:j + 1], Y[:, j:j + 1]) for j in range(A.shape[1])], np.float64)
