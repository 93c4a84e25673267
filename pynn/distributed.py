"""Data-parallel training over MPI ranks: ``net.fit(X, Y, ..., comm=MPI.COMM_WORLD)``.

Every rank holds the same network and its own shard of the data. At the start of ``fit`` rank 0's
weights (and optimizer state) are broadcast, then every step is:

1. each rank ``r`` computes the gradients ``g_r`` of the mean loss over its local batch of
   ``d_r`` examples (``d_r = 0`` once its shard is used up for the epoch);
2. one ``Allreduce`` (sum) over one flat buffer, allocated once per ``fit``, holding
   ``[d_r·g_r | d_r, d_r·J_r, right_r, judged_r, bad_r, stop_r, error_r]``;
3. every rank divides the summed gradients by ``D = Σ d_r`` — the gradient of the mean loss over
   the union of the local batches, as one process computes it on that global batch (up to the
   order of the floating-point sums) — and applies the same optimizer step to the same numbers,
   so the weights stay bit-identical on every rank (checked by a checksum once an epoch).

A non-finite loss or gradient on any rank (``bad``), a callback that asks to stop (``stop``) or
an exception on any rank (``error``) is seen by all ranks in the same reduction, so they all
stop together without one applying an update the others skip, and none is left waiting.

Batching. Each rank passes its local shard and the same ``batch_size``, ``epochs``, ``shuffle``
and ``seed``; ``batch_size`` is the *local* batch, so the global batch holds ``size ×
batch_size`` examples. Step ``k`` of an epoch uses local examples ``[k·b, (k+1)·b)`` of each
rank's shard (in the shuffled order when ``shuffle=True``); an epoch has as many steps as the
largest shard needs. With the round-robin shards of :func:`shard` (rank ``r`` holds examples
``r, r + R, r + 2R, …``) and ``shuffle=False``, step ``k`` on ``R`` ranks uses exactly global
examples ``[k·R·b, (k+1)·R·b)``: the same batches as one process running ``fit`` on the whole
data with ``batch_size = R·b``, for any number of examples. With ``shuffle=True`` rank ``r``
permutes its shard each epoch with ``np.random.default_rng(np.random.SeedSequence(seed,
spawn_key=(r,)))`` (``seed=None``: rank 0 draws the entropy and every rank uses it).

The ``History`` is the same on every rank: ``loss``/``accuracy`` are sample-weighted over all
ranks' batches, ``val_loss``/``val_accuracy`` over all ranks' validation shards, ``time`` is the
slowest rank's epoch; ``comm_time`` is the seconds this rank spent in the gradient Allreduce.
Callbacks run on every rank with the same logs; only rank 0 prints (``verbose``). ``net.save``
writes wherever it is called: use :func:`save` to write from rank 0 alone.

What ``Network.fit``'s other arguments do here: ``deterministic=True`` runs each rank's BLAS and
Numba on one thread, as in a one-process fit (the Allreduce's sums are in MPI's fixed order);
``health`` is not recorded (``None`` or ``False``; ``True`` raises ValueError); ``sample_weight``,
``class_weight``, ``validation_fraction``, ``batch_size=None``, :class:`pynn.LBFGS`, networks with
dropout and sparse ``X`` raise (ValueError, TypeError for sparse input) on every rank before any
training.

mpi4py is imported only when a communicator is used: ``import pynn`` never loads MPI.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import zlib
from typing import Any

import numpy as np

from . import _validate as V
from ._sparse import SparseRows
from ._threads import single_threaded
from .losses import CLASSIFICATION, loss_delta, loss_name
from .optimizers import LBFGS, Optimizer
from .training import Diverged, EarlyStopping, History, Progress, as_callbacks, correct_count

__all__ = ["comm_world", "evaluate", "fit", "is_root", "local_batch_size", "save", "shard", "threads_per_rank"]

# The step buffer's tail, after the P summed gradients.
_D, _LOSS, _RIGHT, _JUDGED, _BAD, _STOP, _ERROR = range(7)
_TAIL = 7

# Set by MPI launchers in every rank's environment: MPICH/Intel MPI (hydra), Open MPI, PMIx
# (Open MPI 5, srun --mpi=pmix), MVAPICH.
_LAUNCHER_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"pynn.distributed needs mpi4py and an MPI library: pip install \"pynn[mpi]\" ({e})") from None
    return MPI


def _check_comm(comm: Any):
    if not hasattr(comm, "Allreduce"):  # not a communicator at all: say so without loading MPI
        raise TypeError(f"comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, got {type(comm).__name__}")
    MPI = _mpi()
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, got {type(comm).__name__}")
    return MPI


# ---------------------------------------------------------------------------- helpers for scripts
def comm_world():
    """``MPI.COMM_WORLD`` when this process was started by an MPI launcher (``mpiexec``,
    ``srun``) with more than one rank, else ``None`` — without importing mpi4py in a plain run.

    Examples
    --------
    >>> from pynn import distributed
    >>> comm = distributed.comm_world()   # None unless started by mpiexec -n 2 or more
    """
    if not any(v in os.environ for v in _LAUNCHER_VARS):
        return None
    comm = _mpi().COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def is_root(comm: Any = None) -> bool:
    """True on rank 0 of ``comm``, and in a plain run (``comm=None``): the rank that prints and saves."""
    return comm is None or comm.Get_rank() == 0


def shard(A: Any, comm: Any = None, *, rank: int | None = None, size: int | None = None) -> np.ndarray:
    """This rank's round-robin share of the examples (the last axis) of ``A``: ``A[..., rank::size]``.

    A view, never a copy. Use it on ``X`` ``(n_features, n_examples)`` and on ``Y`` (``(m, n)`` or
    class indices ``(n,)``) alike. Round-robin rather than contiguous blocks because then ``fit``
    with ``batch_size=b`` and ``shuffle=False`` on ``size`` ranks takes exactly the batches of a
    one-process ``fit`` with ``batch_size=size*b`` on the whole data (see the module docstring).

    Parameters
    ----------
    A : array_like
        Data with the examples along the last axis.
    comm : mpi4py communicator, optional
        Gives ``rank`` and ``size``; or pass them directly. With neither, ``A`` is returned whole.
    rank, size : int, optional
        This rank and the number of ranks, when there is no ``comm``.

    Examples
    --------
    >>> import numpy as np
    >>> from pynn.distributed import shard
    >>> shard(np.arange(7), rank=1, size=3)
    array([1, 4])
    """
    if comm is not None:
        if rank is not None or size is not None:
            raise TypeError("shard takes either comm or rank and size, not both")
        rank, size = comm.Get_rank(), comm.Get_size()
    elif rank is None and size is None:
        return np.asarray(A)
    size = V.check_int(size, "size")
    rank = V.check_int(rank, "rank", minimum=0)
    if rank >= size:
        raise ValueError(f"rank must lie in [0, {size - 1}] for size={size}, got {rank}")
    A = A if isinstance(A, np.ndarray) else np.asarray(A)
    if A.ndim == 0:
        raise ValueError("A must have at least one axis (the examples), got a scalar")
    return A[..., rank::size]


def threads_per_rank(comm: Any = None) -> int:
    """How many threads this rank should use (``pynn.set_num_threads``): the cores it may run on,
    each shared evenly among the ranks of ``comm`` on the same node that may run on it too.

    Two unbound ranks on a 32-core node get 16 each; ranks a launcher bound to 16 cores each
    get 16. With ``comm=None``, the cores this process may run on. Collective: every rank of
    ``comm`` must call it.
    """
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    if comm is None:
        return len(mine)
    MPI = _check_comm(comm)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks sharing this node's memory
    try:
        sets = node.allgather(mine)
    finally:
        node.Free()
    share = sum(1 / sum(c in s for s in sets) for c in mine)
    return max(1, int(share + 1e-9))


def local_batch_size(batch_size: int, comm: Any = None) -> int:
    """The per-rank batch for a global ``batch_size``: ``batch_size // comm.size``, which must
    divide evenly so that every global batch matches a one-process run."""
    batch_size = V.check_int(batch_size, "batch_size")
    size = 1 if comm is None else comm.Get_size()
    if batch_size % size:
        raise ValueError(f"batch_size must be a multiple of the number of ranks ({size}) to split it evenly, "
                         f"got {batch_size}")
    return batch_size // size


def save(net, path: Any, comm: Any = None) -> None:
    """Write ``net`` to ``path`` from rank 0 only (every rank holds the same weights after a
    distributed ``fit``); every rank returns once the file is written, and every rank raises
    if writing it failed. With ``comm=None`` this is ``net.save(path)``."""
    if comm is None:
        net.save(path)
        return
    _check_comm(comm)
    err = None
    if comm.Get_rank() == 0:
        try:
            net.save(path)
        except Exception as e:  # every rank must hear of it, or the others would go on
            err = e
    msg = comm.bcast(None if err is None else f"{type(err).__name__}: {err}", root=0)
    if err is not None:
        raise err
    if msg is not None:
        raise OSError(f"rank 0 could not save the network to {os.fspath(path)!r}: {msg}")


def evaluate(net, X: Any, Y: Any, loss: str, comm: Any = None) -> dict[str, float]:
    """``net.evaluate`` over the union of every rank's shard ``(X, Y)``: ``loss`` (and
    ``accuracy`` for bce / cross_entropy) weighted by each shard's number of examples; the same
    dict on every rank."""
    if comm is None:
        return net.evaluate(X, Y, loss)
    if net.scaler is not None:
        raise ValueError("evaluate(comm=...) does not apply an input scaler: standardize the shards beforehand")
    _check_comm(comm)
    sums, err = None, None
    try:
        X, Y, loss = net._validated(X, Y, loss)
        sums = _eval_sums(net, X, Y, loss)
    except Exception as e:
        err = e
    gathered = comm.allgather((_describe(err), sums))
    _raise_if_failed(err, [g[0] for g in gathered])
    return _eval_logs([g[1] for g in gathered], loss, "")


# ---------------------------------------------------------------------------- agreeing on errors
def _describe(err: BaseException | None):
    return None if err is None else (type(err).__name__, str(err))


def _raise_if_failed(own: BaseException | None, described: list) -> None:
    """Raise on every rank if any rank failed: its own exception where it happened, and the same
    kind (ValueError, TypeError, else RuntimeError) naming that rank everywhere else."""
    if own is not None:
        raise own
    for r, d in enumerate(described):
        if d is not None:
            kind = {"ValueError": ValueError, "TypeError": TypeError}.get(d[0], RuntimeError)
            raise kind(f"rank {r}: {d[0]}: {d[1]}")


# ---------------------------------------------------------------------------- fit
def fit(net, X: Any, Y: Any, *, comm: Any, loss: str, optimizer: Optimizer, epochs: int = 1, batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
        callbacks: Any = (), verbose: int = 0, health: bool | None = None, deterministic: bool = False,
        sample_weight: Any = None, class_weight: Any = None, validation_fraction: float | None = None) -> History:
    """Data-parallel ``net.fit`` over the ranks of ``comm``; ``Network.fit(..., comm=comm)``
    calls this. Every rank calls it with its own shard ``(X, Y)`` (and validation shard) and
    the same ``loss``, ``optimizer`` settings, ``epochs``, ``batch_size`` (per rank), ``shuffle``
    and ``seed``; the module docstring says how batches map to a one-process run.

    Arguments are checked on every rank before any training, and a problem on one rank raises
    on all of them (naming the rank), so no rank waits for the others forever. ``deterministic``
    is supported; ``health=True``, ``sample_weight``, ``class_weight``, ``validation_fraction``,
    ``batch_size=None``, :class:`pynn.LBFGS`, dropout and sparse ``X`` raise (see the module
    docstring).

    Returns
    -------
    History
        The same on every rank (``comm_time`` excepted): per-epoch ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` reduced over all ranks, ``time`` and ``comm_time``.
    """
    MPI = _check_comm(comm)
    rank = comm.Get_rank()
    err, plan = None, None
    try:
        _unsupported(net, optimizer, batch_size, health, sample_weight, class_weight, validation_fraction)
        if not isinstance(deterministic, (bool, np.bool_)):
            raise TypeError(f"deterministic must be a bool, got {deterministic!r}")
        plan = _Plan(net, X, Y, loss, optimizer, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                     verbose)
    except Exception as e:
        err = e
    gathered = comm.allgather((_describe(err), plan and plan.agreement, plan and plan.n_batches,
                               plan and plan.X.shape[1], np.random.SeedSequence().entropy if rank == 0 else None))
    _raise_if_failed(err, [g[0] for g in gathered])
    for r, g in enumerate(gathered[1:], 1):
        for key in plan.agreement:
            if g[1][key] != gathered[0][1][key]:
                raise ValueError(f"fit(comm=...) needs the same {key} on every rank: rank 0 has "
                                 f"{gathered[0][1][key]!r}, rank {r} has {g[1][key]!r}")
    n_steps = max(g[2] for g in gathered)
    n_total = sum(g[3] for g in gathered)
    entropy = plan.seed if plan.seed is not None else gathered[0][4]

    _broadcast(net, optimizer, comm)
    with single_threaded() if deterministic else contextlib.nullcontext():
        return _train(net, plan, comm, MPI, rank, n_steps, n_total,
                      np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(rank,))))


def _unsupported(net, optimizer, batch_size, health, sample_weight, class_weight, validation_fraction) -> None:
    """Refuse the ``Network.fit`` arguments a data-parallel fit does not take, naming them."""
    if health is not None and not isinstance(health, (bool, np.bool_)):
        raise TypeError(f"health must be a bool, got {health!r}")
    for name, value, given in (("health", health, bool(health)),
                               ("sample_weight", sample_weight, sample_weight is not None),
                               ("class_weight", class_weight, class_weight is not None),
                               ("validation_fraction", validation_fraction, validation_fraction is not None)):
        if given:
            raise ValueError(f"fit(comm=...) does not support {name}: pass {name}=None"
                             f"{' or False' if name == 'health' else ''} (got {name}={value!r})")
    if batch_size is None:
        raise ValueError("fit(comm=...) needs an int batch_size (examples per rank and step), got None "
                         "(full-batch training is not supported across ranks)")
    if isinstance(optimizer, LBFGS):
        raise ValueError("fit(comm=...) does not support pynn.LBFGS (a full-batch method run by SciPy); "
                         "use SGD, Adam, RMSprop or Rprop")
    if getattr(net, "_dropout", False):
        raise ValueError("fit(comm=...) does not support networks with dropout (every rank would draw the same "
                         f"masks), got dropout rates {list(net._rates)}")


class _Plan:
    """fit's arguments, checked and cast as ``Network.fit`` checks them."""

    def __init__(self, net, X, Y, loss, optimizer, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                 verbose) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pynn optimizer such as pynn.SGD(lr), got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.epochs = V.check_int(epochs, "epochs")
        self.bs = V.check_int(batch_size, "batch_size")
        self.verbose = V.check_int(verbose, "verbose", minimum=0)
        self.seed = None if seed is None else V.check_int(seed, "seed", minimum=0)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
        self.shuffle = bool(shuffle)
        self.cbs = as_callbacks(callbacks)
        self.X, self.Y, self.loss = net._validated(X, Y, loss)
        if isinstance(self.X, SparseRows):
            raise TypeError("fit(comm=...) needs dense X (a NumPy array), got sparse rows")
        self.val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, Y_val)")
            self.val = net._validated(validation_data[0], validation_data[1], self.loss,
                                      ("validation_data[0]", "validation_data[1]"))[:2]
        logged = {"loss"} | ({"accuracy"} if self.loss in CLASSIFICATION else set())
        logged |= {f"val_{k}" for k in logged} if self.val is not None else set()
        for cb in self.cbs:
            if isinstance(cb, EarlyStopping) and cb.monitor not in logged:
                raise ValueError(f"EarlyStopping monitors {cb.monitor!r}, which this fit does not log; it logs "
                                 f"{sorted(logged)} (val_* needs validation_data)")
        self.n_batches = -(-self.X.shape[1] // self.bs)
        self.agreement = {  # what must be the same on every rank
            "layers": [(l.n_in, l.n_out, l._stem) for l in net.layers], "dtype": net.dtype.name,
            "backend": net.backend, "loss": (loss_name(self.loss), loss_delta(self.loss)), "optimizer": (type(optimizer).__name__, optimizer.get_config()),
            "epochs": self.epochs, "batch_size": self.bs, "shuffle": self.shuffle, "seed": self.seed,
            "validation_data": "given" if self.val is not None else None,
        }


def _broadcast(net, optimizer: Optimizer, comm) -> None:
    """Rank 0's weights and optimizer state to every rank: one Bcast of the flat parameter
    buffer (plus one per state array — momentum, Adam moments and step count)."""
    comm.Bcast(net._params, root=0)
    state = optimizer.state(net)
    for key in sorted(state):
        if isinstance(state[key], np.ndarray) and state[key].size:
            comm.Bcast(state[key], root=0)


def _batch_grads(net, plan, order, k, code, classify, bufs) -> tuple[float, int, int, int, bool]:
    """The gradients of this rank's batch ``k`` into ``net._grads`` (no update):
    ``(Σ J·d, d, right, judged, finite)`` with ``J`` the batch's mean loss."""
    X, Y = plan.X, plan.Y
    bs = min(plan.bs, X.shape[1])  # a batch larger than the shard is the whole shard
    s, e = k * bs, min(X.shape[1], (k + 1) * bs)
    if net._model is not None:  # gathered, differentiated and counted in one compiled call
        ls, _, right, judged, _, diverged, bad, _ = net._model.run_batches(
            X, Y, order, k, 1, bs, code, classify, False, None, loss_delta(plan.loss), update=False)
        return (bad * (e - s) if diverged else ls), e - s, right, judged, not diverged
    if order is not None:  # gather the shuffled batch into the reused buffers
        from .network import _gather

        idx = order[s:e]
        xb, yb = bufs[0][:, : e - s], bufs[1][..., : e - s]
        _gather(X, idx, xb)
        _gather(Y, idx, yb)
    else:
        xb, yb = X[:, s:e], Y[..., s:e]
    J = net._loss_and_grads(xb, yb, plan.loss)
    g = net._grads
    finite = math.isfinite(J) and math.isfinite(g.min()) and math.isfinite(g.max())
    right, judged = correct_count(net._workspace(e - s).A[-1], yb, plan.loss) if classify else (0, 0)
    return J * (e - s), e - s, right, judged, finite


def _eval_sums(net, X: np.ndarray, Y: np.ndarray, loss: str) -> tuple[float, int, int, int]:
    """(Σ J·d, d, right, judged) of one shard, on validated inputs."""
    d = X.shape[1]
    J = net._loss_from_checked(X, Y, loss)
    right, judged = correct_count(net._workspace(d).A[-1], Y, loss) if loss in CLASSIFICATION else (0, 0)
    return J * d, d, right, judged


def _eval_logs(sums: list, loss: str, prefix: str) -> dict[str, float]:
    total = [sum(s[i] for s in sums) for i in range(4)]
    logs = {f"{prefix}loss": total[0] / total[1]}
    if loss in CLASSIFICATION:
        logs[f"{prefix}accuracy"] = total[2] / max(total[3], 1)
    return logs


def _train(net, plan: _Plan, comm, MPI, rank: int, n_steps: int, n_total: int, rng) -> History:
    from .network import _LOSS_CODE

    X, Y, loss, opt, cbs = plan.X, plan.Y, plan.loss, plan.optimizer, plan.cbs
    P, code, classify = net._params.size, _LOSS_CODE[loss_name(loss)], loss in CLASSIFICATION
    buf = np.zeros(P + _TAIL, net.dtype)  # the one buffer every step reduces
    gsum, tail = buf[:P], buf[P:]
    gather = plan.shuffle and net._model is None  # the compiled paths gather into their own workspace
    bs = min(plan.bs, X.shape[1])
    bufs = (np.empty((X.shape[0], bs), net.dtype, order="F"),
            np.empty((Y.shape[0], bs) if Y.ndim == 2 else (bs,), Y.dtype, order="F")) if gather else None
    history = History()
    progress = Progress(plan.verbose if rank == 0 else 0, plan.epochs, n_steps)
    net.stop_training = False
    pending: BaseException | None = None  # an exception on this rank, not yet told to the others

    def guarded(fn, *args):
        nonlocal pending
        if pending is None:
            try:
                fn(*args)
            except Exception as e:
                pending = e

    for cb in cbs:
        guarded(cb.on_train_begin, net, {})
    for epoch in range(plan.epochs):
        for cb in cbs:
            guarded(cb.on_epoch_begin, net, epoch, {})
        t0 = time.perf_counter()
        order = rng.permutation(X.shape[1]) if plan.shuffle else None
        total, seen, right, judged, comm_time = 0.0, 0, 0, 0, 0.0
        stopped = False
        for k in range(n_steps):
            # 1. this rank's share: d_r * g_r and the counts (zeros once its shard is used up)
            local = None
            if pending is None and k < plan.n_batches:
                try:
                    local = _batch_grads(net, plan, order, k, code, classify, bufs)
                except Exception as e:
                    pending = e
            if local is None:
                buf.fill(0)
            else:
                ls, d, r, j, finite = local
                np.multiply(net._grads, d, out=gsum)
                tail[:_STOP] = d, ls, r, j, not finite
            tail[_STOP:] = net.stop_training, pending is not None
            # 2. one Allreduce: the sums over every rank
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            comm_time += time.perf_counter() - t
            # 3. every rank decides the same from the same sums
            if tail[_ERROR]:
                if pending is not None:
                    raise pending
                raise RuntimeError(f"training stopped at epoch {epoch}, step {k}: {int(tail[_ERROR])} other rank(s) "
                                   "raised an exception (see their output)")
            D = float(tail[_D])
            if tail[_BAD]:
                history._stop("diverged", epoch=epoch, batch=k, loss=float(tail[_LOSS] / D))
                net.history = history
                raise Diverged(f"the loss or gradient is not finite on {int(tail[_BAD])} of {comm.Get_size()} ranks "
                               f"at epoch {epoch}, step {k} (J = {tail[_LOSS] / D}); the weights were left unchanged "
                               "on every rank (try a smaller learning rate)", history)
            if tail[_STOP]:
                stopped = True
                break
            np.divide(gsum, D, out=net._grads)
            # clip, update, and take back an update that is not finite: the same numbers on every
            # rank, so every rank decides the same
            if not opt._apply(net):
                history._stop("diverged", epoch=epoch, batch=k, loss=float(tail[_LOSS] / D))
                net.history = history
                raise Diverged(f"the updated weights are not finite at epoch {epoch}, step {k}; the weights were "
                               "left unchanged on every rank (try a smaller learning rate)", history)
            J = float(tail[_LOSS]) / D
            total, seen = total + float(tail[_LOSS]), seen + int(D)
            right, judged = right + int(tail[_RIGHT]), judged + int(tail[_JUDGED])
            progress.batch(epoch, k, J)
            for cb in cbs:
                guarded(cb.on_batch_end, net, k, {"loss": J, "size": int(D)})

        logs = {"loss": total / max(seen, 1)}
        if classify:
            logs["accuracy"] = right / max(judged, 1)
        val = None
        if plan.val is not None and pending is None:
            try:
                val = _eval_sums(net, plan.val[0], plan.val[1], loss)
            except Exception as e:
                pending = e
        seconds = time.perf_counter() - t0
        # the ranks must still hold the same weights: compare a checksum once an epoch
        crc = zlib.crc32(net._params)
        gathered = comm.allgather((_describe(pending), val, seconds, crc))
        _raise_if_failed(pending, [g[0] for g in gathered])
        if len({g[3] for g in gathered}) > 1:
            raise RuntimeError(f"the ranks hold different weights after epoch {epoch} (checksums "
                               f"{[g[3] for g in gathered]}); did a callback change the weights on some ranks only?")
        if plan.val is not None:
            logs.update(_eval_logs([g[1] for g in gathered], loss, "val_"))
        seconds = max(g[2] for g in gathered)
        history.append(epoch, **logs, time=seconds, comm_time=comm_time)
        progress.epoch(epoch, logs, seconds, n_total)
        for cb in cbs:
            guarded(cb.on_epoch_end, net, epoch, logs)
        flags = comm.allgather((_describe(pending), bool(net.stop_training)))
        _raise_if_failed(pending, [f[0] for f in flags])
        if stopped or any(f[1] for f in flags):
            net.stop_training = True
            if epoch + 1 < plan.epochs:
                history._stop("stop_training", epoch=epoch + 1, batch=0)
            break
    for cb in cbs:
        cb.on_train_end(net, {})
    net.history = history
    return history
