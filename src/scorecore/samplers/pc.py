"""The predictor–corrector sampler (Song et al. 2021, Alg. 1–3) and its one-part special cases.

For k = 0..N−1 at t_k = linspace(T, eps, N)_k (score_sde's times):
    repeat M times:  x ← corrector(x, t_k)            (M = ``n_steps_each``)
    x ← predictor(x, t_k → t_{k+1}),  t_N = 0
Any predictor (Euler–Maruyama, reverse diffusion, ancestral, none) combines with any
corrector (score_sde's Langevin with the snr rule, its capped per-sample variant, annealed
Langevin, none: :mod:`.correctors`). With ``denoise``
(default, score_sde's noise removal) the last predictor step returns its mean; for the
discrete chains that is Tweedie's E[x(0) | x(t)] at the lowest level (x + σ_0² s_θ under
VE), and with the predictor ``none`` the sampler ends with the explicit Tweedie step
x ← (x + s(eps)² s_θ(x, eps)) / m(eps) (one more evaluation).

NFE = N (p + M c) + [predictor none and denoise], p, c ∈ {0, 1} the evaluations of the
predictor and of a corrector step: exactly the score calls made.

Noise: the predictor draws from step k's key, corrector step j from its ``corrector`` stream
(:mod:`scorecore.streams`); row i depends on (seed, offset + i) only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram, Sampler
from .brownian import BROWNIAN, TreeNoise
from .chains import VP_CHAINS, chain_alpha, chain_of
from .correctors import Corrector, NoneCorrector, get_corrector
from .predictors import NonePredictor, Predictor, get_predictor


#: M = 0 with a corrector named would silently drop it: the message says corrector="none" instead.
EACH = "n_steps_each (corrector steps per predictor step; corrector='none' for none)"


@dataclass(frozen=True)
class PC(Sampler):
    """Predictor–corrector sampling.

    Parameters
    ----------
    n_steps: N ≥ 2, the predictor steps (``sample(steps=...)``).
    predictor: ``"euler-maruyama"``, ``"reverse-diffusion"`` (default), ``"ancestral"``
        (VE and VP), ``"none"``, or a :class:`~.predictors.Predictor`.
    corrector: ``"ald"`` (annealed Langevin, ε ∝ s(t)², the default), ``"langevin"``
        (score_sde's snr rule, batch-mean norms), ``"langevin-capped"`` (the snr rule with
        per-sample norms and a cap), ``"none"``, or a :class:`~.correctors.Corrector`. The
        default is ``"ald"`` because it is batch invariant and stable in every dimension;
        ``"langevin"`` makes a sample depend on its batch.
    snr: r in the corrector's step rule (default 0.16, as score_sde).
    n_steps_each: M ≥ 1, corrector steps per predictor step (ignored with corrector ``"none"``).
    denoise: noise-free last step / final Tweedie step (see the module docstring).
    vp_chain: the DDPM chain of the reverse-diffusion and ancestral predictors under VP:
        ``"marginal"`` (default; β_k = 1 − ᾱ(t_k)/ᾱ(t_{k+1}) through the visited times, any
        N ≥ 2) or ``"ddpm"`` (score_sde's β_i = β(t_i)/N, needs N > β_max; :mod:`.predictors`).
    brownian: the predictor's noise: ``"steps"`` (default, a fresh draw from each step's key)
        or ``"tree"`` (increments of one :class:`~.brownian.BrownianTree` path on [0, T], the
        same path at every step count, so Euler–Maruyama converges strongly as steps grow).
    """

    n_steps: int = option(1000, validation.steps, lo=2)
    predictor: str | Predictor = "reverse-diffusion"
    corrector: str | Corrector = "ald"
    snr: float = option(0.16, validation.positive_float)
    n_steps_each: int = option(1, validation.steps, label=EACH)
    denoise: bool = option(True, validation.boolean)
    vp_chain: str = option("marginal", validation.choice, choices=VP_CHAINS)
    brownian: str = option("steps", validation.choice, choices=BROWNIAN)

    name = "pc"

    def __post_init__(self):
        super().__post_init__()
        pred, corr = get_predictor(self.predictor), get_corrector(self.corrector)
        if isinstance(pred, NonePredictor) and isinstance(corr, NoneCorrector):
            raise ValueError("predictor and corrector cannot both be 'none'")

    @property
    def parts(self) -> tuple[Predictor, Corrector, int]:
        """(predictor, corrector, M): the resolved parts and the corrector steps per step."""
        corr = get_corrector(self.corrector)
        return get_predictor(self.predictor), corr, 0 if isinstance(corr, NoneCorrector) else self.n_steps_each

    def nfe(self) -> int:
        """The exact score evaluations of one run."""
        pred, corr, M = self.parts
        n = self.n_steps * (pred.nfe + M * corr.nfe)
        return n + int(self.denoise and isinstance(pred, NonePredictor))

    def times(self, sde, eps: float) -> list[float]:
        """t_k = linspace(T, eps, N), k = 0..N−1."""
        N, T = self.n_steps, sde.T
        return [T + (eps - T) * k / (N - 1) for k in range(N - 1)] + [eps]

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        (pred, corr, M), N = self.parts, self.n_steps
        pred.check(sde, N, self.vp_chain)
        psde = chain_of(sde, N, self.vp_chain) if pred.chain else sde
        none_pred = isinstance(pred, NonePredictor)
        times = self.times(sde, eps)
        nexts = times[1:] + [0.0]
        keep = [1.0] * (N - 1) + [0.0 if self.denoise else 1.0]
        t_arr, dt_arr = ctx.times(times), ctx.times([b - a for a, b in zip(times, nexts)])
        c_arr, a_arr = ctx.times(keep), ctx.times([chain_alpha(sde, t) for t in times])
        # Schedule coefficients on the 0-D t_k; the model alone sees the (n,) time.
        score = ctx.batched(model)

        tree = TreeNoise.build(ctx, 0.0, sde.T) if self.brownian == "tree" else None
        next_arr = ctx.times(nexts)  # W's times exactly as the next step starts from them

        def step(k, state, key):
            # With a Brownian tree the state carries the path (its root word and W(t_k)) beside x.
            x, path = state if tree else (state, None)
            t = t_arr[k]
            for j in range(M):
                x = corr.update(score, sde, x, t, ctx.normal(key, "corrector", j), self.snr, a_arr[k])
            if not none_pred:
                if tree:
                    z, path = tree.step(ctx, k, key, path, t, next_arr[k])
                else:
                    z = ctx.normal(key)
                x = pred.update(score, psde, x, t, dt_arr[k], z, c_arr[k])
            return (x, path) if tree else x

        def finish(state, key):
            x = state[0] if tree else state
            if not (none_pred and self.denoise):
                return x
            t = t_arr[N - 1]
            return sde.tweedie(x, t, score(x, t))

        # The state after step k sits at t_k's successor (the predictor moved it), or at t_k
        # itself when only the corrector ran.
        extra = {"init": lambda x: (x, TreeNoise.empty(ctx)), "sample_of": lambda s: s[0]} if tree else {}
        return FixedProgram((sde.T, *(times if none_pred else nexts)), self.nfe(), step, finish=finish, **extra)


__all__ = ["PC"]
