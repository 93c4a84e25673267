"""The ``pynn`` command line (also ``python -m pynn``)."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import pynn
    from pynn.datasets import spirals

    X, y = spirals(args.n + args.n // 3, seed=0)
    Xtr, ytr, Xte, yte = X[: args.n], y[: args.n], X[args.n:], y[args.n:]
    print(f"pynn {pynn.__version__} demo: 3 interleaved spirals, {len(ytr)} training and {len(yte)} test points")
    print(f"network 2-64-64-3 (relu, softmax), Adam(lr=0.01), {args.epochs} epochs of batch 32; backends: "
          f"{', '.join(pynn.available_backends())}\n")
    print(f"{'backend':<8} {'test accuracy':>13} {'train time':>11} {'samples/s':>11} {'first-call':>11}")
    for backend in pynn.available_backends():
        net = pynn.Network.from_sizes([2, 64, 64, 3], backend=backend, seed=0)
        t0 = time.perf_counter()  # first call: compiles the Numba kernels, warms BLAS
        net._clone().fit(Xtr.T[:, :64], ytr[:64], loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=1)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.fit(Xtr.T, ytr, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=args.epochs, batch_size=32,
                seed=0, verbose=args.verbose)
        secs = time.perf_counter() - t0
        acc = float(np.mean(net.predict_classes(Xte.T) == yte))
        print(f"{backend:<8} {acc:>13.3f} {secs:>10.2f}s {args.epochs * len(ytr) / secs:>11,.0f} {warm:>10.2f}s")
    return 0


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    import pynn

    print(f"pynn {pynn.__version__}")
    print(f"backends: {', '.join(pynn.available_backends())}")
    print(f"threads: {pynn.get_num_threads()}")
    try:
        from pynn import _core
        print(f"BLAS: {_core.blas_config()}")
    except ImportError as e:
        print(f"compiled core: not available ({e})")
    print(f"numpy {np.__version__}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pynn", description="Fast multilayer perceptrons.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on a built-in data set with every backend; print accuracy and speed")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--n", type=int, default=3000, help="training points")
    p.add_argument("--verbose", type=int, default=0)
    p.set_defaults(func=_demo)
    p = sub.add_parser("info", help="version, backends, threads and BLAS")
    p.set_defaults(func=_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
