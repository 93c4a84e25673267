"""``Network.to_onnx``: the exported file, run by onnxruntime, predicts what the network predicts.

Every activation (hidden and output) and both dtypes, against ``net.predict`` (itself tested
against the NumPy reference): float32 to float32 tolerance, float64 to float64 rounding. The
ONNX input is row-major ``(n_examples, n_features)``, the transpose of pynn's convention.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import pynn
from conftest import require

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "linear", "identity"]
OUTPUT = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "exp", "linear", "softmax"]
TOL = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6), np.dtype(np.float64): dict(rtol=1e-13, atol=1e-14)}
# onnxruntime has no float64 Erf: a float64 network's gelu is computed in float32 there
GELU64_TOL = dict(rtol=1e-6, atol=1e-7)


def session(path):
    ort = require("onnxruntime")
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def data(n, n_features, dtype, seed=0):
    """Row-major data, as an ONNX runtime takes it; scaled so relu and leaky_relu see both signs."""
    return (3 * np.random.default_rng(seed).normal(size=(n, n_features))).astype(dtype)


@pytest.mark.parametrize("output", OUTPUT)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_onnxruntime_predicts_what_the_network_predicts(tmp_path, dtype, hidden, output):
    require("onnx")
    net = pynn.Network([pynn.Dense(5, 7, hidden), pynn.Dense(7, 6, hidden), pynn.Dense(6, 3, output)],
                       dtype=dtype, backend="numpy", seed=3)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    s = session(path)
    (inp,), (out,) = s.get_inputs(), s.get_outputs()
    assert (inp.name, out.name) == ("X", "Y")
    assert inp.shape[1] == 5 and out.shape[1] == 3 and not isinstance(inp.shape[0], int)  # free batch size
    assert inp.type == ("tensor(float)" if dtype == np.float32 else "tensor(double)")
    for n in (1, 4, 33):  # any batch size
        X = data(n, 5, dtype, seed=n)
        got = s.run(None, {"X": X})[0]
        want = net.predict(X.T).T
        assert got.dtype == dtype and got.shape == (n, 3)
        tol = GELU64_TOL if dtype == np.float64 and "gelu" in (hidden, output) else TOL[dtype]
        np.testing.assert_allclose(got, want, **tol)


def test_every_backend_exports_the_same_weights(tmp_path, backend, dtype):
    require("onnx")
    net = pynn.Network.from_sizes([4, 16, 16, 5], hidden="tanh", dtype=dtype, backend=backend, seed=1)
    X = data(50, 4, dtype)
    net.fit(X.T, np.arange(50) % 5, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=2, batch_size=8)
    net.to_onnx(tmp_path / "net.onnx")
    got = session(tmp_path / "net.onnx").run(None, {"X": X})[0]
    np.testing.assert_allclose(got, net.predict(X.T).T, **TOL[dtype])


def test_the_graph(tmp_path):
    onnx = require("onnx")
    net = pynn.Network.from_sizes([2, 3, 1], hidden="relu", output="sigmoid", seed=0)
    net.metadata = {"features": ["a", "b"]}
    model = net.to_onnx(tmp_path / "m.onnx", opset=13, input_name="features", output_name="p")
    loaded = onnx.load(tmp_path / "m.onnx")
    assert loaded == model
    onnx.checker.check_model(loaded, full_check=True)
    assert [n.op_type for n in loaded.graph.node] == ["Gemm", "Relu", "Gemm", "Sigmoid"]
    assert all(a.name != "transB" or a.i == 1 for n in loaded.graph.node for a in n.attribute)
    assert loaded.opset_import[0].version == 13 and loaded.producer_name == "pynn"
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    assert np.array_equal(weights["W0"], net.layers[0].W) and np.array_equal(weights["b1"], net.layers[1].b[:, 0])
    props = {p.key: p.value for p in loaded.metadata_props}
    assert json.loads(props["pynn_metadata"]) == net.metadata and json.loads(props["pynn_sizes"]) == [2, 3, 1]
    assert "(n_examples, n_features)" in loaded.doc_string
    X = data(3, 2, np.float32)
    got = session(tmp_path / "m.onnx").run(["p"], {"features": X})[0]
    np.testing.assert_allclose(got, net.predict(X.T).T, **TOL[np.dtype(np.float32)])


def test_without_a_path_only_builds(tmp_path):
    require("onnx")
    model = pynn.Network.from_sizes([2, 2], seed=0).to_onnx()
    assert model.graph.node[0].op_type == "Gemm" and os.listdir(tmp_path) == []


@pytest.mark.parametrize("kw, exc, match", [
    (dict(opset=12), ValueError, "opset must be an int >= 13, got 12"),
    (dict(opset=17.0), TypeError, "opset must be an int"),
    (dict(input_name=""), TypeError, "input_name must be a non-empty str"),
    (dict(input_name="Y"), ValueError, "input_name and output_name must differ"),
])
def test_bad_arguments(tmp_path, kw, exc, match):
    with pytest.raises(exc, match=match):
        pynn.Network.from_sizes([2, 2], seed=0).to_onnx(tmp_path / "m.onnx", **kw)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("act", ["elu", "gelu", "softplus", "exp"])
def test_the_newer_activations_over_their_whole_range(tmp_path, dtype, act):
    # pre-activations from -60 to 60 (exp: to 40): softplus's linear branch above 20, elu's and
    # softplus's tails, where a naive log(1 + exp(z)) or exp(z) - 1 would lose the value
    require("onnx")
    net = pynn.Network([pynn.Dense(1, 1, act)], dtype=dtype, backend="numpy", seed=0)
    net.layers[0].W, net.layers[0].b = np.ones((1, 1)), np.zeros((1, 1))
    top = 40 if act == "exp" else 60
    X = np.concatenate([np.linspace(-top, top, 241), [-1e-9, 1e-9, 20, 20.5, 19.5]]).astype(dtype)[:, None]
    net.to_onnx(tmp_path / "net.onnx")
    got = session(tmp_path / "net.onnx").run(None, {"X": X})[0]
    tol = GELU64_TOL if (act, np.dtype(dtype)) == ("gelu", np.float64) else TOL[np.dtype(dtype)]
    np.testing.assert_allclose(got, net.predict(X.T).T, **tol)
