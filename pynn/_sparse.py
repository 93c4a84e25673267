"""Sparse input: a ``scipy.sparse`` CSR matrix of examples as rows, read batch by batch.

scikit-learn holds text and one-hot features as CSR ``(n_examples, n_features)``; its transpose
``X.T`` is a CSC ``(n_features, n_examples)`` — pynn's own convention, one column per example.
So a CSR is always taken as examples-as-rows and a CSC as features-as-rows (the ``X.T`` of a
CSR, made without a copy); other formats are refused rather than guessed at.

The data set is never densified: each batch (or chunk of ``predict``) is gathered from the CSR
rows and written densely into a reused ``(n_features, batch)`` buffer, which the first layer
then reads like any dense batch. Memory is O(n_features × batch), and every backend and the
fused compiled step run unchanged on the dense batch, so the results equal the dense ones.
scipy is imported only by the caller's own sparse matrix: pynn never imports it.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _validate as V

CHUNK_ELEMENTS = 1 << 21  # densified elements per chunk in predict/loss/evaluate (8 MB in float32)


def is_sparse(X: object) -> bool:
    sp = sys.modules.get("scipy.sparse")  # a scipy sparse matrix means scipy is already imported
    return sp is not None and sp.issparse(X)


class SparseRows:
    """A CSR matrix of examples as rows, seen as a ``(n_features, n_examples)`` batch."""

    def __init__(self, csr) -> None:
        self.csr = csr
        self.shape = (csr.shape[1], csr.shape[0])
        self.dtype = csr.dtype

    @classmethod
    def checked(cls, X, n_features: int, dtype: np.dtype, name: str = "X") -> "SparseRows":
        fmt = X.format
        if fmt == "csc":  # (features, examples): the X.T of a CSR, transposed back without a copy
            X = X.T
        elif fmt != "csr":
            raise TypeError(f"{name} as a scipy.sparse matrix must be CSR with one row per example "
                            f"(n_examples, {n_features}), or CSC of shape ({n_features}, n_examples) such as "
                            f"X_csr.T; got format {fmt!r} (convert with {name}.tocsr())")
        if X.ndim != 2 or X.shape[1] != n_features:
            shape = X.shape if fmt == "csr" else X.shape[::-1]
            want = f"(n_examples, {n_features})" if fmt == "csr" else f"({n_features}, n_examples)"
            raise ValueError(f"{name} as a sparse {fmt.upper()} matrix must have shape {want}, one "
                             f"{'row' if fmt == 'csr' else 'column'} per example; got shape {shape}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {X.dtype}")
        if X.dtype != dtype:  # the stored values only (O(nnz)), never a dense copy
            X = X.astype(dtype)
        V._check_finite(X.data, name)
        return cls(X)

    def dense(self, idx: np.ndarray | slice, out: np.ndarray) -> np.ndarray:
        """The examples ``idx`` as dense columns of ``out`` (an F-ordered (n_features, >= k)
        buffer): returns ``out[:, :k]``."""
        whole = isinstance(idx, slice) and idx == slice(None)  # (scipy's csr[:] would copy the matrix)
        rows = self.csr if whole else self.csr[idx]
        k = rows.shape[0]
        view = out[:, :k]
        view.fill(0)  # scipy's toarray(out=) adds into the buffer
        rows.toarray(out=view.T)
        return view

    def chunks(self, dtype: np.dtype):
        """``(start, stop, dense (n_features, stop - start))`` over all examples, in order."""
        n_features, n = self.shape
        size = max(1, min(n, CHUNK_ELEMENTS // max(n_features, 1)))
        buf = np.empty((n_features, size), dtype, order="F")
        for s in range(0, n, size):
            e = min(n, s + size)
            yield s, e, self.dense(slice(s, e), buf)
