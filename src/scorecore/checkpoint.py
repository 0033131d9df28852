"""Checkpoints: a flat dict of named NumPy arrays in a safetensors file (no pickle).

Loading a safetensors file reads a JSON header and raw bytes, so it cannot run code
(unlike ``torch.load``/pickle). Every network in scorecore converts its weights to and
from this one flat layout (``to_state_dict``/``from_state_dict`` in each backend's
``networks`` module), so a file written from torch loads into JAX or NumPy unchanged.
"""

from __future__ import annotations

import os

import numpy as np


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError as exc:  # an optional dependency of the core
        raise ImportError(
            "checkpoints need the package 'safetensors'; install it with: pip install safetensors"
        ) from exc
    return safetensors.numpy


def save(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> None:
    """Write ``{name: numpy array}`` (and optional ``{str: str}`` metadata) to ``path``.

    Arrays are written bit-exactly in their own dtype and shape.
    """
    if not isinstance(tensors, dict) or not tensors:
        raise TypeError("tensors must be a non-empty dict of {name: numpy.ndarray}")
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"tensors[{name!r}] must be a numpy.ndarray (convert with the backend's "
                f"to_numpy or the network's to_state_dict), got {type(value).__name__}"
            )
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must be a dict of str to str")
    st = _safetensors_numpy()
    st.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.fspath(path), metadata=metadata)


def load(path: str | os.PathLike) -> dict:
    """The ``{name: numpy array}`` dict stored at ``path``."""
    return _safetensors_numpy().load_file(os.fspath(path))


def load_metadata(path: str | os.PathLike) -> dict:
    """The ``{str: str}`` metadata stored at ``path`` (empty if none)."""
    _safetensors_numpy()
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="numpy") as f:
        return dict(f.metadata() or {})
