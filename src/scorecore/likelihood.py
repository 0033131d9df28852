"""Exact likelihoods, bits per dimension, and encoding/decoding by the probability-flow ODE.

The probability-flow ODE of Song et al. (2021, eq. 13),

    dx/dt = f̃(x, t) = f(x, t) − ½ g(t)² s_θ(x, t),

is a deterministic invertible map x(eps) ↦ x(T). By the instantaneous change of variables
(Chen et al. 2018), d log p_t(x(t))/dt = −∇·f̃(x(t), t), so (Song et al. 2021, eq. 39)

    log p_eps(x(eps)) = log p_T(x(T)) + ∫_eps^T ∇·f̃(x(t), t) dt,
    ∇·f̃(x, t) = D a(t) − ½ g(t)² ∇·s_θ(x, t)          (f(x, t) = a(t) x, D = dim x).

:func:`log_likelihood` integrates the augmented state [x, Δ] with dΔ/dt = ∇·f̃ forward
from eps to T by the adaptive Dormand–Prince solver of :mod:`scorecore.samplers.ode`
(a step size per sample, so no sample waits on another's tolerance), and returns
log π(x(T)) + Δ(T) with the prior π = N(0, prior_std² I) standing in for p_T.

What the number is. With the exact score s_θ = ∇log p_t, the flow carries p_eps onto p_T
exactly, so the result equals log p_eps(x) + log π(x(T)) − log p_T(x(T)): the density at
t = eps (not 0), up to the prior's mismatch with the true p_T at the latent. Both
differences vanish as eps → 0 and T → ∞ (VE: σ_max → ∞); ``info.delta_logp`` and
``info.z`` give the pieces for an exact comparison.

The divergence ∇·s_θ, per sample:

* ``divergence="exact"``: the model's own ``model.divergence(x, t)`` when it has one
  (the analytic mixture scores, :class:`~scorecore.models.MLP`), else the backend's exact
  Jacobian trace (``backend.divergence``: D Jacobian-vector products; torch and JAX).
* ``divergence="hutchinson"``: Skilling (1989)–Hutchinson (1990),
  ∇·s ≈ (1/M) Σ_m ε_mᵀ (∂s/∂x) ε_m with E[ε εᵀ] = I — Gaussian or Rademacher probes,
  M = ``n_probes`` per sample, drawn ONCE and held fixed along the trajectory (a fresh
  probe per evaluation would make the ODE's right-hand side random, which an adaptive
  solver cannot integrate). Unbiased for each fixed trajectory; the Jacobian-vector
  products come from ``model.jvp(x, t, v)`` if the model has it, else ``backend.jvp``.

Bits per dimension (:func:`bits_per_dim`). Data with K levels in [lo, hi) (8-bit images:
K = 256; scikit-learn's digits: K = 17) are dequantized uniformly, x = lo + c (v + u),
c = (hi − lo)/K, u ~ U[0, 1)^D. The discrete probability of the level vector v is the
mass of its cell, P(v) = ∫_cell p(x) dx = c^D E_u[p(x)], and by Jensen's inequality
(Theis et al. 2016)

    log P(v) ≥ E_u[log p(lo + c(v + u))] + D log c,
    bpd = −log₂ P(v) / D ≤ −E_u[log p(x)] / (D log 2) + log₂(K / (hi − lo)).

The offset log₂(K/(hi − lo)) is 8 for 8-bit data in [0, 1] and 7 for data in [−1, 1]:
score_sde's ``7 − inverse_scaler(−1)`` (inverse_scaler(−1) = 0 for centred data, −1
otherwise). Without dequantization the density at the K cell centres is unbounded and
the "bpd" can be negative; here every draw is dequantized, E_u is estimated by the mean
over ``n_dequant`` draws, and the standard error comes with it.

Encoding and decoding (:func:`encode`, :func:`decode`): the same ODE without Δ, from eps
to T and back; exact inverses up to the solver's tolerance. :func:`interpolate` is
spherical interpolation between latents (Shoemake 1985; White 2016), which keeps
interpolants at the typical norm of a Gaussian latent; ``decode(..., temperature=τ)``
decodes τ z (τ < 1: nearer the modes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import is_array, namespace, per_sample, sum_event
from .backend import Backend, get_backend
from .samplers.ode import CONVERGED, integrate
from .sde import SDE

#: fold_in tags of the run's key: probes, dequantization noise (distinct from sampling's).
PROBE_TAG = (1 << 63) - 2
DEQUANT_TAG = (1 << 63) - 3

#: The smallest time the likelihood integrates from (score_sde's likelihood uses 1e-5).
DEFAULT_EPS = 1e-5

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("gaussian", "rademacher")


@dataclass
class ODEInfo:
    """What an ODE solve spent. ``nfe``: evaluations of the right-hand side on the whole
    batch; per sample (arrays of shape (n,)): ``nfe_per_sample`` = 1 + 6·(accepted +
    rejected) (the evaluations that sample's own solve needed), ``accepted``, ``rejected``
    steps and ``status`` (1 converged, 2 step budget exceeded; see
    :data:`scorecore.samplers.ode.STATUS_NAMES`). Fixed-step methods: ints and status None."""

    nfe: int
    nfe_per_sample: Any
    accepted: Any
    rejected: Any
    status: Any

    @property
    def converged(self) -> bool:
        """Whether every sample reached the end time (always, for fixed-step methods)."""
        return self.status is None or bool(np.all(_host(self.status) == CONVERGED))


@dataclass
class LikelihoodInfo(ODEInfo):
    """:class:`ODEInfo` plus the pieces of log p = ``prior_logp`` + ``delta_logp``:
    the latent ``z`` = x(T), log π(z) and Δ = ∫_eps^T ∇·f̃ dt, each per sample."""

    z: Any = None
    prior_logp: Any = None
    delta_logp: Any = None


@dataclass
class BitsPerDim:
    """Bits per dimension of a quantized data set, a bound: ``mean`` over samples and
    dequantization draws, ``stderr`` its standard error (over the per-sample means when
    n > 1, over the draws when n = 1). ``per_draw`` (n_dequant, n) holds each draw's
    per-sample bpd (NumPy); ``offset_bits`` = log₂(K/(hi − lo)); ``nfe`` the evaluations
    spent in all solves; ``converged`` whether every solve converged."""

    mean: float
    stderr: float
    per_draw: np.ndarray
    offset_bits: float
    n_levels: int
    data_range: tuple[float, float]
    nfe: int
    converged: bool

    @property
    def per_sample(self) -> np.ndarray:
        """Each sample's bpd averaged over the dequantization draws, shape (n,)."""
        return self.per_draw.mean(axis=0)


def _host(x):
    """A NumPy copy of an array of any backend (for results reported on the host)."""
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    return np.asarray(x) if not hasattr(x, "__dlpack__") or isinstance(x, np.ndarray) else np.from_dlpack(x)


# -- argument checks ---------------------------------------------------------------------

def _check_common(model, sde, eps):
    if not callable(model):
        raise TypeError(f"model must be a callable score(x, t), got {type(model).__name__}")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a scorecore SDE (VESDE, VPSDE, SubVPSDE), got {type(sde).__name__}")
    eps = DEFAULT_EPS if eps is None else eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T={sde.T}), got {eps!r}")
    return float(eps)


