"""Documentation that can fail: every docstring example in the installed package runs (one test
per docstring, with doctest), and every public name has a docstring with an example and type
hints on every parameter and its return value.

The modules are found from the imported ``pynn`` package, so this runs the same on a source
tree and on an installed wheel.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import pynn
import pynn.cli
import pynn.datasets
from conftest import IN_CI, require

# Docstrings whose examples need an optional extra (installed by the test extra).
NEEDS = {
    "pynn.network.Network.to_onnx": ("onnx", "onnxruntime"),
    "pynn.training.History.plot": ("matplotlib",),
}


def modules():
    names = ["pynn"] + [m.name for m in pkgutil.walk_packages(pynn.__path__, "pynn.")
                        if not m.name.endswith("__main__")]
    return sorted(set(names))


def doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found, broken = {}, {}
    for name in modules():
        try:
            module = importlib.import_module(name)
        except ImportError as e:  # e.g. the numba backend without numba
            broken[name] = str(e)
            continue
        for test in finder.find(module, name):
            if test.examples and test.name.startswith(name):  # not re-exports found through imports
                found[test.name] = test
    return found, broken


DOCTESTS, UNIMPORTABLE = doctests()


def test_every_module_imports():
    if UNIMPORTABLE and not IN_CI:
        pytest.skip(f"optional parts missing here: {UNIMPORTABLE}")
    assert UNIMPORTABLE == {}


def test_doctests_were_found():
    # the ones this file relies on, so an import or discovery failure cannot pass silently
    for name in ("pynn", "pynn.network.Network.fit", "pynn.io.load", "pynn.cli.main", "pynn.training.History.plot",
                 "pynn.network.Network.to_onnx"):
        assert name in DOCTESTS


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_docstring_examples_run(name):
    for module in NEEDS.get(name, ()):
        require(module)
    n = pynn.get_num_threads()
    test = DOCTESTS[name]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(test, out=report.append, clear_globs=True)
    assert runner.failures == 0, "".join(report)
    pynn.set_num_threads(n)


# ---------------------------------------------------------------- every public name
def public_names():
    """pynn.__all__ and the public attributes of its classes; the CLI entry point and data set."""
    out = {"pynn.cli.main": pynn.cli.main, "pynn.datasets.spirals": pynn.datasets.spirals}
    for name in pynn.__all__:
        if name == "__version__":
            continue
        obj = getattr(pynn, name)
        out[f"pynn.{name}"] = obj
        if inspect.isclass(obj):
            for cls in obj.__mro__:
                if not cls.__module__.startswith("pynn"):
                    continue
                for attr in vars(cls):
                    if not attr.startswith("_") and f"pynn.{name}.{attr}" not in out:
                        out[f"pynn.{name}.{attr}"] = getattr(obj, attr) if attr != "W" and attr != "b" \
                            else vars(cls)[attr]
    return out


PUBLIC = public_names()
# The hooks of Callback (and of the callbacks pynn ships) are shown by the class's example.
HOOK_NAMES = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")
HOOKS = {n for n in PUBLIC if n.rsplit(".", 1)[-1] in HOOK_NAMES
         and inspect.isclass(getattr(pynn, n.split(".")[1], None))
         and issubclass(getattr(pynn, n.split(".")[1]), pynn.Callback)}


def target(obj):
    return obj.fget if isinstance(obj, property) else obj


def test_public_names_are_found():
    assert {"pynn.Network.fit", "pynn.Network.to_onnx", "pynn.History.plot", "pynn.SGD.step", "pynn.Dense.W",
            "pynn.load", "pynn.Callback.on_epoch_end"} <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_docstring_with_example(name):
    doc = inspect.getdoc(target(PUBLIC[name]))
    assert doc, f"{name} has no docstring"
    if name in HOOKS:
        return
    assert "Examples\n--------" in doc and ">>>" in doc, f"{name}'s docstring has no Examples section"


@pytest.mark.parametrize("name", sorted(n for n, o in PUBLIC.items() if callable(target(o))))
def test_public_callables_are_typed(name):
    f = target(PUBLIC[name])
    if inspect.isclass(f):
        if f.__init__ is object.__init__:
            return  # nothing to type
        f = f.__init__
    sig = inspect.signature(f)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type hint: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return type hint"
