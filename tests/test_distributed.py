"""Data-parallel training (pynn.distributed): two ranks under ``mpiexec -n 2`` against one process.

The MPI runs happen once, in ``tests/_mpi_worker.py`` launched by the ``mpi_runs`` fixture; each
test here recomputes the same training in this process (no MPI) and compares. The claim under
test: ranks holding the round-robin halves of a data set, each with batch ``b``, end with the
weights of one process trained on the whole data with batch ``2b`` (float64, within 1e-12),
and the ranks hold bit-identical weights after every epoch. With CI=true a missing mpi4py or
mpiexec fails instead of skipping.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pynn
from pynn import distributed

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _mpi_worker as W  # noqa: E402

from conftest import IN_CI, NET_TOL  # noqa: E402

RANKS = 2
TOL64 = 1e-12  # the bound for float64 weights
WORKER = pathlib.Path(W.__file__)
STATS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _unavailable(why: str):
    if IN_CI:
        pytest.fail(f"MPI is required in CI: {why}")
    pytest.skip(why)


def _mpiexec() -> str | None:
    """The launcher of the environment running the tests (the mpich wheel puts it next to python)."""
    here = pathlib.Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


class Runs:
    """What each rank of the MPI run recorded, by scenario."""

    def __init__(self, outdir: pathlib.Path) -> None:
        self.outdir = outdir

    def __call__(self, name: str) -> list[dict]:
        ranks = []
        for r in range(RANKS):
            with np.load(self.outdir / f"{name}.rank{r}.npz") as z:
                rec = {k: z[k] for k in z.files}
            for k in ("history", "error", "evaluate", "refused"):
                rec[k] = json.loads(str(rec[k])) if k in rec else None
            rec["printed"] = str(rec["printed"])
            ranks.append(rec)
        return ranks


@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory) -> Runs:
    if importlib.util.find_spec("mpi4py") is None:
        _unavailable('mpi4py is not installed (pip install "pynn[mpi]")')
    exe = _mpiexec()
    if exe is None:
        _unavailable('no mpiexec found (pip install "pynn[mpi]" brings MPICH\'s)')
    outdir = tmp_path_factory.mktemp("mpi")
    # the ranks import the pynn under test, and share the 2 cores instead of each taking both
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pathlib.Path(pynn.__file__).parents[1]),
                                                                      os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([exe, "-n", str(RANKS), sys.executable, str(WORKER), str(outdir)], env=env,
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the MPI run did not finish in {e.timeout} s (a rank waiting for the others?)\n{e.stderr}")
    assert proc.returncode == 0, f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return Runs(outdir)


# ---------------------------------------------------------------------------- the references
class _Record(pynn.Callback):
    """Weights after every epoch; optionally raise or stop at (epoch, batch) as the worker does."""

    def __init__(self, raise_at=None, stop_at=None) -> None:
        self.epochs, self.raise_at, self.stop_at = [], raise_at, stop_at

    def on_batch_end(self, net, batch, logs):
        if (len(self.epochs), batch) == self.raise_at:
            raise KeyError("raised by a callback")
        if (len(self.epochs), batch) == self.stop_at:
            net.stop_training = True

    def on_epoch_end(self, net, epoch, logs):
        self.epochs.append(net._params.copy())


def one_process(name: str, *, batch: int | None = None, seed: int = 1, orders=None, **cb) -> dict:
    """The scenario in one process on the whole data: batches of RANKS * b (or ``batch``), in
    ``orders`` (one index array per epoch) if given, else in order."""
    s = W.spec(name)
    X, Y = W.make_data(s)
    val = W.make_data(s, seed=1, n=17) if s["val"] else None
    net, opt, rec = W.make_net(s, seed=seed), W.make_optimizer(s), _Record(**cb)
    kw = dict(loss=W.make_loss(s), optimizer=opt, batch_size=batch or RANKS * s["batch"], shuffle=False,
              validation_data=val, callbacks=[rec], **s.get("fit_kw", {}))
    out = {"history": {}, "error": None}
    with np.errstate(all="ignore"):  # the numpy reference's overflow warnings in the diverging runs
        try:
            if orders is None:
                out["history"] = net.fit(X, Y, epochs=s["epochs"], **kw).history
            else:
                for order in orders:
                    h = net.fit(X[:, order], Y[..., order], epochs=1, **kw)
                    for k, v in h.history.items():
                        out["history"].setdefault(k, []).extend(v)
        except (FloatingPointError, KeyError) as e:
            out["error"] = type(e).__name__
    out["epochs"], out["params"], out["net"] = np.array(rec.epochs), net._params.copy(), net
    return out


def shuffled_orders(n: int, b: int, seed: int, epochs: int):
    """The global order a distributed fit with shuffle=True visits (pynn.distributed's docstring):
    rank r permutes its shard r, r+R, ... with SeedSequence(seed, spawn_key=(r,)) each epoch, and
    step k takes local examples [k*b, (k+1)*b) of every rank."""
    shards = [np.arange(r, n, RANKS) for r in range(RANKS)]
    rngs = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(r,))) for r in range(RANKS)]
    for _ in range(epochs):
        perms = [sh[rng.permutation(sh.size)] for sh, rng in zip(shards, rngs)]
        steps = max(-(-p.size // b) for p in perms)
        yield np.concatenate([p[k * b:(k + 1) * b] for k in range(steps) for p in perms])


def assert_weights(got: np.ndarray, ref: np.ndarray, tol: float = TOL64) -> None:
    assert got.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    err = float(np.abs(got - ref).max(initial=0)) / scale
    assert err <= tol, f"largest difference {err:.3g} (relative to {scale:.3g}) > {tol}"


def assert_history(got: dict, ref: dict, rtol: float = TOL64) -> None:
    keys = [k for k in STATS if k in ref]
    assert keys and sorted(k for k in got if k in STATS) == sorted(keys)
    for k in keys:
        np.testing.assert_allclose(got[k], ref[k], rtol=rtol, atol=rtol, err_msg=k)


def assert_ranks_identical(ranks: list[dict]) -> None:
    """Bit-identical weights on every rank after every epoch and at the end."""
    for r in ranks[1:]:
        assert r["epochs"].shape == ranks[0]["epochs"].shape
        np.testing.assert_array_equal(r["epochs"], ranks[0]["epochs"])
        np.testing.assert_array_equal(r["params"], ranks[0]["params"])


# ---------------------------------------------------------------------------- two ranks == one process
SAME_AS_ONE_PROCESS = ["equal-cpp", "equal-numba", "equal-numpy", "equal-mse-momentum", "equal-bce",
                       "equal-numba-kernels", "unequal-cpp", "unequal-numba", "unequal-numpy", "big-batch",
                       "equal-huber-cpp", "equal-huber-numba", "equal-rmsprop", "equal-clip", "equal-clip-numpy",
                       "deterministic"]


@pytest.mark.parametrize("name", SAME_AS_ONE_PROCESS)
def test_two_ranks_on_halves_equal_one_process_on_the_whole_batch(mpi_runs, name):
    ranks, ref = mpi_runs(name), one_process(name)
    assert_ranks_identical(ranks)
    assert ranks[0]["error"] is None and ref["error"] is None
    assert ranks[0]["epochs"].shape == ref["epochs"].shape == (W.spec(name)["epochs"], ref["params"].size)
    assert_weights(ranks[0]["epochs"], ref["epochs"])
    # History: loss, accuracy, val_* weighted over both ranks == over the whole data; same on both
    assert_history(ranks[0]["history"], ref["history"])
    assert ranks[0]["history"] == {**ranks[1]["history"], "comm_time": ranks[0]["history"]["comm_time"]}


def test_unequal_shards_take_as_many_steps_as_the_largest(mpi_runs):
    # 49 examples: rank 0 has 25 (5 batches of 6, the last of 1), rank 1 has 24 (4 batches):
    # the 5th step averages rank 0's one example alone; a plain fit with 5 steps of 12 agrees
    ref_4_steps = one_process("equal-cpp")  # 48 examples, 4 steps per epoch
    ranks = mpi_runs("unequal-cpp")
    assert np.abs(ranks[0]["params"] - ref_4_steps["params"]).max() > 1e-6


@pytest.mark.parametrize("name", ["shuffle-cpp", "shuffle-numpy"])
def test_shuffled_ranks_follow_the_documented_global_order(mpi_runs, name):
    s = W.spec(name)
    ranks = mpi_runs(name)
    ref = one_process(name, orders=list(shuffled_orders(s["n"], s["batch"], s["seed"], s["epochs"])))
    assert_ranks_identical(ranks)
    assert_weights(ranks[0]["epochs"], ref["epochs"])
    assert_history(ranks[0]["history"], ref["history"])


def test_shuffle_without_a_seed_keeps_ranks_identical(mpi_runs):
    ranks = mpi_runs("shuffle-noseed")
    assert_ranks_identical(ranks)
    in_order = one_process("shuffle-noseed")  # the same run without shuffling differs
    assert np.abs(ranks[0]["params"] - in_order["params"]).max() > 1e-6


def test_float32_ranks_identical_and_close_to_one_process(mpi_runs):
    ranks, ref = mpi_runs("float32"), one_process("float32")
    assert_ranks_identical(ranks)
    assert ranks[0]["params"].dtype == np.float32
    assert_weights(ranks[0]["epochs"], ref["epochs"], tol=NET_TOL[np.dtype(np.float32)])
    assert_history(ranks[0]["history"], ref["history"], rtol=NET_TOL[np.dtype(np.float32)])


def test_rank0_weights_are_broadcast_at_the_start(mpi_runs):
    # rank 1 built its network from another seed; after fit it holds rank 0's run exactly
    ranks, own = mpi_runs("equal-cpp"), one_process("equal-cpp", seed=101)
    assert np.abs(ranks[1]["params"] - own["params"]).max() > 1e-3
    assert_weights(ranks[1]["params"], one_process("equal-cpp", seed=1)["params"])


@pytest.mark.parametrize("rank", range(RANKS))
def test_a_communicator_of_one_rank_is_a_plain_fit(mpi_runs, rank):
    # comm.Split gave each rank a communicator of its own, and the whole data: its own seed's
    # plain fit with the same batch size
    ref = one_process("split-comm", batch=W.spec("split-comm")["batch"], seed=1 if rank == 0 else 100 + rank)
    got = mpi_runs("split-comm")[rank]
    assert_weights(got["epochs"], ref["epochs"])
    assert_history(got["history"], ref["history"])


# ---------------------------------------------------------------------------- stopping together
@pytest.mark.parametrize("name", ["diverge-cpp", "diverge-numpy"])
def test_a_non_finite_loss_on_one_rank_stops_every_rank_before_the_update(mpi_runs, name):
    ranks, ref = mpi_runs(name), one_process(name)
    assert ref["error"] == "Diverged"  # one process stops at the same step (a FloatingPointError)
    for r in ranks:
        assert r["error"][0] == "Diverged"
        assert "not finite on 1 of 2 ranks at epoch 0, step 2" in r["error"][1]
        np.testing.assert_array_equal(r["params"], ranks[0]["params"])
    assert_weights(ranks[0]["params"], ref["params"])  # two steps applied, the third on neither


@pytest.mark.parametrize("name, message", [
    ("mismatch-epochs", "needs the same epochs on every rank: rank 0 has 3, rank 1 has 4"),
    ("mismatch-optimizer", "needs the same optimizer on every rank"),
])
def test_settings_that_differ_between_ranks_raise_on_every_rank(mpi_runs, name, message):
    for r in mpi_runs(name):
        assert r["error"][0] == "ValueError" and message in r["error"][1]
        assert r["epochs"].shape[0] == 0 and r["printed"] == ""


REFUSED_MESSAGES = {
    "health": (ValueError, "fit(comm=...) does not support health: pass health=None or False (got health=True)"),
    "sample_weight": (ValueError, "fit(comm=...) does not support sample_weight: pass sample_weight=None"),
    "class_weight": (ValueError, "fit(comm=...) does not support class_weight: pass class_weight=None "
                                 "(got class_weight='balanced')"),
    "validation_fraction": (ValueError, "fit(comm=...) does not support validation_fraction"),
    "batch_size": (ValueError, "fit(comm=...) needs an int batch_size (examples per rank and step), got None"),
    "lbfgs": (ValueError, "fit(comm=...) does not support pynn.LBFGS"),
    "dropout": (ValueError, "fit(comm=...) does not support networks with dropout"),
    "health_type": (TypeError, "health must be a bool, got 'yes'"),
    "deterministic_type": (TypeError, "deterministic must be a bool, got 1"),
}


def test_fit_arguments_a_distributed_fit_does_not_take_raise_on_every_rank(mpi_runs):
    # Network.fit's one-process arguments: each raises its named error on both ranks (no rank
    # is left waiting) and leaves the weights as they were
    for r in mpi_runs("refused"):
        assert sorted(r["refused"]) == sorted(REFUSED_MESSAGES)
        for label, (exc, message) in REFUSED_MESSAGES.items():
            kind, text, untouched = r["refused"][label]
            assert kind == exc.__name__ and text.startswith(message), (label, text)
            assert untouched, label


def test_bad_input_on_one_rank_raises_on_every_rank_naming_it(mpi_runs):
    r0, r1 = mpi_runs("bad-X-rank1")
    assert r1["error"] == ["ValueError", r1["error"][1]] and r1["error"][1].startswith("X must have 3 rows")
    assert r0["error"] == ["ValueError", f"rank 1: ValueError: {r1['error'][1]}"]


def test_an_exception_on_one_rank_stops_every_rank(mpi_runs):
    r0, r1 = mpi_runs("callback-raises")
    assert r1["error"][0] == "KeyError"  # its own exception where it happened
    assert r0["error"][0] == "RuntimeError" and "1 other rank(s) raised" in r0["error"][1]
    np.testing.assert_array_equal(r0["params"], r1["params"])
    ref = one_process("callback-raises", raise_at=(1, 2))
    assert ref["error"] == "KeyError"
    assert_weights(r0["params"], ref["params"])


def test_a_stop_asked_on_one_rank_stops_every_rank(mpi_runs):
    ranks, ref = mpi_runs("stop-rank0"), one_process("stop-rank0", stop_at=(1, 1))
    assert_ranks_identical(ranks)
    assert len(ranks[1]["history"]["loss"]) == len(ref["history"]["loss"]) == 2
    assert_weights(ranks[1]["params"], ref["params"])
    assert_history(ranks[1]["history"], ref["history"])


# ---------------------------------------------------------------------------- printing, saving, metrics
def test_only_rank0_prints(mpi_runs):
    for name in W.SCENARIOS:
        ranks = mpi_runs(name)
        # with split communicators every process is rank 0 of its own
        printing = ranks if name == "split-comm" else ranks[:1]
        assert all(r["printed"] == "" for r in ranks if not any(r is p for p in printing)), name
        for r in printing:
            if r["error"] is None:
                assert r["printed"].count("\n") == len(r["history"]["loss"]), name
                assert r["printed"].startswith(f"epoch 1/{W.spec(name)['epochs']}  loss "), name


def test_distributed_save_writes_from_rank0_only(mpi_runs):
    ranks = mpi_runs("save")
    assert not (mpi_runs.outdir / "save.model1.npz").exists()
    loaded = pynn.load(mpi_runs.outdir / "save.model0.npz")
    np.testing.assert_array_equal(loaded._params, ranks[1]["params"])


def test_distributed_evaluate_is_over_the_union_of_the_shards(mpi_runs):
    s = W.spec("evaluate")
    ranks = mpi_runs("evaluate")
    net = W.make_net(s)
    net._params[...] = ranks[0]["params"]
    want = net.evaluate(*W.make_data(s, seed=1, n=17), s["loss"])
    for r in ranks:
        assert r["evaluate"].keys() == want.keys()
        np.testing.assert_allclose([r["evaluate"][k] for k in want], list(want.values()), rtol=TOL64)


def test_history_has_comm_time(mpi_runs):
    for r in mpi_runs("equal-cpp"):
        h = r["history"]
        assert len(h["comm_time"]) == len(h["time"]) == 3
        assert all(0 <= c <= t for c, t in zip(h["comm_time"], h["time"]))


def test_comm_world_under_mpiexec(mpi_runs):
    assert [int(r["comm_world_size"]) for r in mpi_runs("equal-cpp")] == [RANKS] * RANKS


def test_threads_per_rank_shares_the_cores(mpi_runs):
    ranks = mpi_runs("equal-cpp")
    sets = [set(r["affinity"].tolist()) for r in ranks]
    for r, mine in zip(ranks, sets):
        # each core this rank may use counts 1 / (ranks that may use it): 2 unbound ranks on
        # 2 cores get 1 thread each
        want = max(1, int(sum(1 / sum(c in s for s in sets) for c in mine) + 1e-9))
        assert int(r["threads_per_rank"]) == want
    if sets[0] == sets[1]:
        assert int(ranks[0]["threads_per_rank"]) == max(1, len(sets[0]) // RANKS)


def test_threads_per_rank_without_comm_is_the_usable_cores():
    assert distributed.threads_per_rank() == len(os.sched_getaffinity(0))


# ---------------------------------------------------------------------------- without MPI
def test_shard_is_a_round_robin_view():
    X = np.arange(24.0).reshape(3, 8)
    parts = [distributed.shard(X, rank=r, size=3) for r in range(3)]
    assert [p.shape for p in parts] == [(3, 3), (3, 3), (3, 2)]
    np.testing.assert_array_equal(parts[1], X[:, [1, 4, 7]])
    assert all(np.shares_memory(p, X) for p in parts)
    np.testing.assert_array_equal(np.sort(np.concatenate([p[0] for p in parts])), X[0])
    np.testing.assert_array_equal(distributed.shard(np.arange(5), rank=0, size=2), [0, 2, 4])
    assert distributed.shard(X) is X


class _FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_shard_takes_rank_and_size_from_comm():
    X = np.arange(10)
    np.testing.assert_array_equal(distributed.shard(X, _FakeComm(2, 4)), [2, 6])


@pytest.mark.parametrize("kw, exc, match", [
    (dict(rank=2, size=2), ValueError, r"rank must lie in \[0, 1\] for size=2, got 2"),
    (dict(rank=0, size=0), ValueError, "size must be an int >= 1"),
    (dict(rank=-1, size=2), ValueError, "rank must be an int >= 0"),
    (dict(rank=0.5, size=2), TypeError, "rank must be an int"),
    (dict(comm=_FakeComm(0, 2), rank=0), TypeError, "either comm or rank and size"),
])
def test_shard_rejects_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        distributed.shard(np.arange(4), **kw)


def test_local_batch_size():
    assert distributed.local_batch_size(64, _FakeComm(0, 4)) == 16
    assert distributed.local_batch_size(64) == 64
    with pytest.raises(ValueError, match=r"batch_size must be a multiple of the number of ranks \(3\) to split it evenly, got 64"):
        distributed.local_batch_size(64, _FakeComm(0, 3))


def test_is_root():
    assert distributed.is_root(None) and distributed.is_root(_FakeComm(0, 2))
    assert not distributed.is_root(_FakeComm(1, 2))


def test_fit_rejects_something_that_is_not_a_communicator():
    net = pynn.Network.from_sizes([2, 3, 2], seed=0)
    before = net._params.copy()
    with pytest.raises(TypeError, match="comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, got int"):
        net.fit(np.zeros((2, 4)), np.zeros(4, int), loss="cross_entropy", optimizer=pynn.SGD(0.1), comm=3)
    np.testing.assert_array_equal(net._params, before)


def test_comm_world_is_none_outside_a_launcher(monkeypatch):
    for var in distributed._LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    assert distributed.comm_world() is None


def test_import_pynn_does_not_import_mpi4py():
    code = ("import sys, pynn, pynn.distributed; net = pynn.Network.from_sizes([2, 2], seed=0); "
            "import numpy as np; net.fit(np.zeros((2, 3)), np.zeros(3, int), loss='cross_entropy', "
            "optimizer=pynn.SGD(0.1)); assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pathlib.Path(pynn.__file__).parents[1]),
                                                                      os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


@pytest.mark.parametrize("backend_name", ["cpp", "numba"])
@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled"])
def test_run_batches_without_update_gives_the_batch_gradients(backend_name, shuffled):
    # the compiled and Numba fused models' gradients-only step, which the distributed fit uses
    from conftest import backend_module

    backend_module(backend_name)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(3, 20)), rng.integers(0, 4, 20)
    net = pynn.Network.from_sizes([3, 5, 4], dtype="float64", backend=backend_name, seed=0)
    assert net._model is not None
    order = rng.permutation(20) if shuffled else None
    # an optimizer with state and clipping is bound (one step of a fit): update=False must leave
    # the weights, Adam's moments and step count alone, and must not clip the gradients
    opt = pynn.Adam(0.1, clip_value=1e-4)
    net.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=20, health=False)
    params = net._params.copy()
    state = {k: np.copy(v) for k, v in opt.state(net).items() if isinstance(v, np.ndarray)}
    stats = net._model.run_batches(X, y, order, 2, 1, 6, 2, True, update=False)  # batch 2: examples [12, 18)
    grads = net._grads.copy()
    np.testing.assert_array_equal(net._params, params)  # nothing updated
    for k, v in state.items():
        np.testing.assert_array_equal(opt.state(net)[k], v, err_msg=k)
    assert np.abs(grads).max() > 1e-3  # not clipped to 1e-4
    cols = (order if shuffled else np.arange(20))[12:18]
    J, ref = net.loss_and_grads(X[:, cols], y[cols], "cross_entropy")
    np.testing.assert_allclose(grads, np.concatenate([np.r_[dW.ravel(), db.ravel()] for dW, db in ref]),
                               rtol=1e-12, atol=1e-15)
    right = int(np.sum(net.predict_classes(X[:, cols]) == y[cols]))
    assert stats[:7] == pytest.approx((J * 6, 6, right, 6, 1, False, 0.0), rel=1e-12)
    assert stats[7] is None  # no exception pending


def test_compiled_run_batches_checks_the_order_entries_it_reads():
    # one call per batch must not cost a pass over the whole epoch's order; the entries the
    # batches read are still checked, so the core can never read out of bounds
    from conftest import backend_module

    backend_module("cpp")
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(3, 20)), rng.integers(0, 4, 20)
    net = pynn.Network.from_sizes([3, 5, 4], dtype="float64", backend="cpp", seed=0)
    order = rng.permutation(20)
    order[0] = -1  # outside batch 2 ([12, 18)): not read
    net._model.run_batches(X, y, order, 2, 1, 6, 2, True, update=False)
    order[13] = 20
    with pytest.raises(ValueError, match="order out of range"):
        net._model.run_batches(X, y, order, 2, 1, 6, 2, True, update=False)
    order[0], order[13] = 0, 13
    # absurd ranges run only the batches that exist, with no overflow: a batch larger than the
    # data is all of it
    for first, count, bs, seen in [(2**62, 2**62, 6, 0), (3, 1, 2**62, 0), (0, 2**62, 2**62, 20), (3, 2**62, 6, 2)]:
        assert net._model.run_batches(X, y, order, first, count, bs, 2, True, update=False)[1] == seen


# ---------------------------------------------------------------------------- mpiexec pynn train
def test_cli_train_distributed_on_two_ranks_equals_one_process(tmp_path):
    # `mpiexec -n 2 python -m pynn train --distributed` (issue 7, item 3): each rank keeps every
    # other training and validation example with half the batch; the saved model equals a
    # one-process `pynn train` with the same settings (float64, in file order), and only rank 0
    # prints and saves
    if importlib.util.find_spec("mpi4py") is None:
        _unavailable('mpi4py is not installed (pip install "pynn[mpi]")')
    exe = _mpiexec()
    if exe is None:
        _unavailable('no mpiexec found (pip install "pynn[mpi]" brings MPICH\'s)')
    rng = np.random.default_rng(5)
    n = 50
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1]
    labels = np.array(["ant", "bee", "cow"])[(X[:, 0] + X[:, 1] / 10 > 0).astype(int) + (X[:, 2] > 0.05)]
    data = tmp_path / "train.csv"
    rows = (f"{x[0]!r},{x[1]!r},{x[2]!r},{lab}\n" for x, lab in zip(X.tolist(), labels))
    data.write_text("a,b,c,kind\n" + "".join(rows))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pathlib.Path(pynn.__file__).parents[1]),
                                                                      os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    args = ["-m", "pynn", "train", str(data), "--target", "kind", "--hidden", "6", "--activation", "tanh",
            "--epochs", "3", "--batch-size", "8", "--dtype", "float64", "--no-shuffle", "--validation-split", "0.2",
            "--standardize", "--lr", "0.05", "--seed", "3"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one.npz")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([exe, "-n", "2", sys.executable, *args, "--distributed", "--out", str(tmp_path / "two.npz")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, f"{two.stdout}\n{two.stderr}"
    assert two.stdout.count("saved the model to") == 1 and two.stdout.count("pynn train:") == 1
    assert "2 MPI ranks of batch 4" in two.stdout
    a, b = pynn.load(tmp_path / "one.npz"), pynn.load(tmp_path / "two.npz")
    assert a.metadata == b.metadata and a.sizes == b.sizes
    assert np.abs(a._params - pynn.Network.from_sizes(a.sizes, hidden="tanh", output="softmax", dtype="float64",
                                                      seed=3)._params).max() > 1e-3  # it trained
    assert_weights(b._params, a._params)
    # a global batch the ranks cannot split evenly is refused on every rank, and nothing is saved
    odd = subprocess.run([exe, "-n", "2", sys.executable, *args, "--distributed", "--batch-size", "7", "--out",
                          str(tmp_path / "odd.npz")], env=env, capture_output=True, text=True, timeout=300)
    assert odd.returncode == 1 and not (tmp_path / "odd.npz").exists()
    assert "pynn: error: --batch-size 7 must be a multiple of the number of MPI ranks (2)" in odd.stderr
