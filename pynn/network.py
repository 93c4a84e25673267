"""Dense layers and the Network that stacks them.

The network owns one flat parameter buffer (and one flat gradient buffer); every layer's ``W``
and ``b`` are views into it, as llm.c's ``malloc_and_point_parameters`` does, so an optimizer
step is one kernel call. Batches are ``(features, examples)``; the per-batch workspaces
(activations, gradients) are F-ordered, allocated once per batch size and thread, and reused.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import _validate as V
from ._sparse import CHUNK_ELEMENTS, SparseRows, is_sparse
from ._threads import single_threaded
from .activations import BACKWARD_FROM_Z, HE_DEFAULT, OUTPUT_ONLY, activation_stem
from .backends import get_backend, resolve
from .health import HealthMonitor
from .losses import (CANONICAL, CLASSIFICATION, FROM_LOGITS, LOSSES, check_loss, example_losses, loss_delta,
                     loss_name, loss_params)
from .optimizers import LBFGS, Optimizer
from .scaler import Scaler
from .training import (Callback, Diverged, EarlyStopping, History, Progress, as_callbacks, correct_count,
                       correct_share, sigint_deferred)

_LOSS_CODE = {name: i for i, name in enumerate(LOSSES)}  # the compiled core's Loss enum
_log = logging.getLogger("pynn")


class _Stop(Exception):
    """Ends an epoch runner early: ``reason`` is "diverged" or "interrupted"; ``batch`` is the
    first batch of the epoch not applied; ``stats`` are the epoch's sums up to there."""

    def __init__(self, reason: str, batch: int, stats: tuple, loss: float | None = None) -> None:
        self.reason, self.batch, self.stats, self.loss = reason, batch, stats, loss


def _gather(A: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """out[..., j] = A[..., idx[j]]: columns (examples) of A into a buffer, without copying A.
    np.take along axis 1 of an F-ordered array would first copy all of it into C order, so
    F-ordered data (``X.T`` of row-major data) is gathered as rows of its C-ordered transpose;
    mode="clip" avoids take's buffering copy (the indices are valid)."""
    if isinstance(A, SparseRows):
        A.dense(idx, out)
    elif A.ndim == 2 and A.flags.f_contiguous and out.flags.f_contiguous:
        np.take(A.T, idx, axis=0, out=out.T, mode="clip")
    else:
        np.take(A, idx, axis=A.ndim - 1, out=out, mode="clip")


def _label_list(value: Any, name: str) -> list[Any]:
    """A sequence of class labels as a list of JSON scalars (str, int, finite float, bool)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of labels (str, int, float or bool), got {type(value).__name__}")
    labels = value.tolist() if isinstance(value, np.ndarray) else list(value)
    for i, v in enumerate(labels):
        if isinstance(v, np.generic):
            v = labels[i] = v.item()
        if not isinstance(v, (str, int, float, bool)) or (isinstance(v, float) and not math.isfinite(v)):
            raise TypeError(f"{name}[{i}] must be a str, int, finite float or bool, got {v!r}")
    return labels


def _loss_ok(loss: str, output_stem: str) -> bool:
    try:
        check_loss(loss, output_stem)
    except ValueError:
        return False
    return True


# scheme -> (variance of W given fan_in and fan_out, distribution): the formulas of
# torch.nn.init (xavier_* with gain 1, kaiming_* with the relu gain √2, kaiming_* with the linear
# gain 1 for LeCun) and of Keras' initializers, except that the *_normal schemes are plain normals
# as in torch (Keras truncates at two standard deviations and rescales).
INIT_VARIANCE = {
    "glorot": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),
    "he": lambda fan_in, fan_out: 2.0 / fan_in,
    "lecun": lambda fan_in, fan_out: 1.0 / fan_in,
}
INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "zeros")
_INIT_ALIASES = {"glorot": "glorot_uniform", "xavier": "glorot_uniform", "xavier_uniform": "glorot_uniform",
                 "xavier_normal": "glorot_normal", "he": "he_uniform", "kaiming": "he_uniform",
                 "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal", "lecun": "lecun_uniform"}


class Dense:
    """One fully connected layer: ``Z = W @ A_prev + b``, ``A = activation(Z)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths: ``W`` has shape ``(n_out, n_in)`` and ``b`` shape ``(n_out, 1)``.
    activation : str
        One of ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"elu"``
        (alpha 1), ``"gelu"`` (the exact erf form), ``"softplus"`` (beta 1, linear above 20),
        ``"exp"`` (for a poisson model's output), ``"linear"`` (alias ``"identity"``) or
        ``"softmax"`` (output layer only) — each as its ``torch.nn`` module with default arguments.
    init : None, str, (W, b) or callable
        ``None`` draws Glorot-uniform weights (He-uniform for relu, leaky_relu, elu, gelu and
        softplus layers) from the network's ``seed`` when the layer joins a Network. A name picks
        the scheme, with ``fan_in = n_in`` and ``fan_out = n_out``: ``"glorot_uniform"``/``"xavier_uniform"`` (U(±√(6/(fan_in +
        fan_out)))), ``"glorot_normal"``/``"xavier_normal"`` (N(0, 2/(fan_in + fan_out))),
        ``"he_uniform"``/``"kaiming_uniform"`` (U(±√(6/fan_in))), ``"he_normal"``/
        ``"kaiming_normal"`` (N(0, 2/fan_in)), ``"lecun_uniform"`` (U(±√(3/fan_in))),
        ``"lecun_normal"`` (N(0, 1/fan_in)) or ``"zeros"`` — torch.nn.init's formulas (Keras'
        for the names; its normals are truncated, these are not). A pair of arrays gives the
        weights; a callable ``init(shape, rng)`` returns ``W`` of ``shape = (n_out, n_in)``,
        drawn from ``rng``, a ``numpy.random.Generator`` seeded from the network's ``seed``.
        Biases start at zero, except with ``(W, b)``.
    dropout : float
        Inverted dropout on this layer's output in training (``train_step``, ``fit``): each
        activation is zeroed with probability ``dropout`` and the rest scaled by
        ``1 / (1 - dropout)``, as ``torch.nn.Dropout``; ``forward``, ``predict``, ``loss``,
        ``loss_and_grads`` and ``evaluate`` use no dropout. The masks are drawn from the
        network's ``seed`` (or ``fit``'s), the same on every backend. Not on the output layer.
    l1, l2 : float
        Weight penalties (>= 0) of this layer: the training objective becomes
        ``J + l1 Σ|W| + l2/2 Σ W²`` (biases are not penalised), so ``dW`` gains
        ``l1 sign(W) + l2 W``. ``loss``, ``loss_and_grads``, ``train_step``, ``fit`` and
        ``evaluate`` report the penalised ``J``. Both may be changed later (``layer.l2 = ...``).

    Notes
    -----
    ``W`` and ``b`` are writable NumPy arrays; assigning to them copies into the network's
    parameter buffer. Reading them before the layer joins a network draws the weights there and
    then (from fresh entropy), and the network keeps them.

    Examples
    --------
    >>> import pynn
    >>> layer = pynn.Dense(2, 3, "tanh")
    >>> layer.W.shape, layer.b.shape
    ((3, 2), (3, 1))
    """

    def __init__(self, n_in: int, n_out: int, activation: str = "sigmoid", init: Any = None,
                 dropout: float = 0.0, *, l1: float = 0.0, l2: float = 0.0) -> None:
        self.n_in = V.check_int(n_in, "n_in")
        self.n_out = V.check_int(n_out, "n_out")
        self.dropout = V.check_float(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        self._stem = activation_stem(activation)
        self.activation = activation
        self._W: np.ndarray | None = None
        self._b: np.ndarray | None = None
        self._net = None
        self._l1 = V.check_float(l1, "l1", low=0)
        self._l2 = V.check_float(l2, "l2", low=0)
        if init is None or isinstance(init, str):
            if isinstance(init, str):
                init = _INIT_ALIASES.get(init, init)
                if init not in INITS:
                    raise ValueError(f"init must be None, (W, b) or one of {list(INITS)}, got {init!r}")
            self.init = init
        elif isinstance(init, (tuple, list)) and len(init) == 2:
            self.init = "given"
            self._W = self._check_param(init[0], "W", "init[0]")
            self._b = self._check_param(init[1], "b", "init[1]")
        elif callable(init):
            self.init = init
        else:
            raise TypeError(f"init must be None, a scheme name, a pair of arrays (W, b) or a callable "
                            f"init(shape, rng), got {type(init).__name__}")

    # ---- parameters
    def _check_param(self, value: Any, which: str, name: str | None = None) -> np.ndarray:
        name = name or which
        shape = (self.n_out, self.n_in) if which == "W" else (self.n_out, 1)
        arr = V._numeric(value, name)
        if which == "b" and arr.shape == (self.n_out,):
            arr = arr.reshape(shape)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for a Dense({self.n_in}, {self.n_out}), got {arr.shape}")
        arr = np.array(arr, dtype=np.float64)
        V._check_finite(arr, name)
        return arr

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scheme = self.init or ("he_uniform" if self._stem in HE_DEFAULT else "glorot_uniform")
        n_in, n_out = self.n_in, self.n_out
        if callable(scheme):
            W = self._check_param(scheme((n_out, n_in), rng), "W", "the array returned by init(shape, rng)")
        elif scheme == "zeros":
            W = np.zeros((n_out, n_in))
        else:
            family, dist = scheme.split("_")
            var = INIT_VARIANCE[family](n_in, n_out)
            if dist == "uniform":
                lim = math.sqrt(3 * var)  # uniform on [-lim, lim] has variance lim²/3
                W = rng.uniform(-lim, lim, size=(n_out, n_in))
            else:
                W = rng.normal(0.0, math.sqrt(var), size=(n_out, n_in))
        return W, np.zeros((n_out, 1))

    def _materialize(self) -> None:
        if self._W is None:
            self._W, self._b = self._draw(np.random.default_rng())

    @property
    def W(self) -> np.ndarray:
        """Weights, shape ``(n_out, n_in)``; assigning copies into the network's parameters.

        Examples
        --------
        >>> import pynn
        >>> layer = pynn.Dense(2, 1)
        >>> layer.W = [[0.3, 0.7]]
        >>> layer.W
        array([[0.3, 0.7]])
        """
        self._materialize()
        return self._W

    @W.setter
    def W(self, value: Any) -> None:
        self._assign("W", value)

    @property
    def b(self) -> np.ndarray:
        """Biases, shape ``(n_out, 1)``; a 1-D ``(n_out,)`` value is taken as a column.

        Examples
        --------
        >>> import pynn
        >>> net = pynn.Network([pynn.Dense(2, 2)], seed=0)
        >>> net.layers[0].b = [0.3, 0.9]
        >>> net.layers[0].b
        array([[0.3],
               [0.9]], dtype=float32)
        """
        self._materialize()
        return self._b

    @b.setter
    def b(self, value: Any) -> None:
        self._assign("b", value)

    @property
    def l1(self) -> float:
        """L1 penalty on ``W``: the objective gains ``l1 Σ|W|``.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(2, 1, "linear", init=([[1.0, -2.0]], [[0.0]]), l1=0.5)], dtype="float64")
        >>> net.layers[0].l1, net.loss(np.zeros((2, 1)), np.zeros((1, 1)), "mse")  # 0.5 (|1| + |-2|)
        (0.5, 1.5)
        """
        return self._l1

    @l1.setter
    def l1(self, value: float) -> None:
        self._l1 = V.check_float(value, "l1", low=0)
        if self._net is not None:
            self._net._penalties_changed()

    @property
    def l2(self) -> float:
        """L2 penalty on ``W``: the objective gains ``l2/2 Σ W²``.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(2, 1, "linear", init=([[1.0, -2.0]], [[0.0]]))], dtype="float64")
        >>> net.layers[0].l2 = 0.1  # takes effect at once
        >>> net.loss(np.zeros((2, 1)), np.zeros((1, 1)), "mse")  # 0.1/2 (1² + 2²)
        0.25
        """
        return self._l2

    @l2.setter
    def l2(self, value: float) -> None:
        self._l2 = V.check_float(value, "l2", low=0)
        if self._net is not None:
            self._net._penalties_changed()

    def _assign(self, which: str, value: Any) -> None:
        """Validate, then copy into the parameter buffer: nothing is written unless all of it fits."""
        arr = self._check_param(value, which)
        self._materialize()
        dst = self._W if which == "W" else self._b
        dst[...] = V.cast(arr, dst.dtype, which)

    def _attach(self, net, W: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> None:
        src = (self._W, self._b) if self._W is not None else self._draw(rng)
        W[...], b[...] = src
        self._W, self._b, self._net = W, b, net

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout else ""
        extra += "".join(f", {k}={v!r}" for k, v in (("l1", self._l1), ("l2", self._l2)) if v)
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r}{extra})"


class _Workspace:
    """Buffers for one batch size: activations A[l] (h_l, d), the output logits, Z[l] for the
    hidden layers whose backward reads Z (``keep_z``), and two ping-pong buffers for the backward
    pass (layer l reads dA[l] and writes dA[l-1])."""

    def __init__(self, widths: Sequence[int], d: int, dtype: np.dtype, keep_z: Sequence[bool] = ()) -> None:
        self.d = d
        self.A = [np.empty((h, d), dtype, order="F") for h in widths]
        self.Z = [np.empty((h, d), dtype, order="F") if keep else None for h, keep in zip(widths[:-1], keep_z)]
        self._widths, self._dtype = widths, dtype
        self._grad: list[np.ndarray] | None = None
        self.Z_out = np.empty((widths[-1], d), dtype, order="F")  # output logits, kept for the loss
        self.onehot: np.ndarray | None = None
        self.cols = np.arange(d)
        self.M: dict[int, np.ndarray] = {}  # dropout: layer -> mask, and the masked output A ⊙ M
        self.D: dict[int, np.ndarray] = {}

    def dropout_buffers(self, l: int) -> tuple[np.ndarray, np.ndarray]:
        if l not in self.M:
            shape = (self._widths[l], self.d)
            self.M[l], self.D[l] = np.empty(shape, self._dtype, order="F"), np.empty(shape, self._dtype, order="F")
        return self.M[l], self.D[l]

    def grad(self) -> list[np.ndarray]:
        if self._grad is None:
            hmax, d = max(self._widths), self.d
            bufs = (np.empty(hmax * d, self._dtype), np.empty(hmax * d, self._dtype))
            self._grad = [bufs[l % 2][: h * d].reshape((h, d), order="F") for l, h in enumerate(self._widths)]
        return self._grad


def _logged(loss: str, validated: bool) -> set[str]:
    """The keys of fit's epoch logs: loss (and accuracy), and their val_ twins with validation."""
    logged = {"loss"} | ({"accuracy"} if loss in CLASSIFICATION else set())
    return logged | ({f"val_{k}" for k in logged} if validated else set())


