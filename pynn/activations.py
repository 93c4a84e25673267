"""Activation names users may give, mapped to kernel stems, and how each layer is initialised."""

from __future__ import annotations

# user name -> kernel stem (each backend has <stem>_forward and <stem>_backward)
ACTIVATIONS: dict[str, str] = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
    "gelu": "gelu",
    "softplus": "softplus",
    "exp": "exp",
    "linear": "linear",
    "identity": "linear",
    "softmax": "softmax",
}
OUTPUT_ONLY = frozenset({"softmax"})  # couples the units of a layer: only meaningful at the output

# Activations whose derivative cannot be written in terms of A = act(Z): their backward kernel
# reads Z instead, so the network keeps Z for those layers (gelu is not monotonic: A does not
# determine Z). Every other backward reads A, and a hidden layer's Z is overwritten by A.
BACKWARD_FROM_Z = frozenset({"gelu"})

# Piecewise-linear rectifiers, whose units can die (pynn.health counts them).
RELU_LIKE = frozenset({"relu", "leaky_relu"})
# Default initialisation by activation: He for the rectifier family (relu and its smooth or
# saturating variants, whose negative half is near zero, as He et al. assume), Glorot for the rest.
HE_DEFAULT = RELU_LIKE | {"elu", "gelu", "softplus"}


def activation_stem(name: object, *, argument: str = "activation") -> str:
    """The kernel stem of activation ``name``, or a ValueError listing the valid names."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"{argument} must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
