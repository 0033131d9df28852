"""The predictor–corrector sampler (Song et al. 2021, Alg. 1–3) and its one-part special cases.

For k = 0..N−1 at t_k = linspace(T, eps, N)_k (score_sde's times):
    repeat M times:  x ← corrector(x, t_k)            (M = ``n_steps_each``)
    x ← predictor(x, t_k → t_{k+1}),  t_N = 0
Any predictor (Euler–Maruyama, reverse diffusion, ancestral, none) combines with any
corrector (Langevin with the snr rule, annealed Langevin, none). With ``denoise``
(default, score_sde's noise removal) the last predictor step returns its mean; for the
discrete chains that is Tweedie's E[x(0) | x(t)] at the lowest level (x + σ_0² s_θ under
VE), and with the predictor ``none`` the sampler ends with the explicit Tweedie step
x ← (x + s(eps)² s_θ(x, eps)) / m(eps) (one more evaluation).

NFE = N (p + M c) + [predictor none and denoise], p, c ∈ {0, 1} the evaluations of the
predictor and of a corrector step: exactly the score calls made.

Noise: step k's key is fold_in(key, k); the predictor draws normal(key_k), corrector
step j draws normal(fold_in(key_k, j + 1)); row i depends on (seed, offset + i) only.
"""

from __future__ import annotations

import math

from .base import Context, Program, Sampler
from .correctors import NoneCorrector, chain_alpha, get_corrector
from .predictors import NonePredictor, get_predictor, with_levels


def _int_at_least(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an int ≥ {lo}, got {v!r}")
    return v


class PC(Sampler):
    """Predictor–corrector sampling.

    Parameters
    ----------
    n_steps: N ≥ 2, the predictor steps (``sample(steps=...)``).
    predictor: ``"euler-maruyama"``, ``"reverse-diffusion"`` (default), ``"ancestral"``
        (VE and VP), ``"none"``, or a :class:`~.predictors.Predictor`.
    corrector: ``"ald"`` (annealed Langevin, ε ∝ s(t)², the default), ``"langevin"`` (the
        snr rule with per-sample norms), ``"langevin-batch"`` (score_sde's batch-mean norms),
        ``"none"``, or a :class:`~.correctors.Corrector`. The default is ``"ald"`` because it
        is both batch invariant and stable in every dimension: per-sample norms blow up in
        low dimension where ‖s_θ‖ → 0 near a mode, and batch-mean norms make a sample
        depend on its batch.
    snr: r in the corrector's step rule (default 0.16, as score_sde).
    n_steps_each: M, corrector steps per predictor step (alias ``corrector_steps``).
    denoise: noise-free last step / final Tweedie step (see the module docstring).
    """

    name = "pc"

    def __init__(self, n_steps: int = 1000, predictor="reverse-diffusion", corrector="ald",
                 snr: float = 0.16, n_steps_each: int = 1, corrector_steps: int | None = None,
                 denoise: bool = True):
        self.n_steps = _int_at_least("n_steps", n_steps, 2)
        self.predictor = get_predictor(predictor)
        self.corrector = get_corrector(corrector)
        if isinstance(snr, bool) or not isinstance(snr, (int, float)) or not (math.isfinite(snr) and snr > 0):
            raise ValueError(f"snr must be a positive finite number, got {snr!r}")
        self.snr = float(snr)
        if corrector_steps is not None:
            n_steps_each = corrector_steps
        self.n_steps_each = _int_at_least("n_steps_each", n_steps_each, 0)
        if isinstance(self.corrector, NoneCorrector):
            self.n_steps_each = 0
        if isinstance(self.predictor, NonePredictor) and self.n_steps_each == 0:
            raise ValueError("predictor and corrector cannot both be 'none'")
        self.denoise = bool(denoise)

    def nfe(self) -> int:
        """The exact score evaluations of one run."""
        n = self.n_steps * (self.predictor.nfe + self.n_steps_each * self.corrector.nfe)
        return n + int(self.denoise and isinstance(self.predictor, NonePredictor))

    def times(self, sde, eps: float) -> list[float]:
        """t_k = linspace(T, eps, N), k = 0..N−1."""
        N, T = self.n_steps, sde.T
        return [T + (eps - T) * k / (N - 1) for k in range(N - 1)] + [eps]

    def program(self, model, sde, ctx: Context, eps: float) -> Program:
        pred, corr, M, N = self.predictor, self.corrector, self.n_steps_each, self.n_steps
        pred.check(sde, N)
        psde = with_levels(sde, N) if pred.chain else sde
        none_pred = isinstance(pred, NonePredictor)
        times = self.times(sde, eps)
        nexts = times[1:] + [0.0]
        keep = [1.0] * (N - 1) + [0.0 if self.denoise else 1.0]
        t_arr, dt_arr = ctx.times(times), ctx.times([b - a for a, b in zip(times, nexts)])
        c_arr, a_arr = ctx.times(keep), ctx.times([chain_alpha(sde, t) for t in times])
        be = ctx.backend
        # Schedule coefficients on the 0-D t_k; the model alone sees the (n,) time.
        score = ctx.batched(model)

        def step(k, x, key):
            t = t_arr[k]
            for j in range(M):
                x = corr.update(score, sde, x, t, ctx.normal(be.fold_in(key, j + 1)), self.snr, a_arr[k])
            if none_pred:
                return x
            return pred.update(score, psde, x, t, dt_arr[k], ctx.normal(key), c_arr[k])

        def finish(x):
            if not (none_pred and self.denoise):
                return x
            t = t_arr[N - 1]
            return sde.tweedie(x, t, score(x, t))

        # The state after k steps is at t_k's successor (the predictor moved it), or at t_{k−1}
        # itself when only the corrector ran.
        after = times if none_pred else nexts
        return Program(n_steps=N, nfe=self.nfe(), init=lambda x: x, step=step, finish=finish,
                       time_of_step=lambda k: times[min(k, N - 1)],
                       state_time=lambda k: sde.T if k == 0 else after[k - 1])


class EulerMaruyama(PC):
    """Euler–Maruyama on the reverse-time SDE (PC with predictor ``euler-maruyama``,
    corrector ``none`` by default)."""

    name = "reverse-sde"

    def __init__(self, n_steps: int = 1000, corrector="none", **options):
        super().__init__(n_steps, predictor="euler-maruyama", corrector=corrector, **options)


class ReverseDiffusion(PC):
    """Reverse diffusion (Song et al. 2021, eq. 46), corrector ``none`` by default."""

    name = "reverse-diffusion"

    def __init__(self, n_steps: int = 1000, corrector="none", **options):
        super().__init__(n_steps, predictor="reverse-diffusion", corrector=corrector, **options)


class Ancestral(PC):
    """Ancestral sampling (DDPM under VP, SMLD under VE), corrector ``none`` by default."""

    name = "ancestral"

    def __init__(self, n_steps: int = 1000, corrector="none", **options):
        super().__init__(n_steps, predictor="ancestral", corrector=corrector, **options)
