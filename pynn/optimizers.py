"""Optimizers: small classes with one ``step`` each, calling the backend's update kernel once
over the network's flat parameter buffer."""

from __future__ import annotations

import itertools
import logging
import math
import time
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .network import Network

from ._validate import check_float


_serial = itertools.count()
_log = logging.getLogger("pynn")


class Optimizer:
    """Base class. State (momentum, moments, step count) is kept per network, so one optimizer
    may train several networks without mixing their state. Hyper-parameters may be changed
    between steps (``opt.lr = ...``), e.g. for a learning-rate schedule.

    Examples
    --------
    >>> import numpy as np, pynn
    >>> opt = pynn.SGD(0.5)
    >>> net = pynn.Network.from_sizes([2, 1], output="sigmoid", seed=0)
    >>> J = net.train_step(np.ones((2, 4)), np.ones(4), "bce", opt)
    >>> opt.lr = 0.25  # a schedule: the next step uses the new rate
    >>> isinstance(opt, pynn.Optimizer)
    True
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_version", 0)
        self._state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __setattr__(self, name: str, value) -> None:
        # the compiled core caches the settings; a new version tells it to reload them
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_version", self._version + 1)

    def state(self, net: Network) -> dict[str, Any]:
        """This optimizer's state for ``net`` (created on first use).

        Examples
        --------
        >>> import pynn
        >>> net = pynn.Network.from_sizes([2, 1], seed=0)
        >>> sorted(k for k in pynn.Adam().state(net) if k in ("m", "v", "t"))
        ['m', 't', 'v']
        """
        st = self._state.get(net)
        if st is None or st["size"] != net._params.size or st["dtype"] != net.dtype:
            st = self._state[net] = {"size": net._params.size, "dtype": net.dtype, "serial": next(_serial),
                                     **self._new_state(net)}
        return st

    #: the state arrays an update changes, which a refused (non-finite) update restores
    _state_keys: tuple[str, ...] = ()
    #: meant for full-batch training: fit warns when its batches are smaller than the data
    _full_batch = False

    def _bind(self, net: Network, model: Any) -> None:  # pragma: no cover - abstract
        """Hand the settings and state arrays to the compiled model ``model`` of ``net``."""
        raise NotImplementedError

    def _new_state(self, net: Network) -> dict[str, Any]:
        return {}

    def step(self, net: Network) -> None:  # pragma: no cover - abstract
        """Update ``net``'s parameters from the gradients of its last ``loss_and_grads``.

        ``net.train_step`` and ``net.fit`` call this; call it yourself only after
        :meth:`Network.loss_and_grads` on the same network.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(1, 1, "linear", init=([[2.0]], [[0.0]]))], dtype="float64")
        >>> J, grads = net.loss_and_grads(np.array([[1.0]]), np.array([[1.0]]), "mse")
        >>> pynn.SGD(0.5).step(net)  # W <- 2 - 0.5 * dJ/dW = 2 - 0.5 * 1
        >>> net.layers[0].W
        array([[1.5]])
        """
        raise NotImplementedError

    def _clip_settings(self, clip_value: float | None, clip_norm: float | None) -> None:
        self.clip_value = None if clip_value is None else check_float(clip_value, "clip_value", low=0, low_open=True)
        self.clip_norm = None if clip_norm is None else check_float(clip_norm, "clip_norm", low=0, low_open=True)

    def _clip_args(self) -> tuple[float, float]:
        return float(self.clip_value or 0.0), float(self.clip_norm or 0.0)

    def _apply(self, net) -> bool:
        """Clip ``net``'s gradient, then :meth:`step`; an update that leaves a weight or a state
        value non-finite is taken back (the network keeps its last finite weights) and False
        is returned. The compiled paths do the same inside their fused step."""
        g = net._grads
        clip_value, clip_norm = self._clip_args()
        if clip_value:
            np.clip(g, -clip_value, clip_value, out=g)
        if clip_norm:
            coef = clip_norm / (math.sqrt(float(np.dot(g.astype(np.float64, copy=False),
                                                          g.astype(np.float64, copy=False)))) + 1e-6)
            if coef < 1:
                g *= g.dtype.type(coef)
        st = self.state(net)
        arrays = [net._params] + [st[k] for k in self._state_keys if st[k].size == net._params.size]
        undo = st.get("_undo")
        if undo is None or undo.shape != (len(arrays), net._params.size):
            undo = st["_undo"] = np.empty((len(arrays), net._params.size), net.dtype)
        for row, a in zip(undo, arrays):
            row[...] = a
        t0 = st["t"][0] if "t" in st else None
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught just below
            self.step(net)
        if all(math.isfinite(a.min()) and math.isfinite(a.max()) for a in arrays):
            return True
        for row, a in zip(undo, arrays):
            a[...] = row
        if t0 is not None:
            st["t"][0] = t0
        return False

    def reset(self) -> None:
        """Forget all state (momentum, moments, step count).

        Examples
        --------
        >>> import pynn
        >>> opt = pynn.Adam()
        >>> opt.reset()
        """
        self._state.clear()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def get_config(self) -> dict[str, Any]:
        """The hyper-parameters, as keyword arguments of the constructor.

        Examples
        --------
        >>> import pynn
        >>> pynn.SGD(0.1, momentum=0.9).get_config()
        {'lr': 0.1, 'momentum': 0.9, 'nesterov': False, 'clip_value': None, 'clip_norm': None}
        """
        return {}


class SGD(Optimizer):
    """Stochastic gradient descent: ``W <- W - lr * dW``, the seed's update, when momentum is 0.

    With momentum μ (as ``torch.optim.SGD``): ``v <- μ v + g``; the step is ``lr * v``, or
    ``lr * (g + μ v)`` with Nesterov momentum.

    Parameters
    ----------
    lr : float
        Learning rate η > 0.
    momentum : float
        Momentum μ in [0, 1).
    nesterov : bool
        Use Nesterov momentum (needs momentum > 0).
    clip_value : float or None
        Clip each gradient element to ``[-clip_value, clip_value]`` before the update
        (``torch.nn.utils.clip_grad_value_``).
    clip_norm : float or None
        Scale the whole gradient (every layer's ``dW`` and ``db`` together) by
        ``clip_norm / (norm + 1e-6)`` when that is below 1 (``torch.nn.utils.clip_grad_norm_``).

    Examples
    --------
    >>> import pynn
    >>> opt = pynn.SGD(0.1, momentum=0.9)
    """

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, *,
                 clip_value: float | None = None, clip_norm: float | None = None) -> None:
        super().__init__()
        self._clip_settings(clip_value, clip_norm)
        self.lr = check_float(lr, "lr", low=0, low_open=True)
        self.momentum = check_float(momentum, "momentum", low=0, high=1, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
        self.nesterov = bool(nesterov)

    _state_keys = ("v",)

    def _new_state(self, net: Network) -> dict[str, Any]:
        return {"v": np.zeros_like(net._params) if self.momentum else np.empty(0, net.dtype)}

    def step(self, net: Network) -> None:
        st = self.state(net)
        net._k.sgd_update(net._params, net._grads, st["v"], self.lr, self.momentum, self.nesterov)

    def _bind(self, net: Network, model: Any) -> None:
        model.set_sgd(self.lr, self.momentum, self.nesterov, self.state(net)["v"], *self._clip_args())

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "clip_value": self.clip_value, "clip_norm": self.clip_norm}


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``; with ``weight_decay > 0`` it is AdamW: the
    weights shrink by ``lr * weight_decay`` each step, decoupled from the gradient.

    Parameters
    ----------
    lr : float
        Learning rate > 0.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float
        Added to the denominator, > 0.
    weight_decay : float
        Decoupled weight decay >= 0 (applied to every parameter, as ``torch.optim.AdamW``).
    clip_value, clip_norm : float or None
        Gradient clipping before the update, as for :class:`SGD`.

    Examples
    --------
    >>> import pynn
    >>> opt = pynn.Adam(1e-3, weight_decay=1e-4)
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, *, clip_value: float | None = None,
                 clip_norm: float | None = None) -> None:
        super().__init__()
        self._clip_settings(clip_value, clip_norm)
        self.lr = check_float(lr, "lr", low=0, low_open=True)
        self.beta1 = check_float(beta1, "beta1", low=0, high=1, high_open=True)
        self.beta2 = check_float(beta2, "beta2", low=0, high=1, high_open=True)
        self.eps = check_float(eps, "eps", low=0, low_open=True)
        self.weight_decay = check_float(weight_decay, "weight_decay", low=0)

    _state_keys = ("m", "v")

    def _new_state(self, net: Network) -> dict[str, Any]:
        # t is a 1-element array so the compiled core can count steps in place
        return {"m": np.zeros_like(net._params), "v": np.zeros_like(net._params), "t": np.zeros(1, np.int64)}

    def step(self, net: Network) -> None:
        st = self.state(net)
        st["t"][0] += 1
        net._k.adam_update(net._params, net._grads, st["m"], st["v"], int(st["t"][0]), self.lr, self.beta1,
                           self.beta2, self.eps, self.weight_decay)

    def _bind(self, net: Network, model: Any) -> None:
        st = self.state(net)
        model.set_adam(self.lr, self.beta1, self.beta2, self.eps, self.weight_decay, st["m"], st["v"], st["t"],
                       *self._clip_args())

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay, "clip_value": self.clip_value, "clip_norm": self.clip_norm}


class RMSprop(Optimizer):
    """RMSprop, exactly as ``torch.optim.RMSprop``.

    With g the gradient (plus ``weight_decay * p``, a coupled L2 term, when weight_decay > 0)::

        s   <- alpha s + (1 - alpha) g²
        ḡ   <- ḡ + (1 - alpha) (g - ḡ)              (centered only)
        den <- √(s - ḡ²) + eps   if centered   else   √s + eps
        p   <- p - lr g / den                       (momentum 0)
        buf <- momentum buf + g / den; p <- p - lr buf   (momentum > 0)

    ``eps`` is added outside the square root, as PyTorch does (Keras adds it inside).

    Parameters
    ----------
    lr : float
        Learning rate > 0.
    alpha : float
        Smoothing constant of the squared-gradient average, in [0, 1).
    eps : float
        Added to the denominator, > 0.
    weight_decay : float
        L2 penalty >= 0 added to the gradient (``g + weight_decay * p``), on every parameter.
    momentum : float
        Momentum in [0, 1).
    centered : bool
        Normalise by the estimated variance of the gradient instead of its second moment.
    clip_value, clip_norm : float or None
        Gradient clipping before the update, as for :class:`SGD`.

    Examples
    --------
    >>> import pynn
    >>> opt = pynn.RMSprop(1e-3, momentum=0.9, centered=True)
    """

    _state_keys = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, clip_value: float | None = None,
                 clip_norm: float | None = None) -> None:
        super().__init__()
        self._clip_settings(clip_value, clip_norm)
        self.lr = check_float(lr, "lr", low=0, low_open=True)
        self.alpha = check_float(alpha, "alpha", low=0, high=1, high_open=True)
        self.eps = check_float(eps, "eps", low=0, low_open=True)
        self.weight_decay = check_float(weight_decay, "weight_decay", low=0)
        self.momentum = check_float(momentum, "momentum", low=0, high=1, high_open=True)
        if not isinstance(centered, (bool, np.bool_)):
            raise TypeError(f"centered must be a bool, got {centered!r}")
        self.centered = bool(centered)

    def _new_state(self, net: Network) -> dict[str, Any]:
        # all three always exist, so `centered` and `momentum` may be changed between steps
        return {k: np.zeros_like(net._params) for k in self._state_keys}

    def step(self, net: Network) -> None:
        st = self.state(net)
        net._k.rmsprop_update(net._params, net._grads, st["square_avg"], st["grad_avg"], st["momentum_buffer"],
                              self.lr, self.alpha, self.eps, self.weight_decay, self.momentum, self.centered)

    def _bind(self, net: Network, model: Any) -> None:
        st = self.state(net)
        model.set_rmsprop(self.lr, self.alpha, self.eps, self.weight_decay, self.momentum, self.centered,
                          st["square_avg"], st["grad_avg"], st["momentum_buffer"], *self._clip_args())

    def get_config(self) -> dict:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered, "clip_value": self.clip_value,
                "clip_norm": self.clip_norm}


def _pair(value, name: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair of floats, got {value!r}")
    return check_float(value[0], f"{name}[0]"), check_float(value[1], f"{name}[1]")


class Rprop(Optimizer):
    """Resilient backpropagation, iRprop− (Igel & Hüsken), exactly as ``torch.optim.Rprop``.

    Each parameter has its own step size, starting at ``lr``. Where the gradient keeps its sign
    from the last step the step size grows by ``etas[1]``; where it flips, the step size shrinks
    by ``etas[0]`` and the gradient counts as 0 for this step (no move, and no sign to compare
    next time) — the "−" of iRprop−. Step sizes stay within ``step_sizes``; each parameter moves
    by its step size against the sign of its gradient. Only signs are used, so gradient
    clipping does not apply.

    Rprop is a **full-batch** method: the sign of a mini-batch gradient is noise, and the step
    sizes then shrink and grow at random. Train with ``fit(..., batch_size=None)`` (one batch of
    all examples per epoch); ``fit`` logs a warning when its batches are smaller than the data.

    Parameters
    ----------
    lr : float
        Initial step size > 0.
    etas : (float, float)
        ``(eta_minus, eta_plus)`` with ``0 < eta_minus < 1 < eta_plus``.
    step_sizes : (float, float)
        ``(step_min, step_max)`` with ``0 <= step_min <= step_max``.

    Examples
    --------
    >>> import pynn
    >>> opt = pynn.Rprop(0.01, etas=(0.5, 1.2))
    """

    _state_keys = ("prev", "step_size")
    _full_batch = True

    def __init__(self, lr: float = 0.01, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50.0)) -> None:
        super().__init__()
        self.clip_value = self.clip_norm = None
        self.lr = check_float(lr, "lr", low=0, low_open=True)
        eta_minus, eta_plus = _pair(etas, "etas")
        if not 0 < eta_minus < 1 < eta_plus:
            raise ValueError(f"etas must be (eta_minus, eta_plus) with 0 < eta_minus < 1 < eta_plus, got {etas!r}")
        self.etas = (eta_minus, eta_plus)
        lo, hi = _pair(step_sizes, "step_sizes")
        if not 0 <= lo <= hi:
            raise ValueError(f"step_sizes must be (step_min, step_max) with 0 <= step_min <= step_max, "
                             f"got {step_sizes!r}")
        self.step_sizes = (lo, hi)

    def _new_state(self, net: Network) -> dict[str, Any]:
        return {"prev": np.zeros_like(net._params), "step_size": np.full_like(net._params, self.lr)}

    def step(self, net: Network) -> None:
        st = self.state(net)
        net._k.rprop_update(net._params, net._grads, st["prev"], st["step_size"], *self.etas, *self.step_sizes)

    def _bind(self, net: Network, model: Any) -> None:
        st = self.state(net)
        model.set_rprop(*self.etas, *self.step_sizes, st["prev"], st["step_size"])

    def get_config(self) -> dict:
        return {"lr": self.lr, "etas": self.etas, "step_sizes": self.step_sizes}


class LBFGS(Optimizer):
    """Full-batch L-BFGS through SciPy's L-BFGS-B, as scikit-learn's ``MLPClassifier(solver="lbfgs")``.

    ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` runs over the network's flat
    parameter vector in float64 (its line search needs the precision); each function value is
    the network's loss and gradient on **all** of the training data, computed by the network's
    backend in its own dtype.

    Use it only through :meth:`Network.fit`: there one **epoch is one L-BFGS iteration**, so
    ``epochs`` is SciPy's ``maxiter``. ``batch_size`` and ``shuffle`` are ignored (as
    scikit-learn ignores them for lbfgs). The History gets one row per iteration: the loss (and
    accuracy, validation scores) at the iterate it ended on; callbacks run after each, and
    ``net.stop_training = True`` or Ctrl-C ends the run there. If L-BFGS converges (``tol``) or
    runs out of function evaluations before ``epochs`` iterations, ``history.stop_reason`` is
    ``"converged"``. ``train_step`` raises a TypeError: a single L-BFGS step is not defined apart
    from its line search and history.

    SciPy is imported when ``fit`` starts (``pip install "pynn[lbfgs]"``).

    Parameters
    ----------
    tol : float
        SciPy's ``gtol``: stop when every gradient component is at most ``tol`` in size.
    max_fun : int
        Most loss-and-gradient evaluations (each a full forward and backward pass).
    history_size : int
        Correction pairs kept (SciPy's ``maxcor``).

    Examples
    --------
    >>> import pynn
    >>> opt = pynn.LBFGS(tol=1e-6)
    """

    def __init__(self, tol: float = 1e-5, max_fun: int = 15000, history_size: int = 10) -> None:
        super().__init__()
        from ._validate import check_int

        self.tol = check_float(tol, "tol", low=0)
        self.max_fun = check_int(max_fun, "max_fun")
        self.history_size = check_int(history_size, "history_size")

    def _refuse(self, *args: Any) -> None:
        raise TypeError("LBFGS is a full-batch optimizer with its own line search: train with "
                        "net.fit(X, Y, loss=..., optimizer=pynn.LBFGS(), epochs=max_iterations), not train_step")

    _bind = _apply = _refuse

    def step(self, net: Network) -> None:
        """Not available: L-BFGS runs whole iterations with a line search inside ``fit``.

        Examples
        --------
        >>> import pynn
        >>> net = pynn.Network.from_sizes([2, 1], output="linear")
        >>> pynn.LBFGS().step(net)
        Traceback (most recent call last):
        TypeError: LBFGS is a full-batch optimizer with its own line search: ...
        """
        self._refuse(net)

    def get_config(self) -> dict:
        return {"tol": self.tol, "max_fun": self.max_fun, "history_size": self.history_size}

    def _fit(self, net, X, Y, loss: str, epochs: int, val, cbs, history, progress, stop_flag) -> None:
        """Run ``epochs`` L-BFGS iterations on (X, Y), filling ``history`` and calling ``cbs``."""
        try:
            from scipy.optimize import minimize
        except ImportError as e:  # pragma: no cover - scipy is in the test extra
            raise ImportError('LBFGS needs SciPy: pip install "pynn[lbfgs]"') from e
        from .losses import CLASSIFICATION

        p, g = net._params, net._grads
        # SciPy's L-BFGS-B indexes its workspace of 2 m n + 5 n + 11 m² + 8 m floats with 32-bit
        # ints (scipy/scipy#5102): beyond 2**31 it crashes the process instead of raising
        m, size = self.history_size, p.size
        work = 2 * m * size + 5 * size + 11 * m * m + 8 * m
        if work >= 2**31:
            raise ValueError(f"history_size={m} is too large for a network of {size} parameters: SciPy's L-BFGS-B "
                             f"workspace (2 m n + 5 n + 11 m² + 8 m = {work} floats) must stay below 2**31")
        classify = loss in CLASSIFICATION
        n = X.shape[1]

        def loss_and_grad(x):
            p[...] = x
            J = net._loss_and_grads(X, Y, loss)
            return J, g.astype(np.float64)

        epoch = 0
        t0 = time.perf_counter()

        def after_iteration(intermediate_result):
            nonlocal epoch, t0
            p[...] = intermediate_result.x
            logs = net._evaluate(X, Y, loss, raw=False) if classify else {"loss": float(intermediate_result.fun)}
            if val is not None:
                for key, v in net._evaluate(val[0], val[1], loss).items():
                    logs[f"val_{key}"] = v
            seconds = time.perf_counter() - t0
            history.append(epoch, **logs, time=seconds)
            progress.epoch(epoch, logs, seconds, n)
            for cb in cbs:
                cb.on_epoch_end(net, epoch, logs)
            epoch += 1
            if net.stop_training or stop_flag[0]:
                if epoch < epochs:
                    history._stop("stop_training" if net.stop_training else "interrupted", epoch=epoch, batch=0)
                raise StopIteration
            if epoch < epochs:
                for cb in cbs:
                    cb.on_epoch_begin(net, epoch, {})
            t0 = time.perf_counter()

        for cb in cbs:
            cb.on_epoch_begin(net, 0, {})
        res = minimize(loss_and_grad, p.astype(np.float64), method="L-BFGS-B", jac=True, callback=after_iteration,
                       options={"maxiter": epochs, "maxfun": self.max_fun, "gtol": self.tol,
                                "maxcor": self.history_size})
        p[...] = res.x
        if epoch < epochs and history.stop_reason is None:
            history._stop("converged", epoch=epoch, batch=0, message=str(res.message))
