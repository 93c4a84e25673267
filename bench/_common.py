"""Helpers shared by the benchmarks in this folder (``bench_train.py``, ``bench.py``).

The method (see README.md): warm up each contender, calibrate a fixed number of calls for about
``target`` seconds, time R repeats of those calls, report medians and spreads; run contenders
strictly one after another with a pause between them so busy-waiting thread pools park; one
thread count for every pool (pynn's, Numba's, torch's and NumPy's OpenBLAS via threadpoolctl);
record the machine, the commit and the load average.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------------------------- timing
def stats(values: list[float]) -> dict:
    """Median, min, max and quartiles of a list of measurements."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q[0], "q3": q[2]}


def time_loop(call, *, warmup: int, target: float, repeats: int, calibrate: float = 0.15,
              min_calibrate: int = 3, min_calls: int = 1) -> dict:
    """Warm up, calibrate a fixed call count for ~``target`` seconds, then time ``repeats`` runs.

    ``call(i)`` is one unit of work (``i`` counts calls, e.g. to cycle over pre-sliced batches)
    and returns anything (kept as ``last``). Calibration runs at least ``min_calibrate`` calls and
    ~``calibrate`` seconds (it doubles as a second warm-up); a repeat makes at least ``min_calls``
    calls. Returns the seconds per call of each
    repeat (``seconds``), the calls per repeat and the last return value.
    """
    last = None
    for i in range(warmup):
        last = call(i)
    k, t0 = 0, time.perf_counter()
    while k < min_calibrate or time.perf_counter() - t0 < calibrate:
        last = call(k)
        k += 1
    per_call = (time.perf_counter() - t0) / k
    calls = max(min_calls, round(target / per_call))
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(calls):
            last = call(i)
        seconds.append((time.perf_counter() - t0) / calls)
    return {"seconds": seconds, "calls_per_repeat": calls, "last": last}


def time_each(call, *, repeats: int, budget: float = float("inf"), min_repeats: int = 3) -> dict:
    """Time ``repeats`` single calls of ``call(r)`` (each a large unit of work, e.g. one epoch);
    stop early (after at least ``min_repeats``) once ``budget`` seconds are spent, so a slow
    contender can't stall the run. Returns the seconds of each call and the last return value."""
    seconds, last, start = [], None, time.perf_counter()
    for r in range(repeats):
        if r >= min_repeats and time.perf_counter() - start > budget:
            break
        t0 = time.perf_counter()
        last = call(r)
        seconds.append(time.perf_counter() - t0)
    return {"seconds": seconds, "calls_per_repeat": 1, "last": last}


