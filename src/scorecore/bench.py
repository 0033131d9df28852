"""Throughput measurement shared by ``scorecore bench``, ``benchmarks/gpu_check.py`` and the
asv suite (``benchmarks/asv_bench``): NFE/s of a sampler on a score model and backend.

NFE/s = (score evaluations of one run, exact: ``SampleInfo.nfe``) / (wall time of a warm run,
device synchronised). One evaluation is one call of the score model on the whole batch, so
sample-evaluations/s = batch × NFE/s.

A :class:`Bench` builds the sampler's program (:mod:`scorecore.samplers.base`) once and runs it
through the same driver as :func:`scorecore.sample` (:mod:`scorecore.samplers.driver`); reusing
the program keeps its compiled run (JAX: the whole loop under ``jit``), so a warm run measures
sampling, not tracing. :meth:`Bench.sample_seconds` measures a whole ``sample()`` call, which
finds an identical earlier call's program in :mod:`scorecore.run_cache`.

Backends are named ``numpy``, ``torch``, ``torch-compile`` (the step under
``torch.compile``), ``jax`` (whole run jitted), ``jax-eager`` (op by op), ``cupy``, and
``torch-cuda``, ``torch-compile-cuda``, ``jax-gpu`` on a GPU: each a registered backend
with constructor options (:data:`VARIANTS`, built by ``Backend.variant``). Models:
``mixture-2d`` (the 8-ring's exact score), ``mixture-64d`` (:func:`mixture_64d`'s exact
score), ``mlp`` (the time-conditioned MLP in 2-D) and ``unet`` (the small U-Net on
3×32×32, where the backend has one): the networks are the backend's own
(``Backend.network``), with seeded random weights (throughput does not depend on them),
their output used as the score.

Only the core is imported here: frameworks and their networks come through the backends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import validation
from .api import check_shape, default_eps, prior_draw
from .backend import get_backend
from .samplers import SAMPLERS as SAMPLER_REGISTRY
from .samplers import Context, make_sampler, run
from .sde import VPSDE
from .targets import GaussianMixture

#: benchmark backend name -> (registered backend, ``Backend.variant`` options).
VARIANTS = {
    "numpy": ("numpy", {}),
    "torch": ("torch", {}),
    "torch-compile": ("torch", {"compile": True}),
    "jax": ("jax", {}),
    "jax-eager": ("jax", {"jit": False}),
    "cupy": ("cupy", {}),
    "torch-cuda": ("torch", {"device": "cuda"}),
    "torch-compile-cuda": ("torch", {"device": "cuda", "compile": True}),
    "jax-gpu": ("jax", {"device": "gpu"}),
}
BACKENDS = ("numpy", "torch", "torch-compile", "jax", "jax-eager", "cupy")
GPU_BACKENDS = ("torch-cuda", "torch-compile-cuda", "jax-gpu", "cupy")
MODELS = ("mixture-2d", "mixture-64d", "mlp", "unet")
#: sampler family -> (scorecore sampler name, options). PC: Euler–Maruyama predictor and one
#: annealed-Langevin corrector step per step (2 evaluations per step); the adaptive solver
#: gets loose tolerances and a budget of ``steps`` tries per sample, so a run is short.
SAMPLERS = {
    "pc": ("pc", {"predictor": "euler-maruyama", "corrector": "ald"}),
    "heun": ("heun", {}),
    "dopri5": ("dopri5", {"rtol": 1e-2, "atol": 1e-2}),
    "dpmpp_2m": ("dpmpp_2m", {}),
}


def make_backend(name: str):
    """The backend object for a benchmark backend name (see :data:`VARIANTS`)."""
    base, options = VARIANTS[validation.choice("backend", name, VARIANTS)]
    be = get_backend(base)
    return be.variant(**options) if options else be


def mixture_64d() -> GaussianMixture:
    """8 components in ℝ⁶⁴: means ~ N(0, 2² I), covariances A Aᵀ/64 + 0.05 I (A standard
    normal), equal weights; seed 64."""
    rng = np.random.default_rng(64)
    K, D = 8, 64
    A = rng.standard_normal((K, D, D))
    return GaussianMixture(np.full(K, 1 / K), 2.0 * rng.standard_normal((K, D)),
                           A @ np.swapaxes(A, 1, 2) / D + 0.05 * np.eye(D))


def make_model(name: str, be, sde, dtype="float32"):
    """(score model callable on ``be``'s arrays, event shape) for a benchmark model name."""
    if name == "mixture-2d":
        return GaussianMixture.example("8-ring").score_model(sde), (2,)
    if name == "mixture-64d":
        return mixture_64d().score_model(sde), (64,)
    if name == "mlp":
        return be.network("mlp", (2,), seed=0, dtype=dtype), (2,)
    if name == "unet":
        return be.network("unet", (3, 32, 32), seed=0, dtype=dtype), (3, 32, 32)
    validation.choice("model", name, MODELS)


@dataclass
class Bench:
    """One sampler on one model, backend and batch: ``run(seed)`` draws a batch and returns
    its exact NFE, synchronised with the device. ``sampler``: a family of :data:`SAMPLERS` or
    any name of :data:`scorecore.samplers.SAMPLERS` (default options)."""

    backend: str = "numpy"
    model: str = "mixture-2d"
    sampler: str = "heun"
    batch: int = 1024
    steps: int = 20
    dtype: str = "float32"

    def __post_init__(self):
        validation.choice("model", self.model, MODELS)
        self.batch = validation.positive_int("batch", self.batch)
        self.steps = validation.steps("steps", self.steps)
        validation.choice("dtype", self.dtype, ("float32", "float64"))
        self.be = make_backend(self.backend)
        self.sde = VPSDE()
        self.score, event = make_model(self.model, self.be, self.sde, self.dtype)
        self.shape = check_shape((self.batch, *event))
        name, options = SAMPLERS.get(self.sampler, (self.sampler, {}))
        self.smp = make_sampler(name, self.steps, **options)
        self.ctx = Context(self.be, self.be.dtype(self.dtype), self.shape)
        self.eps = default_eps(self.sde)
        self.program = self.smp.program(self.score, self.sde, self.ctx, self.eps)

    def run(self, seed: int = 0, x_init=None):
        """(samples, NFE) of one run of the prepared program, from the prior draw of ``seed``
        or from ``x_init``."""
        key = self.be.key(seed)
        x_init = prior_draw(self.sde, self.ctx, key) if x_init is None else x_init
        # With return_info an adaptive solver's short budget is a status, not an error.
        x, info = run(self.program, x_init, self.ctx, key, name=self.sampler, return_info=True)
        self.be.block_until_ready(x)
        return x, info.nfe

    def seconds(self, repeats: int = 3, seed: int = 1) -> tuple[int, float]:
        """(NFE, best wall time of ``repeats`` runs); call :meth:`run` once first to warm up."""
        best, nfe = float("inf"), 0
        for r in range(validation.positive_int("repeats", repeats)):
            t0 = time.perf_counter()
            _, nfe = self.run(seed + r)
            best = min(best, time.perf_counter() - t0)
        return nfe, best

    def nfe_per_second(self, repeats: int = 3) -> float:
        nfe, sec = self.seconds(repeats)
        return nfe / sec

    def sample_seconds(self, seed: int = 1) -> float:
        """Wall time of one :func:`scorecore.sample` call (its first call on JAX traces and
        compiles; an identical later one reuses the cached program), device synchronised."""
        from .api import sample

        name, options = SAMPLERS.get(self.sampler, (self.sampler, {}))
        t0 = time.perf_counter()
        x, _ = sample(self.score, self.sde, self.shape, name, self.steps, backend=self.be, seed=seed,
                      dtype=self.dtype, progress=False, return_info=True, **options)
        self.be.block_until_ready(x)
        return time.perf_counter() - t0


def nfe_table(backends, *, model: str = "mixture-2d", samplers=("pc", "heun", "dopri5", "dpmpp_2m"),
              batch: int = 16384, steps: int = 20, repeats: int = 3, out=print) -> list[dict]:
    """Measure NFE/s for every backend × sampler and print a table through ``out``.

    A backend that cannot run here (framework missing, no GPU) gets one line saying why.
    Returns the rows as dicts (backend, sampler, nfe, seconds, nfe_per_s). Every argument
    is checked before the first measurement.
    """
    backends = [validation.choice("backend", b, VARIANTS) for b in backends]
    samplers = [validation.choice("sampler", s, [*SAMPLERS, *SAMPLER_REGISTRY]) for s in samplers]
    validation.choice("model", model, MODELS)
    batch, steps = validation.positive_int("batch", batch), validation.steps("steps", steps)
    repeats = validation.positive_int("repeats", repeats)
    out(f"NFE/s: {model}, VP SDE, float32, batch {batch}, {steps} steps, best of {repeats} warm runs "
        "(NFE = score evaluations on the whole batch, exact)")
    out(f"{'backend':20s} {'sampler':9s} {'NFE':>5s} {'seconds':>9s} {'NFE/s':>9s} {'samples·NFE/s':>14s}")
    rows = []
    for bname in backends:
        for sname in samplers:
            try:
                bench = Bench(bname, model, sname, batch, steps)
                bench.run(0)  # warm-up: compilation, caches
            except (ImportError, RuntimeError, NotImplementedError) as exc:
                out(f"{bname:20s} unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
                break
            nfe, sec = bench.seconds(repeats)
            rows.append(dict(backend=bname, sampler=sname, nfe=nfe, seconds=sec, nfe_per_s=nfe / sec))
            out(f"{bname:20s} {sname:9s} {nfe:5d} {sec:9.3f} {nfe / sec:9.1f} {batch * nfe / sec:14.3g}")
    return rows


__all__ = ["BACKENDS", "Bench", "GPU_BACKENDS", "MODELS", "SAMPLERS", "VARIANTS", "make_backend", "make_model",
           "mixture_64d", "nfe_table"]
