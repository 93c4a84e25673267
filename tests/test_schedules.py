"""Learning-rate schedules against torch.optim.lr_scheduler: the rate of every epoch, in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pynn
from conftest import IN_CI
from pynn import schedules as S

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    if IN_CI:
        raise
    torch = None
pytestmark = pytest.mark.skipif(torch is None, reason="torch (the oracle) is not installed")

EPOCHS = 40


def torch_rates(make, metrics=None, lr=0.3):
    """The lr each epoch uses under a torch scheduler stepped once per epoch."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for e in range(EPOCHS):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(metrics[e]) if metrics is not None else sched.step()
    return out


def pynn_rates(make, metrics=None, lr=0.3):
    opt = pynn.SGD(lr)
    sched = make(opt)
    out = []
    for e in range(EPOCHS):
        out.append(opt.lr)
        sched.step(metrics[e]) if metrics is not None else sched.step()
    return out


L = torch.optim.lr_scheduler if torch is not None else None

CASES = {
    "constant": (lambda o: S.Constant(o), lambda o: L.LambdaLR(o, lambda e: 1.0)),
    "invscaling": (lambda o: S.InverseScaling(o, power=0.5), lambda o: L.LambdaLR(o, lambda e: (e + 1) ** -0.5)),
    "step": (lambda o: S.StepLR(o, step_size=7, gamma=0.3), lambda o: L.StepLR(o, step_size=7, gamma=0.3)),
    "exponential": (lambda o: S.ExponentialLR(o, gamma=0.9), lambda o: L.ExponentialLR(o, gamma=0.9)),
    "cosine": (lambda o: S.CosineWarmup(o, total=30), lambda o: L.CosineAnnealingLR(o, T_max=30)),
    "cosine-eta-min": (lambda o: S.CosineWarmup(o, total=25, eta_min=0.01),
                       lambda o: L.CosineAnnealingLR(o, T_max=25, eta_min=0.01)),
    "cosine-warmup": (lambda o: S.CosineWarmup(o, total=30, warmup=5, start_factor=0.1, eta_min=0.001),
                      lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=5),
                                                   L.CosineAnnealingLR(o, T_max=25, eta_min=0.001)],
                                               milestones=[5])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_schedule_equals_torch(case):
    ours, theirs = CASES[case]
    np.testing.assert_allclose(pynn_rates(ours), torch_rates(theirs), rtol=1e-12, atol=1e-15)


PLATEAU = [
    dict(),
    dict(patience=2, factor=0.5),
    dict(patience=0, factor=0.5, cooldown=2),
    dict(patience=1, threshold=0.1, threshold_mode="abs", min_lr=0.01),
    dict(patience=1, mode="max", threshold=0.05),
]


@pytest.mark.parametrize("kw", PLATEAU, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_reduce_on_plateau_equals_torch(kw):
    rng = np.random.default_rng(3)
    # a metric that improves, stalls, wobbles and improves again
    metrics = list(np.concatenate([np.linspace(1, 0.5, 8), np.full(10, 0.5), 0.5 + 0.01 * rng.normal(size=12),
                                   np.linspace(0.49, 0.3, 10)]))
    ours = pynn_rates(lambda o: S.ReduceLROnPlateau(o, **kw), metrics)
    theirs = torch_rates(lambda o: L.ReduceLROnPlateau(o, **kw), metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert min(ours) < 0.3  # the case does reduce the rate


def test_schedule_drives_fit(backend):
    """In fit, epoch e trains with lr_at(e): a recording callback after the schedule sees it."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(4, 64)), rng.integers(0, 2, size=64)
    net = pynn.Network.from_sizes([4, 8, 2], backend=backend, seed=0)
    opt = pynn.SGD(0.5)
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    seen = []

    class Record(pynn.Callback):
        def on_epoch_begin(self, net, epoch, logs):
            seen.append(opt.lr)

    net.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=6, callbacks=[sched, Record()])
    assert seen == [sched.lr_at(e) for e in range(6)] == [0.5, 0.5, 0.25, 0.25, 0.125, 0.125]


def test_plateau_watches_val_loss_in_fit():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(4, 64)), rng.integers(0, 2, size=64)
    net = pynn.Network.from_sizes([4, 8, 2], seed=0)
    opt = pynn.SGD(1e-6)  # nothing improves by 10 %: the rate drops after patience + 1 epochs
    sched = S.ReduceLROnPlateau(opt, patience=1, factor=0.5, threshold=0.1)
    net.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=4, validation_data=(X, y), callbacks=[sched])
    assert opt.lr == 0.5e-6
    with pytest.raises(KeyError, match="monitors 'accuracy_top5'"):
        net.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=1,
                callbacks=[S.ReduceLROnPlateau(opt, monitor="accuracy_top5")])


def test_bad_arguments():
    with pytest.raises(TypeError, match="optimizer must be a pynn optimizer"):
        S.StepLR("sgd", 2)
    with pytest.raises(ValueError, match="warmup must be below total"):
        S.CosineWarmup(pynn.SGD(0.1), total=5, warmup=5)
    with pytest.raises(ValueError, match="mode must be"):
        S.ReduceLROnPlateau(pynn.SGD(0.1), mode="up")
    assert math.isclose(S.InverseScaling(pynn.SGD(1.0), power=1).lr_at(3), 0.25)