# ------------------------------------------------------------------------------------- threads
def limit_threads(threads: int, pynn=None) -> tuple[object | None, list[dict]]:
    """One thread count for every pool: pynn's (compiled core and Numba; skipped when ``pynn`` is
    None) and every BLAS loaded so far (NumPy's OpenBLAS, pynn's) through threadpoolctl. Returns the
    threadpoolctl limiter (call ``restore_original_limits()`` at the end; None without
    threadpoolctl) and a description of the BLAS pools."""
    if pynn is not None:
        pynn.set_num_threads(threads)
    try:
        import threadpoolctl
    except ImportError:
        print("note: threadpoolctl not installed; NumPy's BLAS keeps its default thread count")
        return None, []
    limiter = threadpoolctl.threadpool_limits(threads, user_api="blas")  # NumPy's and pynn's OpenBLAS
    pools = [{k: d.get(k) for k in ("internal_api", "prefix", "version", "num_threads")}
             for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
    return limiter, pools


def loadavg() -> tuple[float, float, float] | None:
    return os.getloadavg() if hasattr(os, "getloadavg") else None


class OthersCPU:
    """How many cores *other* processes kept busy over an interval: the machine's busy time from
    /proc/stat minus this process's own CPU time (all its threads, spinning pools included),
    divided by the wall time. A benchmark row measured while this is well above 0 was disturbed;
    the load average can't tell that apart from our own threads. ``None`` where /proc is absent.

    >>> probe = OthersCPU(); ...; cores = probe.stop()
    """

    def __init__(self) -> None:
        self.start()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                vals = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self._t, self._cpu, self._b = time.perf_counter(), time.process_time(), self._busy()

    def stop(self) -> float | None:
        b = self._busy()
        if b is None or self._b is None:
            return None
        wall = time.perf_counter() - self._t
        others = (b - self._b) - (time.process_time() - self._cpu)
        return max(0.0, others / wall) if wall > 0 else None


def wait_quiet(max_wait: float, *, threshold: float = 0.15, window: float = 1.0) -> float:
    """Sleep until other processes use less than ``threshold`` cores over a ``window``-second
    probe, for at most ``max_wait`` seconds; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        probe = OthersCPU()
        time.sleep(window)
        cores = probe.stop()
        if cores is None or cores < threshold:
            break
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------- machine
def machine_info(pynn) -> dict:
    """Platform, versions, CPU model and SIMD flags, and ``git describe --always --dirty`` of the
    source tree ``pynn`` was imported from (which source was measured, and whether it had local
    changes)."""
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "pynn": pynn.__version__}
    try:
        root = Path(pynn.__file__).resolve().parents[1]
        info["git"] = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                                     capture_output=True, text=True, timeout=5).stdout.strip() or None
    except Exception:
        info["git"] = None
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and "cpu" not in info:
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags") and "simd" not in info:
                flags = set(line.split(":", 1)[1].split())
                info["simd"] = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags]
    except OSError:
        pass
    return info


# ------------------------------------------------------------------------------------- output
def markdown_table(head: tuple[str, ...] | list[str], lines: list[list[str]], n_left: int = 2) -> str:
    """A Markdown table padded for reading as plain text: the first ``n_left`` columns left
    aligned, the others right aligned."""
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]

    def fmt(cells):
        return "| " + " | ".join(c.ljust(w) if i < n_left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [fmt(head), "|" + "|".join(("-" * (w + 1) + ":" if i >= n_left else "-" * (w + 2))
                                     for i, w in enumerate(widths)) + "|"]
    out += [fmt(l) for l in lines]
    return "\n".join(out)


# ------------------------------------------------------------------------------------- peers
class NumpyMLP:
    """A plain NumPy MLP training loop on row-major batches (``x``: (B, n_in)), the peer that
    shows what NumPy alone does with the same math: ``z = a @ W.T + b``, ``hidden`` activation
    (relu or sigmoid) on hidden layers, and the output/loss pair ``output`` (``"softmax"`` with
    cross-entropy on integer labels, or ``"linear"`` with ``mse = 1/2 Σ_k (yhat - y)²`` on dense
    targets), backward with ``dJ/dz = (yhat - y) / B``, then plain SGD layer by layer."""

    def __init__(self, sizes, seed: int = 0, dtype=np.float32, hidden: str = "relu",
                 output: str = "softmax") -> None:
        if hidden not in ("relu", "sigmoid") or output not in ("softmax", "linear"):
            raise ValueError(f"unsupported hidden={hidden!r} / output={output!r}")
        self.hidden, self.output = hidden, output
        rng = np.random.default_rng(seed)
        self.W, self.b = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            # He-uniform for relu layers, Glorot-uniform otherwise, as pynn draws them
            var = 2.0 / n_in if hidden == "relu" else 2.0 / (n_in + n_out)
            lim = np.sqrt(3 * var)
            self.W.append(rng.uniform(-lim, lim, (n_out, n_in)).astype(dtype))
            self.b.append(np.zeros(n_out, dtype))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        B, L = x.shape[0], len(self.W)
        acts = [x]
        for l in range(L):  # forward: z = a @ W.T + b; activation on hidden layers
            z = acts[-1] @ self.W[l].T
            z += self.b[l]
            if l < L - 1:
                if self.hidden == "relu":
                    np.maximum(z, 0, out=z)
                else:
                    np.negative(z, out=z)
                    np.exp(z, out=z)
                    z += 1
                    np.reciprocal(z, out=z)
            acts.append(z)
        out = acts[-1]
        if self.output == "softmax":
            out -= out.max(axis=1, keepdims=True)  # softmax, in place on the logits
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
            p, rows = out, np.arange(B)
            loss = -float(np.log(p[rows, y]).mean())
            g = p  # softmax + cross-entropy: dJ/dz = (p - onehot) / B
            g[rows, y] -= 1
            g /= B
        else:
            g = out - y  # linear + mse: dJ/dz = (yhat - y) / B
            loss = 0.5 * float(np.einsum("ij,ij->", g, g)) / B
            g /= B
        for l in range(L - 1, -1, -1):  # backward, then SGD on this layer
            dW = g.T @ acts[l]
            db = g.sum(axis=0)
            if l > 0:
                g = g @ self.W[l]
                a = acts[l]
                if self.hidden == "relu":
                    g *= a > 0
                else:
                    g *= a * (1 - a)
            self.W[l] -= lr * dW
            self.b[l] -= lr * db
        return loss


def parse_backends_and_peers(p, a, avail: list[str]) -> None:
    """Turn --backends (default: all of avail) and --peers comma lists into checked lists."""
    if a.backends is None:
        a.backends = avail
    else:
        a.backends = [s.strip() for s in a.backends.split(",") if s.strip()]
        bad = [s for s in a.backends if s not in avail]
        if bad:
            p.error(f"--backends: {bad} not available here; available: {avail}")
    a.peers = [] if a.peers.strip() == "none" else [s.strip() for s in a.peers.split(",") if s.strip()]
    bad = [s for s in a.peers if s not in ("numpy", "torch", "sklearn")]
    if bad:
        p.error(f"--peers: unknown {bad}; choose from numpy,torch,sklearn")
