"""Shared fixtures: backend × dtype × layout, the tolerance table, and a seeded RNG.

With CI=true a backend that fails to import fails the suite instead of being skipped, so a
broken build of the compiled core cannot hide behind the fallbacks.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pynn.backends import BACKENDS, get_backend

IN_CI = os.environ.get("CI", "").lower() == "true"

# Kernel-level tolerances, stated once per dtype; atol is scaled by the output's magnitude.
TOL = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13),
}
# Network-level checks (several layers, several steps) accumulate more rounding.
NET_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_close(got, ref, dtype=None, *, rtol=None, atol=None, scale=None):
    """Compare an array with the reference: shape and dtype first, then values."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    dtype = np.dtype(dtype or ref.dtype)
    if got.dtype.kind == "f":
        assert got.dtype == ref.dtype, f"dtype {got.dtype} != reference {ref.dtype}"
    tol = TOL[dtype]
    s = scale if scale is not None else max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(
        got, ref, rtol=tol["rtol"] if rtol is None else rtol,
        atol=(tol["atol"] if atol is None else atol) * s,
    )


def backend_module(name: str):
    """Import a backend; fail in CI, skip elsewhere, when it is not available."""
    try:
        return get_backend(name)
    except ImportError as e:
        if IN_CI:
            pytest.fail(f"backend {name!r} unavailable in CI: {e}")
        pytest.skip(f"backend {name!r} unavailable: {e}")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    backend_module(request.param)
    return request.param


@pytest.fixture
def kernels(backend):
    return get_backend(backend)


@pytest.fixture
def ref():
    return get_backend("numpy")


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=["C", "F"])
def layout(request) -> str:
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def make(rng, shape, dtype, layout="C", *, low=-1.0, high=1.0):
    """A random array of ``shape`` in the given memory order (F is what ``X.T`` gives)."""
    a = rng.uniform(low, high, size=shape).astype(dtype)
    return np.asfortranarray(a) if layout == "F" else np.ascontiguousarray(a)


def nans(shape, dtype, layout="F"):
    """An output buffer filled with NaN, so a kernel that skips an element fails."""
    return np.full(shape, np.nan, dtype=dtype, order=layout)


def require(module: str):
    """Import an optional dependency (an extra that the test extra installs); fail in CI, skip
    elsewhere, when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        if IN_CI:
            pytest.fail(f"{module} is missing in CI (pip install '.[test]' installs it): {e}")
        pytest.skip(f"{module} is not installed: {e}")
