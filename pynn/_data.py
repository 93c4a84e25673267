"""Reading tabular data for the command line: CSV files with a header row, and NPZ archives.

Data is returned row-major, ``(n_examples, n_features)``, as it is stored; the CLI passes
``X.T`` to the network (a view). Every problem raises :class:`DataError` with a one-line
message naming the file, the column or array, and the line, so ``pynn`` can print it and exit 1.
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_CLASSES = 20  # a whole-number target with at most this many distinct values is taken as labels


class DataError(ValueError):
    """Data that cannot be used as asked: a missing file, column or array, or a bad value."""


@dataclass
class Data:
    """Features ``X`` (n_examples, n_features) float64 with their names; the raw target column
    ``y`` (strings for CSV, the stored array for NPZ; ``None`` when absent) and its name."""

    path: str
    X: np.ndarray
    features: list[str]
    y: np.ndarray | None
    target: str | None


def is_npz(path: str) -> bool:
    if path.lower().endswith(".npz"):
        return True
    if path.lower().endswith(".csv"):
        return False
    return zipfile.is_zipfile(path)


def read(path: str, *, target: str | None = None, features: list[str] | None = None, need_target: bool = False,
         x_key: str = "X", y_key: str = "y") -> Data:
    """Read ``path`` (CSV with a header row, or NPZ with arrays ``x_key`` and ``y_key``).

    ``target`` names the CSV target column (for NPZ it is ``y_key``); ``features``, when given,
    are the columns to use, in that order (the ones a model was trained on); otherwise every
    column but the target. ``need_target`` makes a missing target an error.
    """
    if not os.path.exists(path):
        raise DataError(f"data file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataError(f"data file {path!r} is a directory")
    if is_npz(path):
        return _read_npz(path, features, need_target, x_key, y_key)
    return _read_csv(path, target, features, need_target)


# ---------------------------------------------------------------- CSV
def _read_csv(path: str, target: str | None, features: list[str] | None, need_target: bool) -> Data:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path!r} is empty: expected a header row of column names")
            header = [h.strip() for h in header]
            rows, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise DataError(f"{path!r} line {reader.line_num} has {len(row)} fields, the header has "
                                    f"{len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise DataError(f"{path!r} is not a UTF-8 text (CSV) file: {e.reason} at byte {e.start}") from None
    except csv.Error as e:
        raise DataError(f"{path!r} is not a readable CSV file: {e}") from None
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"{path!r} has repeated column names: {', '.join(map(repr, dup))}")
    if not rows:
        raise DataError(f"{path!r} has a header but no data rows")
    cells = np.array(rows, dtype=str)
    col = {name: i for i, name in enumerate(header)}

    if target is not None and target not in col:
        if need_target or features is None:
            raise DataError(f"{path!r} has no column {target!r} (the target); its columns are: "
                            f"{', '.join(header)}")
        target = None
    if features is None:
        features = [h for h in header if h != target]
        if not features:
            raise DataError(f"{path!r} has no feature columns besides the target {target!r}")
    else:
        missing = [name for name in features if name not in col]
        if missing:
            raise DataError(f"{path!r} lacks column(s) {', '.join(map(repr, missing))} that the model was trained "
                            f"on; its columns are: {', '.join(header)}")
    X = np.empty((len(rows), len(features)))
    for j, name in enumerate(features):
        X[:, j] = _numeric(cells[:, col[name]], f"column {name!r}", path, lines)
    y = cells[:, col[target]] if target is not None else None
    return Data(path, X, list(features), y, target)


def _numeric(values: np.ndarray, what: str, path: str, lines: list[int]) -> np.ndarray:
    try:
        out = values.astype(np.float64)
    except ValueError:
        out = None
    if out is None or not np.isfinite(out).all():
        for i, v in enumerate(values):
            try:
                ok = np.isfinite(float(v))
            except ValueError:
                ok = False
            if not ok:
                shown = repr(str(v)) if v.strip() else "an empty cell"
                raise DataError(f"{what} of {path!r} must hold finite numbers; line {lines[i]} has {shown}")
    assert out is not None  # every value parsed, one by one
    return out


# ---------------------------------------------------------------- NPZ
def _read_npz(path: str, features: list[str] | None, need_target: bool, x_key: str, y_key: str) -> Data:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if x_key not in names:
                raise DataError(f"{path!r} has no array {x_key!r} (features); it has: {', '.join(names) or 'none'}"
                                f" (choose one with --x-key)")
            X = z[x_key]
            y = z[y_key] if y_key in names else None
            stored_names = z["feature_names"] if "feature_names" in names else None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path!r} is not a readable NPZ file: {e}") from None
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise DataError(f"array {x_key!r} of {path!r} must be a 2-D numeric array (n_examples, n_features), got "
                        f"{X.dtype} of shape {X.shape}")
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        row = int(np.argwhere(~np.isfinite(X))[0, 0])
        raise DataError(f"array {x_key!r} of {path!r} must hold finite numbers; row {row} does not")
    if features is not None:
        if X.shape[1] != len(features):
            raise DataError(f"array {x_key!r} of {path!r} has {X.shape[1]} columns (features); the model expects "
                            f"{len(features)}")
    elif stored_names is not None and stored_names.shape == (X.shape[1],) and stored_names.dtype.kind == "U":
        features = [str(s) for s in stored_names]
    else:
        features = [f"x{i}" for i in range(X.shape[1])]
    if y is None:
        if need_target:
            raise DataError(f"{path!r} has no array {y_key!r} (the target); it has: {', '.join(names)}"
                            f" (choose one with --y-key)")
    else:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise DataError(f"array {y_key!r} of {path!r} must have one row per example, shape ({X.shape[0]},) or "
                            f"({X.shape[0]}, k); got {y.shape}")
        if y.dtype.kind not in "biufU":
            raise DataError(f"array {y_key!r} of {path!r} must hold numbers or strings, got {y.dtype}")
    return Data(path, X, features, y, y_key if y is not None else None)


# ---------------------------------------------------------------- targets
def as_numbers(y: np.ndarray) -> np.ndarray | None:
    """``y`` as float64 if every value is a finite number (strings are parsed), else None."""
    if y.dtype.kind in "biuf":
        out = y.astype(np.float64)
    else:
        try:
            out = np.char.strip(y).astype(np.float64)
        except ValueError:
            return None
    return out if np.isfinite(out).all() else None


def infer_task(y: np.ndarray) -> str:
    """``"classification"`` when the target is labels — text, booleans, or whole numbers with at
    most ``MAX_CLASSES`` distinct values — and ``"regression"`` otherwise (including any 2-D
    target)."""
    if y.ndim == 2:
        return "regression"
    if y.dtype.kind == "b":
        return "classification"
    nums = as_numbers(y)
    if nums is None:
        return "classification"
    if np.array_equal(nums, np.round(nums)) and np.unique(nums).size <= MAX_CLASSES:
        return "classification"
    return "regression"


def _label(v: Any) -> Any:
    """A class label as a JSON value: whole numbers as int, other numbers as float, text as str."""
    if isinstance(v, (str, np.str_)):
        return str(v)
    f = float(v)
    return int(f) if f == int(f) else f


def class_labels(y: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """(sorted distinct labels as JSON values, the class index of each example)."""
    nums = as_numbers(y) if y.dtype.kind != "b" else y.astype(np.float64)
    values = nums if nums is not None else np.char.strip(y.astype(str))
    classes, idx = np.unique(values, return_inverse=True)
    return [_label(c) for c in classes], idx.astype(np.intp)


def class_indices(y: np.ndarray, classes: list[Any], what: str) -> np.ndarray:
    """The index in ``classes`` of each label in ``y``; a DataError for a label not among them."""
    numeric = all(not isinstance(c, str) for c in classes)
    if numeric:
        nums = as_numbers(y) if y.dtype.kind != "b" else y.astype(np.float64)
        if nums is None:
            raise DataError(f"{what} must hold the numeric class labels the model was trained on "
                            f"({', '.join(map(str, classes))}); it holds text")
        values, keys = nums, np.array(classes, dtype=np.float64)
    else:
        values, keys = np.char.strip(y.astype(str)), np.array([str(c) for c in classes])
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys, values, sorter=order), 0, len(keys) - 1)
    idx = order[pos]
    unknown = keys[idx] != values
    if unknown.any():
        bad = sorted({_label(v) for v in values[unknown]}, key=str)[:5]
        raise DataError(f"{what} holds labels the model was not trained on: {', '.join(map(repr, bad))}; "
                        f"it knows {', '.join(map(repr, classes))}")
    return idx.astype(np.intp)
