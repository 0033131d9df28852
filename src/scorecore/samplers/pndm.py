"""Pseudo numerical methods (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on
Manifolds", §3–4): PNDM with its Runge–Kutta warm-up, and PLMS with the warm-up of diffusers'
``PNDMScheduler(skip_prk_steps=True)``.

The transfer part φ is DDIM's deterministic step (the paper's eq. 9): from x_t with a noise
prediction ε to t' it is, in σ-space (x̂ = x/m, σ = s/m, see :mod:`.sigma_space`),

    φ(x̂, ε, σ → σ') = x̂ + (σ' − σ) ε,    ε(x̂, σ) = (x̂ − D(x̂; σ))/σ = −s s_θ(x, t).

The gradient part replaces ε by a combination of noise predictions e_i = ε(x̂_i, σ_i):

* PLMS (eq. 12), the 4-step Adams–Bashforth weights of equal steps,
  e'_i = (55 e_i − 59 e_{i−1} + 37 e_{i−2} − 9 e_{i−3})/24 (orders 1–3, (3 e_i − e_{i−1})/2 and
  (23 e_i − 16 e_{i−1} + 5 e_{i−2})/12, while fewer e's exist), one evaluation per step;
* PRK (eq. 13), the classical Runge–Kutta stages through φ at the midpoint level σ_m of time
  t_m = (t_i + t_{i+1})/2: e¹ = e_i, e² = ε(φ(x̂_i, e¹, σ_i → σ_m), σ_m),
  e³ = ε(φ(x̂_i, e², σ_i → σ_m), σ_m), e⁴ = ε(φ(x̂_i, e³, σ_i → σ_{i+1}), σ_{i+1}),
  e' = (e¹ + 2e² + 2e³ + e⁴)/6: four evaluations.

``"pndm"`` takes PRK steps for the first three steps (only e¹ of each enters the history), then
PLMS: N steps cost N + 9. ``"plms"`` (``warmup="heun"``) starts with one Heun step,
e' = (e_0 + ε(φ(x̂_0, e_0, σ_0 → σ_1), σ_1))/2, whose second evaluation is not kept, then
PLMS: N + 1 evaluations. Both equal diffusers' scheduler on the same levels (with the DDPM
chain's times, :class:`~scorecore.sde.DiscreteVPSDE`). A warm-up step never evaluates at σ = 0:
a step into σ = 0 is always PLMS (x̂_N = x̂ − σ e', no evaluation there). The weights are those
of equal steps whatever the spacing of the levels (as in the paper); :class:`.LMS` fits
variable steps instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram
from .sigma_grid import SigmaSampler
from .sigma_space import sigma_of_time

#: Adams–Bashforth weights of equal steps, newest noise prediction first (PNDM's eq. 12).
ADAMS_BASHFORTH = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))

#: warm-up -> how many steps it takes (at most), and the evaluations of each.
WARMUPS = {"prk": (3, 4), "heun": (1, 2)}


@dataclass(frozen=True)
class PNDM(SigmaSampler):
    """PNDM / PLMS on σ levels: N steps, N + 9 (``"prk"``) or N + 1 (``"heun"``) score
    evaluations (σ-grid options: :class:`.SigmaSampler`).

    Parameters
    ----------
    warmup:
        ``"prk"``: three pseudo Runge–Kutta steps (the paper's PNDM); ``"heun"``: one pseudo
        Heun step (diffusers' ``skip_prk_steps=True``, the ``"plms"`` preset).
    """

    warmup: str = option("prk", validation.choice, choices=WARMUPS)

    name = "pndm"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        steps, evals = WARMUPS[self.warmup]
        W = min(steps, g.K)  # warm-up steps: never one into σ = 0
        t_mid = [0.5 * (g.t[k] + g.t[k + 1]) for k in range(W)]
        sig_mid = [sigma_of_time(sde, t) for t in t_mid]
        T_MID, M_MID = ctx.times(t_mid), ctx.times([float(sde.marginal(t)[0]) for t in t_mid])
        # AB[j][k]: step k's weight on e_{k−j} (order min(k + 1, 4)); the unused ones are 0.
        rows = [ADAMS_BASHFORTH[min(k, 3)] for k in range(g.N)]
        AB = [ctx.times([r[j] if j < len(r) else 0.0 for r in rows]) for j in range(4)]

        def eps_at(xh, t, m, sigma):
            return (xh - g.denoise(xh, t, m)) / sigma

        def warm(k, xh, e):
            """e' of a Runge–Kutta (or Heun) step k from x̂ with e = ε(x̂, σ_k); k a Python int."""
            sk, sn = g.sig[k], g.sig[k + 1]
            if self.warmup == "heun":
                return 0.5 * (e + eps_at(xh + (sn - sk) * e, g.T[k + 1], g.M[k + 1], sn))
            tm, mm, sm = T_MID[k], M_MID[k], sig_mid[k]
            e2 = eps_at(xh + (sm - sk) * e, tm, mm, sm)
            e3 = eps_at(xh + (sm - sk) * e2, tm, mm, sm)
            e4 = eps_at(xh + (sn - sk) * e3, g.T[k + 1], g.M[k + 1], sn)
            return (e + 2.0 * e2 + 2.0 * e3 + e4) / 6.0

        def step(k, state, key, last):
            x, past = state[0], state[1:]
            xh, den = g.start(k, x)
            e = (xh - den) / g.SIG[k]
            if isinstance(k, int) and k < W:
                e_new = warm(k, xh, e)
            else:
                e_new = AB[0][k] * e
                for j in range(1, 4):
                    e_new = e_new + AB[j][k] * past[j - 1]
            xh = xh + (g.SIG[k + 1] - g.SIG[k]) * e_new
            return (g.M[k + 1] * xh, e) + past[:2]

        nfe = g.N + (evals - 1) * W
        return g.program(nfe, step, init=lambda x: (x,) + (0.0 * x,) * 3, sample_of=lambda s: s[0], unrolled=W)


__all__ = ["ADAMS_BASHFORTH", "PNDM", "WARMUPS"]
