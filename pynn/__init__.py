"""pynn: fast multilayer perceptrons.

Three backends compute the same math — the seed's layers, activations, losses and
backpropagation — and agree to float tolerance: ``"cpp"`` (C++ with OpenBLAS), ``"numba"``
(parallel Numba kernels) and ``"numpy"`` (the reference). Batches are ``(n_features,
n_examples)``: each column is one example; pass row-major data as ``X.T`` (no copy is made).

Examples
--------
>>> import numpy as np, pynn
>>> net = pynn.Network.from_sizes([2, 8, 1], hidden="tanh", output="sigmoid", seed=0)
>>> X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]])
>>> net.predict(X).shape
(1, 4)
"""

from __future__ import annotations

import logging as _logging
import os as _os
from importlib import metadata as _metadata

# Diagnostics go to the "pynn" logger; like any library, pynn leaves handlers to the application.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

try:
    __version__ = _metadata.version("pynn")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.1.0"


def _borrow_installed_core() -> None:
    """Running from a source checkout (``python -m pynn`` in the repository puts the checkout
    first on sys.path) whose compiled core was never built in place: let ``pynn._core`` come
    from the installed pynn, so the checkout behaves like the installed package."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    from importlib.machinery import EXTENSION_SUFFIXES

    if any(f"_core{sfx}" in _os.listdir(here) for sfx in EXTENSION_SUFFIXES):  # not _core.pyi, the stub
        return
    try:
        installed = _os.path.dirname(str(_metadata.distribution("pynn").locate_file("pynn/__init__.py")))
    except _metadata.PackageNotFoundError:
        return
    if _os.path.isdir(installed) and _os.path.abspath(installed) != here:
        __path__.append(installed)


_borrow_installed_core()

from ._threads import get_num_threads, set_num_threads
from .backends import available_backends
from .gradcheck import gradcheck
from .io import load
from .many import fit_many
from .network import Dense, Network
from .optimizers import LBFGS, SGD, Adam, Optimizer, RMSprop, Rprop
from .scaler import Scaler
from .training import Callback, Diverged, EarlyStopping, History
from . import health, losses, schedules

__all__ = [
    "Adam",
    "Callback",
    "Dense",
    "Diverged",
    "EarlyStopping",
    "History",
    "LBFGS",
    "Network",
    "Optimizer",
    "RMSprop",
    "Rprop",
    "SGD",
    "Scaler",
    "available_backends",
    "fit_many",
    "get_num_threads",
    "gradcheck",
    "health",
    "load",
    "losses",
    "schedules",
    "set_num_threads",
    "__version__",
]
