"""A batch-invariant Brownian path: a counter-based dyadic Brownian tree on the Array API.

W(t) on [t0, t1] is built from the root down, as Lévy's construction of Brownian motion
(Li et al. 2020's virtual Brownian tree, with a fixed depth L instead of a tolerance):

    W(t0) = 0,  W(t1) = √(t1 − t0) z₁,
    W(m) = ½ (W(a) + W(b)) + ½ √(b − a) z_j           (m = ½(a + b), the bridge at the midpoint)

for the node j = 1, 2, … of the interval [a, b] (heap numbering: the children of j are 2j and
2j + 1). Descending L levels towards t gives W at the two ends of the leaf of width
(t1 − t0)/2^L holding t; inside the leaf W is interpolated linearly. So:

* **a function of (seed, row, t) alone**: z_j of row i is a counter-based normal keyed by
  (root word, j) at counter (offset + i): the same whatever the batch, the chunking or the
  order in which times are asked for;
* **consistent under refinement**: the increment over [t_a, t_b] is W(t_b) − W(t_a) of one
  fixed path, so the increments of any subdivision sum to the coarse one (to rounding) — a
  rejected try of an adaptive solver or a finer grid changes nothing of the path;
* **exactly Brownian at the dyadic points** k (t1 − t0)/2^L; between them the linear
  interpolation lacks at most (t1 − t0)/2^(L+2) of variance per endpoint (the bridge's), a
  relative deficit ≤ 2^−(L+1) (t1 − t0)/|t_b − t_a| per increment (5·10⁻⁷ for a step of the
  whole span at the default L = 20; 5·10⁻⁴ for 1000 uniform steps);
* **traceable**: L is fixed, every level is the same masked array work (no branching on
  values), so a query runs under ``jax.jit``. It costs L + 1 normal draws of the sample shape
  per time asked for (measured with NumPy, 100 Euler–Maruyama steps: 5× the time of fresh
  per-step noise for (1000, 2) samples with the exact 8-ring score, 27× for (256, 64) with an
  elementwise score — the noise is then the whole cost).

The bits are SplitMix64's (:mod:`scorecore.random`) in int64 arithmetic — on JAX this needs x64
mode. The 64-bit root word is drawn by the backend's own generator (four 16-bit uniforms) from
the ``brownian`` stream of the first step's key (:mod:`scorecore.streams`; a step sees only its
own key, so :class:`TreeNoise` draws the word at step 0 and carries it), so a run's path depends
on its seed and on nothing else; node j's key is the word folded with j as
:func:`scorecore.random.fold_in` does, evaluated per row because rows at different times visit
different nodes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from .. import random as _random
from .. import streams, validation
from ..validation import option
from .._arrays import per_sample

#: Levels of the tree by default: leaves of (t1 − t0)/2²⁰.
DEFAULT_DEPTH = 20


def root_word(backend, key, dtype):
    """The tree's 64-bit root word (an int64 array of shape (1, 1)) from ``key``: four 16-bit
    digits of uniforms drawn by ``backend`` (16 bits are exact in float32's 23–24 as well)."""
    xp = backend.xp
    u = backend.uniform(key, (1, 4), dtype)
    digits = xp.astype(xp.floor(u * 65536.0), xp.int64)
    return (digits[:, 0:1] | (digits[:, 1:2] << 16) | (digits[:, 2:3] << 32) | (digits[:, 3:4] << 48))


def _node_normal(xp, word, node, shape, dtype, offset: int, device):
    """Standard normals of shape (n, *event): row i keyed by fold_in(word, node_i) at counter
    offset + i (Box–Muller on SplitMix64 uniforms, as :func:`scorecore.random.normal`)."""
    n, width = shape[0], math.prod(shape[1:])
    pairs = (width + 1) // 2
    gamma = _random._signed(_random._GAMMA)
    k = _random._mix64_array(xp, _random._mix64_array(xp, word ^ xp.reshape(node, (n, 1))) + gamma)
    r = xp.arange(offset, offset + n, dtype=xp.int64, device=device)
    e = xp.arange(2 * pairs, dtype=xp.int64, device=device)
    counters = xp.reshape(r, (n, 1)) * (2 * pairs) + xp.reshape(e, (1, 2 * pairs))
    bits = _random._mix64_array(xp, counters * gamma + k)
    u1 = _random._unit_interval(xp, bits[:, :pairs], dtype, True)
    u2 = _random._unit_interval(xp, bits[:, pairs:], dtype, False)
    radius = xp.sqrt(-2.0 * xp.log(u1))
    angle = (2.0 * math.pi) * u2
    z = xp.reshape(xp.stack([radius * xp.cos(angle), radius * xp.sin(angle)], axis=-1), (n, 2 * pairs))
    return xp.reshape(z[:, :width], tuple(shape))


@dataclass(frozen=True)
class BrownianTree(validation.Checked):
    """A Brownian path W on [t0, t1] with leaves (t1 − t0)/2^depth (see the module docstring).

    ``value(ctx, word, t)`` is W(t) for (n,) or 0-D times; ``increment(ctx, word, ta, tb)`` is
    W(tb) − W(ta) (variance |tb − ta|); ``word`` is :func:`root_word` of the run key."""

    t0: float
    t1: float
    depth: int = option(DEFAULT_DEPTH, validation.integer, lo=1, hi=48)

    def __post_init__(self):
        super().__post_init__()
        validation.real("t0", self.t0)
        validation.real("t1", self.t1, lo=self.t0, lo_open=True)

    def value(self, ctx, word, t):
        """W(t) of shape ``ctx.shape``; t is clipped to [t0, t1]."""
        xp, dev, L = ctx.xp, ctx.backend.device, self.depth
        n = ctx.shape[0]
        t = ctx.batch_time(xp.asarray(t, dtype=ctx.dtype, device=dev))
        # Position in units of leaves, in float64: the leaf index q is exact for L ≤ 48.
        u = xp.clip((xp.astype(t, xp.float64) - self.t0) / (self.t1 - self.t0), 0.0, 1.0) * float(2**L)
        q = xp.clip(xp.astype(xp.floor(u), xp.int64), 0, 2**L - 1)
        frac = xp.astype(u - xp.astype(q, xp.float64), ctx.dtype)
        node = xp.ones((n,), dtype=xp.int64, device=dev)
        lo = xp.zeros(ctx.shape, dtype=ctx.dtype, device=dev)
        hi = math.sqrt(self.t1 - self.t0) * _node_normal(xp, word, node - 1, ctx.shape, ctx.dtype, ctx.offset, dev)
        for level in range(L):
            # Node j ≥ 1 bridges its interval at the midpoint; the root's end value used id 0.
            half = 0.5 * math.sqrt((self.t1 - self.t0) / 2**level)
            mid = 0.5 * (lo + hi) + half * _node_normal(xp, word, node, ctx.shape, ctx.dtype, ctx.offset, dev)
            right = ((q >> (L - 1 - level)) & 1) == 1
            rx = per_sample(right, lo)
            lo, hi = xp.where(rx, mid, lo), xp.where(rx, hi, mid)
            node = 2 * node + xp.astype(right, xp.int64)
        return lo + per_sample(frac, lo) * (hi - lo)

    def increment(self, ctx, word, ta, tb):
        """W(tb) − W(ta): the Brownian increment over [ta, tb] (negative orientation if tb < ta)."""
        return self.value(ctx, word, tb) - self.value(ctx, word, ta)


@dataclass(frozen=True)
class TreeNoise:
    """The noise of a fixed-step SDE sampler from one :class:`BrownianTree` path: step k from
    t_k to t_{k+1} gets z_k = (W(t_{k+1}) − W(t_k)) / √|t_{k+1} − t_k|, a standard normal whose
    g √|Δt| z_k is the path's own increment g ΔW.

    The sampler carries ``(word, W(t_k))`` beside its state (:meth:`empty` before step 0):
    step 0 draws the root word and W(t_0); later steps reuse the carried W(t_k), so eagerly a
    step costs one query of the tree (under ``jit`` two: both branches of the step-0 select run)."""

    tree: BrownianTree

    @classmethod
    def build(cls, ctx, t0: float, t1: float, depth: int = DEFAULT_DEPTH) -> TreeNoise:
        """The noise of a run on ``ctx`` from a tree on [t0, t1]; refuses a namespace without
        int64 (JAX without x64 would truncate the 64-bit generator to 32 bits)."""
        check_int64(ctx.backend)
        return cls(BrownianTree(t0, t1, depth))

    @staticmethod
    def empty(ctx):
        """The carried (word, W) before step 0."""
        xp, dev = ctx.xp, ctx.backend.device
        return xp.zeros((1, 1), dtype=xp.int64, device=dev), xp.zeros(ctx.shape, dtype=ctx.dtype, device=dev)

    def step(self, ctx, k, key_k, carried, ta, tb):
        """(z_k, the new carry) for the step from ``ta`` to ``tb`` (0-D times)."""
        xp = ctx.xp
        word, w_a = carried
        if not (isinstance(k, int) and k > 0):  # eager loops draw the word at step 0 only
            fresh = root_word(ctx.backend, streams.step_key(ctx.backend, key_k, "brownian"), ctx.dtype)
            first = k == 0
            word = fresh if isinstance(k, int) else xp.where(first, fresh, word)
            w0 = self.tree.value(ctx, word, ta)
            w_a = w0 if isinstance(k, int) else xp.where(first, w0, w_a)
        w_b = self.tree.value(ctx, word, tb)
        return (w_b - w_a) / xp.sqrt(xp.abs(tb - ta)), (word, w_b)


class BrownianNoiseSampler:
    """A ``noise_sampler(sigma, sigma_next) -> z`` for the stochastic σ samplers (Euler ancestral,
    DPM-Solver++ 2S ancestral / 2M SDE / 3M SDE, EDM's churn) from one :class:`BrownianTree`
    path W on [0, σ_max] in σ, as k-diffusion's ``BrownianTreeNoiseSampler`` but batch invariant:

        z = (W(σ_next) − W(σ)) / √|σ_next − σ|,

    a standard normal for every step whose increments over any finer grid sum to the coarse one,
    so a sampler run on refined levels follows the same path and converges in the strong sense.
    Row i of z depends on (seed, offset + i) alone; the root word comes from the ``brownian``
    run stream of ``key`` (default ``backend.key(seed)``). ``shape``, ``dtype`` and ``offset``
    must be the run's; it is called inside the step, so on JAX the path is a constant of the
    compiled run (a new seed is a new sampler)."""

    def __init__(self, shape, *, sigma_max: float, seed: int = 0, key=None, backend=None, dtype=None,
                 offset: int = 0, depth: int = DEFAULT_DEPTH):
        from ..backend import get_backend
        from .context import Context

        be = get_backend(backend)
        check_int64(be)
        self.ctx = Context(be, be.dtype(dtype), validation.shape("shape", shape),
                           validation.integer("offset", offset, lo=0))
        self.tree = BrownianTree(0.0, validation.positive_float("sigma_max", sigma_max), depth)
        key = be.key(seed) if key is None else key
        self.word = root_word(be, streams.run_key(be, key, "brownian"), self.ctx.dtype)

    def __call__(self, sigma, sigma_next):
        xp = self.ctx.xp
        sigma, sigma_next = (xp.asarray(v, dtype=self.ctx.dtype, device=self.ctx.backend.device)
                             for v in (sigma, sigma_next))
        dw = self.tree.increment(self.ctx, self.word, sigma, sigma_next)
        return dw / xp.sqrt(xp.abs(sigma_next - sigma))


def check_int64(backend) -> None:
    """Raise unless ``backend``'s arrays hold int64 (the tree's generator works on 64-bit words)."""
    xp = backend.xp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns before truncating to int32
        ok = xp.zeros((1,), dtype=xp.int64).dtype == xp.int64
    if not ok:
        raise ValueError(f"brownian='tree' needs int64 arrays, which backend {backend.name!r} does not give here "
                         "(on JAX turn on x64: JaxBackend(x64=True) or JAX_ENABLE_X64=1)")


#: The noise sources of a fixed-step SDE sampler: a fresh draw per step, or a :class:`BrownianTree` path.
BROWNIAN = ("steps", "tree")


__all__ = ["BROWNIAN", "BrownianNoiseSampler", "BrownianTree", "DEFAULT_DEPTH", "TreeNoise",
           "check_int64", "root_word"]
