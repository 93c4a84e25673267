#!/usr/bin/env python
"""Data-parallel training over MPI: time per step with 1 and 2 ranks, and the Allreduce's share.

One command, ``python bench/bench_mpi.py``, launches ``mpiexec -n 1`` and ``mpiexec -n 2`` of this
script (``--worker``) on the same global batch, one launch after another, and prints a table.
Each case trains with ``net.fit(..., comm=MPI.COMM_WORLD)`` on round-robin shards of synthetic
data (fixed seeds), float32, SGD, shuffled, with a global batch of ``B`` examples (``B/R`` per
rank); the layouts are:

* 1 rank × 1 thread and 1 rank × 2 threads (and, for reference, the plain ``fit`` without a
  communicator on the same rank), and
* 2 ranks × 1 thread each: the same two cores, split between ranks instead of BLAS threads.

Reported per layout: the median over epochs of the time per step (the slowest rank's epoch time
over the steps in it); the share of each step spent inside the gradient ``Allreduce``
(``History.comm_time / time``, the largest over ranks — it includes waiting for the slower rank);
and the time of the Allreduce alone on the same buffer, ranks synchronised by a barrier first.
Each run warms up with one epoch first (workspaces, thread pools, MPI connections). Before
each launch the driver waits (up to ``--max-wait`` s) for other processes to go quiet, and the
last column says how many cores other processes kept busy during the launch: a row measured
while that is well above 0 was disturbed.

Run ``python bench/bench_mpi.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers next to this file
from _common import OthersCPU, loadavg, machine_info, markdown_table, wait_quiet  # noqa: E402

try:  # run from a source checkout without installing: python bench/bench_mpi.py
    import pynn
except ImportError:  # pragma: no cover - depends on how the script is run
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pynn

# (name, sizes, global batch, examples)
CASES = {
    "mnist-mlp": ((784, 256, 256, 10), 256, 16384),
    "small": ((64, 64, 10), 64, 16384),
}
LAYOUTS = ((1, 1), (1, 2), (2, 1))  # (ranks, threads per rank)


# ------------------------------------------------------------------------------------- one MPI run
def worker(a) -> None:
    from mpi4py import MPI

    from pynn import distributed

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    pynn.set_num_threads(a.threads)
    sizes, batch, n = CASES[a.case]
    rng = np.random.default_rng(0)
    data = rng.normal(size=(n, sizes[0])).astype(np.float32)
    labels = rng.integers(0, sizes[-1], n)
    X, y = distributed.shard(data.T, comm), distributed.shard(labels, comm)  # views: no copies
    b = distributed.local_batch_size(batch, comm)
    net = pynn.Network.from_sizes(sizes, dtype="float32", backend=a.backend, seed=0)
    opt = pynn.SGD(0.01)
    kw = dict(loss="cross_entropy", optimizer=opt, batch_size=b, seed=0)
    net.fit(X, y, epochs=1, comm=comm, **kw)  # warm-up
    steps = -(-X.shape[1] // b)
    h = net.fit(X, y, epochs=a.epochs, comm=comm, **kw)
    step_ms = [1e3 * t / steps for t in h.time]
    shares = comm.gather([c / t for c, t in zip(h.comm_time, h.time)], root=0)

    # the Allreduce alone, on the buffer fit reduces (the parameters plus 7 counters)
    buf = np.zeros(net.n_params + 7, np.float32)
    alone = []
    for i in range(20 + a.allreduce_reps):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if i >= 20:
            alone.append(time.perf_counter() - t0)
    alone = comm.gather(statistics.median(alone), root=0)

    plain = None
    if size == 1:  # the same training without a communicator: what the distributed path costs
        # health=False: the distributed fit records no training health, so neither does this one
        net.fit(X, y, epochs=1, health=False, **kw)
        hp = net.fit(X, y, epochs=a.epochs, health=False, **kw)
        plain = [1e3 * t / steps for t in hp.time]
    if rank == 0:
        share = [max(s[e] for s in shares) for e in range(a.epochs)]
        print("RESULT " + json.dumps({
            "case": a.case, "ranks": size, "threads": a.threads, "backend": net.backend, "params": net.n_params,
            "global_batch": batch, "local_batch": b, "steps_per_epoch": steps, "step_ms": step_ms,
            "allreduce_share": share, "allreduce_alone_ms": 1e3 * max(alone), "plain_step_ms": plain,
            "loss": h.loss[-1]}), flush=True)


# ------------------------------------------------------------------------------------- the driver
def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    exe = str(here) if here.exists() else shutil.which("mpiexec")
    if exe is None:
        sys.exit('no mpiexec found: pip install "pynn[mpi]" (mpi4py and the MPICH wheel)')
    return exe


def launch(case: str, ranks: int, threads: int, a) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(pynn.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker", "--case", case,
           "--threads", str(threads), "--epochs", str(a.epochs), "--backend", a.backend,
           "--allreduce-reps", str(a.allreduce_reps)]
    waited = wait_quiet(a.max_wait)
    t0, busy0, kids0 = time.perf_counter(), OthersCPU._busy(), os.times()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    t1, busy1, kids1 = time.perf_counter(), OthersCPU._busy(), os.times()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    r = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
    # cores other processes kept busy meanwhile: the machine's busy time minus our ranks' CPU time
    ours = sum(kids1[i] - kids0[i] for i in (0, 1, 2, 3))
    r["others_cores"] = None if busy0 is None else max(0.0, (busy1 - busy0 - ours) / (t1 - t0))
    r["waited_s"] = waited
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list from {list(CASES)}")
    p.add_argument("--epochs", type=int, default=7, help="timed epochs per run (after one warm-up epoch)")
    p.add_argument("--backend", default="cpp")
    p.add_argument("--allreduce-reps", type=int, default=200)
    p.add_argument("--pause", type=float, default=1.0, help="seconds between launches")
    p.add_argument("--max-wait", type=float, default=60.0,
                   help="before each launch, wait up to this long for other processes to go quiet")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if bad := [c for c in cases if c not in CASES]:
        p.error(f"--cases: unknown {bad}; choose from {list(CASES)}")

    info = machine_info(pynn)
    print(f"pynn {info['pynn']} ({info.get('git')}), {info.get('cpu')}, {info['cpus']} cores, "
          f"backend {a.backend}, float32, SGD; load average {loadavg()}")
    results, lines = [], []
    for case in cases:
        base = None
        for ranks, threads in LAYOUTS:
            r = launch(case, ranks, threads, a)
            results.append(r)
            step = statistics.median(r["step_ms"])
            base = base or step
            sizes, batch, n = CASES[case]
            plain = f"{statistics.median(r['plain_step_ms']):.3f}" if r["plain_step_ms"] else ""
            lines.append([case if ranks == 1 and threads == 1 else "", f"{ranks} × {threads}",
                          f"{batch} ({r['local_batch']}/rank)", f"{step:.3f}", f"{base / step:.2f}×",
                          f"{100 * statistics.median(r['allreduce_share']):.1f}%", f"{r['allreduce_alone_ms']:.3f}",
                          plain, "" if r["others_cores"] is None else f"{r['others_cores']:.2f}"])
            time.sleep(a.pause)
    print()
    print(markdown_table(("case", "ranks × threads", "global batch", "ms/step", "vs 1×1", "Allreduce share",
                          "Allreduce alone (ms)", "plain fit ms/step", "others (cores)"), lines, n_left=3))
    print("\ncases: " + "; ".join(f"{c}: {'-'.join(map(str, CASES[c][0]))}, {CASES[c][2]} examples, "
                                  f"{next(r['params'] for r in results if r['case'] == c):,} parameters"
                                  for c in cases))
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
