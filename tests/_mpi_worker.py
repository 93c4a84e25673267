"""Run by tests/test_distributed.py under MPI:

    mpiexec -n 2 python tests/_mpi_worker.py OUTDIR SCENARIO [SCENARIO ...]

Each rank builds the scenario's data from fixed seeds, keeps its round-robin shard
(``pynn.distributed.shard``), trains with ``comm=MPI.COMM_WORLD`` and writes what it saw to
``OUTDIR/<scenario>.rank<r>.npz``: the weights after every epoch and at the end, the History, and
the exception it raised, if any. The test recomputes the same runs in one process and compares.
An exception never escapes a scenario, so a rank that left ``fit`` early would show up as a hang
(the test's timeout), not as a crash.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

import numpy as np

BASE = dict(sizes=[3, 7, 4], hidden="tanh", output="softmax", loss="cross_entropy", dtype="float64", n=48, batch=6,
            epochs=3, shuffle=False, seed=None, optimizer=("Adam", {"lr": 0.05}), val=True, backend="cpp")
MSE = dict(sizes=[3, 5, 2], hidden="relu", output="linear", loss="mse")
BCE = dict(sizes=[3, 6, 2], hidden="leaky_relu", output="sigmoid", loss="bce", optimizer=("SGD", {"lr": 0.5}))

# name -> settings that differ from BASE
SCENARIOS = {
    # 2 ranks, equal shards, shuffle=False == one process with batch 2*6 on the whole data
    **{f"equal-{b}": dict(backend=b) for b in ("cpp", "numba", "numpy")},
    "equal-mse-momentum": dict(**MSE, optimizer=("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True})),
    "equal-bce": dict(**BCE, backend="numpy"),
    "equal-numba-kernels": dict(backend="numba", sizes=[3, 160, 130, 4]),  # > 20,000 parameters: per-kernel path
    # 49 examples: rank 0 holds 25 (5 batches, the last of 1 example), rank 1 holds 24 (4 batches)
    **{f"unequal-{b}": dict(backend=b, n=49) for b in ("cpp", "numba", "numpy")},
    # a local batch larger than the shards: one step per epoch on all 11 examples
    "big-batch": dict(n=11, batch=8, epochs=4),
    # shuffled per rank: the ranks stay identical, and the global order is the documented one
    **{f"shuffle-{b}": dict(backend=b, n=49, shuffle=True, seed=7) for b in ("cpp", "numpy")},
    "shuffle-noseed": dict(n=30, shuffle=True, seed=None, epochs=2),
    "float32": dict(dtype="float32", n=64, batch=8),
    # example 29 (rank 1's 15th, in global batch 2) overflows the loss: everyone stops there
    **{f"diverge-{b}": dict(**MSE, backend=b, epochs=2, huge_at=29, val=False) for b in ("cpp", "numpy")},
    # argument problems on one rank raise on both, naming the rank
    "mismatch-epochs": dict(rank1=dict(epochs=4)),
    "mismatch-optimizer": dict(rank1=dict(optimizer=("Adam", {"lr": 0.01}))),
    "bad-X-rank1": dict(bad_X_rank=1),
    # a callback raising on rank 1 at epoch 1, batch 2 stops both ranks there
    "callback-raises": dict(raise_at=(1, 2)),
    # a callback on rank 0 alone asks to stop after epoch 1, batch 1
    "stop-rank0": dict(stop_at=(1, 1)),
    # a size-1 communicator (each rank alone, on the whole data) == a plain fit with the same batch
    "split-comm": dict(split=True, epochs=2),
    "save": dict(save=True, epochs=1),
    # main's features the distributed fit takes: Huber's delta and gelu through both fused models,
    # RMSprop, clipping of the global gradient, deterministic=True
    **{f"equal-huber-{b}": {**MSE, "hidden": "gelu", "loss": "huber:0.3", "backend": b} for b in ("cpp", "numba")},
    "equal-rmsprop": dict(backend="numba", optimizer=("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True})),
    "equal-clip": dict(optimizer=("Adam", {"lr": 0.05, "clip_norm": 0.05})),
    "equal-clip-numpy": dict(backend="numpy", optimizer=("SGD", {"lr": 0.5, "clip_value": 0.01})),
    "deterministic": dict(fit_kw={"deterministic": True}),
    # Network.fit arguments a distributed fit refuses, each on every rank before training
    "refused": dict(refuse=True, epochs=1),
    "evaluate": dict(evaluate=True, epochs=1),
}


def spec(name: str) -> dict:
    s = {**BASE, **SCENARIOS[name]}
    s["name"] = name
    return s


def make_data(s: dict, seed: int = 0, n: int | None = None):
    """(X, Y) of the whole training set, or with ``n`` given a validation set; the same in every process."""
    rng = np.random.default_rng(seed)
    train, n = n is None, s["n"] if n is None else n
    n_in, m = s["sizes"][0], s["sizes"][-1]
    X = rng.normal(size=(n_in, n))
    if s["loss"] == "cross_entropy":
        Y = rng.integers(0, m, n)
    elif s["loss"] == "bce":
        Y = (rng.uniform(size=(m, n)) > 0.5).astype(float)
    else:
        Y = rng.normal(size=(m, n))
    if train and s.get("huge_at") is not None:
        X[:, s["huge_at"]] = 1e200  # finite, but its squared error is not
    return X, Y


def make_loss(s: dict):
    """The scenario's loss: a name, or ``"huber:DELTA"`` for ``pynn.losses.Huber(DELTA)``."""
    from pynn.losses import Huber

    name = s["loss"]
    return Huber(float(name.split(":")[1])) if name.startswith("huber:") else name


