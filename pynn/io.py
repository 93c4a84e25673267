"""Saving and loading networks: a safe, documented file format (no pickle).

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` files) holding:

* ``header``: a 1-D uint8 array, the UTF-8 bytes of a JSON object
  ``{"format": "pynn", "format_version": 1, "pynn_version": ..., "dtype": "float32",
  "backend": "cpp", "seed": ..., "layers": [{"n_in": 2, "n_out": 2, "activation": "sigmoid"}, ...]}``;
* ``W0``, ``b0``, ``W1``, ``b1``, …: each layer's weights ``(n_out, n_in)`` and biases
  ``(n_out, 1)`` in the network's dtype.

Plain NumPy reads it: ``np.load(path, allow_pickle=False)``. ``load`` checks the header, the
shapes, dtypes and sizes (from the zip directory, before reading any array) and rejects anything
else with a ValueError.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

FORMAT = "pynn"
FORMAT_VERSION = 1
_MAX_HEADER = 1 << 20


def save(net, path: Any) -> None:
    from . import __version__

    path = os.fspath(path)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pynn_version": __version__,
        "dtype": net.dtype.name,
        "backend": net.backend,
        "seed": net.seed,
        "layers": [{"n_in": l.n_in, "n_out": l.n_out, "activation": l.activation} for l in net.layers],
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, layer in enumerate(net.layers):
        arrays[f"W{i}"] = np.ascontiguousarray(layer.W)
        arrays[f"b{i}"] = np.ascontiguousarray(layer.b)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pynn-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: the old file stays whole until the new one is complete
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a readable pynn model file: {why}")


def load(path: Any, *, backend: str | None = None):
    """Read a network written by :meth:`Network.save`.

    ``backend`` defaults to the one the network was saved with when it is available here (so
    predictions match bit for bit), otherwise ``"auto"``.

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

    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _bad(path, f"not a zip archive ({e})") from None
    with zf:
        try:
            info = {i.filename: i for i in zf.infolist()}
            if "header.npy" not in info or info["header.npy"].file_size > _MAX_HEADER:
                raise _bad(path, "no header")
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(bytes(npz["header"]).decode())
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise _bad(path, "the header does not name the pynn format")
                version = header.get("format_version")
                if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
                    raise _bad(path, f"format version {version!r}; this pynn reads versions 1 to {FORMAT_VERSION}")
                dtype = np.dtype(header["dtype"])
                if dtype not in (np.float32, np.float64):
                    raise _bad(path, f"dtype {dtype}")
                specs = header["layers"]
                if not isinstance(specs, list) or not specs:
                    raise _bad(path, "no layers")
                layers = []
                for i, spec in enumerate(specs):
                    n_in, n_out = int(spec["n_in"]), int(spec["n_out"])
                    if n_in < 1 or n_out < 1:
                        raise _bad(path, f"layer {i} has sizes ({n_out}, {n_in})")
                    arrays = []
                    for name, shape in ((f"W{i}", (n_out, n_in)), (f"b{i}", (n_out, 1))):
                        member = info.get(f"{name}.npy")
                        # check the size in the zip directory before letting NumPy allocate
                        need = int(np.prod(shape)) * dtype.itemsize
                        if member is None or not need <= member.file_size <= need + 4096:
                            raise _bad(path, f"{name} is missing or has the wrong size")
                        a = npz[name]
                        if a.shape != shape or a.dtype != dtype:
                            raise _bad(path, f"{name} has shape {a.shape} and dtype {a.dtype}, "
                                             f"expected {shape} and {dtype}")
                        arrays.append(a)
                    layers.append(Dense(n_in, n_out, spec["activation"], init=tuple(arrays)))
        except ValueError as e:
            if str(e).startswith(repr(path)):
                raise
            raise _bad(path, str(e)) from None
        except (KeyError, TypeError, EOFError, OSError, zipfile.BadZipFile, UnicodeDecodeError,
                json.JSONDecodeError) as e:
            raise _bad(path, f"{type(e).__name__}: {e}") from None
    if backend is None:
        saved = header.get("backend")
        backend = saved if saved in available_backends() else "auto"
    seed = header.get("seed")
    return Network(layers, dtype=dtype, backend=backend, seed=seed if isinstance(seed, int) else None)
