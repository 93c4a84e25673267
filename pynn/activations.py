"""Activation names users may give, mapped to kernel stems, and how each layer is initialised."""

from __future__ import annotations

# user name -> kernel stem (each backend has <stem>_forward and <stem>_backward)
ACTIVATIONS: dict[str, str] = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "linear": "linear",
    "identity": "linear",
    "softmax": "softmax",
}
OUTPUT_ONLY = frozenset({"softmax"})  # couples the units of a layer: only meaningful at the output

# Default initialisation by activation: He for relu-like layers, Glorot for the rest.
RELU_LIKE = frozenset({"relu", "leaky_relu"})


def activation_stem(name: object, *, argument: str = "activation") -> str:
    """The kernel stem of activation ``name``, or a ValueError listing the valid names."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"{argument} must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
