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

try:
    from importlib.metadata import version as _version

    __version__ = _version("pynn")
except Exception:  # running from a source tree that was never installed
    __version__ = "0.1.0"

from ._threads import get_num_threads, set_num_threads
from .backends import available_backends
from .gradcheck import gradcheck
from .io import load
from .network import Dense, Network
from .optimizers import SGD, Adam, Optimizer
from .training import Callback, History

__all__ = [
    "Adam",
    "Callback",
    "Dense",
    "History",
    "Network",
    "Optimizer",
    "SGD",
    "available_backends",
    "get_num_threads",
    "gradcheck",
    "load",
    "set_num_threads",
    "__version__",
]
