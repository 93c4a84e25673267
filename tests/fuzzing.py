"""Shared machinery of the property-based tests (test_fuzz.py, test_fuzz_more.py, test_fuzz_core.py).

* ``fuzz(entry, share)`` turns a test into a Hypothesis test drawing from ``data`` and counts
  every case it runs under ``entry`` (a public entry point such as ``"train_step"``).
  ``share`` is how many tests (e.g. one per backend) split that entry point's cases.
* In the normal suite each test runs ``NORMAL_EXAMPLES`` cases. With ``PYNN_FUZZ_EXAMPLES=N``
  (the dedicated CI step, ``.ci/fuzz.sh``) each entry point runs at least ``N`` cases in all,
  the terminal summary lists the count per entry point, and the session fails if any entry
  point fell short. Cases are derandomized (the same on every run), no example database
  is written, and Hypothesis's caches go to the temporary directory, not the repository.
* ``user_array`` draws what a user might pass: every dtype (bool, ints, float16/32/64,
  complex, object, str), C/F order, transposes, slices with steps, negative steps, read-only,
  misaligned and byte-swapped arrays, broadcast views, Python lists; values with NaN, ±inf,
  huge and subnormal numbers.
* ``expect_batch`` / ``expect_targets`` state API.md's rules for ``X`` and ``Y`` independently
  of pynn/_validate.py: the clean array a call must compute with, or the problems (exception
  type and the words its message must contain) that it may raise for.
* ``outcome`` runs a call and checks it against those expectations.
"""

from __future__ import annotations

import collections
import inspect
import math
import numbers
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps caches (constants from the source, unicode tables) in ./.hypothesis even
# without an example database: keep them out of the repository.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), f"pynn-hypothesis-{os.getuid()}"))

TARGET = int(os.environ.get("PYNN_FUZZ_EXAMPLES", "0") or 0)
NORMAL_EXAMPLES = int(os.environ.get("PYNN_FUZZ_NORMAL", "12"))

COUNTS: collections.Counter = collections.Counter()  # cases run, per entry point
OUTCOMES: collections.Counter = collections.Counter()  # (entry point, "ok" / "rejected" / "raised")
REGISTERED: set[str] = set()
_current = [""]  # the entry point whose case is running

_SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=False,
                 suppress_health_check=list(HealthCheck))


def fuzz(entry: str, share: int = 1) -> Callable:
    """Decorator: a Hypothesis test of ``entry`` (its test function takes ``data``)."""
    n = max(NORMAL_EXAMPLES, math.ceil(TARGET / share)) if TARGET else NORMAL_EXAMPLES
    REGISTERED.add(entry)

    def deco(fn):
        sig = inspect.signature(fn)

        def counted(*args, **kw):
            COUNTS[entry] += 1
            _current[0] = entry
            bound = sig.bind(*args, **kw)
            bound.arguments["data"] = Choices(bound.arguments["data"])
            return fn(*bound.args, **bound.kwargs)

        counted.__name__, counted.__qualname__, counted.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        counted.__module__ = fn.__module__
        counted.__signature__ = sig
        return settings(max_examples=n, **_SETTINGS)(given(data=st.data())(counted))

    return deco


def shortfalls() -> dict[str, int]:
    """Entry points that ran fewer than TARGET cases in the dedicated fuzz step."""
    if not TARGET:
        return {}
    return {e: COUNTS[e] for e in sorted(REGISTERED) if COUNTS[e] < TARGET}


def pytest_sessionfinish(session, exitstatus):
    if shortfalls():
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not COUNTS and not shortfalls():
        return
    tr = terminalreporter
    tr.section("pynn fuzz: cases run per entry point")
    width = max(map(len, REGISTERED | set(COUNTS)))
    tr.write_line(f"{'entry point':<{width}}  {'cases':>8}  {'returned':>8}  {'rejected':>8}  {'raised':>6}")
    for entry in sorted(REGISTERED | set(COUNTS)):
        o = [OUTCOMES[entry, k] for k in ("ok", "rejected", "raised")]
        tr.write_line(f"{entry:<{width}}  {COUNTS[entry]:>8}  {o[0]:>8}  {o[1]:>8}  {o[2]:>6}")
    tr.write_line(f"{'total':<{width}}  {sum(COUNTS.values()):>8}")
    tr.write_line("(returned: the call returned and was checked against the reference; rejected: it raised "
                  "ValueError/TypeError for a problem the rules predict; raised: FloatingPointError or OSError "
                  "where allowed)")
    short = shortfalls()
    if short:
        tr.write_line(f"FAILED: entry points below PYNN_FUZZ_EXAMPLES={TARGET}: {short}", red=True)


