"""Saving and loading networks: a safe, documented file format (no pickle).

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding:

* ``header``: a 1-D uint8 array, the UTF-8 bytes of a JSON object
  ``{"format": "pynn", "format_version": 2, "pynn_version": ..., "dtype": "float32",
  "backend": "cpp", "seed": ..., "layers": [{"n_in": 2, "n_out": 2, "activation": "sigmoid"}, ...],
  "metadata": {...}, "scaler": null or {"n_features": n}, "classes": null or [...],
  "feature_names": null or [...], "history": null or {...}}``; ``metadata``
  (``Network.metadata``: any JSON object) is optional, and files without it load with
  ``metadata == {}`` (pynn 0.1.0 wrote none); a layer with dropout or weight penalties also has
  ``"dropout"``, ``"l1"`` and/or ``"l2"`` (absent means 0);
* ``W0``, ``b0``, ``W1``, ``b1``, …: each layer's weights ``(n_out, n_in)`` and biases
  ``(n_out, 1)`` in the network's dtype;
* with a scaler, ``scaler_mean`` and ``scaler_scale``: float64 ``(n_features,)``; an input
  ``x`` is fed to the first layer as ``(x - scaler_mean) / scaler_scale``.

Format 1 (what pynn wrote before format 2) is format 2 without the four new keys and members; it is
still read. docs/FORMAT.md describes the layout in full, with a plain-NumPy reader. ``load``
checks the header, the shapes, dtypes and sizes (from the zip directory, before reading any
array) and rejects anything else with a ValueError.
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
    from .network import Dense, Network
    from .training import History

FORMAT = "pynn"
FORMAT_VERSION = 2
_MAX_HEADER = 1 << 23  # 8 MB: the metadata (< 512 kB) and the History (< 4 MB) with room to spare
_MAX_METADATA = 1 << 19
_MAX_HISTORY = 1 << 22
STOP_REASONS = (None, "stop_training", "diverged", "interrupted", "converged")

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
    if len(text) > _MAX_METADATA:
        raise ValueError(f"{name} must be under {_MAX_METADATA} bytes as JSON, got {len(text)}")
    return metadata


def _json_floats(value: Any) -> Any:
    """``value`` with every non-finite float as None (strict JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_floats(v) for v in value]
    if isinstance(value, np.generic):
        return _json_floats(value.item())
    return value


def history_state(history: History | None) -> dict[str, Any] | None:
    """The History as JSON: ``{"epoch": [...], "series": {"loss": [...], ...}, "stop_reason",
    "stopped_at", "health", "health_epochs"}``; non-finite values become null. The per-layer
    health records are left out (``"health": []``) when they would take more than 4 MB, and the
    whole History is (None, with a log message) if even that is too large."""
    if history is None:
        return None
    state = {"epoch": [int(e) for e in history.epoch],
             "series": {str(k): list(v) for k, v in history.history.items()},
             "stop_reason": history.stop_reason, "stopped_at": history.stopped_at,
             "health": history.health, "health_epochs": [int(e) for e in history.health_epochs]}
    state = _json_floats(state)
    if len(json.dumps(state)) > _MAX_HISTORY:
        state["health"], state["health_epochs"] = [], []
        log.info("the History's health records are too large to save with the model; left out")
        if len(json.dumps(state)) > _MAX_HISTORY:
            log.info("the History is too large to save with the model; left out")
            return None
    return state


def _number_list(value: Any, what: str) -> list[float]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {type(value).__name__}")
    for v in value:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"{what} must hold numbers or null, got {v!r}")
    return [np.nan if v is None else float(v) for v in value]


def _int_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise ValueError(f"{what} must be a list of non-negative ints")
    return value


