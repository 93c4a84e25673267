"""Saving and loading networks: a safe, documented file format (no pickle).

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding:

* ``header``: a 1-D uint8 array, the UTF-8 bytes of a JSON object
  ``{"format": "pynn", "format_version": 1, "pynn_version": ..., "dtype": "float32",
  "backend": "cpp", "seed": ..., "layers": [{"n_in": 2, "n_out": 2, "activation": "sigmoid"}, ...],
  "metadata": {...}}``; ``metadata`` (``Network.metadata``: any JSON object, e.g. the feature
  names and class labels that ``pynn train`` records) is optional, and files without it load
  with ``metadata == {}`` (pynn 0.1.0 wrote none); a layer with dropout or weight penalties
  also has ``"dropout"``, ``"l1"`` and/or ``"l2"`` (absent means 0);
* ``W0``, ``b0``, ``W1``, ``b1``, …: each layer's weights ``(n_out, n_in)`` and biases
  ``(n_out, 1)`` in the network's dtype.

Plain NumPy reads it: ``np.load(path, allow_pickle=False)``. ``load`` checks the header, the
shapes, dtypes and sizes (from the zip directory, before reading any array) and rejects anything
else with a ValueError.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import zipfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from numpy.lib import format as npformat

if TYPE_CHECKING:
    from .network import Network

FORMAT = "pynn"
FORMAT_VERSION = 1
_MAX_HEADER = 1 << 20

log = logging.getLogger(__name__)

def _fspath(path: Any) -> str:
    """A path as a str: str, bytes and os.PathLike (pathlib.Path) are all accepted."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}") from None



def check_metadata(metadata: Any, name: str = "metadata") -> dict[str, Any]:
    """``metadata`` if it is a dict that JSON can store as it is (str keys; str, finite numbers,
    bool, None, lists and dicts of them), else a TypeError naming what is wrong."""
    if not isinstance(metadata, dict):
        raise TypeError(f"{name} must be a dict, got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must hold only JSON values (str keys; str, finite numbers, bool, None, "
                        f"lists and dicts), got {e}") from None
    if json.loads(text) != metadata:  # e.g. int keys or tuples, which JSON would silently change
        raise TypeError(f"{name} must hold only JSON values (str keys, lists not tuples): it would not read "
                        "back as it is")
    if len(text) > _MAX_HEADER // 2:
        raise ValueError(f"{name} must be under {_MAX_HEADER // 2} bytes as JSON, got {len(text)}")
    return metadata


