"""The ``pynn`` command line (also ``python -m pynn``).

``pynn demo``, ``pynn train``, ``pynn predict``, ``pynn evaluate``, ``pynn explain`` and
``pynn info``; ``pynn COMMAND --help`` describes each. Usage errors exit with status 2
(argparse); problems with data or model files print one line ``pynn: error: ...`` on stderr and
exit with status 1.

How ``pynn train`` reads a target (``--task auto``): text labels, booleans, or whole numbers
with at most 20 distinct values make a classification (two classes: one sigmoid output and
binary cross-entropy; more: softmax and cross-entropy); anything else, or a 2-D NPZ target,
is a regression (linear outputs, mean squared error).

``mpiexec -n N pynn train --distributed ...`` (or ``python -m pynn``) trains data-parallel over
N MPI ranks (:mod:`pynn.distributed`): every rank reads the file and makes the same split and
scaling, keeps every N-th training (and validation) example from its rank on, and trains with
``batch_size / N`` examples per rank, so a step sees ``--batch-size`` examples in all; only rank
0 prints and saves. The flag is explicit rather than detected from the launcher's environment,
so a script run under ``mpiexec`` for other reasons never starts collective calls it did not ask
for; ``--distributed`` without a launcher runs as one rank.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from ._data import DataError

TASKS = ("auto", "classification", "regression")


class CLIError(Exception):
    """An error to report as one line ``pynn: error: ...`` with exit status 1."""


# ---------------------------------------------------------------- argument types (exit 2)
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return v


def _widths(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = [0]
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths such as 256,128 (or 'none'), "
                                         f"got {text!r}")
    return sizes


def _writable(path: str, what: str) -> str:
    """``path`` if a file can be created there; fail before any work is done otherwise."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"cannot write {what} to {path!r}: it is a directory")
    if not os.path.isdir(directory):
        raise CLIError(f"cannot write {what} to {path!r}: directory {directory!r} does not exist")
    return path


