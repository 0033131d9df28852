"""The backends the conformance suite runs on, their tolerances, and the per-backend counts.

Every case is a (backend, dtype) pair. CI's cases: numpy, array-api-strict (float64 and
its float32-only ``Device("no_float64")``), torch CPU and JAX CPU in float32 and float64;
CuPy where a GPU is present. ``SCORECORE_TEST_DEVICES=cuda`` adds torch on CUDA and JAX
on its GPU (``benchmarks/gpu_check.py`` sets it). A case whose framework is missing or
cannot run here is skipped, and the skip says why.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass

import numpy as np
import pytest

import scorecore as sc
from support.tolerance import oracle_rtol


@dataclass(frozen=True)
class Case:
    """A backend with the dtype under test; ``tol`` is the tolerance unit of that dtype (the
    model of ``support.tolerance``): 1e-10 in float64, and for float32 ``k · eps32`` with the
    ``k`` each check states."""

    id: str
    backend: sc.Backend
    dtype: str

    @property
    def f64(self) -> bool:
        return self.dtype == "float64"

    def tol(self, k32: float) -> float:
        """1e-10 in float64; ``k32`` float32 machine epsilons in float32."""
        return oracle_rtol(self.dtype, k32)

    def asarray(self, x):
        return self.backend.asarray(np.asarray(x, dtype=np.float64), dtype=self.dtype)

    def numpy(self, x):
        return np.asarray(self.backend.to_numpy(x), dtype=np.float64)


def _strict_f32():
    import array_api_strict
    from scorecore_array_api_strict import ArrayAPIStrictBackend

    return ArrayAPIStrictBackend(array_api_strict.Device("no_float64"))


def _torch(device=None):
    from scorecore_torch import TorchBackend

    return TorchBackend(device)


def _jax(x64=False, platform=None):
    from scorecore_jax import JaxBackend

    if platform is not None:
        import jax

        try:
            jax.devices(platform)
        except RuntimeError as exc:
            raise sc.BackendUnavailableError(f"JAX has no {platform} device: {exc}") from exc
    return JaxBackend(platform, x64=x64)


# (id, factory, dtype). JAX float32 runs before JAX float64, which turns x64 on for its
# own tests only (the fixture restores the switch).
CASES = [
    ("numpy-f64", lambda: sc.get_backend("numpy"), "float64"),
    ("strict-f64", lambda: sc.get_backend("array_api_strict"), "float64"),
    ("strict-no_float64-f32", _strict_f32, "float32"),
    ("torch-cpu-f32", _torch, "float32"),
    ("torch-cpu-f64", _torch, "float64"),
    ("jax-f32", lambda: _jax(platform="cpu"), "float32"),
    ("jax-f64", lambda: _jax(x64=True, platform="cpu"), "float64"),
    ("cupy-f32", lambda: sc.get_backend("cupy"), "float32"),
    ("cupy-f64", lambda: sc.get_backend("cupy"), "float64"),
]
if "cuda" in os.environ.get("SCORECORE_TEST_DEVICES", "").split(","):
    CASES += [
        ("torch-cuda-f32", lambda: _torch("cuda"), "float32"),
        ("torch-cuda-f64", lambda: _torch("cuda"), "float64"),
        ("jax-gpu-f32", lambda: _jax(platform="gpu"), "float32"),
        ("jax-gpu-f64", lambda: _jax(x64=True, platform="gpu"), "float64"),
    ]


@pytest.fixture(scope="session", params=[c[0] for c in CASES])
def case(request):
    """A conformance case; skipped with the reason when its backend cannot run here."""
    cid, factory, dtype = next(c for c in CASES if c[0] == request.param)
    x64_before = None
    if cid.startswith("jax"):
        import jax

        x64_before = jax.config.jax_enable_x64
    try:
        be = factory()
    except (sc.MissingBackendError, sc.BackendUnavailableError) as exc:
        pytest.skip(f"{cid}: {exc}")
    yield Case(cid, be, dtype)
    if x64_before is not None:
        import jax

        jax.config.update("jax_enable_x64", x64_before)


_COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
_SKIPS: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if "conformance" not in report.nodeid or "[" not in report.nodeid:
        return
    ids = report.nodeid.rsplit("[", 1)[1]
    cid = max((c[0] for c in CASES if c[0] in ids), key=len, default=None)
    if cid is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _COUNTS[cid][report.outcome] += 1
        if report.outcome == "skipped":
            _SKIPS[cid] = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)


def pytest_terminal_summary(terminalreporter):
    if not _COUNTS:
        return
    tr = terminalreporter
    tr.section("conformance cases per backend")
    for cid, *_ in CASES:
        if cid in _COUNTS:
            c = _COUNTS[cid]
            line = f"{cid:24s} passed {c['passed']:3d}  failed {c['failed']:3d}  skipped {c['skipped']:3d}"
            if cid in _SKIPS and not c["passed"]:
                line += f"  ({_SKIPS[cid]})"
            tr.write_line(line)
