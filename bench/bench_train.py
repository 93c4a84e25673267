#!/usr/bin/env python
"""Training throughput of pynn's backends next to its peers, measured in one run.

The network is 784-256-256-10 (relu hidden layers, softmax output, cross-entropy loss),
float32, mini-batches of 128, plain SGD with lr=0.01, on synthetic data (8192 random examples
of 784 features, random labels, fixed seed). Contenders, each timed alone and in sequence:

* every available pynn backend (``pynn.available_backends()``), twice: ``net.train_step`` in a
  loop over pre-sliced batches (views ``X[:, s:e]`` of the F-ordered ``data.T``: no copies), and
  ``net.fit`` for one epoch (shuffles and gathers each batch, as users train);
* a plain NumPy training loop with the same math (row-major ``x @ W.T``), "numpy loop";
* PyTorch CPU eager (``nn.Sequential`` + ``CrossEntropyLoss`` + ``optim.SGD``), if importable;
* scikit-learn's ``MLPClassifier`` (solver="sgd", no momentum, no L2) timed through
  ``partial_fit``, if importable.

Method: each contender is warmed up (the first call compiles Numba kernels, allocates
workspaces, starts thread pools), a short calibration picks a fixed number of steps giving about
``--target`` seconds, and then R repeats of those steps are timed; we report the median and the
spread in samples per second. Thread pools (NumPy's OpenBLAS, pynn's OpenBLAS, Numba's and
torch's) busy-wait after each call, so the contenders run strictly one after another, with a
pause between them for the previous pools to park.

Run ``python bench/bench_train.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers next to this file
from _common import NumpyMLP, limit_threads, machine_info as _machine_info, markdown_table, stats as _stats  # noqa: E402
from _common import parse_backends_and_peers, time_each, time_loop  # noqa: E402

try:  # run from a source checkout without installing: python bench/bench_train.py
    import pynn
except ImportError:  # pragma: no cover - depends on how the script is run
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pynn

SIZES = (784, 256, 256, 10)
N_CLASSES = SIZES[-1]
LR = 0.01
LOSS = "cross_entropy"
TORCH_HINT = 'pip install torch==2.13.0   (or: pip install ".[bench]")'


# ------------------------------------------------------------------------------------- timing
def time_steps(step, n_batches: int, batch: int, *, warmup: int, target: float, repeats: int) -> dict:
    """Warm up, calibrate a fixed step count for ~``target`` seconds, then time ``repeats`` runs.

    ``step(i)`` runs one training step on pre-sliced batch ``i % n_batches`` and returns the loss.
    """
    r = time_loop(lambda i: step(i % n_batches), warmup=warmup, target=target, repeats=repeats, min_calls=4)
    steps = r["calls_per_repeat"]
    rates = [batch / s for s in r["seconds"]]
    return {"rates": rates, "steps_per_repeat": steps, "samples_per_repeat": steps * batch,
            "last_loss": float(r["last"]), **_stats(rates)}


def time_calls(call, samples: int, *, repeats: int, budget: float = float("inf")) -> dict:
    """Time ``repeats`` calls of ``call(r)`` that each train on ``samples`` examples; stop early
    (after at least 3) once ``budget`` seconds are spent, so a slow contender can't stall the run."""
    r = time_each(call, repeats=repeats, budget=budget)
    rates = [samples / s for s in r["seconds"]]
    return {"rates": rates, "samples_per_repeat": samples, "last_loss": float(r["last"]), **_stats(rates)}


# ------------------------------------------------------------------------------------- contenders
def bench_pynn_step(backend: str, data: np.ndarray, labels: np.ndarray, a) -> dict:
    X = data.T  # (784, n), F-ordered: a view, no copy
    net = pynn.Network.from_sizes(SIZES, hidden="relu", output="softmax", dtype="float32",
                                  backend=backend, seed=0)
    opt = pynn.SGD(LR)
    n, b = X.shape[1], a.batch
    batches = [(X[:, s:s + b], labels[s:s + b]) for s in range(0, n - b + 1, b)]
    assert np.shares_memory(batches[0][0], data)  # views, not copies

    def step(i):
        xb, yb = batches[i]
        return net.train_step(xb, yb, LOSS, opt)

    return time_steps(step, len(batches), b, warmup=a.warmup, target=a.target, repeats=a.repeats)


def bench_pynn_fit(backend: str, data: np.ndarray, labels: np.ndarray, a) -> dict:
    X = data.T
    net = pynn.Network.from_sizes(SIZES, hidden="relu", output="softmax", dtype="float32",
                                  backend=backend, seed=0)
    opt = pynn.SGD(LR)
    w = min(X.shape[1], 4 * a.batch)  # warm-up epoch on a small subset: compiles, allocates buffers
    net.fit(X[:, :w], labels[:w], loss=LOSS, optimizer=opt, epochs=1, batch_size=a.batch, seed=0)

    def call(r):
        h = net.fit(X, labels, loss=LOSS, optimizer=opt, epochs=1, batch_size=a.batch, shuffle=True, seed=r)
        return h.history["loss"][-1]

    return time_calls(call, X.shape[1], repeats=a.fit_repeats, budget=a.budget)