REFUSED = [  # (label, extra fit arguments, Dense dropout of the first layer)
    ("health", {"health": True}, 0.0),
    ("sample_weight", {"sample_weight": "ones"}, 0.0),
    ("class_weight", {"class_weight": "balanced"}, 0.0),
    ("validation_fraction", {"validation_fraction": 0.2, "validation_data": None}, 0.0),
    ("batch_size", {"batch_size": None}, 0.0),
    ("lbfgs", {"optimizer": "LBFGS"}, 0.0),
    ("dropout", {}, 0.5),
    ("health_type", {"health": "yes"}, 0.0),
    ("deterministic_type", {"deterministic": 1}, 0.0),
]


def make_net(s: dict, seed: int = 1, backend: str | None = None):
    import pynn

    return pynn.Network.from_sizes(s["sizes"], hidden=s["hidden"], output=s["output"], dtype=s["dtype"],
                                   backend=backend or s["backend"], seed=seed)


def make_optimizer(s: dict):
    import pynn

    name, kw = s["optimizer"]
    return getattr(pynn, name)(**kw)


def run(name: str, comm, outdir: str) -> None:
    from mpi4py import MPI

    import pynn
    from pynn import distributed

    rank = comm.Get_rank()
    s = spec(name)
    if rank == 1:
        s.update(s.get("rank1", {}))
    X, Y = make_data(s)
    Xv, Yv = make_data(s, seed=1, n=17)
    if s.get("split"):
        comm = comm.Split(color=rank, key=0)  # a communicator of one rank: the whole data here
    else:
        X, Y, Xv, Yv = (distributed.shard(a, comm) for a in (X, Y, Xv, Yv))
    if s.get("bad_X_rank") == rank:
        X = X[:2]
    # rank 0's weights must win: every other rank starts from different ones
    net = make_net(s, seed=1 if rank == 0 else 100 + rank)
    opt = make_optimizer(s)
    epochs_seen, out = [], {}

    class Record(pynn.Callback):
        def on_batch_end(self, net, batch, logs):
            e = len(epochs_seen)
            if s.get("raise_at") == (e, batch) and rank == 1:
                raise KeyError("raised by a callback on rank 1")
            if s.get("stop_at") == (e, batch) and rank == 0:
                net.stop_training = True

        def on_epoch_end(self, net, epoch, logs):
            epochs_seen.append(net._params.copy())

    if s.get("refuse"):  # each refused argument raises the same on every rank, and trains nothing
        refused = {}
        for label, kw, rate in REFUSED:
            kw = dict(kw)
            if kw.get("sample_weight") == "ones":
                kw["sample_weight"] = np.ones(X.shape[1])
            if kw.get("optimizer") == "LBFGS":
                kw["optimizer"] = pynn.LBFGS()
            n = make_net(s, seed=1) if not rate else pynn.Network(
                [pynn.Dense(3, 7, "tanh", dropout=rate), pynn.Dense(7, 4, "softmax")],
                dtype="float64", backend=s["backend"], seed=1)
            before = n._params.copy()
            fit_kw = dict(loss=s["loss"], optimizer=opt, epochs=1, batch_size=s["batch"],
                          validation_data=(Xv, Yv), comm=comm)
            fit_kw.update(kw)
            try:
                n.fit(X, Y, **fit_kw)
                refused[label] = None
            except Exception as e:
                refused[label] = [type(e).__name__, str(e), bool(np.array_equal(n._params, before))]
        out["refused"] = json.dumps(refused)
    printed = io.StringIO()  # what this rank prints (verbose=2): rank 0 alone should print
    try:
        if s.get("refuse"):
            raise SystemExit("no training: the refused arguments only")
        with contextlib.redirect_stdout(printed):
            h = net.fit(X, Y, loss=make_loss(s), optimizer=opt, epochs=s["epochs"], batch_size=s["batch"],
                        shuffle=s["shuffle"], seed=s["seed"], validation_data=(Xv, Yv) if s["val"] else None,
                        callbacks=[Record()], verbose=2, comm=comm, **s.get("fit_kw", {}))
        out["history"] = json.dumps(h.history)
        if s.get("save"):
            distributed.save(net, os.path.join(outdir, f"{name}.model{rank}.npz"), comm)
        if s.get("evaluate"):
            out["evaluate"] = json.dumps(distributed.evaluate(net, Xv, Yv, s["loss"], comm))
    except BaseException as e:  # recorded for the test; the other rank must have raised too
        out["error"] = json.dumps([type(e).__name__, str(e)])
    out["printed"] = printed.getvalue()
    world = distributed.comm_world()
    out["comm_world_size"] = np.array(world.Get_size() if world is not None else 0)
    out["affinity"] = np.array(sorted(os.sched_getaffinity(0)))
    out["threads_per_rank"] = np.array(distributed.threads_per_rank(MPI.COMM_WORLD))
    out["params"] = net._params
    out["epochs"] = np.array(epochs_seen).reshape(len(epochs_seen), net._params.size)
    out["size"] = np.array(comm.Get_size())
    np.savez(os.path.join(outdir, f"{name}.rank{rank}.npz"), **out)


def main() -> int:
    from mpi4py import MPI

    outdir, names = sys.argv[1], sys.argv[2:]
    for name in names or SCENARIOS:
        run(name, MPI.COMM_WORLD, outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
