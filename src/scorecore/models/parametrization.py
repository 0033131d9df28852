"""Score parametrizations and the conversions between them, through the SDE's kernel.

Under a linear SDE the kernel is ``x_t = m(t) x_0 + s(t) z`` (z ~ N(0, I)), so a
network may predict any of four quantities, each an affine image of the score
``∇ₓ log p_t(x)`` (Vincent 2011; Ho et al. 2020; Song & Ermon 2020; Karras et al. 2022):

* noise ε (DDPM):          ε(x, t) = E[z | x_t = x] = −s(t) ∇ₓ log p_t(x)
* NCSNv2 ``f(x)/σ``:        ∇ₓ log p_t(x) = f(x, t) / s(t), i.e. f = −ε
* EDM denoiser D(y; σ):    with σ = s/m and y = x/m, x_t = m (x_0 + σ z) so that y is
  x_0 plus noise of std σ and D(y; σ) = E[x_0 | y]. Tweedie's formula in y,
  D = y + σ² ∇_y log p_σ(y), with ∇_y log p_σ(y) = m ∇ₓ log p_t(m y), gives

      ∇ₓ log p_t(x) = (m D(x/m; s/m) − x) / s²,    D(y; σ) = (x + s² ∇ₓ log p_t(x)) / m |_{x = m y}.

Every conversion is therefore ``out(x, t) = α · inner(β x, τ) + γ x`` with per-sample
scalars (α, β, τ, γ) computed from the SDE, which is what :class:`Converted` holds.
That form also carries the inner model's exact ``divergence``, ``jvp`` and ``vjp``
through: ``∇ₓ·out = α β ∇·inner + γ d`` and ``∂out/∂x · v = α β (∂inner · v) + γ v``.
"""

from __future__ import annotations

import math

from .. import validation as v
from .._arrays import as_time, per_sample
from ..sde import SDE


def time_of_sigma(sde, sigma):
    """The time t at which the EDM noise level σ(t) = s(t)/m(t) equals ``sigma``
    (:meth:`SDE.time_of_sigma <scorecore.sde.SDE.time_of_sigma>`, host numbers or arrays)."""
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a VESDE, VPSDE or SubVPSDE to invert σ(t) = s/m, got {type(sde).__name__}")
    return sde.time_of_sigma(sigma)


class Converted:
    """``out(x, t) = α(t) · inner(β(t) x, τ(t)) + γ(t) x``: a reparametrized model.

    ``coeffs(x, t) -> (α, β, τ, γ)`` returns per-sample scalars (0-D or (n,) arrays, or
    Python numbers; ``γ`` may be None for 0). ``event_shape`` is passed through, and
    ``divergence``, ``jvp(x, t, v)`` and ``vjp(x, t, u)`` exist exactly when the
    inner model has them.
    """

    def __init__(self, inner, coeffs, name: str):
        if not callable(inner):
            raise TypeError(f"model must be callable as model(x, t), got {type(inner).__name__}")
        self.inner, self._coeffs, self._name = inner, coeffs, name
        if hasattr(inner, "event_shape"):
            self.event_shape = inner.event_shape
        # Bound only when the inner model has them, so `hasattr(model, "divergence")`
        # keeps telling callers (samplers, likelihood) whether an exact one exists.
        for method in ("divergence", "jvp", "vjp"):
            if callable(getattr(inner, method, None)):
                setattr(self, method, getattr(self, "_" + method))

    def __repr__(self):
        return f"{self._name}({self.inner!r})"

    def _scale(self, c, x):
        return per_sample(c, x) if hasattr(c, "ndim") else c

    def __call__(self, x, t):
        a, b, tau, g = self._coeffs(x, t)
        out = self._scale(a, x) * self.inner(self._scale(b, x) * x, tau)
        return out if g is None else out + self._scale(g, x) * x

    def _divergence(self, x, t):
        """∇ₓ·out = α β (∇·inner)(β x, τ) + γ d, d = the event size."""
        a, b, tau, g = self._coeffs(x, t)
        div = a * b * self.inner.divergence(self._scale(b, x) * x, tau)
        return div if g is None else div + g * math.prod(x.shape[1:])

    def _jvp(self, x, t, v):
        """(∂out/∂x) v = α β (∂inner/∂x)(β x, τ) v + γ v."""
        a, b, tau, g = self._coeffs(x, t)
        out = self._scale(a * b, x) * self.inner.jvp(self._scale(b, x) * x, tau, v)
        return out if g is None else out + self._scale(g, x) * v

    def _vjp(self, x, t, u):
        """uᵀ ∂out/∂x = α β uᵀ (∂inner/∂x)(β x, τ) + γ u."""
        a, b, tau, g = self._coeffs(x, t)
        out = self._scale(a * b, x) * self.inner.vjp(self._scale(b, x) * x, tau, u)
        return out if g is None else out + self._scale(g, x) * u


