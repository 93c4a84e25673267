"""The training-health monitor of ``fit``: per layer and per epoch, the norms of the weights and of
the last gradient, how far the epoch moved the weights, and how many hidden units are dead (ReLU)
or saturated (sigmoid/tanh) on a fixed probe of training examples. A warning names the layer when
its gradient vanishes or explodes — the seed's own warnings about deep sigmoid networks, made
visible.

Definitions (layer ``l``, end of an epoch):

- ``weight_norm``: ‖W‖ (Frobenius); ``grad_norm``: ‖dW‖ of the epoch's last step;
- ``update_ratio``: ‖W_end − W_start‖ / ‖W_start‖ over the epoch;
- ``dead``: the fraction of a relu/leaky_relu layer's units whose activation is ≤ 0 on every probe
  example (NaN for other activations);
- ``saturated``: the fraction of a sigmoid/tanh layer's activations, over units × probe examples,
  in the flat tails (sigmoid outside [0.01, 0.99], tanh beyond ±0.99; NaN for others).

Recording costs some tens of microseconds per layer; when epochs are so short that this would
exceed ``BUDGET`` (10 %) of the training time, epochs are recorded at a stride (the first and the
last always) and ``History.health_epochs`` lists the epochs recorded.

The probe is the first ``PROBE`` training examples. With ``r_l = ‖dW_l‖/‖W_l‖``, layer ``l``'s
gradient *vanishes* when ``r_l < VANISH · max_{k>l} r_k`` (it learns a million times slower than
a layer above it, as backpropagation through saturated units makes it; a network that has simply
converged has all its ``r`` small together and is not flagged) and *explodes* when ``r_l > EXPLODE``. Each is warned once per layer and fit.

Examples
--------
>>> import numpy as np, pynn
>>> rng = np.random.default_rng(0)
>>> X, y = rng.normal(size=(4, 64)), rng.integers(0, 2, size=64)
>>> net = pynn.Network.from_sizes([4, 8, 2], seed=0)
>>> h = net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2)
>>> sorted(h.health[0])
['dead', 'grad_norm', 'saturated', 'update_ratio', 'weight_norm']
>>> len(h.health[0]["weight_norm"])
2
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .activations import RELU_LIKE

PROBE = 256
BUDGET = 0.10
VANISH = 1e-6
EXPLODE = 1e3
SATURATING = {"sigmoid": (0.01, 0.99), "tanh": (-0.99, 0.99)}


class TrainingHealthWarning(RuntimeWarning):
    """A layer's gradient vanished or exploded during ``fit``."""


class HealthMonitor:
    """Records ``History.health`` for one ``fit``; allocates its buffers once."""

    def __init__(self, net, X: np.ndarray, history, epochs: int) -> None:
        self.net, self.history, self.last = net, history, epochs - 1
        self.spent = 0.0  # seconds spent recording
        self.recording = False
        k = min(PROBE, X.shape[1])
        if isinstance(X, np.ndarray):
            self.probe = X[:, :k]
        else:  # sparse rows: densify just the probe
            self.probe = X.dense(slice(0, k), np.empty((X.shape[0], k), net.dtype, order="F"))
        self.start = np.empty_like(net._params)
        self.diff = np.empty_like(net._params)
        self.warned: set[tuple[int, str]] = set()
        history.health = [{k: [] for k in ("weight_norm", "grad_norm", "update_ratio", "dead", "saturated")}
                          for _ in net.layers]

    def epoch_begin(self, epoch: int, trained: float) -> None:
        """Decide whether to record this epoch (``trained``: seconds of training so far)."""
        self.recording = epoch in (0, self.last) or self.spent <= BUDGET * trained
        if self.recording:
            self.start[...] = self.net._params

    def epoch_end(self, epoch: int) -> None:
        if not self.recording:
            return
        t0 = time.perf_counter()
        self._record(epoch)
        self.spent += time.perf_counter() - t0

    def _record(self, epoch: int) -> None:
        net = self.net
        self.history.health_epochs.append(epoch)
        ws = net._workspace(self.probe.shape[1])
        net._forward_train(self.probe, ws)
        o, rels = 0, []
        for l, layer in enumerate(net.layers):
            W = layer._W
            size = W.size
            cur, grad = net._params[o:o + size], net._grads[o:o + size]  # W and dW in the flat buffers
            seg, diff = self.start[o:o + size], self.diff[o:o + size]  # W at the epoch's start
            np.subtract(cur, seg, out=diff)
            w, g, moved, was = (math.sqrt(float(np.dot(v, v))) for v in (cur, grad, diff, seg))
            o += size + layer._b.size
            A = ws.A[l]
            stem = net._stems[l]
            dead = float(np.mean(np.all(A <= 0, axis=1))) if stem in RELU_LIKE and l < len(net.layers) - 1 else math.nan
            if stem in SATURATING:
                lo, hi = SATURATING[stem]
                saturated = float(np.count_nonzero((A < lo) | (A > hi))) / A.size
            else:
                saturated = math.nan
            rec = self.history.health[l]
            rec["weight_norm"].append(w)
            rec["grad_norm"].append(g)
            rec["update_ratio"].append(moved / was if was > 0 else math.nan)
            rec["dead"].append(dead)
            rec["saturated"].append(saturated)
            rels.append(g / w if w > 0 else math.nan)
        for l, (layer, rel) in enumerate(zip(net.layers, rels)):
            above = max((r for r in rels[l + 1:] if not math.isnan(r)), default=math.nan)
            for kind, bad in (("vanishing", rel < VANISH * above), ("exploding", rel > EXPLODE)):
                if bad and (l, kind) not in self.warned:
                    self.warned.add((l, kind))
                    warnings.warn(f"layer {l} ({layer.n_in}->{layer.n_out}, {layer.activation}): {kind} gradient "
                                  f"in epoch {epoch}: |dW|/|W| = {rel:.3g}", TrainingHealthWarning, stacklevel=4)
