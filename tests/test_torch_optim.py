"""Optimizer steps against torch.optim, in float64 to 1e-12: SGD (momentum, Nesterov), Adam, AdamW,
RMSprop (centered, momentum, weight decay) and Rprop (iRprop−).

Three ways in, on every backend: the optimizer's Python ``step`` fed a given sequence of gradients
(the backend's ``<opt>_update`` kernel), ``train_step`` on a network whose twin in torch computes
the same loss with autograd (the compiled and jitted fused models on cpp / numba), and ``fit``
over the same batches as a torch loop (their ``run_batches``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import pynn
from conftest import IN_CI

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    if IN_CI:
        raise
    torch = None
pytestmark = pytest.mark.skipif(torch is None, reason="torch (the oracle) is not installed")

RTOL, ATOL = 1e-12, 1e-13

# name: (pynn optimizer, torch optimizer over a parameter list)
CASES = {
    "sgd": (lambda: pynn.SGD(0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "momentum": (lambda: pynn.SGD(0.1, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "nesterov": (lambda: pynn.SGD(0.1, momentum=0.9, nesterov=True),
                 lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    "adam": (lambda: pynn.Adam(0.01, 0.9, 0.99, 1e-8),
             lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8)),
    "adamw": (lambda: pynn.Adam(0.01, 0.9, 0.99, 1e-8, weight_decay=0.05),
              lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)),
    "rmsprop": (lambda: pynn.RMSprop(0.01), lambda ps: torch.optim.RMSprop(ps, lr=0.01)),
    "rmsprop-centered": (lambda: pynn.RMSprop(0.01, centered=True),
                         lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True)),
    "rmsprop-momentum": (lambda: pynn.RMSprop(0.01, momentum=0.9),
                         lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.9)),
    # alpha 0.3: torch's lerp takes its other branch; weight decay is coupled (added to g)
    "rmsprop-all": (lambda: pynn.RMSprop(0.02, alpha=0.3, eps=1e-6, weight_decay=0.01, momentum=0.5, centered=True),
                    lambda ps: torch.optim.RMSprop(ps, lr=0.02, alpha=0.3, eps=1e-6, weight_decay=0.01, momentum=0.5,
                                                   centered=True)),
    "rprop": (lambda: pynn.Rprop(0.01), lambda ps: torch.optim.Rprop(ps, lr=0.01)),
    "rprop-settings": (lambda: pynn.Rprop(0.05, etas=(0.3, 1.5), step_sizes=(0.01, 0.06)),
                       lambda ps: torch.optim.Rprop(ps, lr=0.05, etas=(0.3, 1.5), step_sizes=(0.01, 0.06))),
}
case = pytest.mark.parametrize("name", list(CASES))

SIZES = [4, 6, 3]  # tanh hidden layer, softmax output, cross-entropy on class indices


def network(backend):
    return pynn.Network.from_sizes(SIZES, hidden="tanh", output="softmax", dtype="float64", backend=backend, seed=3)


def torch_twin(net):
    """The network's weights as torch leaf tensors [W0, b0, W1, b1, ...], and its loss."""
    ps = [torch.tensor(a.copy(), requires_grad=True) for layer in net.layers for a in (layer.W, layer.b)]

    def loss(X, y):
        A = torch.from_numpy(X)
        for i in range(0, len(ps), 2):
            Z = ps[i] @ A + ps[i + 1]
            A = torch.tanh(Z) if i + 2 < len(ps) else Z
        return torch.nn.functional.cross_entropy(Z.T, torch.from_numpy(y))  # mean over examples

    return ps, loss