# ---------------------------------------------------------------- demo and info
def _demo(args: argparse.Namespace) -> int:
    import pynn
    from pynn.datasets import spirals

    X, y = spirals(args.n + args.n // 3, seed=0)
    Xtr, ytr, Xte, yte = X[: args.n], y[: args.n], X[args.n:], y[args.n:]
    backends = pynn.available_backends()
    print(f"pynn {pynn.__version__} demo: 3 interleaved spirals, {len(ytr)} training and {len(yte)} test points")
    print(f"network 2-64-64-3 (relu, softmax), Adam(lr=0.01), {args.epochs} epochs of batch 32; backends: "
          f"{', '.join(backends)}")
    rows = []
    for i, backend in enumerate(backends):
        verbose = 1 if args.verbose >= 2 or (args.verbose == 1 and i == 0) else 0
        net = pynn.Network.from_sizes([2, 64, 64, 3], backend=backend, seed=0)
        t0 = time.perf_counter()  # first call: compiles the Numba kernels, warms BLAS
        net._clone().fit(Xtr.T[:, :64], ytr[:64], loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=1)
        warm = time.perf_counter() - t0
        if verbose:
            print(f"\ntraining on {backend!r} (per epoch: training loss and accuracy, time, speed)")
        t0 = time.perf_counter()
        net.fit(Xtr.T, ytr, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=args.epochs, batch_size=32,
                seed=0, verbose=verbose)
        secs = time.perf_counter() - t0
        acc = float(np.mean(net.predict_classes(Xte.T) == yte))
        rows.append(f"{backend:<8} {acc:>13.3f} {secs:>10.2f}s {args.epochs * len(ytr) / secs:>11,.0f} {warm:>10.2f}s")
    print(f"\n{'backend':<8} {'test accuracy':>13} {'train time':>11} {'samples/s':>11} {'first-call':>11}")
    print("\n".join(rows))
    return 0


def _info(args: argparse.Namespace) -> int:
    import platform

    import pynn

    print(f"pynn {pynn.__version__} ({os.path.dirname(pynn.__file__)})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()} {platform.system()}")
    print(f"backends: {', '.join(pynn.available_backends())} (fastest first)")
    print(f"threads: {pynn.get_num_threads()} (pynn.set_num_threads), {os.cpu_count()} cores")
    try:
        from pynn import _core
        print(f"BLAS of the compiled core: {_core.blas_config()}")
    except ImportError as e:
        print(f"compiled core: not available ({e})")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        print("thread pools: install threadpoolctl to list them")
    else:
        lib_dir = _pynn_blas_dir()
        print("thread pools (threadpoolctl):")
        for pool in threadpool_info():
            owner = "pynn's" if lib_dir and os.path.dirname(pool["filepath"]) == lib_dir else "other"
            print(f"  {pool['internal_api']} {pool.get('version') or ''} {pool['num_threads']} threads, "
                  f"{owner}: {pool['filepath']}")
    return 0


def _pynn_blas_dir() -> str | None:
    try:
        import scipy_openblas32
    except ImportError:
        return None
    return os.path.realpath(scipy_openblas32.get_lib_dir())


# ---------------------------------------------------------------- train
def _read_training(args: argparse.Namespace):
    from . import _data

    if args.target is None and os.path.isfile(args.data) and not _data.is_npz(args.data):
        raise CLIError("--target is required for a CSV file: name the column to predict")
    data = _data.read(args.data, target=args.target, need_target=True, x_key=args.x_key, y_key=args.y_key)
    y = data.y
    if y is None:  # need_target=True makes read() refuse data without a target
        raise CLIError(f"{data.path!r} has no target")
    task = args.task if args.task != "auto" else _data.infer_task(y)
    meta: dict[str, Any] = {"pynn_train": 1, "task": task, "features": data.features, "target": data.target}
    if task == "classification":
        if y.ndim != 1:
            raise CLIError(f"a classification target must be one column; {data.target!r} has shape {y.shape}")
        classes, Y = _data.class_labels(y)
        if len(classes) < 2:
            raise CLIError(f"target {data.target!r} holds a single class ({classes[0]!r}): nothing to learn")
        meta["classes"] = classes
        n_out, output, loss = (1, "sigmoid", "bce") if len(classes) == 2 else (len(classes), "softmax",
                                                                                "cross_entropy")
        Y = Y.astype(np.float64).reshape(1, -1) if len(classes) == 2 else Y
    else:
        numbers = _data.as_numbers(y)
        if numbers is None:
            raise CLIError(f"--task regression needs a numeric target; {data.target!r} holds text or non-finite "
                           "values")
        Y = numbers.reshape(numbers.shape[0], -1).T  # (outputs, examples)
        n_out, output, loss = Y.shape[0], "linear", "mse"
        meta["outputs"] = [data.target] if n_out == 1 else [f"{data.target}[{i}]" for i in range(n_out)]
    meta["loss"] = loss
    return data, np.ascontiguousarray(data.X.T), Y, meta, n_out, output, loss


def _standardize(meta: dict[str, Any], X: np.ndarray, Y: np.ndarray, train: np.ndarray) -> tuple[np.ndarray,
                                                                                                  np.ndarray, Any]:
    """Scale features (and regression targets) to zero mean and unit variance, measured on the
    training examples. The features' :class:`pynn.Scaler` is returned, to become the saved
    network's ``scaler`` (so ``predict`` takes raw inputs, in Python as in ``pynn predict``); the
    targets' scaling is recorded in ``meta``, and ``pynn predict`` undoes it."""
    from .scaler import Scaler

    scaler = Scaler.fit(X, columns=train)
    X = scaler.transform(X)
    if meta["task"] == "regression":
        mu, sd = Y[:, train].mean(axis=1), Y[:, train].std(axis=1)
        sd[sd == 0] = 1.0
        meta["y_mean"], meta["y_std"] = mu.tolist(), sd.tolist()
        Y = (Y - mu[:, None]) / sd[:, None]
    return X, Y, scaler


def _comm(args: argparse.Namespace):
    """``MPI.COMM_WORLD`` for ``--distributed``, else None."""
    if not args.distributed:
        return None
    from . import distributed

    try:
        comm = distributed._mpi().COMM_WORLD
    except ImportError as e:
        raise CLIError(str(e)) from None
    if args.batch_size % comm.Get_size():
        raise CLIError(f"--batch-size {args.batch_size} must be a multiple of the number of MPI ranks "
                       f"({comm.Get_size()}) to split each batch evenly")
    return comm


def _fit(net, X, Y, val, args: argparse.Namespace, loss: str, comm: Any = None):
    """The one place ``pynn train`` trains. With ``comm`` each rank trains on its round-robin
    shard of ``X, Y`` (and of ``val``) with ``batch_size / size`` examples per rank."""
    import pynn

    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else 0.01)
    optimizer = pynn.Adam(lr) if args.optimizer == "adam" else pynn.SGD(lr, momentum=args.momentum)
    batch_size, verbose = args.batch_size, 0 if args.quiet else 1
    if comm is not None:
        from . import distributed

        X, Y = distributed.shard(X, comm), distributed.shard(Y, comm)
        val = None if val is None else (distributed.shard(val[0], comm), distributed.shard(val[1], comm))
        batch_size = distributed.local_batch_size(batch_size, comm)
    return net.fit(X, Y, loss=loss, optimizer=optimizer, epochs=args.epochs, batch_size=batch_size,
                   validation_data=val, shuffle=not args.no_shuffle, seed=args.seed, verbose=verbose, comm=comm)


