"""``pynn explain``: the seed's worked example, step by step, computed by a backend's kernels.

The seed (a 2-2-1 network, sigmoid hidden and output layers, one example, binary
cross-entropy) rounds every figure to three digits; this prints each quantity at full
precision next to the seed's figure. Every number comes from the chosen backend's kernels
(``dense_forward``, ``sigmoid_forward``, ``bce_forward``, ``output_backward``,
``dense_backward``, ``sigmoid_backward``, ``sgd_update``), called in the seed's order.

Each quantity is printed on a line of its own as ``NAME = [r0c0, r0c1; r1c0, r1c1]`` (rows
separated by ``;``), or ``NAME = value`` for a scalar, so the output can be read back.
"""

from __future__ import annotations

from typing import TextIO

import numpy as np

# The seed's example (seed/000_71f023af7319b603.txt, "Backpropagation Example Step-by-Step").
X = [[0.5], [0.2]]
Y = [[1.0]]
W1 = [[0.1, 0.4], [0.8, 0.6]]
b1 = [[0.3], [0.9]]
W2 = [[0.3, 0.7]]
b2 = [[0.5]]
LR = 0.5  # the seed leaves the learning rate open; README's example uses 0.5 too

# The seed's own (rounded) figures, shown beside the computed ones.
SEED = {
    "Z1": "0.43; 1.42", "A1": "0.606; 0.805", "Z2": "1.244", "Yhat": "0.776", "J": "0.253",
    "dJ/dZ2": "-0.224", "dJ/dW2": "-0.136, -0.180", "dJ/db2": "-0.224", "dJ/dA1": "-0.0672; -0.1568",
    "sigma'(Z1)": "0.239; 0.157", "dJ/dZ1": "-0.0161; -0.0246",
    "dJ/dW1": "-0.0080, -0.0032; -0.0123, -0.0049", "dJ/db1": "-0.0161; -0.0246",
}


def _fmt(a: np.ndarray, digits: int) -> str:
    a = np.asarray(a)
    if a.size == 1:
        return f"{float(a.reshape(-1)[0]):.{digits}g}"
    rows = a.reshape(a.shape[0], -1)
    return "[" + "; ".join(", ".join(f"{float(v):.{digits}g}" for v in row) for row in rows) + "]"


def explain(backend: str = "auto", dtype: str = "float64", lr: float = LR, out: TextIO | None = None) -> None:
    """Print the seed's example, every quantity computed by ``backend``'s kernels, to ``out``."""
    import sys

    from .backends import get_backend, resolve
    from ._validate import check_dtype

    out = out or sys.stdout
    name = resolve(backend)
    k = get_backend(name)
    dt = check_dtype(dtype)
    digits = 12 if dt == np.float64 else 7

    def arr(v):
        return np.array(v, dtype=dt)

    x, y, w1, c1, w2, c2 = map(arr, (X, Y, W1, b1, W2, b2))
    h, n, m, d = 2, 2, 1, 1
    z1, a1, z2, yhat = (np.empty(s, dt) for s in ((h, d), (h, d), (m, d), (m, d)))
    dz2, da1, ones, sig1, dz1 = (np.empty(s, dt) for s in ((m, d), (h, d), (h, d), (h, d), (h, d)))
    dw2, db2, dw1, db1 = np.empty((m, h), dt), np.empty((m, 1), dt), np.empty((h, n), dt), np.empty((h, 1), dt)

    def say(text: str = "") -> None:
        out.write(text + "\n")

    def show(label: str, value: np.ndarray, how: str, kernel: str) -> None:
        say(f"  # {how:<46} [{kernel}]")
        seed = SEED.get(label)
        line = f"  {label} = {_fmt(value, digits)}"
        say(f"{line:<60} seed: {seed}" if seed else line)

    say(f"pynn explain: the seed's worked example, computed by the {name!r} backend's kernels in {dt.name}")
    say("A 2-2-1 network (sigmoid hidden layer, sigmoid output), one example as a column, binary "
        "cross-entropy.")
    say("Matrices are written row by row: [a, b; c, d].")
    say()
    say("Given")
    for label, v in (("X", x), ("Y", y), ("W1", w1), ("b1", c1), ("W2", w2), ("b2", c2)):
        say(f"  {label} = {_fmt(v, digits)}")
    say(f"  eta = {lr:g}" + "    (learning rate: the seed leaves it open)")
    say()
    say("Forward pass")
    k.dense_forward(w1, x, c1, z1)
    show("Z1", z1, "Z1 = W1 X + b1", "dense_forward")
    k.sigmoid_forward(z1, a1)
    show("A1", a1, "A1 = sigma(Z1) = 1 / (1 + exp(-Z1))", "sigmoid_forward")
    k.dense_forward(w2, a1, c2, z2)
    show("Z2", z2, "Z2 = W2 A1 + b2", "dense_forward")
    k.sigmoid_forward(z2, yhat)
    show("Yhat", yhat, "Yhat = sigma(Z2)", "sigmoid_forward")
    say()
    say("Loss")
    J = k.bce_forward(yhat, y)
    show("J", np.array(J), "J = -(Y log Yhat + (1 - Y) log(1 - Yhat))", "bce_forward")
    say()
    say("Backward pass")
    k.output_backward(yhat, y, dz2)
    show("dJ/dZ2", dz2, "dJ/dZ2 = Yhat - Y   (sigmoid + bce, d = 1)", "output_backward")
    k.dense_backward(dz2, a1, w2, dw2, db2, da1)
    show("dJ/dW2", dw2, "dJ/dW2 = dJ/dZ2 A1^T", "dense_backward")
    show("dJ/db2", db2, "dJ/db2 = dJ/dZ2 1", "dense_backward")
    show("dJ/dA1", da1, "dJ/dA1 = W2^T dJ/dZ2", "dense_backward")
    ones.fill(1)
    k.sigmoid_backward(ones, a1, sig1)
    show("sigma'(Z1)", sig1, "sigma'(Z1) = A1 (1 - A1)", "sigmoid_backward of ones")
    k.sigmoid_backward(da1, a1, dz1)
    show("dJ/dZ1", dz1, "dJ/dZ1 = (W2^T dJ/dZ2) * sigma'(Z1)", "sigmoid_backward")
    k.dense_backward(dz1, x, w1, dw1, db1, None)
    show("dJ/dW1", dw1, "dJ/dW1 = dJ/dZ1 X^T", "dense_backward")
    show("dJ/db1", db1, "dJ/db1 = dJ/dZ1 1", "dense_backward")
    say()
    say(f"Update (SGD, eta = {lr:g})")
    empty = np.empty(0, dt)  # no momentum buffer
    for label, p, g in (("W2", w2, dw2), ("b2", c2, db2), ("W1", w1, dw1), ("b1", c1, db1)):
        k.sgd_update(p.reshape(-1), g.reshape(-1), empty, float(lr), 0.0, False)
        show(f"{label}'", p, f"{label}' = {label} - eta dJ/d{label}", "sgd_update")
