"""The argument checks that API.md promises: clear ValueError/TypeError messages that name the
argument, what was expected and what was given. Kernels trust what passes through here."""

from __future__ import annotations

import math
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


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of the strings ``choices``: TypeError for a non-str, ValueError else."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(choices)}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_float(value: object, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """A real number in [low, high] (an end is excluded when *_open)."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    want = f"a number in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {want}, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int (or Fraction) beyond float's range: out of any finite bounds
        v = math.inf
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
    if loss == "poisson" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} for loss 'poisson' must hold counts (values >= 0); got a minimum of {arr.min()}")
    if softmax and loss == "cross_entropy" and arr.size:
        sums = arr.sum(axis=0, dtype=np.float64)
        if np.abs(sums - 1).max() > sum_tolerance(m, dtype):
            raise ValueError(f"{name} for loss 'cross_entropy' with a softmax output must have columns that sum to 1 "
                             f"(one-hot or probabilities; normalise with {name} / {name}.sum(axis=0)); got column "
                             f"sums from {sums.min():.9g} to {sums.max():.9g}")
    return arr


def sample_weights(s: object, d: int, name: str = "sample_weight") -> np.ndarray:
    """Per-example weights as float64 of shape (d,): finite, non-negative, not all zero."""
    arr = _numeric(s, name)
    if arr.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), one weight per example; got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, np.float64)
    if arr.strides != (8,) and arr.size:  # NumPy calls one element contiguous whatever its stride; the core reads 8
        arr = arr.copy()
    _check_finite(arr, name)
    if d and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got a minimum of {arr.min()}")
    if not arr.any():
        raise ValueError(f"{name} must not be all zero (the weighted mean Σ s_i L_i / Σ s_i would be 0/0)")
    return arr


def class_labels(Y: np.ndarray, loss: str) -> np.ndarray | None:
    """Each example's class for class weights and stratified splits: the index for cross_entropy
    (indices or one-hot), the 0/1 target of a single bce output; None for anything else
    (regression, several bce outputs)."""
    if loss == "cross_entropy":
        return Y if Y.ndim == 1 else Y.argmax(axis=0)
    if loss == "bce" and Y.shape[0] == 1:
        return (Y[0] > 0.5).astype(np.intp)
    return None


def class_weights(class_weight: object, labels: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Per-example weights from ``class_weight`` (a dict class -> weight, or "balanced":
    n / (k * bincount) over the k classes present, as sklearn's compute_class_weight)."""
    if labels is None:
        raise ValueError("class_weight needs a classification loss: 'cross_entropy', or 'bce' with one output")
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict {{class: weight}} or 'balanced', got {class_weight!r}")
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        present = counts > 0
        per_class = np.zeros(n_classes)
        per_class[present] = labels.size / (present.sum() * counts[present])
    elif isinstance(class_weight, dict):
        per_class = np.ones(n_classes)  # classes not named keep weight 1, as in Keras and sklearn
        for c, w in class_weight.items():
            if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral) or not 0 <= c < n_classes:
                raise ValueError(f"class_weight keys must be class indices in [0, {n_classes - 1}], got {c!r}")
            per_class[int(c)] = check_float(w, f"class_weight[{c}]", low=0.0)
    else:
        raise TypeError(f"class_weight must be a dict {{class: weight}} or 'balanced', got {type(class_weight).__name__}")
    return per_class[labels]


def split_indices(n: int, fraction: float, labels: np.ndarray | None, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) example indices, ``ceil(fraction * n)`` held out, as sklearn's
    train_test_split(test_size=fraction): with labels, each class keeps its share (the floor of
    its proportion, the remainder to the classes with the largest fractional parts)."""
    n_val = math.ceil(fraction * n)
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"validation_fraction={fraction} of {n} examples leaves an empty training or validation "
                         f"set ({n - n_val} / {n_val})")
    if labels is None:
        perm = rng.permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    classes, y = np.unique(labels, return_inverse=True)
    counts = np.bincount(y)
    share = n_val * counts / n
    take = np.floor(share).astype(np.intp)
    rest = n_val - take.sum()
    if rest:
        frac = share - take
        order = np.lexsort((rng.random(frac.size), -frac))  # largest fraction first, ties at random
        take[order[:rest]] += 1
    val = []
    for k in range(classes.size):
        members = np.flatnonzero(y == k)
        val.append(rng.permutation(members)[:take[k]])
    val = np.sort(np.concatenate(val))
    mask = np.ones(n, bool)
    mask[val] = False
    return np.flatnonzero(mask), val
