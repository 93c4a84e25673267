"""pynn as a good citizen of the process that imports it.

* Importing pynn, and using each backend, has no global side effects: environment variables,
  NumPy's error state, print options and global RNG, warning filters, logging handlers and the
  BLAS thread pools that were already loaded are as they were, and nothing is printed.
* Diagnostics go through ``logging.getLogger("pynn")``, which has a NullHandler.
* threadpoolctl sees the OpenBLAS that pynn's compiled core uses and can limit it.
* The package ships its typing marker and the compiled core's stub.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

import pynn
from conftest import IN_CI, backend_module, require

STATE = r"""
def state():
    import logging, os, sys, warnings
    import numpy as np
    import threadpoolctl
    return {
        "env": dict(os.environ),
        "geterr": np.geterr(),
        "printoptions": {k: repr(v) for k, v in np.get_printoptions().items()},
        "rng": repr(np.random.get_state()[1][:8].tolist()),
        "warnings": [repr(f) for f in warnings.filters],
        "root_handlers": [repr(h) for h in logging.getLogger().handlers],
        "root_level": logging.getLogger().level,
        "pools": {p["filepath"]: p["num_threads"] for p in threadpoolctl.threadpool_info()},
        "recursionlimit": sys.getrecursionlimit(),
    }
"""

SCRIPT = STATE + r"""
import json, sys
import numpy as np
before = state()
import pynn
if sys.argv[1] != "import":
    net = pynn.Network.from_sizes([3, 4, 2], backend=sys.argv[1], seed=0)
    X = np.ones((3, 5))
    net.fit(X, np.array([0, 1, 0, 1, 1]), loss="cross_entropy", optimizer=pynn.Adam(), epochs=2, batch_size=2)
    net.predict(X)
after = state()
pools_before = before.pop("pools")
pools_after = after.pop("pools")
print(json.dumps({"before": before, "after": after, "pools_before": pools_before, "pools_after": pools_after,
                  "logger": [type(h).__name__ for h in logging.getLogger("pynn").handlers]}))
"""


def run_python(code, *args):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("stage", ["import", "cpp", "numba", "numpy"])
def test_no_global_side_effects(stage):
    require("threadpoolctl")
    if stage != "import":
        backend_module(stage)
    r = run_python("import logging\n" + SCRIPT, stage)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # nothing printed, no warning
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"pynn printed something: {lines[:-1]}"
    got = json.loads(lines[0])
    for key, value in got["before"].items():
        assert got["after"][key] == value, f"{key} changed"
    for path, threads in got["pools_before"].items():  # libraries loaded before pynn keep their threads
        assert got["pools_after"][path] == threads, path
    assert got["logger"] == ["NullHandler"]


def test_diagnostics_go_to_the_pynn_logger(tmp_path, caplog):
    import pynn.io as pio

    path = tmp_path / "m.npz"
    pynn.Network.from_sizes([2, 2], seed=0).save(path)
    with np.load(path) as z:
        header, arrays = json.loads(bytes(z["header"])), {k: z[k] for k in z.files if k != "header"}
    header["backend"] = "tpu"
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with caplog.at_level(logging.INFO, logger="pynn"):
        pio.load(path)
    assert [(r.name, r.levelno) for r in caplog.records] == [("pynn.io", logging.INFO)]
    assert "saved with backend 'tpu', which is not available here" in caplog.records[0].getMessage()


def test_the_package_prints_only_in_the_cli():
    """print() and writes to os.environ appear nowhere in the package but the command line."""
    offenders = []
    root = os.path.dirname(pynn.__file__)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py") or f in ("cli.py", "__main__.py"):
                continue
            with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                    offenders.append(f"{f}:{node.lineno} print()")
                if isinstance(node, (ast.Assign, ast.AugAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Subscript) and "environ" in ast.unparse(t.value):
                            offenders.append(f"{f}:{node.lineno} os.environ[...] =")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr in ("setdefault", "update", "putenv") and "environ" in ast.unparse(node.func):
                    offenders.append(f"{f}:{node.lineno} {ast.unparse(node.func)}")
    assert offenders == []


# ---------------------------------------------------------------- threadpoolctl
def test_threadpoolctl_reports_and_limits_pynns_blas():
    threadpoolctl = require("threadpoolctl")
    backend_module("cpp")
    import scipy_openblas32

    from pynn import _core

    lib_dir = os.path.realpath(scipy_openblas32.get_lib_dir())

    def ours():
        pools = [p for p in threadpoolctl.threadpool_info()
                 if os.path.dirname(os.path.realpath(p["filepath"])) == lib_dir]
        assert len(pools) == 1, threadpoolctl.threadpool_info()
        return pools[0]

    pool = ours()
    assert pool["user_api"] == "blas" and pool["internal_api"] == "openblas"
    assert pool["version"].startswith(".".join(scipy_openblas32.__version__.split(".")[:3]))
    assert pool["num_threads"] == _core.get_num_threads()
    n = pynn.get_num_threads()
    try:
        pynn.set_num_threads(1)
        assert ours()["num_threads"] == 1  # pynn's setting is what threadpoolctl reports
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            assert _core.get_num_threads() == 2  # and threadpoolctl's limit is what the core uses
        assert _core.get_num_threads() == 1
    finally:
        pynn.set_num_threads(n)


# ---------------------------------------------------------------- typing
def test_py_typed_and_core_stub_ship_with_the_package():
    files = resources.files("pynn")
    assert files.joinpath("py.typed").is_file()
    stub = files.joinpath("_core.pyi")
    assert stub.is_file()
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    declared = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    try:
        from pynn import _core
    except ImportError as e:
        if IN_CI:
            pytest.fail(f"the compiled core is missing in CI: {e}")
        pytest.skip(f"no compiled core: {e}")
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public - declared == set(), "names of pynn._core missing from _core.pyi"
    assert {n for n in declared if not n.startswith("_")} - public == set(), "_core.pyi declares names _core lacks"
