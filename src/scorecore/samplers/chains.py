"""The discrete Markov chains that PC's chain predictors and its correctors step on.

The reverse-diffusion and ancestral predictors discretize the SDE as a chain
x_{i+1} = x_i + f_i(x_i) + G_i z_i, stepping between the sampler's times
t_k = linspace(T, eps, N) (t_N = 0), as in score_sde:

* VP, ``vp_chain="marginal"`` (default): the DDPM chain through those times; the step
  t_k → t_{k+1} has β_k = 1 − ᾱ(t_k)/ᾱ(t_{k+1}), ᾱ(t) = m(t)², so the chain's ᾱ equals the SDE's
  at every visited time and β_k < 1 at any N.
* VP, ``vp_chain="ddpm"``: score_sde's N-level chain, β_i = β(t_i)/N at level
  i = round(t (N−1)/T) (Ho et al.'s linear 10⁻⁴..0.02 at N = 1000 with the default β's), which
  needs N > β_max and at low N is far from the SDE (N = 25: β_{N−1} = 0.8 where the marginal
  chain has 0.56).
* VE (SMLD): N levels σ_i = σ(i/(N−1)) with σ_{−1} = 0; sub-VP: Euler–Maruyama with Δt = T/N.

The correctors' step carries α = 1 under VE and α_i = 1 − β_i of the SDE's own N-level DDPM
chain under VP and sub-VP (which share β(t)), shrinking the step by ≤ 2 % at N = 1000.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .._arrays import namespace, per_sample
from ..sde import VESDE, VPSDE

#: ``vp_chain`` values (module docstring).
VP_CHAINS = ("marginal", "ddpm")


def with_levels(sde, n: int):
    """A copy of ``sde`` whose discrete chain has ``n`` levels (``sde.N = n``)."""
    chain = copy.copy(sde)
    chain.N = n
    return chain


@dataclass(frozen=True)
class MarginalVPChain:
    """The DDPM chain of a VP SDE through the sampler's times: the step t → t + Δt has
    β = 1 − ᾱ(t)/ᾱ(t + Δt) (:meth:`~scorecore.sde.VPSDE.interval_beta`)."""

    sde: VPSDE

    def discretize(self, x, t, dt):
        """(f, G) of x_{k} = √(1 − β) x_{k+1} + √β z, as ``VPSDE.discretize``."""
        xp = namespace(x)
        beta = self.sde.interval_beta(t, dt)
        return per_sample(xp.sqrt(1.0 - beta) - 1.0, x) * x, xp.sqrt(beta)


def chain_of(sde, n_steps: int, vp_chain: str = "marginal"):
    """The chain the chain predictors step on through ``n_steps`` times (module docstring)."""
    if isinstance(sde, VPSDE) and vp_chain == "marginal":
        return MarginalVPChain(sde)
    return with_levels(sde, n_steps)


def check_chain(predictor: str, sde, n_steps: int, vp_chain: str) -> None:
    """Raise ValueError if score_sde's N-level DDPM chain would have β_i = β(t_i)/N ≥ 1."""
    if isinstance(sde, VPSDE) and vp_chain == "ddpm" and n_steps <= sde.beta_max:
        raise ValueError(f"predictor {predictor!r} with vp_chain='ddpm' needs n_steps > beta_max = "
                         f"{sde.beta_max:g} (the N-level DDPM chain has β_i = β(t_i)/N < 1), got {n_steps}; "
                         "use more steps or vp_chain='marginal'")


def discretize(chain, x, t, dt):
    """(f_i, G_i) of the chain's step from t to t + dt."""
    return chain.discretize(x, t, dt) if isinstance(chain, MarginalVPChain) else chain.discretize(x, t)


def chain_alpha(sde, t: float) -> float:
    """The correctors' α at host time ``t``: 1 under VE, 1 − β_i of the N-level DDPM chain else."""
    if isinstance(sde, VESDE) or not hasattr(sde, "discrete_beta"):
        return 1.0
    return 1.0 - sde.discrete_beta(sde.chain_index(float(t)))


__all__ = ["MarginalVPChain", "VP_CHAINS", "chain_alpha", "chain_of", "check_chain", "discretize", "with_levels"]
