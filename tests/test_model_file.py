"""The self-describing model file (format 2): scaler, classes, feature names, History and
versions round-trip; format 1 files still load; docs/FORMAT.md's plain-NumPy reader computes
the network's predictions; hostile values of the new members are refused before use.
"""

from __future__ import annotations

import json
import math
import pathlib
import re

import numpy as np
import pytest

import pynn
from pynn.io import history_state
from conftest import require

FORMAT_MD = pathlib.Path(__file__).parents[1] / "docs" / "FORMAT.md"
RNG = np.random.default_rng(0)
X_ROWS = RNG.normal(size=(60, 3)) * [1.0, 50.0, 0.1] + [2.0, 100.0, -1.0]
Y_CLS = RNG.integers(0, 3, 60)


def trained(backend="numpy", dtype="float64", **kw):
    net = pynn.Network.from_sizes([3, 5, 3], hidden="tanh", dtype=dtype, backend=backend, seed=0)
    net.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.Adam(0.01), epochs=4, batch_size=16, seed=1,
            standardize=True, validation_fraction=0.2, **kw)
    net.classes = ["ant", "bee", "cow"]
    net.feature_names = ["a", "b", "c"]
    net.metadata = {"note": "x"}
    return net


def read(path):
    with np.load(path, allow_pickle=False) as f:
        return json.loads(bytes(f["header"]).decode()), {k: f[k] for k in f.files if k != "header"}


def write(path, header, arrays):
    with open(path, "wb") as f:
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return path


def assert_same_history(a, b):
    assert a.epoch == b.epoch and a.stop_reason == b.stop_reason and a.stopped_at == b.stopped_at
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        np.testing.assert_array_equal(a.history[k], b.history[k])  # NaN == NaN here
    assert a.health_epochs == b.health_epochs and len(a.health) == len(b.health)
    for ra, rb in zip(a.health, b.health):
        assert ra.keys() == rb.keys()
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k])


# ---------------------------------------------------------------- round trip
def test_every_new_field_round_trips(tmp_path, backend):
    net = trained(backend)
    path = tmp_path / "m.npz"
    net.save(path)
    header, arrays = read(path)
    assert header["format_version"] == 2 and header["pynn_version"] == pynn.__version__
    assert header["scaler"] == {"n_features": 3}
    assert arrays["scaler_mean"].dtype == np.float64 and arrays["scaler_mean"].shape == (3,)
    loaded = pynn.load(path)
    assert loaded.scaler == net.scaler and loaded.scaler is not net.scaler
    assert np.array_equal(loaded.scaler.mean, net.scaler.mean) and np.array_equal(loaded.scaler.scale, net.scaler.scale)
    assert loaded.classes == ["ant", "bee", "cow"] and loaded.feature_names == ["a", "b", "c"]
    assert loaded.metadata == {"note": "x"}
    assert_same_history(loaded.history, net.history)
    assert len(loaded.history.health) == 2 and len(loaded.history["val_loss"]) == 4
    # raw inputs, the scaler included, give the same predictions bit for bit
    assert np.array_equal(loaded.predict(X_ROWS.T), net.predict(X_ROWS.T))
    # and the loaded network trains on in the same input space
    loaded.fit(X_ROWS.T, Y_CLS, loss="cross_entropy", optimizer=pynn.SGD(0.01), epochs=1, standardize=True)
    assert loaded.scaler.mean.tolist() == net.scaler.mean.tolist()


def test_a_network_without_the_new_fields_saves_nulls(tmp_path):
    net = pynn.Network.from_sizes([3, 2], seed=0)
    net.save(tmp_path / "m.npz")
    header, arrays = read(tmp_path / "m.npz")
    assert (header["scaler"], header["classes"], header["feature_names"], header["history"]) == (None,) * 4
    assert "scaler_mean" not in arrays
    loaded = pynn.load(tmp_path / "m.npz")
    assert loaded.scaler is None and loaded.classes is None and loaded.feature_names is None
    assert loaded.history is None