def history_from_state(state: Any) -> History:
    """The History that :func:`history_state` wrote; ValueError for anything else."""
    from .training import History

    if not isinstance(state, dict):
        raise ValueError(f"history must be an object or null, got {type(state).__name__}")
    h = History()
    h.epoch = _int_list(state.get("epoch"), "history.epoch")
    series = state.get("series")
    if not isinstance(series, dict):
        raise ValueError("history.series must be an object of lists")
    for k, v in series.items():
        h.history[k] = _number_list(v, f"history.series[{k!r}]")
        if len(h.history[k]) > len(h.epoch):
            raise ValueError(f"history.series[{k!r}] has more values than there are epochs")
    if state.get("stop_reason") not in STOP_REASONS:
        raise ValueError(f"history.stop_reason must be one of {list(STOP_REASONS)}, got {state.get('stop_reason')!r}")
    h.stop_reason = state["stop_reason"]
    stopped_at = state.get("stopped_at")
    if stopped_at is not None and not isinstance(stopped_at, dict):
        raise ValueError("history.stopped_at must be an object or null")
    h.stopped_at = stopped_at
    health = state.get("health", [])
    if not isinstance(health, list) or not all(isinstance(r, dict) for r in health):
        raise ValueError("history.health must be a list of objects")
    h.health = [{k: _number_list(v, f"history.health[{i}][{k!r}]") for k, v in r.items()}
                for i, r in enumerate(health)]
    h.health_epochs = _int_list(state.get("health_epochs", []), "history.health_epochs")
    return h


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
        "scaler": None if net.scaler is None else {"n_features": net.scaler.n_features},
        "classes": net.classes,
        "feature_names": net.feature_names,
        "history": history_state(net.history),
    }
    arrays: dict[str, Any] = {"header": np.frombuffer(json.dumps(header, allow_nan=False).encode(), dtype=np.uint8)}
    for i, layer in enumerate(net.layers):
        arrays[f"W{i}"] = np.ascontiguousarray(layer.W)
        arrays[f"b{i}"] = np.ascontiguousarray(layer.b)
    if net.scaler is not None:
        arrays["scaler_mean"], arrays["scaler_scale"] = net.scaler.mean, net.scaler.scale
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


def _read_v2(zf: zipfile.ZipFile, header: dict, net: Network) -> None:
    """Format 2's scaler, classes, feature names and History, each checked as it is set."""
    from .scaler import Scaler

    spec = header.get("scaler")
    if spec is not None:
        n_in = net.layers[0].n_in
        if not isinstance(spec, dict) or spec.get("n_features") != n_in:
            raise ValueError(f"scaler must be null or {{\"n_features\": {n_in}}}, got {spec!r}")
        f64 = np.dtype(np.float64)
        mean = _read_member(zf, "scaler_mean", (n_in,), f64, 8 * n_in)
        scale = _read_member(zf, "scaler_scale", (n_in,), f64, 8 * n_in)
        net.scaler = Scaler(mean, scale)
    net.classes = header.get("classes")
    net.feature_names = header.get("feature_names")
    state = header.get("history")
    net.history = None if state is None else history_from_state(state)


def load(path: Any, *, backend: str | None = None) -> Network:
    """Read a network written by :meth:`Network.save`.

    ``backend`` defaults to the one the network was saved with when it is available here (so
    predictions match bit for bit), otherwise ``"auto"``. ``net.metadata``, ``net.scaler``,
    ``net.classes``, ``net.feature_names`` and ``net.history`` are what was saved with the
    network (``{}`` and None if nothing was: format 1 files have only the metadata). The History
    comes back with every per-epoch series, ``stop_reason`` and ``stopped_at`` (non-finite
    values as NaN, a non-finite ``stopped_at["loss"]`` as None). Anything that is not a well-formed
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
            if version >= 2:
                _read_v2(zf, header, net)
    except _READ_ERRORS as e:
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    if backend is None:
        saved = header.get("backend")
        backend = saved if saved in available_backends() else "auto"
        if backend != saved:
            log.info("%s was saved with backend %r, which is not available here; using 'auto'", path, saved)
    return net._with_backend(backend)
