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


def tiny_nnx_net(calls: list):
    """A Flax NNX score s(x, t) = 0.1 (W x + b) − x on (2,) that appends to ``calls`` each time
    Python runs it (at trace time under jit): its weights are arrays, so a compiled run must take
    them as arguments — new weights with the same structure may not retrace."""
    from flax import nnx

    class TinyNet(nnx.Module):
        def __init__(self, seed: int):
            self.lin = nnx.Linear(2, 2, rngs=nnx.Rngs(seed))

        def __call__(self, x, t):
            calls.append(1)
            return 0.1 * self.lin(x) - x

    return TinyNet
