#!/usr/bin/env python
"""Every performance case of the project's issue, for each pynn backend and its peers, in one run.

Cases (the issue's targets in brackets; "pynn" is the ``cpp`` backend for the targets):

  sgemm               2048² sgemm GFLOP/s: NumPy matmul, pynn's ``dense_forward`` (the ceiling; no target)
  train_b32/128/512   784-256-256-10 relu/softmax cross-entropy, SGD(0.01), samples/s through ``fit``
                      (one epoch) and a ``train_step`` loop; peers torch eager, a NumPy loop and
                      sklearn MLPClassifier  [pynn >= 3x / 2x / 1.2x torch]
  train_sigmoid_b128  the same with sigmoid hidden layers, batch 128  [>= 2x torch]
  step_221            one ``train_step`` on a 2-2-1 sigmoid/bce net, batch 1, µs/call  [<= 5 µs]
  fit_221             ``fit`` on 2-2-1, 10^5 examples, batch_size=1, µs/example  [<= 0.3 µs]
  predict1_784        one-example ``predict`` on 784-256-256-10, µs  [<= 15 µs]
  predict1_221        one-example ``predict`` on 2-2-1, µs  [<= 1.5 µs]
  big_mse             1024-4096-4096-1024 relu/linear mse, batch 256, train GFLOP/s through
                      ``train_step``  [>= 0.85 x pynn's sgemm GFLOP/s of this run]
  sigmoid_1e7         ``sigmoid_forward`` on 10^7 float32, Melem/s  [>= 5x NumPy 1/(1+exp(-x))]
  sklearn_epoch       sklearn MLPClassifier epoch time at batch 32/128/512 vs pynn ``fit``  [>= 10x]
  (every case)        the numba backend's time within 2x of cpp's

Method (shared with bench_train.py through _common.py): float32, one thread count for every
pool (2 by default), each contender warmed up (Numba compiles on its first call), a fixed call
count calibrated for about ``--target`` seconds, ``--repeats`` timed repeats, medians and
min–max spreads; contenders run strictly one after another with a pause between them.

Run ``python bench/bench.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py next to this file
from _common import (NumpyMLP, OthersCPU, limit_threads, loadavg, machine_info, markdown_table,  # noqa: E402
                     parse_backends_and_peers, stats, time_each, time_loop, wait_quiet)

try:  # run from a source checkout without installing: python bench/bench.py
    import pynn
except ImportError:  # pragma: no cover - depends on how the script is run
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pynn

from pynn.backends import get_backend  # noqa: E402

CASES = ("sgemm", "train_b32", "train_b128", "train_b512", "train_sigmoid_b128", "step_221", "fit_221",
         "predict1_784", "predict1_221", "big_mse", "sigmoid_1e7", "sklearn_epoch")
MNIST = (784, 256, 256, 10)
TINY = (2, 2, 1)
LR = 0.01
TORCH_HINT = 'pip install torch==2.13.0   (or: pip install ".[bench]")'

# unit -> (scale, higher is better). Rates: value = work * scale / seconds; times: seconds * scale / work.
UNITS = {"GFLOP/s": (1e-9, True), "samples/s": (1.0, True), "Melem/s": (1e-6, True),
         "µs/call": (1e6, False), "µs/example": (1e6, False), "ms/epoch": (1e3, False)}

# the reference peer of each case for the "vs peer" column (id = "<key>:<path>")
CASE_PEER = {"sgemm": "numpy-matmul:np.matmul", "train_b32": "torch:step", "train_b128": "torch:step",
             "train_b512": "torch:step", "train_sigmoid_b128": "torch:step", "step_221": "torch:step",
             "predict1_784": "torch:forward", "predict1_221": "torch:forward", "big_mse": "torch:step",
             "sigmoid_1e7": "numpy-divide:np.divide(1, 1+np.exp(-x), out=A)"}  # = SIGMOID_NUMPY_PATH


def _checks() -> list[dict]:
    """The issue's targets. kind "peer": pynn is >= k times as fast as the peer row; "max": the
    value is <= k (µs); "sgemm": GFLOP/s >= k x pynn's sgemm of this run."""
    out = []
    for case, k in (("train_b32", 3.0), ("train_b128", 2.0), ("train_b512", 1.2), ("train_sigmoid_b128", 2.0)):
        for path in ("fit", "train_step"):
            out.append({"case": case, "path": path, "kind": "peer", "peer": "torch:step", "k": k,
                        "target": f"≥ {k:g}× torch"})
    out += [
        {"case": "step_221", "path": "train_step", "kind": "max", "k": 5.0, "target": "≤ 5 µs"},
        {"case": "fit_221", "path": "fit", "kind": "max", "k": 0.3, "target": "≤ 0.3 µs/example"},
        {"case": "predict1_784", "path": "predict", "kind": "max", "k": 15.0, "target": "≤ 15 µs"},
        {"case": "predict1_221", "path": "predict", "kind": "max", "k": 1.5, "target": "≤ 1.5 µs"},
        {"case": "big_mse", "path": "train_step", "kind": "sgemm", "k": 0.85, "target": "≥ 0.85 × sgemm"},
        {"case": "sigmoid_1e7", "path": "sigmoid_forward", "kind": "peer", "k": 5.0,
         "peer": CASE_PEER["sigmoid_1e7"], "target": "≥ 5× NumPy"},
    ]
    for b in (32, 128, 512):
        out.append({"case": "sklearn_epoch", "path": f"fit b={b}", "kind": "peer", "k": 10.0,
                    "peer": f"sklearn:partial_fit b={b}", "target": "≥ 10× sklearn"})
    return out


