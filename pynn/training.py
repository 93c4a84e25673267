"""What ``Network.fit`` reports: the History it returns, callbacks, and the progress display."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .network import Network


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
        #: "interrupted" (Ctrl-C) or "converged" (LBFGS met its tolerance; stopped_at has SciPy's message)
        self.stop_reason: str | None = None
        #: per layer, per epoch: weight_norm, grad_norm, update_ratio, dead, saturated (see
        #: pynn.health); empty when fit ran with health=False
        self.health: list[dict[str, list[float]]] = []
        #: the epochs that ``health`` holds (every epoch unless epochs were too short to afford it)
        self.health_epochs: list[int] = []
        #: where it ended early: ``{"epoch": e, "batch": b, ...}``; batch b of epoch e is the first
        #: one not applied (for "diverged" it is the step that was refused, with its "loss")
        self.stopped_at: dict[str, Any] | None = None

    def append(self, epoch: int, **logs: float) -> None:
        """Record epoch ``epoch`` (0-based) with its values, e.g. ``loss=0.3``.

        Examples
        --------
        >>> h = History()
        >>> h.append(0, loss=0.5, val_loss=0.7)
        >>> h.epoch, h["val_loss"]
        ([0], [0.7])
        """
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
        if key.startswith("_") or key in ("history", "epoch", "stop_reason", "stopped_at", "health", "health_epochs"):
            raise AttributeError(key)
        try:
            return self.history[key]
        except KeyError:
            if key in ("loss", "time"):  # every fit records these: none yet (stopped in epoch 0)
                return self.history.setdefault(key, [])
            raise AttributeError(f"History has no series {key!r}; it has {sorted(self.history)}") from None

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self)}, last={last})"

    def plot(self, path: str | os.PathLike[str] | None = None, *, ax: Axes | None = None) -> Figure:
        """Draw the loss curves (``loss`` and ``val_loss`` per epoch) and, beside them, the
        accuracy curves when there are any; save the figure to ``path`` if given.

        Needs matplotlib (``pip install "pynn[plot]"``). With ``path`` and no ``ax`` the figure
        is drawn without pyplot, so it works without a display and leaves pyplot's state alone;
        with neither, it is a pyplot figure for ``plt.show()``. With ``ax`` the loss curves go
        on that Axes (and nothing else is drawn).

        Parameters
        ----------
        path : str or path-like, optional
            Image file to write; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
        ax : matplotlib.axes.Axes, optional
            Axes to draw the loss curves on.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn on.

        Examples
        --------
        >>> import os, tempfile
        >>> h = History()
        >>> for epoch, (loss, val) in enumerate([(0.9, 1.0), (0.5, 0.7), (0.3, 0.6)]):
        ...     h.append(epoch, loss=loss, val_loss=val)
        >>> fig = h.plot(os.path.join(tempfile.mkdtemp(), "loss.png"))
        >>> [line.get_label() for line in fig.axes[0].lines]
        ['loss', 'val_loss']
        """
        if not len(self):
            raise ValueError("History.plot: the history is empty, there is nothing to plot (train at least one epoch)")
        if path is not None:
            path = os.fspath(path)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError('History.plot needs matplotlib: pip install "pynn[plot]"') from None
        if ax is not None:
            fig, axes = ax.figure, [ax]
        else:
            if path is not None:
                from matplotlib.figure import Figure

                fig = Figure(layout="constrained")  # not registered with pyplot: no global state
            else:
                import matplotlib.pyplot as plt

                fig = plt.figure(layout="constrained")
            panels = 2 if "accuracy" in self or "val_accuracy" in self else 1
            fig.set_size_inches(5.0 * panels, 3.6)
            axes = list(fig.subplots(1, panels, squeeze=False)[0])
        epochs = [e + 1 for e in self.epoch]
        for axis, what in zip(axes, ("loss", "accuracy")):
            for key, style in ((what, "-"), (f"val_{what}", "--")):
                if key in self:
                    axis.plot(epochs, self.history[key], style, marker="o" if len(epochs) < 30 else None,
                              markersize=3, label=key)
            axis.set_xlabel("epoch")
            axis.set_ylabel(what)
            axis.grid(True, alpha=0.3)
            axis.legend()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


class Callback:
    """Base class for ``fit`` callbacks; override any hook. Set ``net.stop_training = True`` in
    a hook to end training after the current batch or epoch.

    A plain function given as a callback is called as ``f(epoch, logs)`` at each epoch's end.
    ``logs`` holds the epoch's ``loss`` (and ``accuracy``, ``val_loss``, ``val_accuracy`` when
    computed); at a batch's end, the batch's ``loss`` and ``size``.

    Examples
    --------
    >>> import numpy as np, pynn
    >>> class StopBelow(pynn.Callback):
    ...     def __init__(self, threshold):
    ...         self.threshold = threshold
    ...     def on_epoch_end(self, net: Network, epoch: int, logs: dict[str, Any]) -> None:
    ...         if logs["loss"] < self.threshold:
    ...             net.stop_training = True
    >>> net = pynn.Network([pynn.Dense(1, 1, "linear")], seed=0)
    >>> X = np.linspace(-1, 1, 20)[None, :]
    >>> h = net.fit(X, 3 * X, loss="mse", optimizer=pynn.SGD(0.5), epochs=500, callbacks=[StopBelow(1e-3)])
    >>> len(h) < 500 and h.loss[-1] < 1e-3
    True
    """

    def on_train_begin(self, net: Network, logs: dict[str, Any]) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, net: Network, epoch: int, logs: dict[str, Any]) -> None:
        """Called at the start of each epoch (0-based)."""

    def on_batch_end(self, net: Network, batch: int, logs: dict[str, Any]) -> None:
        """Called after each batch's update with its ``loss`` and ``size`` (the compiled
        backend then runs batches one call at a time, so use it only when needed)."""

    def on_epoch_end(self, net: Network, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch with its ``logs``; may set ``net.stop_training``."""

    def on_train_end(self, net: Network, logs: dict[str, Any]) -> None:
        """Called once after the last epoch."""

    def on_divergence(self, net: Any, logs: dict[str, Any]) -> None:
        """A step's loss, gradient or update was not finite and was not applied; ``logs`` holds
        ``epoch``, ``batch`` and ``loss``. Without a callback that overrides this hook, ``fit``
        raises FloatingPointError. With one, the hook decides: set ``net.stop_training = True``
        to end training (``fit`` returns its History), or change something (``opt.lr``) and
        return to go on with the next batch.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> class Halve(pynn.Callback):
        ...     def __init__(self, opt):
        ...         self.opt = opt
        ...     def on_divergence(self, net, logs):
        ...         self.opt.lr /= 2  # skip the batch, go on more gently
        >>> net = pynn.Network.from_sizes([1, 1], output="linear", dtype="float64", seed=0)
        >>> opt = pynn.SGD(1.0)
        >>> X, Y = np.array([[1e200]]), np.array([[0.0]])
        >>> h = net.fit(X, Y, loss="mse", optimizer=opt, epochs=2, callbacks=[Halve(opt)], health=False)
        >>> opt.lr, h.stop_reason
        (0.25, None)
        """


