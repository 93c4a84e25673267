"""Dropout per layer. Oracles: torch.nn.Dropout's semantics (scale 1/(1-p), the expectation kept,
off in eval), a binomial test of the drop rate, PyTorch autograd through the same mask, central
finite differences with the mask fixed, and the NumPy reference on every backend."""

import math

import numpy as np
import pytest

import pynn
from pynn.backends import get_backend

from conftest import NET_TOL

torch = pytest.importorskip("torch")


def dropout_net(backend="numpy", dtype="float64", p=(0.3, 0.5), seed=0, hidden=("relu", "tanh")):
    return pynn.Network([pynn.Dense(5, 16, hidden[0], dropout=p[0]), pynn.Dense(16, 8, hidden[1], dropout=p[1]),
                         pynn.Dense(8, 3, "softmax")], dtype=dtype, backend=backend, seed=seed)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drop_rate_is_binomial(p):
    # 10^6 draws: the fraction dropped lies within 5 standard deviations of p
    M = np.empty((1000, 1000))
    get_backend("numpy").dropout_mask(7, 0, 0, p, M)
    n = M.size
    assert abs(np.mean(M == 0) - p) < 5 * math.sqrt(p * (1 - p) / n)
    # masks of other steps and layers are (nearly) uncorrelated with this one
    M2 = np.empty_like(M)
    get_backend("numpy").dropout_mask(7, 1, 0, p, M2)
    both = np.mean((M == 0) & (M2 == 0))
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n)


@pytest.mark.parametrize("dtype,tdtype", [(np.float32, "float32"), (np.float64, "float64")])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_scale_equals_torch_dropout(backend, dtype, tdtype, p):
    # torch.nn.Dropout keeps x / (1 - p) exactly; our kept mask values are the same number
    drop = torch.nn.Dropout(p).train()
    kept = drop(torch.ones(4096, dtype=getattr(torch, tdtype)))
    scale = kept[kept != 0][0].item()
    M = np.empty((64, 64), dtype, order="F")
    get_backend(backend).dropout_mask(3, 4, 1, p, M)
    np.testing.assert_array_equal(np.unique(M), np.array([0, scale], dtype))


def test_expectation_is_preserved(rng):
    # averaged over many masks, A ⊙ M is A (torch.nn.Dropout's point of scaling in training)
    A = rng.uniform(0.5, 1.5, size=(20, 10))
    M = np.empty_like(A)
    total = np.zeros_like(A)
    for step in range(4000):
        get_backend("numpy").dropout_mask(11, step, 0, 0.4, M)
        total += A * M
    np.testing.assert_allclose(total / 4000, A, rtol=0.06)


def test_off_in_forward_loss_and_evaluate(backend, rng):
    # torch's eval mode: no dropout; a dropout net predicts as the same net without it
    net = dropout_net(backend)
    plain = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=(l.W, l.b)) for l in net.layers],
                         dtype="float64", backend=backend)
    X, y = rng.normal(size=(5, 30)), rng.integers(0, 3, 30)
    np.testing.assert_allclose(net.predict(X), plain.predict(X), rtol=1e-12, atol=1e-15)
    assert net.loss(X, y, "cross_entropy") == pytest.approx(plain.loss(X, y, "cross_entropy"), rel=1e-12)
    assert net.evaluate(X, y, "cross_entropy") == pytest.approx(plain.evaluate(X, y, "cross_entropy"), rel=1e-12)
    J, g = net.loss_and_grads(X, y, "cross_entropy")
    Jp, gp = plain.loss_and_grads(X, y, "cross_entropy")
    assert J == pytest.approx(Jp, rel=1e-12)
    for a, b in zip(g, gp):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-15)
    # ... but a training step does drop: its loss differs from the deterministic one
    assert net.train_step(X, y, "cross_entropy", pynn.SGD(1e-300)) != pytest.approx(J, rel=1e-6)


