"""Property-based tests of the public entry points test_fuzz.py does not cover (issue 6, item 1):
the RMSprop, Rprop and LBFGS constructors and gradient clipping on every optimizer, the
learning-rate schedules, EarlyStopping, losses.Huber, fit_many, and fit's sample_weight,
class_weight and validation_fraction.

Same machinery as test_fuzz.py (tests/fuzzing.py): each case draws arguments as users pass them
— typical values, junk types, NaN/inf, huge ints and floats, wrong shapes, every dtype and
layout — and the call either raises ValueError/TypeError for a problem the rules below predict,
with a message naming the argument, leaving networks and arguments as they were; or returns
what an oracle gives:

* optimizers: ``get_config()`` round-trips, and the first ``train_step`` moves a float64
  network's weights as ``torch.optim`` does for the same gradient (1e-12), clipping by
  ``torch.nn.utils.clip_grad_value_`` / ``clip_grad_norm_``; LBFGS: one ``fit`` epoch equals
  SciPy's L-BFGS-B iteration with the same settings;
* schedules: the rate of each of 40 epochs equals the torch scheduler's (test_schedules.py's
  oracle); EarlyStopping: its stopping epoch follows Keras's rule (test_early_stopping.py's);
* Huber: ``net.loss`` equals ``torch.nn.functional.huber_loss(reduction="sum") / d``;
* fit_many: each network equals, bit for bit, the same network fitted alone with
  ``deterministic=True``;
* fit with weights: equals the NumPy reference network's fit; constant sample weights equal
  no weights.

``PYNN_FUZZ_EXAMPLES=10000`` runs >= 10^4 cases per entry point (.ci/fuzz.sh).
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np
import pytest

import pynn
from conftest import IN_CI, NET_TOL
from fuzzing import (FRACTIONS, RATES, Problem, _tally, as_float, as_numeric, assert_within, expect_int,
                     expect_number, expect_rates, flag, fuzz, int_arg, integer, is_real, number_arg, one_in, outcome, pick,
                     same_weights, seed, snapshot, unchanged, user_array, usually, weights)
from pynn import schedules as S

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    if IN_CI:
        raise
    torch = None
pytestmark = [pytest.mark.skipif(torch is None, reason="torch (the oracle) is not installed"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

if torch is not None:
    from test_early_stopping import keras_stop_epoch
    from test_schedules import EPOCHS, pynn_rates, torch_rates

L = torch.optim.lr_scheduler if torch is not None else None
BACKENDS = pynn.available_backends()


# ---------------------------------------------------------------- optimizers: a first step against torch.optim
CLIPS = [None] * 4 + [0.01, 0.5, 1.0, 100.0, 1e-300]


def clip_args(data):
    """clip_value / clip_norm keywords, sometimes junk; and their problems."""
    kw, problems = {}, []
    for name in ("clip_value", "clip_norm"):
        if one_in(data, 2):
            v = number_arg(data, CLIPS)
            kw[name] = v
            if v is not None:
                problems += expect_number(v, name, low=0, low_open=True)
    return kw, problems


def first_step_case(data):
    """A tiny float64 network on a drawn backend, a batch, and its loss."""
    backend = pick(data, BACKENDS)
    net = pynn.Network.from_sizes([3, 4, 2], hidden="tanh", output="linear", dtype="float64", backend=backend,
                                  seed=seed(data))
    rng = np.random.default_rng(seed(data))
    scale = pick(data, [1.0, 1e-3, 30.0])
    return net, rng.normal(size=(3, 5)) * scale, rng.normal(size=(2, 5)) * scale


def check_first_step(data, opt, make_torch, *, sign_only=False, slack=None):
    """``train_step`` with ``opt`` from fresh state moves the weights as ``make_torch(params)``
    does for the gradient ``loss_and_grads`` gives, after the same clipping. ``slack(p0, g, p1)``
    adds to the tolerance where the step itself is ill-conditioned.

    The compiled core flushes subnormal results to zero (csrc/fpmode.hpp). Where a clipped
    gradient is so small that it, its square or its product with the rate may fall below
    2.2e-308 (a clip threshold or eps near 1e-300 makes such steps), its update there follows
    other arithmetic than torch's: those elements are not compared on it, and the step may be
    refused as not finite."""
    net, X, Y = first_step_case(data)
    before = weights(net)
    _, grads = net.loss_and_grads(X, Y, "mse")
    ps = [torch.tensor(a.copy()) for wb in before for a in wb]
    for p, g in zip(ps, [a for gb in grads for a in gb]):
        p.requires_grad_(True)
        p.grad = torch.tensor(g.copy())
    cfg = opt.get_config()
    if cfg.get("clip_value"):
        torch.nn.utils.clip_grad_value_(ps, cfg["clip_value"])
    if cfg.get("clip_norm"):
        torch.nn.utils.clip_grad_norm_(ps, cfg["clip_norm"])
    clipped = [p.grad.numpy().copy() for p in ps]
    make_torch(ps).step()
    want = [p.detach().numpy() for p in ps]
    try:  # (not through outcome(): this check is part of the constructor's case)
        net.train_step(X, Y, "mse", opt)
        status = "ok"
    except FloatingPointError:
        status = "raised"
    margin = math.sqrt(np.finfo(np.float64).tiny) * 2.0**27  # ~2e-146: g² or lr g may flush
    flushed = [np.abs(g) < margin if net.backend == "cpp" else np.zeros(g.shape, bool) for g in clipped]
    finite = all(np.isfinite(w).all() for w in want)
    near_overflow = max(float(np.abs(w).max()) for w in want) > 1e300
    if status == "raised":  # Diverged: the update would not be finite; nothing changed
        assert same_weights(net, before), "a refused step changed the weights"
        # ... or a square of the gradient (plus RMSprop's coupled weight decay) overflows, which
        # torch's order of operations ((1-α) g) g may avoid: the state would not be finite
        wd = cfg.get("weight_decay", 0.0) if isinstance(opt, pynn.RMSprop) else 0.0
        p0s = [a for wb in before for a in wb]
        big = max(float(np.max(np.abs(g) + wd * np.abs(p0))) for g, p0 in zip(clipped, p0s))
        assert not finite or near_overflow or big > 1e150 or any(f.any() for f in flushed), \
            f"train_step raised although torch's step is finite: {want}"
        return
    if not finite:  # pynn applied a step torch finds not finite: only where the step is ill-conditioned
        # (torch takes √ of a rounded difference that may be negative: NaN)
        assert slack is not None and all(np.isfinite(l.W).all() and np.isfinite(l.b).all() for l in net.layers), \
            f"train_step applied a step whose torch value is not finite: {want}"
        return
    g_scale = max(float(np.abs(g).max()) for gb in grads for g in gb)
    got = [a for layer in net.layers for a in (layer.W, layer.b)]
    for i, (p0, g, w, x, f) in enumerate(zip([a for wb in before for a in wb], clipped, want, got, flushed)):
        atol = 1e-12 * (1 + np.abs(p0) + np.abs(w - p0))
        if slack is not None:
            with np.errstate(all="ignore"):
                atol = atol + np.nan_to_num(slack(p0, g, w), nan=np.inf)
        if sign_only:  # Rprop: a gradient within rounding of 0 may have either sign (or none)
            tiny = np.abs(g) <= 1e-13 * g_scale
            x = np.where(tiny, w, x)
        x = np.where(f, w, x)
        assert_within(x, w, atol, 1e-12, f"parameter {i} after the first step")


@fuzz("RMSprop(...)")
def test_rmsprop(data):
    typical = {"lr": RATES, "alpha": FRACTIONS, "eps": [1e-8, 1e-6, 1.0, 1e-300], "weight_decay": [0.0, 1e-4, 0.1, 1.0],
               "momentum": FRACTIONS}
    args = {k: number_arg(data, v) for k, v in typical.items() if one_in(data, 3)}
    problems = expect_rates(args)
    if one_in(data, 3):
        args["centered"] = usually(data, [False, True, np.bool_(True)], [0, 1, "yes", None])
        if not isinstance(args["centered"], (bool, np.bool_)):
            problems.append(Problem(TypeError, r"\bcentered must be a bool"))
    clip, pc = clip_args(data)
    status, opt = outcome(lambda: pynn.RMSprop(**args, **clip), problems + pc)
    if status != "ok":
        return
    cfg = dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, clip_value=None,
               clip_norm=None) | {k: float(v) for k, v in args.items() if k != "centered"} | \
        {k: float(v) for k, v in clip.items() if v is not None}
    cfg["centered"] = bool(args.get("centered", False))
    assert opt.get_config() == cfg
    assert pynn.RMSprop(**opt.get_config()).get_config() == cfg
    check_first_step(data, opt, lambda ps: torch.optim.RMSprop(
        ps, lr=cfg["lr"], alpha=cfg["alpha"], eps=cfg["eps"], weight_decay=cfg["weight_decay"],
        momentum=cfg["momentum"], centered=cfg["centered"]), slack=rmsprop_slack(cfg) if cfg["centered"] else None)


def rmsprop_slack(cfg):
    """Centered RMSprop's first step divides by √(s - ḡ²) + eps, where s = (1-α) g² and
    ḡ = (1-α) g: a difference of two rounded numbers whose exact value, α (1-α) g², is 0 for
    α = 0. Rounding (~4 ulps of s, FMA or not) moves the square root by up to
    min(√δ, δ / (2 √var)), and the step by that share of its denominator."""
    a, wd, eps = cfg["alpha"], cfg["weight_decay"], cfg["eps"]

    def slack(p0, g, p1):
        gp = g + wd * p0
        s, var = (1 - a) * gp * gp, a * (1 - a) * gp * gp
        dv = 8 * np.finfo(np.float64).eps * s
        root = np.sqrt(var)
        dsq = np.minimum(np.sqrt(dv), np.where(root > 0, dv / (2 * root), np.inf))
        return 2 * np.abs(p1 - p0) * dsq / (root + eps)

    return slack


def pair_arg(data, typical):
    """etas / step_sizes as users pass them: a pair (tuple or list), or junk."""
    kind = usually(data, ["tuple", "list"], ["short", "long", "scalar", "array", "str", "none"])
    a, b = number_arg(data, typical), number_arg(data, typical)
    return {"tuple": (a, b), "list": [a, b], "short": (a,), "long": (a, b, b), "scalar": a,
            "array": np.array([0.5, 1.2]), "str": "ab", "none": None}[kind]


def expect_pair(value, name, rule):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return None, [Problem(TypeError, rf"\b{name} must be a pair of floats")]
    problems = []
    for i, v in enumerate(value):
        if not is_real(v):
            problems.append(Problem(TypeError, rf"\b{name}\[{i}\] must be a number"))
        elif not math.isfinite(as_float(v)):
            problems.append(Problem(ValueError, rf"\b{name}\[{i}\] must be a number"))
    if problems:
        return None, problems
    a, b = float(value[0]), float(value[1])
    return (a, b), [] if rule(a, b) else [Problem(ValueError, rf"\b{name} must be \(")]


@fuzz("Rprop(...)")
def test_rprop(data):
    args, problems = {}, []
    if one_in(data, 2):
        args["lr"] = number_arg(data, RATES)
        problems += expect_number(args["lr"], "lr", low=0, low_open=True)
    etas = steps = None
    if one_in(data, 2):
        args["etas"] = pair_arg(data, [0.5, 1.2, 0.3, 2.0, 0.999, 1.001, 1e-300, 1e300])
        etas, p = expect_pair(args["etas"], "etas", lambda a, b: 0 < a < 1 < b)
        problems += p
    if one_in(data, 2):
        args["step_sizes"] = pair_arg(data, [1e-6, 50.0, 0.0, 0.01, 0.06, 1e-300, 1e300])
        steps, p = expect_pair(args["step_sizes"], "step_sizes", lambda a, b: 0 <= a <= b)
        problems += p
    if one_in(data, 10):  # Rprop uses only signs: no clipping
        args["clip_norm"] = 1.0
        problems.append(Problem(TypeError, r"clip_norm"))
    status, opt = outcome(lambda: pynn.Rprop(**args), problems)
    if status != "ok":
        return
    cfg = {"lr": float(args.get("lr", 0.01)), "etas": etas or (0.5, 1.2), "step_sizes": steps or (1e-6, 50.0)}
    assert opt.get_config() == cfg
    assert pynn.Rprop(**opt.get_config()).get_config() == cfg
    check_first_step(data, opt, lambda ps: torch.optim.Rprop(ps, lr=cfg["lr"], etas=cfg["etas"],
                                                             step_sizes=cfg["step_sizes"]), sign_only=True)


@fuzz("LBFGS(...)")
def test_lbfgs(data):
    args, problems = {}, []
    if one_in(data, 2):
        args["tol"] = number_arg(data, [1e-5, 0.0, 1e-10, 0.1, 1])
        problems += expect_number(args["tol"], "tol", low=0)
    for name in ("max_fun", "history_size"):
        if one_in(data, 2):
            args[name] = int_arg(data, [1, 2, 5, 10, 50, np.int32(3), 13973, 10**6])
            problems += expect_int(args[name], name)
    status, opt = outcome(lambda: pynn.LBFGS(**args), problems)
    if status != "ok":
        return
    cfg = {"tol": 1e-5, "max_fun": 15000, "history_size": 10} | \
        {k: float(v) if k == "tol" else int(v) for k, v in args.items()}
    assert opt.get_config() == cfg and pynn.LBFGS(**cfg).get_config() == cfg
    net, X, Y = first_step_case(data)
    before = weights(net)
    with pytest.raises(TypeError, match="LBFGS is a full-batch optimizer"):
        net.train_step(X, Y, "mse", opt)
    assert same_weights(net, before)
    m, n_params = cfg["history_size"], net.n_params
    if 2 * m * n_params + 5 * n_params + 11 * m * m + 8 * m >= 2**31:  # SciPy's workspace: 32-bit indices
        with pytest.raises(ValueError, match=r"\bhistory_size=\d+ is too large"):
            net.fit(X, Y, loss="mse", optimizer=opt, epochs=1)
        assert same_weights(net, before)
        return
    if m > 1000:  # a workspace of 11 m² floats: too big to run here
        return
    # one epoch is one L-BFGS-B iteration of SciPy's with these settings, on the reference's loss
    from scipy.optimize import minimize

    ref = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=wb) for l, wb in zip(net.layers, before)],
                       dtype="float64", backend="numpy")
    shapes = [a.shape for wb in before for a in wb]

    def f(x):
        parts, at = [], 0
        for shp in shapes:
            parts.append(x[at:at + math.prod(shp)].reshape(shp))
            at += math.prod(shp)
        for i, layer in enumerate(ref.layers):
            layer.W, layer.b = parts[2 * i], parts[2 * i + 1]
        J, grads = ref.loss_and_grads(X, Y, "mse")
        return J, np.concatenate([a.ravel() for gb in grads for a in gb])

    x0 = np.concatenate([a.ravel() for wb in before for a in wb])
    res = minimize(f, x0, method="L-BFGS-B", jac=True, options={"maxiter": 1, "maxfun": cfg["max_fun"],
                                                                "gtol": cfg["tol"], "maxcor": cfg["history_size"]})
    net.fit(X, Y, loss="mse", optimizer=opt, epochs=1)
    got = np.concatenate([a.ravel() for layer in net.layers for a in (layer.W, layer.b)])
    assert_within(got, res.x, 1e-9 * (1 + np.abs(res.x)), 1e-9, "weights after one L-BFGS iteration")


@fuzz("SGD/Adam(clip_value=, clip_norm=)")
def test_clipping(data):
    kind = pick(data, ["sgd", "momentum", "adam", "adamw"])
    clip, problems = clip_args(data)
    make = {"sgd": lambda: pynn.SGD(0.1, **clip), "momentum": lambda: pynn.SGD(0.1, momentum=0.9, **clip),
            "adam": lambda: pynn.Adam(0.01, **clip), "adamw": lambda: pynn.Adam(0.01, weight_decay=0.1, **clip)}
    status, opt = outcome(make[kind], problems)
    if status != "ok":
        return
    cfg = opt.get_config()
    assert (cfg["clip_value"], cfg["clip_norm"]) == tuple(
        None if clip.get(k) is None else float(clip[k]) for k in ("clip_value", "clip_norm"))
    assert type(opt)(**cfg).get_config() == cfg
    check_first_step(data, opt, {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1), "momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)}[kind])


# ---------------------------------------------------------------- schedules against torch.optim.lr_scheduler
def sched_optimizer(data):
    if one_in(data, 12):
        opt = pick(data, [None, "sgd", 0.1, pynn.SGD])
        return opt, [Problem(TypeError, r"\boptimizer must be a pynn optimizer")]
    return None, []


def draw_schedule(data):
    """(name, kwargs, problems, torch factory or None, metrics or None)."""
    name = pick(data, ["Constant", "InverseScaling", "StepLR", "ExponentialLR", "CosineWarmup",
                       "ReduceLROnPlateau"])
    kw, problems = {}, []
    if name == "InverseScaling":
        if flag(data):
            kw["power"] = number_arg(data, [0.5, 0.0, 1, 2.0, 0.25, 1e300])
            problems += expect_number(kw["power"], "power", low=0)
        return name, kw, problems, lambda o: L.LambdaLR(o, lambda e: (e + 1) ** -as_float(kw.get("power", 0.5))), None
    if name == "StepLR":
        kw["step_size"] = int_arg(data)
        problems += expect_int(kw["step_size"], "step_size")
        if flag(data):
            kw["gamma"] = number_arg(data, [0.1, 0.5, 0.9, 1.0, 2.0, 1e-300, 1e300])
            problems += expect_number(kw["gamma"], "gamma", low=0, low_open=True)
        return name, kw, problems, lambda o: L.StepLR(o, step_size=int(kw["step_size"]),
                                                      gamma=as_float(kw.get("gamma", 0.1))), None
    if name == "ExponentialLR":
        kw["gamma"] = number_arg(data, [0.1, 0.5, 0.9, 1.0, 2.0, 1e-300, 1e300, 1e10])
        problems += expect_number(kw["gamma"], "gamma", low=0, low_open=True)
        return name, kw, problems, lambda o: L.ExponentialLR(o, gamma=as_float(kw["gamma"])), None
    if name == "CosineWarmup":
        kw["total"] = int_arg(data, [1, 2, 5, 10, 30, 60, np.int64(7), 2**70])
        problems += expect_int(kw["total"], "total")
        if flag(data):
            kw["warmup"] = int_arg(data, [0, 1, 2, 5, 10, 30])
            problems += expect_int(kw["warmup"], "warmup", minimum=0)
        if flag(data):
            kw["start_factor"] = number_arg(data, [1 / 3, 0.1, 1.0, 0.5, 1e-300])
            problems += expect_number(kw["start_factor"], "start_factor", 0, 1, low_open=True)
        if flag(data):
            kw["eta_min"] = number_arg(data, [0.0, 1e-3, 0.01, 1.0, 1e300])
            problems += expect_number(kw["eta_min"], "eta_min", low=0)
        total, warmup = kw["total"], kw.get("warmup", 0)
        if not expect_int(total, "total") and not expect_int(warmup, "warmup", minimum=0) and warmup >= total:
            problems.append(Problem(ValueError, r"\bwarmup must be below total"))

        def make_torch(o):  # (called only for accepted arguments)
            sf, eta_min = as_float(kw.get("start_factor", 1 / 3)), as_float(kw.get("eta_min", 0.0))
            if not warmup:
                return L.CosineAnnealingLR(o, T_max=int(total), eta_min=eta_min)
            return L.SequentialLR(o, [L.LinearLR(o, start_factor=sf, total_iters=int(warmup)),
                                      L.CosineAnnealingLR(o, T_max=int(total) - int(warmup), eta_min=eta_min)],
                                  milestones=[int(warmup)])

        return name, kw, problems, make_torch, None
    if name == "ReduceLROnPlateau":
        typical = {"factor": [0.1, 0.5, 0.9, 1e-300], "patience": [0, 1, 2, 10, np.int64(3)],
                   "cooldown": [0, 1, 3], "threshold": [1e-4, 0.0, 0.1, 1.0, 1e300], "min_lr": [0.0, 0.01, 1.0],
                   "eps": [1e-8, 0.0, 0.1]}
        for k, v in typical.items():
            if one_in(data, 3):
                if k in ("patience", "cooldown"):
                    kw[k] = int_arg(data, v)
                    problems += expect_int(kw[k], k, minimum=0)
                else:
                    kw[k] = number_arg(data, v)
                    problems += expect_number(kw[k], k, 0, 1, low_open=True, high_open=True) if k == "factor" \
                        else expect_number(kw[k], k, low=0)
        for k, ok in (("mode", ("min", "max")), ("threshold_mode", ("rel", "abs"))):
            if one_in(data, 3):
                kw[k] = usually(data, list(ok), ["MIN", "", None, 3, [ok[0]], np.array(list(ok))])
                if not isinstance(kw[k], str):
                    problems.append(Problem(TypeError, rf"\b{k} must be one of"))
                elif kw[k] not in ok:
                    problems.append(Problem(ValueError, rf"\b{k} must be one of"))
        if one_in(data, 6):
            kw["monitor"] = usually(data, [None, "loss", "val_loss"], [3, ["loss"], b"loss"])
            if kw["monitor"] is not None and not isinstance(kw["monitor"], str):
                problems.append(Problem(TypeError, r"\bmonitor must be None or a str"))
        rng = np.random.default_rng(seed(data))
        levels = integer(data, 1, 6)  # few levels: plateaus and exact ties
        metrics = list(np.round(rng.random(EPOCHS) * levels) / levels + np.linspace(1, 0, EPOCHS) * flag(data))
        def make_torch(o):  # (called only for accepted arguments)
            return L.ReduceLROnPlateau(o, **{k: (int(v) if k in ("patience", "cooldown") else
                                                 v if isinstance(v, str) else as_float(v))
                                             for k, v in kw.items() if k != "monitor"})

        return name, kw, problems, make_torch, metrics
    return name, kw, problems, lambda o: L.LambdaLR(o, lambda e: 1.0), None


@fuzz("schedules.*")
def test_schedules(data):
    name, kw, problems, make_torch, metrics = draw_schedule(data)
    junk_opt, po = sched_optimizer(data)
    lr = float(pick(data, [0.3, 0.1, 1.0, 1e-3, 5e-324, 1e300]))
    cls = getattr(S, name)
    opt = pynn.SGD(lr)
    status, sched = outcome(lambda: cls(junk_opt if po else opt, **kw), problems + po)
    if status != "ok":
        assert opt.lr == lr, "a refused schedule changed the optimizer's rate"
        return
    assert sched.optimizer is opt and sched.base_lr == lr
    ours = pynn_rates(lambda o: cls(o, **kw), metrics, lr=lr)
    theirs = torch_rates(make_torch, metrics, lr=lr)
    scale = max(lr, as_float(kw.get("eta_min", 0.0)))
    assert_within(ours, theirs, 1e-12 * scale + 1e-300, 1e-12, f"{name}({kw}) rates")


# ---------------------------------------------------------------- EarlyStopping
@fuzz("EarlyStopping(...)")
def test_early_stopping(data):
    kw, problems = {}, []
    if one_in(data, 2):
        kw["monitor"] = usually(data, ["val_loss", "loss", "accuracy", "val_accuracy"], ["f1", "", 3, None])
    monitor = kw.get("monitor", "val_loss")
    if one_in(data, 2):
        kw["mode"] = usually(data, ["auto", "min", "max"], ["AUTO", "up", None, 1, ["min"], np.array(["min", "max"])])
    mode = kw.get("mode", "auto")
    if not isinstance(monitor, str):
        problems.append(Problem(TypeError, r"\bmonitor must be a str"))
    if not isinstance(mode, str):
        problems.append(Problem(TypeError, r"\bmode must be one of"))
    elif mode not in ("auto", "min", "max"):
        problems.append(Problem(ValueError, r"\bmode must be one of"))
    elif mode == "auto" and isinstance(monitor, str):
        mode = "max" if "acc" in monitor else "min" if "loss" in monitor else None
        if mode is None:
            problems.append(Problem(ValueError, r"mode='auto' cannot tell"))
    for k in ("patience", "start_from_epoch"):
        if one_in(data, 2):
            kw[k] = int_arg(data, [0, 1, 2, 3, 5, np.int64(2), 2**70])
            problems += expect_int(kw[k], k, minimum=0)
    if one_in(data, 2):
        kw["min_delta"] = number_arg(data, [0.0, 0.01, 0.1, -0.05, 1e300])
        problems += [Problem((TypeError, ValueError), p.pattern.replace("must be a number", "must be a finite number"))
                     for p in expect_number(kw["min_delta"], "min_delta")]
    if one_in(data, 3):
        kw["restore_best_weights"] = usually(data, [False, True, np.bool_(True)], [0, 1, "no", None])
        if not isinstance(kw["restore_best_weights"], (bool, np.bool_)):
            problems.append(Problem(TypeError, r"\brestore_best_weights must be a bool"))
    status, es = outcome(lambda: pynn.EarlyStopping(**kw), problems)
    if status != "ok":
        return
    patience, start = int(kw.get("patience", 10)), int(kw.get("start_from_epoch", 0))
    min_delta = abs(float(kw.get("min_delta", 0.0)))
    assert (es.monitor, es.mode, es.patience, es.start_from_epoch, es.min_delta, es.restore_best_weights) == \
        (monitor, mode, patience, start, min_delta, bool(kw.get("restore_best_weights", False)))
    # Keras's rule on a drawn score sequence (few levels: plateaus and exact ties)
    rng = np.random.default_rng(seed(data))
    values = list(np.round(rng.random(integer(data, 1, 12)) * 4) / 4 * pick(data, [1.0, 0.01, 100.0]))
    net = pynn.Network.from_sizes([1, 1], output="linear", dtype="float64", seed=0)
    es.on_train_begin(net, {})
    stopped = None
    for e, v in enumerate(values):
        net._params[...] = e  # the weights of epoch e
        es.on_epoch_end(net, e, {monitor: v})
        if net.stop_training:
            stopped = e
            break
    es.on_train_end(net, {})
    want_stop, want_best = keras_stop_epoch(values, patience, min_delta, mode, start)
    assert (stopped, es.best_epoch) == (want_stop, want_best)
    if es.restore_best_weights and start < len(values):
        assert (net._params == want_best).all()


# ---------------------------------------------------------------- losses.Huber against torch's HuberLoss
@fuzz("losses.Huber(delta)")
def test_huber(data):
    delta = number_arg(data, [1.0, 0.5, 2.0, 1e-3, 100.0, np.float32(0.25), 1, 5e-324, 1e300])
    problems = expect_number(delta, "delta", low=0, low_open=True)
    status, h = outcome(lambda: pynn.losses.Huber(delta), problems)
    if status != "ok":
        return
    assert h.delta == float(delta) and h == pynn.losses.Huber(float(delta))
    backend = pick(data, BACKENDS)
    m, n, d = integer(data, 1, 3), integer(data, 1, 3), integer(data, 1, 6)
    net = pynn.Network([pynn.Dense(n, m, "linear")], dtype="float64", backend=backend, seed=seed(data))
    rng = np.random.default_rng(seed(data))
    scale = pick(data, [1.0, 0.01, 10.0, 1e3])
    X, Y = rng.normal(size=(n, d)) * scale, rng.normal(size=(m, d)) * scale
    J = net.loss(X, Y, h)
    Yhat = torch.from_numpy(net.predict(X))
    want = torch.nn.functional.huber_loss(Yhat, torch.from_numpy(Y), reduction="sum", delta=h.delta).item() / d
    assert_within(J, want, 1e-12 * (1 + abs(want)), 1e-12, f"Huber({h.delta}) loss")


# ---------------------------------------------------------------- fit_many: each equals its fit alone
PAIRS = [("linear", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("tanh", "mse")]


def clean_targets(rng, loss, m, d, *, indices=False):
    if loss == "cross_entropy":
        y = rng.integers(0, m, size=d)
        return y if indices else np.eye(m)[:, y]
    if loss == "bce":
        return (rng.random((m, d)) < 0.5).astype(np.float64)
    return rng.normal(size=(m, d))


def per_net_arg(data, k, typical, junk):
    """A value for every network, a sequence of one per network, or a sequence of another length."""
    kind = usually(data, ["one", "seq"], ["short", "junk"], odds=16)
    if kind == "one":
        return pick(data, typical)
    if kind == "seq":
        return [pick(data, typical) for _ in range(k)]
    if kind == "short":
        return [pick(data, typical) for _ in range(k + pick(data, [1, -1]))]
    return pick(data, junk)


def expect_per_net(value, k, name, check):
    if isinstance(value, (list, tuple)):
        if len(value) != k:
            return [Problem(ValueError, rf"\b{name} must be one value or a sequence of {k}")]
        return [p for i, v in enumerate(value) for p in check(v, rf"{name}\[{i}\]")]
    return check(value, name)


def expect_optimizer(v, name):
    return [] if isinstance(v, pynn.Optimizer) else [Problem(TypeError, rf"\b{name} must be a pynn optimizer")]


def expect_seed(v, name):
    return [] if v is None else expect_int(v, name, minimum=0)


def fresh_optimizer(kind):
    return pynn.SGD(0.05) if kind == "sgd" else pynn.Adam(0.01) if kind == "adam" else kind


@fuzz("fit_many")
def test_fit_many(data):
    rng = np.random.default_rng(seed(data))
    k = usually(data, [1, 2, 3], [0])
    n, m = integer(data, 1, 3), integer(data, 1, 3)
    act, loss = pick(data, PAIRS)
    if act == "softmax" and m == 1:
        m = 2
    nets = [pynn.Network([pynn.Dense(n, h, pick(data, ["tanh", "relu", "sigmoid"])), pynn.Dense(h, m, act)],
                         dtype=pick(data, ["float64", "float32"]), backend=pick(data, BACKENDS), seed=seed(data))
            for h in [integer(data, 1, 4) for _ in range(k)]]
    d = integer(data, 1, 10)
    X = rng.normal(size=(n, d))
    Y = clean_targets(rng, loss, m, d, indices=flag(data))
    problems = []
    if one_in(data, 10):  # bad data: judged before any network trains
        bad = pick(data, ["nan", "rows", "labels"])
        if bad == "nan":
            X[0, 0] = np.nan
            problems.append(Problem(ValueError, r"\bX \(for nets\[\d\]\) contains NaN"))
        elif bad == "rows":
            X = np.vstack([X, X[:1]])
            problems.append(Problem(ValueError, r"\bX \(for nets\[\d\]\) must have"))
        else:
            Y = np.full(d + 1, 0)
            problems.append(Problem(ValueError, r"\bY \(for nets\[\d\]\)"))
    arg = nets
    shape = usually(data, ["list", "tuple"], ["net", "none", "item", "repeat"], odds=16)
    if shape == "tuple":
        arg = tuple(nets)
    elif shape in ("net", "none"):
        arg = nets[0] if nets and shape == "net" else None
        problems.append(Problem(TypeError, r"\bnets must be a sequence of pynn\.Network"))
    elif shape == "item":
        arg = nets + [pick(data, [None, "net", 3])]
        problems.append(Problem(TypeError, rf"\bnets\[{len(nets)}\] must be a pynn\.Network"))
    elif shape == "repeat" and nets:
        arg = nets + [nets[0]]
        problems.append(Problem(ValueError, r"\bnets must not repeat a Network"))
    if isinstance(arg, (list, tuple)) and not arg:
        problems.append(Problem(ValueError, r"\bnets must hold at least one Network"))
    kk = len(arg) if isinstance(arg, (list, tuple)) else k
    opt_kinds = per_net_arg(data, kk, ["sgd", "adam"], [None, "sgd", 0.1, pynn.SGD])
    optimizers = [fresh_optimizer(o) for o in opt_kinds] if isinstance(opt_kinds, list) else \
        fresh_optimizer(opt_kinds)
    epochs = per_net_arg(data, kk, [1, 2], [0, -1, 1.5, None, "1"])
    batch_size = per_net_arg(data, kk, list(range(1, d + 3)), [0, 2.0, None, True])
    seeds = per_net_arg(data, kk, [0, 1, 7, 2**40], [-1, 1.5, "0"])
    shuffle = usually(data, [True, False], ["yes", None, 1], odds=16)
    callbacks, logged = None, [[] for _ in range(kk)]
    ckind = usually(data, ["none", "functions"], ["short", "junk-one", "junk-one", "junk", "unlogged"], odds=10)
    if ckind == "functions":
        callbacks = [[(lambda i: lambda epoch, logs: logged[i].append(epoch))(i)] for i in range(kk)]
    elif ckind == "short":
        callbacks = [[] for _ in range(kk + 1)]
        problems.append(Problem(ValueError, r"\bcallbacks must be None or a sequence of"))
    elif ckind == "junk-one":  # one network's callbacks are junk: refused before any trains
        callbacks = [[] for _ in range(kk)]
        if kk:
            callbacks[-1] = [pick(data, [3, "cb", None])]
            problems.append(Problem(TypeError, r"\bcallbacks(\[\d+\])? must be"))
    elif ckind == "unlogged":  # one network's EarlyStopping watches a log no fit here writes
        callbacks = [[] for _ in range(kk)]
        if kk:
            callbacks[-1] = [pynn.EarlyStopping(pick(data, ["val_loss", "val_accuracy"]))]
            problems.append(Problem(ValueError, r"\bcallbacks\[\d+\]: EarlyStopping monitors"))
    elif ckind == "junk":
        callbacks = pick(data, [3, "x"])
        problems.append(Problem((TypeError, ValueError), r"\bcallbacks"))
    n_jobs = usually(data, [None, 1, 2], [0, -1, 1.5, "2"], odds=16)
    if shape in ("list", "tuple") and k:
        problems += expect_per_net(optimizers, kk, "optimizers", expect_optimizer)
        problems += expect_per_net(epochs, kk, "epochs", expect_int)
        problems += expect_per_net(batch_size, kk, "batch_size", expect_int)
        problems += expect_per_net(seeds, kk, "seeds", expect_seed)
        if n_jobs is not None:
            problems += expect_int(n_jobs, "n_jobs")
        if not isinstance(shuffle, (bool, np.bool_)):
            problems.append(Problem(TypeError, r"\bshuffle must be a bool"))
    before = [weights(net) for net in nets]
    clones = [net._clone() for net in nets]
    snaps = (snapshot(X), snapshot(Y))
    status, hs = outcome(lambda: pynn.fit_many(arg, X, Y, loss=loss, optimizers=optimizers, epochs=epochs,
                                               batch_size=batch_size, seeds=seeds, shuffle=shuffle,
                                               callbacks=callbacks, n_jobs=n_jobs), problems)
    assert unchanged(X, snaps[0]) and unchanged(Y, snaps[1])
    if status != "ok":
        assert all(same_weights(net, b) for net, b in zip(nets, before)), "a refused fit_many changed a network"
        return
    assert len(hs) == k
    each = lambda v, i: v[i] if isinstance(v, list) else v  # noqa: E731
    for i, (net, alone) in enumerate(zip(nets, clones)):
        assert net.history is hs[i]
        if ckind == "functions":
            assert logged[i] == list(range(each(epochs, i)))
        kind = each(opt_kinds, i)
        h = alone.fit(X, Y, loss=loss, optimizer=fresh_optimizer(kind), epochs=each(epochs, i),
                      batch_size=each(batch_size, i), seed=each(seeds, i), shuffle=shuffle, deterministic=True)
        if isinstance(opt_kinds, str) and i:
            continue  # one optimizer shared by all: its state is per network, but Adam's is checked alone above
        assert np.array_equal(net._params, alone._params), f"nets[{i}] differs from its fit alone"
        assert hs[i].loss == h.loss


# ---------------------------------------------------------------- fit(sample_weight=, class_weight=, ...)
def expect_weights(s, d, name="sample_weight"):
    arr, problems = as_numeric(s, name)
    if problems:
        return None, problems
    if arr.shape != (d,):
        return None, [Problem(ValueError, rf"\b{name} must have shape \({d},\)")]
    with np.errstate(all="ignore"):
        a = arr.astype(np.float64)
    if not np.isfinite(a).all():
        return None, [Problem(ValueError, rf"\b{name} contains NaN or infinity")]
    if (a < 0).any():
        return None, [Problem(ValueError, rf"\b{name} must be non-negative")]
    if not a.any():
        return None, [Problem(ValueError, rf"\b{name} must not be all zero")]
    return a, []


def draw_sample_weight(data, rng, d):
    kind = usually(data, ["none", "good", "zeros"], ["all-zero", "shape", "empty", "junk", "negative", "nan"], odds=4)
    if kind == "none":
        return None
    shape = (d,)
    values = rng.random(d) * pick(data, [1.0, 10.0, 1e-3, 1e6])
    if kind == "zeros":
        values[rng.random(d) < 0.5] = 0
    elif kind == "all-zero":
        values[:] = 0
    elif kind == "shape":
        shape = pick(data, [(d + 1,), (1, d), (d, 1), ()])
        values = rng.random(shape)
    elif kind == "empty":
        shape, values = (0,), np.zeros(0)
    elif kind == "junk":
        return pick(data, ["w", {0: 1.0}, [None] * d, 3.0])
    elif kind == "negative":
        values[integer(data, 0, d - 1)] = -pick(data, [1.0, 1e-300, 0.5])
    elif kind == "nan":
        values[integer(data, 0, d - 1)] = pick(data, [np.nan, np.inf, -np.inf])
    if one_in(data, 5):
        values = np.round(values)  # integer weights
    return user_array(data, shape, values=values, specials=False)


def draw_class_weight(data, n_classes):
    kind = usually(data, ["none", "dict", "balanced"], ["junk", "bad-key", "bad-weight", "Balanced"], odds=5)
    if kind == "none":
        return None
    if kind == "balanced":
        return "balanced"
    if kind == "Balanced":
        return pick(data, ["Balanced", "auto", ""])
    if kind == "junk":
        return pick(data, [[1.0, 2.0], 3, (0, 1.0)])
    keys = [c for c in range(n_classes) if flag(data)]
    cw = {pick(data, [c, np.int64(c)]): pick(data, [1.0, 2.0, 0.5, 0.0, 3, 1e3]) for c in keys}
    if kind == "bad-key":
        cw[pick(data, [n_classes, -1, 0.0, "0", True, None])] = 1.0
    elif kind == "bad-weight":
        cw[integer(data, 0, n_classes - 1)] = pick(data, [-1.0, np.nan, np.inf, "1", None, 10**400, True])
    return cw


def expect_class_weight(cw, labels, n_classes):
    """(per-example weights or None, problems)."""
    if labels is None:
        return None, [Problem(ValueError, r"\bclass_weight needs a classification loss")]
    if isinstance(cw, str):
        if cw != "balanced":
            return None, [Problem(ValueError, r"\bclass_weight must be a dict \{class: weight\} or 'balanced'")]
        counts = np.bincount(labels, minlength=n_classes)
        present = counts > 0
        per = np.zeros(n_classes)
        per[present] = labels.size / (present.sum() * counts[present])
        return per[labels], []
    if not isinstance(cw, dict):
        return None, [Problem(TypeError, r"\bclass_weight must be a dict \{class: weight\} or 'balanced'")]
    per, problems = np.ones(n_classes), []
    for c, w in cw.items():
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral) or not 0 <= c < n_classes:
            problems.append(Problem(ValueError, rf"\bclass_weight keys must be class indices in "
                                                rf"\[0, {n_classes - 1}\]"))
            continue
        p = expect_number(w, rf"class_weight\[{re.escape(str(c))}\]", low=0)
        problems += p
        if not p:
            per[int(c)] = float(w)
    return (None, problems) if problems else (per[labels], [])


def labels_of(Y, loss, m):
    if loss == "cross_entropy":
        return Y if Y.ndim == 1 else Y.argmax(axis=0)
    if loss == "bce" and m == 1:
        return (Y[0] > 0.5).astype(np.intp)
    return None


@fuzz("fit(sample_weight/class_weight/validation_fraction)", share=3)
def test_fit_weights(backend, data):
    rng = np.random.default_rng(seed(data))
    act, loss = pick(data, PAIRS[:3])
    n, h = integer(data, 1, 3), integer(data, 1, 4)
    m = integer(data, 2, 3) if act == "softmax" else integer(data, 1, 2)
    net = pynn.Network([pynn.Dense(n, h, pick(data, ["tanh", "relu"])), pynn.Dense(h, m, act)],
                       dtype=pick(data, ["float64", "float32"]), backend=backend, seed=seed(data))
    d = usually(data, list(range(1, 11)), [20, 33])
    X = rng.normal(size=(n, d)).astype(net.dtype)
    Y = clean_targets(rng, loss, m, d, indices=flag(data)).astype(net.dtype)
    if Y.ndim == 1:
        Y = Y.astype(np.int64)
    sw = draw_sample_weight(data, rng, d)
    labels = labels_of(Y, loss, m)
    cw = draw_class_weight(data, max(m, 2)) if one_in(data, 2) and (labels is not None or one_in(data, 6)) else None
    vf = usually(data, [None, None, 0.2, 0.5, 0.34], [0.0, 1.0, -0.1, np.nan, "0.2", True, 0.999, 1e-300, 10**400])
    problems, maybe = [], []
    s = None
    if sw is not None:
        s, problems = expect_weights(sw, d)
    n_val = None
    if vf is not None:
        pv = expect_number(vf, "validation_fraction", 0, 1, low_open=True, high_open=True)
        problems += pv
        if not pv:
            n_val = math.ceil(float(vf) * d)
            if n_val < 1 or d - n_val < 1:
                problems.append(Problem(ValueError, r"\bvalidation_fraction=.* leaves an empty training"))
    if cw is not None:
        c, pc = expect_class_weight(cw, labels, max(m, 2))
        problems += pc
        if c is not None and s is not None:
            with np.errstate(all="ignore"):
                c = c * s
        if c is not None and not problems and n_val is None:
            if not np.isfinite(c).all():
                problems.append(Problem(ValueError, r"sample_weight × class_weight contains NaN or infinity"))
            elif not c.any():
                problems.append(Problem(ValueError, r"sample_weight × class_weight must not be all zero"))
        if n_val is not None:  # the training part is drawn from the seed: may be all zero
            maybe.append(Problem(ValueError, r"sample_weight × class_weight must not be all zero"))
    if s is not None and n_val is not None and np.count_nonzero(s) <= n_val:
        maybe.append(Problem(ValueError, r"sample_weight \(the training part\) must not be all zero"))
    kw = dict(loss=loss, optimizer=pynn.SGD(0.05), epochs=integer(data, 1, 2), batch_size=integer(data, 1, d + 1),
              shuffle=flag(data), seed=seed(data))
    for name, v in (("sample_weight", sw), ("class_weight", cw), ("validation_fraction", vf)):
        if v is not None:
            kw[name] = v
    before, snap_w, snap_c = weights(net), snapshot(sw), repr(cw)
    call = lambda: net.fit(X, Y, **kw)  # noqa: E731
    if maybe and not problems:
        status, hist = maybe_outcome(call, maybe)
    else:
        status, hist = outcome(call, problems + maybe, allow=(FloatingPointError,))
    assert unchanged(sw, snap_w) and repr(cw) == snap_c, "fit modified sample_weight or class_weight"
    if status == "rejected":
        assert same_weights(net, before), "a refused fit changed the weights"
        return
    ref_kw = dict(kw, optimizer=pynn.SGD(0.05))
    if s is not None:
        ref_kw["sample_weight"] = s
    ref = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=wb) for l, wb in zip(net.layers, before)],
                       dtype=net.dtype, backend="numpy")
    try:  # (not through outcome(): the reference's run is not a case of its own)
        ref_status, ref_hist = "ok", ref.fit(X, Y, **ref_kw)
    except FloatingPointError:
        ref_status, ref_hist = "raised", None
    assert status == ref_status, f"fit {status} but the reference {ref_status}"
    tol = 10 * NET_TOL[net.dtype]
    for layer, ref_layer in zip(net.layers, ref.layers):
        assert_within(layer.W, ref_layer.W, tol, tol, "W after fit")
        assert_within(layer.b, ref_layer.b, tol, tol, "b after fit")
    if status != "ok":
        return
    assert set(hist.history) == set(ref_hist.history)
    for key in hist.history:
        if key != "time" and "accuracy" not in key:
            assert_within(hist[key], ref_hist[key], tol * max(1.0, *map(abs, ref_hist[key])), tol, key)
    if s is not None and cw is None and vf is None and np.all(s == s[0]):
        # equal weights are no weights
        plain = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=wb)
                              for l, wb in zip(net.layers, before)], dtype=net.dtype, backend="numpy")
        plain.fit(X, Y, **{k: v for k, v in ref_kw.items() if k != "sample_weight"} | {"optimizer": pynn.SGD(0.05)})
        for layer, p in zip(ref.layers, plain.layers):
            assert_within(layer.W, p.W, tol, tol, "W with equal weights")


def maybe_outcome(call, maybe):
    """Like outcome() for a call that may be refused for one of ``maybe`` (what the seed's
    split decides), and must otherwise return."""
    try:
        result = call()
    except (ValueError, TypeError) as e:
        assert any(p.matches(e) for p in maybe), f"raised {type(e).__name__}: {e}\nexpected one of {maybe}"
        return _tally("rejected"), e
    except FloatingPointError as e:
        return _tally("raised"), e
    return _tally("ok"), result
