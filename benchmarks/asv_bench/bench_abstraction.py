"""The cost of abstraction as a tracked number: best-of-3 wall time of scorecore's sampler over
a hand-written loop in the same framework, measured side by side in one process
(``benchmarks/native_loops.py``; the 8-ring's exact score, VP SDE, float32, 20 steps, batch
4,096). 1.0 means no overhead; the targets are 1.10 (NumPy, torch) and 1.05 (jitted JAX)."""

import native_loops


class AbstractionCost:
    params = (["numpy", "torch", "jax"], list(native_loops.SAMPLERS))
    param_names = ["backend", "sampler"]
    unit = "ratio"
    timeout = 600
    repeat = 1
    number = 1

    def setup(self, backend, sampler):
        try:
            self.r = native_loops.measure(backend, sampler, batch=4096, steps=20, repeats=3)
        except ImportError as exc:
            raise NotImplementedError(str(exc)) from exc

    def track_abstraction_ratio_scorecore_over_native(self, backend, sampler):
        return self.r["ratio"]

    def track_abstraction_ratio_driver(self, backend, sampler):
        """scorecore over the same loop drawing scorecore's batch-invariant noise."""
        return self.r["driver_ratio"]