def test_training_gradient_equals_torch_autograd_through_the_same_mask(rng):
    net = dropout_net(p=(0.3, 0.5))
    X, y = rng.normal(size=(5, 12)), rng.integers(0, 3, 12)
    step = 5
    net._drop_step[0] = step
    J = net._loss_and_grads(X, y, "cross_entropy", train=True)
    grads = [(dW.copy(), db.copy()) for dW, db in zip(net._dW, net._db)]
    ref = get_backend("numpy")
    masks = []
    for l, h in enumerate((16, 8)):
        M = np.empty((h, 12))
        ref.dropout_mask(net._drop_seed, step, l, net.layers[l].dropout, M)
        masks.append(torch.tensor(M))
    Ws = [torch.tensor(l.W, requires_grad=True) for l in net.layers]
    bs = [torch.tensor(l.b, requires_grad=True) for l in net.layers]
    A = torch.tensor(X)
    A = torch.relu(Ws[0] @ A + bs[0]) * masks[0]
    A = torch.tanh(Ws[1] @ A + bs[1]) * masks[1]
    Z = Ws[2] @ A + bs[2]
    loss = torch.nn.functional.cross_entropy(Z.T, torch.tensor(y))
    loss.backward()
    assert J == pytest.approx(loss.item(), rel=1e-12)
    for (dW, db), W, b in zip(grads, Ws, bs):
        np.testing.assert_allclose(dW, W.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, b.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_gradcheck_with_a_fixed_mask(backend, rng):
    # central differences of the training loss at one step (the same masks throughout)
    net = dropout_net(backend, hidden=("tanh", "sigmoid"))
    X, y = rng.normal(size=(5, 9)), rng.integers(0, 3, 9)
    net._drop_step[0] = 3
    net._loss_and_grads(X, y, "cross_entropy", train=True)
    g = net._grads.copy()
    eps, worst = 1e-6, 0.0
    for i in range(0, net._params.size, 7):
        keep = net._params[i]
        net._params[i] = keep + eps
        up = net._loss_and_grads(X, y, "cross_entropy", train=True)
        net._params[i] = keep - eps
        down = net._loss_and_grads(X, y, "cross_entropy", train=True)
        net._params[i] = keep
        fd = (up - down) / (2 * eps)
        worst = max(worst, abs(fd - g[i]) / max(1e-8, abs(fd) + abs(g[i])))
    assert worst < 1e-6
    assert net._drop_step[0] == 3  # computing a loss does not advance the mask stream


@pytest.mark.parametrize("path", ["fused", "per_kernel"])
def test_fit_equals_reference_on_every_backend(backend, dtype, path, rng):
    # the fused models (C++, Numba) and the per-kernel loop draw the same masks as the reference
    X = rng.normal(size=(5, 64)).astype(dtype)
    y = rng.integers(0, 3, 64)
    nets = [dropout_net(b, dtype) for b in ("numpy", backend)]
    if path == "per_kernel":
        nets[1]._model = None
    hs = [n.fit(X, y, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=3, batch_size=16, seed=3)
          for n in nets]
    np.testing.assert_allclose(hs[1].loss, hs[0].loss, rtol=10 * NET_TOL[dtype])
    np.testing.assert_allclose(nets[1]._params, nets[0]._params, rtol=10 * NET_TOL[dtype],
                               atol=10 * NET_TOL[dtype])
    J = [n.train_step(X, y, "cross_entropy", pynn.SGD(0.1)) for n in nets]
    assert J[1] == pytest.approx(J[0], rel=10 * NET_TOL[dtype])
    assert nets[0]._drop_step[0] == nets[1]._drop_step[0] == 13


def test_same_seed_same_training(backend, rng):
    X, y = rng.normal(size=(5, 40)), rng.integers(0, 3, 40)
    runs = []
    for fit_seed in (1, 1, 2):
        net = dropout_net(backend)
        net.fit(X, y, loss="cross_entropy", optimizer=pynn.SGD(0.1), epochs=2, batch_size=8, seed=fit_seed)
        runs.append(net._params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    # without a fit seed the network's seed sets the stream
    a, b = dropout_net(backend, seed=4), dropout_net(backend, seed=4)
    for net in (a, b):
        net.train_step(X, y, "cross_entropy", pynn.SGD(0.1))
    np.testing.assert_array_equal(a._params, b._params)


def test_numba_fused_model_takes_dropout_nets():
    pytest.importorskip("numba")
    from pynn.backends import numba_fused

    assert isinstance(dropout_net("numba")._model, numba_fused.Model)


@pytest.mark.parametrize("p,exc", [(1.0, ValueError), (-0.1, ValueError), ("half", TypeError)])
def test_bad_dropout(p, exc):
    with pytest.raises(exc, match="dropout must be a number in"):
        pynn.Dense(3, 4, dropout=p)


def test_no_dropout_on_the_output_layer():
    with pytest.raises(ValueError, match=r"layers\[1\] is the output layer and cannot have dropout"):
        pynn.Network([pynn.Dense(3, 4, "relu"), pynn.Dense(4, 2, "softmax", dropout=0.5)])


def test_save_and_load_keep_the_rates(tmp_path, rng):
    net = dropout_net("numpy", p=(0.25, 0.0))
    net.save(tmp_path / "m.npz")
    back = pynn.load(tmp_path / "m.npz")
    assert [l.dropout for l in back.layers] == [0.25, 0.0, 0.0]
    X = rng.normal(size=(5, 7))
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
