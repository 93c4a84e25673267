"""Saving and loading: ``net.save(path)`` / ``pynn.load(path)``.

A round trip gives the same network — sizes, activations, dtype, backend and predictions bit for
bit — on every backend and dtype. The file is a plain ``.npz`` NumPy reads without pickle; saving
replaces a file atomically; and anything that is not a good model file is rejected with a
ValueError naming the path, without unpickling or allocating what a lying header claims.

Tests marked "Was a library bug" pin down defects found while writing this file, since fixed.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import re
import stat
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import pynn
import pynn.io as pio
from conftest import NET_TOL, backend_module
from fuzzing import flag, fuzz, integer, pick

ARCHS = {
    "relu-softmax": lambda: [pynn.Dense(3, 5, "relu"), pynn.Dense(5, 4, "softmax")],
    "tanh-leaky-sigmoid": lambda: [pynn.Dense(3, 4, "tanh"), pynn.Dense(4, 4, "leaky_relu"), pynn.Dense(4, 1, "sigmoid")],
    "sigmoid-linear": lambda: [pynn.Dense(3, 6, "sigmoid"), pynn.Dense(6, 2, "linear")],
    "identity": lambda: [pynn.Dense(3, 2, "identity")],
    "elu-gelu-softplus-exp": lambda: [pynn.Dense(3, 4, "elu"), pynn.Dense(4, 5, "gelu"), pynn.Dense(5, 4, "softplus"),
                                      pynn.Dense(4, 2, "exp")],
}


def batch(n_features, n_examples=9, seed=0):
    """Row-major data passed as X.T, as the API tells NumPy users to."""
    return np.random.default_rng(seed).normal(size=(n_examples, n_features)).T


def assert_same_network(got, want):
    assert got.sizes == want.sizes
    assert [l.activation for l in got.layers] == [l.activation for l in want.layers]
    assert got.dtype == want.dtype
    for i, (a, b) in enumerate(zip(got.layers, want.layers)):
        assert a.W.dtype == b.W.dtype == want.dtype
        assert np.array_equal(a.W, b.W), f"layers[{i}].W differs"
        assert np.array_equal(a.b, b.b), f"layers[{i}].b differs"


def rejected(path):
    """pytest.raises for a rejected file: a ValueError whose message names the path."""
    return pytest.raises(ValueError, match=re.escape(repr(os.fspath(path))))


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_is_bit_exact(tmp_path, backend, dtype, arch):
    net = pynn.Network(ARCHS[arch](), dtype=dtype, backend=backend, seed=7)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = pynn.load(path)
    assert_same_network(loaded, net)
    assert loaded.backend == net.backend == backend
    assert loaded.seed == 7
    X = batch(3)
    want = net.predict(X)
    assert np.array_equal(loaded.predict(X), want)
    assert np.array_equal(loaded.predict_classes(X), net.predict_classes(X))
    # the loaded network owns its weights: changing the original does not reach it
    net.layers[0].W = np.zeros_like(net.layers[0].W)
    assert np.array_equal(loaded.predict(X), want)


@pytest.mark.parametrize("hidden, output, loss", [("tanh", "softmax", "cross_entropy"), ("gelu", "exp", "poisson")])
def test_round_trip_after_training(tmp_path, backend, dtype, hidden, output, loss):
    net = pynn.Network.from_sizes([3, 6, 3], hidden=hidden, output=output, dtype=dtype, backend=backend, seed=1)
    X = batch(3, 24, seed=1)
    Y = np.arange(24) % 3 if loss == "cross_entropy" else np.random.default_rng(1).poisson(1.0, (3, 24))
    net.fit(X, Y, loss=loss, optimizer=pynn.Adam(0.05), epochs=3, batch_size=8, seed=0)
    untrained = pynn.Network.from_sizes([3, 6, 3], hidden=hidden, output=output, dtype=dtype, seed=1)
    assert not np.array_equal(net.layers[0].W, untrained.layers[0].W)  # training did move the weights
    path = tmp_path / "trained.npz"
    net.save(path)
    loaded = pynn.load(path)
    assert_same_network(loaded, net)
    assert np.array_equal(loaded.predict(X), net.predict(X))
    J, grads = net.loss_and_grads(X, Y, loss)
    J2, grads2 = loaded.loss_and_grads(X, Y, loss)
    assert J2 == J
    for (dW, db), (dW2, db2) in zip(grads, grads2):
        assert np.array_equal(dW2, dW) and np.array_equal(db2, db)
    # and it trains on exactly as the original does (plain SGD keeps no state)
    for n in (net, loaded):
        n.train_step(X, Y, loss, pynn.SGD(0.1))
    assert_same_network(loaded, net)


@pytest.mark.parametrize("saved_on", ["cpp", "numpy"])
def test_load_with_backend_override(tmp_path, backend, saved_on, dtype):
    backend_module(saved_on)
    net = pynn.Network(ARCHS["tanh-leaky-sigmoid"](), dtype=dtype, backend=saved_on, seed=3)
    path = tmp_path / "m.npz"
    net.save(path)
    loaded = pynn.load(path, backend=backend)
    assert loaded.backend == backend
    assert_same_network(loaded, net)
    X = batch(3)
    got = loaded.predict(X)
    np.testing.assert_allclose(got, net.predict(X), rtol=NET_TOL[dtype], atol=NET_TOL[dtype])
    # bit for bit what a network built on that backend with these weights computes
    same = pynn.Network([pynn.Dense(l.n_in, l.n_out, l.activation, init=(l.W, l.b)) for l in net.layers],
                        dtype=dtype, backend=backend)
    assert np.array_equal(got, same.predict(X))


def test_load_backend_auto_and_unknown(tmp_path):
    path = tmp_path / "m.npz"
    pynn.Network(ARCHS["identity"](), backend="numpy", seed=0).save(path)
    assert pynn.load(path).backend == "numpy"  # the saved backend by default
    assert pynn.load(path, backend="auto").backend == pynn.available_backends()[0]
    with pytest.raises(ValueError, match=r"backend must be one of \['cpp', 'numba', 'numpy', 'auto'\], got 'cuda'"):
        pynn.load(path, backend="cuda")


def test_saved_backend_unavailable_falls_back_to_auto(tmp_path):
    path = tmp_path / "m.npz"
    net = pynn.Network(ARCHS["relu-softmax"](), seed=0)
    net.save(path)
    header, arrays = read_npz(path)
    header["backend"] = "tpu"
    write_npz(path, header, arrays)
    loaded = pynn.load(path)
    assert loaded.backend == pynn.available_backends()[0]
    assert_same_network(loaded, net)


@pytest.mark.parametrize("kind", ["str", "Path"])
def test_path_types_and_name_kept_exactly(tmp_path, kind):
    path = tmp_path / "model.weights"  # no .npz suffix: the file is written exactly where asked
    net = pynn.Network(ARCHS["relu-softmax"](), seed=0)
    net.save(str(path) if kind == "str" else path)
    assert sorted(os.listdir(tmp_path)) == ["model.weights"]
    loaded = pynn.load(path if kind == "str" else str(path))
    X = batch(3)
    assert np.array_equal(loaded.predict(X), net.predict(X))


def test_file_is_plain_numpy_without_pickle(tmp_path, dtype):
    net = pynn.Network(ARCHS["tanh-leaky-sigmoid"](), dtype=dtype, seed=5)
    path = tmp_path / "m.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["W0", "W1", "W2", "b0", "b1", "b2", "header"]
        header = json.loads(bytes(npz["header"]).decode("utf-8"))
        for i, layer in enumerate(net.layers):
            for name, want in ((f"W{i}", layer.W), (f"b{i}", layer.b)):
                a = npz[name]
                assert a.dtype == dtype and a.shape == want.shape
                assert np.array_equal(a, want)
    assert header["format"] == "pynn"
    assert header["format_version"] == 2 and isinstance(header["format_version"], int)
    assert header["dtype"] == dtype.name
    assert header["layers"] == [{"n_in": 3, "n_out": 4, "activation": "tanh"},
                                {"n_in": 4, "n_out": 4, "activation": "leaky_relu"},
                                {"n_in": 4, "n_out": 1, "activation": "sigmoid"}]


# ---------------------------------------------------------------- saving safely
def test_save_over_existing_file_replaces_it_atomically(tmp_path):
    path = tmp_path / "m.npz"
    old = pynn.Network(ARCHS["relu-softmax"](), seed=1)
    new = pynn.Network(ARCHS["relu-softmax"](), seed=2)
    old.save(path)
    old_bytes, old_inode = path.read_bytes(), path.stat().st_ino
    with open(path, "rb") as reader:  # a reader that opened the old file keeps reading the old file whole
        new.save(path)
        assert reader.read() == old_bytes
    assert path.stat().st_ino != old_inode  # renamed into place, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary files left behind
    loaded = pynn.load(path)
    assert_same_network(loaded, new)


class _NumpyThatFailsMidSave:
    """Stands in for NumPy inside pynn.io: savez writes part of a file, then fails."""

    def __init__(self, exc):
        self.exc = exc

    def __getattr__(self, name):
        return getattr(np, name)

    def savez(self, f, **arrays):
        f.write(b"PK\x03\x04 half a model")
        raise self.exc


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupted"])
def test_failing_save_leaves_the_old_file_whole(tmp_path, monkeypatch, exc):
    path = tmp_path / "m.npz"
    good = pynn.Network(ARCHS["relu-softmax"](), seed=1)
    good.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(pio, "np", _NumpyThatFailsMidSave(exc))
    with pytest.raises(type(exc)):
        pynn.Network(ARCHS["relu-softmax"](), seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # the temporary file was removed
    assert_same_network(pynn.load(path), good)


def test_save_into_missing_directory_raises_and_touches_nothing(tmp_path):
    good_path = tmp_path / "good.npz"
    net = pynn.Network(ARCHS["relu-softmax"](), seed=1)
    net.save(good_path)
    before = good_path.read_bytes()
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "no" / "such" / "dir" / "m.npz")
    assert good_path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["good.npz"]


# Was a library bug (reported by the test author, since fixed): io.save writes through tempfile.mkstemp, which creates the file with
# mode 0600, and renames it into place, so every saved model is private to its owner whatever the
# umask (np.save / open() give 0644 under the usual umask 022). Repro:
#     net.save("m.npz"); oct(os.stat("m.npz").st_mode & 0o777)  # -> '0o600'
def test_saved_file_has_the_usual_permissions(tmp_path):
    ref = tmp_path / "ref.bin"
    with open(ref, "wb"):
        pass
    path = tmp_path / "m.npz"
    pynn.Network(ARCHS["identity"](), seed=0).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(ref.stat().st_mode)


# ---------------------------------------------------------------- rejected files
def read_npz(path):
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(bytes(npz["header"]).decode())
        return header, {k: npz[k] for k in npz.files if k != "header"}


def write_npz(path, header, arrays, **raw):
    """An .npz at exactly ``path``: header (a dict, or raw bytes) plus arrays."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        np.savez(f, header=np.frombuffer(hb, np.uint8), **arrays, **raw)
    return path


