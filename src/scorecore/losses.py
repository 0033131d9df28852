"""Score-matching losses, written once against the Array API.

Every loss takes a model, a batch ``x0`` of shape (n, ...), a backend (for its
random numbers and, where needed, autodiff) and a key or seed, and returns the
per-sample losses reduced by ``reduce`` ∈ {"mean", "sum", "none"}. Squared norms
are summed over the event axes (as in score_sde's default ``reduce_mean=False``).
Random draws are row-wise batch invariant: sample i's t, noise and projections
depend only on (key, offset + i).

* :func:`dsm_loss` — denoising score matching with continuous t (Song et al. 2021,
  eq. 7), weightings λ(t) = s(t)², g(t)² (likelihood, Song et al. 2021b) or custom,
  and importance sampling of t (:class:`ImportanceTime`).
* :func:`ncsn_loss` — the discrete NCSN loss over σ_1..σ_L (Song & Ermon 2019, eq. 6).
* :func:`ddpm_loss` — the ε-prediction loss of DDPM (Ho et al. 2020, L_simple).
* :func:`ssm_loss` — sliced score matching and its variance-reduced form (Song et al. 2019).
* :func:`exact_sm_loss` — Hyvärinen's score matching with the exact Jacobian trace.

At the exact score s = ∇log p_t these have known values (used by the tests):
DSM at time t is ½ λ(t) (D/s(t)² − J(t)) with J(t) = E‖∇log p_t‖² the Fisher
information, and the excess of any model is the Fisher divergence
½ E λ(t) ‖s_θ − ∇log p_t‖²; SSM and exact SM equal −½ J (integration by parts) with
the same excess ½ E‖s_θ − ∇log p‖².
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import array_api_compat
import numpy as np

from . import divergence as div
from . import validation as v
from ._arrays import namespace, per_sample, sum_event
from .backend import get_backend
from .samplers.status import NonFiniteError
from .sde import SDE, SubVPSDE, VESDE, VPSDE, apply_kernel

REDUCTIONS = ("mean", "sum", "none")
WEIGHTINGS = ("sigma2", "likelihood")
PROJECTIONS = div.PROBES


# -- argument checks ----------------------------------------------------------------
#: what every loss with an SDE expects of it
_SDE_WHAT = "a scorecore SDE (VESDE, VPSDE, SubVPSDE)"


def _setup(model, x0, backend, seed, key, reduce, name="model"):
    """(backend, namespace, key) after checking what every loss shares; x0 is checked for
    NaN/inf on the host once, before any draw."""
    v.instance(name, model, Callable, f"callable {name}(x, t)")
    v.choice("reduce", reduce, REDUCTIONS)
    v.batch_array("x0", x0, event=getattr(model, "event_shape", None))
    be = get_backend(backend)
    xp = namespace(x0)
    if xp is not be.xp:
        raise TypeError(f"x0 must be an array of backend {be.name!r} ({be.xp.__name__}), got one of {xp.__name__} (pass backend=)")
    v.finite_array("x0", x0)
    if key is None:
        key = be.key(v.integer("seed", seed))
    return be, xp, key


def _first_nonfinite(values):
    """The first row of ``values`` (n, ...) holding a NaN or inf, or None (also when traced by jax.jit)."""
    xp = namespace(values)
    ok = xp.all(xp.reshape(xp.isfinite(values), (values.shape[0], -1)), axis=1)
    if v.host_bool(xp.all(ok)) is not False:
        return None
    return int(xp.argmax(xp.astype(xp.logical_not(ok), xp.int32)))


def _call(model, x, t, name="model"):
    out = model(x, t)
    v.model_output(model, out, x, what="eps prediction" if name == "eps_model" else "score")
    row = _first_nonfinite(out)
    if row is not None:
        t_row = t[row] if getattr(t, "ndim", 0) else t
        raise NonFiniteError(f"{name} {v.model_name(model)}", None, float(t_row), f", in its output for row {row}")
    return out


def _reduce(xp, losses, reduce, what: str):
    """The per-sample losses reduced; a NaN or inf among them (an overflow from finite inputs)
    raises NonFiniteError naming the loss."""
    row = _first_nonfinite(losses)
    if row is not None:
        raise NonFiniteError(what, None, None, f", in the loss of row {row}")
    if reduce == "mean":
        return xp.mean(losses)
    if reduce == "sum":
        return xp.sum(losses)
    return losses


def _weighting(weighting, sde) -> Callable:
    """λ(t) as a function of a time array."""
    if callable(weighting):
        return weighting
    v.choice("weighting (a name, or a callable λ(t))", weighting, WEIGHTINGS)
    if weighting == "sigma2":
        return lambda t: sde.marginal(t)[1] ** 2
    return lambda t: sde.diffusion(t) ** 2


def _given_times(t, x0, sde):
    """A user's fixed times as an (n,) array of x0's kind."""
    xp, n = namespace(x0), x0.shape[0]
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        t = v.time_in("t", t, sde.T, lo_open=True)
        return xp.full((n,), t, dtype=x0.dtype, device=array_api_compat.device(x0))
    if getattr(t, "shape", None) != (n,):
        raise ValueError(f"t must be a number or an array of shape (n,) = ({n},), got {getattr(t, 'shape', t)}")
    v.times_array("t", t, sde.T, lo_open=True)
    return t


def _uniform_times(be, key, x0, sde, eps, offset):
    """t ~ U(eps, T), one per sample."""
    u = be.uniform(key, (x0.shape[0],), x0.dtype, offset=offset)
    return eps + (sde.T - eps) * u


# -- importance sampling of t ---------------------------------------------------------
def _vp_potential(sde):
    # g²/s² = β/(1 − e^{−B}) = d/dt log(e^B − 1).
    def phi(t):
        return namespace(t).log(namespace(t).expm1(sde.integrated_beta(t)))

    def inverse(F):
        return sde.time_of_integrated_beta(namespace(F).logaddexp(0.0 * F, F))

    return phi, inverse


def _subvp_potential(sde):
    # g²/s² = β(1 + e^{−B})/(1 − e^{−B}) = d/dt [2 log(e^B − 1) − B]; with c = e^{Φ/2}
    # = 2 sinh(B/2), the inverse is B = 2 asinh(c/2).
    def phi(t):
        xp, B = namespace(t), sde.integrated_beta(t)
        return 2.0 * xp.log(xp.expm1(B)) - B

    def inverse(F):
        xp = namespace(F)
        return sde.time_of_integrated_beta(2.0 * xp.asinh(0.5 * xp.exp(0.5 * F)))

    return phi, inverse


def _ve_potential(sde):
    # g²/s² = 2 log r · r^{2t}/(r^{2t} − 1) = d/dt log(r^{2t} − 1), r = σ_max/σ_min.
    two_log_r = 2.0 * math.log(sde.sigma_max / sde.sigma_min)

    def phi(t):
        return namespace(t).log(namespace(t).expm1(two_log_r * t))

    def inverse(F):
        return namespace(F).logaddexp(0.0 * F, F) / two_log_r

    return phi, inverse


# Exact types only: a subclass may change the schedule, and then only the grid is right.
_POTENTIALS = {VPSDE: _vp_potential, SubVPSDE: _subvp_potential, VESDE: _ve_potential}


class ImportanceTime:
    """Importance sampling of t ∈ [eps, T] with density q(t) = λ(t) / (s(t)² Z).

    The weighted DSM objective E_{t~U(eps,T)} λ(t) ℓ(t), with ℓ(t) = ½ E‖s_θ + z/s‖²,
    equals E_{t~q} c(t) ℓ(t) with c(t) = λ(t) / ((T − eps) q(t)) = Z s(t)² / (T − eps),
    and c(t) ℓ(t) = Z/(T − eps) · ½ E‖s(t) s_θ + z‖² no longer blows up as t → 0 (Song
    et al. 2021b, "Maximum likelihood training of score-based diffusion models", sec. 5).

    t is drawn by inverting the CDF of q. For the likelihood weighting λ = g² on the
    shipped SDEs the CDF has a closed form through a potential Φ with Φ' = g²/s²:
    Φ = log(e^{B(t)} − 1) (VP), 2 log(e^{B(t)} − 1) − B(t) (sub-VP), log(r^{2t} − 1)
    (VE, r = σ_max/σ_min), so t = Φ⁻¹(Φ(eps) + u (Φ(T) − Φ(eps))) and Z = Φ(T) − Φ(eps).
    Otherwise (a custom λ or SDE, or ``grid_size`` given) the CDF is the trapezoidal
    integral of t λ(t)/s(t)² on ``grid_size`` points uniform in log t, inverted by
    linear interpolation; c(t) then uses the density of that piecewise-linear CDF, so
    the estimator stays unbiased whatever the grid. A custom λ is evaluated once on that
    NumPy grid and then on the draws' arrays, so it must be written with Array API
    operations (as ``sde.marginal`` and ``sde.diffusion`` are).
    """

    def __init__(self, sde, weighting="likelihood", eps: float = 1e-5, grid_size: int | None = None):
        self.sde = v.instance("sde", sde, SDE, _SDE_WHAT)
        self.eps = v.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True)
        self.lam = _weighting(weighting, sde)
        v.optional(v.integer, "grid_size", grid_size, lo=2)
        T, np_xp = sde.T, array_api_compat.numpy
        closed = weighting == "likelihood" and type(sde) in _POTENTIALS and grid_size is None
        self.closed_form = closed
        if closed:
            self._phi, self._phi_inv = _POTENTIALS[type(sde)](sde)
            ends = self._phi(np_xp.asarray([self.eps, T], dtype=np_xp.float64))
            self._phi0, self.Z = float(ends[0]), float(ends[1] - ends[0])
        else:
            log_t = np.linspace(math.log(self.eps), math.log(T), grid_size or 2048)
            t = np_xp.asarray(np.exp(log_t))
            f = np.asarray(t * self.lam(t) / sde.marginal(t)[1] ** 2, dtype=np.float64)
            if not np.all(np.isfinite(f) & (f > 0)):
                raise ValueError("weighting must give λ(t) > 0 and finite on [eps, T] for importance sampling")
            # C(log t) = ∫ t λ/s² d(log t): the mass of q in log-time, nearly flat as t → 0.
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(log_t))])
            self.Z = float(cdf[-1])
            self._log_t, self._cdf = log_t, cdf

    def sample(self, u):
        """``(t, c)`` for uniforms ``u`` in [0, 1): t = Q⁻¹(u) and c(t) = λ(t)/((T − eps) q(t))."""
        xp = namespace(u)
        T, eps = self.sde.T, self.eps
        if self.closed_form:
            t = xp.clip(self._phi_inv(self._phi0 + self.Z * u), min=eps, max=T)
            return t, (self.Z / (T - eps)) * self.sde.marginal(t)[1] ** 2
        dev = array_api_compat.device(u)
        log_t = xp.asarray(self._log_t, dtype=u.dtype, device=dev)
        cdf = xp.asarray(self._cdf, dtype=u.dtype, device=dev)
        mass = self.Z * u
        j = xp.clip(xp.searchsorted(cdf, mass, side="right") - 1, min=0, max=cdf.shape[0] - 2)
        c0, c1 = xp.take(cdf, j), xp.take(cdf, j + 1)
        l0, l1 = xp.take(log_t, j), xp.take(log_t, j + 1)
        t = xp.clip(xp.exp(l0 + (mass - c0) / (c1 - c0) * (l1 - l0)), min=eps, max=T)
        # q(t) = (ΔC/Δlog t) / (Z t) on the bin that t fell in.
        return t, self.lam(t) * t * (l1 - l0) * self.Z / ((T - eps) * (c1 - c0))


# -- the losses ------------------------------------------------------------------------
def dsm_loss(model, sde, x0, *, weighting="sigma2", importance_sampling: bool = False, eps: float = 1e-5,
             t=None, reduce: str = "mean", backend=None, seed: int = 0, key=None, offset: int = 0):
    """Denoising score matching with continuous time (Song et al. 2021, eq. 7):

        L(θ) = E_{t~U(eps,T)} λ(t) E_{x(0)} E_{z~N(0,I)} ½ ‖s_θ(x(t), t) + z / s(t)‖²,
        x(t) = m(t) x(0) + s(t) z,

    per sample ½ (λ(t)/s(t)²) ‖s(t) s_θ(x(t), t) + z‖² with one (t, z) per sample.

    weighting:
        ``"sigma2"``: λ = s(t)² (score_sde's default); ``"likelihood"``: λ = g(t)², for
        which L plus a θ-free constant bounds −E log p_θ (Song et al. 2021b, Thm. 1);
        or a callable λ(t) (Array API operations).
    importance_sampling:
        Draw t ~ q(t) ∝ λ(t)/s(t)² and weight by λ/((T − eps) q): the same expectation,
        lower variance (:class:`ImportanceTime`).
    eps:
        The small-t cutoff: t ∈ [eps, T].
    t:
        Fixed times (a number or an (n,) array) instead of sampled ones.
    """
    be, xp, key = _setup(model, x0, backend, seed, key, reduce)
    v.instance("sde", sde, SDE, _SDE_WHAT)
    eps = v.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True)
    lam = _weighting(weighting, sde)
    k_t, k_z = be.split(key, 2)
    if t is not None:
        if importance_sampling:
            raise ValueError("t cannot be given with importance_sampling=True (it samples t)")
        t = _given_times(t, x0, sde)
        c = lam(t)
    elif importance_sampling:
        t, c = ImportanceTime(sde, weighting, eps).sample(be.uniform(k_t, (x0.shape[0],), x0.dtype, offset=offset))
    else:
        t = _uniform_times(be, k_t, x0, sde, eps, offset)
        c = lam(t)
    z = be.normal(k_z, x0.shape, x0.dtype, offset=offset)
    _, s = sde.marginal(t)
    xt = sde.perturb(x0, t, z)
    r = per_sample(s, x0) * _call(model, xt, t) + z
    return _reduce(xp, 0.5 * (c / (s * s)) * sum_event(xp, r * r), reduce, "dsm_loss")


def ncsn_loss(model, sde, x0, sigmas: Sequence[float], *, reduce: str = "mean", backend=None, seed: int = 0,
              key=None, offset: int = 0):
    """The NCSN loss (Song & Ermon 2019, eqs. 5–6) over noise levels σ_1..σ_L:

        L(θ; {σ_i}) = (1/L) Σ_i λ(σ_i) ½ E ‖s_θ(x̃, σ_i) + (x̃ − x)/σ_i²‖²,  λ(σ) = σ²,

    with one level i ~ U{1..L} per sample, i.e. per sample ½ ‖σ_i s_θ(x̃, t_i) + z‖².
    Level σ_i is the SDE's time t_i = s⁻¹(σ_i) and x̃ = m(t_i) x + σ_i z (under VE,
    m = 1 and this is eq. 6 exactly); the model is queried as s_θ(x̃, t_i).
    ``sigmas``: positive levels, each at most s(T) (e.g.
    ``scorecore.noise_scales.geometric_sigmas``).
    """
    be, xp, key = _setup(model, x0, backend, seed, key, reduce)
    v.instance("sde", sde, SDE, _SDE_WHAT)
    try:
        sig = [float(level) for level in sigmas]
    except (TypeError, ValueError):
        raise TypeError(f"sigmas must be a sequence of numbers, got {sigmas!r}") from None
    s_T = float(sde.marginal(sde.T)[1])
    if not sig or not all(math.isfinite(level) and 0.0 < level <= s_T * (1 + 1e-9) for level in sig):
        raise ValueError(f"sigmas must be a non-empty sequence of levels in (0, s(T)={s_T:g}], got {sigmas!r}")
    times = [min(sde.T, float(sde.time_of_std(level))) for level in sig]
    means = [float(sde.marginal(time)[0]) for time in times]
    dev = array_api_compat.device(x0)
    k_i, k_z = be.split(key, 2)
    L = len(sig)
    u = be.uniform(k_i, (x0.shape[0],), x0.dtype, offset=offset)
    i = xp.astype(xp.clip(xp.floor(L * u), min=0, max=L - 1), xp.int64)

    def pick(values):
        return xp.take(xp.asarray(values, dtype=x0.dtype, device=dev), i)

    sigma, t, m = pick(sig), pick(times), pick(means)
    z = be.normal(k_z, x0.shape, x0.dtype, offset=offset)
    xt = apply_kernel(m, sigma, x0, z)
    r = per_sample(sigma, x0) * _call(model, xt, t) + z
    return _reduce(xp, 0.5 * sum_event(xp, r * r), reduce, "ncsn_loss")


def ddpm_alphas_cumprod(sde) -> list[float]:
    """ᾱ_i = Π_{j≤i} (1 − β_j), i = 0..N−1, of the DDPM chain of a VP SDE
    (:meth:`VPSDE.discrete_alphas_cumprod <scorecore.sde.VPSDE.discrete_alphas_cumprod>`)."""
    v.instance("sde", sde, VPSDE, "a VPSDE (the DDPM chain)")
    return sde.discrete_alphas_cumprod()


def ddpm_loss(eps_model, sde, x0, *, discrete: bool = False, eps: float = 1e-5, reduce: str = "mean",
              backend=None, seed: int = 0, key=None, offset: int = 0):
    """The ε-prediction loss of DDPM (Ho et al. 2020, L_simple), for a noise model ε_θ:

        discrete:   E_{i~U{0..N−1}} E ‖ε − ε_θ(√ᾱ_i x(0) + √(1 − ᾱ_i) ε, t_i)‖²,
                    ᾱ from :func:`ddpm_alphas_cumprod`, t_i = i T/(N − 1) (VP only);
        continuous: E_{t~U(eps,T)} E ‖ε − ε_θ(m(t) x(0) + s(t) ε, t)‖² (any SDE).

    It is DSM with λ = s² up to the factor 2 in ε = −s ∇log p_t: ε_θ = −s s_θ.
    """
    be, xp, key = _setup(eps_model, x0, backend, seed, key, reduce, name="eps_model")
    v.instance("sde", sde, SDE, _SDE_WHAT)
    k_t, k_z = be.split(key, 2)
    if discrete:
        abar = ddpm_alphas_cumprod(sde)
        dev, N = array_api_compat.device(x0), sde.N
        u = be.uniform(k_t, (x0.shape[0],), x0.dtype, offset=offset)
        i = xp.astype(xp.clip(xp.floor(N * u), min=0, max=N - 1), xp.int64)
        a = xp.take(xp.asarray(abar, dtype=x0.dtype, device=dev), i)
        m, s = xp.sqrt(a), xp.sqrt(1.0 - a)
        t = xp.astype(i, x0.dtype) * (sde.T / (N - 1))
    else:
        t = _uniform_times(be, k_t, x0, sde, v.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True), offset)
        m, s = sde.marginal(t)
    z = be.normal(k_z, x0.shape, x0.dtype, offset=offset)
    xt = apply_kernel(m, s, x0, z)
    r = z - _call(eps_model, xt, t, name="eps_model")
    return _reduce(xp, sum_event(xp, r * r), reduce, "ddpm_loss")


def _evaluation_points(be, key, x0, sde, weighting, eps, t, offset):
    """(x, t, λ) for SSM / exact SM: the data at t = 0 without an SDE, else the
    perturbed x(t) = m x(0) + s z with t ~ U(eps, T) (or the given t) and weight λ(t)."""
    xp = namespace(x0)
    if sde is None:
        if weighting is not None or t is not None:
            raise ValueError("weighting and t need an sde (they apply to perturbed data x(t))")
        return x0, xp.zeros((x0.shape[0],), dtype=x0.dtype, device=array_api_compat.device(x0)), 1.0
    v.instance("sde", sde, SDE, _SDE_WHAT)
    eps = v.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True)
    lam = _weighting("sigma2" if weighting is None else weighting, sde)
    k_t, k_z = be.split(key, 2)
    t = _uniform_times(be, k_t, x0, sde, eps, offset) if t is None else _given_times(t, x0, sde)
    z = be.normal(k_z, x0.shape, x0.dtype, offset=offset)
    return sde.perturb(x0, t, z), t, lam(t)


def ssm_loss(model, x0, *, sde=None, projection: str = "gaussian", n_projections: int = 1,
             variance_reduced: bool = False, weighting=None, eps: float = 1e-5, t=None, reduce: str = "mean",
             backend=None, seed: int = 0, key=None, offset: int = 0):
    """Sliced score matching (Song et al. 2019), with M = ``n_projections`` probes v:

        SSM:    (1/M) Σ_m [ v_mᵀ ∇ₓ(v_mᵀ s_θ(x)) + ½ (v_mᵀ s_θ(x))² ]
        SSM-VR: (1/M) Σ_m v_mᵀ ∇ₓ(v_mᵀ s_θ(x)) + ½ ‖s_θ(x)‖²

    with v ~ N(0, I) (``"gaussian"``) or uniform on {±1}^D (``"rademacher"``); both have
    E[v vᵀ] = I, so the expectation is Hyvärinen's tr ∇ₓs_θ + ½‖s_θ‖². vᵀ∇ₓ(vᵀs_θ) =
    vᵀ (∂s_θ/∂x) v comes from ``model.jvp(x, t, v)`` if the model has it, else from
    the backend's ``jvp`` (torch, JAX; NumPy raises NotImplementedError).

    Without ``sde`` the loss is taken at the data, s_θ(x(0), 0). With ``sde`` it is
    taken at perturbed data x(t), t ~ U(eps, T) (or the given t), and weighted by
    λ(t) (``weighting`` as in :func:`dsm_loss`, default s(t)², as NCSN's annealed SSM).
    """
    be, xp, key = _setup(model, x0, backend, seed, key, reduce)
    v.choice("projection", projection, PROJECTIONS)
    v.positive_int("n_projections", n_projections)
    k_x, k_v = be.split(key, 2)
    x, t, lam = _evaluation_points(be, k_x, x0, sde, weighting, eps, t, offset)
    n, M = x.shape[0], n_projections
    probes = div.draw_probes(be, k_v, projection, (n, M) + tuple(x.shape[1:]), x.dtype, offset=offset)
    score = _call(model, x, t)
    vjv = xp.mean(div.probe_quadratics(model, be, x, t, probes), axis=1)
    if variance_reduced:
        quad = 0.5 * sum_event(xp, score * score)
    else:
        vs = xp.sum(xp.reshape(probes * xp.expand_dims(score, axis=1), (n, M, -1)), axis=2)  # v_mᵀ s, (n, M)
        quad = 0.5 * xp.mean(vs * vs, axis=1)
    return _reduce(xp, lam * (vjv + quad), reduce, "ssm_loss")


def exact_sm_loss(model, x0, *, sde=None, weighting=None, eps: float = 1e-5, t=None, reduce: str = "mean",
                  backend=None, seed: int = 0, key=None, offset: int = 0):
    """Score matching (Hyvärinen 2005) with the exact Jacobian trace:

        J(θ) = E [ tr ∇ₓ s_θ(x) + ½ ‖s_θ(x)‖² ],

    the trace from ``model.divergence(x, t)`` if the model has it, else the backend's
    ``divergence`` (D backward passes: for small dimensions). Data or perturbed data
    (``sde``, ``weighting``, ``eps``, ``t``) exactly as in :func:`ssm_loss`.
    """
    be, xp, key = _setup(model, x0, backend, seed, key, reduce)
    x, t, lam = _evaluation_points(be, key, x0, sde, weighting, eps, t, offset)
    score = _call(model, x, t)
    trace = div.exact(model, be, x, t)
    return _reduce(xp, lam * (trace + 0.5 * sum_event(xp, score * score)), reduce, "exact_sm_loss")


__all__ = ["PROJECTIONS", "REDUCTIONS", "WEIGHTINGS", "ImportanceTime", "ddpm_alphas_cumprod", "ddpm_loss", "dsm_loss",
           "exact_sm_loss", "ncsn_loss", "ssm_loss"]