# ------------------------------------------------------------------------------------- runner
class Runner:
    """Holds the options and the rows measured so far, and times one contender at a time.

    ``group`` names a contender's family: a pynn backend (``cpp``, ``numba``, ``numpy``) or a peer
    (``peer-numpy``, ``peer-torch``, ``peer-sklearn``). With ``only`` set (a worker process, see
    ``--isolate``), every other group is skipped before anything of it is imported."""

    def __init__(self, a, only: str | None = None) -> None:
        self.a = a
        self.only = only
        self.rows: list[dict] = []
        self.done: list[dict] = []  # rows of the rounds already finished (--rounds)
        self.skipped: dict[str, str] = {}
        self._torch = None
        self._sk = None
        self.case_load: dict[str, float | None] = {}
        self.waited = 0.0
        self.case_seconds: dict[str, float] = {}

    def want(self, group: str) -> bool:
        if group.startswith("peer-") and group[5:] not in self.a.peers:
            return False
        return self.only is None or self.only == group

    # ---- peers, imported on first use
    def torch(self):
        if self._torch is None:
            try:
                import torch
            except ImportError as e:
                self._torch = False
                self.skipped["torch"] = f"not importable ({e}); install with: {TORCH_HINT}"
                print(f"  PyTorch skipped: not importable. Install with: {TORCH_HINT}")
            else:
                torch.set_num_threads(self.a.threads)
                self._torch = torch
        return self._torch or None

    def sklearn(self):
        if self._sk is None:
            try:
                from sklearn.neural_network import MLPClassifier
            except ImportError as e:
                self._sk = False
                self.skipped["sklearn"] = f"not importable ({e}); install with: pip install scikit-learn"
                print("  scikit-learn skipped: not importable (pip install scikit-learn)")
            else:
                self._sk = MLPClassifier
        return self._sk or None

    # ---- one contender
    def run(self, case: str, key: str, name: str, path: str, unit: str, work: float, measure, *,
            group: str, backend: str | None = None, reused_from: dict | None = None, **extra) -> dict | None:
        """Time one contender (``measure()`` returns a time_loop/time_each dict of seconds per
        call, each call doing ``work`` units), record and print its row, then pause. With
        ``reused_from`` (a row of an earlier case timing the same thing) nothing is timed."""
        if not self.want(group):
            return None
        if reused_from is None and self.a.wait_quiet > 0:
            self.waited += wait_quiet(self.a.wait_quiet, window=max(self.a.pause, 0.5))
        probe = OthersCPU()
        try:
            if reused_from is not None:
                r = reused_from
                meas = {"seconds": r["seconds_per_call"], "calls_per_repeat": r["calls_per_repeat"],
                        "others_cores": r.get("others_cores")}
            else:
                meas = measure()
                meas["others_cores"] = probe.stop()
        except Exception as e:  # one broken contender must not lose the rest of the run
            print(f"  {case:<18} {name:<22} {path:<26} FAILED: {type(e).__name__}: {e}", flush=True)
            self.rows.append({"case": case, "id": f"{key}:{path}", "key": key, "name": name, "path": path,
                              "unit": unit, "group": group, "backend": backend, "error": f"{type(e).__name__}: {e}"})
            time.sleep(self.a.pause)
            return None
        work = meas.get("work", work)
        scale, higher = UNITS[unit]
        values = [work * scale / s if higher else s * scale / work for s in meas["seconds"]]
        row = {"case": case, "id": f"{key}:{path}", "key": key, "name": name, "path": path, "group": group,
               "backend": backend, "unit": unit, "higher_is_better": higher, "work_per_call": work,
               "calls_per_repeat": meas.get("calls_per_repeat"), "seconds_per_call": meas["seconds"],
               "values": values, **stats(values), **extra, **meas.get("extra", {}),
               "others_cores": meas.get("others_cores")}
        if reused_from is not None:
            row["reused_from"] = reused_from["case"]
        self.rows.append(row)
        self.print_row(row)
        if reused_from is None:
            time.sleep(self.a.pause)  # let this contender's spinning pools park before the next one
        return row

    @staticmethod
    def print_row(row: dict) -> None:
        oc = row.get("others_cores")
        print(f"  {row['case']:<18} {row['name']:<22} {row['path']:<26} median {fmt(row['median']):>9} "
              f"{row['unit']:<10} (min {fmt(row['min'])}, max {fmt(row['max'])})"
              f"{'' if oc is None else f'  others {oc:.2f} cores'}"
              f"{'  [from ' + row['reused_from'] + ']' if row.get('reused_from') else ''}", flush=True)

    def find(self, case: str, rid: str) -> dict | None:
        return _find(self.rows, case, rid)

    def loop(self, call, *, warmup=None, target=None, min_calibrate=3, calibrate=None):
        a = self.a
        return lambda: time_loop(call, warmup=a.warmup if warmup is None else warmup,
                                 target=a.target if target is None else target, repeats=a.repeats,
                                 calibrate=a.calibrate if calibrate is None else calibrate,
                                 min_calibrate=min_calibrate)


def fmt(x: float) -> str:
    if x != x:
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    if abs(x) >= 10:
        return f"{x:.2f}"
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"


def new_net(sizes, backend, hidden="relu", output="softmax", seed=0):
    return pynn.Network.from_sizes(sizes, hidden=hidden, output=output, dtype="float32", backend=backend, seed=seed)


def torch_mlp(torch, sizes, hidden="relu", output=None):
    nn = torch.nn
    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if hidden == "relu" else nn.Sigmoid())
    if output == "sigmoid":
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers).float()


# ------------------------------------------------------------------------------------- cases
# Each case_* function times, in order, every contender of its case that ``R.want``s: the pynn
# backends first, then the peers. Nothing of a contender is imported unless it runs.
def case_sgemm(R: Runner, backends=None) -> None:
    a = R.a
    n = a.sgemm_n
    rng = np.random.default_rng(0)
    W = rng.standard_normal((n, n), dtype=np.float32)
    A = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.zeros((n, 1), np.float32)
    Z = np.empty((n, n), np.float32, order="F")
    flops = 2.0 * n ** 3
    for be in backends or a.backends:
        if R.want(be):
            k = get_backend(be)
            R.run("sgemm", be, f"pynn {be}", "dense_forward", "GFLOP/s", flops,
                  R.loop(lambda i, k=k: k.dense_forward(W, A, b, Z), warmup=2, min_calibrate=2), group=be,
                  backend=be, size=n)
    if backends is None and R.want("peer-numpy"):  # (backends given: only the reference for big_mse)
        Ac, Zc = np.ascontiguousarray(A), np.empty((n, n), np.float32)
        R.run("sgemm", "numpy-matmul", "numpy matmul", "np.matmul", "GFLOP/s", flops,
              R.loop(lambda i: np.matmul(W, Ac, out=Zc), warmup=2, min_calibrate=2), group="peer-numpy", size=n)


