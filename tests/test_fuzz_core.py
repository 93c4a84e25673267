"""Property-based tests of the private compiled module ``pynn._core`` (issue 6, item 1).

``pynn._core`` is importable, so every kernel and the fused ``Model`` must take any arguments
without crashing: wrong dtypes, shapes and ndim, Python lists, None, read-only outputs,
negative, zero and non-unit strides, misaligned data, outputs that alias or partly overlap
their inputs, class indices out of range, absurd sizes and batch ranges. Each case either

* raises ValueError or TypeError, having written nothing into any output and changed no
  input; or
* computes what the NumPy reference kernel computes on clean copies of the same arrays
  (kernel-level tolerance, scaled by the result's magnitude), leaving its inputs as they were.

The arguments are proper (the right dtype and shape, read in place: C- or F-ordered, or rows
or columns padded, as BLAS leading dimensions allow) most of the time, so most calls compute;
``expected`` says independently of bindings.cpp which mutations the core must refuse.
Run under AddressSanitizer and UBSan by .ci/sanitize.sh, where any out-of-bounds access fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOL, backend_module
from fuzzing import flag, fuzz, integer, one_in, pick, seed, snapshot, unchanged, usually
from pynn.backends import get_backend

ref = get_backend("numpy")
ACTS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "exp", "linear", "softmax")
LOSSES = ("mse", "bce", "cross_entropy")
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


@pytest.fixture(scope="module")
def core():
    backend_module("cpp")
    from pynn import _core

    return _core


# ---------------------------------------------------------------- arguments
# How an array argument is passed. "proper" layouts must be read in place; the others must be
# refused with ValueError (a layout BLAS can't take) or TypeError (dtype, type).
PROPER = ("C", "F", "T", "rowpad", "colpad")
IMPROPER = ("step", "neg", "misaligned", "broadcast", "dtype", "shape", "ndim", "list", "none", "readonly")


def layout_view(a: np.ndarray, how: str) -> np.ndarray:
    """``a``'s values (2-D or 1-D) passed in layout ``how``."""
    if a.ndim == 1:
        how = {"T": "C", "F": "C", "rowpad": "C", "colpad": "C"}.get(how, how)
    if how == "C":
        return np.ascontiguousarray(a)
    if how == "F":
        return np.asfortranarray(a)
    if how == "T":
        return np.ascontiguousarray(a.T).T
    if how == "rowpad":  # C-ordered rows with a leading dimension larger than the row
        big = np.zeros((a.shape[0], a.shape[1] + 3), a.dtype)
        big[:, 1:a.shape[1] + 1] = a
        return big[:, 1:a.shape[1] + 1]
    if how == "colpad":  # F-ordered columns, padded
        big = np.zeros((a.shape[0] + 2, a.shape[1]), a.dtype, order="F")
        big[1:a.shape[0] + 1] = a
        return big[1:a.shape[0] + 1]
    if how == "step":
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        v = big[tuple(slice(None, None, 2) for _ in a.shape)]
        v[...] = a
        return v
    if how == "neg":
        r = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
        return r[tuple(slice(None, None, -1) for _ in a.shape)]
    if how == "misaligned":
        buf = np.zeros(a.size * a.itemsize + 1, np.uint8)
        m = buf[1:].view(a.dtype).reshape(a.shape)
        m[...] = a
        return m
    if how == "broadcast":
        if a.ndim == 2 and a.shape[1] > 1:
            return np.broadcast_to(a[:, :1], a.shape)
        return np.broadcast_to(a.reshape(-1)[:1], a.shape) if a.size > 1 else np.ascontiguousarray(a)
    if how == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    raise AssertionError(how)


