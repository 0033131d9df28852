"""Checkpoints: a flat dict of named NumPy arrays in a safetensors file (no pickle), checksummed.

Loading a safetensors file reads a JSON header and raw bytes, so it cannot run code
(unlike ``torch.load``/pickle). Every network in scorecore converts its weights to and
from this one flat layout (``to_state_dict``/``from_state_dict`` in each backend's
``networks`` module), so a file written from torch loads into JAX or NumPy unchanged.

Every file written by :func:`save` carries, in its metadata under :data:`CHECKSUM_KEY`,
the SHA-256 of its tensors (:func:`checksum`); :func:`load` recomputes it and refuses a
file whose tensors changed since (a flipped bit on disk, a truncated copy), naming it.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from . import validation

#: The metadata entry holding the tensors' SHA-256 (hex); not returned by :func:`load_metadata`.
CHECKSUM_KEY = "scorecore.sha256"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted: unreadable, or its tensors fail the checksum."""


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError as exc:  # an optional dependency of the core
        raise ImportError(
            "checkpoints need the package 'safetensors'; install it with: pip install safetensors"
        ) from exc
    return safetensors.numpy


def checksum(tensors: dict) -> str:
    """SHA-256 (hex) over the tensors in sorted name order, each as its name, dtype (NumPy's
    ``dtype.str``, byte order included), shape and C-order bytes, every field length-prefixed
    so that no two different dicts hash the same bytes."""
    h = hashlib.sha256()

    def field(b: bytes):
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    for name in sorted(tensors):
        a = np.asarray(tensors[name], order="C")
        field(name.encode("utf-8"))
        field(a.dtype.str.encode("ascii"))
        field(",".join(map(str, a.shape)).encode("ascii"))
        field(a.tobytes())
    return h.hexdigest()


def save(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> None:
    """Write ``{name: numpy array}`` (and optional ``{str: str}`` metadata) to ``path``, with
    the tensors' :func:`checksum` in the metadata.

    Arrays are written bit-exactly in their own dtype and shape.
    """
    if not isinstance(tensors, dict) or not tensors:
        raise TypeError("tensors must be a non-empty dict of {name: numpy.ndarray}")
    for name, value in tensors.items():
        validation.instance("tensor names", name, str, "str")
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"tensors[{name!r}] must be a numpy.ndarray (convert with the backend's "
                f"to_numpy or the network's to_state_dict), got {type(value).__name__}"
            )
    metadata = {} if metadata is None else validation.instance("metadata", metadata, dict, "a dict of str to str")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must be a dict of str to str")
    if CHECKSUM_KEY in metadata:
        raise ValueError(f"metadata key {CHECKSUM_KEY!r} is reserved for the checksum")
    st = _safetensors_numpy()
    tensors = {k: np.asarray(v, order="C") for k, v in tensors.items()}  # 0-D stays 0-D
    st.save_file(tensors, os.fspath(path), metadata={**metadata, CHECKSUM_KEY: checksum(tensors)})


def _read(path, *, with_tensors: bool = True):
    """(tensors, metadata) of ``path`` (tensors None unless ``with_tensors``), a safetensors
    error reported as :class:`CheckpointError`."""
    _safetensors_numpy()
    from safetensors import safe_open

    where = os.fspath(path)
    if not os.path.isfile(where):
        raise FileNotFoundError(f"checkpoint {where!r} does not exist")
    try:
        with safe_open(where, framework="numpy") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else None
    except Exception as exc:  # safetensors' own error type for a bad header or a short file
        raise CheckpointError(f"checkpoint {where!r} is not a readable safetensors file "
                              f"({type(exc).__name__}: {exc})") from exc
    return tensors, meta


def load(path: str | os.PathLike, *, verify: bool = True) -> dict:
    """The ``{name: numpy array}`` dict stored at ``path``, its checksum verified.

    ``verify=False`` loads a safetensors file that another tool wrote (it has no checksum);
    with ``verify=True`` such a file, or one whose tensors do not match their checksum,
    raises :class:`CheckpointError` naming the file.
    """
    validation.boolean("verify", verify)
    tensors, meta = _read(path)
    if verify:
        where = os.fspath(path)
        stored = meta.get(CHECKSUM_KEY)
        if stored is None:
            raise CheckpointError(f"checkpoint {where!r} has no {CHECKSUM_KEY} checksum (it was not written by "
                                  "scorecore.checkpoint.save); load it with verify=False if you trust it")
        if checksum(tensors) != stored:
            raise CheckpointError(f"checkpoint {where!r} is corrupt: its tensors do not match the SHA-256 "
                                  "checksum stored with them (the file changed after it was written)")
    return tensors


def load_metadata(path: str | os.PathLike) -> dict:
    """The ``{str: str}`` metadata stored at ``path`` (empty if none), without the checksum."""
    meta = _read(path, with_tensors=False)[1]
    meta.pop(CHECKSUM_KEY, None)
    return meta


__all__ = ["CHECKSUM_KEY", "CheckpointError", "checksum", "load", "load_metadata", "save"]
