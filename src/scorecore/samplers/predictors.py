"""Predictors of the predictor–corrector sampler (Song et al. 2021, §4.2 and App. E–G).

A predictor moves x from time t_k to t_{k+1} < t_k along the reverse-time SDE
``dx = [f(x, t) − g(t)² ∇ₓ log p_t(x)] dt + g(t) dw̄`` with one score evaluation.
Each update is ``x ← mean + c·G·z`` with z ~ N(0, I) and c ∈ {0, 1}: c = 0 on the
last step returns the step's mean (score_sde's "noise removal").

* Euler–Maruyama, with Δt = t_{k+1} − t_k < 0:
  mean = x + [f(x, t) − g(t)² s_θ(x, t)] Δt,  G = g(t) √|Δt|.
* Reverse diffusion (eq. 46), from the forward chain x_{i+1} = x_i + f_i(x_i) + G_i z_i:
  mean = x − f_i(x) + G_i² s_θ(x, t_i),  G = G_i (``sde.reverse(score).discretize``).
* Ancestral sampling (App. F), from the posterior of the discrete chain:
  SMLD (VE): mean = x + (σ_i² − σ_{i−1}²) s_θ,  G = √(σ_{i−1}² (σ_i² − σ_{i−1}²) / σ_i²);
  DDPM (VP): mean = (x + β_i s_θ)/√(1 − β_i),  G = √β_i.
* None: x unchanged, no evaluation.

The chain predictors (reverse diffusion, ancestral) step on the chains of :mod:`.chains`.
"""

from __future__ import annotations

from .. import validation
from .._arrays import namespace, per_sample
from ..sde import VESDE, VPSDE
from .chains import check_chain, discretize


class Predictor:
    """Base: ``update(model, sde, x, t, dt, z, c)`` with t, dt and c 0-D (``model`` takes
    care of giving the score model its (n,) time: ``Context.batched``)."""

    name = "predictor"
    nfe = 1
    #: Whether ``sde`` must be the discrete chain (:func:`.chains.chain_of`).
    chain = False

    def check(self, sde, n_steps: int, vp_chain: str = "marginal") -> None:
        """Raise ValueError if this predictor is not defined for ``sde`` with ``n_steps`` steps."""
        if self.chain:
            check_chain(self.name, sde, n_steps, vp_chain)

    def update(self, model, sde, x, t, dt, z, c):
        raise NotImplementedError


class EulerMaruyamaPredictor(Predictor):
    """x ← x + [f − g² s_θ] Δt + c g √|Δt| z."""

    name = "euler-maruyama"

    def update(self, model, sde, x, t, dt, z, c):
        xp = namespace(x)
        mean = x + sde.reverse_drift(x, t, model(x, t)) * dt
        g = sde.diffusion(t)
        return mean + per_sample(c * g * xp.sqrt(-dt), x) * z


class ReverseDiffusionPredictor(Predictor):
    """x ← x − f_i + G_i² s_θ + c G_i z (Song et al. 2021, eq. 46)."""

    name = "reverse-diffusion"
    chain = True

    def update(self, model, sde, x, t, dt, z, c):
        f, G = discretize(sde, x, t, dt)
        return x - (f - per_sample(G, x) ** 2 * model(x, t)) + per_sample(c * G, x) * z


class AncestralPredictor(Predictor):
    """Ancestral sampling of the SMLD (VE) or DDPM (VP) chain (Song et al. 2021, App. F)."""

    name = "ancestral"
    chain = True

    def check(self, sde, n_steps: int, vp_chain: str = "marginal") -> None:
        super().check(sde, n_steps, vp_chain)
        if not isinstance(sde, (VESDE, VPSDE)):
            raise ValueError(f"predictor 'ancestral' is defined for VESDE (SMLD) and VPSDE (DDPM), "
                             f"not {type(sde).__name__}; use 'reverse-diffusion' or 'euler-maruyama'")

    def update(self, model, sde, x, t, dt, z, c):
        xp = namespace(x)
        _, G = discretize(sde, x, t, dt)  # G² = σ_i² − σ_{i−1}² (SMLD) or β (DDPM)
        G2 = per_sample(G * G, x)
        s = model(x, t)
        if isinstance(sde, VESDE):
            sigmas = sde.discrete_sigmas(like=x)
            i = xp.astype(xp.round(t * ((sde.N - 1) / sde.T)), xp.int64)
            sigma2 = per_sample(xp.reshape(xp.take(sigmas, xp.reshape(i, (-1,)), axis=0), i.shape) ** 2, x)
            mean = x + G2 * s
            std = xp.sqrt((sigma2 - G2) * G2 / sigma2)
        else:
            mean = (x + G2 * s) / xp.sqrt(1.0 - G2)
            std = xp.sqrt(G2)
        return mean + c * std * z


class NonePredictor(Predictor):
    """No prediction: PC's step is the corrector alone (corrector-only sampling)."""

    name = "none"
    nfe = 0


PREDICTORS = {p.name: p for p in (EulerMaruyamaPredictor, ReverseDiffusionPredictor, AncestralPredictor, NonePredictor)}


def get_predictor(p) -> Predictor:
    """A predictor from a name or an instance."""
    return validation.named("predictor", p, Predictor, PREDICTORS)


__all__ = ["AncestralPredictor", "EulerMaruyamaPredictor", "NonePredictor", "PREDICTORS", "Predictor",
           "ReverseDiffusionPredictor", "get_predictor"]
