"""Shared fixtures: the backends the tests run on, and hypothesis profiles.

Helpers live in the ``support`` package (``tests/support``), not here: import them from there.

- ``backend``: the core backends (NumPy, array-api-strict), on which the core's own tests
  must give the oracle's numbers in float64.
- ``any_backend``: every backend (like SciPy's ``xp`` fixture): NumPy, array-api-strict,
  torch, JAX (x64 on during the tests that use it, off again after) and CuPy; a backend
  whose framework is missing or cannot run here (CuPy without a GPU) is skipped with the
  reason. Session-scoped, as hypothesis requires of fixtures used by ``@given`` tests.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import HealthCheck, settings

import scorecore as sc
from support import backends as _backends

settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

CORE_BACKENDS = ["numpy", "array_api_strict"]


@pytest.fixture(scope="session", params=CORE_BACKENDS)
def backend(request):
    """A float64 backend on which the core must give the oracle's numbers."""
    return sc.get_backend(request.param)


@pytest.fixture(scope="session", params=_backends.NAMES)
def any_backend(request):
    """Every backend, able to compute in float64; skipped, saying why, where it cannot run."""
    name = request.param
    try:
        be = _backends.float64_backend(name)
    except _backends.UNAVAILABLE as exc:
        pytest.skip(str(exc))  # the error names the backend and why it cannot run
    with _backends.torch_threads(1) if name == "torch" else contextlib.nullcontext():
        yield be


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # JAX's x64 switch is process-wide: on only while a test on the JAX case runs (its setup
    # and teardown included), so tests expecting JAX's float32 default never see it on.
    callspec = getattr(item, "callspec", None)
    on_jax = callspec is not None and callspec.params.get("any_backend") == "jax"
    with _backends.jax_x64(True) if on_jax else contextlib.nullcontext():
        yield
