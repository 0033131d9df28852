"""Correctors of the predictor–corrector sampler (Song et al. 2021, Alg. 4 and 5).

A corrector runs Langevin MCMC at a fixed time t to pull x towards p_t:

    x ← x + ε s_θ(x, t) + √(2ε) z,        z ~ N(0, I),

(ε is half the step δ of the form x + (δ/2)∇log p + √δ z). Its size follows a
target signal-to-noise ratio r = ``snr``, a rule that score_sde's code applies but
does not document. Precisely:

* Langevin (Alg. 4): ε = 2 α (r ‖z‖ / ‖s_θ(x, t)‖)², with the norms taken **per
  sample** over the event axes (score_sde takes batch means, which makes a sample
  depend on the rest of its batch). Then ‖ε s_θ‖ / ‖√(2ε) z‖ = r √α: the drift
  moves each sample r√α times as far as the noise does. Typical r: 0.16 (score_sde's
  CIFAR-10 settings); r ≈ 0.1–0.2 works on the 2-D and 16-D mixtures.
* Annealed Langevin (Song & Ermon 2019, as in score_sde's AnnealedLangevinDynamics):
  ε = 2 α (r s(t))², s(t) the kernel std at t, i.e. the ε ∝ σ_i² rule of Alg. 1.

α = 1 under VE; under VP and sub-VP α = α_i = 1 − β_i of the SDE's own DDPM chain
(β_i = (β_min + i (β_max − β_min)/(N−1))/N, i = round(t (N−1)/T), N = ``sde.N``),
which shrinks the step by ≤ 2 % at the default N = 1000. (score_sde reads α from
an attribute that sub-VP lacks, so its corrector crashes on sub-VP; here the
formula needs only β(t), which VP and sub-VP share.)
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from .._arrays import namespace, per_sample, sum_event
from ..sde import VESDE


def chain_alpha(sde, t: float) -> float:
    """α for the corrector at host time ``t``: 1 under VE, 1 − β_i of the N-level DDPM chain else."""
    if isinstance(sde, VESDE) or not hasattr(sde, "discrete_beta"):
        return 1.0
    return 1.0 - sde.discrete_beta(sde.chain_index(float(t)))


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


@dataclass(frozen=True)
class LangevinCorrector(Corrector):
    """Langevin with the signal-to-noise rule ε = 2α (snr ‖z‖/‖s_θ‖)².

    ``norms="sample"`` (default): per-sample norms, batch invariant. ``norms="batch"``:
    score_sde's batch means of the norms, which make each sample depend on its batch
    (chunked runs then differ) but tame the rule in low dimension: per sample, ‖z‖/‖s_θ‖
    is heavy-tailed when the event dimension d is small (‖s_θ‖ → 0 near a mode; for
    d = 2 the squared ratio has no mean), so some steps throw samples far off — on the
    2-D 8-ring, per-sample norms with snr = 0.16 land at SW₂ ≈ 3–7 where batch norms or
    the annealed corrector reach the noise floor. Use ``"ald"`` or batch norms for d ≲ 10.
    """

    norms: str = "sample"

    name = "langevin"

    def __post_init__(self):
        validation.choice("norms", self.norms, ("sample", "batch"))

    def update(self, model, sde, x, t, z, snr, alpha):
        xp = namespace(x)
        s = model(x, t)
        s_norm = xp.sqrt(sum_event(xp, s * s))
        z_norm = xp.sqrt(sum_event(xp, z * z))
        if self.norms == "batch":
            s_norm, z_norm = xp.mean(s_norm) * xp.ones_like(s_norm), xp.mean(z_norm) * xp.ones_like(z_norm)
        # A zero score (at a mode) would give an infinite step; the floor keeps it finite.
        eps = 2.0 * alpha * (snr * z_norm / xp.maximum(s_norm, xp.full_like(s_norm, 1e-30))) ** 2
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
CORRECTORS = {
    "langevin": LangevinCorrector,
    "langevin-batch": lambda: LangevinCorrector(norms="batch"),
    "ald": AnnealedLangevinCorrector,
    "annealed-langevin": AnnealedLangevinCorrector,
    "none": NoneCorrector,
}


def get_corrector(c) -> Corrector:
    """A corrector from a name or an instance."""
    if isinstance(c, Corrector):
        return c
    return CORRECTORS[validation.choice("corrector", c, sorted(CORRECTORS))]()


__all__ = ["AnnealedLangevinCorrector", "CORRECTORS", "Corrector", "LangevinCorrector", "NoneCorrector", "chain_alpha",
           "get_corrector"]