def assert_same(net, ps):
    for layer, W, b in zip(net.layers, ps[::2], ps[1::2]):
        np.testing.assert_allclose(layer.W, W.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(layer.b, b.detach().numpy(), rtol=RTOL, atol=ATOL)


def data(rng, d):
    return rng.normal(size=(SIZES[0], d)), rng.integers(0, SIZES[-1], size=d)


@case
def test_python_step_equals_torch(backend, rng, name):
    """The same gradients fed to the optimizer's ``step`` (the backend's update kernel) and to
    torch: the parameters agree after every step."""
    make, make_torch = CASES[name]
    net, opt = network(backend), make()
    ps, _ = torch_twin(net)
    topt = make_torch(ps)
    for _ in range(8):
        g = rng.normal(size=net.n_params)
        g[::7] = 0  # zero gradients: Rprop's "no sign" case
        net._grads[...] = g
        opt.step(net)
        for layer, W, b in zip(net.layers, ps[::2], ps[1::2]):
            size = layer.W.size + layer.b.size
            W.grad = torch.from_numpy(g[:layer.W.size].reshape(W.shape).copy())
            b.grad = torch.from_numpy(g[layer.W.size:size].reshape(b.shape).copy())
            g = g[size:]
        topt.step()
        assert_same(net, ps)


@case
def test_train_step_equals_torch(backend, rng, name):
    """A network and its torch twin, stepped on the same batches: same loss, same weights."""
    make, make_torch = CASES[name]
    net, opt = network(backend), make()
    ps, loss = torch_twin(net)
    topt = make_torch(ps)
    for step in range(8):
        X, y = data(rng, 5 + step)
        J = net.train_step(X, y, "cross_entropy", opt)
        topt.zero_grad()
        TJ = loss(X, y)
        TJ.backward()
        topt.step()
        np.testing.assert_allclose(J, TJ.item(), rtol=RTOL)
        assert_same(net, ps)


@case
def test_fit_equals_torch(backend, rng, name):
    """``fit`` without shuffling (batches 8, 8, 4) for three epochs equals the torch loop; Rprop
    trains full-batch."""
    make, make_torch = CASES[name]
    net, opt = network(backend), make()
    ps, loss = torch_twin(net)
    topt = make_torch(ps)
    X, y = data(rng, 20)
    bs = None if name.startswith("rprop") else 8
    h = net.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=bs, shuffle=False)
    for epoch in range(3):
        total = 0.0
        for s in range(0, 20, bs or 20):
            topt.zero_grad()
            TJ = loss(X[:, s:s + (bs or 20)], y[s:s + (bs or 20)])
            TJ.backward()
            topt.step()
            total += TJ.item() * len(y[s:s + (bs or 20)])
        np.testing.assert_allclose(h.loss[epoch], total / 20, rtol=RTOL)
    assert_same(net, ps)


def test_rprop_sign_flips_by_hand(backend):
    """iRprop− on four parameters with hand-picked gradient signs (lr 0.1, etas 0.5 / 1.2):

    step 1: no previous sign: the step size stays 0.1 and each parameter moves by it;
    step 2: signs kept on parameters 0 and 1 (step 0.12), flipped on 2 and 3 (step 0.05, and
            those two do not move: their gradient counts as 0);
    step 3: parameter 0 keeps its sign again (0.144); 1 flips now (0.06, no move); 2 and 3 have
            no previous sign (it was zeroed), so their step stays 0.05 and they move by it."""
    net = pynn.Network([pynn.Dense(1, 2, "linear")], dtype="float64", backend=backend, seed=0)  # W (2,1), b (2,1)
    net._params[...] = 0
    opt = pynn.Rprop(0.1, etas=(0.5, 1.2), step_sizes=(1e-6, 50))
    moves = []
    for g in ([1.0, -2.0, 3.0, -4.0], [5.0, -6.0, -7.0, 8.0], [1.0, 1.0, -1.0, 1.0]):
        before = net._params.copy()
        net._grads[...] = g
        opt.step(net)
        moves.append(net._params - before)
    np.testing.assert_allclose(moves[0], [-0.1, 0.1, -0.1, 0.1], rtol=1e-15)
    np.testing.assert_allclose(moves[1], [-0.12, 0.12, 0.0, 0.0], rtol=1e-15)
    np.testing.assert_allclose(moves[2], [-0.144, 0.0, 0.05, -0.05], rtol=1e-15)
    np.testing.assert_allclose(opt.state(net)["step_size"], [0.144, 0.06, 0.05, 0.05], rtol=1e-15)


def test_rprop_warns_on_mini_batches(rng, caplog):
    """Rprop is full-batch: fit logs a warning for smaller batches, and none for batch_size=None."""
    X, y = data(rng, 20)
    with caplog.at_level(logging.WARNING, logger="pynn"):
        network("numpy").fit(X, y, loss="cross_entropy", optimizer=pynn.Rprop(), batch_size=8)
    assert "full-batch" in caplog.text and "batch_size=None" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pynn"):
        network("numpy").fit(X, y, loss="cross_entropy", optimizer=pynn.Rprop(), batch_size=None)
        network("numpy").fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(), batch_size=8)
    assert caplog.text == ""