def _mnist_data(R: Runner):
    if not hasattr(R, "_mnist"):
        rng = np.random.default_rng(0)
        data = rng.standard_normal((R.a.n, MNIST[0]), dtype=np.float32)
        labels = rng.integers(0, MNIST[-1], R.a.n)
        R._mnist = (data, labels)
    return R._mnist


def _pynn_fit(R: Runner, case: str, be: str, hidden: str, batch: int, path: str, reused_from=None) -> None:
    a = R.a
    data, labels = _mnist_data(R)
    X = data.T  # (784, n), F-ordered view: no copy

    def measure():
        net = new_net(MNIST, be, hidden)
        opt = pynn.SGD(LR)
        w = min(X.shape[1], 4 * batch)  # warm-up epoch on a subset: compiles, allocates buffers
        net.fit(X[:, :w], labels[:w], loss="cross_entropy", optimizer=opt, epochs=1, batch_size=batch, seed=0)
        return time_each(lambda r: net.fit(X, labels, loss="cross_entropy", optimizer=opt, epochs=1,
                                           batch_size=batch, shuffle=True, seed=r).history["loss"][-1],
                         repeats=a.fit_repeats, budget=a.budget)

    unit, work = ("ms/epoch", 1) if case == "sklearn_epoch" else ("samples/s", X.shape[1])
    R.run(case, be, f"pynn {be}", path, unit, work, measure, group=be, backend=be, reused_from=reused_from,
          batch=batch, n=X.shape[1])