def _train(args: argparse.Namespace) -> int:
    import pynn

    comm = _comm(args)
    root = comm is None or comm.Get_rank() == 0
    _writable(args.out, "the model")
    if args.plot:
        _writable(args.plot, "the plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plot needs matplotlib: pip install 'pynn[plot]'") from None
    data, X, Y, meta, n_out, output, loss = _read_training(args)
    n = X.shape[1]
    order = np.random.default_rng(args.seed).permutation(n)
    n_val = int(round(n * args.validation_split))
    if args.validation_split and not 1 <= n_val < n:
        raise CLIError(f"--validation-split {args.validation_split} of {n} examples leaves "
                       f"{n_val} for validation and {n - n_val} for training; both need at least one")
    train, held = np.sort(order[: n - n_val]), np.sort(order[n - n_val:])
    scaler = None
    if args.standardize:  # trained on the scaled copy; the scaler is the network's once trained
        X, Y, scaler = _standardize(meta, X, Y, train)
    if n_val:
        Xtr, Ytr = X[:, train], Y[..., train]
        val = (X[:, held], Y[..., held])
    else:
        Xtr, Ytr, val = X, Y, None
    net = pynn.Network.from_sizes([X.shape[0], *args.hidden, n_out], hidden=args.activation, output=output,
                                  dtype=args.dtype, backend=args.backend, seed=args.seed)
    net.metadata = meta
    net.feature_names = [str(f) for f in data.features]  # also as the model file's own fields
    if "classes" in meta:
        net.classes = meta["classes"]
    say = (lambda *a: None) if args.quiet or not root else print
    say(f"pynn train: {data.path}, {n} examples ({n - n_val} training, {n_val} validation), "
        f"{len(data.features)} features -> {data.target!r}: {meta['task']}"
        + (f" of {len(meta['classes'])} classes" if "classes" in meta else ""))
    say(f"network {'-'.join(map(str, net.sizes))} ({args.activation}, {output}), loss {loss}, {args.optimizer}, "
        f"{args.dtype}, backend {net.backend!r}"
        + (f", {comm.Get_size()} MPI ranks of batch {args.batch_size // comm.Get_size()}" if comm else ""))
    t0 = time.perf_counter()
    history = _fit(net, Xtr, Ytr, val, args, loss, comm)
    secs = time.perf_counter() - t0
    net.scaler = scaler
    if comm is None:
        net.save(args.out)
    else:  # rank 0 writes; every rank returns once it is written (or raises if it was not)
        from . import distributed

        distributed.save(net, args.out, comm)
    last = ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.history.items() if k != "time")
    say(f"trained {len(history)} epochs in {secs:.2f}s ({len(history) * Xtr.shape[1] / max(secs, 1e-9):,.0f} "
        f"samples/s): {last}")
    say(f"saved the model to {args.out}")
    if args.plot and root:
        history.plot(args.plot)
        say(f"saved the loss curves to {args.plot}")
    return 0


# ---------------------------------------------------------------- predict and evaluate
def _load_model(path: str, backend: str | None):
    import pynn

    if not os.path.exists(path):
        raise CLIError(f"model file {path!r} does not exist")
    net = pynn.load(path, backend=backend)
    meta = net.metadata
    if meta.get("pynn_train") != 1:
        raise CLIError(f"{path!r} was not written by 'pynn train': it has no record of its features and target "
                       "(use pynn.load in Python)")
    return net, meta


def _inputs(net, meta: dict[str, Any], args: argparse.Namespace, need_target: bool):
    from . import _data

    data = _data.read(args.data, target=meta["target"], features=meta["features"], need_target=need_target,
                      x_key=args.x_key, y_key=meta["target"] if args.y_key is None else args.y_key)
    X = data.X.T
    if "x_mean" in meta:  # an older pynn train's file (it now saves a net.scaler)
        X = (X - np.array(meta["x_mean"])[:, None]) / np.array(meta["x_std"])[:, None]
    return data, X