def layout_ok(v: np.ndarray) -> bool:
    """What the core reads in place (view.hpp): aligned (even when empty: the core checks that
    first), and when not empty positive strides with one unit stride. Axes of length <= 1
    don't care about their stride."""
    if v.__array_interface__["data"][0] % v.itemsize or any(s % v.itemsize for s in v.strides):
        return False
    if v.size == 0:
        return True
    if v.ndim == 1:
        return v.shape[0] <= 1 or v.strides[0] == v.itemsize
    (r, c), (s0, s1) = v.shape, (s // v.itemsize for s in v.strides)
    if (r > 1 and s0 <= 0) or (c > 1 and s1 <= 0):
        return False
    rows = (c <= 1 or s1 == 1) and (r <= 1 or s0 >= c)
    cols = (r <= 1 or s0 == 1) and (c <= 1 or s1 >= r)
    return rows or cols


class Arg:
    """One array argument: its name, the value passed, and whether it is an output."""

    def __init__(self, name, value, out=False):
        self.name, self.value, self.out = name, value, out


def array_arg(data, name, shape, dtype, rng, *, out=False, low=-2.0, high=2.0, improper=True):
    """An array of ``shape`` and ``dtype`` passed in a drawn layout; outputs start as NaN."""
    a = np.full(shape, np.nan, dtype) if out else rng.uniform(low, high, size=shape).astype(dtype)
    how = usually(data, PROPER, IMPROPER if improper else PROPER, odds=10)
    if how == "dtype":
        return Arg(name, a.astype(F64 if dtype == F32 else F32), out)
    if how == "shape":
        bad = (shape[0] + 1,) + tuple(shape[1:])
        return Arg(name, np.full(bad, np.nan, dtype) if out else rng.uniform(low, high, size=bad).astype(dtype), out)
    if how == "ndim":
        return Arg(name, a.reshape(a.shape + (1,)) if flag(data) else a.reshape(-1), out)
    if how == "list":
        return Arg(name, a.tolist(), out)
    if how == "none":
        return Arg(name, None, out)
    return Arg(name, layout_view(a, how), out)


def proper(arg: Arg, ndim, dtype) -> str | None:
    """Why the core must refuse this argument by itself (None: nothing); shapes relative to
    the other arguments are judged by unify()."""
    v = arg.value
    if not isinstance(v, np.ndarray):
        return "TypeError"
    if v.dtype != dtype:
        return "TypeError"
    if v.ndim != ndim:
        return "ValueError"
    if arg.out and not v.flags.writeable:
        return "ValueError"
    if not layout_ok(v):
        return "ValueError"
    return None


def overlap(a, b) -> bool:
    return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.size > 0 and b.size > 0 and \
        np.may_share_memory(a, b)


def same_view(a, b) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.shape == b.shape and \
        all(s1 == s2 or n <= 1 for s1, s2, n in zip(a.strides, b.strides, a.shape))


def alias(data, args: dict[str, Arg], out: str, inp: str, rng):
    """Make output ``out`` the very array ``inp`` (in place), or a view of the same memory
    shifted by one element (a partial overlap), when their shapes and dtypes allow."""
    o, i = args[out].value, args[inp].value
    if not (isinstance(o, np.ndarray) and isinstance(i, np.ndarray) and o.shape == i.shape and o.dtype == i.dtype
            and i.flags.writeable and layout_ok(i) and i.size):
        return
    if flag(data):
        args[out] = Arg(out, i, True)
    else:
        flat = np.zeros(i.size + 1, i.dtype)
        flat[:-1] = np.ravel(i)
        args[inp] = Arg(inp, flat[:-1].reshape(i.shape), False)
        args[out] = Arg(out, flat[1:].reshape(i.shape), True)


# ---------------------------------------------------------------- the kernels
def shapes(kernel):
    """Argument names, shapes (in the dimensions h, n, d, m) and whether each is an output,
    per the kernel table of pynn/backends/__init__.py."""
    H, N, D, M = "h", "n", "d", "m"
    if kernel == "layer_forward":
        return [("W", (H, N), 0), ("A_prev", (N, D), 0), ("b", (H, 1), 0), ("act", None, 0), ("Z", (H, D), 1),
                ("A", (H, D), 1)]
    if kernel == "layer_backward":
        return [("dA", (H, D), 0), ("A", (H, D), 0), ("act", None, 0), ("W", (H, N), 0), ("A_prev", (N, D), 0),
                ("dZ", (H, D), 1), ("dW", (H, N), 1), ("db", (H, 1), 1), ("dA_prev", (N, D), 1)]
    if kernel == "dense_forward":
        return [("W", (H, N), 0), ("A_prev", (N, D), 0), ("b", (H, 1), 0), ("Z", (H, D), 1)]
    if kernel == "dense_backward":
        return [("dZ", (H, D), 0), ("A_prev", (N, D), 0), ("W", (H, N), 0), ("dW", (H, N), 1), ("db", (H, 1), 1),
                ("dA_prev", (N, D), 1)]
    if kernel.endswith("_forward") and kernel[:-8] in ACTS:
        return [("Z", (H, D), 0), ("A", (H, D), 1)]
    if kernel.endswith("_backward") and kernel[:-9] in ACTS:
        return [("dA", (H, D), 0), ("A", (H, D), 0), ("dZ", (H, D), 1)]
    if kernel in ("bce_logits_forward", "cross_entropy_logits_forward"):
        return [("Z", (M, D), 0), ("Y", (M, D), 0)]
    if kernel.endswith("_forward"):  # losses
        return [("Yhat", (M, D), 0), ("Y", (M, D), 0)]
    if kernel.endswith("_backward"):
        return [("Yhat", (M, D), 0), ("Y", (M, D), 0), ("dYhat", (M, D), 1)]
    if kernel == "output_backward":
        return [("Yhat", (M, D), 0), ("Y", (M, D), 0), ("dZ", (M, D), 1)]
    raise AssertionError(kernel)


def unify(args, spec) -> dict | None:
    """The dimensions the arrays agree on, or None if their shapes contradict the spec (the
    core knows shapes only relative to each other: consistent wrong shapes are fine)."""
    dims: dict[str, int] = {}
    for name, pattern, _ in spec:
        v = args[name].value if name in args else None
        if pattern is None or not isinstance(v, np.ndarray) or v.ndim != len(pattern):
            continue  # judged by proper()
        for p, size in zip(pattern, v.shape):
            if (isinstance(p, int) and size != p) or (isinstance(p, str) and dims.setdefault(p, size) != size):
                return None
    return dims


# Outputs that may be the same array as an input (in place); every other overlap is refused.
IN_PLACE = {("A", "Z"), ("dZ", "dA")}
FAMILIES = {
    "dense_forward": ["dense_forward"],
    "dense_backward": ["dense_backward"],
    "<act>_forward": [f"{a}_forward" for a in ACTS],
    "<act>_backward": [f"{a}_backward" for a in ACTS],
    "<loss>_forward": [f"{l}_forward" for l in LOSSES] + ["bce_logits_forward", "cross_entropy_logits_forward"],
    "<loss>_backward": [f"{l}_backward" for l in LOSSES] + ["output_backward"],
    "layer_forward": ["layer_forward"],
    "layer_backward": ["layer_backward"],
}
DIMS = (1, 2, 3, 1, 5, 8, 17, 40, 0)


def run_kernel(core, data, family):
    kernel = pick(data, FAMILIES[family])
    dtype = pick(data, (F32, F64))
    rng = np.random.default_rng(seed(data))
    # layers have >= 1 unit (the reference's softmax can't take 0 rows); inputs and batches may be empty
    h, n, d, m = pick(data, DIMS[:-1]), pick(data, DIMS), pick(data, DIMS), pick(data, DIMS[:-1])
    if "forward" in kernel and kernel.split("_")[0] in LOSSES + ("bce", "cross") or kernel == "output_backward" \
            or kernel.endswith("_backward") and kernel[:-9] in LOSSES:
        d = max(d, 1) if not one_in(data, 10) else d  # losses need an example: d = 0 must be refused
    spec = shapes(kernel)
    size = {"h": h, "n": n, "d": d, "m": m}
    args: dict[str, Arg] = {}
    act = None
    for name, pattern, out in spec:
        if name == "act":
            act = usually(data, list(ACTS), ["Gelu", "", "Relu", "swish"], odds=12)
            continue
        shape = tuple(size.get(p, p) for p in pattern)
        low, high = (0.0, 1.0) if name == "Y" else (0.02, 0.98) if name == "Yhat" else (-2.0, 2.0)
        args[name] = array_arg(data, name, shape, dtype, rng, out=bool(out), low=low, high=high)
    if "dA_prev" in args and one_in(data, 3):
        args["dA_prev"] = Arg("dA_prev", None, True)  # the first layer: no input gradient
    outs = [a.name for a in args.values() if a.out]
    ins = [a.name for a in args.values() if not a.out]
    if one_in(data, 5) and outs and ins:  # aliasing: in place, or a partial overlap
        alias(data, args, pick(data, outs), pick(data, ins), rng)
    outs = [a for a in args.values() if a.out]
    # what must happen. The core knows dtypes, like shapes, only relative to each other: when
    # every array is of the other float dtype, that is a proper call of the other overload.
    kinds = {a.value.dtype for a in args.values() if isinstance(a.value, np.ndarray)}
    if len(kinds) == 1 and kinds <= {F32, F64}:
        dtype = kinds.pop()
    refuse: dict[str, str] = {}  # exception type -> why
    ndim_of = {name: len(pattern) for name, pattern, _ in spec if pattern}
    for a in args.values():
        if a.name == "dA_prev" and a.value is None:
            continue
        why = proper(a, ndim_of[a.name], dtype)
        if why:
            refuse[why] = f"{a.name}: {type(a.value).__name__} {getattr(a.value, 'shape', '')} " \
                          f"{getattr(a.value, 'dtype', '')} {getattr(a.value, 'strides', '')}"
    if act is not None and act not in ACTS:
        refuse["ValueError"] = f"act {act!r}"
    dims = unify(args, spec)
    if dims is None:
        refuse["ValueError"] = "shapes that do not agree"
    elif dims.get("d") == 0 and "Y" in args:
        refuse["ValueError"] = "an empty batch"
    arrays = [a for a in args.values() if isinstance(a.value, np.ndarray)]
    for o in (a for a in arrays if a.out):
        for i in arrays:
            if i is o or not overlap(o.value, i.value):
                continue
            allowed = (o.name, i.name) in IN_PLACE and same_view(o.value, i.value)
            if not allowed:
                refuse["ValueError"] = f"{o.name} overlaps {i.name}"
    call_args = [args[name].value if name != "act" else act for name, _, _ in spec]
    before = {a.name: snapshot(a.value) for a in args.values()}
    # the reference's arguments: copies taken now (an in-place output overwrites its input),
    # one copy per array object, so an output that is its input stays so
    copies: dict[int, np.ndarray] = {}

    def clean(v):
        if not isinstance(v, np.ndarray):
            return v
        if id(v) not in copies:
            copies[id(v)] = np.array(v, order="F")
        return copies[id(v)]

    ref_args = [clean(v) for v in call_args]
    try:
        result = getattr(core, kernel)(*call_args)
    except (ValueError, TypeError) as e:
        assert refuse, f"{kernel} refused proper arguments: {type(e).__name__}: {e}"
        assert type(e).__name__ in refuse, (kernel, e, refuse)
        for a in args.values():
            assert unchanged(a.value, before[a.name]), f"{kernel} wrote into {a.name} before refusing"
        return "rejected"
    assert not refuse, f"{kernel} accepted {refuse}: " + \
        ", ".join(f"{a.name}={getattr(a.value, 'shape', a.value)!r}" for a in args.values())
    want = getattr(ref, kernel)(*ref_args)
    for a in args.values():
        if not a.out and not any(a.value is o.value for o in outs):
            assert unchanged(a.value, before[a.name]), f"{kernel} changed its input {a.name}"
    if want is not None:
        assert isinstance(result, float)
        np.testing.assert_allclose(result, want, rtol=TOL[dtype]["rtol"] * 10,
                                   atol=TOL[dtype]["atol"] * max(1.0, abs(want)) * 10)
    for a in outs:
        if a.value is None:
            continue
        exp = clean(a.value)
        scale = max(1.0, float(np.abs(exp).max(initial=0)))
        np.testing.assert_allclose(a.value, exp, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * scale * 10,
                                   err_msg=f"{kernel}: {a.name}")
    return "ok"


def _kernel_test(family):
    """A fuzz test of one kernel family (its own entry point in the case counts)."""
    def test(core, data):
        from fuzzing import _tally

        _tally(run_kernel(core, data, family))

    slug = family.replace("<", "").replace(">", "")
    test.__name__ = test.__qualname__ = f"test_{slug}"
    test.__doc__ = f"pynn._core {family}: refuses what it can't take, computes what the reference does."
    return fuzz(f"_core.{family}")(test)


for _family in FAMILIES:
    _t = _kernel_test(_family)
    globals()[_t.__name__] = _t
del _family, _t


# ---------------------------------------------------------------- optimizers
def flat_problem(v, out, dtype, p) -> bool:
    """A flat buffer the core must refuse: not a 1-D array of the dtype, not contiguous, not
    writable (outputs), or not as long as p."""
    if not isinstance(v, np.ndarray) or v.dtype != dtype or v.ndim != 1 or (out and not v.flags.writeable):
        return True
    if not layout_ok(v):
        return True
    return isinstance(p, np.ndarray) and p.ndim == 1 and v.shape != p.shape


FLAT_MUTATIONS = ("neg", "step", "misaligned", "readonly", "dtype", "length", "ndim", "list")


def flat_arg(data, a: np.ndarray):
    """A flat buffer passed as is (mostly) or mutated."""
    how = usually(data, ("as is",), FLAT_MUTATIONS, odds=8)
    if how == "as is":
        return a
    if how == "dtype":
        return a.astype(F64 if a.dtype == F32 else F32)
    if how == "length":
        return np.resize(a, a.size + 1)
    if how == "ndim":
        return a.reshape(-1, 1)
    if how == "list":
        return a.tolist()
    return layout_view(a, how)


@fuzz("_core.sgd_update/adam_update")
def test_updates(core, data):
    """The optimizer kernels over flat buffers: p (written), g, and the state (written)."""
    from fuzzing import _tally

    dtype = pick(data, (F32, F64))
    rng = np.random.default_rng(seed(data))
    N = pick(data, (5, 1, 17, 300, 0))
    kernel = pick(data, ("sgd_update", "adam_update"))
    p, g, m, v = (flat_arg(data, rng.uniform(0 if k == "v" else -1, 1, N).astype(dtype)) for k in "pgmv")
    if isinstance(p, np.ndarray) and p.dtype in (F32, F64):
        dtype = p.dtype  # the overload is chosen by the arrays (p decides when they disagree)
    if kernel == "sgd_update":
        lr, momentum, nesterov = pick(data, (0.1, 0.01, 1.0)), pick(data, (0.9, 0.0, 0.5)), flag(data)
        if one_in(data, 10):
            g = p  # p is g: refused
        args = (p, g, v, lr, momentum, nesterov)
        written = {"p": p, "v": v} if momentum else {"p": p}
        read = {"g": g}
        # with momentum 0, v is not used: any array of the dtype will do
        unused_ok = momentum != 0 or (isinstance(v, np.ndarray) and v.dtype == dtype)
        refuse = not unused_ok or (g is p and N > 0)
    else:
        t = usually(data, [1, 2, 10], [0, -1])
        args = (p, g, m, v, t, 0.01, 0.9, 0.999, 1e-8, pick(data, (0.0, 0.1)))
        written, read = {"p": p, "m": m, "v": v}, {"g": g}
        refuse = t < 1
    for name, a in {**written, **read}.items():
        refuse |= flat_problem(a, name in written, dtype, p)
    before = [snapshot(a) for a in args]
    try:
        getattr(core, kernel)(*args)
    except (ValueError, TypeError) as e:
        assert refuse, f"{kernel} refused proper arguments: {e}"
        assert all(unchanged(a, b) for a, b in zip(args, before)), f"{kernel} wrote before refusing"
        _tally("rejected")
        return
    assert not refuse, f"{kernel} accepted improper arguments: " + \
        ", ".join(f"{k}={type(a).__name__} {getattr(a, 'shape', '')} {getattr(a, 'strides', '')}"
                  for k, a in {**written, **read}.items())
    ref_args = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
    if kernel == "sgd_update" and g is p:
        ref_args[1] = ref_args[0]
    # the reference computes from the values before the call
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            ref_args[i][...] = np.frombuffer(before[i][2], dtype=np.dtype(before[i][0])).reshape(before[i][1])
    getattr(ref, kernel)(*ref_args)
    for got, want in zip(args, ref_args):
        if isinstance(got, np.ndarray):
            np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)
    _tally("ok")