def _sklearn_epoch(R: Runner, case: str, hidden: str, batch: int, path: str, reused_from=None) -> None:
    if not R.want("peer-sklearn"):
        return
    MLPClassifier = R.sklearn() if reused_from is None else True
    if MLPClassifier is None:
        return
    a = R.a
    data, labels = _mnist_data(R)

    def measure():
        clf = MLPClassifier(hidden_layer_sizes=MNIST[1:-1], activation="relu" if hidden == "relu" else "logistic",
                            solver="sgd", alpha=0.0, batch_size=batch, learning_rate="constant",
                            learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False, shuffle=True,
                            random_state=0)
        w = min(data.shape[0], 4 * batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(data[:w], labels[:w], classes=np.arange(MNIST[-1]))  # warm-up; builds the layers
            out = time_each(lambda r: (clf.partial_fit(data, labels), clf.loss_)[1],  # one epoch per call
                            repeats=a.fit_repeats, budget=a.budget)
        out["extra"] = {"dtype": str(clf.coefs_[0].dtype)}
        return out

    unit, work = ("ms/epoch", 1) if case == "sklearn_epoch" else ("samples/s", data.shape[0])
    R.run(case, "sklearn", "sklearn MLPClassifier", path, unit, work, measure, group="peer-sklearn",
          reused_from=reused_from, batch=batch, n=data.shape[0])


SKLEARN_FIT_PATH = "partial_fit (1 epoch)"


def case_train(R: Runner, case: str, batch: int, hidden: str = "relu") -> None:
    a = R.a
    data, labels = _mnist_data(R)
    X = data.T
    n = X.shape[1]
    for be in a.backends:
        if not R.want(be):
            continue

        def measure(be=be):
            net = new_net(MNIST, be, hidden)
            opt = pynn.SGD(LR)
            batches = [(X[:, s:s + batch], labels[s:s + batch]) for s in range(0, n - batch + 1, batch)]
            nb = len(batches)
            return time_loop(lambda i: net.train_step(*batches[i % nb], "cross_entropy", opt), warmup=a.warmup,
                             target=a.target, repeats=a.repeats, calibrate=a.calibrate)
        R.run(case, be, f"pynn {be}", "train_step", "samples/s", batch, measure, group=be, backend=be, batch=batch)
        _pynn_fit(R, case, be, hidden, batch, "fit")

    if R.want("peer-numpy"):
        def measure_np():
            net = NumpyMLP(MNIST, hidden=hidden)
            batches = [(data[s:s + batch], labels[s:s + batch]) for s in range(0, n - batch + 1, batch)]
            nb = len(batches)
            return time_loop(lambda i: net.step(*batches[i % nb], LR), warmup=a.warmup, target=a.target,
                             repeats=a.repeats, calibrate=a.calibrate)
        R.run(case, "numpy-loop", "numpy loop", "step", "samples/s", batch, measure_np, group="peer-numpy",
              batch=batch)
    if R.want("peer-torch") and (torch := R.torch()) is not None:
        def measure_torch():
            model = torch_mlp(torch, MNIST, hidden)
            crit = torch.nn.CrossEntropyLoss()
            opt = torch.optim.SGD(model.parameters(), lr=LR)
            xt, yt = torch.from_numpy(data), torch.from_numpy(labels.astype(np.int64))
            batches = [(xt[s:s + batch], yt[s:s + batch]) for s in range(0, n - batch + 1, batch)]
            nb = len(batches)

            def step(i):
                xb, yb = batches[i % nb]
                opt.zero_grad(set_to_none=True)
                loss = crit(model(xb), yb)
                loss.backward()
                opt.step()
                return loss.item()  # pynn's train_step returns J too

            return time_loop(step, warmup=a.warmup, target=a.target, repeats=a.repeats, calibrate=a.calibrate)
        R.run(case, "torch", "torch eager", "step", "samples/s", batch, measure_torch, group="peer-torch",
              batch=batch)
    _sklearn_epoch(R, case, hidden, batch, SKLEARN_FIT_PATH)


def sklearn_epoch_sources(rows: list[dict], group: str) -> dict[int, dict] | None:
    """The rows of the train_b32/128/512 cases that already timed what sklearn_epoch times for
    ``group`` (one-epoch fits of the same data), by batch size; None unless all three exist."""
    rid = f"sklearn:{SKLEARN_FIT_PATH}" if group == "peer-sklearn" else f"{group}:fit"
    src = {b: _find(rows, f"train_b{b}", rid) for b in (32, 128, 512)}
    return src if all(src.values()) else None


def case_sklearn_epoch(R: Runner) -> None:
    groups = [*R.a.backends, "peer-sklearn"]
    sources = {g: sklearn_epoch_sources(R.rows, g) for g in groups}
    for batch in (32, 128, 512):
        for be in R.a.backends:
            src = sources[be]
            _pynn_fit(R, "sklearn_epoch", be, "relu", batch, f"fit b={batch}", reused_from=src and src[batch])
        src = sources["peer-sklearn"]
        _sklearn_epoch(R, "sklearn_epoch", "relu", batch, f"partial_fit b={batch}", reused_from=src and src[batch])


def _tiny_xy():
    X = np.array([[0.5], [-1.0]], np.float32)  # (2, 1)
    Y = np.array([[1.0]], np.float32)  # (1, 1)
    return X, Y


def case_step_221(R: Runner) -> None:
    a = R.a
    X, Y = _tiny_xy()
    for be in a.backends:
        def measure(be=be):
            net = new_net(TINY, be, "sigmoid", "sigmoid")
            opt = pynn.SGD(0.1)
            ts = net.train_step
            return time_loop(lambda i: ts(X, Y, "bce", opt), warmup=max(a.warmup, 100), target=a.target,
                             repeats=a.repeats, calibrate=a.calibrate)
        R.run("step_221", be, f"pynn {be}", "train_step", "µs/call", 1, measure, group=be, backend=be)
    if R.want("peer-torch") and (torch := R.torch()) is not None:
        def measure_torch():
            model = torch_mlp(torch, TINY, "sigmoid", output="sigmoid")
            crit = torch.nn.BCELoss()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            xt, yt = torch.from_numpy(X.T.copy()), torch.from_numpy(Y.T.copy())

            def step(i):
                opt.zero_grad(set_to_none=True)
                loss = crit(model(xt), yt)
                loss.backward()
                opt.step()
                return loss  # no .item(): the step is zero_grad/forward/loss/backward/step

            return time_loop(step, warmup=max(a.warmup, 100), target=a.target, repeats=a.repeats,
                             calibrate=a.calibrate)
        R.run("step_221", "torch", "torch eager", "step", "µs/call", 1, measure_torch, group="peer-torch")


def case_fit_221(R: Runner) -> None:
    a = R.a
    rng = np.random.default_rng(0)
    data = rng.standard_normal((a.n_tiny, 2), dtype=np.float32)
    y = (data[:, 0] * data[:, 1] > 0).astype(np.float32)[:, None]  # XOR of the signs
    X, Y = data.T, y.T  # (2, n) and (1, n): views

    for be in a.backends:
        def measure(be=be):
            net = new_net(TINY, be, "sigmoid", "sigmoid")
            opt = pynn.SGD(0.1)
            w = min(200, X.shape[1])
            t0 = time.perf_counter()  # warm-up epoch on a subset; also sizes the timed epoch
            net.fit(X[:, :w], Y[:, :w], loss="bce", optimizer=opt, epochs=1, batch_size=1, seed=0)
            per_example = (time.perf_counter() - t0) / w
            # slow backends train on a prefix sized for ~4 x target seconds (the per-example cost
            # doesn't depend on n); the fast ones on all 10^5 examples
            m = int(min(X.shape[1], max(w, 4 * a.target / per_example)))
            Xm, Ym = X[:, :m], Y[:, :m]
            out = time_each(lambda r: net.fit(Xm, Ym, loss="bce", optimizer=opt, epochs=1, batch_size=1,
                                              shuffle=True, seed=r).history["loss"][-1],
                            repeats=a.fit_repeats, budget=a.budget)
            out["work"], out["extra"] = m, {"n": m}
            return out
        R.run("fit_221", be, f"pynn {be}", "fit", "µs/example", X.shape[1], measure, group=be, backend=be)


def case_predict(R: Runner, case: str) -> None:
    a = R.a
    sizes, hidden, output = (MNIST, "relu", "softmax") if case == "predict1_784" else (TINY, "sigmoid", "sigmoid")
    x = np.random.default_rng(0).standard_normal((sizes[0], 1), dtype=np.float32)
    for be in a.backends:
        def measure(be=be):
            pred = new_net(sizes, be, hidden, output).predict
            return time_loop(lambda i: pred(x), warmup=max(a.warmup, 100), target=a.target, repeats=a.repeats,
                             calibrate=a.calibrate)
        R.run(case, be, f"pynn {be}", "predict", "µs/call", 1, measure, group=be, backend=be)
    if R.want("peer-torch") and (torch := R.torch()) is not None:
        def measure_torch():
            model = torch_mlp(torch, sizes, hidden, output="sigmoid" if output == "sigmoid" else None)
            if output == "softmax":
                model.append(torch.nn.Softmax(dim=1))
            model.eval()
            xt = torch.from_numpy(x.T.copy())
            with torch.inference_mode():
                return time_loop(lambda i: model(xt), warmup=max(a.warmup, 100), target=a.target,
                                 repeats=a.repeats, calibrate=a.calibrate)
        R.run(case, "torch", "torch eager", "forward", "µs/call", 1, measure_torch, group="peer-torch")


def case_big_mse(R: Runner) -> None:
    a = R.a
    sizes, batch = a.big_sizes, a.big_batch
    flops = 6.0 * batch * sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))  # 3 x (2 x B x Σ n_in n_out)
    rng = np.random.default_rng(0)
    nb = 2
    data = rng.standard_normal((nb * batch, sizes[0]), dtype=np.float32)
    target = rng.standard_normal((nb * batch, sizes[-1]), dtype=np.float32)
    X, Y = data.T, target.T  # F-ordered views
    lr = 1e-4  # small enough that random targets never diverge in the few steps timed
    big = dict(min_calibrate=1, calibrate=0.0, warmup=1, target=a.big_target)
    for be in a.backends:
        def measure(be=be):
            net = new_net(sizes, be, "relu", "linear")
            opt = pynn.SGD(lr)
            batches = [(X[:, s:s + batch], Y[:, s:s + batch]) for s in range(0, nb * batch, batch)]
            return time_loop(lambda i: net.train_step(*batches[i % nb], "mse", opt), repeats=a.repeats, **big)
        R.run("big_mse", be, f"pynn {be}", "train_step", "GFLOP/s", flops, measure, group=be, backend=be,
              batch=batch, sizes=list(sizes))
    if R.want("peer-numpy"):
        def measure_np():
            net = NumpyMLP(sizes, hidden="relu", output="linear")
            batches = [(data[s:s + batch], target[s:s + batch]) for s in range(0, nb * batch, batch)]
            return time_loop(lambda i: net.step(*batches[i % nb], lr), repeats=a.repeats, **big)
        R.run("big_mse", "numpy-loop", "numpy loop", "step", "GFLOP/s", flops, measure_np, group="peer-numpy",
              batch=batch)
    if R.want("peer-torch") and (torch := R.torch()) is not None:
        def measure_torch():
            model = torch_mlp(torch, sizes, "relu")
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            xt, yt = torch.from_numpy(data), torch.from_numpy(target)
            batches = [(xt[s:s + batch], yt[s:s + batch]) for s in range(0, nb * batch, batch)]

            def step(i):
                xb, yb = batches[i % nb]
                opt.zero_grad(set_to_none=True)
                loss = 0.5 * ((model(xb) - yb) ** 2).sum(dim=1).mean()  # pynn's mse
                loss.backward()
                opt.step()
                return loss.item()

            return time_loop(step, repeats=a.repeats, **big)
        R.run("big_mse", "torch", "torch eager", "step", "GFLOP/s", flops, measure_torch, group="peer-torch",
              batch=batch)