def test_history_with_non_finite_values_and_a_stop_round_trips(tmp_path):
    net = pynn.Network.from_sizes([3, 2], seed=0)
    h = pynn.History()
    h.append(0, loss=0.5, time=0.1)
    h.append(1, loss=math.nan, time=0.1)
    h._stop("diverged", epoch=2, batch=3, loss=math.inf)
    net.history = h
    net.save(tmp_path / "m.npz")
    header, _ = read(tmp_path / "m.npz")
    assert header["history"]["series"]["loss"] == [0.5, None]  # strict JSON: no NaN
    assert header["history"]["stopped_at"] == {"epoch": 2, "batch": 3, "loss": None}
    back = pynn.load(tmp_path / "m.npz").history
    assert back.loss[0] == 0.5 and math.isnan(back.loss[1])
    assert back.stop_reason == "diverged" and back.stopped_at == {"epoch": 2, "batch": 3, "loss": None}


def test_health_records_too_large_are_left_out(tmp_path):
    net = pynn.Network.from_sizes([3, 2], seed=0)
    h = pynn.History()
    for e in range(20):
        h.append(e, loss=1.0 / (e + 1))
    h.health = [{"weight_norm": [0.123456789012345] * 300_000}]  # ~6 MB of JSON
    h.health_epochs = list(range(20))
    assert len(json.dumps(h.health)) > 4 << 20
    net.history = h
    net.save(tmp_path / "m.npz")
    back = pynn.load(tmp_path / "m.npz").history
    assert back.loss == h.loss and back.health == [] and back.health_epochs == []
    assert history_state(h)["health"] == []