def _check_monitors(cbs: Sequence[Any], logged: set[str]) -> None:
    """Refuse an EarlyStopping whose monitor the fit will not log (before anything trains)."""
    for cb in cbs:
        if isinstance(cb, EarlyStopping) and cb.monitor not in logged:
            raise ValueError(f"EarlyStopping monitors {cb.monitor!r}, which this fit does not log; it logs "
                             f"{sorted(logged)} (val_* needs validation_data or validation_fraction)")


class Network:
    """A stack of Dense layers: the seed's ``Z(l) = W(l) A(l-1) + b(l)``, ``A(l) = act(Z(l))``.

    Parameters
    ----------
    layers : sequence of Dense
        Consecutive layers must chain: ``layers[i].n_out == layers[i+1].n_in``.
    dtype : "float32" or "float64"
        Fixed per network; inputs of another dtype are cast once.
    backend : "auto", "cpp", "numba" or "numpy"
        Which kernels run the math; ``"auto"`` takes the fastest available. All agree with the
        NumPy reference to float tolerance.
    seed : int or None
        Seed for the initial weights: the same seed gives the same network.

    Attributes
    ----------
    layers : list of Dense
        The layers, input first.
    metadata : dict
        Free-form JSON data saved and loaded with the network (``pynn train`` keeps the feature
        names, class labels and standardisation there). Starts empty.
    scaler : pynn.Scaler or None
        The input standardisation that ``fit(..., standardize=True)`` measured (or one assigned
        by hand). While it is set, every method that takes inputs takes them **raw** and applies
        it: ``forward``/``predict``, ``predict_classes``, ``loss``, ``loss_and_grads``,
        ``train_step``, ``evaluate`` and ``fit``. Saved with the network.
    classes : list or None
        Class labels (str, int, float or bool), one per output unit (two for a single sigmoid
        output): ``classes[i]`` names class index ``i`` of ``predict_classes``. Saved with the
        network; pynn itself only stores them.
    feature_names : list of str or None
        One name per input feature. Saved with the network.
    history : pynn.History or None
        The History of the last ``fit`` (saved with the network).

    Examples
    --------
    >>> import numpy as np, pynn
    >>> net = pynn.Network([pynn.Dense(2, 2, "sigmoid"), pynn.Dense(2, 1, "sigmoid")], seed=0)
    >>> net.predict(np.array([[0.5], [0.2]])).shape
    (1, 1)
    """

    def __init__(self, layers: Iterable[Dense], *, dtype: Any = "float32", backend: str = "auto",
                 seed: int | None = None) -> None:
        if isinstance(layers, Dense):
            layers = [layers]
        else:
            try:
                layers = list(layers)
            except TypeError:
                raise TypeError(f"layers must be a sequence of pynn.Dense layers, got {type(layers).__name__}") from None
        if not layers:
            raise ValueError("layers must hold at least one Dense layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a pynn.Dense, got {type(layer).__name__}")
            if layer._net is not None:
                raise ValueError(f"layers[{i}] already belongs to a Network; create a new Dense for each network")
            if layer.dropout and i == len(layers) - 1:
                raise ValueError(f"layers[{i}] is the output layer and cannot have dropout (got dropout="
                                 f"{layer.dropout}); put it on the hidden layers")
            if layer._stem in OUTPUT_ONLY and i != len(layers) - 1:
                raise ValueError(f"layers[{i}] has activation {layer.activation!r}, which is allowed only in the "
                                 f"output layer (the last of {len(layers)})")
        for i in range(len(layers) - 1):
            if layers[i].n_out != layers[i + 1].n_in:
                raise ValueError(f"layer sizes must chain: layers[{i}] has n_out={layers[i].n_out} but "
                                 f"layers[{i + 1}] has n_in={layers[i + 1].n_in}")
        if len(set(map(id, layers))) != len(layers):
            raise ValueError("layers must not repeat a Dense instance")
        self.dtype = V.check_dtype(dtype)
        for i, layer in enumerate(layers):  # weights given before joining must fit the dtype
            if layer._W is not None:
                V.cast(layer._W, self.dtype, f"layers[{i}].W")
                V.cast(layer._b, self.dtype, f"layers[{i}].b")
        self.backend = resolve(backend)
        self._k = get_backend(self.backend)
        if seed is not None:
            seed = V.check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.stop_training = False
        self.metadata: dict[str, Any] = {}
        self.history: History | None = None
        self._scaler: Scaler | None = None
        self._classes: list[Any] | None = None
        self._feature_names: list[str] | None = None

        sizes = [(l.n_out, l.n_in) for l in layers]
        total = sum(h * n + h for h, n in sizes)
        self._params = np.empty(total, self.dtype)
        self._grads = np.zeros(total, self.dtype)
        self._dW, self._db = [], []
        rng = np.random.default_rng(seed)
        o = 0
        for layer, (h, n) in zip(layers, sizes):
            W = self._params[o:o + h * n].reshape(h, n)
            self._dW.append(self._grads[o:o + h * n].reshape(h, n))
            o += h * n
            b = self._params[o:o + h].reshape(h, 1)
            self._db.append(self._grads[o:o + h].reshape(h, 1))
            o += h
            layer._attach(self, W, b, rng)
        self.layers: list[Dense] = layers
        self._widths = [l.n_out for l in layers]
        self._stems = [l._stem for l in layers]
        self._tls = threading.local()  # per-thread workspaces: concurrent predicts don't share buffers
        self._penalised: list[tuple[int, float, float]] = []
        self._rates = [l.dropout for l in layers]
        self._dropout = any(self._rates)
        self._drop_step = np.zeros(1, np.int64)  # training steps taken: the masks' counter
        self._drop_seed = (seed if seed is not None else int(np.random.SeedSequence().entropy)) & (2**63 - 1)
        self._make_model()

    def _make_model(self) -> None:
        """The compiled backend (and the numba backend, for small networks) also gets a fused
        model over the same parameter buffer: whole steps and epochs in one call (see
        csrc/model.hpp and backends/numba_fused.py)."""
        self._model, self._opt_key = None, None
        if self.backend == "cpp":
            cls = self._k.Model32 if self.dtype == np.float32 else self._k.Model64
            self._model = cls(self._params, self._grads, self.sizes, self._stems)
            self._InvalidInput = self._k.InvalidInput
        elif self.backend == "numba":
            from .backends import numba_fused

            if self._params.size <= numba_fused.MAX_PARAMS:  # small: one jitted call per step
                self._model = numba_fused.Model(self._params, self._grads, self.sizes, self._stems)
                self._InvalidInput = numba_fused.InvalidInput
        if self._model is not None and self._dropout:
            self._model.set_dropout(self._rates, self._drop_seed, self._drop_step)
        self._penalties_changed()

    def _penalties_changed(self) -> None:
        """The layers' (l1, l2) changed: note which layers are penalised, tell the fused model."""
        self._penalised = [(l, layer.l1, layer.l2) for l, layer in enumerate(self.layers) if layer.l1 or layer.l2]
        if self._model is not None:
            self._model.set_penalties([layer.l1 for layer in self.layers], [layer.l2 for layer in self.layers])

    def _penalty_scratch(self) -> np.ndarray:
        s = getattr(self._tls, "pen", None)
        if s is None:  # one buffer the size of the largest W per thread, allocated once
            s = self._tls.pen = np.empty(max(l.n_in * l.n_out for l in self.layers), self.dtype)
        return s

    def _penalty(self) -> float:
        """Σ_l l1 Σ|W| + l2/2 Σ W² over the penalised layers (sums in float64)."""
        J = 0.0
        for l, l1, l2 in self._penalised:
            W = self.layers[l]._W.reshape(-1)
            s = self._penalty_scratch()[: W.size]
            J += l1 * float(np.abs(W, out=s).sum(dtype=np.float64))
            J += 0.5 * l2 * float(np.square(W, out=s).sum(dtype=np.float64))
        return J

    def _penalty_backward(self) -> None:
        """dW += l1 sign(W) + l2 W for the penalised layers."""
        for l, l1, l2 in self._penalised:
            W, dW = self.layers[l]._W.reshape(-1), self._dW[l].reshape(-1)
            s = self._penalty_scratch()[: W.size]
            dW += np.multiply(np.sign(W, out=s), l1, out=s)
            dW += np.multiply(W, l2, out=s)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_sizes(cls, sizes: Sequence[int], hidden: str = "relu", output: str = "softmax", *, l1: float = 0.0,
                   l2: float = 0.0, **kw: Any) -> "Network":
        """Shorthand: ``Network.from_sizes([784, 256, 10])`` is a 784-256-10 network with ``hidden``
        activations in the hidden layers and ``output`` in the last; ``l1`` and ``l2`` are every
        layer's weight penalties (see :class:`Dense`); ``**kw`` goes to Network.

        Examples
        --------
        >>> import pynn
        >>> pynn.Network.from_sizes([4, 8, 3], seed=0).sizes
        [4, 8, 3]
        """
        try:
            sizes = list(sizes)
        except TypeError:
            raise TypeError(f"sizes must be a sequence of ints, got {type(sizes).__name__}") from None
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, got {sizes}")
        sizes = [V.check_int(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        activation_stem(hidden, argument="hidden")
        activation_stem(output, argument="output")
        layers = [Dense(sizes[i], sizes[i + 1], hidden if i < len(sizes) - 2 else output, l1=l1, l2=l2)
                  for i in range(len(sizes) - 1)]
        return cls(layers, **kw)

    @property
    def sizes(self) -> list[int]:
        """Widths from input to output, e.g. ``[784, 256, 10]``.

        Examples
        --------
        >>> import pynn
        >>> pynn.Network([pynn.Dense(2, 3), pynn.Dense(3, 1)], seed=0).sizes
        [2, 3, 1]
        """
        return [self.layers[0].n_in, *self._widths]

    @property
    def n_params(self) -> int:
        """The number of weights and biases.

        Examples
        --------
        >>> import pynn
        >>> pynn.Network.from_sizes([2, 3, 1], seed=0).n_params  # (2*3 + 3) + (3*1 + 1)
        13
        """
        return self._params.size

    @property
    def scaler(self) -> Scaler | None:
        """The input scaler (``None``: inputs are used as given); see :meth:`fit`'s ``standardize``.

        Assigning a :class:`pynn.Scaler` with one value per input feature makes every method
        that takes inputs apply it; ``None`` removes it.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(1, 1, "linear", init=([[1.0]], [[0.0]]))], dtype="float64")
        >>> net.scaler = pynn.Scaler([10.0], [2.0])
        >>> net.predict(np.array([[10.0, 14.0]]))  # (x - 10) / 2, then the layer
        array([[0., 2.]])
        """
        return self._scaler

    @scaler.setter
    def scaler(self, value: Scaler | None) -> None:
        if value is not None and not isinstance(value, Scaler):
            raise TypeError(f"scaler must be a pynn.Scaler or None, got {type(value).__name__}")
        if value is not None and value.n_features != self.layers[0].n_in:
            raise ValueError(f"scaler must have one value per input feature ({self.layers[0].n_in}), got "
                             f"{value.n_features}")
        self._scaler = value

    @property
    def classes(self) -> list[Any] | None:
        """Class labels, one per output unit (two for a single sigmoid output), or ``None``.

        Any sequence of distinct str, int, float or bool labels (a NumPy array too) is stored
        as a list; ``classes[i]`` is the label of class index ``i``.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network.from_sizes([2, 3], seed=0)
        >>> net.classes = np.array(["cat", "dog", "emu"])
        >>> net.classes[int(net.predict_classes(np.zeros((2, 1)))[0])] in net.classes
        True
        """
        return None if self._classes is None else list(self._classes)

    @classes.setter
    def classes(self, value: Any) -> None:
        if value is None:
            self._classes = None
            return
        labels = _label_list(value, "classes")
        m = self._widths[-1]
        want = 2 if m == 1 else m
        if len(labels) != want:
            raise ValueError(f"classes must name {want} classes (the network has {m} output"
                             f"{'s' if m > 1 else ''}), got {len(labels)}")
        if len(set(map(repr, labels))) != len(labels):
            raise ValueError(f"classes must be distinct, got {labels!r}")
        self._classes = labels

    @property
    def feature_names(self) -> list[str] | None:
        """Names of the input features (one str per input), or ``None``.

        Examples
        --------
        >>> import pynn
        >>> net = pynn.Network.from_sizes([2, 1], output="sigmoid", seed=0)
        >>> net.feature_names = ["height", "weight"]
        >>> net.feature_names
        ['height', 'weight']
        """
        return None if self._feature_names is None else list(self._feature_names)

    @feature_names.setter
    def feature_names(self, value: Any) -> None:
        if value is None:
            self._feature_names = None
            return
        if isinstance(value, str) or not isinstance(value, (list, tuple, np.ndarray)):
            raise TypeError(f"feature_names must be a list of str, got {type(value).__name__}")
        names = value.tolist() if isinstance(value, np.ndarray) else list(value)
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise TypeError(f"feature_names[{i}] must be a str, got {type(name).__name__}")
        if len(names) != self.layers[0].n_in:
            raise ValueError(f"feature_names must name the {self.layers[0].n_in} input features, got {len(names)}")
        self._feature_names = names

    def __repr__(self) -> str:
        acts = ", ".join(l.activation for l in self.layers)
        return f"Network(sizes={self.sizes}, activations=[{acts}], dtype={self.dtype.name!r}, backend={self.backend!r})"

    def _workspace(self, d: int) -> _Workspace:
        cache = getattr(self._tls, "ws", None)
        if cache is None:
            cache = self._tls.ws = {}
        ws = cache.get(d)
        if ws is None:
            if len(cache) >= 4:  # keep the training batch size and a few others, not every size ever seen
                cache.pop(next(iter(cache)))
            ws = cache[d] = _Workspace(self._widths, d, self.dtype, [s in BACKWARD_FROM_Z for s in self._stems])
        return ws

    # ------------------------------------------------------------------ forward
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray | SparseRows:
        if is_sparse(X):
            return SparseRows.checked(X, self.layers[0].n_in, self.dtype, name)
        return V.as_batch(X, self.layers[0].n_in, self.dtype, name)

    def _with_backend(self, backend: str) -> "Network":
        """Switch to another backend in place (weights and workspaces are backend-neutral)."""
        self.backend = resolve(backend)
        self._k = get_backend(self.backend)
        self._make_model()
        return self

    def _forward(self, X: np.ndarray, out: np.ndarray, ws: _Workspace) -> np.ndarray:
        k, A = self._k, X
        last = len(self.layers) - 1
        for l, layer in enumerate(self.layers):
            Al = out if l == last else ws.A[l]
            k.layer_forward(layer._W, A, layer._b, self._stems[l], Al, Al)
            A = Al
        return out

    def forward(self, X: Any, *, out: np.ndarray | None = None) -> np.ndarray:
        """The network's outputs ``Yhat``, shape ``(m, n_examples)``, for inputs ``X`` of shape
        ``(n_features, n_examples)``. Keeps no training state.

        ``out``, if given, is a writable ``(m, n_examples)`` array of the network's dtype that
        receives the result (so repeated calls allocate nothing). ``predict`` is the same method.
        With a :attr:`scaler` ``X`` is raw input, standardised here a chunk at a time (into one
        reused buffer, never a copy of ``X``); so are the inputs of every other method.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network.from_sizes([3, 4, 2], seed=1)
        >>> net.predict(np.zeros((3, 5))).sum(axis=0)  # softmax columns sum to 1
        array([1., 1., 1., 1., 1.], dtype=float32)
        """
        model = self._model
        if model is not None and out is None and type(X) is np.ndarray and X.dtype is self.dtype and X.ndim == 2 \
                and self._scaler is None:
            # fast path: the core checks shape, layout and finiteness itself (positional
            # arguments to np.empty: keywords cost more than the whole 2-2-1 forward)
            out = np.empty((self._widths[-1], X.shape[1]), self.dtype, "F")
            try:
                model.forward(X, out)
                return out
            except self._InvalidInput:
                out = None  # something unusual: full validation below says what, or copes
        X = self._check_X(X)
        shape = (self._widths[-1], X.shape[1])
        if out is None:
            out = np.empty(shape, self.dtype, order="F")
        elif not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != self.dtype \
                or not out.flags.writeable or not V._blas_ok(out):
            raise ValueError(f"out must be a writable {self.dtype.name} array of shape {shape} with one unit "
                             f"stride, got {getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        elif out.size and np.may_share_memory(out, X):  # the layers would read what they overwrite
            raise ValueError("out must not overlap X")
        if X.shape[1] == 0:
            return out
        if isinstance(X, SparseRows) or self._scaler is not None:  # chunk by chunk into one reused buffer
            for s, e, Xc in self._chunks(X):
                self._forward_dense(Xc, out[:, s:e])
            return out
        return self._forward_dense(X, out)

    def _chunks(self, X: np.ndarray | SparseRows, scale: bool = True):
        """``(start, stop, chunk)`` over the examples of a checked X, each chunk dense and in the
        network's input space (densified, and standardised by the scaler when ``scale``), written
        into one reused buffer: O(chunk) memory, never a copy of X. Without a scaler a dense X is
        one chunk, itself."""
        scaler = self._scaler if scale else None
        n_features, n = X.shape
        size = max(1, min(n, CHUNK_ELEMENTS // max(n_features, 1)))
        tmp = None
        if scaler is not None and self.dtype != np.float64:  # the float64 arithmetic's scratch
            tmp = np.empty((n_features, size), np.float64, order="F")
        if isinstance(X, SparseRows):
            for s, e, Xc in X.chunks(self.dtype):
                yield s, e, Xc if scaler is None else scaler._apply(Xc, Xc, None if tmp is None else tmp[:, : e - s])
            return
        if scaler is None:
            yield 0, n, X
            return
        buf = np.empty((n_features, size), self.dtype, order="F")
        for s in range(0, n, size):
            e = min(n, s + size)
            yield s, e, scaler._apply(X[:, s:e], buf[:, : e - s], None if tmp is None else tmp[:, : e - s])

    def _scaled_batch(self, X: np.ndarray) -> np.ndarray:
        """A dense checked batch in the input space: X itself without a scaler, else a scaled
        copy (one batch, O(batch)) that the caller keeps."""
        if self._scaler is None:
            return X
        return self._scaler._apply(X, np.empty(X.shape, self.dtype, order="F"))

    def _step_batch(self, X: np.ndarray | SparseRows) -> np.ndarray:
        """The checked batch of one train_step or loss_and_grads in the input space: a dense X
        without a scaler as it is; else densified (sparse) and standardised (scaler) in one pass
        into this thread's scratch for batches of X's shape, used within the call and kept by
        nobody, so a loop of steps allocates nothing."""
        scaler, sparse = self._scaler, isinstance(X, SparseRows)
        if scaler is None and not sparse:
            return X
        bufs = getattr(self._tls, "step_batch", None)
        if bufs is None or bufs[0].shape != X.shape:
            f64 = self.dtype == np.float64  # float32: the scaler's float64 arithmetic's scratch too
            bufs = self._tls.step_batch = (np.empty(X.shape, self.dtype, order="F"),
                                           None if f64 else np.empty(X.shape, np.float64, order="F"))
        if sparse:
            X = X.dense(slice(None), bufs[0])
        return X if scaler is None else scaler._apply(X, *bufs)

    def _forward_dense(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self._model is not None:
            self._model.forward(X, out)
            return out
        return self._forward(X, out, self._workspace(X.shape[1]))

    predict = forward  # the same function: one call less on the hot path of inference

    def predict_classes(self, X: Any) -> np.ndarray:
        """The class of each example, shape ``(n_examples,)``: the argmax of the outputs, or for a
        single output unit ``Yhat > 0.5``.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(2, 2, "softmax", init=([[1, 0], [0, 1]], [0, 0]))])
        >>> net.predict_classes(np.array([[3, 0, 1], [0, 2, 5]]))
        array([0, 1, 1])
        """
        Yhat = self.forward(X)
        if Yhat.shape[0] == 1:
            return (Yhat[0] > 0.5).astype(np.intp)
        return Yhat.argmax(axis=0)

    # ------------------------------------------------------------------ loss and gradients
    def _check_loss(self, loss: Any) -> str:
        return check_loss(loss, self._stems[-1])

    def _check_targets(self, Y: Any, loss: str, d: int, name: str = "Y") -> np.ndarray:
        return V.as_targets(Y, loss, self._widths[-1], d, self.dtype, name, softmax=self._stems[-1] == "softmax")

    def _dense_targets(self, Y: np.ndarray, ws: _Workspace) -> np.ndarray:
        """Class indices become a one-hot (m, d) array in the workspace; others pass through."""
        if Y.ndim == 2:
            return Y
        if ws.onehot is None:
            ws.onehot = np.zeros((self._widths[-1], ws.d), self.dtype, order="F")
        else:
            ws.onehot.fill(0)
        ws.onehot[Y, ws.cols] = 1
        return ws.onehot

    def _loss_value(self, ws: _Workspace, Y: np.ndarray, loss: str, Z_out: np.ndarray | None) -> float:
        k, stem = self._k, self._stems[-1]
        if Z_out is not None and (stem, loss) in FROM_LOGITS:
            return getattr(k, FROM_LOGITS[stem, loss])(Z_out, Y)
        return getattr(k, f"{loss_name(loss)}_forward")(ws.A[-1], Y, *loss_params(loss))

    def _dropped(self, l: int, train: bool) -> bool:
        return train and self._rates[l] > 0

    def _forward_train(self, X: np.ndarray, ws: _Workspace, train: bool = False) -> None:
        """Forward keeping what the backward needs: every A, and the output logits Z(L). In a
        training step (``train``) a dropout layer's successor reads D = A ⊙ M, M drawn for this
        step; A itself is kept for act'(A)."""
        k, A = self._k, X
        last = len(self.layers) - 1
        for l, layer in enumerate(self.layers):
            Al = ws.A[l]
            Zl = ws.Z_out if l == last else (ws.Z[l] if ws.Z[l] is not None else Al)  # Z kept where it is read
            k.layer_forward(layer._W, A, layer._b, self._stems[l], Zl, Al)
            A = Al
            if self._dropped(l, train):
                M, D = ws.dropout_buffers(l)
                k.dropout_mask(self._drop_seed, int(self._drop_step[0]), l, self._rates[l], M)
                A = np.multiply(Al, M, out=D)

    def _backward(self, X: np.ndarray, Y: np.ndarray, loss: str, ws: _Workspace,
                  scale: np.ndarray | None = None, train: bool = False) -> None:
        """Fill the gradient buffer: dZ(L) from the loss, then the seed's recursion downwards.
        ``scale`` (d,) multiplies each example's output gradient: sample weights as s_i d / Σ s.
        ``train``: back through the dropout masks of the forward (dA ⊙ M)."""
        k, dA, L = self._k, ws.grad(), len(self.layers)

        def A_in(l):  # what layer l read: X, A(l-1), or A(l-1) ⊙ M(l-1) in a training step
            return X if l == 0 else ws.D[l - 1] if self._dropped(l - 1, train) else ws.A[l - 1]

        stem, Yhat = self._stems[-1], ws.A[-1]
        if (stem, loss) in CANONICAL:  # dZ(L) = (Yhat - Y) / d, then straight into the dense backward
            k.output_backward(Yhat, Y, dA[-1])
            if scale is not None:
                dA[-1] *= scale
            k.dense_backward(dA[-1], A_in(L - 1), self.layers[-1]._W, self._dW[-1], self._db[-1],
                             dA[-2] if L > 1 else None)
            top = L - 2
        else:  # general chain rule: dJ/dYhat, then through the output activation
            getattr(k, f"{loss_name(loss)}_backward")(Yhat, Y, dA[-1], *loss_params(loss))
            if scale is not None:
                dA[-1] *= scale
            top = L - 1
        for l in range(top, -1, -1):
            if self._dropped(l, train):
                dA[l] *= ws.M[l]
            Al = ws.A[l] if self._stems[l] not in BACKWARD_FROM_Z else ws.Z_out if l == L - 1 else ws.Z[l]
            k.layer_backward(dA[l], Al, self._stems[l], self.layers[l]._W, A_in(l), dA[l], self._dW[l],
                             self._db[l], dA[l - 1] if l > 0 else None)

    def _weighted_loss(self, ws: _Workspace, Y: np.ndarray, loss: str, s: np.ndarray) -> float:
        """J = Σ s_i L_i / Σ s_i after a forward pass."""
        L = example_losses(self._k, loss, self._stems[-1], ws.Z_out, ws.A[-1], Y)
        return float(np.dot(s, L) / s.sum())

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray, loss: str, s: np.ndarray | None = None,
                        train: bool = False) -> float:
        """Forward, loss and backward on validated inputs; gradients land in self._grads.
        ``s``: validated sample weights (float64, (d,)) or None; ``train``: with dropout, the
        masks of training step ``_drop_step[0]``."""
        train = train and self._dropout
        if self._model is not None and not train:
            return self._model.loss(X, Y, _LOSS_CODE[loss_name(loss)], True, s, loss_delta(loss))
        ws = self._workspace(X.shape[1])
        Yd = self._dense_targets(Y, ws)
        self._forward_train(X, ws, train)
        if s is None:
            J = self._loss_value(ws, Yd, loss, ws.Z_out)
            self._backward(X, Yd, loss, ws, None, train)
        else:
            J = self._weighted_loss(ws, Yd, loss, s)
            self._backward(X, Yd, loss, ws, (s * (X.shape[1] / s.sum())).astype(self.dtype), train)
        if self._penalised:
            J += self._penalty()
            self._penalty_backward()
        return J

    def _validated(self, X: Any, Y: Any, loss: Any, names: tuple[str, str] = ("X", "Y")
                   ) -> tuple[np.ndarray, np.ndarray, str]:
        loss = self._check_loss(loss)
        X = self._check_X(X, names[0])
        if X.shape[1] == 0:
            raise ValueError(f"{names[0]} must hold at least one example (column), got shape {X.shape}")
        Y = self._check_targets(Y, loss, X.shape[1], names[1])
        return X, Y, loss

    @staticmethod
    def _weights(sample_weight: Any, X: np.ndarray, name: str = "sample_weight") -> np.ndarray | None:
        return None if sample_weight is None else V.sample_weights(sample_weight, X.shape[1], name)

    def loss(self, X: Any, Y: Any, loss: str, *, sample_weight: Any = None) -> float:
        """The mean loss ``J = (1/d) Σ_i L(yhat_i, y_i)`` over the examples (columns) of ``X``, plus
        the layers' weight penalties when they have any (see :class:`Dense`).

        ``loss`` is ``"mse"`` (``L = 1/2 Σ_k (yhat_k - y_k)²``), ``"bce"`` or ``"cross_entropy"``
        (``Y`` one-hot ``(m, d)`` or class indices ``(d,)``), ``"mae"`` (``L = Σ_k |yhat_k - y_k|``),
        ``"huber"`` or ``pynn.losses.Huber(delta)`` (``torch.nn.HuberLoss``, delta 1 by default),
        or ``"poisson"`` (``L = Σ_k yhat_k - y_k log yhat_k``, counts ``Y >= 0``; with an ``"exp"``
        output it is computed from the log-rate ``Z`` as ``exp(z) - y z``). With ``sample_weight`` (shape
        ``(d,)``, non-negative, finite, not all zero) it is the weighted mean
        ``Σ_i s_i L_i / Σ_i s_i``; integer weights count an example that many times.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(1, 1, "linear", init=([[2.0]], [[0.0]]))], dtype="float64")
        >>> net.loss(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), "mse")  # (1/2)(1² + 3²) / 2
        2.5
        """
        X, Y, loss = self._validated(X, Y, loss)
        return self._loss_from_checked(X, Y, loss, self._weights(sample_weight, X))

    def _loss_from_checked(self, X: np.ndarray, Y: np.ndarray, loss: str, s: np.ndarray | None = None,
                           raw: bool = True) -> float:
        """J on checked inputs; ``raw``: X is raw input (the scaler applies), else in the input space."""
        if isinstance(X, SparseRows) or (raw and self._scaler is not None):
            return self._evaluate_chunks(X, Y, loss, s, raw)["loss"]
        ws = self._workspace(X.shape[1])
        Yd = self._dense_targets(Y, ws)
        self._forward_train(X, ws)
        J = self._loss_value(ws, Yd, loss, ws.Z_out) if s is None else self._weighted_loss(ws, Yd, loss, s)
        return J + self._penalty() if self._penalised else J

    def loss_and_grads(self, X: Any, Y: Any, loss: str, *, sample_weight: Any = None
                       ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        """``(J, grads)`` with ``grads[l] == (dW, db)``, the gradients of ``J`` with respect to
        ``layers[l].W`` and ``layers[l].b`` (same shapes). The arrays are the caller's to keep.
        ``sample_weight`` makes ``J`` the weighted mean, as in :meth:`loss`.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(1, 1, "linear", init=([[2.0]], [[0.0]]))], dtype="float64")
        >>> J, [(dW, db)] = net.loss_and_grads(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), "mse")
        >>> dW, db  # dJ/dZ = (Yhat - Y) / d = [0.5, 1.5]; dW = dJ/dZ Xᵀ, db = Σ dJ/dZ
        (array([[3.5]]), array([[2.]]))
        """
        X, Y, loss = self._validated(X, Y, loss)
        s = self._weights(sample_weight, X)
        J = self._loss_and_grads(self._step_batch(X), Y, loss, s)
        return J, [(dW.copy(), db.copy()) for dW, db in zip(self._dW, self._db)]

    def train_step(self, X: Any, Y: Any, loss: str, optimizer: Optimizer, *, sample_weight: Any = None) -> float:
        """One update on one batch; returns ``J`` before the update.

        With ``SGD(lr)`` this is the seed's ``W <- W - lr dJ/dW``, ``b <- b - lr dJ/db``. If
        anything is wrong with the arguments, or the loss is not finite, nothing is changed.
        ``sample_weight`` (shape ``(d,)``) makes ``J`` the weighted mean, as in :meth:`loss`.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(1, 1, "linear", init=([[2.0]], [[0.0]]))], dtype="float64")
        >>> net.train_step(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), "mse", pynn.SGD(0.1))
        2.5
        >>> net.layers[0].W  # 2 - 0.1 * 3.5
        array([[1.65]])
        """
        model = self._model
        if model is not None and sample_weight is None and type(X) is np.ndarray and type(Y) is np.ndarray and X.dtype is self.dtype \
                and type(loss) is str and loss in self._fused_losses and isinstance(optimizer, Optimizer) \
                and self._scaler is None:
            # fast path: the core checks shapes and values itself and leaves everything
            # untouched when they are not ones it takes as they are
            self._bind_optimizer(optimizer)
            try:
                J, applied = model.train_step(X, Y, _LOSS_CODE[loss])
            except self._InvalidInput:
                pass  # full validation below says what is wrong, or takes the general path
            else:
                if not applied:
                    self._diverged(J)
                return J
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pynn optimizer such as pynn.SGD(lr), got {type(optimizer).__name__}")
        X, Y, loss = self._validated(X, Y, loss)
        s = self._weights(sample_weight, X)
        return self._step(self._step_batch(X), Y, loss, optimizer, s)

    @property
    def _fused_losses(self) -> frozenset:
        fl = self.__dict__.get("_fused_losses_cache")
        if fl is None:
            fl = self.__dict__["_fused_losses_cache"] = frozenset(
                l for l in _LOSS_CODE if _loss_ok(l, self._stems[-1]))
        return fl

    def _bind_optimizer(self, optimizer: Optimizer) -> None:
        st = optimizer.state(self)
        key = (st["serial"], optimizer._version)
        if key != self._opt_key:
            optimizer._bind(self, self._model)
            self._opt_key = key

    @staticmethod
    def _divergence_message(J: float) -> str:
        what = "loss is" if not math.isfinite(J) else "gradient or the updated weights are"
        return f"the {what} not finite (J = {J}); the weights were left unchanged (try a smaller learning rate)"

    @classmethod
    def _diverged(cls, J: float) -> None:
        raise Diverged(cls._divergence_message(J))

    def _try_step(self, X: np.ndarray, Y: np.ndarray, loss: str, optimizer: Optimizer,
                  s: np.ndarray | None = None) -> tuple[float, bool]:
        """(J, whether the update was applied): a step whose loss, gradient or updated weights
        would not be finite changes nothing."""
        if self._model is not None:
            self._bind_optimizer(optimizer)
            return self._model.train_step(X, Y, _LOSS_CODE[loss_name(loss)], s, loss_delta(loss))
        J = self._loss_and_grads(X, Y, loss, s, train=True)
        if self._dropout:
            self._drop_step[0] += 1  # the next step draws new masks
        g = self._grads
        ok = math.isfinite(J) and math.isfinite(g.min()) and math.isfinite(g.max()) and optimizer._apply(self)
        return J, ok

    def _step(self, X: np.ndarray, Y: np.ndarray, loss: str, optimizer: Optimizer,
              s: np.ndarray | None = None) -> float:
        J, applied = self._try_step(X, Y, loss, optimizer, s)
        if not applied:
            self._diverged(J)
        return J

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, X: np.ndarray, Y: np.ndarray, loss: str, s: np.ndarray | None = None,
                  raw: bool = True) -> dict[str, float]:
        """Scores on checked inputs; ``raw``: X is raw input (the scaler applies), else in the
        network's input space."""
        if isinstance(X, SparseRows) or (raw and self._scaler is not None):
            return self._evaluate_chunks(X, Y, loss, s, raw)
        out = {"loss": self._loss_from_checked(X, Y, loss, s, raw=False)}
        if loss in CLASSIFICATION:
            Yhat = self._workspace(X.shape[1]).A[-1]
            if s is None:
                right, total = correct_count(Yhat, Y, loss)
                out["accuracy"] = right / total
            else:  # the weighted share of examples right (sklearn's accuracy_score(sample_weight=))
                out["accuracy"] = float(np.dot(s, correct_share(Yhat, Y, loss)) / s.sum())
        return out

    def _evaluate_chunks(self, X: np.ndarray | SparseRows, Y: np.ndarray, loss: str, s: np.ndarray | None = None,
                         raw: bool = True) -> dict[str, float]:
        """Loss (and accuracy) chunk by chunk (sparse rows densified, raw inputs standardised),
        each chunk's figures weighted by its size (or by its share of the sample weights)."""
        sums: dict[str, float] = {}
        total = 0.0
        for a, b, Xc in self._chunks(X, scale=raw):
            sc = None if s is None else s[a:b]
            w = float(b - a) if sc is None else float(sc.sum())
            if w == 0:
                continue
            for key, v in self._evaluate(Xc, Y[..., a:b], loss, sc, raw=False).items():
                sums[key] = sums.get(key, 0.0) + v * w
            total += w
        return {key: v / total for key, v in sums.items()}

    def evaluate(self, X: Any, Y: Any, loss: str, *, sample_weight: Any = None) -> dict[str, float]:
        """``{"loss": J}``, plus ``"accuracy"`` for the classification losses (bce, cross_entropy).
        With ``sample_weight`` both are weighted means over the examples. ``X`` is raw input:
        a network with a :attr:`scaler` standardises it (chunk by chunk) as :meth:`forward` does.

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network([pynn.Dense(2, 2, "softmax", init=([[1, 0], [0, 1]], [0, 0]))])
        >>> scores = net.evaluate(np.array([[3, 0, 1], [0, 2, 5]]), np.array([0, 1, 0]), "cross_entropy")
        >>> round(scores["accuracy"], 3)
        0.667
        """
        X, Y, loss = self._validated(X, Y, loss)
        return self._evaluate(X, Y, loss, self._weights(sample_weight, X))

    # ------------------------------------------------------------------ training
    def fit(self, X: Any, Y: Any, *, loss: str, optimizer: Optimizer, epochs: int = 1, batch_size: int | None = 32,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
            callbacks: Any = (), verbose: int = 0, health: bool | None = None, deterministic: bool = False,
            sample_weight: Any = None, class_weight: Any = None, validation_fraction: float | None = None,
            comm: Any = None, standardize: bool = False) -> History:
        """Mini-batch training; returns a :class:`History` of per-epoch ``loss`` (the mean of the
        batch losses, each taken before its update), ``accuracy`` for classification, and
        ``val_loss``/``val_accuracy`` when ``validation_data=(X_val, Y_val)`` is given.

        The data is validated and cast once; each epoch visits the examples in an order shuffled
        from ``seed`` (the same seed gives the same training) and gathers each batch into a
        reused buffer, so ``X`` is never copied whole; ``seed`` also restarts the dropout masks'
        stream (see :class:`Dense`). ``verbose=1`` shows a progress bar,
        ``verbose=2`` one line per epoch. Callbacks are :class:`pynn.Callback` objects or
        functions ``f(epoch, logs)``; setting ``net.stop_training = True`` ends training
        (:class:`pynn.EarlyStopping` does so when a monitored log stops improving).

        ``validation_fraction=f`` holds out ``ceil(f * n)`` examples, drawn from ``seed`` before
        training, as ``validation_data`` (stratified by class for cross_entropy and one-output
        bce, as sklearn's ``train_test_split(stratify=y)``); the held-out part is copied, the
        training part is not (its batches are gathered from ``X``; LBFGS copies it once).

        ``standardize=True`` fits a :class:`pynn.Scaler` on the training examples (after any
        ``validation_fraction`` split): each feature's mean and population standard deviation,
        as scikit-learn's ``StandardScaler`` (a constant feature gets scale 1), measured in
        float64 a chunk at a time. It is kept in ``net.scaler`` and saved with the network, and
        from then on every method of the network takes raw inputs and applies it — training
        batches are standardised as they are gathered (the standardised data set is never
        stored), and so are ``validation_data``, ``predict``, ``predict_classes``, ``evaluate``,
        ``loss``, ``loss_and_grads`` and ``train_step`` inputs. A network that already has a
        scaler keeps it (a warm start continues in the same input space; set ``net.scaler =
        None`` first to measure a new one). For a sparse ``X`` only the scale is fitted (the
        mean is 0, scikit-learn's ``with_mean=False``), since centering would fill in the zeros.
        With :class:`pynn.LBFGS` (full-batch) one standardised copy of ``X`` is made.

        ``sample_weight`` (shape ``(n,)``, non-negative, finite, not all zero) weights each
        example: every batch's loss is ``Σ s_i L_i / Σ s_i`` over the batch (per batch, as
        scikit-learn's MLP and Keras do), a batch whose weights are all zero is skipped, and the
        logged loss and accuracy are weighted means. ``class_weight`` (a dict ``{class: weight}``,
        unnamed classes 1, or ``"balanced"``: ``n / (k * bincount(y))`` over the training part,
        as sklearn's ``compute_class_weight``) multiplies into it; it needs cross_entropy or bce
        with one output.

        With ``health=True`` (the default, ``None``, means True without ``comm``) the History also records, per layer and epoch, weight and gradient
        norms, the update ratio and dead or saturated units (see :mod:`pynn.health`), and a
        :class:`pynn.health.TrainingHealthWarning` names a layer whose gradient vanishes or
        explodes.

        ``batch_size=None`` trains on all examples as one batch (full-batch training, meant for
        :class:`pynn.Rprop`). With :class:`pynn.LBFGS` each epoch is one L-BFGS iteration over
        all examples (``batch_size`` and ``shuffle`` are ignored).

        ``deterministic=True`` gives the same weights for the same ``seed`` whatever the thread
        counts: the fit runs every BLAS in the process (the compiled core's and NumPy's) and
        Numba on one thread, so every sum is taken in one fixed order, and puts the counts back
        afterwards. Without it, float32 results may differ in the last bits between thread
        counts (OpenBLAS splits a product differently for different counts).

        ``comm`` (an mpi4py communicator such as ``MPI.COMM_WORLD``) trains data-parallel: each
        rank passes its own shard of the data and ``batch_size`` examples per rank; gradients are
        averaged over all ranks every step (see :mod:`pynn.distributed`, which says which of the
        arguments above it takes: ``deterministic`` yes; ``sample_weight``, ``class_weight``,
        ``validation_fraction``, ``health=True``, ``batch_size=None``, LBFGS, dropout and sparse
        ``X`` raise).

        Examples
        --------
        >>> import numpy as np, pynn
        >>> X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]])  # XOR, one example per column
        >>> y = np.array([0, 1, 1, 0])
        >>> net = pynn.Network.from_sizes([2, 8, 2], hidden="tanh", seed=0)
        >>> history = net.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(0.05), epochs=300, batch_size=4)
        >>> len(history.loss), net.predict_classes(X)
        (300, array([0, 1, 1, 0]))

        With ``standardize=True`` the network measures and keeps the scaling; inputs stay raw:

        >>> Xw = np.array([[1000.0, 1010, 1020, 1030], [0.001, 0.003, 0.002, 0.004]])
        >>> net = pynn.Network.from_sizes([2, 1], output="linear", dtype="float64", seed=0)
        >>> _ = net.fit(Xw, [[1.0, 2, 3, 4]], loss="mse", optimizer=pynn.SGD(0.1), epochs=1, standardize=True)
        >>> net.scaler.mean.tolist()  # predict(Xw) standardises Xw with it
        [1015.0, 0.0025]
        """
        if not isinstance(standardize, (bool, np.bool_)):
            raise TypeError(f"standardize must be a bool, got {standardize!r}")
        if comm is not None:
            if standardize or self._scaler is not None:
                raise ValueError("fit(comm=...) does not apply an input scaler: standardize the shards "
                                 "beforehand (and leave net.scaler None)")
            from .distributed import fit as distributed_fit

            return distributed_fit(self, X, Y, comm=comm, loss=loss, optimizer=optimizer, epochs=epochs,
                                   batch_size=batch_size, validation_data=validation_data, shuffle=shuffle, seed=seed,
                                   callbacks=callbacks, verbose=verbose, health=health, deterministic=deterministic,
                                   sample_weight=sample_weight, class_weight=class_weight,
                                   validation_fraction=validation_fraction)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pynn optimizer such as pynn.SGD(lr), got {type(optimizer).__name__}")
        epochs = V.check_int(epochs, "epochs")
        batch_size = None if batch_size is None else V.check_int(batch_size, "batch_size")
        verbose = V.check_int(verbose, "verbose", minimum=0)
        if seed is not None:
            seed = V.check_int(seed, "seed", minimum=0)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
        health = True if health is None else health
        if not isinstance(health, (bool, np.bool_)):
            raise TypeError(f"health must be a bool, got {health!r}")
        if not isinstance(deterministic, (bool, np.bool_)):
            raise TypeError(f"deterministic must be a bool, got {deterministic!r}")
        cbs = as_callbacks(callbacks)
        X, Y, loss = self._validated(X, Y, loss)
        s = self._weights(sample_weight, X)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, Y_val)")
            val = self._validated(validation_data[0], validation_data[1], loss,
                                  ("validation_data[0]", "validation_data[1]"))[:2]
        rng = np.random.default_rng(seed)
        train = None  # validation_fraction: the training part's example indices (X itself is not copied)
        if validation_fraction is not None:
            if val is not None:
                raise ValueError("give validation_data or validation_fraction, not both")
            f = V.check_float(validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True)
            tr, va = V.split_indices(X.shape[1], f, V.class_labels(Y, loss), rng)
            # the held-out part is copied (sparse: its rows)
            val = (SparseRows(X.csr[va]) if isinstance(X, SparseRows) else np.asfortranarray(X[:, va]), Y[..., va])
            if s is not None:
                val += (s[va],) if s[va].any() else ()
                V.sample_weights(s[tr], tr.size, "sample_weight (the training part)")
            train = tr.astype(np.int64)
        if class_weight is not None:
            labels = V.class_labels(Y, loss)
            cw = V.class_weights(class_weight, labels if train is None or labels is None else labels[train],
                                 max(self._widths[-1], 2))
            if train is not None:  # one per example of X; the held-out ones are never trained on
                full = np.zeros(X.shape[1])
                full[train] = cw
                cw = full
            s = cw if s is None else s * cw
            if train is None:
                s = V.sample_weights(s, X.shape[1], "sample_weight × class_weight")
            else:
                V.sample_weights(s[train], train.size, "sample_weight × class_weight")
        logged = _logged(loss, val is not None)
        sparse = isinstance(X, SparseRows)  # batches densified from the CSR rows, in the Python loop
        new_scaler = Scaler.fit(X, with_mean=not sparse, columns=train) if standardize and self._scaler is None \
            else None

        _check_monitors(cbs, logged)
        if new_scaler is not None:  # every check has passed: from here the network is changed
            self._scaler = new_scaler
        scaler = self._scaler
        if self._dropout and seed is not None:  # fit's seed restarts the dropout stream
            self._drop_seed, self._drop_step[0] = seed & (2**63 - 1), 0
            if self._model is not None:
                self._model.set_dropout(self._rates, self._drop_seed, self._drop_step)
        n = X.shape[1] if train is None else train.size  # examples per epoch
        bs = n if batch_size is None else min(batch_size, n)
        if optimizer._full_batch and bs < n:
            _log.warning("%s is a full-batch method, but fit runs batches of %d of the %d examples: "
                         "pass batch_size=None", type(optimizer).__name__, bs, n)
        n_batches = -(-n // bs)
        history = History()
        progress = Progress(verbose, epochs, n_batches)
        classify = loss in CLASSIFICATION
        self.stop_training = False
        fused = self._model is not None
        # the fused path gathers (and standardises) into its own workspace
        gather = ((shuffle or scaler is not None or train is not None) and not fused) or sparse
        Xb = np.empty((X.shape[0], bs), self.dtype, order="F") if gather else None
        Yb = np.empty((Y.shape[0], bs) if Y.ndim == 2 else (bs,), Y.dtype, order="F") if gather else None
        Sb = np.empty(bs) if gather and s is not None else None
        Tb = np.empty((X.shape[0], bs)) if gather and scaler is not None and self.dtype != np.float64 else None
        on_div = [cb for cb in cbs if type(cb).on_divergence is not Callback.on_divergence]
        stop_flag = np.zeros(1, np.uint8)  # set by the first Ctrl-C (see sigint_deferred)
        monitor = HealthMonitor(self, X, history, epochs) if health else None
        if monitor is not None and scaler is not None:  # its probe of examples, in the input space
            monitor.probe = self._scaled_batch(np.asfortranarray(monitor.probe))
        trained = 0.0
        ctx = (X, Y, bs, n_batches, loss, optimizer, classify, cbs, on_div, progress, (Xb, Yb, s, Sb, Tb), stop_flag)
        for cb in cbs:
            cb.on_train_begin(self, {})
        with sigint_deferred(stop_flag), (single_threaded() if deterministic else contextlib.nullcontext()):
            if isinstance(optimizer, LBFGS):  # full-batch: one copy of the training part, standardised
                Xl, Yl = (X, Y) if train is None else (np.asfortranarray(X[:, train]), Y[..., train])
                optimizer._fit(self, Xl if scaler is None else self._scaled_batch(Xl), Yl, loss, epochs, val, cbs,
                               history, progress, stop_flag)
            for epoch in range(0 if isinstance(optimizer, LBFGS) else epochs):
                for cb in cbs:
                    cb.on_epoch_begin(self, epoch, {})
                if monitor is not None:
                    monitor.epoch_begin(epoch, trained)
                t0 = time.perf_counter()
                order = rng.permutation(n) if shuffle else (np.arange(n) if sparse else None)
                if train is not None:  # the training part's examples, in that order
                    order = train if order is None else train[order]
                run = self._fused_epoch if fused and not sparse else self._python_epoch
                try:
                    total, seen, right, judged = run(epoch, order, ctx)
                except KeyboardInterrupt:  # a second Ctrl-C, or a handler that is not ours
                    history._stop("interrupted", epoch=epoch, batch=None)
                    break
                except _Stop as stop:
                    total, seen, right, judged = stop.stats
                    where = {"epoch": epoch, "batch": stop.batch, "loss": stop.loss}
                    if stop.reason == "interrupted":
                        where["loss"] = total / seen if seen else None
                        history._stop("interrupted", **where)
                        _log.warning("fit interrupted in epoch %d before batch %d; the network holds the weights "
                                     "of the last completed step", epoch, stop.batch)
                        break
                    history._stop("diverged", **where)
                    if not on_div:
                        self.history = history
                        raise Diverged(f"fit stopped at epoch {epoch}, batch {stop.batch}: "
                                       + self._divergence_message(stop.loss), history) from None
                    break  # a callback asked to stop
                logs = {"loss": total / seen if seen else math.nan}  # nan: every batch was refused
                if classify:
                    logs["accuracy"] = right / judged if judged else 0.0
                if val is not None:
                    for key, v in self._evaluate(*val[:2], loss, *val[2:]).items():
                        logs[f"val_{key}"] = v
                seconds = time.perf_counter() - t0
                trained += seconds
                history.append(epoch, **logs, time=seconds)
                if monitor is not None:
                    monitor.epoch_end(epoch)
                progress.epoch(epoch, logs, seconds, n)
                for cb in cbs:
                    cb.on_epoch_end(self, epoch, logs)
                if self.stop_training:
                    if epoch + 1 < epochs:
                        history._stop("stop_training", epoch=epoch + 1, batch=0)
                    break
        for cb in cbs:
            cb.on_train_end(self, {})
        self.history = history
        return history

    def _on_divergence(self, on_div, epoch: int, batch: int, J: float, stats: tuple) -> None:
        """A refused step: without handlers, end the epoch (fit raises); else let them decide."""
        if not on_div:
            raise _Stop("diverged", batch, stats, J)
        for cb in on_div:
            cb.on_divergence(self, {"epoch": epoch, "batch": batch, "loss": J})
        if self.stop_training:
            raise _Stop("diverged", batch, stats, J)

    def _python_epoch(self, epoch, order, ctx):
        """One epoch as a Python loop over the kernels (the numpy and numba backends)."""
        X, Y, bs, n_batches, loss, optimizer, classify, cbs, on_div, progress, (Xb, Yb, sw, Sb, Tb), stop_flag = ctx
        n = X.shape[1] if order is None else order.size
        scaler = self._scaler
        total, seen, right, judged = 0.0, 0, 0, 0
        for bi in range(n_batches):
            if stop_flag[0]:
                raise _Stop("interrupted", bi, (total, seen, right, judged))
            s, e = bi * bs, min(n, (bi + 1) * bs)
            if order is not None:  # gather the shuffled batch into the reused buffers
                idx = order[s:e]
                xb, yb = Xb[:, : e - s], Yb[..., : e - s]
                _gather(X, idx, xb)
                _gather(Y, idx, yb)
                sb = None if sw is None else np.take(sw, idx, out=Sb[: e - s], mode="clip")
                if scaler is not None:  # standardised in place, in the gather buffer
                    scaler._apply(xb, xb, None if Tb is None else Tb[:, : e - s])
            else:
                xb, yb, sb = X[:, s:e], Y[..., s:e], None if sw is None else sw[s:e]
                if scaler is not None:  # standardised into the gather buffer: X is never written
                    xb = scaler._apply(xb, Xb[:, : e - s], None if Tb is None else Tb[:, : e - s])
            if sb is not None and not sb.any():
                continue  # Σ s_i = 0: nothing to learn from this batch
            if self._model is not None:  # sparse batches on a fused model: its one-batch run also counts
                self._bind_optimizer(optimizer)
                ls, sn, r, j, _, diverged, bad, _ = self._model.run_batches(
                    xb, yb, None, 0, 1, e - s, _LOSS_CODE[loss_name(loss)], classify, False, sb,
                    loss_delta(loss))
                J, applied = (bad, False) if diverged else (ls / sn, True)
            else:
                J, applied = self._try_step(xb, yb, loss, optimizer, sb)
                if applied and classify:
                    if sb is None:
                        r, j = correct_count(self._workspace(e - s).A[-1], yb, loss)
                    else:
                        r, j = float(np.dot(sb, correct_share(self._workspace(e - s).A[-1], yb, loss))), \
                            float(sb.sum())
            if not applied:
                self._on_divergence(on_div, epoch, bi, J, (total, seen, right, judged))
                continue
            size = e - s if sb is None else float(sb.sum())
            total += J * size
            seen += size
            if classify:
                right, judged = right + r, judged + j
            progress.batch(epoch, bi, J)
            if cbs:
                for cb in cbs:
                    cb.on_batch_end(self, bi, {"loss": J, "size": e - s})
                if self.stop_training:
                    break
        return total, seen, right, judged

    def _fused_epoch(self, epoch, order, ctx):
        """One epoch in the compiled core: batches are gathered, stepped and counted there with
        the GIL released; Python returns only between chunks, for progress and callbacks. The
        C++ core runs Python's signal handlers every 20 ms, so Ctrl-C stops it after a step;
        a model that cannot (the jitted one) is handed chunks of about 50 ms instead."""
        X, Y, bs, n_batches, loss, optimizer, classify, cbs, on_div, progress, (_, _, sw, _, _), stop_flag = ctx
        model = self._model
        scaler = self._scaler
        scale = {} if scaler is None else {"mean": scaler.mean, "inv_scale": scaler._inv}
        batch_cbs = [cb for cb in cbs if type(cb).on_batch_end is not Callback.on_batch_end]
        chunk = 1 if batch_cbs else (max(1, n_batches // 50) if progress.tty else n_batches)
        polls = getattr(model, "polls_signals", True)
        adapt = not polls and chunk > 1
        if adapt:
            chunk = min(chunk, self.__dict__.get("_chunk_hint", 8))
        total, seen, right, judged, first = 0.0, 0, 0, 0, 0
        while first < n_batches:
            if stop_flag[0]:
                raise _Stop("interrupted", first, (total, seen, right, judged))
            count = min(chunk, n_batches - first)
            self._bind_optimizer(optimizer)  # a callback may have changed its settings
            t0 = time.perf_counter()
            ls, sn, r, j, done, diverged, bad, pending = model.run_batches(
                X, Y, order, first, count, bs, _LOSS_CODE[loss_name(loss)], classify, polls, sw, loss_delta(loss),
                **scale)
            total, seen, right, judged, first = total + ls, seen + sn, right + r, judged + j, first + done
            if pending is not None:
                if isinstance(pending, KeyboardInterrupt):
                    raise _Stop("interrupted", first, (total, seen, right, judged))
                raise pending
            if adapt:  # aim at ~50 ms per call
                took = time.perf_counter() - t0
                chunk = max(1, min(n_batches, int(chunk * 0.05 / took) if took > 0 else chunk * 2))
                self.__dict__["_chunk_hint"] = chunk
            if diverged:
                self._on_divergence(on_div, epoch, first, bad, (total, seen, right, judged))
                first += 1  # the refused batch is skipped
                continue
            if done:
                progress.batch(epoch, first - 1, ls / max(sn, 1))
                for cb in batch_cbs:
                    cb.on_batch_end(self, first - 1, {"loss": ls / max(sn, 1), "size": sn})
            if self.stop_training:
                break
        return total, seen, right, judged

    # ------------------------------------------------------------------ persistence
    def save(self, path: Any) -> None:
        """Write the network to ``path`` (an ``.npz`` file holding a JSON header, ``metadata`` and
        the weights; no pickle). The file is written to a temporary name and renamed, so a failure
        never leaves a half-written model in place of a good one. :func:`pynn.load` reads it.

        Examples
        --------
        >>> import os, tempfile, pynn
        >>> net = pynn.Network.from_sizes([2, 3, 1], output="sigmoid", seed=0)
        >>> net.metadata = {"features": ["x", "y"]}
        >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
        >>> net.save(path)
        >>> pynn.load(path).metadata
        {'features': ['x', 'y']}
        """
        from .io import save

        save(self, path)

    def to_onnx(self, path: Any = None, *, opset: int = 17, input_name: str = "X", output_name: str = "Y") -> Any:
        """Export the network to an ONNX file (needs ``pip install "pynn[onnx]"``).

        The ONNX model takes **row-major** input ``input_name`` of shape ``(n_examples,
        n_features)`` and gives ``output_name`` of shape ``(n_examples, n_outputs)``, as ONNX
        runtimes expect: the transpose of pynn's ``(features, examples)``, so
        ``session.run(None, {"X": data})[0]`` equals ``net.predict(data.T).T``. The batch size
        is free. Each layer is a ``Gemm`` (``transB=1``) and its activation op(s), for every
        activation (elu, gelu and softplus from elementary ops: see :mod:`pynn.onnx_export`; a
        float64 gelu runs its ``Erf`` in float32, as onnxruntime has no float64 one); the graph is
        checked with ``onnx.checker`` before it is written (atomically, as :meth:`save`).
        ``net.metadata``, if any, goes into the model's ``pynn_metadata`` property as JSON. A
        network with a :attr:`scaler` exports it too (``Sub`` and ``Mul`` nodes before the first
        ``Gemm``, in the network's dtype), so the ONNX model takes raw inputs as ``predict`` does.

        Parameters
        ----------
        path : str or path-like, optional
            File to write; ``None`` only builds the model.
        opset : int
            ONNX opset of the default domain, >= 13 (default 17).
        input_name, output_name : str
            Names of the graph's input and output.

        Returns
        -------
        onnx.ModelProto
            The model (also written to ``path``).

        Examples
        --------
        >>> import os, tempfile, numpy as np, pynn
        >>> import onnxruntime as ort
        >>> net = pynn.Network.from_sizes([4, 8, 3], seed=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "net.onnx")
        >>> _ = net.to_onnx(path)
        >>> data = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)  # 5 examples, row-major
        >>> session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        >>> Y = session.run(None, {"X": data})[0]
        >>> Y.shape, bool(np.allclose(Y, net.predict(data.T).T, atol=1e-6))
        ((5, 3), True)
        """
        from .onnx_export import to_onnx

        return to_onnx(self, path, opset=opset, input_name=input_name, output_name=output_name)

    def _clone(self, *, dtype: Any = None, backend: str | None = None) -> "Network":
        layers = [Dense(l.n_in, l.n_out, l.activation, init=(l._W, l._b), dropout=l.dropout,
                        l1=l.l1, l2=l.l2) for l in self.layers]
        net = Network(layers, dtype=dtype or self.dtype, backend=backend or self.backend, seed=self.seed)
        net.metadata = dict(self.metadata)
        net._scaler, net._classes, net._feature_names = self._scaler, self._classes, self._feature_names
        return net
