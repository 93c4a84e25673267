"""``fit_many``: K independent networks trained in one call, one thread per network.

The compiled core (and the jitted fused model) run whole epochs with the GIL released, so K
fits in a thread pool overlap on the cores. Each network's BLAS and Numba run on one thread
while they do: a product split over threads inside each of several concurrent fits would only
oversubscribe the cores, and one thread per product makes every result independent of the
thread count — equal, bit for bit, to ``net.fit(..., deterministic=True)`` on its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from . import _validate as V
from ._sparse import SparseRows
from ._threads import single_threaded
from .network import Network, _check_monitors, _logged
from .optimizers import Optimizer
from .training import History, as_callbacks


def _per_net(value: Any, k: int, name: str, check) -> list:
    """A scalar for every network, or a sequence of one value per network."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != k:
            raise ValueError(f"{name} must be one value or a sequence of {k} (one per network), got {len(value)}")
        return [check(v, f"{name}[{i}]") for i, v in enumerate(value)]
    check(value, name)
    return [value] * k


def _check_optimizer(opt: Any, name: str) -> Optimizer:
    if not isinstance(opt, Optimizer):
        raise TypeError(f"{name} must be a pynn optimizer such as pynn.SGD(lr), got {type(opt).__name__}")
    return opt


def _check_seed(seed: Any, name: str) -> int | None:
    return None if seed is None else V.check_int(seed, name, minimum=0)