def _outputs_to_values(meta: dict[str, Any], Yhat: np.ndarray) -> np.ndarray:
    """Regression outputs in the target's own units (undoing the standardisation)."""
    Yhat = Yhat.astype(np.float64)
    if "y_mean" in meta:
        Yhat = Yhat * np.array(meta["y_std"])[:, None] + np.array(meta["y_mean"])[:, None]
    return Yhat


def _predict(args: argparse.Namespace) -> int:
    net, meta = _load_model(args.model, args.backend)
    if args.out:
        _writable(args.out, "the predictions")
    data, X = _inputs(net, meta, args, need_target=False)
    Yhat = net.predict(X)
    digits = 17 if net.dtype == np.float64 else 9
    fmt = f"{{:.{digits}g}}".format
    if meta["task"] == "classification":
        classes = meta["classes"]
        proba = np.vstack([1 - Yhat[0], Yhat[0]]) if Yhat.shape[0] == 1 else Yhat
        labels = [classes[i] for i in proba.argmax(axis=0)]
        header = [meta["target"]] + ([f"p({meta['target']}={c})" for c in classes] if args.proba else [])
        rows = ([str(lab)] + ([fmt(p) for p in col] if args.proba else []) for lab, col in zip(labels, proba.T))
    else:
        if args.proba:
            raise CLIError("--proba applies to classification models; this one is a regression")
        values = _outputs_to_values(meta, Yhat)
        header = meta["outputs"]
        rows = ([fmt(v) for v in col] for col in values.T)
    if args.out:
        tmp = f"{args.out}.tmp{os.getpid()}"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            _write_csv(f, header, rows)
        os.replace(tmp, args.out)
    else:
        _write_csv(sys.stdout, header, rows)
    return 0


def _write_csv(f: TextIO, header: list[str], rows) -> None:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)


def _evaluate(args: argparse.Namespace) -> int:
    from . import _data

    net, meta = _load_model(args.model, args.backend)
    data, X = _inputs(net, meta, args, need_target=True)
    loss = meta["loss"]
    print(f"{args.model} on {data.path}: {X.shape[1]} examples, target {meta['target']!r} ({meta['task']})")
    if meta["task"] == "classification":
        Y = _data.class_indices(data.y, meta["classes"], f"target {meta['target']!r} of {data.path!r}")
        if len(meta["classes"]) == 2:
            Y = Y.astype(np.float64).reshape(1, -1)
        scores = net.evaluate(X, Y, loss)
        print(f"loss      {scores['loss']:.6g}  ({loss})")
        print(f"accuracy  {scores['accuracy']:.6g}")
    else:
        y = _data.as_numbers(data.y)
        if y is None:
            raise CLIError(f"target {meta['target']!r} of {data.path!r} must hold finite numbers")
        y = y.reshape(y.shape[0], -1).T
        if y.shape[0] != len(meta["outputs"]):
            raise CLIError(f"target {meta['target']!r} of {data.path!r} has {y.shape[0]} columns; the model predicts "
                           f"{len(meta['outputs'])}")
        Ys = y
        if "y_mean" in meta:
            Ys = (y - np.array(meta["y_mean"])[:, None]) / np.array(meta["y_std"])[:, None]
        scores = net.evaluate(X, Ys, loss)
        err = _outputs_to_values(meta, net.predict(X)) - y
        scaled = ", on standardised targets" if "y_mean" in meta else ""
        print(f"loss      {scores['loss']:.6g}  ({loss}{scaled})")
        print(f"rmse      {float(np.sqrt(np.mean(err ** 2))):.6g}")
        print(f"mae       {float(np.mean(np.abs(err))):.6g}")
    return 0


# ---------------------------------------------------------------- explain
def _explain(args: argparse.Namespace) -> int:
    from ._explain import explain

    explain(args.backend, args.dtype, args.lr)
    return 0