# ---------------------------------------------------------------- values and arrays users pass
# Specials for float values. "Huge" values stay where products and squares of a small network
# do not overflow the dtype, so the backends' results can still be compared; values beyond
# float32's range must be refused by a float32 network (and pass through a float64 one).
HUGE = {np.dtype(np.float32): 1e8, np.dtype(np.float64): 1e50}
SPECIALS = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-40, 5e-324, "huge", "-huge", 1e39, -1e300, np.nan, np.inf, -np.inf)

INT_DTYPES = ("bool", "int8", "uint8", "int32", "int64", "uint64")
FLOAT_DTYPES = ("float16", "float32", "float64", ">f4", ">f8")
OTHER_DTYPES = ("complex128", "object", "<U4")
LAYOUTS = ("C", "F", "T", "step", "neg", "readonly", "misaligned", "broadcast", "list")


# Draw helpers. Each interactive ``data.draw`` costs Hypothesis ~0.2 ms of bookkeeping, and a
# case makes dozens of choices; so the choices come from drawn byte strings, 64 bytes at a
# time (Hypothesis makes bytes one by one, ~4 us each), as few bytes per choice as its range
# needs. Hypothesis still generates (derandomized) and shrinks those bytes, and smaller bytes
# mean earlier options: put the typical option first. The bulk of each array is derived from
# a drawn seed with NumPy.
_BYTES = st.binary(min_size=64, max_size=64)


class Choices:
    """What the tests draw from: cheap choices, plus ``draw`` for a Hypothesis strategy."""

    def __init__(self, data) -> None:
        self._data, self._buf, self._pos = data, b"", 0

    def draw(self, strategy, label=None):
        return self._data.draw(strategy, label)

    def _take(self, k: int) -> int:
        if self._pos + k > len(self._buf):
            self._buf, self._pos = self._data.draw(_BYTES), 0
        self._pos += k
        return int.from_bytes(self._buf[self._pos - k:self._pos], "little")

    def integer(self, lo: int, hi: int) -> int:
        n = hi - lo + 1
        if n <= 1:
            return lo
        k = 1 if n <= 256 else 2 if n <= 1 << 16 else 4 if n <= 1 << 32 else 8
        return lo + self._take(k) % n


def integer(data, lo: int, hi: int) -> int:
    """An int in [lo, hi] (shrinking towards lo)."""
    return data.integer(lo, hi)


def pick(data, options):
    """One of ``options`` (shrinking towards the first: put the typical choice there)."""
    return options[data.integer(0, len(options) - 1)]


def flag(data) -> bool:
    return data.integer(0, 1) == 1


def one_in(data, n: int) -> bool:
    """True about once in n draws."""
    return data.integer(0, n - 1) == n - 1


def usually(data, typical, unusual, odds: int = 8):
    """One of ``typical``, or about once in ``odds`` draws one of ``unusual``."""
    return pick(data, unusual) if one_in(data, odds) else pick(data, typical)


def seed(data) -> int:
    return data.integer(0, 2**32 - 1)


_DTYPE_CHOICES: dict[str, list[np.dtype]] = {}


def user_array(data, shape, *, net_dtype=np.float64, kinds="fi", specials: bool = True, values=None,
               exotic: bool = True):
    """An array-like of ``shape`` as a user might pass it. ``values`` (an array of that shape)
    fixes the logical content; otherwise it is drawn. ``kinds``: "f" float, "i" int/bool."""
    rng = np.random.default_rng(seed(data))
    if values is None:
        values = rng.normal(0, pick(data, (1.0, 3.0, 1e-3)), size=shape)
        if specials and values.size and one_in(data, 5):
            for _ in range(integer(data, 1, 3)):
                s = pick(data, SPECIALS)
                if isinstance(s, str):
                    s = (-1 if s[0] == "-" else 1) * HUGE[np.dtype(net_dtype)]
                values.flat[rng.integers(values.size)] = s
    choices = _DTYPE_CHOICES.get(kinds)
    if choices is None:  # float64 and float32 most often, then every other numeric dtype
        names = ["float64", "float32"] * 3 + list(FLOAT_DTYPES) * 2 * ("f" in kinds) + list(INT_DTYPES) * ("i" in kinds)
        choices = _DTYPE_CHOICES[kinds] = [np.dtype(c) for c in names]
    dtype = pick(data, OTHER_DTYPES) if exotic and one_in(data, 16) else pick(data, choices)
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype.kind == "b":
            a = values > 0
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            a = np.clip(np.nan_to_num(np.round(values), posinf=info.max, neginf=info.min), info.min, info.max)
            a = a.astype(dtype)
        elif dtype.kind == "O":
            a = np.empty(shape, dtype=object)
            a[...] = values  # Python floats in an object array
        else:
            a = values.astype(dtype)
    return make_layout(a, pick(data, LAYOUTS if exotic else LAYOUTS[:5]))