def case_sigmoid(R: Runner) -> None:
    a = R.a
    shape = a.sig_shape
    Z = np.random.default_rng(0).standard_normal(shape, dtype=np.float32) * 4
    A = np.empty_like(Z)
    n = Z.size
    for be in a.backends:
        if R.want(be):
            k = get_backend(be)
            R.run("sigmoid_1e7", be, f"pynn {be}", "sigmoid_forward", "Melem/s", n,
                  R.loop(lambda i, k=k: k.sigmoid_forward(Z, A), min_calibrate=2), group=be, backend=be,
                  shape=list(shape))
    if R.want("peer-numpy"):
        R.run("sigmoid_1e7", "numpy-divide", "numpy", SIGMOID_NUMPY_PATH, "Melem/s", n,
              R.loop(lambda i: np.divide(1, 1 + np.exp(-Z), out=A), min_calibrate=2), group="peer-numpy",
              shape=list(shape))

        def inplace(i):
            np.negative(Z, out=A)
            np.exp(A, out=A)
            np.add(A, 1, out=A)
            np.reciprocal(A, out=A)
        R.run("sigmoid_1e7", "numpy-inplace", "numpy", "in place, no temporaries", "Melem/s", n,
              R.loop(inplace, min_calibrate=2), group="peer-numpy", shape=list(shape))


SIGMOID_NUMPY_PATH = "np.divide(1, 1+np.exp(-x), out=A)"

# the peers each case has (besides the pynn backends)
CASE_PEERS = {"sgemm": ("numpy",), "train_b32": ("numpy", "torch", "sklearn"),
              "train_b128": ("numpy", "torch", "sklearn"), "train_b512": ("numpy", "torch", "sklearn"),
              "train_sigmoid_b128": ("numpy", "torch", "sklearn"), "step_221": ("torch",), "fit_221": (),
              "predict1_784": ("torch",), "predict1_221": ("torch",), "big_mse": ("numpy", "torch"),
              "sigmoid_1e7": ("numpy",), "sklearn_epoch": ("sklearn",)}


def run_case(R: Runner, case: str) -> None:
    {"sgemm": lambda: case_sgemm(R), "train_b32": lambda: case_train(R, "train_b32", 32),
     "train_b128": lambda: case_train(R, "train_b128", 128), "train_b512": lambda: case_train(R, "train_b512", 512),
     "train_sigmoid_b128": lambda: case_train(R, "train_sigmoid_b128", 128, "sigmoid"),
     "step_221": lambda: case_step_221(R), "fit_221": lambda: case_fit_221(R),
     "predict1_784": lambda: case_predict(R, "predict1_784"), "predict1_221": lambda: case_predict(R, "predict1_221"),
     "big_mse": lambda: case_big_mse(R), "sigmoid_1e7": lambda: case_sigmoid(R),
     "sklearn_epoch": lambda: case_sklearn_epoch(R)}[case]()


# ------------------------------------------------------------------------------------- report
def merge_rounds(rows: list[dict]) -> list[dict]:
    """One row per (case, contender, path): the repeats of every round pooled (median and spread
    over all of them), each round's median kept in ``round_medians``, and the largest ``others``."""
    merged: dict[tuple, dict] = {}
    for r in rows:
        k = (r["case"], r["id"])
        m = merged.get(k)
        if m is None or ("error" in m and "error" not in r):
            merged[k] = m = {**r, "round_medians": [r["median"]] if "error" not in r else []}
            m["seconds_per_call"] = list(r.get("seconds_per_call", []))
            m["values"] = list(r.get("values", []))
            continue
        if "error" in r:
            m.setdefault("errors", []).append(r["error"])
            continue
        m["seconds_per_call"] += r["seconds_per_call"]
        m["values"] += r["values"]
        m["round_medians"].append(r["median"])
        m["others_cores"] = max((x for x in (m.get("others_cores"), r.get("others_cores")) if x is not None),
                                default=None)
        m.update(stats(m["values"]))
    out = list(merged.values())
    for m in out:
        m.pop("round", None)
    return out


def _find(rows, case, rid):
    return next((r for r in rows if r["case"] == case and r["id"] == rid and "error" not in r), None)


def speedup(r: dict, ref: dict) -> float:
    """How many times faster ``r`` is than ``ref`` (from the medians)."""
    return r["median"] / ref["median"] if r["higher_is_better"] else ref["median"] / r["median"]