def bench_numpy_loop(data: np.ndarray, labels: np.ndarray, a) -> dict:
    net = NumpyMLP(SIZES)
    n, b = data.shape[0], a.batch
    batches = [(data[s:s + b], labels[s:s + b]) for s in range(0, n - b + 1, b)]

    def step(i):
        xb, yb = batches[i]
        return net.step(xb, yb, LR)

    return time_steps(step, len(batches), b, warmup=a.warmup, target=a.target, repeats=a.repeats)


def bench_torch(torch, data: np.ndarray, labels: np.ndarray, a) -> dict:
    nn = torch.nn
    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers).float()  # softmax lives inside CrossEntropyLoss
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt, yt = torch.from_numpy(data), torch.from_numpy(labels.astype(np.int64))
    n, b = data.shape[0], a.batch
    batches = [(xt[s:s + b], yt[s:s + b]) for s in range(0, n - b + 1, b)]

    def step(i):
        xb, yb = batches[i]
        opt.zero_grad(set_to_none=True)
        loss = crit(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()  # pynn's train_step returns J too

    return time_steps(step, len(batches), b, warmup=a.warmup, target=a.target, repeats=a.repeats)


def bench_sklearn(MLPClassifier, data: np.ndarray, labels: np.ndarray, a) -> dict:
    import warnings

    clf = MLPClassifier(hidden_layer_sizes=SIZES[1:-1], activation="relu", solver="sgd", alpha=0.0,
                        batch_size=a.batch, learning_rate="constant", learning_rate_init=LR, momentum=0.0,
                        nesterovs_momentum=False, shuffle=False, random_state=0)
    classes = np.arange(N_CLASSES)
    w = min(data.shape[0], 4 * a.batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(data[:w], labels[:w], classes=classes)  # warm-up; builds the layers
        t0 = time.perf_counter()
        clf.partial_fit(data[:w], labels[:w])
        per_sample = (time.perf_counter() - t0) / w
        # one timed repeat = partial_fit over the first m examples: m // batch steps of batch 128
        m = min(data.shape[0], max(8 * a.batch, round(a.target / per_sample / a.batch) * a.batch))

        def call(r):
            clf.partial_fit(data[:m], labels[:m])
            return clf.loss_

        out = time_calls(call, m, repeats=a.repeats)
    out["steps_per_repeat"] = m // a.batch
    out["dtype"] = str(clf.coefs_[0].dtype)
    return out


# ------------------------------------------------------------------------------------- machine
def machine_info() -> dict:
    return _machine_info(pynn)


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _ratio(x: float, ref: float | None) -> str:
    return f"{x / ref:.2f}x" if ref else "n/a"


def print_table(rows: list[dict], batch: int) -> str:
    ref_np = next((r["median"] for r in rows if r["key"] == "pynn-numpy:train_step"), None)
    ref_torch = next((r["median"] for r in rows if r["key"] == "torch"), None)
    head = ("contender", "path", "median samples/s", "spread min–max", "ms/batch", "vs pynn numpy", "vs torch")
    lines = [[r["name"], r["path"], _fmt_rate(r["median"]), f"{_fmt_rate(r['min'])}–{_fmt_rate(r['max'])}",
              f"{1000 * batch / r['median']:.2f}", _ratio(r["median"], ref_np), _ratio(r["median"], ref_torch)]
             for r in rows]
    text = markdown_table(head, lines)
    print(text)
    return text


# ------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128, help="mini-batch size (default 128)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per contender (default 5)")
    p.add_argument("--fit-repeats", type=int, default=None,
                   help="timed one-epoch fit calls per backend (default: --repeats)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for every pool: pynn.set_num_threads, torch.set_num_threads and NumPy's "
                        "BLAS via threadpoolctl (default: all cores, %(default)s)")
    p.add_argument("--backends", default=None,
                   help="comma-separated pynn backends (default: all of pynn.available_backends())")
    p.add_argument("--peers", default="numpy,torch,sklearn",
                   help="comma-separated peers from numpy,torch,sklearn, or 'none' (default: all)")
    p.add_argument("--no-fit", action="store_true", help="skip the net.fit timings")
    p.add_argument("--n", type=int, default=8192, help="synthetic examples (default 8192)")
    p.add_argument("--target", type=float, default=0.5, help="seconds per timed repeat (default 0.5)")
    p.add_argument("--budget", type=float, default=6.0,
                   help="seconds after which a slow one-epoch fit stops repeating (min 3 repeats; default 6)")
    p.add_argument("--warmup", type=int, default=8, help="warm-up steps before calibration (default 8)")
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds of idle between contenders, so busy-waiting pools park (default 0.5)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON to PATH")
    a = p.parse_args(argv)
    for name in ("batch", "repeats", "threads", "n", "warmup"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(a, name)}")
    if a.n < a.batch:
        p.error(f"--n ({a.n}) must be at least --batch ({a.batch})")
    a.fit_repeats = a.fit_repeats or a.repeats
    parse_backends_and_peers(p, a, pynn.available_backends())
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    t_start = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    # Synthetic data, fixed seed: row-major (n, 784) float32, as users hold it; pynn gets data.T.
    rng = np.random.default_rng(0)
    data = rng.standard_normal((a.n, SIZES[0]), dtype=np.float32)
    labels = rng.integers(0, N_CLASSES, a.n)

    # One thread count for every pool.
    limiter, blas_pools = limit_threads(a.threads, pynn)  # pynn's pools, and NumPy's BLAS via threadpoolctl

    info = machine_info()
    print(f"pynn {pynn.__version__} ({info.get('git') or 'no git'}) | numpy {np.__version__} | {info.get('cpu', '?')} | {info['cpus']} cpus "
          f"| simd {','.join(info.get('simd', []))}")
    print(f"net {'-'.join(map(str, SIZES))} relu/softmax cross_entropy float32 | batch {a.batch} | SGD lr={LR} | "
          f"{a.n} synthetic examples | threads {a.threads} | {a.repeats} repeats of ~{a.target}s")
    if load_before:
        print(f"load average before: {load_before[0]:.2f} (machine is shared; numbers are noisy)")
    print()

    results: list[dict] = []

    def record(key, name, path, res, **extra):
        res = {"key": key, "name": name, "path": path, **extra, **res}
        results.append(res)
        print(f"  {name:<22} {path:<14} median {_fmt_rate(res['median']):>8} samples/s "
              f"(min {_fmt_rate(res['min'])}, max {_fmt_rate(res['max'])})", flush=True)
        time.sleep(a.pause)  # let this contender's spinning pools park before the next one starts

    for be in a.backends:
        record(f"pynn-{be}:train_step", f"pynn {be}", "train_step", bench_pynn_step(be, data, labels, a),
               backend=be)
        if not a.no_fit:
            record(f"pynn-{be}:fit", f"pynn {be}", "fit (1 epoch)", bench_pynn_fit(be, data, labels, a),
                   backend=be)
    if "numba" in a.backends and "numba" in sys.modules:
        try:
            info["numba"] = sys.modules["numba"].__version__
            info["numba_threading_layer"] = sys.modules["numba"].threading_layer()
        except Exception:  # threading_layer() raises before any parallel kernel ran
            pass

    skipped = {}
    if "numpy" in a.peers:
        record("numpy-loop", "numpy loop", "step", bench_numpy_loop(data, labels, a))
    if "torch" in a.peers:
        try:
            import torch
        except ImportError as e:
            skipped["torch"] = f"not importable ({e}); install with: {TORCH_HINT}"
            print(f"  PyTorch skipped: not importable. Install with: {TORCH_HINT}")
        else:
            torch.set_num_threads(a.threads)
            info["torch"] = torch.__version__
            record("torch", "torch eager", "step", bench_torch(torch, data, labels, a))
    if "sklearn" in a.peers:
        try:
            import sklearn
            from sklearn.neural_network import MLPClassifier
        except ImportError as e:
            skipped["sklearn"] = f"not importable ({e}); install with: pip install scikit-learn"
            print("  scikit-learn skipped: not importable (pip install scikit-learn)")
        else:
            info["sklearn"] = sklearn.__version__
            res = bench_sklearn(MLPClassifier, data, labels, a)
            record("sklearn", "sklearn MLPClassifier", "partial_fit", res)

    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    if limiter is not None:
        limiter.restore_original_limits()
    print()
    table = print_table(results, a.batch)
    elapsed = time.perf_counter() - t_start
    print()
    notes = ["ratios are of medians; 'vs pynn numpy' is against pynn's numpy backend (train_step)"]
    if skipped:
        notes += [f"{k} skipped: {v}" for k, v in skipped.items()]
    if load_after:
        notes.append(f"load average after: {load_after[0]:.2f}; total {elapsed:.0f} s")
    for line in notes:
        print(line)

    if a.json:
        payload = {
            "config": {"sizes": SIZES, "activations": ["relu", "relu", "softmax"], "loss": LOSS,
                       "dtype": "float32", "batch": a.batch, "lr": LR, "n": a.n, "repeats": a.repeats,
                       "fit_repeats": a.fit_repeats, "threads": a.threads, "target_seconds": a.target,
                       "backends": a.backends, "peers": a.peers},
            "machine": {**info, "blas_pools": blas_pools, "loadavg_before": load_before,
                        "loadavg_after": load_after},
            "results": results, "skipped": skipped, "table": table, "elapsed_seconds": elapsed,
        }
        Path(a.json).write_text(json.dumps(payload, indent=2, default=float) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
