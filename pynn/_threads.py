"""One thread count for every pool pynn drives: the compiled core's OpenBLAS and Numba's."""

from __future__ import annotations

import os
import sys

from ._validate import check_int

_requested: int | None = None


def _apply_numba(n: int) -> None:
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled kernels' BLAS and in the Numba kernels.

    NumPy's own BLAS (used by the ``numpy`` reference backend) is left alone: it is NumPy's.

    Examples
    --------
    >>> import pynn
    >>> pynn.set_num_threads(1); pynn.get_num_threads()
    1
    """
    global _requested
    n = check_int(n, "n")
    try:
        from . import _core
    except ImportError:
        pass
    else:
        # the core takes a C int; OpenBLAS caps the count at its own maximum anyway
        _core.set_num_threads(min(n, 2**31 - 1))
    _apply_numba(n)
    _requested = n


def get_num_threads() -> int:
    """The thread count set by :func:`set_num_threads`, or by default the compiled core's BLAS
    thread count (the number of cores)."""
    if _requested is not None:
        return _requested
    try:
        from . import _core
    except ImportError:
        return os.cpu_count() or 1
    return _core.get_num_threads()


def on_numba_import() -> None:
    """Called by the Numba backend when it loads, so an earlier set_num_threads applies."""
    if _requested is not None:
        _apply_numba(_requested)
