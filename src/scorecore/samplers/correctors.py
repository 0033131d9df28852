"""Correctors of the predictor–corrector sampler (Song et al. 2021, Alg. 4 and 5).

A corrector runs Langevin MCMC at a fixed time t to pull x towards p_t:

    x ← x + ε s_θ(x, t) + √(2ε) z,        z ~ N(0, I),

(ε is half the step δ of the form x + (δ/2)∇log p + √δ z). Its size follows a
target signal-to-noise ratio r = ``snr``, a rule that score_sde's code applies but
does not document. Precisely:

* Langevin (Alg. 4, ``"langevin"``), score_sde's ``LangevinCorrector``:
  ε = 2 α (r ‖z‖̄ / ‖s_θ(x, t)‖̄)², ‖·‖̄ the mean over the batch of the per-sample norms
  over the event axes. Then on average ‖ε s_θ‖ / ‖√(2ε) z‖ = r √α: the drift moves a
  sample r√α times as far as the noise does. The batch means make each sample depend on
  the rest of its batch (a chunked run differs from one big run), by construction. Typical
  r: 0.16 (score_sde's CIFAR-10 settings).
* Capped per-sample Langevin (``"langevin-capped"``): the same rule with each sample's own
  norms, its ratio capped at κ s(t) (s(t) the kernel std, κ = ``cap``, default 2):
  ε_i = 2 α r² min(‖z_i‖² / ‖s_θ(x_i, t)‖², κ² s(t)²). Batch invariant. Without the cap the
  step diverges in low dimension: ‖s_θ‖ → 0 near a mode of p_t, and for d = 2 the squared
  ratio has no mean, so a few steps throw samples far off (on the 8-ring at snr 0.16, PC
  with 100 or 500 steps, VP and VE, means of 3 seeds: 14–50× the noise floor uncapped,
  0.98–1.21× capped; ``benchmarks/results/langevin_correctors.md``). At high
  noise s_θ is close to the kernel's score, of norm ≈ ‖z‖/s(t), so the ratio is ≈ s(t) and
  the cap binds only in the tail: there ε is at most κ² = 4 times the annealed step below.
* Annealed Langevin (Song & Ermon 2019, as in score_sde's AnnealedLangevinDynamics):
  ε = 2 α (r s(t))², s(t) the kernel std at t, i.e. the ε ∝ σ_i² rule of Alg. 1.

α = 1 under VE and α_i = 1 − β_i of the DDPM chain under VP and sub-VP (:func:`.chains.chain_alpha`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from ..validation import option
from .._arrays import namespace, per_sample, sum_event


class Corrector:
    """Base: ``update(model, sde, x, t, z, snr, alpha)`` with t and alpha 0-D (``model``
    gives the score model its (n,) time: ``Context.batched``)."""

    name = "corrector"
    #: score evaluations per corrector step
    nfe = 1

    def update(self, model, sde, x, t, z, snr: float, alpha):
        raise NotImplementedError


def _langevin_move(x, s, eps, z):
    """x + ε s + √(2ε) z for ε 0-D or per sample, of shape (n,)."""
    xp = namespace(x)
    return x + per_sample(eps, x) * s + per_sample(xp.sqrt(2.0 * eps), x) * z


class LangevinCorrector(Corrector):
    """score_sde's Langevin corrector: ε = 2α (snr ‖z‖̄/‖s_θ‖̄)² with batch means of the norms
    (so not batch invariant, unlike ``"langevin-capped"`` and ``"ald"``)."""

    name = "langevin"

    def update(self, model, sde, x, t, z, snr, alpha):
        xp = namespace(x)
        s = model(x, t)
        s_norm = xp.mean(xp.sqrt(sum_event(xp, s * s)))
        z_norm = xp.mean(xp.sqrt(sum_event(xp, z * z)))
        # A zero score (every sample at a mode) would give an infinite step; the floor keeps it finite.
        eps = 2.0 * alpha * (snr * z_norm / xp.maximum(s_norm, xp.full_like(s_norm, 1e-30))) ** 2
        return _langevin_move(x, s, eps, z)


@dataclass(frozen=True)
class CappedLangevinCorrector(Corrector, validation.Checked):
    """Per-sample Langevin: ε_i = 2α snr² min(‖z_i‖²/‖s_θ(x_i)‖², (cap · s(t))²), batch invariant."""

    cap: float = option(2.0, validation.positive_float)

    name = "langevin-capped"

    def update(self, model, sde, x, t, z, snr, alpha):
        xp = namespace(x)
        s = model(x, t)
        _, std = sde.marginal(t)
        s2 = sum_event(xp, s * s)
        ratio2 = sum_event(xp, z * z) / xp.maximum(s2, xp.full_like(s2, 1e-30))
        eps = 2.0 * alpha * snr**2 * xp.minimum(ratio2, (self.cap * std) ** 2 * xp.ones_like(ratio2))
        return _langevin_move(x, s, eps, z)


class AnnealedLangevinCorrector(Corrector):
    """Annealed Langevin: ε = 2α (snr · s(t))² with s(t) the kernel std."""

    name = "ald"

    def update(self, model, sde, x, t, z, snr, alpha):
        _, std = sde.marginal(t)
        eps = 2.0 * alpha * (snr * std) ** 2
        return _langevin_move(x, model(x, t), eps, z)


class NoneCorrector(Corrector):
    """No correction: PC runs no corrector step (M = 0)."""

    name = "none"
    nfe = 0


#: name -> constructor
CORRECTORS = {"langevin": LangevinCorrector, "langevin-capped": CappedLangevinCorrector, "ald": AnnealedLangevinCorrector,
              "annealed-langevin": AnnealedLangevinCorrector, "none": NoneCorrector}


def get_corrector(c) -> Corrector:
    """A corrector from a name or an instance."""
    return validation.named("corrector", c, Corrector, CORRECTORS)


__all__ = ["AnnealedLangevinCorrector", "CORRECTORS", "CappedLangevinCorrector", "Corrector", "LangevinCorrector",
           "NoneCorrector", "get_corrector"]
