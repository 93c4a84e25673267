"""Built-in data sets, generated (nothing is downloaded)."""

from __future__ import annotations

import numpy as np


def spirals(n: int = 3000, classes: int = 3, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms in the plane: ``X`` of shape ``(n, 2)`` (row-major, as
    data is usually held) and integer labels ``y`` of shape ``(n,)``. Not linearly separable.

    Examples
    --------
    >>> X, y = spirals(300)
    >>> X.shape, y.shape, sorted(set(y.tolist()))
    ((300, 2), (300,), [0, 1, 2])
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = rng.uniform(0.05, 1.0, n)
    theta = 4.0 * r + 2 * np.pi * y / classes + rng.normal(0, noise, n)
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y
