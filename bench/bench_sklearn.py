#!/usr/bin/env python
"""pynn.sklearn's estimators against scikit-learn's own MLPClassifier / MLPRegressor.

Each case fits both estimators on the same data with the same hyper-parameters, a few times
each, and reports the median wall and CPU time of ``fit`` (validation, initialisation and
every epoch: what a user waits for), the CPU time per epoch, the held-out score (accuracy or
R²) and the speed-ups. ``other load`` is how many cores other processes kept busy meanwhile. Both run a fixed number of epochs (``n_iter_no_change`` larger than ``max_iter``), so
the times compare the same amount of training.

Cases:

* ``digits``: scikit-learn's 8×8 digits (1797 × 64, 10 classes), ``MLPClassifier`` with its
  defaults (one hidden layer of 100 relu units, Adam, lr 1e-3, batch 200, alpha 1e-4) and 200
  epochs (scikit-learn's default ``max_iter``);
* ``synthetic``: ``make_classification`` (20,000 × 100, 10 classes), hidden layers (256, 128);
* ``regression``: ``make_friedman1`` (20,000 × 20), ``MLPRegressor``, hidden layers (128, 64);
* ``small-batch``: the digits with ``batch_size=16``, where scikit-learn's per-batch Python
  overhead dominates.

pynn runs in its default float32 (``dtype="float32"``) and, as a second row, in float64;
scikit-learn computes in the dtype of the data it is given (float64 here). One thread for every
BLAS by default (``--threads``): on a shared machine, busy-waiting thread pools make
multi-threaded timings erratic.

Run ``python bench/bench_sklearn.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers next to this file
from _common import OthersCPU, limit_threads, loadavg, machine_info, markdown_table, stats  # noqa: E402

try:  # run from a source checkout without installing: python bench/bench_sklearn.py
    import pynn
except ImportError:  # pragma: no cover - depends on how the script is run
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pynn

from sklearn import neural_network as skl  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import pynn.sklearn as psk  # noqa: E402


def cases(scale: float) -> dict:
    """name -> (kind, X_train, X_test, y_train, y_test, hyper-parameters)."""
    out = {}
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    out["digits"] = ("classifier", Xtr, Xte, ytr, yte, dict(max_iter=200))
    out["small-batch"] = ("classifier", Xtr, Xte, ytr, yte, dict(max_iter=20, batch_size=16))
    n = int(20000 * scale)
    X, y = make_classification(n, n_features=100, n_informative=50, n_classes=10, random_state=0)
    X = StandardScaler().fit_transform(X)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    out["synthetic"] = ("classifier", Xtr, Xte, ytr, yte, dict(hidden_layer_sizes=(256, 128), max_iter=20))
    X, y = make_friedman1(n, n_features=20, noise=0.5, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    out["regression"] = ("regressor", Xtr, Xte, ytr, yte, dict(hidden_layer_sizes=(128, 64), max_iter=30,
                                                                learning_rate_init=3e-3))
    return out


def contenders(kind: str, backend: str) -> dict:
    ours = psk.MLPClassifier if kind == "classifier" else psk.MLPRegressor
    theirs = skl.MLPClassifier if kind == "classifier" else skl.MLPRegressor
    return {"scikit-learn": lambda **kw: theirs(**kw),
            f"pynn {backend} float32": lambda **kw: ours(backend=backend, dtype="float32", **kw),
            f"pynn {backend} float64": lambda **kw: ours(backend=backend, dtype="float64", **kw)}


def run_case(name, case, backend: str, repeats: int, pause: float) -> list[dict]:
    kind, Xtr, Xte, ytr, yte, hyper = case
    hyper = dict(hyper, random_state=0, n_iter_no_change=hyper["max_iter"] + 1)
    rows = []
    for who, make in contenders(kind, backend).items():
        time.sleep(pause)
        make(**hyper).fit(Xtr[:256], ytr[:256])  # warm-up: imports, Numba compile, thread pools
        seconds, cpu, scores, probe = [], [], [], OthersCPU()
        for r in range(repeats):
            est = make(**dict(hyper, random_state=r))
            t0, c0 = time.perf_counter(), time.process_time()
            est.fit(Xtr, ytr)
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            scores.append(est.score(Xte, yte))
            assert est.n_iter_ == hyper["max_iter"], (who, est.n_iter_)
        rows.append({"case": name, "contender": who, "n_train": len(Xtr), "epochs": hyper["max_iter"],
                     "fit_s": stats(seconds), "cpu_s": stats(cpu), "score": float(np.median(scores)),
                     "scores": scores, "seconds": seconds, "cpu": cpu, "others_cores": probe.stop(), "hyper": {k: str(v) for k, v in hyper.items()}})
        print(f"  {name:12s} {who:22s} fit {np.median(seconds):8.3f} s (cpu {np.median(cpu):8.3f} s)  "
              f"score {np.median(scores):.4f}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Wall and CPU seconds of fit (medians), per epoch, the score, and the speed-ups over
    scikit-learn in both (with one thread, CPU time is the work done, whatever else runs)."""
    ref = {r["case"]: r for r in rows if r["contender"] == "scikit-learn"}
    lines = []
    for r in rows:
        wall, cpu = r["fit_s"]["median"], r["cpu_s"]["median"]
        base = ref[r["case"]]
        metric = "R²" if r["case"] == "regression" else "acc"
        lines.append([r["case"], r["contender"], f"{wall:.3f}", f"{cpu:.3f}", f"{1e3 * cpu / r['epochs']:.2f}",
                      f"{metric} {r['score']:.4f}", f"{base['fit_s']['median'] / wall:.1f}×",
                      f"{base['cpu_s']['median'] / cpu:.1f}×",
                      "-" if r["others_cores"] is None else f"{r['others_cores']:.1f}"])
    return markdown_table(["case", "contender", "fit s", "cpu s", "cpu ms/epoch", "held-out score",
                           "speed-up (wall)", "speed-up (cpu)", "other load"], lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="digits,small-batch,synthetic,regression", help="comma list of cases")
    p.add_argument("--backend", default=pynn.available_backends()[0], help="pynn backend (default: the fastest)")
    p.add_argument("--repeats", type=int, default=3, help="fits per contender (the median is reported)")
    p.add_argument("--threads", type=int, default=1, help="threads for every BLAS and pynn's pools")
    p.add_argument("--scale", type=float, default=1.0, help="size factor for the synthetic and regression data")
    p.add_argument("--pause", type=float, default=0.5, help="idle seconds between contenders")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    a = p.parse_args(argv)
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    all_cases = cases(a.scale)
    bad = [n for n in names if n not in all_cases]
    if bad:
        p.error(f"--cases: unknown {bad}; choose from {list(all_cases)}")
    limiter, pools = limit_threads(a.threads, pynn)
    info = machine_info(pynn)
    print(f"pynn {pynn.__version__} ({info.get('git')}), backend {a.backend}, {a.threads} thread(s), "
          f"{info.get('cpu')}, load {loadavg()}")
    warnings.simplefilter("ignore", ConvergenceWarning)
    rows = []
    for name in names:
        rows += run_case(name, all_cases[name], a.backend, a.repeats, a.pause)
    print()
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps({"machine": info, "threads": a.threads, "pools": pools, "rows": rows,
                                      "load": loadavg()}, indent=1))
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