def npy_bytes(arr=None, *, claim_shape=None, descr="<f4", payload=b""):
    """The bytes of one .npy member; with claim_shape, a header that lies about the shape."""
    b = io.BytesIO()
    if claim_shape is None:
        np.lib.format.write_array(b, arr, allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": False, "shape": claim_shape})
        b.write(payload)
    return b.getvalue()


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def small_header(**kw):
    h = {"format": "pynn", "format_version": 1, "pynn_version": "0.1.0", "dtype": "float32", "backend": "numpy",
         "seed": 0, "layers": [{"n_in": 2, "n_out": 3, "activation": "relu"},
                               {"n_in": 3, "n_out": 1, "activation": "sigmoid"}]}
    h.update(kw)
    return h


def small_arrays(dtype=np.float32, **replace):
    a = {"W0": np.ones((3, 2), dtype), "b0": np.zeros((3, 1), dtype), "W1": np.ones((1, 3), dtype),
         "b1": np.zeros((1, 1), dtype)}
    a.update(replace)
    return {k: v for k, v in a.items() if v is not None}


def test_crafted_files_are_valid_to_begin_with(tmp_path):
    """The helpers below write loadable files unless a test breaks them on purpose."""
    net = pynn.load(write_npz(tmp_path / "ok.npz", small_header(), small_arrays()))
    assert net.sizes == [2, 3, 1]
    members = {"header.npy": npy_bytes(np.frombuffer(json.dumps(small_header()).encode(), np.uint8)),
               **{f"{k}.npy": npy_bytes(v) for k, v in small_arrays().items()}}
    assert pynn.load(write_zip(tmp_path / "ok2.npz", members)).sizes == [2, 3, 1]


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.npz"
    pynn.Network(ARCHS["tanh-leaky-sigmoid"](), seed=0).save(path)
    return path


@pytest.mark.parametrize("cut", [1, 4, 30, 100, 0.25, 0.5, 0.9, -100, -22, -1])
def test_truncated_file(tmp_path, good_file, cut):
    data = good_file.read_bytes()
    n = cut if isinstance(cut, int) and cut > 0 else (len(data) + cut if isinstance(cut, int) else int(len(data) * cut))
    assert 0 < n < len(data)
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:n])
    with rejected(path):
        pynn.load(path)