def results_table(rows: list[dict], backends: list[str]) -> str:
    head = ("case", "contender", "path", "median", "unit", "spread min–max", "vs peer", "time ÷ cpp", "others")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["case"], r["name"], r["path"], "error", r["unit"], "", "", "", ""])
            continue
        peer = _find(rows, r["case"], CASE_PEER.get(r["case"], ""))
        if r["case"] == "sklearn_epoch" and r["key"] != "sklearn":
            peer = _find(rows, r["case"], f"sklearn:partial_fit b={r['batch']}")
        vs = f"{speedup(r, peer):.2f}× {peer['key'].split('-')[0]}" if peer and peer is not r else ""
        cpp = _find(rows, r["case"], f"cpp:{r['path']}") if r.get("backend") else None
        rel = f"{1 / speedup(r, cpp):.2f}" if cpp else ""
        lines.append([r["case"], r["name"], r["path"] + (" ↺" if r.get("reused_from") else ""), fmt(r["median"]),
                      r["unit"], f"{fmt(r['min'])}–{fmt(r['max'])}", vs, rel, _others(r.get("others_cores"))])
    return markdown_table(head, lines, n_left=3)


def _others(cores: float | None) -> str:
    return "" if cores is None else f"{cores:.2f}{' ⚠' if cores > BUSY else ''}"


BUSY = 0.25  # cores used by other processes during a row's timing above which it is flagged


def evaluate_checks(rows: list[dict], backends: list[str]) -> tuple[list[dict], str]:
    """Apply the issue's targets to every backend (the cpp backend's verdict is pynn's), plus
    numba's time within 2x of cpp's on each path that has a target."""
    sgemm = _find(rows, "sgemm", "cpp:dense_forward")
    results, lines = [], []
    head = ["case", "path", "target", *backends, "numba ÷ cpp ≤ 2"]
    seen_paths = set()
    for c in _checks():
        if not any(r["case"] == c["case"] for r in rows):
            continue
        seen_paths.add((c["case"], c["path"]))
        cells = [c["case"], c["path"], c["target"]]
        res = {**c, "backends": {}}
        for be in backends:
            r = _find(rows, c["case"], f"{be}:{c['path']}")
            value, ok = None, None
            if r is not None:
                if c["kind"] == "peer":
                    peer = _find(rows, c["case"], c["peer"])
                    if peer is not None:
                        value = speedup(r, peer)
                        ok = value >= c["k"]
                        shown = f"{value:.2f}×"
                elif c["kind"] == "max":
                    value = r["median"]
                    ok = value <= c["k"]
                    shown = f"{fmt(value)} µs"
                elif c["kind"] == "sgemm" and sgemm is not None:
                    value = r["median"] / sgemm["median"]
                    ok = value >= c["k"]
                    shown = f"{value:.2f}× ({fmt(r['median'])})"
            res["backends"][be] = {"value": value, "pass": ok}
            cells.append("n/a" if ok is None else f"{shown} {'PASS' if ok else 'FAIL'}")
        res["numba_vs_cpp"] = _numba_check(rows, c["case"], c["path"])
        cells.append(_numba_cell(res["numba_vs_cpp"]))
        results.append(res)
        lines.append(cells)
    # numba within 2x of cpp on every other path where both ran (no issue target of its own)
    for r in rows:
        if r.get("backend") == "cpp" and "error" not in r and (r["case"], r["path"]) not in seen_paths:
            seen_paths.add((r["case"], r["path"]))
            chk = _numba_check(rows, r["case"], r["path"])
            if chk is None:
                continue
            results.append({"case": r["case"], "path": r["path"], "kind": "numba", "target": "numba ≤ 2× cpp",
                            "numba_vs_cpp": chk})
            lines.append([r["case"], r["path"], "—", *([""] * len(backends)), _numba_cell(chk)])
    if not {"numba", "cpp"} <= set(backends):  # no numba/cpp pair: drop that column
        head, lines = head[:-1], [l[:-1] for l in lines]
    return results, markdown_table(head, lines, n_left=3)


def _numba_check(rows, case, path):
    nb, cpp = _find(rows, case, f"numba:{path}"), _find(rows, case, f"cpp:{path}")
    if nb is None or cpp is None:
        return None
    ratio = 1 / speedup(nb, cpp)  # numba time ÷ cpp time
    return {"ratio": ratio, "pass": ratio <= 2.0}


def _numba_cell(chk):
    return "n/a" if chk is None else f"{chk['ratio']:.2f} {'PASS' if chk['pass'] else 'FAIL'}"


