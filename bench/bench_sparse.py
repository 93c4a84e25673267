#!/usr/bin/env python
"""Sparse CSR input against the same data dense: one epoch of ``fit`` and one ``predict``.

Data: 20,000 examples × 5,000 features, 0.5 % non-zero (a bag-of-words shape), float32, random
labels of 10 classes; network 5000-64-10 (relu, softmax), SGD lr=0.01, batch 128. pynn
densifies each batch of CSR rows into a reused (features, batch) buffer and runs the ordinary
dense step, so the sparse fit costs the dense step plus the gather; the dense data set
(400 MB here) is never built. Rounds alternate the two; medians are reported.

Run ``python bench/bench_sparse.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import loadavg, machine_info, markdown_table  # noqa: E402

import pynn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, f = 20_000, 5_000
    Xs = sp.random_array((n, f), density=5e-3, rng=rng, format="csr", dtype=np.float32)
    Xd = np.asfortranarray(Xs.toarray().T)
    y = rng.integers(0, 10, n)
    net = pynn.Network.from_sizes([f, 64, 10], backend=args.backend, seed=0)
    kw = dict(loss="cross_entropy", epochs=1, batch_size=128, seed=0)
    net.fit(Xs[:512], y[:512], optimizer=pynn.SGD(0.01), **kw)  # warm-up
    net.fit(Xd[:, :512], y[:512], optimizer=pynn.SGD(0.01), **kw)
    t = {k: [] for k in ("fit sparse", "fit dense", "predict sparse", "predict dense")}
    for _ in range(args.rounds):
        for name, X in (("sparse", Xs), ("dense", Xd)):
            t0 = time.perf_counter()
            net.fit(X, y, optimizer=pynn.SGD(0.01), **kw)
            t["fit " + name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            net.predict(X)
            t["predict " + name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in t.items()}
    rows = [[k, f"{med[k] * 1e3:.0f} ms", f"{med[k] / med[k.split()[0] + ' dense']:.2f}×"] for k in t]
    print(f"{n} × {f} CSR, {Xs.nnz} non-zeros ({Xs.data.nbytes + Xs.indices.nbytes + Xs.indptr.nbytes >> 20} MB; "
          f"dense {Xd.nbytes >> 20} MB), net {net.sizes}, backend {net.backend}, {args.rounds} rounds")
    print(markdown_table(["case", "median", "vs dense"], rows, n_left=1))
    info = machine_info(pynn)
    print(f"\n{info.get('cpu')}, {info['cpus']} cores; pynn {info.get('git')}; load average {loadavg()}")


if __name__ == "__main__":
    main()
