"""Weight initialisers against torch.nn.init: the same distribution (two-sample Kolmogorov–Smirnov
test, standard deviation, and for the uniform schemes the bound), exact seeding, user arrays and
callables."""

import importlib
import math

import numpy as np
import pytest

import pynn
from conftest import IN_CI


def _oracle(name):
    """The oracles are in the test extra: missing in CI is a failure, elsewhere a skip."""
    return importlib.import_module(name) if IN_CI else pytest.importorskip(name)


torch = _oracle("torch")
stats = _oracle("scipy.stats")

SHAPE = (300, 400)  # (n_out, n_in): fan_in = 400, fan_out = 300, 120,000 draws

# pynn scheme -> the torch.nn.init call that defines it (torch's fan_in is also W.shape[1])
TORCH = {
    "glorot_uniform": lambda w: torch.nn.init.xavier_uniform_(w),
    "glorot_normal": lambda w: torch.nn.init.xavier_normal_(w),
    "he_uniform": lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "he_normal": lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "lecun_uniform": lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="linear"),
    "lecun_normal": lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="linear"),
    "zeros": lambda w: torch.nn.init.zeros_(w),
}
ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal", "kaiming_uniform": "he_uniform",
           "kaiming_normal": "he_normal"}


def _weights(init, seed=0, activation="linear", shape=SHAPE):
    net = pynn.Network([pynn.Dense(shape[1], shape[0], activation, init=init)], dtype="float64", seed=seed)
    return net.layers[0].W.copy(), net.layers[0].b.copy()


def _torch_sample(scheme, shape=SHAPE):
    torch.manual_seed(0)
    return TORCH[scheme](torch.empty(shape, dtype=torch.float64)).numpy().ravel()


@pytest.mark.parametrize("scheme", sorted(TORCH))
def test_init_matches_torch_distribution(scheme):
    W, b = _weights(scheme)
    ref = _torch_sample(scheme)
    assert W.shape == SHAPE and not b.any()
    if scheme == "zeros":
        assert not W.any() and not ref.any()
        return
    # same distribution: KS test between the two samples (seeded, so this is deterministic)
    assert stats.ks_2samp(W.ravel(), ref).pvalue > 1e-3
    # std within 1.5 % (the sampling error of a std over 120,000 draws is ~0.3 %)
    assert W.std() == pytest.approx(ref.std(), rel=0.015)
    assert abs(W.mean()) < 5 * ref.std() / math.sqrt(ref.size)
    if scheme.endswith("uniform"):  # the same bound: both samples reach within 0.1 % of it
        assert np.abs(W).max() == pytest.approx(np.abs(ref).max(), rel=1e-3)


@pytest.mark.parametrize("alias, scheme", sorted(ALIASES.items()))
def test_init_aliases_are_the_same_scheme(alias, scheme):
    assert np.array_equal(_weights(alias)[0], _weights(scheme)[0])


@pytest.mark.parametrize("scheme", sorted(TORCH))
def test_init_same_seed_same_weights(scheme):
    a, b, c = _weights(scheme, seed=7), _weights(scheme, seed=7), _weights(scheme, seed=8)
    assert np.array_equal(a[0], b[0])
    if scheme != "zeros":
        assert not np.array_equal(a[0], c[0])


def test_default_init_is_he_for_relu_and_glorot_otherwise():
    assert np.array_equal(_weights(None, activation="relu")[0], _weights("he_uniform", activation="relu")[0])
    assert np.array_equal(_weights(None, activation="tanh")[0], _weights("glorot_uniform", activation="tanh")[0])


def test_init_per_layer_in_one_network():
    net = pynn.Network([pynn.Dense(50, 40, "relu", init="he_normal"), pynn.Dense(40, 30, "tanh", init="zeros"),
                        pynn.Dense(30, 2, "linear", init="lecun_uniform")], seed=3, dtype="float64")
    assert not net.layers[1].W.any()
    assert np.abs(net.layers[2].W).max() <= math.sqrt(3 / 30)
    assert np.abs(net.layers[0].W).max() > math.sqrt(6 / 50)  # a normal exceeds the uniform's bound


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_init_given_arrays(dtype):
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 1))
    net = pynn.Network([pynn.Dense(4, 3, "tanh", init=(W, b))], dtype=dtype, seed=0)
    assert np.array_equal(net.layers[0].W, W.astype(dtype)) and np.array_equal(net.layers[0].b, b.astype(dtype))


def test_init_callable_gets_the_shape_and_a_seeded_generator():
    calls = []

    def init(shape, rng):
        calls.append(shape)
        return rng.standard_normal(shape) * 0.1

    a = _weights(init, seed=5, shape=(3, 4))[0]
    b = _weights(init, seed=5, shape=(3, 4))[0]
    assert calls == [(3, 4), (3, 4)] and np.array_equal(a, b)
    assert np.array_equal(a, np.random.default_rng(5).standard_normal((3, 4)) * 0.1)


@pytest.mark.parametrize("init, exc, match", [
    ("orthogonal", ValueError, r"init must be None, \(W, b\) or one of .*'lecun_normal'.*got 'orthogonal'"),
    (3, TypeError, r"init must be None, a scheme name, a pair of arrays \(W, b\) or a callable .* got int"),
    (lambda shape, rng: np.zeros((2, 2)), ValueError, r"the array returned by init\(shape, rng\) must have shape \(3, 4\)"),
    (lambda shape, rng: np.full(shape, np.nan), ValueError, r"the array returned by init\(shape, rng\) contains NaN"),
])
def test_init_errors(init, exc, match):
    with pytest.raises(exc, match=match):
        pynn.Network([pynn.Dense(4, 3, "tanh", init=init)], seed=0)
