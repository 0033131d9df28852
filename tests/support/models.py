"""Score-model wrappers for tests."""

from __future__ import annotations


class CountingScore:
    """Wraps a score model and counts its calls (the NFE actually spent)."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.event_shape = getattr(model, "event_shape", None)

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)
