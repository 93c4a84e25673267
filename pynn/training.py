"""What ``Network.fit`` reports: the History it returns, callbacks, and the progress display."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
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
        #: why training ended before its last epoch: None (it ran them all), "stop_training" (a
        #: callback asked), "diverged" (a step's loss, gradient or update was not finite) or
        #: "interrupted" (Ctrl-C)
        self.stop_reason: str | None = None
        #: where it ended early: ``{"epoch": e, "batch": b, ...}``; batch b of epoch e is the first
        #: one not applied (for "diverged" it is the step that was refused, with its "loss")
        self.stopped_at: dict[str, Any] | None = None

    def append(self, epoch: int, **logs: float) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def _stop(self, reason: str, **where: Any) -> None:
        self.stop_reason, self.stopped_at = reason, where

    def __getattr__(self, key: str) -> list[float]:
        if key.startswith("_") or key in ("history", "epoch", "stop_reason", "stopped_at"):
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

    def on_divergence(self, net, logs: dict[str, Any]) -> None:
        """A step's loss, gradient or update was not finite and was not applied; ``logs`` holds
        ``epoch``, ``batch`` and ``loss``. Without a callback that overrides this hook, ``fit``
        raises FloatingPointError. With one, the hook decides: set ``net.stop_training = True``
        to end training (``fit`` returns its History), or change something (``opt.lr``) and
        return to go on with the next batch."""


class Diverged(FloatingPointError):
    """Raised by ``fit`` when a step's loss, gradient or update is not finite and no callback
    handles it. The network keeps its last finite weights; ``.history`` is the History so far
    (its ``stopped_at`` says which epoch and batch)."""

    def __init__(self, message: str, history: "History | None" = None) -> None:
        super().__init__(message)
        self.history = history


@contextlib.contextmanager
def sigint_deferred(flag: np.ndarray):
    """While training in the main thread with Python's default Ctrl-C handler, a first Ctrl-C
    only sets ``flag[0]`` (training stops after the step in progress); a second one raises
    KeyboardInterrupt at once. Yields whether the handler was installed."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield False
        return

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = 1

    signal.signal(signal.SIGINT, handler)
    try:
        yield True
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


class EarlyStopping(Callback):
    """Stop ``fit`` when a monitored quantity has stopped improving (Keras's rule).

    Parameters
    ----------
    monitor : str
        A key of the epoch logs: ``"val_loss"`` (the default), ``"val_accuracy"``, ``"loss"``,
        ``"accuracy"``. The ``val_`` keys need ``validation_data`` or ``validation_fraction``.
    patience : int
        Epochs without improvement after which training stops.
    min_delta : float
        An improvement must beat the best value by more than this.
    mode : "auto", "min" or "max"
        Whether smaller or larger is better; ``"auto"`` takes ``"max"`` for accuracies and
        ``"min"`` for losses.
    restore_best_weights : bool
        At the end of training, put back the weights of the best epoch (the first monitored
        epoch's if none improved). The optimizer's state is not rolled back.
    start_from_epoch : int
        Epochs to wait before monitoring starts (warm-up).

    Notes
    -----
    The rule, as in ``keras.callbacks.EarlyStopping``: at the end of each epoch ``e >=
    start_from_epoch``, ``wait += 1``; if the value improves on ``best`` (``value < best -
    min_delta`` in min mode, ``value > best + min_delta`` in max mode) then ``best = value`` and
    ``wait = 0``; otherwise, if ``wait >= patience`` and ``e > 0``, training stops after this
    epoch. ``stopped_epoch`` and ``best_epoch`` record what happened; ``History.stop_reason`` is
    ``"stop_training"``.

    scikit-learn's ``MLPClassifier(early_stopping=True, tol, n_iter_no_change)`` scores
    validation accuracy and counts an epoch as not improving when ``score < best + tol`` (it
    moves ``best`` on any rise); for accuracies that equals this rule with ``monitor=
    "val_accuracy"``, ``min_delta`` a little above 0 but below ``tol`` steps, and ``patience =
    n_iter_no_change + 1``.

    Examples
    --------
    >>> import pynn
    >>> stop = pynn.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        from . import _validate as V

        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str naming a log such as 'val_loss', got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be one of ['auto', 'min', 'max'], got {mode!r}")
        if mode == "auto":
            if "acc" in monitor:
                mode = "max"
            elif "loss" in monitor:
                mode = "min"
            else:
                raise ValueError(f"mode='auto' cannot tell whether {monitor!r} should rise or fall; "
                                 "give mode='min' or mode='max'")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.integer, np.floating)) \
                or not math.isfinite(min_delta):
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        self.monitor, self.mode = monitor, mode
        self.patience = V.check_int(patience, "patience", minimum=0)
        self.start_from_epoch = V.check_int(start_from_epoch, "start_from_epoch", minimum=0)
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights: np.ndarray | None = None

    def _improves(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, net, logs):
        self._reset()

    def on_epoch_end(self, net, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which fit does not log; the logs have "
                             f"{sorted(logs)} (val_* keys need validation_data or validation_fraction)")
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = net._params.copy()  # if nothing ever improves, the first epoch's
        self.wait += 1
        if self._improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights[...] = net._params
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            net.stop_training = True

    def on_train_end(self, net, logs):
        if self.restore_best_weights and self.best_weights is not None:
            net._params[...] = self.best_weights


def correct_share(Yhat: np.ndarray, target: np.ndarray, loss: str) -> np.ndarray:
    """Per example, the share of its outputs judged right (0 or 1 for softmax outputs), as
    :func:`correct_count` judges them; shape ``(d,)``."""
    if loss == "cross_entropy" and Yhat.shape[0] > 1:
        true = target if target.ndim == 1 else target.argmax(axis=0)
        return (Yhat.argmax(axis=0) == true).astype(np.float64)
    return ((Yhat > 0.5) == (target.reshape(Yhat.shape) > 0.5)).mean(axis=0)
