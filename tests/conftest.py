"""Shared fixtures: the backends every core test runs on, and hypothesis profiles."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import scorecore as sc

settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

CORE_BACKENDS = ["numpy", "array_api_strict"]


@pytest.fixture(scope="session", params=CORE_BACKENDS)
def backend(request):
    """A float64 backend on which the core must give the oracle's numbers."""
    return sc.get_backend(request.param)


def to_numpy(be, x):
    return np.asarray(be.to_numpy(x), dtype=np.float64)


class CountingScore:
    """Wraps a score model and counts its calls (the NFE actually spent)."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.event_shape = getattr(model, "event_shape", None)

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)