def make_layout(a: np.ndarray, layout: str) -> Any:
    """``a``'s values in the given memory layout (an equal array, or a nested list)."""
    if a.ndim == 0:
        return a.item() if layout == "list" and a.dtype.kind in "biuf" else a
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "T":  # the transpose of a C-ordered array, as X.T of row-major data
        return np.ascontiguousarray(a.T).T
    if layout == "step":  # every other element along each axis of a larger array
        big = np.empty(tuple(2 * s + 1 for s in a.shape), a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "neg":  # negative strides
        rev = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
        return rev[tuple(slice(None, None, -1) for _ in a.shape)]
    if layout == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    if layout == "misaligned" and a.dtype.kind in "fiuc" and a.itemsize > 1:
        buf = np.empty(a.size * a.itemsize + 1, np.uint8)
        m = buf[1:].view(a.dtype).reshape(a.shape)
        m[...] = a
        return m
    if layout == "broadcast" and a.ndim == 2 and a.shape[1] > 0:  # columns all equal, stride 0
        return np.broadcast_to(a[:, :1], a.shape)
    if layout == "list" and a.dtype.kind in "biuf" and a.dtype.isnative:
        return a.tolist()
    return a


# ---------------------------------------------------------------- what a call must do
class Problem:
    """One thing wrong with an argument: the exception a call may raise for it, and a regex
    its message must match (naming the argument and what is wrong)."""

    def __init__(self, exc: type | tuple, pattern: str) -> None:
        self.exc, self.pattern = exc, pattern

    def matches(self, e: BaseException) -> bool:
        return isinstance(e, self.exc) and re.search(self.pattern, str(e), re.S) is not None

    def __repr__(self) -> str:
        return f"Problem({getattr(self.exc, '__name__', self.exc)}, {self.pattern!r})"


def as_numeric(obj: Any, name: str) -> tuple[np.ndarray | None, list[Problem]]:
    try:
        arr = obj if isinstance(obj, np.ndarray) else np.asarray(obj)
    except (ValueError, TypeError):
        return None, [Problem(TypeError, rf"\b{re.escape(name)} must be an array of numbers")]
    if arr.dtype.kind not in "biuf":
        return None, [Problem(TypeError, rf"\b{re.escape(name)} must hold real numbers .*got dtype")]
    return arr, []


def finite_cast(arr: np.ndarray, dtype: np.dtype, name: str) -> tuple[np.ndarray | None, list[Problem]]:
    """``arr`` as ``dtype``, or the problems: NaN/inf in it, or finite values the cast overflows."""
    n = re.escape(name)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return None, [Problem(ValueError, rf"\b{n} contains NaN or infinity")]
    with np.errstate(all="ignore"):
        clean = np.array(arr, dtype=dtype, order="C")
    if not np.isfinite(clean).all():
        return None, [Problem(ValueError, rf"\b{n} has values beyond the range of {dtype.name}")]
    return clean, []


def expect_batch(obj: Any, n_features: int, dtype: np.dtype, name: str = "X", *, nonempty: bool = True
                 ) -> tuple[np.ndarray | None, list[Problem]]:
    """API.md's rules for a batch: a 2-D array of real numbers, (n_features, n_examples), finite,
    representable in the network's dtype; training needs at least one example."""
    arr, problems = as_numeric(obj, name)
    if problems:
        return None, problems
    n = re.escape(name)
    if arr.ndim != 2:
        return None, [Problem(ValueError, rf"\b{n} must be a 2-D array of shape \({n_features}, n_examples\)")]
    if arr.shape[0] != n_features:
        return None, [Problem(ValueError, rf"\b{n} must have {n_features} rows")]
    if nonempty and arr.shape[1] == 0:
        return None, [Problem(ValueError, rf"\b{n} must hold at least one example")]
    return finite_cast(arr, dtype, name)


# Losses that read the outputs as probabilities, and the output activations that give them.
PROBABILITY_OUTPUTS = {"bce": ("sigmoid", "softmax"), "cross_entropy": ("softmax", "sigmoid")}
LOSSES = ("mse", "bce", "cross_entropy")


def expect_loss(loss: Any, output_activation: str) -> list[Problem]:
    if not isinstance(loss, str) or loss not in LOSSES:
        return [Problem(ValueError, r"\bloss must be one of \['mse', 'bce', 'cross_entropy', 'mae', 'huber', 'poisson'\]")]
    stem = "linear" if output_activation == "identity" else output_activation
    if loss in PROBABILITY_OUTPUTS and stem not in PROBABILITY_OUTPUTS[loss]:
        return [Problem(ValueError, rf"\bloss '{loss}' reads the outputs as probabilities")]
    return []


def expect_targets(obj: Any, loss: str, m: int, d: int, dtype: np.dtype, name: str = "Y", *,
                   softmax: bool = False) -> tuple[np.ndarray | None, list[Problem]]:
    """API.md's rules for targets: (m, d) values of the dtype — in [0, 1] for bce and
    cross_entropy — or, for cross_entropy with several outputs, class indices (d,) in [0, m).
    Cross-entropy targets of a softmax output are distributions: columns sum to 1 (within
    64 m ulps), or the fused gradient (Yhat - Y) / d would not be the loss's gradient."""
    arr, problems = as_numeric(obj, name)
    if problems:
        return None, problems
    n = re.escape(name)
    if loss == "cross_entropy" and arr.ndim == 1 and m > 1:
        if arr.shape[0] != d:
            return None, [Problem(ValueError, rf"\b{n} as class indices must have shape \({d},\)")]
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                return None, [Problem(ValueError, rf"\b{n} contains NaN or infinity")]
            if (arr != np.round(arr)).any():
                return None, [Problem(ValueError, rf"\b{n} as class indices must hold whole numbers")]
        if d and (arr.min() < 0 or arr.max() >= m):
            return None, [Problem(ValueError, rf"\b{n} holds class indices, which must lie in \[0, {m - 1}\]")]
        return np.array(arr, dtype=np.int64), []
    if arr.ndim == 1 and m == 1:
        arr = arr.reshape(1, -1)
    if arr.shape != (m, d):
        return None, [Problem(ValueError, rf"\b{n} must have shape \({m}, {d}\)")]
    clean, problems = finite_cast(arr, dtype, name)
    if problems:
        return None, problems
    if loss in PROBABILITY_OUTPUTS and clean.size and (clean.min() < 0 or clean.max() > 1):
        return None, [Problem(ValueError, rf"\b{n} for loss '{loss}' must hold values in \[0, 1\]")]
    if softmax and loss == "cross_entropy" and clean.size and \
            np.abs(clean.sum(axis=0, dtype=np.float64) - 1).max() > 64 * m * np.finfo(dtype).eps:
        return None, [Problem(ValueError, rf"\b{n} for loss 'cross_entropy' with a softmax output must have "
                                          r"columns that sum to 1")]
    return clean, []


def outcome(call: Callable[[], Any], problems: list[Problem], *, allow: tuple = ()) -> tuple[str, Any]:
    """Run ``call``. With problems it must raise one of them (type and message); without, it
    must return. Returns ("ok", result), ("rejected", exc) or, for exception types in
    ``allow`` (e.g. FloatingPointError), ("raised", exc). Anything else fails the test."""
    with warnings.catch_warnings():
        # the numpy/numba kernels may warn about overflow in huge inputs; the results are judged
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = call()
        except (ValueError, TypeError) as e:
            if allow and isinstance(e, allow):
                return _tally("raised"), e
            assert problems, f"a valid call raised {type(e).__name__}: {e}"
            assert any(p.matches(e) for p in problems), \
                f"raised {type(e).__name__}: {e!s}\nexpected one of {problems}"
            return _tally("rejected"), e
        except allow as e:
            return _tally("raised"), e
    assert not problems, f"accepted an invalid call; expected one of {problems}"
    return _tally("ok"), result


def _tally(status: str) -> str:
    OUTCOMES[_current[0], status] += 1
    return status


def snapshot(obj: Any) -> Any:
    """A fingerprint of a user argument, to check afterwards that a call did not modify it:
    dtype, shape and bytes of an array (so NaN compares equal to itself), repr of the rest."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "O":
            return ("O", obj.shape, repr(obj.tolist()))
        return (obj.dtype.str, obj.shape, np.ascontiguousarray(obj).tobytes())
    return repr(obj)


def unchanged(obj: Any, snap: Any) -> bool:
    return snapshot(obj) == snap


# ---------------------------------------------------------------- numbers users pass
# junk: NaN/inf, bools, strings, None, ints beyond float's range and other number types
JUNK_NUMBERS = [0.0, -0.0, -0.1, 1.0, 2.0, 1e300, float("nan"), float("inf"), -float("inf"), True, "0.1", None,
                __import__("decimal").Decimal("0.1"), 10**400, -10**400, np.float32(np.nan), np.int64(-3),
                __import__("fractions").Fraction(10**400, 3), [0.1], 1j]
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
RATES = [1e-3, 0.01, 0.1, 0.5, 1, np.float32(0.05), __import__("fractions").Fraction(1, 3), 5e-324]
FRACTIONS = [0.0, 0.5, 0.9, 0.99, 0.999, 1 - 1e-16, np.float64(0.3), 0]


def number_arg(data, typical):
    """A hyper-parameter as users pass it: mostly a typical value, sometimes anything."""
    if one_in(data, 6):
        return data.draw(ANY_FLOAT) if flag(data) else pick(data, JUNK_NUMBERS)
    return pick(data, typical)


def as_float(value) -> float:
    """A real number's value as a float; ints beyond float's range are ±inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def expect_number(value, name, low=None, high=None, low_open=False, high_open=False):
    """A real number (not a bool), finite, within the bounds: else a TypeError / ValueError naming ``name``."""
    if not is_real(value):
        return [Problem(TypeError, rf"\b{name} must be a number")]
    v = as_float(value)
    bad = not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low)) or \
        (high is not None and (v >= high if high_open else v > high))
    return [Problem(ValueError, rf"\b{name} must be a number")] if bad else []


