"""Dense layers and the Network that stacks them.

The network owns one flat parameter buffer (and one flat gradient buffer); every layer's ``W``
and ``b`` are views into it, as llm.c's ``malloc_and_point_parameters`` does, so an optimizer
step is one kernel call. Batches are ``(features, examples)``; the per-batch workspaces
(activations, gradients) are F-ordered, allocated once per batch size and thread, and reused.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import _validate as V
from .activations import ACTIVATIONS, OUTPUT_ONLY, RELU_LIKE, activation_stem
from .backends import get_backend, resolve
from .losses import CANONICAL, CLASSIFICATION, FROM_LOGITS, LOSSES, check_loss
from .optimizers import Optimizer
from .training import Callback, Diverged, History, Progress, as_callbacks, correct_count, sigint_deferred

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
    if A.ndim == 2 and A.flags.f_contiguous and out.flags.f_contiguous:
        np.take(A.T, idx, axis=0, out=out.T, mode="clip")
    else:
        np.take(A, idx, axis=A.ndim - 1, out=out, mode="clip")


def _loss_ok(loss: str, output_stem: str) -> bool:
    try:
        check_loss(loss, output_stem)
    except ValueError:
        return False
    return True


INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")
_INIT_ALIASES = {"glorot": "glorot_uniform", "xavier": "glorot_uniform", "xavier_uniform": "glorot_uniform",
                 "xavier_normal": "glorot_normal", "he": "he_uniform", "kaiming": "he_uniform",
                 "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}


class Dense:
    """One fully connected layer: ``Z = W @ A_prev + b``, ``A = activation(Z)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths: ``W`` has shape ``(n_out, n_in)`` and ``b`` shape ``(n_out, 1)``.
    activation : str
        One of ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` (slope 0.01),
        ``"linear"`` (alias ``"identity"``) or ``"softmax"`` (output layer only).
    init : None, str or (W, b)
        ``None`` draws Glorot-uniform weights (He-uniform for relu-like layers) from the network's
        ``seed`` when the layer joins a Network; a name from ``"glorot_uniform"``,
        ``"glorot_normal"``, ``"he_uniform"``, ``"he_normal"``, ``"zeros"`` picks the scheme;
        a pair of arrays gives the weights. Biases start at zero.
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

    def __init__(self, n_in: int, n_out: int, activation: str = "sigmoid", init: Any = None, *,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        self.n_in = V.check_int(n_in, "n_in")
        self.n_out = V.check_int(n_out, "n_out")
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
        else:
            raise TypeError(f"init must be None, a scheme name or a pair of arrays (W, b), got {type(init).__name__}")

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
        scheme = self.init or ("he_uniform" if self._stem in RELU_LIKE else "glorot_uniform")
        n_in, n_out = self.n_in, self.n_out
        if scheme == "zeros":
            W = np.zeros((n_out, n_in))
        elif scheme.startswith("glorot"):
            var = 2.0 / (n_in + n_out)
        else:
            var = 2.0 / n_in
        if scheme.endswith("uniform"):
            lim = math.sqrt(3 * var)  # uniform on [-lim, lim] has variance lim²/3
            W = rng.uniform(-lim, lim, size=(n_out, n_in))
        elif scheme.endswith("normal"):
            W = rng.normal(0.0, math.sqrt(var), size=(n_out, n_in))
        return W, np.zeros((n_out, 1))

    def _materialize(self) -> None:
        if self._W is None:
            self._W, self._b = self._draw(np.random.default_rng())

    @property
    def W(self) -> np.ndarray:
        """Weights, shape ``(n_out, n_in)``."""
        self._materialize()
        return self._W

    @W.setter
    def W(self, value: Any) -> None:
        self._assign("W", value)

    @property
    def b(self) -> np.ndarray:
        """Biases, shape ``(n_out, 1)``."""
        self._materialize()
        return self._b

    @b.setter
    def b(self, value: Any) -> None:
        self._assign("b", value)

    @property
    def l1(self) -> float:
        """L1 penalty on ``W``: the objective gains ``l1 Σ|W|``."""
        return self._l1

    @l1.setter
    def l1(self, value: float) -> None:
        self._l1 = V.check_float(value, "l1", low=0)
        if self._net is not None:
            self._net._penalties_changed()

    @property
    def l2(self) -> float:
        """L2 penalty on ``W``: the objective gains ``l2/2 Σ W²``."""
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
        pen = "".join(f", {k}={v!r}" for k, v in (("l1", self._l1), ("l2", self._l2)) if v)
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r}{pen})"


class _Workspace:
    """Buffers for one batch size: activations A[l] (h_l, d), the output logits, and two
    ping-pong buffers for the backward pass (layer l reads dA[l] and writes dA[l-1])."""

    def __init__(self, widths: Sequence[int], d: int, dtype: np.dtype) -> None:
        self.d = d
        self.A = [np.empty((h, d), dtype, order="F") for h in widths]
        self._widths, self._dtype = widths, dtype
        self._grad: list[np.ndarray] | None = None
        self.Z_out = np.empty((widths[-1], d), dtype, order="F")  # output logits, kept for the loss
        self.onehot: np.ndarray | None = None
        self.cols = np.arange(d)

    def grad(self) -> list[np.ndarray]:
        if self._grad is None:
            hmax, d = max(self._widths), self.d
            bufs = (np.empty(hmax * d, self._dtype), np.empty(hmax * d, self._dtype))
            self._grad = [bufs[l % 2][: h * d].reshape((h, d), order="F") for l, h in enumerate(self._widths)]
        return self._grad


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

    Examples
    --------
    >>> import numpy as np, pynn
    >>> net = pynn.Network([pynn.Dense(2, 2, "sigmoid"), pynn.Dense(2, 1, "sigmoid")], seed=0)
    >>> net.predict(np.array([[0.5], [0.2]])).shape
    (1, 1)
    """

    def __init__(self, layers: Iterable[Dense], *, dtype: Any = "float32", backend: str = "auto",
                 seed: int | None = None) -> None:
        layers = list(layers) if not isinstance(layers, Dense) else [layers]
        if not layers:
            raise ValueError("layers must hold at least one Dense layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(f"layers[{i}] must be a pynn.Dense, got {type(layer).__name__}")
            if layer._net is not None:
                raise ValueError(f"layers[{i}] already belongs to a Network; create a new Dense for each network")
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
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, got {sizes}")
        activation_stem(hidden, argument="hidden")
        activation_stem(output, argument="output")
        layers = [Dense(sizes[i], sizes[i + 1], hidden if i < len(sizes) - 2 else output, l1=l1, l2=l2)
                  for i in range(len(sizes) - 1)]
        return cls(layers, **kw)

    @property
    def sizes(self) -> list[int]:
        """Widths from input to output, e.g. ``[784, 256, 10]``."""
        return [self.layers[0].n_in, *self._widths]

    @property
    def n_params(self) -> int:
        return self._params.size

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
            ws = cache[d] = _Workspace(self._widths, d, self.dtype)
        return ws

    # ------------------------------------------------------------------ forward
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
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

        Examples
        --------
        >>> import numpy as np, pynn
        >>> net = pynn.Network.from_sizes([3, 4, 2], seed=1)
        >>> net.predict(np.zeros((3, 5))).sum(axis=0)  # softmax columns sum to 1
        array([1., 1., 1., 1., 1.], dtype=float32)
        """
        model = self._model
        if model is not None and out is None and type(X) is np.ndarray and X.dtype is self.dtype and X.ndim == 2:
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
        if X.shape[1] == 0:
            return out
        if self._model is not None:
            self._model.forward(X, out)
            return out
        return self._forward(X, out, self._workspace(X.shape[1]))

    predict = forward  # the same function: one call less on the hot path of inference

    def predict_classes(self, X: Any) -> np.ndarray:
        """The class of each example, shape ``(n_examples,)``: the argmax of the outputs, or for a
        single output unit ``Yhat > 0.5``."""
        Yhat = self.forward(X)
        if Yhat.shape[0] == 1:
            return (Yhat[0] > 0.5).astype(np.intp)
        return Yhat.argmax(axis=0)

    # ------------------------------------------------------------------ loss and gradients
    def _check_loss(self, loss: Any) -> str:
        return check_loss(loss, self._stems[-1])

    def _check_targets(self, Y: Any, loss: str, d: int, name: str = "Y") -> np.ndarray:
        return V.as_targets(Y, loss, self._widths[-1], d, self.dtype, name)

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
        return getattr(k, f"{loss}_forward")(ws.A[-1], Y)

    def _forward_train(self, X: np.ndarray, ws: _Workspace) -> None:
        """Forward keeping what the backward needs: every A, and the output logits Z(L)."""
        k, A = self._k, X
        last = len(self.layers) - 1
        for l, layer in enumerate(self.layers):
            Al = ws.A[l]
            k.layer_forward(layer._W, A, layer._b, self._stems[l], ws.Z_out if l == last else Al, Al)
            A = Al

    def _backward(self, X: np.ndarray, Y: np.ndarray, loss: str, ws: _Workspace) -> None:
        """Fill the gradient buffer: dZ(L) from the loss, then the seed's recursion downwards."""
        k, dA, L = self._k, ws.grad(), len(self.layers)
        stem, Yhat = self._stems[-1], ws.A[-1]
        if (stem, loss) in CANONICAL:  # dZ(L) = (Yhat - Y) / d, then straight into the dense backward
            k.output_backward(Yhat, Y, dA[-1])
            A_prev = ws.A[-2] if L > 1 else X
            k.dense_backward(dA[-1], A_prev, self.layers[-1]._W, self._dW[-1], self._db[-1],
                             dA[-2] if L > 1 else None)
            top = L - 2
        else:  # general chain rule: dJ/dYhat, then through the output activation
            getattr(k, f"{loss}_backward")(Yhat, Y, dA[-1])
            top = L - 1
        for l in range(top, -1, -1):
            A_prev = ws.A[l - 1] if l > 0 else X
            k.layer_backward(dA[l], ws.A[l], self._stems[l], self.layers[l]._W, A_prev, dA[l], self._dW[l],
                             self._db[l], dA[l - 1] if l > 0 else None)

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray, loss: str) -> float:
        """Forward, loss and backward on validated inputs; gradients land in self._grads."""
        if self._model is not None:
            return self._model.loss(X, Y, _LOSS_CODE[loss], True)
        ws = self._workspace(X.shape[1])
        Yd = self._dense_targets(Y, ws)
        self._forward_train(X, ws)
        J = self._loss_value(ws, Yd, loss, ws.Z_out)
        self._backward(X, Yd, loss, ws)
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

    def loss(self, X: Any, Y: Any, loss: str) -> float:
        """The mean loss ``J = (1/d) Σ_i L(yhat_i, y_i)`` over the examples (columns) of ``X``, plus
        the layers' weight penalties when they have any (see :class:`Dense`).

        ``loss`` is ``"mse"`` (``L = 1/2 Σ_k (yhat_k - y_k)²``), ``"bce"`` or ``"cross_entropy"``
        (``Y`` one-hot ``(m, d)`` or class indices ``(d,)``).
        """
        X, Y, loss = self._validated(X, Y, loss)
        return self._loss_from_checked(X, Y, loss)

    def _loss_from_checked(self, X: np.ndarray, Y: np.ndarray, loss: str) -> float:
        ws = self._workspace(X.shape[1])
        Yd = self._dense_targets(Y, ws)
        self._forward_train(X, ws)
        J = self._loss_value(ws, Yd, loss, ws.Z_out)
        return J + self._penalty() if self._penalised else J

    def loss_and_grads(self, X: Any, Y: Any, loss: str) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        """``(J, grads)`` with ``grads[l] == (dW, db)``, the gradients of ``J`` with respect to
        ``layers[l].W`` and ``layers[l].b`` (same shapes). The arrays are the caller's to keep."""
        X, Y, loss = self._validated(X, Y, loss)
        J = self._loss_and_grads(X, Y, loss)
        return J, [(dW.copy(), db.copy()) for dW, db in zip(self._dW, self._db)]

    def train_step(self, X: Any, Y: Any, loss: str, optimizer: Optimizer) -> float:
        """One update on one batch; returns ``J`` before the update.

        With ``SGD(lr)`` this is the seed's ``W <- W - lr dJ/dW``, ``b <- b - lr dJ/db``. If
        anything is wrong with the arguments, or the loss is not finite, nothing is changed.
        """
        model = self._model
        if model is not None and type(X) is np.ndarray and type(Y) is np.ndarray and X.dtype is self.dtype \
                and type(loss) is str and loss in self._fused_losses and isinstance(optimizer, Optimizer):
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
        return self._step(X, Y, loss, optimizer)

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

    def _try_step(self, X: np.ndarray, Y: np.ndarray, loss: str, optimizer: Optimizer) -> tuple[float, bool]:
        """(J, whether the update was applied): a step whose loss, gradient or updated weights
        would not be finite changes nothing."""
        if self._model is not None:
            self._bind_optimizer(optimizer)
            return self._model.train_step(X, Y, _LOSS_CODE[loss])
        J = self._loss_and_grads(X, Y, loss)
        g = self._grads
        ok = math.isfinite(J) and math.isfinite(g.min()) and math.isfinite(g.max()) and optimizer._apply(self)
        return J, ok

    def _step(self, X: np.ndarray, Y: np.ndarray, loss: str, optimizer: Optimizer) -> float:
        J, applied = self._try_step(X, Y, loss, optimizer)
        if not applied:
            self._diverged(J)
        return J

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, X: np.ndarray, Y: np.ndarray, loss: str) -> dict[str, float]:
        out = {"loss": self._loss_from_checked(X, Y, loss)}
        if loss in CLASSIFICATION:
            right, total = correct_count(self._workspace(X.shape[1]).A[-1], Y, loss)
            out["accuracy"] = right / total
        return out

    def evaluate(self, X: Any, Y: Any, loss: str) -> dict[str, float]:
        """``{"loss": J}``, plus ``"accuracy"`` for the classification losses (bce, cross_entropy)."""
        X, Y, loss = self._validated(X, Y, loss)
        return self._evaluate(X, Y, loss)

    # ------------------------------------------------------------------ training
    def fit(self, X: Any, Y: Any, *, loss: str, optimizer: Optimizer, epochs: int = 1, batch_size: int = 32,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
            callbacks: Any = (), verbose: int = 0) -> History:
        """Mini-batch training; returns a :class:`History` of per-epoch ``loss`` (the mean of the
        batch losses, each taken before its update), ``accuracy`` for classification, and
        ``val_loss``/``val_accuracy`` when ``validation_data=(X_val, Y_val)`` is given.

        The data is validated and cast once; each epoch visits the examples in an order shuffled
        from ``seed`` (the same seed gives the same training) and gathers each batch into a
        reused buffer, so ``X`` is never copied whole. ``verbose=1`` shows a progress bar,
        ``verbose=2`` one line per epoch. Callbacks are :class:`pynn.Callback` objects or
        functions ``f(epoch, logs)``; setting ``net.stop_training = True`` ends training.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pynn optimizer such as pynn.SGD(lr), got {type(optimizer).__name__}")
        epochs = V.check_int(epochs, "epochs")
        batch_size = V.check_int(batch_size, "batch_size")
        verbose = V.check_int(verbose, "verbose", minimum=0)
        if seed is not None:
            seed = V.check_int(seed, "seed", minimum=0)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
        cbs = as_callbacks(callbacks)
        X, Y, loss = self._validated(X, Y, loss)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, Y_val)")
            val = self._validated(validation_data[0], validation_data[1], loss,
                                  ("validation_data[0]", "validation_data[1]"))[:2]

        n = X.shape[1]
        bs = min(batch_size, n)
        n_batches = -(-n // bs)
        rng = np.random.default_rng(seed)
        history = History()
        progress = Progress(verbose, epochs, n_batches)
        classify = loss in CLASSIFICATION
        self.stop_training = False
        gather = shuffle and self._model is None  # the fused path gathers into its own workspace
        Xb = np.empty((X.shape[0], bs), self.dtype, order="F") if gather else None
        Yb = np.empty((Y.shape[0], bs) if Y.ndim == 2 else (bs,), Y.dtype, order="F") if gather else None
        on_div = [cb for cb in cbs if type(cb).on_divergence is not Callback.on_divergence]
        stop_flag = np.zeros(1, np.uint8)  # set by the first Ctrl-C (see sigint_deferred)
        ctx = (X, Y, bs, n_batches, loss, optimizer, classify, cbs, on_div, progress, (Xb, Yb), stop_flag)
        for cb in cbs:
            cb.on_train_begin(self, {})
        with sigint_deferred(stop_flag):
            for epoch in range(epochs):
                for cb in cbs:
                    cb.on_epoch_begin(self, epoch, {})
                t0 = time.perf_counter()
                order = rng.permutation(n) if shuffle else None
                run = self._fused_epoch if self._model is not None else self._python_epoch
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
                    logs["accuracy"] = right / max(judged, 1)
                if val is not None:
                    for key, v in self._evaluate(val[0], val[1], loss).items():
                        logs[f"val_{key}"] = v
                seconds = time.perf_counter() - t0
                history.append(epoch, **logs, time=seconds)
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
        X, Y, bs, n_batches, loss, optimizer, classify, cbs, on_div, progress, (Xb, Yb), stop_flag = ctx
        n = X.shape[1]
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
            else:
                xb, yb = X[:, s:e], Y[..., s:e]
            J, applied = self._try_step(xb, yb, loss, optimizer)
            if not applied:
                self._on_divergence(on_div, epoch, bi, J, (total, seen, right, judged))
                continue
            total += J * (e - s)
            seen += e - s
            if classify:
                r, j = correct_count(self._workspace(e - s).A[-1], yb, loss)
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
        X, Y, bs, n_batches, loss, optimizer, classify, cbs, on_div, progress, _, stop_flag = ctx
        model = self._model
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
                X, Y, order, first, count, bs, _LOSS_CODE[loss], classify, polls)
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
        """Write the network to ``path`` (an ``.npz`` file holding a JSON header and the weights;
        no pickle). The file is written to a temporary name and renamed, so a failure never
        leaves a half-written model in place of a good one."""
        from .io import save

        save(self, path)

    def _clone(self, *, dtype: Any = None, backend: str | None = None) -> "Network":
        layers = [Dense(l.n_in, l.n_out, l.activation, init=(l._W, l._b), l1=l.l1, l2=l.l2) for l in self.layers]
        return Network(layers, dtype=dtype or self.dtype, backend=backend or self.backend, seed=self.seed)