# ---------------------------------------------------------------- the fused Model
def model_twin(sizes, acts, params, dtype):
    """A numpy-reference Network with the Model's parameters (None if the Network API can't
    express it, e.g. softmax in a hidden layer)."""
    import pynn

    if any(a == "softmax" for a in acts[:-1]):
        return None
    layers, o = [], 0
    for (n, h), act in zip(zip(sizes[:-1], sizes[1:]), acts):
        W = params[o:o + h * n].reshape(h, n)
        b = params[o + h * n:o + h * n + h].reshape(h, 1)
        o += h * n + h
        layers.append(pynn.Dense(n, h, act, init=(W, b)))
    return pynn.Network(layers, dtype=dtype, backend="numpy")


@fuzz("_core.Model")
def test_model(core, data):
    from fuzzing import _tally

    dtype = pick(data, (F32, F64))
    Model = core.Model32 if dtype == F32 else core.Model64
    rng = np.random.default_rng(seed(data))
    L = integer(data, 1, 3)
    sizes = [pick(data, (1, 2, 3, 5)) for _ in range(L + 1)]
    acts = [pick(data, ("tanh", "relu", "sigmoid", "linear")) for _ in range(L - 1)] + \
        [pick(data, ("softmax", "sigmoid", "linear"))]
    total = sum(h * n + h for n, h in zip(sizes[:-1], sizes[1:]))
    params = rng.uniform(-1, 1, total).astype(dtype)
    grads = np.zeros(total, dtype)
    ctor = (params, grads, sizes, acts)
    bad_ctor = None
    if one_in(data, 8):
        bad_ctor = pick(data, ["sizes-huge", "sizes-neg", "acts", "params-short", "params-dtype", "params-ro",
                               "sizes-len"])
        if bad_ctor == "sizes-huge":
            ctor = (params, grads, [2**62, 4, 2], acts[:1] + ["linear"])
        elif bad_ctor == "sizes-neg":
            ctor = (params, grads, [-sizes[0]] + sizes[1:], acts)
        elif bad_ctor == "acts":
            ctor = (params, grads, sizes, acts[:-1] + ["swish"])
        elif bad_ctor == "params-short":
            ctor = (params[:-1], grads, sizes, acts)
        elif bad_ctor == "params-dtype":
            ctor = (params.astype(F64 if dtype == F32 else F32), grads, sizes, acts)
        elif bad_ctor == "params-ro":
            ro = params.copy()
            ro.flags.writeable = False
            ctor = (ro, grads, sizes, acts)
        else:
            ctor = (params, grads, sizes + [2], acts)
    try:
        model = Model(*ctor)
    except (ValueError, TypeError):
        assert bad_ctor, "Model refused a proper network"
        _tally("rejected")
        return
    assert not bad_ctor, f"Model accepted {bad_ctor}"
    n_in, m = sizes[0], sizes[-1]
    d = pick(data, (1, 2, 3, 7, 16, 0))
    X = rng.normal(size=(n_in, d)).astype(dtype)
    how = usually(data, PROPER, ("neg", "step", "misaligned", "dtype", "broadcast"))
    Xv = X.astype(F64 if dtype == F32 else F32) if how == "dtype" else layout_view(X, how)
    loss = usually(data, [0, 1, 2], [-1, 6, 7, 2**31 - 1])  # 3-5 (mae, huber, poisson) are tested elsewhere
    index = m > 1 and usually(data, [True, False], [True])
    if index:
        Y = rng.integers(0, m, d).astype(np.int64)
        if one_in(data, 4) and d:
            Y[integer(data, 0, d - 1)] = pick(data, [-1, m, 2**40, -2**62])
        Yv = Y if flag(data) else layout_view(Y, pick(data, ("neg", "misaligned", "step")))
    else:
        Y = rng.random((m, d)).astype(dtype)
        if acts[-1] == "softmax" and loss == 2 and flag(data):
            Y = (Y / Y.sum(axis=0)).astype(dtype) if d else Y
        Yv = layout_view(Y, usually(data, PROPER, ("neg", "step", "misaligned")))
    method = pick(data, ["forward", "loss", "train_step", "run_batches", "set_adam"])
    before = {k: snapshot(v) for k, v in (("params", params), ("X", Xv), ("Y", Yv))}
    try:
        if method == "forward":
            out = np.full((m, d), np.nan, dtype, order=pick(data, ("F", "C")))
            if one_in(data, 8):
                out = Xv if pick(data, (0, 1)) else out.astype(F64 if dtype == F32 else F32)
            model.forward(Xv, out)
            result = out
        elif method == "loss":
            result = model.loss(Xv, Yv, loss, flag(data))
        elif method == "set_adam":
            t = np.zeros(pick(data, (1, 1, 0, 2)), np.int64)
            mm, vv = np.zeros(total, dtype), np.zeros(total, dtype)
            model.set_adam(0.01, 0.9, 0.999, 1e-8, 0.0, mm, vv, t)
            del mm, vv, t  # the model keeps them alive
            result = model.train_step(Xv, Yv, loss)
        else:
            lr = 0.1
            model.set_sgd(lr, 0.0, False, np.empty(0, dtype))
            if method == "train_step":
                result = model.train_step(Xv, Yv, loss)
            else:
                bs = usually(data, [1, 2, 3, max(d, 1)], [0, -1, 2**62, d + 5])
                first = usually(data, [0], [1, -1, 2**62])
                count = usually(data, [1, 2, 2**62], [-1])
                order = usually(data, [None, np.arange(d, dtype=np.int64)[::-1].copy()],
                                [np.full(d, d + 3, np.int64), np.arange(d + 1, dtype=np.int64)])
                result = model.run_batches(Xv, Yv, order, first, count, bs, loss, flag(data))
    except (ValueError, TypeError) as e:
        for k, v in (("params", params), ("X", Xv), ("Y", Yv)):
            assert unchanged(v, before[k]), f"Model.{method} changed {k} before refusing ({e})"
        _tally("rejected")
        return
    # accepted: the arguments must have been ones the Model takes, and the results right
    assert isinstance(Xv, np.ndarray) and Xv.dtype == dtype and layout_ok(Xv), f"Model.{method} took X {Xv!r}"
    if method != "forward":
        assert 0 <= loss <= 2, f"Model.{method} took loss code {loss}"
        assert d > 0 or method == "run_batches"
        if index:
            assert ((Y >= 0) & (Y < m)).all(), f"Model.{method} took class indices {Y}"
    twin = model_twin(sizes, acts, params if method == "forward" or method == "loss" else
                      before_array(before["params"]), dtype)
    if twin is not None and method in ("forward", "loss", "train_step") and np.isfinite(X).all():
        name = ("mse", "bce", "cross_entropy")[loss] if method != "forward" else None
        tol = 1e-3 if dtype == F32 else 1e-9
        if method == "forward":
            np.testing.assert_allclose(result, twin.predict(X), rtol=tol, atol=tol)
        elif name in ("bce", "cross_entropy") and acts[-1] not in ("sigmoid", "softmax"):
            pass  # the Network API refuses these pairs; the core computes something finite or not
        else:
            Yr = Y if not index else Y
            J = result if method == "loss" else result[0]
            J_ref = twin.loss(X, Yr, name)
            np.testing.assert_allclose(J, J_ref, rtol=tol, atol=tol)
    _tally("ok")


def before_array(snap):
    return np.frombuffer(snap[2], dtype=np.dtype(snap[0])).reshape(snap[1]).copy()
