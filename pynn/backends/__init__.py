"""Backend registry: one module per backend, each exporting the same kernels.

The kernel contract, shared by every backend (shapes use the seed's letters; a batch is
``(features, examples)``, so ``d`` below is the number of examples):

* Inputs come first and outputs last. Outputs are preallocated by the caller and
  **overwritten**, never accumulated into. Kernels return ``None``, except ``<loss>_forward``
  which returns the scalar ``J`` as a Python float.
* 2-D arrays may be C- or F-ordered (any array with one unit stride); they are never copied.
* In-place use is allowed only where a kernel says so (``A is Z`` in activation forwards,
  ``dZ is dA`` in activation backwards); outputs of a matrix product must not alias its inputs.
* The kernels trust their callers for shapes and values: checks that users see live in
  ``pynn._validate``. The compiled backend still makes O(1) checks so it can never crash.

========================================================  ===============================================
kernel                                                    math
========================================================  ===============================================
``dense_forward(W, A_prev, b, Z)``                        ``Z = W A_prev + b``
``dense_backward(dZ, A_prev, W, dW, db, dA_prev)``        ``dW = dZ A_prevᵀ; db = dZ·1; dA_prev = Wᵀ dZ``
``<act>_forward(Z, A)``                                   ``A = act(Z)``
``<act>_backward(dA, A, dZ)``                             ``dZ = dA ⊙ act'(Z)``, computed from ``A``
``gelu_backward(dA, Z, dZ)``                              the one exception: from ``Z`` (see below)
``<loss>_forward(Yhat, Y) -> J``                          ``J = (1/d) Σ_i L(yhat_i, y_i)``
``<loss>_backward(Yhat, Y, dYhat)``                       ``dYhat = ∂J/∂Yhat``
``huber_{forward,backward}(..., delta=1.0)``             the Huber loss takes its ``delta`` last
``bce_logits_forward(Z, Y) -> J``                         bce of ``sigmoid(Z)``, computed from ``Z``
``cross_entropy_logits_forward(Z, Y) -> J``               cross-entropy of ``softmax(Z)``, from ``Z``
``poisson_logits_forward(Z, Y) -> J``                     poisson of ``exp(Z)``, from the log-rate ``Z``
``output_backward(Yhat, Y, dZ)``                          ``dZ = (Yhat - Y) / d`` (canonical pairs)
``layer_forward(W, A_prev, b, act, Z, A)``                ``dense_forward`` then ``<act>_forward``
``layer_backward(dA, A, act, W, A_prev, dZ, dW, db, dA_prev)``  ``<act>_backward`` then ``dense_backward``
``dropout_mask(seed, step, layer, p, M)``                 ``M = 0`` w.p. ``p`` else ``1/(1-p)``, hashed per element
``sgd_update(p, g, v, lr, momentum, nesterov)``           SGD with momentum, as ``torch.optim.SGD``
``adam_update(p, g, m, v, t, lr, beta1, beta2, eps, wd)`` Adam / AdamW, as ``torch.optim.AdamW``
``rmsprop_update(p, g, s, gbar, buf, lr, alpha, ...)``    RMSprop, as ``torch.optim.RMSprop``
``rprop_update(p, g, prev, step, eta_minus, ...)``         iRprop−, as ``torch.optim.Rprop``
========================================================  ===============================================

``dA_prev`` may be ``None`` (the first layer needs no input gradient). In the fused
``layer_*`` kernels ``Z`` may be ``A`` and ``dZ`` may be ``dA``.

Backward kernels read ``A`` (sklearn's trick: a hidden layer's ``Z`` need not be kept), except
for the activations of ``pynn.activations.BACKWARD_FROM_Z`` (gelu, whose ``A`` does not
determine ``Z``): ``gelu_backward`` and ``layer_backward(..., act="gelu")`` take ``Z`` in the
place of ``A``, and the network keeps ``Z`` for those layers.
"""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType

log = logging.getLogger("pynn")

ACTIVATION_KERNELS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "exp", "linear", "softmax")
LOSS_KERNELS = ("mse", "bce", "cross_entropy", "mae", "huber", "poisson")

KERNELS: tuple[str, ...] = (
    "dense_forward",
    "dense_backward",
    *(f"{a}_{d}" for a in ACTIVATION_KERNELS for d in ("forward", "backward")),
    *(f"{l}_{d}" for l in LOSS_KERNELS for d in ("forward", "backward")),
    "bce_logits_forward",
    "cross_entropy_logits_forward",
    "poisson_logits_forward",
    "output_backward",
    "layer_forward",
    "layer_backward",
    "dropout_mask",
    "sgd_update",
    "adam_update",
    "rmsprop_update",
    "rprop_update",
)

# Fastest first: "auto" takes the first that imports.
_MODULES = {
    "cpp": "pynn.backends.cpp",
    "numba": "pynn.backends.numba_kernels",
    "numpy": "pynn.backends.reference",
}
BACKENDS: tuple[str, ...] = tuple(_MODULES)


@functools.cache
def get_backend(name: str) -> ModuleType:
    """Return the kernel module of backend ``name`` ("cpp", "numba", "numpy" or "auto").

    Raises ``ValueError`` for an unknown name and ``ImportError`` when the backend is not
    available here (the compiled core not built, or Numba not installed).
    """
    if name == "auto":
        return get_backend(_first_available())
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {[*_MODULES, 'auto']}, got {name!r}")
    mod = importlib.import_module(_MODULES[name])
    missing = [k for k in KERNELS if not hasattr(mod, k)]
    if missing:  # a backend that lacks a kernel is a build error, not a user error
        raise ImportError(f"backend {name!r} lacks kernels {missing}")
    return mod


@functools.cache
def _importable(name: str) -> bool:
    try:
        get_backend(name)
    except ImportError as e:
        log.debug("backend %r is not available: %s", name, e)
        return False
    return True


def _first_available() -> str:
    # stops at the first that imports: "auto" with the compiled core never imports numba
    return next(name for name in _MODULES if _importable(name))


def available_backends() -> list[str]:
    """Names of the backends that work here, fastest first, e.g. ``["cpp", "numba", "numpy"]``.

    A backend is missing when it cannot be imported (the compiled core not built, Numba not
    installed); the reason is logged at DEBUG level on the ``pynn`` logger.

    Examples
    --------
    >>> import pynn
    >>> "numpy" in pynn.available_backends()  # the reference is always there
    True
    """
    return [name for name in _MODULES if _importable(name)]


def resolve(name: str) -> str:
    """The concrete backend name that ``name`` (possibly "auto") stands for."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, one of {[*_MODULES, 'auto']}; got {type(name).__name__}")
    if name == "auto":
        return _first_available()
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {[*_MODULES, 'auto']}, got {name!r}")
    if not _importable(name):
        try:
            get_backend(name)
        except ImportError as e:
            raise ValueError(
                f"backend {name!r} is not available here ({e}); available: {available_backends()}"
            ) from e
    return name
