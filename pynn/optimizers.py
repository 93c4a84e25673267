"""Optimizers: small classes with one ``step`` each, calling the backend's update kernel once
over the network's flat parameter buffer."""

from __future__ import annotations

import itertools
import math
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .network import Network

from ._validate import check_float


_serial = itertools.count()


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
        arrays = [net._params] + [st[k] for k in ("v", "m") if k in st and st[k].size == net._params.size]
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