def _kernel(sde, x, t):
    return sde.marginal(sde._t(t, x))


def score_from_eps(eps_model, sde) -> Converted:
    """The score of a noise-prediction model: ``∇ₓ log p_t(x) = −ε(x, t) / s(t)``."""
    v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")

    def coeffs(x, t):
        _, s = _kernel(sde, x, t)
        return -1.0 / s, 1.0, t, None

    return Converted(eps_model, coeffs, "score_from_eps")


def eps_from_score(score, sde) -> Converted:
    """The noise-prediction model of a score: ``ε(x, t) = −s(t) ∇ₓ log p_t(x)``.

    For the exact score it is the exact E[z | x_t = x].
    """
    v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")

    def coeffs(x, t):
        _, s = _kernel(sde, x, t)
        return -s, 1.0, t, None

    return Converted(score, coeffs, "eps_from_score")


def score_from_ncsn(net, sde) -> Converted:
    """NCSNv2's parametrization (Song & Ermon 2020): ``s_θ(x, t) = f(x, t) / s(t)``.

    ``net(x, t)`` is the raw network output f; with an unconditional network
    pass ``lambda x, t: f(x)``. It is the ε-parametrization with f = −ε.
    """
    v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")

    def coeffs(x, t):
        _, s = _kernel(sde, x, t)
        return 1.0 / s, 1.0, t, None

    return Converted(net, coeffs, "score_from_ncsn")


def score_from_denoiser(denoiser, sde) -> Converted:
    """The score of an EDM denoiser ``D(y, sigma)`` (Karras et al. 2022):

        ∇ₓ log p_t(x) = (m D(x/m; σ) − x) / s²,   σ = s(t)/m(t).

    ``denoiser(y, sigma)`` takes the scaled input y = x/m and σ as a 0-D or (n,) array.
    """
    v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")

    def coeffs(x, t):
        m, s = _kernel(sde, x, t)
        inv_s2 = 1.0 / (s * s)
        return m * inv_s2, 1.0 / m, s / m, -inv_s2

    return Converted(denoiser, coeffs, "score_from_denoiser")


def denoiser_from_score(score, sde) -> Converted:
    """The EDM denoiser of a score model, called as ``D(y, sigma)``:

        D(y; σ) = y + σ² m ∇ₓ log p_t(m y),   t = t(σ) (:func:`time_of_sigma`), m = m(t).

    For the exact score it is the exact posterior mean E[x_0 | x_0 + σ n = y].
    """
    v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")

    def coeffs(y, sigma):
        sigma = as_time(sigma, y)  # an array of y's kind, dtype and device
        t = time_of_sigma(sde, sigma)
        m, _ = sde.marginal(t)
        return sigma * sigma * m, m, t, 1.0

    return Converted(score, coeffs, "denoiser_from_score")


__all__ = ["Converted", "denoiser_from_score", "eps_from_score", "score_from_denoiser", "score_from_eps",
           "score_from_ncsn", "time_of_sigma"]