# ---------------------------------------------------------------- format 1
def v1_file(path, dtype=np.float32, **extra):
    """A format-1 file written from the documented v1 layout (header keys and members)."""
    rng = np.random.default_rng(3)
    header = {"format": "pynn", "format_version": 1, "pynn_version": "0.1.0", "dtype": np.dtype(dtype).name,
              "backend": "numpy", "seed": 3, "layers": [{"n_in": 3, "n_out": 4, "activation": "relu"},
                                                        {"n_in": 4, "n_out": 2, "activation": "softmax"}],
              **extra}
    arrays = {"W0": rng.normal(size=(4, 3)).astype(dtype), "b0": rng.normal(size=(4, 1)).astype(dtype),
              "W1": rng.normal(size=(2, 4)).astype(dtype), "b1": rng.normal(size=(2, 1)).astype(dtype)}
    return write(path, header, arrays), arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_format_1_files_still_load(tmp_path, dtype):
    path, arrays = v1_file(tmp_path / "v1.npz", dtype, metadata={"x_mean": [1.0, 2.0, 3.0]})
    net = pynn.load(path)
    assert net.metadata == {"x_mean": [1.0, 2.0, 3.0]}
    assert net.scaler is None and net.classes is None and net.feature_names is None and net.history is None
    X = X_ROWS.T[:, :7]
    Z = arrays["W1"].astype(np.float64) @ np.maximum(arrays["W0"] @ X + arrays["b0"], 0) + arrays["b1"]
    want = np.exp(Z - Z.max(0)) / np.exp(Z - Z.max(0)).sum(0)
    np.testing.assert_allclose(net.predict(X), want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    # a v1 file is read as v1: keys only format 2 defines are not looked at
    path, _ = v1_file(tmp_path / "v1b.npz", dtype, scaler={"n_features": 3}, classes="not a list")
    assert pynn.load(path).scaler is None


# ---------------------------------------------------------------- docs/FORMAT.md's plain-NumPy reader
def format_md_reader():
    """The python block of docs/FORMAT.md, run as it is: it must define predict(path, X)."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    scope: dict = {}
    exec(compile(blocks[0], str(FORMAT_MD), "exec"), scope)  # numpy, json (and scipy's erfc) only
    return scope["predict"]


ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "linear"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear", "exp"])
def test_plain_numpy_reader_predicts_like_the_network(tmp_path, dtype, output):
    require("scipy.special")
    predict = format_md_reader()
    rng = np.random.default_rng(4)
    layers = [pynn.Dense(3, 4, ACTIVATIONS[0])]
    layers += [pynn.Dense(4, 4, act) for act in ACTIVATIONS[1:]]
    layers += [pynn.Dense(4, 2, output)]
    net = pynn.Network(layers, dtype=dtype, seed=5)
    for layer in net.layers:  # weights that reach both sides of every activation's kinks and thresholds
        layer.W = rng.normal(scale=1.5 / np.sqrt(layer.n_in), size=layer.W.shape)
        layer.b = rng.normal(scale=0.5, size=layer.b.shape)
    net.scaler = pynn.Scaler(X_ROWS.mean(axis=0), X_ROWS.std(axis=0))
    path = tmp_path / "m.npz"
    net.save(path)
    X = X_ROWS.T * 1.3
    got = predict(path, X)
    assert got.shape == (2, X.shape[1])
    want = net.predict(X)
    rtol = 1e-12 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    assert np.abs(got - got[:, :1]).max() > 1e-3  # not saturated: the outputs depend on the inputs
    unscaled = net._clone()
    unscaled.scaler = None
    assert np.abs(got - unscaled.predict(X)).max() > 1e-3  # so the scaler mattered


# ---------------------------------------------------------------- hostile new members
def good(tmp_path):
    path = tmp_path / "good.npz"
    trained().save(path)
    return read(path)


def mutate_header(h, key, value):
    h = json.loads(json.dumps(h))
    h[key] = value
    return h


HOSTILE = {
    "scaler-mean-missing": lambda h, a: (h, {k: v for k, v in a.items() if k != "scaler_mean"}),
    "scaler-scale-missing": lambda h, a: (h, {k: v for k, v in a.items() if k != "scaler_scale"}),
    "scaler-wrong-shape": lambda h, a: (h, {**a, "scaler_mean": np.zeros(4)}),
    "scaler-2d": lambda h, a: (h, {**a, "scaler_scale": np.ones((3, 1))}),
    "scaler-float32": lambda h, a: (h, {**a, "scaler_mean": np.zeros(3, np.float32)}),
    "scaler-nan-scale": lambda h, a: (h, {**a, "scaler_scale": np.array([1.0, np.nan, 1.0])}),
    "scaler-zero-scale": lambda h, a: (h, {**a, "scaler_scale": np.array([1.0, 0.0, 1.0])}),
    "scaler-negative-scale": lambda h, a: (h, {**a, "scaler_scale": np.array([1.0, -2.0, 1.0])}),
    "scaler-inf-mean": lambda h, a: (h, {**a, "scaler_mean": np.array([1.0, np.inf, 1.0])}),
    "scaler-object": lambda h, a: (h, {**a, "scaler_mean": np.array([1, "x", None], dtype=object)}),
    "scaler-width": lambda h, a: (mutate_header(h, "scaler", {"n_features": 4}), a),
    "scaler-not-object": lambda h, a: (mutate_header(h, "scaler", [3]), a),
    "classes-count": lambda h, a: (mutate_header(h, "classes", ["a", "b"]), a),
    "classes-duplicate": lambda h, a: (mutate_header(h, "classes", ["a", "a", "b"]), a),
    "classes-not-list": lambda h, a: (mutate_header(h, "classes", "abc"), a),
    "classes-object": lambda h, a: (mutate_header(h, "classes", [{"x": 1}, "b", "c"]), a),
    "features-count": lambda h, a: (mutate_header(h, "feature_names", ["a"]), a),
    "features-not-str": lambda h, a: (mutate_header(h, "feature_names", ["a", 2, "c"]), a),
    "history-list": lambda h, a: (mutate_header(h, "history", [1, 2]), a),
    "history-series-not-object": lambda h, a: (mutate_header(h, "history", {**h["history"], "series": [1]}), a),
    "history-series-str": lambda h, a: (mutate_header(h, "history", {**h["history"], "series": {"loss": ["x"]}}), a),
    "history-series-not-list": lambda h, a: (mutate_header(h, "history", {**h["history"], "series": {"loss": 1}}), a),
    "history-series-too-long": lambda h, a: (mutate_header(h, "history", {**h["history"],
                                                                         "series": {"loss": [1.0] * 99}}), a),
    "history-epoch-negative": lambda h, a: (mutate_header(h, "history", {**h["history"], "epoch": [-1]}), a),
    "history-epoch-bool": lambda h, a: (mutate_header(h, "history", {**h["history"], "epoch": [True]}), a),
    "history-stop-reason": lambda h, a: (mutate_header(h, "history", {**h["history"], "stop_reason": "bored"}), a),
    "history-stopped-at": lambda h, a: (mutate_header(h, "history", {**h["history"], "stopped_at": 3}), a),
    "history-health": lambda h, a: (mutate_header(h, "history", {**h["history"], "health": {"a": 1}}), a),
    "history-health-values": lambda h, a: (mutate_header(h, "history", {**h["history"],
                                                                       "health": [{"dead": [[1]]}]}), a),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_new_members_are_refused(tmp_path, case):
    header, arrays = good(tmp_path)
    header, arrays = HOSTILE[case](header, arrays)
    path = tmp_path / "bad.npz"
    with open(path, "wb") as f:  # object arrays need pickling to be written: the loader must never unpickle
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with pytest.raises(ValueError, match="is not a readable pynn model file"):
        pynn.load(path)


def test_scaler_member_claiming_a_huge_shape_is_refused_before_reading(tmp_path):
    import io as _io
    import zipfile

    header, arrays = good(tmp_path)
    b = _io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": "<f8", "fortran_order": False, "shape": (3,)})
    members = {f"{k}.npy": v for k, v in arrays.items()}
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.npy", _npy(np.frombuffer(json.dumps(header).encode(), np.uint8)))
        for name, arr in members.items():
            z.writestr(name, b.getvalue() + b"\0" * 8 if name == "scaler_mean.npy" else _npy(arr))
    with pytest.raises(ValueError, match="scaler_mean is truncated"):
        pynn.load(path)


def _npy(arr):
    import io as _io

    b = _io.BytesIO()
    np.lib.format.write_array(b, arr, allow_pickle=False)
    return b.getvalue()


# ---------------------------------------------------------------- the attributes' checks
def test_classes_and_feature_names_are_checked_and_failures_change_nothing():
    net = pynn.Network.from_sizes([2, 3], seed=0)
    net.classes, net.feature_names = np.array([3, 1, 2]), ("x", "y")
    assert net.classes == [3, 1, 2] and type(net.classes[0]) is int and net.feature_names == ["x", "y"]
    for bad, err, msg in [(["a", "b"], ValueError, "classes must name 3 classes"),
                          (["a", "a", "b"], ValueError, "classes must be distinct"),
                          ("abc", TypeError, "classes must be a list of labels"),
                          ([1.0, math.nan, 2.0], TypeError, r"classes\[1\] must be a str, int, finite float"),
                          ([None, 1, 2], TypeError, r"classes\[0\]")]:
        with pytest.raises(err, match=msg):
            net.classes = bad
    for bad, err, msg in [(["x"], ValueError, "feature_names must name the 2 input features, got 1"),
                          ("xy", TypeError, "feature_names must be a list of str"),
                          (["x", 1], TypeError, r"feature_names\[1\] must be a str")]:
        with pytest.raises(err, match=msg):
            net.feature_names = bad
    assert net.classes == [3, 1, 2] and net.feature_names == ["x", "y"]
    one = pynn.Network.from_sizes([2, 1], output="sigmoid", seed=0)
    one.classes = [False, True]  # one sigmoid output: two classes
    assert one.classes == [False, True]
    net.classes = net.feature_names = None
    assert net.classes is None and net.feature_names is None
