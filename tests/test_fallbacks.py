"""Backends degrade visibly: hiding Numba, then the compiled core, shrinks the backend list and
"auto" falls back, with the same results. Each case runs in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))  # not the repository root: import the installed pynn
SCRIPT = r"""
import json, sys
for name in {hide!r}:
    sys.modules[name] = None          # makes `import name` raise ImportError
import numpy as np
import pynn
report = {{"imported_numba_early": "numba" in sys.modules}}
net = pynn.Network.from_sizes([3, 4, 2], seed=0, dtype="float64")
X = np.linspace(-1, 1, 12).reshape(3, 4)
report["auto"] = net.backend
report["after_auto_predict_numba_loaded"] = "numba" in sys.modules
ref = pynn.Network.from_sizes([3, 4, 2], seed=0, dtype="float64", backend="numpy")
report["max_diff"] = float(abs(net.predict(X) - ref.predict(X)).max())
report["available"] = pynn.available_backends()
print(json.dumps(report))
"""


def run(hide):
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(hide=hide)], capture_output=True, text=True,
                         timeout=300, cwd=HERE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_does_not_load_numba():
    r = run([])
    assert not r["imported_numba_early"]
    assert r["auto"] == r["available"][0]
    if r["auto"] == "cpp":
        assert not r["after_auto_predict_numba_loaded"]  # using cpp never pays for importing numba


def test_without_numba():
    r = run(["numba"])
    assert "numba" not in r["available"] and r["available"][-1] == "numpy"
    assert r["max_diff"] < 1e-12


def test_without_compiled_core():
    r = run(["pynn._core"])
    assert "cpp" not in r["available"] and r["auto"] in ("numba", "numpy")
    assert r["max_diff"] < 1e-12


def test_without_either():
    r = run(["pynn._core", "numba"])
    assert r["available"] == ["numpy"] and r["auto"] == "numpy" and r["max_diff"] == 0.0


def test_unavailable_backend_is_a_clear_error():
    out = subprocess.run([sys.executable, "-c", "import sys; sys.modules['numba'] = None\nimport pynn\n"
                          "pynn.Network.from_sizes([2, 2], backend='numba')"], capture_output=True, text=True, cwd=HERE)
    assert out.returncode != 0 and "ValueError" in out.stderr and "'numba' is not available" in out.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="RUNPATH is an ELF feature")
def test_extension_finds_blas_by_itself():
    # dlopen the extension without importing scipy_openblas32 first: its RUNPATH must find BLAS.
    code = ("import ctypes, importlib.util; ctypes.CDLL(importlib.util.find_spec('pynn._core').origin); "
            "import sys; print('scipy_openblas32' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
