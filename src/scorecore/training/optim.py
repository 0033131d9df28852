"""Adam, global-norm gradient clipping, weight EMA and learning-rate warm-up, in the Array API.

No library does Adam for Array API arrays (NumPy, CuPy, array-api-strict), so it is
written here, small and exact: the same float operations, in the same order, as
``torch.optim.Adam``'s single-tensor update (tested to agree to float64 round-off).
Parameters, gradients and moments are dicts ``{name: array}``; every function is pure
(returns new dicts, never writes into the caller's arrays).
"""

from __future__ import annotations

import math

from .. import validation
from .._arrays import namespace


def warmup_lr(step: int, lr: float, warmup: int) -> float:
    """The learning rate of (0-based) update ``step``: lr·min((step + 1)/warmup, 1).

    Linear warm-up as in score_sde's ``optimization_manager`` (lr·min(k/warmup, 1)),
    counting updates from 1 so that the first update is not a zero step.
    """
    if warmup <= 0:
        return float(lr)
    return float(lr) * min((step + 1) / warmup, 1.0)


def global_norm(grads: dict):
    """‖g‖ = (Σ_θ Σ g_θ²)^½ over every array of ``grads`` (a 0-D array)."""
    arrays = list(grads.values())
    xp = namespace(*arrays)
    return xp.sqrt(sum(xp.sum(g * g) for g in arrays))


def clip_by_global_norm(grads: dict, max_norm: float | None) -> dict:
    """g · min(1, max_norm/(‖g‖ + 10⁻⁶)), the rule of ``torch.nn.utils.clip_grad_norm_``
    (score_sde's ``grad_clip``); ``max_norm`` None or ≤ 0 leaves ``grads`` as they are."""
    if max_norm is None or max_norm <= 0:
        return dict(grads)
    xp = namespace(*grads.values())
    coef = xp.clip(max_norm / (global_norm(grads) + 1e-6), max=1.0)
    return {k: g * coef for k, g in grads.items()}


def ema_update(ema: dict, params: dict, decay: float) -> dict:
    """θ̄ ← θ̄ − (1 − μ)(θ̄ − θ): the exponential moving average of the weights
    (NCSNv2's technique 5, Song & Ermon 2020), evaluated and sampled instead of θ."""
    return {k: e - (1.0 - decay) * (e - params[k]) for k, e in ema.items()}


class Adam:
    """Adam (Kingma & Ba 2015) exactly as ``torch.optim.Adam`` computes it:

        m_k = m_{k−1} + (1 − β₁)(g − m_{k−1})            (torch's lerp)
        v_k = β₂ v_{k−1} + (1 − β₂) g²
        θ_k = θ_{k−1} − (lr/(1 − β₁ᵏ)) · m_k / (√v_k/√(1 − β₂ᵏ) + ε)

    The state is ``{"m": {...}, "v": {...}, "count": k}`` (k an int, the number of updates).
    """

    def __init__(self, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.b1 = validation.real("b1", b1, lo=0.0, hi=1.0, hi_open=True)
        self.b2 = validation.real("b2", b2, lo=0.0, hi=1.0, hi_open=True)
        self.eps = validation.nonneg_float("eps", eps)

    def init(self, params: dict) -> dict:
        """Zero moments and count 0."""
        return {"m": {k: 0.0 * p for k, p in params.items()}, "v": {k: 0.0 * p for k, p in params.items()},
                "count": 0}

    def update(self, params: dict, grads: dict, state: dict, lr: float) -> tuple[dict, dict]:
        """(new params, new state) after one update with gradients ``grads``."""
        xp = namespace(*params.values())
        count = state["count"] + 1
        step_size = lr / (1.0 - self.b1**count)
        bc2_sqrt = math.sqrt(1.0 - self.b2**count)
        new_p, m, v = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            m[k] = state["m"][k] + (1.0 - self.b1) * (g - state["m"][k])
            v[k] = state["v"][k] * self.b2 + (1.0 - self.b2) * (g * g)
            new_p[k] = p - step_size * (m[k] / (xp.sqrt(v[k]) / bc2_sqrt + self.eps))
        return new_p, {"m": m, "v": v, "count": count}


__all__ = ["Adam", "clip_by_global_norm", "ema_update", "global_norm", "warmup_lr"]
