"""The input scaler of ``Network.fit(..., standardize=True)``: per-feature standardisation.

``transform(X) = (X - mean) / scale`` on ``(n_features, n_examples)`` batches, computed in
float64 as ``(x - mean) * (1 / scale)`` and rounded once to the batch's dtype: the same
arithmetic in every backend (the compiled core and the Numba model apply it while they gather
each batch, so the standardised data set is never stored). ``mean`` and ``scale`` are those of
scikit-learn's ``StandardScaler`` (population standard deviation; a constant feature gets
scale 1), measured in float64 chunk by chunk, so fitting never copies the data whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validate as V

_CHUNK_ELEMENTS = 1 << 19  # float64 elements per chunk while fitting (4 MB)


def _constant(var: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Features whose variance is rounding only: scikit-learn's ``_is_constant_feature``."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * mean * eps) ** 2


class Scaler:
    """Per-feature standardisation ``(x - mean) / scale`` of ``(n_features, n_examples)`` inputs.

    A network trained with ``fit(..., standardize=True)`` keeps its scaler in ``net.scaler`` and
    applies it to every input it is given (see :meth:`pynn.Network.fit`); a Scaler can also be
    made by hand and assigned to ``net.scaler``.

    Parameters
    ----------
    mean, scale : array-like of shape (n_features,)
        Finite values; ``scale`` must be positive. Stored as read-only float64 arrays.

    Attributes
    ----------
    mean, scale : numpy.ndarray
        Shape ``(n_features,)``, float64.
    n_features : int

    Examples
    --------
    >>> import numpy as np, pynn
    >>> s = pynn.Scaler([1.0, 10.0], [2.0, 5.0])
    >>> s.transform(np.array([[1.0, 3.0], [10.0, 0.0]]))
    array([[ 0.,  1.],
           [ 0., -2.]])
    """

    def __init__(self, mean: Any, scale: Any) -> None:
        m = _vector(mean, "mean")
        s = _vector(scale, "scale")
        if s.shape != m.shape:
            raise ValueError(f"scale must have the shape of mean, {m.shape}, got {s.shape}")
        if not (s > 0).all():
            raise ValueError(f"scale must be positive, got {s[~(s > 0)][0]!r} at feature {int(np.argmin(s > 0))}")
        self.mean, self.scale = m, s
        self._inv = 1.0 / s  # what the kernels multiply by
        for a in (self.mean, self.scale, self._inv):
            a.flags.writeable = False

    @property
    def n_features(self) -> int:
        """The number of features, ``mean.size``.

        Examples
        --------
        >>> import pynn
        >>> pynn.Scaler([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]).n_features
        3
        """
        return self.mean.size

    @classmethod
    def fit(cls, X: Any, *, with_mean: bool = True, columns: Any = None) -> "Scaler":
        """The scaler of the examples (columns) of ``X``, shape ``(n_features, n_examples)``.

        ``mean`` and ``scale`` (the population standard deviation) equal scikit-learn's
        ``StandardScaler().fit(X.T)``: a constant feature gets scale 1. They are computed in
        float64, a chunk of columns at a time (Chan et al.'s pairwise update), so ``X`` is never
        copied whole. ``with_mean=False`` keeps the scale but sets the mean to 0 (what ``fit``
        does with a sparse ``X``, whose zeros centering would fill in). A ``scipy.sparse`` CSR
        (examples as rows) or CSC ``(n_features, n_examples)`` is read chunk by chunk.
        ``columns`` (integer indices) measures only those examples, a chunk of them at a time
        (``fit(validation_fraction=...)`` measures its training part so).

        Examples
        --------
        >>> import numpy as np, pynn
        >>> s = pynn.Scaler.fit(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
        >>> s.mean, s.scale.round(4)
        (array([2., 5.]), array([0.8165, 1.    ]))
        """
        from ._sparse import SparseRows, is_sparse

        if not isinstance(with_mean, (bool, np.bool_)):
            raise TypeError(f"with_mean must be a bool, got {with_mean!r}")
        if columns is not None:
            columns = np.asarray(columns)
            if columns.ndim != 1 or columns.dtype.kind not in "iu":
                raise TypeError(f"columns must be a 1-D array of example indices, got {columns.dtype} "
                                f"shape {columns.shape}")
            if isinstance(X, SparseRows) or is_sparse(X):  # a sparse subset is a (sparse) copy of its rows
                if is_sparse(X):
                    X = SparseRows.checked(X, X.shape[1] if X.format == "csr" else X.shape[0], np.dtype(np.float64))
                return cls.fit(SparseRows(X.csr[columns]), with_mean=with_mean)
        if isinstance(X, SparseRows):
            chunks = (Xc for _, _, Xc in X.chunks(np.dtype(np.float64)))
            n_features, n = X.shape
        elif is_sparse(X):
            X = SparseRows.checked(X, X.shape[1] if X.format == "csr" else X.shape[0], np.dtype(np.float64))
            return cls.fit(X, with_mean=with_mean)
        else:
            if not isinstance(X, np.ndarray):
                X = V._numeric(X, "X")
            if X.ndim != 2:
                raise ValueError(f"X must be a 2-D array (n_features, n_examples), got shape {X.shape}")
            if X.dtype.kind not in "biuf":
                raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
            n_features, n = X.shape
            step = max(1, _CHUNK_ELEMENTS // max(n_features, 1))
            if columns is None:
                chunks = (X[:, s:s + step] for s in range(0, n, step))
            else:
                if columns.size and (columns.min() < -n or columns.max() >= n):
                    raise ValueError(f"columns must index the {n} examples of X")
                n = columns.size
                chunks = (X[:, columns[s:s + step]] for s in range(0, n, step))
        if n == 0:
            raise ValueError(f"X must hold at least one example (column) to fit a scaler, got shape {X.shape}")
        mean, m2, seen = np.zeros(n_features), np.zeros(n_features), 0
        buf = dev_buf = None  # float64 chunk and deviations, reused
        for Xc in chunks:
            if Xc.dtype != np.float64:  # one float64 chunk, reused
                if buf is None or buf.shape[1] < Xc.shape[1]:
                    buf = np.empty(Xc.shape, np.float64, order="F")
                Xc = _into(buf, Xc)
            if not np.isfinite(Xc).all():
                raise ValueError("X must hold only finite values to fit a scaler")
            k = Xc.shape[1]
            cmean = Xc.mean(axis=1)
            if dev_buf is None:  # the first chunk is the widest
                dev_buf = np.empty(Xc.shape, np.float64, order="F")
            dev = np.subtract(Xc, cmean[:, None], out=dev_buf[:, :k])
            cm2 = np.square(dev, out=dev).sum(axis=1)
            total = seen + k
            delta = cmean - mean
            mean += delta * (k / total)
            m2 += cm2 + delta ** 2 * (seen * k / total)
            seen = total
        var = m2 / seen
        scale = np.sqrt(var)
        scale[_constant(var, mean, seen)] = 1.0
        return cls(mean if with_mean else np.zeros(n_features), scale)

    def transform(self, X: Any) -> np.ndarray:
        """``(X - mean) / scale`` for ``X`` of shape ``(n_features, n_examples)``, as a new array
        (float64, or X's own float dtype); the arithmetic is float64.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> pynn.Scaler([2.0], [0.5]).transform(np.array([[2.0, 3.0]], np.float32))
        array([[0., 2.]], dtype=float32)
        """
        X = V._numeric(X, "X")
        if X.ndim != 2 or X.shape[0] != self.n_features:
            raise ValueError(f"X must have shape ({self.n_features}, n_examples), got {X.shape}")
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        out = np.empty(X.shape, dtype, order="F")
        self._apply(X, out)
        return out

    def _apply(self, X: np.ndarray, out: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
        """out = (X - mean) * inv_scale in float64, rounded once to out's dtype; out may be X.
        ``tmp``: a float64 scratch of X's shape when out is not float64 (else one is made)."""
        if out.dtype == np.float64:
            np.subtract(X, self.mean[:, None], out=out)
            out *= self._inv[:, None]
            return out
        if tmp is None:
            tmp = np.empty(X.shape, np.float64, order="F")
        tmp[...] = X  # exact; a casting ufunc call would allocate NumPy's iteration buffers each time
        tmp -= self.mean[:, None]
        tmp *= self._inv[:, None]
        out[...] = tmp
        return out

    def _state(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scaler) and np.array_equal(self.mean, other.mean) \
            and np.array_equal(self.scale, other.scale)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Scaler(n_features={self.n_features})"


def _into(buf: np.ndarray, Xc: np.ndarray) -> np.ndarray:
    view = buf[:, : Xc.shape[1]]
    view[...] = Xc
    return view


def _vector(value: Any, name: str) -> np.ndarray:
    arr = V._numeric(value, name)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (one value per feature), got shape {arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    V._check_finite(arr, name)
    return arr