def save(net: Network, path: Any) -> None:
    from . import __version__

    path = _fspath(path)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pynn_version": __version__,
        "dtype": net.dtype.name,
        "backend": net.backend,
        "seed": net.seed,
        "layers": [_layer_spec(l) for l in net.layers],
        "metadata": check_metadata(net.metadata, "net.metadata"),
    }
    arrays: dict[str, Any] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, layer in enumerate(net.layers):
        arrays[f"W{i}"] = np.ascontiguousarray(layer.W)
        arrays[f"b{i}"] = np.ascontiguousarray(layer.b)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path``: the old
    file stays whole until the new one is complete, and a failure leaves no temporary file."""
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as open() would
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: the old file stays whole until the new one is complete
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _layer_spec(layer: Dense) -> dict[str, Any]:
    spec: dict[str, Any] = {"n_in": layer.n_in, "n_out": layer.n_out, "activation": layer.activation}
    for key in ("dropout", "l1", "l2"):  # optional: written only when set, read as 0 when absent
        if getattr(layer, key):
            spec[key] = getattr(layer, key)
    return spec


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a readable pynn model file: {why}")


# What a damaged or hostile file can make the zip, JSON and .npy readers raise.
_READ_ERRORS = (KeyError, TypeError, ValueError, EOFError, OSError, zipfile.BadZipFile, UnicodeDecodeError,
                NotImplementedError, RuntimeError, OverflowError, zlib.error)


def _read_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...] | None, dtype: np.dtype,
                 max_bytes: int) -> np.ndarray:
    """Read one .npy member, checking its own header (shape, dtype, order) *before* reading or
    allocating its data; never unpickles."""
    with zf.open(f"{name}.npy") as f:
        version = npformat.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, got_dtype = npformat.read_array_header_1_0(f, max_header_size=4096)
        elif version in ((2, 0), (3, 0)):
            got_shape, fortran, got_dtype = npformat.read_array_header_2_0(f, max_header_size=4096)
        else:
            raise ValueError(f"{name} has .npy version {version}")
        if got_dtype != dtype or (shape is not None and tuple(got_shape) != shape) or len(got_shape) > 2:
            raise ValueError(f"{name} has shape {tuple(got_shape)} and dtype {got_dtype}, expected "
                             f"{shape if shape is not None else '1-D'} and {dtype}")
        count = int(np.prod(got_shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        if nbytes > max_bytes:
            raise ValueError(f"{name} claims {nbytes} bytes, more than allowed")
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{name} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(got_shape, order="F" if fortran else "C").copy()


def _int_field(spec: dict, key: str) -> int:
    v = spec[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 31:
        raise ValueError(f"layer field {key!r} must be a positive int, got {v!r}")
    return v


def load(path: Any, *, backend: str | None = None) -> Network:
    """Read a network written by :meth:`Network.save`.

    ``backend`` defaults to the one the network was saved with when it is available here (so
    predictions match bit for bit), otherwise ``"auto"``. ``net.metadata`` is what was saved
    with the network (``{}`` if nothing was). Anything that is not a well-formed
    pynn model file raises ``ValueError`` naming the path (``FileNotFoundError`` if missing).

    Examples
    --------
    >>> import os, tempfile, numpy as np, pynn
    >>> net = pynn.Network.from_sizes([3, 4, 2], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> net.save(path)
    >>> x = np.ones((3, 1))
    >>> bool((pynn.load(path).predict(x) == net.predict(x)).all())
    True
    """
    from .backends import available_backends
    from .network import Dense, Network

    path = _fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            raw = _read_member(zf, "header", None, np.dtype(np.uint8), _MAX_HEADER)
            header = json.loads(bytes(raw).decode())
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError("the header does not name the pynn format")
            version = header.get("format_version")
            if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
                raise ValueError(f"format version {version!r}; this pynn reads versions 1 to {FORMAT_VERSION}")
            dtype = np.dtype(header["dtype"])
            if dtype not in (np.float32, np.float64):
                raise ValueError(f"dtype {dtype}")
            specs = header["layers"]
            if not isinstance(specs, list) or not specs:
                raise ValueError("no layers")
            # the file's own size bounds what its arrays may hold (they are stored uncompressed)
            budget = os.path.getsize(path)
            layers = []
            for i, spec in enumerate(specs):
                n_in, n_out = _int_field(spec, "n_in"), _int_field(spec, "n_out")
                W = _read_member(zf, f"W{i}", (n_out, n_in), dtype, budget)
                b = _read_member(zf, f"b{i}", (n_out, 1), dtype, budget)
                layers.append(Dense(n_in, n_out, spec["activation"], init=(W, b), dropout=spec.get("dropout", 0.0),
                                    l1=spec.get("l1", 0.0), l2=spec.get("l2", 0.0)))
            seed = header.get("seed")
            metadata = check_metadata(header.get("metadata", {}), "the header's metadata")
            net = Network(layers, dtype=dtype, backend="numpy", seed=seed)
            net.metadata = metadata
    except _READ_ERRORS as e:
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    if backend is None:
        saved = header.get("backend")
        backend = saved if saved in available_backends() else "auto"
        if backend != saved:
            log.info("%s was saved with backend %r, which is not available here; using 'auto'", path, saved)
    return net._with_backend(backend)
