#!/usr/bin/env python
"""pynn.fit_many against K sequential fits, and the cost of fit(deterministic=True).

fit_many: K = 8 networks 64-32-10 (relu, softmax, float32) on scikit-learn's digits (1797
examples, pixels / 16), Adam(lr=0.01), batch 32, each with its own seed (weights and shuffle),
trained (a) one after another with plain ``net.fit`` (the default thread settings), (b) one after
another with ``net.fit(..., deterministic=True)`` — the runs fit_many's results equal bit for bit —
and (c) in one ``pynn.fit_many`` call. Before timing, (c) is checked against (b) with
np.array_equal. Rounds alternate the contenders; we report medians and the ratios.

Deterministic cost: one epoch of ``fit`` with and without ``deterministic=True`` on the digits
network and on 784-256-256-10 (synthetic, 4096 examples, batch 128, SGD lr=0.01), alternating.

Run ``python bench/bench_fit_many.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OthersCPU, loadavg, machine_info, markdown_table  # noqa: E402

import pynn  # noqa: E402


def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return np.asfortranarray((X / 16.0).T.astype(np.float32)), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="auto", help="pynn backend (default: auto)")
    ap.add_argument("-k", type=int, default=8, help="networks (default 8)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per network (default 20)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per contender (default 5)")
    args = ap.parse_args()

    X, y = digits()
    K, E = args.k, args.epochs
    make = lambda: [pynn.Network.from_sizes([64, 32, 10], backend=args.backend, seed=s) for s in range(K)]  # noqa: E731
    kw = dict(loss="cross_entropy", epochs=E, batch_size=32)

    cpu = {}  # contender -> CPU seconds / wall seconds of each round (> 1: more than one core used)

    def sequential(deterministic):
        nets = make()
        t0, c0 = time.perf_counter(), time.process_time()
        for s, net in enumerate(nets):
            net.fit(X, y, optimizer=pynn.Adam(0.01), seed=s, deterministic=deterministic, **kw)
        wall = time.perf_counter() - t0
        cpu.setdefault(f"sequential {deterministic}", []).append((time.process_time() - c0) / wall)
        return wall, nets

    def many():
        nets = make()
        t0, c0 = time.perf_counter(), time.process_time()
        pynn.fit_many(nets, X, y, optimizers=[pynn.Adam(0.01) for _ in nets], seeds=list(range(K)), **kw)
        wall = time.perf_counter() - t0
        cpu.setdefault("many", []).append((time.process_time() - c0) / wall)
        return wall, nets

    # validate first: fit_many equals the deterministic sequential fits bit for bit
    ref, got = sequential(True)[1], many()[1]
    same = all(np.array_equal(a._params, b._params) for a, b in zip(ref, got))
    print(f"fit_many == sequential deterministic fits (np.array_equal, all {K}): {same}")
    if not same:
        raise SystemExit("fit_many differs from the networks trained alone")

    contenders = {"sequential fit": lambda: sequential(False)[0],
                  "sequential fit(deterministic=True)": lambda: sequential(True)[0],
                  "fit_many": lambda: many()[0]}
    times = {name: [] for name in contenders}
    probe = OthersCPU()
    probe.start()
    for _ in range(args.rounds):
        for name, run in contenders.items():
            times[name].append(run())
    others = probe.stop()
    med = {name: statistics.median(t) for name, t in times.items()}
    cores = dict(zip(contenders, (statistics.median(cpu[k]) for k in ("sequential False", "sequential True", "many"))))
    rows = [[name, f"{med[name] * 1e3:.0f} ms", f"{min(t) * 1e3:.0f}–{max(t) * 1e3:.0f} ms",
             f"{med[name] / med['fit_many']:.2f}×", f"{cores[name]:.2f}"] for name, t in times.items()]
    print(f"\nK = {K} networks 64-32-10 on digits, {E} epochs each, batch 32, backend {make()[0].backend}, "
          f"{args.rounds} rounds")
    print(markdown_table(["contender", "median", "range", "time / fit_many", "CPU s / wall s"], rows, n_left=1))

    # deterministic cost
    rng = np.random.default_rng(0)
    Xb = np.asfortranarray(rng.standard_normal((784, 4096)).astype(np.float32))
    yb = rng.integers(0, 10, 4096)
    cases = [("64-32-10 digits, batch 32", [64, 32, 10], X, y, 32, lambda: pynn.Adam(0.01)),
             ("784-256-256-10, batch 128", [784, 256, 256, 10], Xb, yb, 128, lambda: pynn.SGD(0.01))]
    rows = []
    for label, sizes, Xc, yc, bs, opt in cases:
        t = {False: [], True: []}
        for _ in range(args.rounds):
            for det in (False, True):
                net = pynn.Network.from_sizes(sizes, backend=args.backend, seed=0)
                net.fit(Xc[:, :256], yc[:256], loss="cross_entropy", optimizer=opt(), batch_size=bs)  # warm-up
                t0 = time.perf_counter()
                net.fit(Xc, yc, loss="cross_entropy", optimizer=opt(), batch_size=bs, seed=0, deterministic=det)
                t[det].append(time.perf_counter() - t0)
        a, b = statistics.median(t[False]), statistics.median(t[True])
        rows.append([label, f"{a * 1e3:.1f} ms", f"{b * 1e3:.1f} ms", f"{b / a:.2f}×"])
    print(f"\nfit(deterministic=True) cost, one epoch, pynn.get_num_threads() = {pynn.get_num_threads()}")
    print(markdown_table(["network", "fit", "fit(deterministic=True)", "ratio"], rows, n_left=1))
    info = machine_info(pynn)
    print(f"\n{info.get('cpu')}, {info['cpus']} cores; pynn {info.get('git')}; load average {loadavg()}; "
          f"other processes kept {others if others is None else round(others, 2)} cores busy during fit_many rounds")


if __name__ == "__main__":
    main()
