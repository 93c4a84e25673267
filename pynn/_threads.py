"""One thread count for every pool pynn drives: the compiled core's OpenBLAS and Numba's."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from ._validate import check_int

_requested: int | None = None


def _apply_numba(n: int) -> None:
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled kernels' BLAS, in the Numba kernels, and for the parts a
    large training step of the compiled core is split into (README, "Two cores in one step").

    NumPy's own BLAS (used by the ``numpy`` reference backend) is left alone: it is NumPy's.

    Examples
    --------
    >>> import pynn
    >>> n = pynn.get_num_threads()
    >>> pynn.set_num_threads(1); pynn.get_num_threads()
    1
    >>> pynn.set_num_threads(n)
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
    thread count (the number of cores).

    Examples
    --------
    >>> import pynn
    >>> pynn.get_num_threads() >= 1
    True
    """
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


_controllers: dict[bool, object] = {}


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded, made once (finding them costs ~4 ms,
    more than a whole fit of a small network) and again once the compiled core has loaded its
    OpenBLAS. The two pynn calls are covered: NumPy's is loaded with NumPy, before pynn."""
    key = "pynn._core" in sys.modules
    ctl = _controllers.get(key)
    if ctl is None:
        from threadpoolctl import ThreadpoolController

        ctl = _controllers[key] = ThreadpoolController().select(user_api="blas")
    return ctl


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one thread in every BLAS of the process (the compiled core's OpenBLAS
    and NumPy's, through threadpoolctl) and in Numba's parallel loops (in this thread), then put
    the previous counts back (a BLAS loaded after pynn first used this, such as SciPy's own,
    which pynn does not call, may be left alone). OpenBLAS splits a product differently for different thread
    counts, so its float32 results change in the last bits with the count; on one thread every
    reduction runs in one fixed order. The BLAS limit is process-wide while the block runs."""
    numba = sys.modules.get("numba")
    before = numba.get_num_threads() if numba is not None else None
    with _blas_controller().limit(limits=1):
        if numba is not None:
            numba.set_num_threads(1)
        try:
            yield
        finally:
            if numba is not None:
                numba.set_num_threads(before)