def test_not_a_model_file(tmp_path):
    cases = {
        "empty.npz": b"",
        "random.npz": np.random.default_rng(0).bytes(3000),
        "text.npz": b"this is not a model\n" * 20,
        "zip-header-only.npz": b"PK\x03\x04" + bytes(100),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with rejected(tmp_path / name):
            pynn.load(tmp_path / name)
    np.save(tmp_path / "plain.npy", np.ones((3, 2), np.float32))
    with rejected(tmp_path / "plain.npy"):
        pynn.load(tmp_path / "plain.npy")
    np.savez(tmp_path / "noheader.npz", **small_arrays())
    with rejected(tmp_path / "noheader.npz"):
        pynn.load(tmp_path / "noheader.npz")
    with rejected(tmp_path):  # a directory
        pynn.load(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        pynn.load(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):
        pynn.load(str(tmp_path / "nope.npz"))


BAD_HEADERS = {
    "format-name": (small_header(format="keras"), r"does not name the pynn format"),
    "no-format": ({k: v for k, v in small_header().items() if k != "format"}, r"does not name the pynn format"),
    "future-version": (small_header(format_version=3), r"format version 3; this pynn reads versions 1 to 2"),
    "version-0": (small_header(format_version=0), r"format version 0"),
    "version-str": (small_header(format_version="1"), r"format version '1'"),
    "no-version": ({k: v for k, v in small_header().items() if k != "format_version"}, r"format version None"),
    "dtype-float16": (small_header(dtype="float16"), r"dtype float16"),
    "dtype-unknown": (small_header(dtype="floaty"), r"floaty"),
    "no-layers": (small_header(layers=[]), r"no layers"),
    "layers-not-list": (small_header(layers={"n_in": 2}), r"no layers"),
    "layer-not-dict": (small_header(layers=[3, 4]), r""),
    "layer-missing-size": (small_header(layers=[{"n_in": 2, "activation": "relu"}]), r"n_out"),
    "layer-size-0": (small_header(layers=[{"n_in": 0, "n_out": 3, "activation": "relu"}]), r"'n_in' must be a positive int, got 0"),
    "unknown-activation": (small_header(layers=[{"n_in": 2, "n_out": 3, "activation": "selu"},
                                                {"n_in": 3, "n_out": 1, "activation": "sigmoid"}]),
                           r"activation must be one of .*got 'selu'"),
    "header-is-list": ([1, 2, 3], r"does not name the pynn format"),
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_bad_header(tmp_path, case):
    header, why = BAD_HEADERS[case]
    path = write_npz(tmp_path / "m.npz", header, small_arrays())
    with rejected(path) as e:
        pynn.load(path)
    assert re.search(why, str(e.value)), str(e.value)


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe not utf-8", b"null", b"42", b'"pynn"'])
def test_header_not_json_object(tmp_path, raw):
    path = write_npz(tmp_path / "m.npz", raw, small_arrays())
    with rejected(path):
        pynn.load(path)


BAD_ARRAYS = {
    "W-transposed": dict(W0=np.ones((2, 3), np.float32)),
    "b-flat": dict(b0=np.zeros(3, np.float32)),
    "W-too-small": dict(W0=np.ones((3, 1), np.float32)),
    "W-too-big": dict(W1=np.ones((2, 3), np.float32)),
    "W-missing": dict(W1=None),
    "b-missing": dict(b0=None),
    "W-float64": dict(W0=np.ones((3, 2), np.float64)),
    "b-float64": dict(b1=np.zeros((1, 1), np.float64)),
    "W-int32": dict(W0=np.ones((3, 2), np.int32)),
    "W-uint8": dict(W0=np.ones((3, 8), np.uint8)),  # same byte count as the float32 (3, 2)
    "W-nan": dict(W0=np.full((3, 2), np.nan, np.float32)),
    "b-inf": dict(b0=np.full((3, 1), np.inf, np.float32)),
}


@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_arrays_that_do_not_match_the_header(tmp_path, case):
    path = write_npz(tmp_path / "m.npz", small_header(), small_arrays(**BAD_ARRAYS[case]))
    with rejected(path):
        pynn.load(path)


def test_float64_arrays_in_a_float64_file_are_fine_but_not_in_float32(tmp_path):
    path = write_npz(tmp_path / "m64.npz", small_header(dtype="float64"), small_arrays(np.float64))
    assert pynn.load(path).dtype == np.float64
    path = write_npz(tmp_path / "m32.npz", small_header(dtype="float32"), small_arrays(np.float64))
    with rejected(path):
        pynn.load(path)


@pytest.mark.parametrize("n_in, n_out", [(10**6, 10**6), (10**9, 1), (1, 10**9), (2**32, 2**32)])
def test_header_claiming_a_huge_layer_is_rejected_without_allocating(tmp_path, n_in, n_out):
    header = small_header(layers=[{"n_in": n_in, "n_out": n_out, "activation": "relu"}])
    path = write_npz(tmp_path / "huge.npz", header, small_arrays())
    assert path.stat().st_size < 10_000
    tracemalloc.start()
    try:
        with rejected(path):
            pynn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"loading a {path.stat().st_size}-byte file allocated {peak} bytes"


# Was a library bug (reported by the test author, since fixed): load checks the JSON header's sizes against the zip directory, but not
# the shape written in each member's own .npy header, which NumPy trusts and allocates before
# reading a byte of data. A small file whose W0.npy claims shape (10**6, 10**6) makes load raise
# MemoryError ("Unable to allocate 3.64 TiB"), not ValueError; with a claim that does fit in
# memory, load allocates it (here 256 MB for an 860-byte file) before rejecting the file. Repro:
# zip a normal header.npy/b0.npy with a W0.npy whose header says {'shape': (10**6, 10**6)} and a
# 24-byte payload (see npy_bytes(claim_shape=...) below), then pynn.load it.
@pytest.mark.parametrize("claim", [(10**6, 10**6), (8000, 8000)])
def test_npy_member_claiming_a_huge_shape_is_rejected_without_allocating(tmp_path, claim):
    header = small_header(layers=[{"n_in": 2, "n_out": 3, "activation": "relu"}])
    path = write_zip(tmp_path / "liar.npz", {
        "header.npy": npy_bytes(np.frombuffer(json.dumps(header).encode(), np.uint8)),
        "W0.npy": npy_bytes(claim_shape=claim, payload=bytes(24)),  # data for (3, 2) float32, header says huge
        "b0.npy": npy_bytes(np.zeros((3, 1), np.float32)),
    })
    assert path.stat().st_size < 10_000
    tracemalloc.start()
    try:
        with rejected(path):
            pynn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"loading a {path.stat().st_size}-byte file allocated {peak} bytes"


class _PickleBomb:
    """Unpickling this creates a marker file: proof that load ran pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("where", ["W0", "header"])
def test_pickled_object_arrays_are_never_unpickled(tmp_path, where):
    marker = tmp_path / "UNPICKLED"
    bomb = np.empty((1, 1), dtype=object)
    bomb[0, 0] = _PickleBomb(marker)
    header = small_header(layers=[{"n_in": 1, "n_out": 1, "activation": "relu"}])
    arrays = {"W0": np.ones((1, 1), np.float32), "b0": np.zeros((1, 1), np.float32)}
    path = tmp_path / "pickle.npz"
    if where == "W0":
        arrays["W0"] = bomb
        write_npz(path, header, arrays)
    else:
        with open(path, "wb") as f:
            np.savez(f, header=bomb, **arrays)
    with zipfile.ZipFile(path) as z:  # the bomb is really in the file, and small enough to pass a size check
        assert z.getinfo(f"{where}.npy").file_size < 4096
    with rejected(path):
        pynn.load(path)
    assert not marker.exists(), "pynn.load unpickled an object array"


# Was a library bug (reported by the test author, since fixed): a model file whose zip directory is damaged in the wrong bytes escapes
# the ValueError: zipfile raises NotImplementedError ("That compression method is not supported",
# "zip file version", "strong encryption") or RuntimeError ("File 'header.npy' is encrypted,
# password required for extraction"), which io.load does not catch. Found by flipping each byte
# of a saved file; repro: set the compression-method field (offset 10 in the first central
# directory record, after b"PK\x01\x02") of a saved model to 99, then pynn.load it.
@pytest.mark.parametrize("field, offset, value", [("compression-method", 10, 99), ("encrypted-flag", 8, 1),
                                                  ("version-needed", 6, 108)])
def test_damaged_zip_directory(tmp_path, good_file, field, offset, value):
    data = bytearray(good_file.read_bytes())
    at = data.find(b"PK\x01\x02")
    assert at > 0
    struct.pack_into("<H", data, at + offset, value)
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data))
    with rejected(path):
        pynn.load(path)


# Was a library bug (reported by the test author, since fixed): io.load builds the Network *after* its try block, so a header whose
# layers do not chain, that puts softmax in a hidden layer, or that has a negative seed raises the
# Network's ValueError without the path or "not a readable pynn model file". Repro: save a 2-3-1
# network, rewrite the header's layers[1].n_in to 4 and W1 to shape (1, 4), pynn.load it.
@pytest.mark.parametrize("case", ["layers-do-not-chain", "softmax-hidden", "negative-seed"])
def test_header_describing_an_impossible_network(tmp_path, case):
    header, arrays = small_header(), small_arrays()
    if case == "layers-do-not-chain":
        header["layers"][1]["n_in"] = 4
        arrays["W1"] = np.ones((1, 4), np.float32)
    elif case == "softmax-hidden":
        header["layers"][0]["activation"] = "softmax"
    else:
        header["seed"] = -1
    path = write_npz(tmp_path / "m.npz", header, arrays)
    with rejected(path):
        pynn.load(path)


# Was a library bug (reported by the test author, since fixed): malformed JSON values escape the ValueError. A header nested deeper
# than Python's recursion limit raises RecursionError from json.loads; a size of Infinity (or
# 1e400) raises OverflowError from int(). Neither is in io.load's except clause. Repro: a header
# of b"[" * 100000 + b"]" * 100000, or small_header() with "n_in": Infinity.
@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,
    json.dumps(small_header()).replace('"n_in": 2,', '"n_in": Infinity,').encode(),
    json.dumps(small_header()).replace('"n_in": 2,', '"n_in": 1e400,').encode(),
], ids=["deeply-nested", "size-Infinity", "size-1e400"])
def test_header_with_pathological_json(tmp_path, raw):
    path = write_npz(tmp_path / "m.npz", raw, small_arrays())
    with rejected(path):
        pynn.load(path)


# ---------------------------------------------------------------- metadata (optional, format 1)
def test_metadata_round_trip(tmp_path, backend):
    net = pynn.Network(ARCHS["relu-softmax"](), backend=backend, seed=0)
    assert net.metadata == {}
    meta = {"features": ["sepal length", "größe", "x,y"], "classes": ["a", 2, 3.5, None, True],
            "scaling": {"mean": [0.25, -1e300], "std": [1.0, 5e-324]}, "target": "species"}
    net.metadata = meta
    path = tmp_path / "m.npz"
    net.save(path)
    header, _ = read_npz(path)
    assert header["metadata"] == meta and header["format_version"] == 2
    loaded = pynn.load(path)
    assert loaded.metadata == meta
    assert loaded.metadata is not meta


def test_file_without_metadata_loads_with_empty_metadata(tmp_path):
    path = write_npz(tmp_path / "m.npz", small_header(), small_arrays())
    assert pynn.load(path).metadata == {}


def test_file_written_by_pynn_0_1_0_still_loads():
    """tests/data/model_format1_pynn0.1.0.npz was written by pynn 0.1.0 (before metadata): a
    3-4-3 tanh/softmax float32 network. Its predictions are recomputed here from its own arrays."""
    path = pathlib.Path(__file__).parent / "data" / "model_format1_pynn0.1.0.npz"
    header, arrays = read_npz(path)
    assert "metadata" not in header and header["pynn_version"] == "0.1.0"
    net = pynn.load(path, backend="numpy")
    assert net.sizes == [3, 4, 3] and net.dtype == np.float32 and net.metadata == {}
    X = batch(3).astype(np.float64)
    Z1 = arrays["W0"].astype(np.float64) @ X + arrays["b0"]
    Z2 = arrays["W1"].astype(np.float64) @ np.tanh(Z1) + arrays["b1"]
    want = np.exp(Z2 - Z2.max(axis=0)) / np.exp(Z2 - Z2.max(axis=0)).sum(axis=0)
    np.testing.assert_allclose(net.predict(X), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad, why", [
    ([1, 2], "be a dict, got list"),
    ({"x": np.float32(1)}, "JSON values"),
    ({"x": float("nan")}, "JSON values"),
    ({"x": (1, 2)}, "would not read back"),
    ({1: "x"}, "would not read back"),
    ({"x": object()}, "JSON values"),
], ids=["list", "numpy-scalar", "nan", "tuple", "int-key", "object"])
def test_metadata_that_json_cannot_store_is_refused_before_writing(tmp_path, bad, why):
    path = tmp_path / "m.npz"
    net = pynn.Network(ARCHS["identity"](), seed=0)
    net.save(path)
    before = path.read_bytes()
    net.metadata = bad
    with pytest.raises(TypeError, match=f"net.metadata must .*{re.escape(why)}"):
        net.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_file_with_malformed_metadata_is_rejected(tmp_path):
    path = write_npz(tmp_path / "m.npz", small_header(metadata=["not", "a", "dict"]), small_arrays())
    with rejected(path):
        pynn.load(path)


# ---------------------------------------------------------------- wrong magic, real crashes, fuzzed damage
@pytest.mark.parametrize("member", ["header", "W0"])
def test_member_with_wrong_npy_magic(tmp_path, good_file, member):
    """A member whose .npy magic string is not NumPy's."""
    with zipfile.ZipFile(good_file) as z:
        members = {name: z.read(name) for name in z.namelist()}
    data = members[f"{member}.npy"]
    assert data.startswith(b"\x93NUMPY")
    members[f"{member}.npy"] = b"\x93NUMPZ" + data[6:]
    path = write_zip(tmp_path / "magic.npz", members)
    with rejected(path):
        pynn.load(path)


def test_killed_mid_save_leaves_the_old_model_loadable(tmp_path):
    """A real crash: a process saving a large model over a good one is killed (SIGKILL) at
    several moments during its saves. The file at the path is always a whole model — the old
    one or the new one — never a broken one (only a stray temporary file may remain)."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "m.npz"
    old = pynn.Network.from_sizes([3, 4, 2], seed=1)
    old.save(path)
    code = (f"import pynn\nnet = pynn.Network.from_sizes([1000, 2000, 10], seed=2)\nprint('ready', flush=True)\n"
            f"while True:\n    net.save({str(path)!r})\n")
    for delay in (0.0, 0.003, 0.011, 0.029, 0.07):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        net = pynn.load(path)  # whole: the old model, or the new one
        assert net.sizes in ([3, 4, 2], [1000, 2000, 10])
        if net.sizes == [3, 4, 2]:
            assert_same_network(net, old)


def _good_files(tmp_path_factory):
    """A few saved models (bytes and the network), made once."""
    if not _GOOD:
        where = tmp_path_factory.mktemp("good")
        for i, (arch, dtype) in enumerate([("relu-softmax", "float32"), ("tanh-leaky-sigmoid", "float64"),
                                           ("identity", "float32")]):
            net = pynn.Network(ARCHS[arch](), dtype=dtype, seed=i)
            net.save(where / f"{i}.npz")
            _GOOD.append(((where / f"{i}.npz").read_bytes(), net))
    return _GOOD


_GOOD: list = []
# JSON values a hostile or damaged header may hold in place of a field's value
JSON_JUNK = [None, 0, -1, 1, 2, 3, 1.5, 1e400, "x", "", "float64", "float16", "relu", "softmax", "pynn", [], [1], {},
             {"n_in": 2}, 10**12, 2**70, True]


@fuzz("load (damaged/crafted files)")
def test_damaged_or_crafted_file_loads_identically_or_is_refused(data, tmp_path_factory):
    """Flip, overwrite, cut or insert bytes of a saved model, or rewrite a field of its header
    with another JSON value: load gives back exactly what the file holds, or raises a
    ValueError naming the path. Never another exception, never a half-read network."""
    from fuzzing import _tally

    blob, net = pick(data, _good_files(tmp_path_factory))
    path = tmp_path_factory.getbasetemp() / "fuzzed.npz"
    if flag(data):  # damage the bytes
        b = bytearray(blob)
        for _ in range(integer(data, 1, 4)):
            kind = pick(data, ["flip", "flip", "byte", "cut", "insert"])
            at = integer(data, 0, len(b) - 1)
            if kind == "flip":
                b[at] ^= 1 << integer(data, 0, 7)
            elif kind == "byte":
                b[at] = integer(data, 0, 255)
            elif kind == "cut":
                del b[at:at + integer(data, 1, 64)]
            else:
                b[at:at] = bytes([integer(data, 0, 255)] * integer(data, 1, 8))
            if not b:
                break
        path.write_bytes(bytes(b))
    else:  # rewrite one field of the header, keeping the arrays
        header, arrays = read_npz(io.BytesIO(blob))
        field = pick(data, ["format", "format_version", "dtype", "backend", "seed", "layers", "layer.n_in",
                            "layer.n_out", "layer.activation", "layer", "extra"])
        value = pick(data, JSON_JUNK)
        if (field == "layer" or field.startswith("layer.")) and header["layers"]:
            i = integer(data, 0, len(header["layers"]) - 1)
            if field == "layer":
                header["layers"][i] = value
            else:
                header["layers"][i][field.split(".")[1]] = value
        elif field == "extra":
            header["surprise"] = value
        else:
            header[field] = value
        raw = json.dumps(header).encode() if value != 1e400 else json.dumps(header).replace("Infinity", "1e400").encode()
        write_npz(path, raw, arrays)
    try:
        got = pynn.load(path)
    except ValueError as e:
        assert repr(os.fspath(path)) in str(e), f"the message does not name the file: {e}"
        _tally("rejected")
        return
    # loaded: it must be exactly what the file holds
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(bytes(npz["header"]).decode())
        stored = {k: npz[k] for k in npz.files if k != "header"}
    assert got.sizes == [header["layers"][0]["n_in"]] + [l["n_out"] for l in header["layers"]]
    assert [l.activation for l in got.layers] == [l["activation"] for l in header["layers"]]
    assert got.dtype == np.dtype(header["dtype"])
    for i, layer in enumerate(got.layers):
        assert np.array_equal(layer.W, stored[f"W{i}"]) and np.array_equal(layer.b, stored[f"b{i}"])
    _tally("ok")
