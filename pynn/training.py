"""What ``Network.fit`` reports: the History it returns, callbacks, and the progress display."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np


class History:
    """Per-epoch records of a ``fit``: ``loss`` and, when computed, ``accuracy``, ``val_loss``
    and ``val_accuracy``; also ``time`` (seconds per epoch).

    Read a series as an attribute or a key: ``h.loss == h["loss"] == h.history["loss"]``.

    Examples
    --------
    >>> h = History()
    >>> h.append(epoch=0, loss=0.5)
    >>> h.loss
    [0.5]
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, **logs: float) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __getattr__(self, key: str) -> list[float]:
        if key.startswith("_") or key in ("history", "epoch"):
            raise AttributeError(key)
        try:
            return self.history[key]
        except KeyError:
            raise AttributeError(f"History has no series {key!r}; it has {sorted(self.history)}") from None

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self)}, last={last})"


class Callback:
    """Base class for ``fit`` callbacks; override any hook. Set ``net.stop_training = True`` in
    a hook to end training after the current batch or epoch.

    A plain function given as a callback is called as ``f(epoch, logs)`` at each epoch's end.
    """

    def on_train_begin(self, net, logs: dict[str, Any]) -> None: ...
    def on_epoch_begin(self, net, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_batch_end(self, net, batch: int, logs: dict[str, Any]) -> None: ...
    def on_epoch_end(self, net, epoch: int, logs: dict[str, Any]) -> None: ...
    def on_train_end(self, net, logs: dict[str, Any]) -> None: ...


class _EpochFunction(Callback):
    def __init__(self, fn) -> None:
        self.fn = fn

    def on_epoch_end(self, net, epoch, logs):
        self.fn(epoch, logs)


def as_callbacks(callbacks) -> list[Callback]:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be Callback objects or functions f(epoch, logs), or a list of them; "
                        f"got {callbacks!r}") from None
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_EpochFunction(cb))
        else:
            raise TypeError(f"callbacks must be Callback objects or functions f(epoch, logs), got {cb!r}")
    return out


def correct_count(Yhat: np.ndarray, target: np.ndarray, loss: str) -> tuple[int, int]:
    """(number right, number judged) for a classification batch. Softmax outputs: the argmax
    class per example; sigmoid outputs: each output thresholded at 0.5."""
    if loss == "cross_entropy" and Yhat.shape[0] > 1:
        pred = Yhat.argmax(axis=0)
        true = target if target.ndim == 1 else target.argmax(axis=0)
        return int(np.count_nonzero(pred == true)), pred.size
    right = np.count_nonzero((Yhat > 0.5) == (target.reshape(Yhat.shape) > 0.5))
    return int(right), Yhat.size


class Progress:
    """verbose=1: a progress bar redrawn a few times a second, then one line per epoch;
    verbose=2: one line per epoch."""

    def __init__(self, verbose: int, epochs: int, n_batches: int, stream=None) -> None:
        self.verbose, self.epochs, self.n_batches = verbose, epochs, n_batches
        self.stream = stream or sys.stdout
        self.tty = self.verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        self._last = 0.0

    def batch(self, epoch: int, batch: int, loss: float) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if now - self._last < 0.2 and batch + 1 < self.n_batches:
            return
        self._last = now
        done = (batch + 1) / self.n_batches
        bar = "=" * int(24 * done)
        self.stream.write(f"\repoch {epoch + 1}/{self.epochs} [{bar:<24}] {batch + 1}/{self.n_batches} loss {loss:.4f}")
        self.stream.flush()

    def epoch(self, epoch: int, logs: dict[str, float], seconds: float, samples: int) -> None:
        if not self.verbose:
            return
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        parts += [f"{k} {v:.4f}" for k, v in logs.items() if k != "time"]
        parts.append(f"{seconds:.2f}s")
        parts.append(f"{samples / max(seconds, 1e-12):,.0f} samples/s")
        self.stream.write(("\r" if self.tty else "") + "  ".join(parts) + "\n")
        self.stream.flush()