def fit_many(nets: Sequence[Network], X: Any, Y: Any, *, loss: str, optimizers: Any, epochs: Any = 1,
             batch_size: Any = 32, seeds: Any = None, validation_data: tuple[Any, Any] | None = None,
             shuffle: bool = True, callbacks: Sequence[Any] | None = None, n_jobs: int | None = None
             ) -> list[History]:
    """Train K independent networks on the same data in one call, in parallel threads.

    Each network trains exactly as ``nets[k].fit(X, Y, loss=loss, optimizer=optimizers[k],
    epochs=epochs[k], batch_size=batch_size[k], seed=seeds[k], deterministic=True, ...)`` would
    on its own — the same weights bit for bit — but the K fits share one validated (and cast)
    copy of the data and run concurrently, one network per thread with the GIL released.

    Parameters
    ----------
    nets : sequence of Network
        K distinct networks (different sizes, activations, seeds, dtypes or backends are fine).
    X, Y : array_like or scipy.sparse CSR
        The training data, as for :meth:`Network.fit`; validated once per dtype.
    loss : str
        The loss, as for :meth:`Network.fit`.
    optimizers : Optimizer or sequence of K Optimizer
        One optimizer for all (its state is kept per network) or one per network, e.g.
        different learning rates.
    epochs, batch_size : int or sequence of K int
    seeds : None, int or sequence of K (int or None)
        The shuffling seed of each network's fit.
    validation_data : (X_val, Y_val), optional
    shuffle : bool
    callbacks : sequence of K callback lists, optional
        ``callbacks[k]`` goes to network k's fit (e.g. a schedule of ``optimizers[k]``).
    n_jobs : int, optional
        Threads; by default ``min(K, os.cpu_count())``.

    Returns
    -------
    list of History
        One per network; ``nets[k].history`` is the same object.

    Notes
    -----
    While ``fit_many`` runs, every BLAS in the process (the compiled core's and NumPy's) and
    Numba run each call on one thread (the previous counts are put back afterwards). Every check
    of the arguments (the data, and each network's callbacks, such as an EarlyStopping's
    monitor) is made for all networks before any trains. A network whose fit raises (e.g.
    :class:`pynn.Diverged`) does not stop the others; the first error is raised when all have
    finished. Ctrl-C ends every fit after its current epoch and re-raises.

    Examples
    --------
    >>> import numpy as np, pynn
    >>> X, y = np.random.default_rng(0).random((4, 100)), np.arange(100) % 3
    >>> nets = [pynn.Network.from_sizes([4, 8, 3], seed=s) for s in range(4)]
    >>> hs = pynn.fit_many(nets, X, y, loss="cross_entropy", optimizers=pynn.Adam(0.01), epochs=2, seeds=0)
    >>> len(hs), len(hs[0].loss)
    (4, 2)
    """
    if isinstance(nets, (Network, str)) or not isinstance(nets, Sequence):
        raise TypeError(f"nets must be a sequence of pynn.Network, got {type(nets).__name__}")
    k = len(nets)
    if k == 0:
        raise ValueError("nets must hold at least one Network, got none")
    for i, net in enumerate(nets):
        if not isinstance(net, Network):
            raise TypeError(f"nets[{i}] must be a pynn.Network, got {type(net).__name__}")
    if len(set(map(id, nets))) != k:
        raise ValueError("nets must not repeat a Network: each is trained independently")
    opts = _per_net(optimizers, k, "optimizers", _check_optimizer)
    epochs_ = _per_net(epochs, k, "epochs", V.check_int)
    batch_sizes = _per_net(batch_size, k, "batch_size", V.check_int)
    seeds_ = _per_net(seeds, k, "seeds", _check_seed)
    if callbacks is None:
        callbacks = [()] * k
    elif not isinstance(callbacks, Sequence) or len(callbacks) != k:
        raise ValueError(f"callbacks must be None or a sequence of {k} callback lists (one per network)")
    else:  # checked here, not in each fit: one network's bad list must not let the others train
        checked_cbs = []
        for i, cbs in enumerate(callbacks):
            try:
                checked_cbs.append(as_callbacks(cbs))
            except TypeError as e:
                raise TypeError(f"callbacks[{i}]: {e}") from None
        callbacks = checked_cbs
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
    if n_jobs is None:
        n_jobs = min(k, os.cpu_count() or 1)
    n_jobs = V.check_int(n_jobs, "n_jobs")

    # Validate for every network before any trains (so bad input changes none of them); networks
    # of one dtype get the same checked arrays, so the data is cast at most once per dtype.
    checked: dict[Any, tuple] = {}
    data = []
    for i, net in enumerate(nets):
        key = (net.dtype, net.layers[0].n_in, net.sizes[-1])
        if key not in checked:
            names = (f"X (for nets[{i}])", f"Y (for nets[{i}])")
            Xc, Yc, lossc = net._validated(X, Y, loss, names)
            val = None
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise TypeError("validation_data must be a pair (X_val, Y_val)")
                val = net._validated(validation_data[0], validation_data[1], loss,
                                     ("validation_data[0]", "validation_data[1]"))[:2]
            checked[key] = (Xc, Yc, lossc, val)
        else:
            net._check_loss(loss)
        data.append(checked[key])
    for i, cbs in enumerate(callbacks):  # fit's own check of its callbacks, before any network trains
        try:
            _check_monitors(cbs, _logged(data[i][2], validation_data is not None))
        except ValueError as e:
            raise ValueError(f"callbacks[{i}]: {e}") from None
    def unwrap(A):  # fit takes the checked arrays back as they are (a SparseRows as its CSR): no copy
        return A.csr if isinstance(A, SparseRows) else A

    def train(i: int) -> History:
        Xc, Yc, lossc, val = data[i]
        numba = sys.modules.get("numba")
        if numba is not None:  # Numba's thread count is per thread
            numba.set_num_threads(1)
        return nets[i].fit(unwrap(Xc), Yc, loss=lossc, optimizer=opts[i], epochs=epochs_[i],
                           batch_size=batch_sizes[i], seed=seeds_[i], shuffle=shuffle,
                           validation_data=None if val is None else (unwrap(val[0]), val[1]),
                           callbacks=callbacks[i])

    with single_threaded(), ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="pynn-fit-many") as pool:
        futures = [pool.submit(train, i) for i in range(k)]
        try:
            wait(futures)
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            for net in nets:
                net.stop_training = True  # each running fit ends after its current epoch
            wait(futures)
            raise
    for i, f in enumerate(futures):
        err = f.exception()
        if err is not None:
            if hasattr(err, "add_note"):
                err.add_note(f"raised by the fit of nets[{i}] in fit_many")
            raise err
    return [f.result() for f in futures]
