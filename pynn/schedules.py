"""Learning-rate schedules: callbacks that set ``optimizer.lr`` before each epoch.

Each one gives the sequence of its PyTorch counterpart (``torch.optim.lr_scheduler``): the rate
used in epoch ``e`` is ``lr_at(e)`` (closed forms of torch's recursive updates). Pass one in
``fit(..., callbacks=[schedule])``, or call :meth:`Schedule.step` yourself after each epoch when
you drive training with ``train_step``. The schedule remembers the optimizer's ``lr`` when it is
made as the base rate.

Examples
--------
>>> import pynn
>>> opt = pynn.SGD(0.1)
>>> sched = pynn.schedules.StepLR(opt, step_size=2, gamma=0.5)
>>> [round(sched.lr_at(e), 4) for e in range(5)]
[0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import math
import sys
from typing import Any

from . import _validate as V
from .optimizers import Optimizer
from .training import Callback

__all__ = ["Schedule", "Constant", "InverseScaling", "StepLR", "ExponentialLR", "CosineWarmup",
           "ReduceLROnPlateau"]


def _decayed(base: float, gamma: float, k: int) -> float:
    """``base * gamma ** k``, also where ``gamma ** k`` alone overflows (Python's float power
    raises) or underflows but the product does not: torch multiplies the rate by gamma k times,
    and its rate becomes inf only when the product overflows."""
    try:
        g = gamma ** k
    except OverflowError:
        g = math.inf
    if math.isinf(g) or g < sys.float_info.min:
        try:
            return math.exp(math.log(base) + k * math.log(gamma))
        except OverflowError:
            return math.inf
    return base * g


class Schedule(Callback):
    """Base class: subclasses define ``lr_at(epoch)``. Making a schedule sets the optimizer's rate
    for epoch 0 (as constructing a torch scheduler does); each :meth:`step` moves to the next."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pynn optimizer such as pynn.SGD(lr), got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self.optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, metric: float | None = None) -> float:
        """Advance one epoch; returns the rate now set."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
        return self.optimizer.lr

    def on_epoch_end(self, net, epoch: int, logs: dict[str, Any]) -> None:
        self.step()


class Constant(Schedule):
    """The base rate throughout (``torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)``).

    Examples
    --------
    >>> import pynn
    >>> pynn.schedules.Constant(pynn.SGD(0.1)).lr_at(7)
    0.1
    """

    def lr_at(self, epoch: int) -> float:
        return self.base_lr


class InverseScaling(Schedule):
    """``lr = base / (epoch + 1) ** power`` — scikit-learn's ``'invscaling'`` counted in epochs
    (``LambdaLR(opt, lambda e: (e + 1) ** -power)``).

    Examples
    --------
    >>> import pynn
    >>> pynn.schedules.InverseScaling(pynn.SGD(0.1), power=0.5).lr_at(3)
    0.05
    """

    def __init__(self, optimizer: Optimizer, power: float = 0.5) -> None:
        self.power = V.check_float(power, "power", low=0)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        # torch's factor (e + 1) ** -power: it underflows to 0 where (e + 1) ** power would overflow
        return self.base_lr * (epoch + 1) ** -self.power


class StepLR(Schedule):
    """``lr = base * gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``).

    Examples
    --------
    >>> import pynn
    >>> pynn.schedules.StepLR(pynn.SGD(1.0), step_size=10, gamma=0.1).lr_at(25)
    0.010000000000000002
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = V.check_int(step_size, "step_size")
        self.gamma = V.check_float(gamma, "gamma", low=0, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return _decayed(self.base_lr, self.gamma, epoch // self.step_size)


class ExponentialLR(Schedule):
    """``lr = base * gamma ** epoch`` (``torch.optim.lr_scheduler.ExponentialLR``).

    Examples
    --------
    >>> import pynn
    >>> pynn.schedules.ExponentialLR(pynn.SGD(1.0), gamma=0.5).lr_at(3)
    0.125
    """

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = V.check_float(gamma, "gamma", low=0, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return _decayed(self.base_lr, self.gamma, epoch)


class CosineWarmup(Schedule):
    """A linear warm-up from ``base * start_factor`` over ``warmup`` epochs, then cosine annealing
    to ``eta_min`` at epoch ``total`` — ``SequentialLR([LinearLR(opt, start_factor,
    total_iters=warmup), CosineAnnealingLR(opt, T_max=total - warmup, eta_min)],
    milestones=[warmup])``; with ``warmup=0`` it is ``CosineAnnealingLR(opt, T_max=total)``.
    Past ``total`` the cosine goes on (as torch's does).

    Examples
    --------
    >>> import pynn
    >>> s = pynn.schedules.CosineWarmup(pynn.SGD(1.0), total=10, warmup=2, start_factor=0.5)
    >>> [round(s.lr_at(e), 3) for e in (0, 1, 2, 6, 10)]
    [0.5, 0.75, 1.0, 0.5, 0.0]
    """

    def __init__(self, optimizer: Optimizer, total: int, warmup: int = 0, *, start_factor: float = 1 / 3,
                 eta_min: float = 0.0) -> None:
        self.total = V.check_int(total, "total")
        self.warmup = V.check_int(warmup, "warmup", minimum=0)
        if self.warmup >= self.total:
            raise ValueError(f"warmup must be below total ({self.total}), got {warmup}")
        self.start_factor = V.check_float(start_factor, "start_factor", low=0, high=1, low_open=True)
        self.eta_min = V.check_float(eta_min, "eta_min", low=0)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        w = self.warmup
        if epoch < w:
            return self.base_lr * (self.start_factor + (1 - self.start_factor) * epoch / w)
        t = (epoch - w) / (self.total - w)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t)) / 2


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by ``factor`` when ``monitor`` (a key of the epoch logs: ``"val_loss"``
    by default, else ``"loss"``) has not improved for more than ``patience`` epochs — the rules
    of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (``mode``, ``threshold``,
    ``threshold_mode``, ``cooldown``, ``min_lr``, ``eps``).

    Examples
    --------
    >>> import pynn
    >>> opt = pynn.SGD(1.0)
    >>> s = pynn.schedules.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    >>> [s.step(m) for m in (1.0, 1.0, 1.0, 0.5)]
    [1.0, 1.0, 0.5, 0.5]
    """

    def __init__(self, optimizer: Optimizer, *, monitor: str | None = None, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"monitor must be None or a str naming a log such as 'val_loss', got {monitor!r}")
        V.check_choice(mode, "mode", ("min", "max"))
        V.check_choice(threshold_mode, "threshold_mode", ("rel", "abs"))
        self.factor = V.check_float(factor, "factor", low=0, high=1, low_open=True, high_open=True)
        self.patience = V.check_int(patience, "patience", minimum=0)
        self.cooldown = V.check_int(cooldown, "cooldown", minimum=0)
        self.threshold = V.check_float(threshold, "threshold", low=0)
        self.min_lr = V.check_float(min_lr, "min_lr", low=0)
        self.eps = V.check_float(eps, "eps", low=0)
        self.monitor, self.mode, self.threshold_mode = monitor, mode, threshold_mode
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return float(self.optimizer.lr)

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (1 + self.threshold) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metric: float | None = None) -> float:
        """Record this epoch's ``metric`` and reduce the rate if it has stopped improving."""
        if metric is None:
            raise TypeError("ReduceLROnPlateau.step needs the epoch's metric, got None")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        return float(self.optimizer.lr)

    def on_epoch_end(self, net, epoch: int, logs: dict[str, Any]) -> None:
        key = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
        if key not in logs:
            raise KeyError(f"ReduceLROnPlateau monitors {key!r}, which the epoch logs lack; they have {sorted(logs)}")
        self.step(logs[key])
