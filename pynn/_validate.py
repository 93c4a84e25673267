"""The argument checks that API.md promises: clear ValueError/TypeError messages that name the
argument, what was expected and what was given. Kernels trust what passes through here."""

from __future__ import annotations

import numbers

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype: object) -> np.dtype:
    # np.dtype(None) is float64 and np.dtype("float64") == None is True: test None explicitly
    try:
        dt = np.dtype(dtype) if dtype is not None else None
    except (TypeError, ValueError):
        dt = None
    if dt is None or not any(dt == d for d in DTYPES):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def cast(arr: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """``arr`` as ``dtype`` (a copy only when the dtype differs), refusing values that are
    finite but overflow the target (1e40 into float32) instead of turning them into inf."""
    if arr.dtype == dtype:
        return arr
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dtype, order="K")
    if arr.dtype.kind == "f" and arr.size and not (np.isfinite(out.min()) and np.isfinite(out.max())):
        _check_finite(arr, name)  # NaN/inf in the input itself: say so
        raise ValueError(f"{name} has values beyond the range of {dtype.name} "
                         f"(largest magnitude {np.abs(arr).max():.3g})")
    return out


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_float(value: object, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """A real number in [low, high] (an end is excluded when *_open)."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    want = f"a number in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {want}, got {value!r}")
    v = float(value)
    bad = not np.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return v


def _numeric(a: object, name: str) -> np.ndarray:
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name} must be an array of numbers, got {type(a).__name__}: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {arr.dtype}")
    return arr


def _blas_ok(a: np.ndarray) -> bool:
    """One unit stride and positive strides: the compiled core reads it as it is (see view.hpp)."""
    r, c = a.shape
    s0, s1 = (s // a.itemsize for s in a.strides)
    if any(s % a.itemsize for s in a.strides) or not a.flags.aligned:
        return False
    row = (c <= 1 or s1 == 1) and (r <= 1 or s0 >= c)
    col = (r <= 1 or s0 == 1) and (c <= 1 or s1 >= r)
    return row or col


def _check_finite(arr: np.ndarray, name: str) -> None:
    # min and max propagate NaN and expose ±inf without allocating a mask the size of the data
    if arr.size and arr.dtype.kind == "f" and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
        raise ValueError(f"{name} contains NaN or infinity")


def as_batch(X: object, n_features: int, dtype: np.dtype, name: str = "X") -> np.ndarray:
    """X as a (n_features, n_examples) array of ``dtype``: no copy when it already is one
    (C- or F-ordered, e.g. ``data.T``); cast once otherwise."""
    arr = _numeric(X, name)
    if arr.ndim != 2:
        hint = f"; for one example use {name}[:, None]" if arr.ndim == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array of shape ({n_features}, n_examples), one column per example; "
            f"got shape {arr.shape}{hint}"
        )
    if arr.shape[0] != n_features:
        hint = (f"; for row-major data of shape (n_examples, {n_features}) pass {name}.T"
                if arr.shape[1] == n_features else "")
        raise ValueError(
            f"{name} must have {n_features} rows (features), one column per example, as the network's "
            f"first layer expects; got shape {arr.shape}{hint}"
        )
    if arr.dtype != dtype:
        arr = cast(arr, dtype, name)
    elif not _blas_ok(arr):  # e.g. negative or doubly-strided or misaligned views: one copy, in F order
        arr = np.array(arr, order="F")  # (np.asfortranarray would keep a misaligned F-ordered array)
    _check_finite(arr, name)
    return arr


def sum_tolerance(m: int, dtype: np.dtype) -> float:
    """How far from 1 the column sums of softmax cross-entropy targets may be: rounding."""
    return 64 * m * float(np.finfo(dtype).eps)


def as_targets(Y: object, loss: str, m: int, d: int, dtype: np.dtype, name: str = "Y", *,
               softmax: bool = False) -> np.ndarray:
    """Targets for ``loss``: an (m, d) array of ``dtype``, or for cross_entropy class indices (d,)
    as an int array. A (d,) Y is taken as (1, d) when the network has one output.

    With a softmax output (``softmax=True``) cross-entropy targets must be distributions, each
    column summing to 1: the fused output gradient ``(Yhat - Y) / d`` is the gradient of the
    loss only then (in general it is ``(Yhat Σ_k y_k - Y) / d``)."""
    arr = _numeric(Y, name)
    if loss == "cross_entropy" and arr.ndim == 1 and m > 1:
        if arr.shape[0] != d:
            raise ValueError(f"{name} as class indices must have shape ({d},), one per example; got {arr.shape}")
        if arr.dtype.kind == "f":
            _check_finite(arr, name)
            if d and not np.array_equal(arr, np.round(arr)):
                raise ValueError(f"{name} as class indices must hold whole numbers, got non-integral values")
        if d and (arr.min() < 0 or arr.max() >= m):
            raise ValueError(
                f"{name} holds class indices, which must lie in [0, {m - 1}] for {m} outputs; "
                f"got values from {arr.min()} to {arr.max()}"
            )
        return np.require(arr, np.intp, ["ALIGNED"])  # as the compiled core reads them: a copy only if not
    if arr.ndim == 1 and m == 1:
        arr = arr.reshape(1, -1)
    if arr.shape != (m, d):
        alt = " or class indices of shape (%d,)" % d if loss == "cross_entropy" else ""
        hint = f"; for row-major targets of shape ({d}, {m}) pass {name}.T" if arr.shape == (d, m) else ""
        raise ValueError(
            f"{name} must have shape ({m}, {d}) — {m} outputs for {d} examples{alt}; got shape {arr.shape}{hint}"
        )
    if arr.dtype != dtype:
        arr = cast(arr, dtype, name)
    elif not _blas_ok(arr):
        arr = np.array(arr, order="F")
    _check_finite(arr, name)
    if loss in ("bce", "cross_entropy") and arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} for loss {loss!r} must hold values in [0, 1]; got values from {arr.min()} to {arr.max()}")
    if softmax and loss == "cross_entropy" and arr.size:
        sums = arr.sum(axis=0, dtype=np.float64)
        if np.abs(sums - 1).max() > sum_tolerance(m, dtype):
            raise ValueError(f"{name} for loss 'cross_entropy' with a softmax output must have columns that sum to 1 "
                             f"(one-hot or probabilities; normalise with {name} / {name}.sum(axis=0)); got column "
                             f"sums from {sums.min():.9g} to {sums.max():.9g}")
    return arr