def _as_batch(be: Backend, x, dtype, model, name="x"):
    """``x`` as a backend array (n, ...) of the run's dtype: ``dtype``, else x's own float
    dtype when x is already this backend's array, else the backend's default."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < 2 or shape[0] < 1:
        raise ValueError(f"{name} must be an array of shape (n, d, ...) with n ≥ 1, got shape {shape}")
    event = getattr(model, "event_shape", None)
    if event is not None and tuple(shape[1:]) != tuple(event):
        raise ValueError(f"{name} has event shape {tuple(shape[1:])}, the model expects {tuple(event)}")
    if dtype is None and is_array(x) and namespace(x) is namespace(be.asarray([0.0])):
        dtype = x.dtype if x.dtype in (be.xp.float32, be.xp.float64) else None
    return be.asarray(x, dtype=dtype)


def _has_autodiff(be: Backend, method: str) -> bool:
    return getattr(type(be), method) is not getattr(Backend, method)


# -- the right-hand sides ----------------------------------------------------------------

def _flow(model, sde):
    """f̃(x, t) = f(x, t) − ½ g(t)² s_θ(x, t) on x of shape (n, ...)."""

    def F(x, t):
        return sde.reverse_drift(x, t, model(x, t), probability_flow=True)

    return F


def _score_divergence(model, be: Backend, x, divergence, probe, n_probes, key, offset):
    """A function (x, t) -> ∇·s_θ(x, t) (exact or the fixed-probe Hutchinson estimate), (n,)."""
    xp = be.xp
    if divergence == "exact":
        if hasattr(model, "divergence"):
            return model.divergence
        if not _has_autodiff(be, "divergence") and not _has_autodiff(be, "jvp"):
            raise ValueError(
                f"divergence='exact' needs model.divergence(x, t) or a backend with autodiff; the model "
                f"{type(model).__name__} has none and backend {be.name!r} has no autodiff: use the 'torch' "
                "or 'jax' backend, or divergence='hutchinson' with a model that has .jvp(x, t, v)")
        return lambda x_, t_: be.divergence(model, x_, t_)
    if not hasattr(model, "jvp") and not _has_autodiff(be, "jvp"):
        raise ValueError(
            f"divergence='hutchinson' needs model.jvp(x, t, v) or a backend with autodiff; the model "
            f"{type(model).__name__} has no .jvp and backend {be.name!r} has no autodiff")
    n, event, M = x.shape[0], tuple(x.shape[1:]), n_probes
    draw = be.normal if probe == "gaussian" else be.rademacher
    # Row i of the probes depends on (key, offset + i) only: batch invariant, fixed in t.
    eps = draw(be.fold_in(key, PROBE_TAG), (n, M) + event, x.dtype, offset=offset)
    v = xp.reshape(eps, (n * M,) + event)

    def repeat(a):  # (n, ...) -> (n·M, ...), each row M times: all n·M products in one call
        return xp.reshape(xp.broadcast_to(a[:, None, ...], (n, M) + tuple(a.shape[1:])), (n * M,) + tuple(a.shape[1:]))

    def hutchinson(x_, t_):
        xr, tr = (x_, t_) if M == 1 else (repeat(x_), repeat(t_))
        if hasattr(model, "jvp"):
            jv = model.jvp(xr, tr, v)
        else:
            jv = be.jvp(lambda y: model(y, tr), xr, v)
        return xp.mean(xp.reshape(sum_event(xp, v * jv), (n, M)), axis=1)

    return hutchinson


def _check_options(divergence, probe, n_probes):
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {list(DIVERGENCES)}, got {divergence!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {list(PROBES)}, got {probe!r}")
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive int, got {n_probes!r}")


def _ode_info(info) -> dict:
    acc, rej, status = info.stats.get("accepted"), info.stats.get("rejected"), info.stats.get("status")
    if status is None:  # a fixed-step method: every sample takes every step
        return dict(nfe=info.nfe, nfe_per_sample=info.nfe, accepted=info.n_steps, rejected=0, status=None)
    return dict(nfe=info.nfe, nfe_per_sample=1 + 6 * (acc + rej), accepted=acc, rejected=rej, status=status)


# -- public API ----------------------------------------------------------------------------

def log_likelihood(model, sde: SDE, x, *, backend=None, dtype=None, eps: float | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5", steps: int = 100,
                   divergence: str = "exact", probe: str = "gaussian", n_probes: int = 1, seed: int = 0,
                   key=None, offset: int = 0, max_steps: int = 10_000, return_info: bool = False):
    """log p_eps(x) per sample by the probability-flow ODE (Song et al. 2021, eq. 39), in nats:

        log p_eps(x) = log π(x(T)) + ∫_eps^T [D a(t) − ½ g(t)² ∇·s_θ(x(t), t)] dt,

    x(t) solving dx/dt = f(x, t) − ½ g(t)² s_θ(x, t) from x(eps) = x, π the prior.

    ``x``: (n, ...) — vectors or images (n, C, H, W); D = the product of the event axes.
    ``divergence``: ``"exact"`` (``model.divergence``, else the backend's Jacobian trace)
    or ``"hutchinson"`` (``n_probes`` fixed ``probe`` vectors per sample, ``"gaussian"`` or
    ``"rademacher"``, drawn from ``seed``/``key`` with row i a function of
    (key, offset + i) only). ``method``: ``"dopri5"`` (adaptive, ``rtol``, ``atol``,
    ``max_steps`` per sample) or a fixed-step ``"euler"``/``"heun"``/``"rk4"`` with ``steps``.
    ``eps`` defaults to 1e-5. The dtype is ``dtype``, else x's own (a float array of the
    backend), else the backend's default.

    Returns the (n,) array of log-likelihoods; with ``return_info``, ``(logp, info)``, a
    :class:`LikelihoodInfo` with the latent z = x(T), log π(z), Δ, the batch NFE, and per
    sample the NFE, accepted/rejected steps and solver status. Samples that exhausted
    ``max_steps`` get NaN (with a warning); a non-finite right-hand side raises
    :class:`~scorecore.samplers.NonFiniteError`.
    """
    eps = _check_common(model, sde, eps)
    _check_options(divergence, probe, n_probes)
    be = get_backend(backend)
    xp = be.xp
    x = _as_batch(be, x, dtype, model)
    n, event = x.shape[0], tuple(x.shape[1:])
    D = math.prod(event)
    key = be.key(seed) if key is None else key
    flow = _flow(model, sde)
    div_s = _score_divergence(model, be, x, divergence, probe, n_probes, key, offset)

    def F(y, t):
        # y = [x flattened, Δ]: (n, D + 1); the solver's error norm covers Δ too.
        xt = xp.reshape(y[:, :D], (n,) + event)
        dx = xp.reshape(flow(xt, t), (n, D))
        g2 = sde.diffusion(t) ** 2
        ddelta = D * sde.drift_coeff(t) - 0.5 * g2 * div_s(xt, t)
        return xp.concat([dx, ddelta[:, None]], axis=1)

    y0 = xp.concat([xp.reshape(x, (n, D)), xp.zeros((n, 1), dtype=x.dtype, device=be.device)], axis=1)
    yT, info = integrate(F, y0, eps, sde.T, method=method, steps=steps, rtol=rtol, atol=atol,
                         max_steps=max_steps, backend=be)
    z = xp.reshape(yT[:, :D], (n,) + event)
    delta = yT[:, D]
    prior = sde.prior_log_prob(z)
    logp = prior + delta
    pieces = _ode_info(info)
    if pieces["status"] is not None:
        # A sample that ran out of steps is not at T: its value would be meaningless.
        logp = xp.where(pieces["status"] == CONVERGED, logp, xp.full_like(logp, float("nan")))
    if not return_info:
        return logp
    return logp, LikelihoodInfo(**pieces, z=z, prior_logp=prior, delta_logp=delta)


def _solve_flow(model, sde, x, t0, t1, *, backend, dtype, rtol, atol, method, steps, max_steps, return_info):
    be = get_backend(backend)
    x = _as_batch(be, x, dtype, model)
    out, info = integrate(_flow(model, sde), x, t0, t1, method=method, steps=steps, rtol=rtol, atol=atol,
                          max_steps=max_steps, backend=be)
    pieces = _ode_info(info)
    if pieces["status"] is not None:
        out = be.xp.where(per_sample(pieces["status"] == CONVERGED, out), out, be.xp.full_like(out, float("nan")))
    return (out, ODEInfo(**pieces)) if return_info else out


def encode(model, sde: SDE, x, *, backend=None, dtype=None, eps: float | None = None, rtol: float = 1e-5,
           atol: float = 1e-5, method: str = "dopri5", steps: int = 100, max_steps: int = 10_000,
           return_info: bool = False):
    """The latent z = x(T) of data x = x(eps) by the probability-flow ODE
    dx/dt = f(x, t) − ½ g(t)² s_θ(x, t), integrated forward from eps (default 1e-5) to T.

    Deterministic and invertible: :func:`decode` maps z back to x up to the solver's
    tolerance. Options as in :func:`log_likelihood`; with ``return_info``, ``(z, ODEInfo)``.
    Samples that exhausted ``max_steps`` come back as NaN (with a warning)."""
    eps = _check_common(model, sde, eps)
    return _solve_flow(model, sde, x, eps, sde.T, backend=backend, dtype=dtype, rtol=rtol, atol=atol,
                       method=method, steps=steps, max_steps=max_steps, return_info=return_info)


def decode(model, sde: SDE, z, *, temperature: float = 1.0, backend=None, dtype=None, eps: float | None = None,
           rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5", steps: int = 100,
           max_steps: int = 10_000, return_info: bool = False):
    """Data x(eps) from the latent x(T) = τ z by the probability-flow ODE, integrated
    backward from T to eps (default 1e-5); τ = ``temperature`` (τ < 1 trades diversity
    for typicality, as in Kingma & Dhariwal 2018). The inverse of :func:`encode` at τ = 1.

    Decoding a prior draw z ~ N(0, prior_std² I) is sampling (``sc.sample`` with the
    ``"dopri5"`` sampler). Options as in :func:`log_likelihood`; with ``return_info``,
    ``(x, ODEInfo)``."""
    eps = _check_common(model, sde, eps)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    be = get_backend(backend)
    z = _as_batch(be, z, dtype, model, name="z")
    if temperature != 1.0:
        z = float(temperature) * z
    return _solve_flow(model, sde, z, sde.T, eps, backend=be, dtype=z.dtype, rtol=rtol, atol=atol,
                       method=method, steps=steps, max_steps=max_steps, return_info=return_info)


def interpolate(z0, z1, alphas):
    """Spherical interpolation between latents, per sample (Shoemake 1985; White 2016):

        slerp(z0, z1; α) = [sin((1 − α) Ω) z0 + sin(α Ω) z1] / sin Ω,
        cos Ω = ⟨z0, z1⟩ / (‖z0‖ ‖z1‖),

    linear where z0 and z1 are (nearly) parallel. ``z0``, ``z1``: (n, ...) of one backend;
    ``alphas``: a sequence of k numbers (0 gives z0, 1 gives z1). Returns (k, n, ...);
    decode each slice with :func:`decode`."""
    xp = namespace(z0, z1)
    if tuple(z0.shape) != tuple(z1.shape) or len(z0.shape) < 2:
        raise ValueError(f"z0 and z1 must have one shape (n, d, ...), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    try:
        alphas = [float(a) for a in alphas]
    except (TypeError, ValueError):
        raise TypeError(f"alphas must be a sequence of numbers, got {alphas!r}") from None
    if not alphas or not all(math.isfinite(a) for a in alphas):
        raise ValueError("alphas must be a non-empty sequence of finite numbers")
    n0 = xp.sqrt(sum_event(xp, z0 * z0))
    n1 = xp.sqrt(sum_event(xp, z1 * z1))
    cos = xp.clip(sum_event(xp, z0 * z1) / (n0 * n1), -1.0, 1.0)
    omega = xp.acos(cos)
    sin = xp.sin(omega)
    parallel = sin < 1e-7
    safe = xp.where(parallel, xp.ones_like(sin), sin)
    out = []
    for a in alphas:
        w0 = xp.where(parallel, xp.full_like(sin, 1.0 - a), xp.sin((1.0 - a) * omega) / safe)
        w1 = xp.where(parallel, xp.full_like(sin, a), xp.sin(a * omega) / safe)
        out.append(per_sample(w0, z0) * z0 + per_sample(w1, z1) * z1)
    return xp.stack(out)


def dequantize(levels, n_levels: int, data_range=(0.0, 1.0), *, backend=None, dtype=None, seed: int = 0,
               key=None, draw: int = 0, offset: int = 0):
    """Uniformly dequantized data lo + (hi − lo)(v + u)/K, u ~ U[0, 1)^D, for integer
    ``levels`` v ∈ {0, …, K−1} (n, ...). Draw number ``draw`` of :func:`bits_per_dim`:
    u comes from fold_in(fold_in(key, DEQUANT_TAG), draw), row i from (key, offset + i)."""
    K, (lo, hi) = _check_levels(n_levels, data_range)
    be = get_backend(backend)
    key = be.key(seed) if key is None else key
    v = be.asarray(levels, dtype=dtype)
    u = be.uniform(be.fold_in(be.fold_in(key, DEQUANT_TAG), draw), tuple(v.shape), v.dtype, offset=offset)
    return lo + ((hi - lo) / K) * (v + u)


def _check_levels(n_levels, data_range):
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2:
        raise ValueError(f"n_levels must be an int ≥ 2 (256 for 8-bit data), got {n_levels!r}")
    try:
        lo, hi = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (lo, hi), got {data_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be finite with lo < hi, got {data_range!r}")
    return n_levels, (lo, hi)


def bits_per_dim(model, sde: SDE, data, *, n_levels: int | None = None, data_range=None, n_dequant: int = 1,
                 batch_size: int | None = None, backend=None, dtype=None, seed: int = 0, offset: int = 0,
                 **options) -> BitsPerDim:
    """Bits per dimension of quantized data under the model, an upper bound (see the module
    docstring for the derivation):

        bpd = −( E_u[log p_eps(lo + c(v + u))] + D log c ) / (D log 2),   c = (hi − lo)/K,

    the expectation over uniform dequantization noise estimated with ``n_dequant`` draws.

    ``data``: a :class:`~scorecore.data.Dataset` with ``levels`` (``n_levels`` and
    ``data_range`` are taken from it), or an integer array of levels (n, ...) with
    ``n_levels`` K and ``data_range`` (lo, hi) given (default (0, 1)). ``batch_size``
    splits the data into chunks (results do not depend on it: every draw is row-wise
    batch invariant). ``options`` go to :func:`log_likelihood` (``divergence``, ``rtol``, …).
    """
    from .data import Dataset

    if isinstance(data, Dataset):
        if data.levels is None:
            raise ValueError("data is a Dataset without levels: bits per dimension need quantized data")
        levels = data.levels
        n_levels = data.n_levels if n_levels is None else n_levels
        data_range = data.data_range if data_range is None else data_range
    else:
        levels = data
        if n_levels is None:
            raise ValueError("n_levels is required when data is an array of levels (256 for 8-bit data)")
    K, (lo, hi) = _check_levels(n_levels, (0.0, 1.0) if data_range is None else data_range)
    if isinstance(n_dequant, bool) or not isinstance(n_dequant, int) or n_dequant < 1:
        raise ValueError(f"n_dequant must be a positive int, got {n_dequant!r}")
    lv = _host(levels)
    if lv.ndim < 2 or lv.shape[0] < 1:
        raise ValueError(f"levels must have shape (n, d, ...), got {lv.shape}")
    if not np.all(lv == np.round(lv)) or lv.min() < 0 or lv.max() > K - 1:
        raise ValueError(f"levels must be integers in [0, {K - 1}] (n_levels={K})")
    n = lv.shape[0]
    if batch_size is None:
        batch_size = n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for bad in ("x", "key", "return_info"):
        if bad in options:
            raise TypeError(f"bits_per_dim() got an unexpected keyword argument {bad!r}")
    be = get_backend(backend)
    key = be.key(seed)
    D = math.prod(lv.shape[1:])
    offset_bits = math.log2(K / (hi - lo))
    per_draw = np.empty((n_dequant, n))
    nfe, converged = 0, True
    for r in range(n_dequant):
        draw_key = be.fold_in(key, r)  # the Hutchinson probes of draw r
        for a in range(0, n, batch_size):
            x = dequantize(lv[a:a + batch_size], K, (lo, hi), backend=be, dtype=dtype, key=key, draw=r,
                           offset=offset + a)
            logp, info = log_likelihood(model, sde, x, backend=be, key=draw_key, offset=offset + a,
                                        return_info=True, **options)
            per_draw[r, a:a + batch_size] = -_host(logp) / (D * math.log(2)) + offset_bits
            nfe += info.nfe
            converged = converged and info.converged
    means = per_draw.mean(axis=0)
    units = means if n > 1 else per_draw[:, 0]
    stderr = float(units.std(ddof=1) / math.sqrt(units.size)) if units.size > 1 else float("nan")
    return BitsPerDim(float(per_draw.mean()), stderr, per_draw, offset_bits, K, (lo, hi), nfe, converged)


__all__ = [
    "DEFAULT_EPS", "BitsPerDim", "LikelihoodInfo", "ODEInfo", "bits_per_dim", "decode", "dequantize", "encode",
    "interpolate", "log_likelihood",
]