def expect_rates(args: dict) -> list[Problem]:
    """An optimizer's numeric keywords: lr and eps > 0, weight_decay >= 0, the rest (betas, alpha,
    momentum) in [0, 1)."""
    problems = []
    for k, v in args.items():
        if k in ("lr", "eps"):
            problems += expect_number(v, k, low=0, low_open=True)
        elif k == "weight_decay":
            problems += expect_number(v, k, low=0)
        else:
            problems += expect_number(v, k, 0, 1, high_open=True)
    return problems


INTS = [1, 2, 3, 5, 10, np.int64(4), 2**70]
JUNK_INTS = [0, -1, 1.5, 2.0, "3", None, True, np.float64(2.0), -2**70, [3]]


def int_arg(data, typical=INTS):
    return usually(data, typical, JUNK_INTS, odds=6)


def expect_int(value, name, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        return [Problem(TypeError, rf"\b{name} must be an int >= {minimum}")]
    return [Problem(ValueError, rf"\b{name} must be an int >= {minimum}")] if value < minimum else []


def assert_within(got, want, atol, rtol, what):
    """|got - want| <= atol + rtol |want| elementwise; NaN matches NaN and inf the same inf."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != oracle {want.shape}"
    with np.errstate(all="ignore"):
        ok = np.abs(got - want) <= atol + rtol * np.abs(want)
        ok |= (got == want) | (np.isnan(got) & np.isnan(want))
    if not ok.all():
        i = tuple(np.argwhere(~ok)[0])
        raise AssertionError(f"{what} differs from the oracle at {i}: {got[i]!r} vs {want[i]!r} "
                             f"(allowed {np.broadcast_to(atol, got.shape)[i]!r})")


def weights(net):
    return [(l.W.copy(), l.b.copy()) for l in net.layers]


def same_weights(net, snap) -> bool:
    return all(np.array_equal(l.W, W) and np.array_equal(l.b, b) for l, (W, b) in zip(net.layers, snap))