# ------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--cases", default=None, help=f"comma-separated cases (default: all): {','.join(CASES)}")
    p.add_argument("--backends", default=None,
                   help="comma-separated pynn backends (default: all of pynn.available_backends())")
    p.add_argument("--peers", default="numpy,torch,sklearn",
                   help="comma-separated peers from numpy,torch,sklearn, or 'none' (default: all)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per contender (default 7; --quick 3)")
    p.add_argument("--fit-repeats", type=int, default=None,
                   help="timed one-epoch fit calls per contender (default 5; --quick 3)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every case R times, one round after another, and pool the repeats of all rounds "
                        "(spreads each contender's timing over the run, so slow spells of a shared machine "
                        "hit all contenders alike; default 1)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for every pool: pynn.set_num_threads, torch.set_num_threads and NumPy's BLAS "
                        "via threadpoolctl (default 2)")
    p.add_argument("--target", type=float, default=None,
                   help="seconds per timed repeat (the call count is calibrated to it; default 0.2; --quick 0.05)")
    p.add_argument("--warmup", type=int, default=8, help="warm-up calls before calibration (default 8)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds after which a slow one-epoch fit stops repeating (min 3; default 4; --quick 1)")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds of idle between contenders, so busy-waiting pools park (default 0.3)")
    p.add_argument("--isolate", choices=("case", "group", "none"), default=None,
                   help="case (default): each contender of each case runs in a fresh Python process that imports "
                        "only what that contender needs, as its users would; group (the --quick default): one "
                        "process per backend or peer runs all its cases; none: everything in this process, one "
                        "contender after another (the contenders' runtimes then share the process: importing "
                        "pynn's numba backend slows PyTorch 2x, see README)"),
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each contender, wait up to S seconds until other processes use < 0.15 cores "
                        "(default 0: don't wait)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run in under a minute: 3 repeats, shorter repeats, smaller sizes (sgemm 1024², "
                        "2048 examples, fit_221 on 10^4, big_mse 512-2048-2048-512 batch 128, sigmoid 10^6)")
    p.add_argument("--json", metavar="PATH", default=str(Path(__file__).resolve().parent / "results.json"),
                   help="where to write the results as JSON (default bench/results.json; '' for none)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one contender group
    a = p.parse_args(argv)
    q = a.quick
    a.isolate = a.isolate or ("group" if q else "case")
    a.repeats = a.repeats or (3 if q else 7)
    a.fit_repeats = a.fit_repeats or (3 if q else 5)
    a.target = a.target or (0.05 if q else 0.2)
    a.calibrate = 0.05 if q else 0.15
    a.budget = a.budget or (1.0 if q else 4.0)
    a.sgemm_n = 1024 if q else 2048
    a.n = 2048 if q else 8192
    a.n_tiny = 10_000 if q else 100_000
    a.big_sizes, a.big_batch = ((512, 2048, 2048, 512), 128) if q else ((1024, 4096, 4096, 1024), 256)
    a.big_target = 0.0  # one step per timed repeat: each is ~39 GFLOP (0.2-0.3 s here)
    a.sig_shape = (100, 10_000) if q else (1000, 10_000)
    for name in ("repeats", "fit_repeats", "threads", "warmup", "rounds"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.cases is None:
        a.cases = list(CASES)
    else:
        a.cases = [s.strip() for s in a.cases.split(",") if s.strip()]
        bad = [s for s in a.cases if s not in CASES]
        if bad:
            p.error(f"--cases: unknown {bad}; choose from {','.join(CASES)}")
    if a.worker is not None:  # the parent checked them; asking pynn would import every backend here
        a.backends = [s for s in a.backends.split(",") if s]
        a.peers = [] if a.peers.strip() == "none" else [s.strip() for s in a.peers.split(",") if s.strip()]
    else:
        parse_backends_and_peers(p, a, available_backends(in_subprocess=a.isolate != "none"))
    return a


def available_backends(in_subprocess: bool) -> list[str]:
    """pynn.available_backends(), asked in a child process when the contenders run in workers:
    asking imports every backend (Numba starts its OpenMP threads), which the parent has no use
    for and whose compiled core would crash it at exit if the core were rebuilt meanwhile."""
    if not in_subprocess:
        return pynn.available_backends()
    import subprocess

    root = str(Path(pynn.__file__).resolve().parents[1])
    code = f"import sys; sys.path.insert(0, {root!r}); import pynn; print(','.join(pynn.available_backends()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return pynn.available_backends()
    return [s for s in out.stdout.strip().split(",") if s]


def _versions() -> dict:
    out = {}
    for mod in ("torch", "sklearn", "numba"):
        if mod in sys.modules:
            out[mod] = sys.modules[mod].__version__
    if "numba" in sys.modules:
        try:
            out["numba_threading_layer"] = sys.modules["numba"].threading_layer()
        except Exception:  # raises before any parallel kernel ran
            pass
    return out


def worker_main(a) -> int:
    """One contender group (a backend or a peer) of one case, in a process of its own; the rows
    go to ``--json`` for the parent."""
    group = a.worker
    R = Runner(a, only=group)
    if group in a.backends:
        get_backend(group)  # load it first, so the thread limits below reach its pools
        limit_threads(a.threads, pynn)
    else:  # a peer's process imports nothing of pynn's backends
        limit_threads(a.threads, None)
    for case in a.cases:
        run_case(R, case)
    Path(a.json).write_text(json.dumps({"rows": R.rows, "skipped": R.skipped, "versions": _versions(),
                                        "waited": R.waited}, default=float, ensure_ascii=False))
    return 0


def spawn(a, case: str, group: str) -> dict:
    """Run ``group``'s contenders of ``case`` (a comma list) in a fresh interpreter (this script with
    --worker); returns the rows (an error row if the worker died)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", group, "--cases", case, "--json", str(out),
               "--backends", ",".join(a.backends), "--peers", ",".join(a.peers) or "none",
               "--repeats", str(a.repeats), "--fit-repeats", str(a.fit_repeats), "--threads", str(a.threads),
               "--target", str(a.target), "--warmup", str(a.warmup), "--budget", str(a.budget),
               "--pause", str(a.pause), "--wait-quiet", str(a.wait_quiet), *(["--quick"] if a.quick else [])]
        proc = subprocess.run(cmd)
        if proc.returncode != 0 or not out.exists():
            msg = f"worker for {group} exited with code {proc.returncode}"
            print(f"  {case:<18} {group:<22} FAILED: {msg}", flush=True)
            name = group.replace("peer-", "") if group.startswith("peer-") else f"pynn {group}"
            return {"rows": [{"case": case.split(",")[0], "id": f"{group}:(worker)", "key": group, "name": name,
                              "path": "(worker)", "unit": "", "group": group, "error": msg}]}
        return json.loads(out.read_text())


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker is not None:
        return worker_main(a)
    t_start = time.perf_counter()
    load_before = loadavg()
    inproc = a.isolate == "none"
    need_ref = "big_mse" in a.cases and "sgemm" not in a.cases and "cpp" in a.backends
    limiter, blas_pools = None, []
    if inproc:
        limiter, blas_pools = limit_threads(a.threads, pynn)
        for be in a.backends:  # import every backend now: Numba starts its pool, the core loads its BLAS
            get_backend(be)
        pynn.set_num_threads(a.threads)

    info = machine_info(pynn)
    print(f"pynn {pynn.__version__} ({info.get('git') or 'no git'}) | numpy {np.__version__} | {info.get('cpu', '?')} "
          f"| {info['cpus']} cpus | simd {','.join(info.get('simd', []))}")
    print(f"float32 | threads {a.threads} | backends {','.join(a.backends)} | peers {','.join(a.peers) or 'none'} | "
          f"{a.repeats} repeats of ~{a.target}s (fit: {a.fit_repeats} epochs) | isolate {a.isolate}"
          f"{' | QUICK' if a.quick else ''}")
    if load_before:
        print(f"load average before: {load_before[0]:.2f} (machine is shared; numbers are noisy)")

    R = Runner(a)
    # harness overhead: what the timing loop adds to every call (not subtracted from the µs cases)
    overhead = stats(time_loop(lambda i: None, warmup=100, target=0.05, repeats=5)["seconds"])["median"]
    print(f"timing-loop overhead per call: {overhead * 1e9:.0f} ns (included in the µs/call rows)\n")

    def dump(complete: bool, loadavg_after=None, **more) -> None:
        if not a.json:
            return
        payload = {
            "complete": complete,
            "config": {k: v for k, v in vars(a).items() if k not in ("json", "worker")},
            "machine": {**info, "blas_pools": blas_pools, "loadavg_before": load_before,
                        "loadavg_after": loadavg_after, "loadavg_per_case": R.case_load,
                        "seconds_per_case": R.case_seconds, "timing_overhead_seconds": overhead},
            "results": R.rows if complete else R.done + R.rows, "skipped": R.skipped, **more, "elapsed_seconds": time.perf_counter() - t_start,
        }
        Path(a.json).write_text(json.dumps(payload, indent=2, default=float, ensure_ascii=False) + "\n")

    def run_isolated(case: str, groups: list[str]) -> None:
        for group in groups:
            if case == "sklearn_epoch" and sklearn_epoch_sources(R.rows, group):
                R.only = group  # every row comes from the train_b* cases: nothing to time
                case_sklearn_epoch(R)
                R.only = None
                continue
            merge(spawn(a, case, group))

    def merge(res: dict) -> None:
        R.rows += res["rows"]
        R.skipped.update(res.get("skipped", {}))
        info.update(res.get("versions", {}))
        R.waited += res.get("waited", 0.0)

    def groups_of(case: str) -> list[str]:
        return [*a.backends, *(f"peer-{p}" for p in CASE_PEERS[case] if p in a.peers)]

    def one_round() -> None:
        cases = [c for c in CASES if c in a.cases]
        if need_ref:
            print("  (big_mse's target needs pynn's sgemm of this run: timing sgemm's cpp row too)")
            if inproc:
                case_sgemm(R, backends=["cpp"])
            elif a.isolate == "case":
                run_isolated("sgemm", ["cpp"])
        if a.isolate == "group":  # one process per backend or peer, each running all of its cases
            order = [*a.backends, *(f"peer-{p}" for p in a.peers)]
            for group in order:
                todo = [c for c in cases if group in groups_of(c)] + (["sgemm"] if need_ref and group == "cpp" else [])
                if todo:
                    t0 = time.perf_counter()
                    merge(spawn(a, ",".join(todo), group))
                    R.case_seconds[group] = R.case_seconds.get(group, 0.0) + time.perf_counter() - t0
                    dump(complete=False)
            rank = {c: i for i, c in enumerate(CASES)}
            R.rows.sort(key=lambda r: (rank[r["case"]], order.index(r["group"])))  # stable: keeps paths in order
            return
        for case in cases:
            R.case_load.setdefault(case, loadavg()[0] if loadavg() else None)
            t0 = time.perf_counter()
            if inproc:
                run_case(R, case)
            else:
                run_isolated(case, groups_of(case))
            R.case_seconds[case] = R.case_seconds.get(case, 0.0) + time.perf_counter() - t0
            dump(complete=False)  # a crash later (or Ctrl-C) keeps what was measured so far

    for rnd in range(a.rounds):
        if a.rounds > 1:
            print(f"\n-- round {rnd + 1} of {a.rounds}")
        R.rows = []
        one_round()
        for r in R.rows:
            r["round"] = rnd
        R.done += R.rows
    R.rows = merge_rounds(R.done)

    load_after = loadavg()
    if limiter is not None:
        limiter.restore_original_limits()
    elapsed = time.perf_counter() - t_start
    if inproc:
        info.update(_versions())

    print("\n### Results\n")
    table = results_table(R.rows, a.backends)
    print(table)
    checks, check_table = evaluate_checks(R.rows, a.backends)
    print("\n### Targets\n")
    print(check_table)
    cpp_checks = [c["backends"]["cpp"]["pass"] for c in checks if "backends" in c and "cpp" in c["backends"]
                  and c["backends"]["cpp"]["pass"] is not None]
    nb_checks = [c["numba_vs_cpp"]["pass"] for c in checks if c.get("numba_vs_cpp")]
    print()
    notes = [
        "median of the repeats; spread = slowest and fastest repeat; 'vs peer' = how many times faster than the "
        "case's reference peer (torch eager; NumPy for sgemm and sigmoid; sklearn for sklearn_epoch); "
        "'time ÷ cpp' = this backend's time over the cpp backend's on the same path; ↺ = reused from the "
        "train_b* case of this run; others = cores that other processes kept busy while the row was timed "
        f"(/proc/stat minus the timing process's CPU time), ⚠ above {BUSY}: that row was disturbed",
        f"targets met by pynn (cpp): {sum(cpp_checks)}/{len(cpp_checks)}; numba within 2× of cpp: "
        f"{sum(nb_checks)}/{len(nb_checks)}",
    ]
    disturbed = [f"{r['case']}/{r['name']}/{r['path']}" for r in R.rows if (r.get("others_cores") or 0) > BUSY]
    if disturbed:
        notes.append(f"{len(disturbed)} row(s) timed while other processes were busy (⚠): rerun them at a quiet moment")
    if a.wait_quiet > 0:
        notes.append(f"waited {R.waited:.0f} s in all for quiet moments (--wait-quiet {a.wait_quiet:g})")
    if R.skipped:
        notes += [f"{k} skipped: {v}" for k, v in R.skipped.items()]
    if load_after:
        notes.append(f"commit {info.get('git')}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
                     f"total {elapsed:.0f} s")
    for line in notes:
        print(line)

    if a.json:
        dump(complete=True, checks=checks, table=table, targets_table=check_table, loadavg_after=load_after)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