class Diverged(FloatingPointError):
    """Raised by ``fit`` when a step's loss, gradient or update is not finite and no callback
    handles it. The network keeps its last finite weights; ``.history`` is the History so far
    (its ``stopped_at`` says which epoch and batch).

    Examples
    --------
    >>> import numpy as np, pynn
    >>> net = pynn.Network.from_sizes([1, 1], output="linear", dtype="float64", seed=0)
    >>> try:
    ...     net.fit(np.array([[1e200]]), np.array([[0.0]]), loss="mse", optimizer=pynn.SGD(1.0), health=False)
    ... except pynn.Diverged as e:
    ...     print(e.history.stop_reason, e.history.stopped_at["epoch"], e.history.stopped_at["batch"])
    diverged 0 0
    """

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

    def on_epoch_end(self, net: Network, epoch: int, logs: dict[str, Any]) -> None:
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
        V.check_choice(mode, "mode", ("auto", "min", "max"))
        if mode == "auto":
            if "acc" in monitor:
                mode = "max"
            elif "loss" in monitor:
                mode = "min"
            else:
                raise ValueError(f"mode='auto' cannot tell whether {monitor!r} should rise or fall; "
                                 "give mode='min' or mode='max'")
        number = not isinstance(min_delta, bool) and isinstance(min_delta, (int, float, np.integer, np.floating))
        try:
            finite = number and math.isfinite(min_delta)
        except OverflowError:  # an int beyond float's range
            finite = False
        if not finite:
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise TypeError(f"restore_best_weights must be a bool, got {restore_best_weights!r}")
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

    def on_train_begin(self, net: Network, logs: dict[str, Any]) -> None:
        self._reset()

    def on_epoch_end(self, net: Network, epoch: int, logs: dict[str, Any]) -> None:
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

    def on_train_end(self, net: Network, logs: dict[str, Any]) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            net._params[...] = self.best_weights


def correct_share(Yhat: np.ndarray, target: np.ndarray, loss: str) -> np.ndarray:
    """Per example, the share of its outputs judged right (0 or 1 for softmax outputs), as
    :func:`correct_count` judges them; shape ``(d,)``."""
    if loss == "cross_entropy" and Yhat.shape[0] > 1:
        true = target if target.ndim == 1 else target.argmax(axis=0)
        return (Yhat.argmax(axis=0) == true).astype(np.float64)
    return ((Yhat > 0.5) == (target.reshape(Yhat.shape) > 0.5)).mean(axis=0)