# ---------------------------------------------------------------- the parser
def _parser() -> argparse.ArgumentParser:
    from .backends import BACKENDS

    backends = [*BACKENDS, "auto"]
    parser = argparse.ArgumentParser(prog="pynn", description="Fast multilayer perceptrons.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train on a built-in data set with every backend; print accuracy and speed",
                       description="Train a 2-64-64-3 network on three interleaved spirals (generated, no download) "
                                   "with every backend; show per-epoch progress, then test accuracy and speed.")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--n", type=_positive_int, default=3000, help="training points (default 3000)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0: the table only; 1: per-epoch progress of the first backend (default); 2: of every one")
    p.set_defaults(func=_demo)

    p = sub.add_parser("train", help="train a network on a CSV or NPZ file and save it",
                       description="Train on DATA (a CSV file with a header row, or an NPZ file with arrays X "
                                   "(n_examples, n_features) and y) and save the model with what predict and "
                                   "evaluate need (feature names, target, class labels, scaling). The target is "
                                   "a classification when it holds text, booleans or whole numbers with at most 20 "
                                   "distinct values, a regression otherwise (override with --task).")
    p.add_argument("data", metavar="DATA", help="a .csv (header row) or .npz file")
    p.add_argument("--target", help="the CSV column to predict (NPZ: see --y-key)")
    p.add_argument("--task", choices=TASKS, default="auto", help="default: inferred from the target")
    p.add_argument("--hidden", type=_widths, default=[64], metavar="W1,W2,...",
                   help="hidden layer widths (default 64; 'none' for no hidden layer)")
    p.add_argument("--activation", default="relu", choices=("relu", "tanh", "sigmoid", "leaky_relu", "linear"),
                   help="of the hidden layers (default relu)")
    p.add_argument("--epochs", type=_positive_int, default=20)
    p.add_argument("--batch-size", type=_positive_int, default=32,
                   help="examples per step (default 32); with --distributed, over all ranks")
    p.add_argument("--no-shuffle", action="store_true", help="visit the training examples in file order each epoch")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the MPI ranks of mpiexec -n N (needs pynn[mpi]); only rank 0 prints "
                        "and saves")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default 1e-3 adam, 0.01 sgd)")
    p.add_argument("--momentum", type=_fraction, default=0.0, help="SGD momentum (default 0)")
    p.add_argument("--backend", choices=backends, default="auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0, help="for the weights, the shuffling and the split (default 0)")
    p.add_argument("--validation-split", type=_fraction, default=0.0, metavar="FRACTION",
                   help="hold out this fraction of the examples to report val_loss (default 0)")
    p.add_argument("--standardize", action="store_true",
                   help="scale features (the model's scaler) and regression targets to mean 0, std 1; "
                   "saved with the model")
    p.add_argument("--out", default="model.npz", metavar="MODEL", help="where to save the model (default model.npz)")
    p.add_argument("--plot", metavar="PNG", help="save the loss curves to this image (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--x-key", default="X", help="NPZ: the features array (default X)")
    p.add_argument("--y-key", default="y", help="NPZ: the target array (default y)")
    p.set_defaults(func=_train)

    for name, func, text in (("predict", _predict, "write the predictions of a model for DATA as CSV"),
                             ("evaluate", _evaluate, "print the loss and accuracy of a model on DATA")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ". MODEL is a file written "
                           "by 'pynn train'; DATA has the columns (or NPZ array) the model was trained on"
                           + (" and its target." if name == "evaluate" else "."))
        p.add_argument("model", metavar="MODEL")
        p.add_argument("data", metavar="DATA")
        p.add_argument("--backend", choices=backends, default=None, help="default: the one the model was saved with")
        p.add_argument("--x-key", default="X", help="NPZ: the features array (default X)")
        p.add_argument("--y-key", default=None, help="NPZ: the target array (default: the one trained on)")
        if name == "predict":
            p.add_argument("--out", metavar="CSV", help="write here instead of to standard output")
            p.add_argument("--proba", action="store_true", help="add a probability column per class")
        p.set_defaults(func=func)

    p = sub.add_parser("explain", help="the seed's 2-2-1 example step by step, computed by a backend's kernels",
                       description="Print the seed's worked example (Z1, A1, Z2, Yhat, J, every gradient and the "
                                   "updated weights), each quantity computed by the chosen backend's kernels.")
    p.add_argument("--backend", choices=backends, default="auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--lr", type=_positive_float, default=0.5, help="learning rate of the update (default 0.5)")
    p.set_defaults(func=_explain)

    p = sub.add_parser("info", help="version, backends, threads and BLAS")
    p.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pynn`` command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Examples
    --------
    >>> from pynn.cli import main
    >>> main(["explain", "--backend", "numpy"])  # doctest: +ELLIPSIS
    pynn explain: the seed's worked example, computed by the 'numpy' backend's kernels in float64
    ...
      Z1 = [0.43; 1.42]                                          seed: 0.43; 1.42
    ...
    0
    """
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `pynn predict ... | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 0
    except (CLIError, DataError, ValueError, TypeError, OSError, FloatingPointError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"pynn: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pynn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
