"""The backends a test can run on, built so that each can compute in float64, with the
reason when one cannot run here.

``NAMES`` is what the ``any_backend`` fixture (``tests/conftest.py``) is parametrized over:
NumPy, array-api-strict, torch (CPU, one thread), JAX (CPU, x64 on for the tests that use it)
and CuPy (skipped without a GPU: CuPy imports there, but its first array raises
``CUDARuntimeError``, which the backend reports as ``BackendUnavailableError``).
"""

from __future__ import annotations

import contextlib
import sys

import scorecore as sc

NAMES = ("numpy", "array_api_strict", "torch", "jax", "cupy")

#: Why a backend cannot run: its framework is missing, or present but unusable (no GPU).
UNAVAILABLE = (sc.MissingBackendError, sc.BackendUnavailableError)


def float64_backend(name: str) -> sc.Backend:
    """Backend ``name`` able to compute in float64 (JAX with x64 mode on); raises one of
    ``UNAVAILABLE`` when it cannot run here."""
    if name == "jax":
        try:
            from scorecore_jax import JaxBackend
        except ImportError as exc:
            raise sc.MissingBackendError(f"backend 'jax' needs the package 'jax' ({exc})") from exc
        return JaxBackend(x64=True)
    return sc.get_backend(name)


@contextlib.contextmanager
def jax_x64(enabled: bool = True):
    """JAX's process-wide x64 switch set to ``enabled`` for the block, then restored (so that
    tests that expect JAX's float32 default are not affected by a float64 test)."""
    jax = sys.modules.get("jax")
    if jax is None:
        try:
            import jax
        except ImportError:
            yield
            return
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """torch's intra-op threads set to ``n`` for the block: on a small shared CPU, thread
    contention slows the tiny ops of these tests many times over."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
