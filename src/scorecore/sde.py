"""Linear SDEs of Song et al. (2021): VE, VP and sub-VP, their kernels and their reversals.

Each SDE is ``dx = f(x, t) dt + g(t) dw`` on t ∈ [0, T] with a linear drift
``f(x, t) = a(t) x``, so the perturbation kernel is Gaussian,
``p_0t(x(t) | x(0)) = N(x(t); m(t) x(0), s(t)² I)``, with ``m' = a m`` and
``(s²)' = 2 a s² + g²`` from ``m(0) = 1, s(0) = 0``. Every kernel below is that
exact solution (see :class:`VESDE` for the one place where the seeds' code differs).

Times ``t`` are Python numbers, 0-D arrays or arrays of shape (n,) (one time per
sample); ``x`` has shape (n, ...). All methods are pure Array API functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from array_api_compat import device as array_api_compat_device

from . import validation as v
from ._arrays import as_time, check_time, is_array, namespace, per_sample, sum_event

Score = Callable

# Defined here, not at the end: the end of this module holds the name -> SDE map.
__all__ = ["SDE", "DiscreteVPSDE", "ReverseSDE", "Score", "SubVPSDE", "VESDE", "VPSDE", "apply_kernel",
           "diffusers_betas"]


def apply_kernel(m, s, x0, z):
    """``m x(0) + s z``: the kernel's draw for per-sample (0-D or (n,)) m and s and standard normal z."""
    return per_sample(m, x0) * x0 + per_sample(s, x0) * z


def _host_float(value, t):
    """``value`` as a Python float when the input ``t`` was a host number, else the array."""
    return value if is_array(t) else float(value)


class SDE:
    """Base of the linear SDEs: drift ``f(x, t)``, diffusion ``g(t)``, kernel ``(m(t), s(t))``."""

    T: float = 1.0

    def __init__(self, N: int = 1000):
        self.N = v.integer("N", N, lo=2)

    # -- to override ------------------------------------------------------------
    def drift_coeff(self, t):
        """``a(t)`` in ``f(x, t) = a(t) x``."""
        raise NotImplementedError

    def diffusion(self, t):
        """``g(t)``."""
        raise NotImplementedError

    def flow_coefficients(self, t):
        """``(a(t), c(t))`` of the probability-flow ODE f̃(x, t) = a(t) x + c(t) s_θ(x, t), c = −½ g(t)²,
        so ∇·f̃ = D a(t) + c(t) ∇·s_θ; ``a`` is None where f = 0 (VE). Each SDE writes them in the
        fewest array ops: the likelihood evaluates them at every right-hand side."""
        return self.drift_coeff(t), -0.5 * self.diffusion(t) ** 2

    def marginal(self, t):
        """``(m(t), s(t))``: p_0t(x(t)|x(0)) = N(m(t) x(0), s(t)² I)."""
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior p_T = N(0, prior_std² I)."""
        raise NotImplementedError

    def time_of_std(self, std):
        """The time t at which the kernel std s(t) equals ``std`` (s is increasing)."""
        raise NotImplementedError

    def time_of_sigma(self, sigma):
        """The inverse of the noise level σ(t) = s(t)/m(t): a float for a host number, else an array."""
        raise TypeError(f"sde must be a VESDE, VPSDE or SubVPSDE to invert σ(t) = s(t)/m(t) in closed form, "
                        f"got {type(self).__name__}")

    # -- shared -----------------------------------------------------------------
    def _t(self, t, like=None):
        check_time(t, self.T)
        return as_time(t, like)

    def drift(self, x, t):
        """``f(x, t) = a(t) x``."""
        return per_sample(self.drift_coeff(self._t(t, x)), x) * x

    def sde(self, x, t):
        """``(f(x, t), g(t))``."""
        return self.drift(x, t), self.diffusion(self._t(t, x))

    def perturb(self, x0, t, z):
        """A draw from the kernel: ``x(t) = m(t) x(0) + s(t) z`` for standard normal ``z``."""
        m, s = self.marginal(self._t(t, x0))
        return apply_kernel(m, s, x0, z)

    def sigma_of_time(self, t):
        """The noise level σ(t) = s(t)/m(t) of x(t)/m(t) = x(0) + σ(t) z: a float for a host number."""
        m, s = self.marginal(t)
        return _host_float(s / m, t)

    def chain_index(self, t):
        """The level i = round(t (N − 1)/T) of the N-level discrete chain at time t (host or array)."""
        scaled = t * ((self.N - 1) / self.T)
        if is_array(scaled):
            return namespace(scaled).round(scaled)
        return round(scaled)

    def kernel_score(self, xt, x0, t):
        """∇ log p_0t(x(t)|x(0)) = −(x(t) − m x(0)) / s²."""
        m, s = self.marginal(self._t(t, xt))
        return -(xt - per_sample(m, x0) * x0) / per_sample(s, xt) ** 2

    def kernel_log_prob(self, xt, x0, t):
        """log N(x(t); m x(0), s² I), summed over the event axes."""
        xp = namespace(xt)
        m, s = self.marginal(self._t(t, xt))
        r = (xt - per_sample(m, x0) * x0) / per_sample(s, xt)
        d = math.prod(xt.shape[1:])
        return -0.5 * sum_event(xp, r * r) - d * (xp.log(s) + 0.5 * math.log(2 * math.pi))

    def prior_sample(self, z):
        """A prior draw from standard normal noise ``z``: ``prior_std · z``."""
        return self.prior_std * z

    def prior_log_prob(self, z):
        """log N(z; 0, prior_std² I), summed over the event axes."""
        xp = namespace(z)
        d = math.prod(z.shape[1:])
        s2 = self.prior_std**2
        return -0.5 * sum_event(xp, z * z) / s2 - 0.5 * d * math.log(2 * math.pi * s2)

    def tweedie(self, x, t, score_x):
        """Tweedie's denoiser E[x(0) | x(t)] = (x + s² ∇log p_t(x)) / m."""
        m, s = self.marginal(self._t(t, x))
        return (x + per_sample(s, x) ** 2 * score_x) / per_sample(m, x)

    def discretize(self, x, t):
        """One step of the Markov chain ``x_{i+1} = x_i + f_i(x_i) + G_i z_i`` at time ``t``.

        The default is Euler–Maruyama with Δt = T/N: ``f_i = f(x, t) Δt, G_i = g(t) √Δt``.
        """
        dt = self.T / self.N
        return self.drift(x, t) * dt, self.diffusion(self._t(t, x)) * math.sqrt(dt)

    def reverse_drift(self, x, t, score_x, probability_flow: bool = False):
        """``f − g² ∇log p_t`` (reverse SDE) or ``f − ½ g² ∇log p_t`` (probability flow)."""
        g = self.diffusion(self._t(t, x))
        weight = 0.5 if probability_flow else 1.0
        return self.drift(x, t) - weight * per_sample(g, x) ** 2 * score_x

    def reverse(self, score: Score, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE ``dx = [f − g² s(x, t)] dt + g dw̄`` for a score callable.

        With ``probability_flow=True``: the ODE ``dx = [f − ½ g² s(x, t)] dt``.
        """
        return ReverseSDE(self, score, probability_flow)

    def probability_flow(self, score: Score) -> ReverseSDE:
        """The probability-flow ODE ``dx/dt = f − ½ g² s(x, t)``."""
        return ReverseSDE(self, score, True)


class ReverseSDE:
    """The reverse-time process of an SDE driven by a score model ``s(x, t)``."""

    def __init__(self, sde: SDE, score: Score, probability_flow: bool = False):
        if not callable(score):
            raise TypeError(f"score must be callable score(x, t), got {type(score).__name__}")
        self.forward, self.score, self.probability_flow = sde, score, probability_flow

    def drift(self, x, t):
        """``f − g² s`` (or ``f − ½ g² s`` for the probability flow)."""
        return self.forward.reverse_drift(x, t, self.score(x, t), self.probability_flow)

    def diffusion(self, t):
        """``g(t)`` for the reverse SDE, 0 for the probability-flow ODE."""
        g = self.forward.diffusion(t)
        return 0.0 * g if self.probability_flow else g

    def discretize(self, x, t):
        """Reverse diffusion (Song et al. 2021, eq. 46): ``f_i − G_i² s``, ``G_i``.

        The probability-flow version halves the score term and has no noise.
        """
        f, G = self.forward.discretize(x, t)
        weight = 0.5 if self.probability_flow else 1.0
        rev_f = f - weight * per_sample(G, x) ** 2 * self.score(x, t)
        return rev_f, 0.0 * G if self.probability_flow else G


class VESDE(SDE):
    """Variance exploding: ``dx = √(d σ²(t)/dt) dw`` with σ(t) = σ_min (σ_max/σ_min)^t.

    g(t) = σ(t) √(2 log(σ_max/σ_min)), f = 0. The kernel std is the exact
    s(t) = √(σ(t)² − σ_min²) (the SDE started at a point). The seeds' code uses
    σ(t) instead, i.e. it treats the data as already perturbed by σ_min; the two
    differ by σ_min²/(2σ(t)) ≤ σ_min/2. The prior is N(0, σ_max² I), as in the seeds.
    The discrete chain (SMLD) uses σ_i = σ(i/(N−1)), i = 0..N−1.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000):
        super().__init__(N)
        self.sigma_min, self.sigma_max = v.ordered_range("sigma_min", sigma_min, "sigma_max", sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def __repr__(self):
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, N={self.N})"

    def sigma(self, t):
        """σ(t) = σ_min (σ_max/σ_min)^t."""
        t = self._t(t)
        return self.sigma_min * namespace(t).exp(t * self._log_ratio)

    def drift_coeff(self, t):
        return 0.0 * self._t(t)

    def flow_coefficients(self, t):
        """a = 0; c = −½ g² = −σ(t)² log(σ_max/σ_min) = −σ_min² log(σ_max/σ_min) e^{2t log(σ_max/σ_min)}."""
        t = self._t(t)
        return None, (-self.sigma_min**2 * self._log_ratio) * namespace(t).exp(t * (2 * self._log_ratio))

    def drift(self, x, t):
        return 0.0 * x

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def marginal(self, t):
        """m = 1, s = σ_min √(exp(2t log(σ_max/σ_min)) − 1) (expm1: exact to t → 0)."""
        t = self._t(t)
        xp = namespace(t)
        return 1.0 + 0.0 * t, self.sigma_min * xp.sqrt(xp.expm1(2.0 * self._log_ratio * t))

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def time_of_std(self, std):
        """t = log(√(σ_min² + s²)/σ_min) / log(σ_max/σ_min)."""
        s = as_time(std)
        xp = namespace(s)
        return 0.5 * xp.log1p((s / self.sigma_min) ** 2) / self._log_ratio

    def time_of_sigma(self, sigma):
        """m = 1, so σ(t) = s(t) and t = :meth:`time_of_std` (σ)."""
        return _host_float(self.time_of_std(sigma), sigma)

    def discrete_sigmas(self, like=None):
        """The SMLD levels σ_i = σ(i/(N−1)), increasing, as an array of ``like``'s kind."""
        t = as_time([i / (self.N - 1) for i in range(self.N)], like)
        return self.sigma_min * namespace(t).exp(t * self._log_ratio)

    def discretize(self, x, t):
        """SMLD: f_i = 0, G_i = √(σ_i² − σ_{i−1}²) (σ_{−1} = 0), i = round(t (N−1)/T)."""
        xp = namespace(x)
        t = self._t(t, x)
        sigmas = self.discrete_sigmas(like=x)
        i = xp.astype(self.chain_index(t), xp.int64)
        sigma = xp.take(sigmas, xp.reshape(i, (-1,)), axis=0)
        prev = xp.take(sigmas, xp.reshape(xp.maximum(i - 1, 0), (-1,)), axis=0)
        prev = xp.where(xp.reshape(i, (-1,)) == 0, 0.0 * prev, prev)
        G = xp.sqrt(sigma**2 - prev**2)
        return 0.0 * x, xp.reshape(G, t.shape)


class _BetaSDE(SDE):
    """Shared by VP and sub-VP: β(t) = β_min + t (β_max − β_min), f = −½ β(t) x."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000):
        super().__init__(N)
        self.beta_min, self.beta_max = v.ordered_range("beta_min", beta_min, "beta_max", beta_max, lo_positive=False)

    def __repr__(self):
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max}, N={self.N})"

    def beta(self, t):
        """β(t) = β_min + t (β_max − β_min)."""
        return self.beta_min + self._t(t) * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """B(t) = ∫₀ᵗ β = β_min t + ½ t² (β_max − β_min)."""
        t = self._t(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def drift_coeff(self, t):
        return -0.5 * self.beta(t)

    def time_of_integrated_beta(self, B):
        """The root t ≥ 0 of ½(β_max − β_min) t² + β_min t = B."""
        xp = namespace(B)
        a = 0.5 * (self.beta_max - self.beta_min)
        # The cancellation-free form of (−β_min + √(β_min² + 4aB)) / (2a).
        return 2.0 * B / (self.beta_min + xp.sqrt(self.beta_min**2 + 4.0 * a * B))

    def discrete_beta(self, i):
        """β_i = (β_min + i (β_max − β_min)/(N − 1)) / N of the N-level DDPM chain (host or array i):
        β(t_i)/N at t_i = i/(N − 1) (T = 1; Ho et al.'s linear 10⁻⁴..0.02 for the defaults)."""
        return (self.beta_min + i * ((self.beta_max - self.beta_min) / (self.N - 1))) / self.N

    @property
    def prior_std(self) -> float:
        return 1.0


class VPSDE(_BetaSDE):
    """Variance preserving: ``dx = −½ β(t) x dt + √β(t) dw`` (continuous DDPM).

    m(t) = exp(−½ B(t)), s(t) = √(1 − e^{−B(t)}), prior N(0, I). The discrete chain
    is DDPM's: β_i = β_min/N + i (β_max − β_min)/(N(N−1)), f_i = (√(1−β_i) − 1) x,
    G_i = √β_i.
    """

    def diffusion(self, t):
        beta = self.beta(t)
        return namespace(beta).sqrt(beta)

    def flow_coefficients(self, t):
        """a = c = −½ β(t) (g² = β): one array."""
        a = -0.5 * self.beta(t)
        return a, a

    def marginal(self, t):
        t = self._t(t)
        xp = namespace(t)
        B = self.integrated_beta(t)
        return xp.exp(-0.5 * B), xp.sqrt(-xp.expm1(-B))

    def time_of_std(self, std):
        """B = −log(1 − s²), then t from B."""
        s = as_time(std)
        return self.time_of_integrated_beta(-namespace(s).log1p(-(s * s)))

    def discrete_alphas_cumprod(self) -> list[float]:
        """ᾱ_i = Π_{j≤i} (1 − β_j), i = 0..N−1, of the DDPM chain, on the host."""
        out, prod = [], 1.0
        for i in range(self.N):
            prod *= 1.0 - self.discrete_beta(i)
            out.append(prod)
        return out

    def time_of_sigma(self, sigma):
        """σ = s/m = √(e^B − 1), so B = log(1 + σ²), then t from B."""
        s = as_time(sigma)
        return _host_float(self.time_of_integrated_beta(namespace(s).log1p(s * s)), sigma)

    def interval_beta(self, t, dt):
        """β = 1 − ᾱ(t)/ᾱ(t + dt) (dt < 0, ᾱ = m²) of the DDPM step between the times t + dt and t:
        1 − e^{−(B(t) − B(t + dt))}, the difference written −dt (β_min + ½ (β_max − β_min)(2t + dt))
        so that it does not cancel. ᾱ of the chain through any grid then equals ᾱ(t) at every
        time on it, and 0 < β < 1 however coarse the grid."""
        t = self._t(t)
        return -namespace(t).expm1(dt * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * (2.0 * t + dt)))

    def discretize(self, x, t):
        """DDPM: x_{i+1} = √(1−β_i) x_i + √β_i z with i = round(t (N−1)/T)."""
        xp = namespace(x)
        beta_i = self.discrete_beta(self.chain_index(self._t(t, x)))
        return per_sample(xp.sqrt(1.0 - beta_i) - 1.0, x) * x, xp.sqrt(beta_i)


    @classmethod
    def from_betas(cls, betas) -> DiscreteVPSDE:
        """The VP SDE of a trained discrete chain with noise levels ``betas`` = (β_0, …, β_{N−1}):
        see :class:`DiscreteVPSDE` (ᾱ_i = Π_{j≤i} (1 − β_j) exact at t_i = (i + 1) T/N)."""
        return DiscreteVPSDE.from_betas(betas)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod) -> DiscreteVPSDE:
        """The VP SDE whose marginal passes through ``alphas_cumprod`` = (ᾱ_0, …, ᾱ_{N−1}):
        see :class:`DiscreteVPSDE`."""
        return DiscreteVPSDE(alphas_cumprod)


def diffusers_betas(schedule: str, num_train_timesteps: int = 1000, beta_start: float = 0.0001,
                    beta_end: float = 0.02) -> list[float]:
    """β_0..β_{N−1} of diffusers' ``beta_schedule`` names, in float64 on the host:

    * ``"linear"``: β_i = β_start + i (β_end − β_start)/(N − 1) (Ho et al. 2020);
    * ``"scaled_linear"``: β_i = (√β_start + i (√β_end − √β_start)/(N − 1))² (Stable Diffusion's);
    * ``"squaredcos_cap_v2"``: β_i = min(1 − ᾱ(t_{i+1})/ᾱ(t_i), 0.999) with t_i = i/N and
      ᾱ(t) = cos²((t + 0.008)/1.008 · π/2) (Nichol & Dhariwal 2021's cosine schedule).
    """
    N = v.integer("num_train_timesteps", num_train_timesteps, lo=2)
    v.choice("beta_schedule", schedule, ("linear", "scaled_linear", "squaredcos_cap_v2"))
    b0, b1 = v.nonneg_float("beta_start", beta_start), v.positive_float("beta_end", beta_end)
    if schedule == "linear":
        return [b0 + i * (b1 - b0) / (N - 1) for i in range(N)]
    if schedule == "scaled_linear":
        r0, r1 = math.sqrt(b0), math.sqrt(b1)
        return [(r0 + i * (r1 - r0) / (N - 1)) ** 2 for i in range(N)]

    def abar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return [min(1.0 - abar((i + 1) / N) / abar(i / N), 0.999) for i in range(N)]


class DiscreteVPSDE(VPSDE):
    """The VP SDE through a trained DDPM chain's ᾱ_0 > … > ᾱ_{N−1} (diffusers' ``alphas_cumprod``).

    Training timestep i ∈ {0, …, N−1} sits at t_i = (i + 1) T/N, and t = 0 is the data
    (ᾱ = 1), so the map between t and the network's (fractional) timestep τ is

        τ(t) = t N/T − 1,    t(τ) = (τ + 1) T/N.

    B(t) = −log ᾱ(t) is piecewise linear through the knots B(t_i) = −log ᾱ_i (B(0) = 0),
    i.e. log ᾱ is interpolated linearly in t; m(t) = e^{−B/2}, s(t) = √(1 − e^{−B}) as for
    every VP SDE, so m(t_i)² = ᾱ_i exactly. β(t) = B'(t) = (N/T) log(ᾱ_{i−1}/ᾱ_i) on
    (t_{i−1}, t_i] is piecewise constant. The discrete chain is the trained one:
    x_{i} = √(1 − β_i) x_{i−1} + √β_i z with β_i = 1 − ᾱ_i/ᾱ_{i−1}.
    """

    def __init__(self, alphas_cumprod):
        abar = [v.real(f"alphas_cumprod[{i}]", a, lo=0.0, hi=1.0, lo_open=True, hi_open=True) for i, a in
                enumerate(alphas_cumprod)]
        if len(abar) < 2:
            raise ValueError(f"alphas_cumprod must hold at least 2 levels, got {len(abar)}")
        if any(b >= a for a, b in zip([1.0] + abar, abar)):
            raise ValueError("alphas_cumprod must decrease strictly from below 1 (ᾱ_i = Π_{j≤i} (1 − β_j))")
        SDE.__init__(self, len(abar))
        self.alphas_cumprod = tuple(abar)
        self._knots = [0.0] + [-math.log(a) for a in abar]  # B(t_k), t_k = k T/N, k = 0..N
        self.beta_min = self._knots[1] * self.N / self.T
        self.beta_max = (self._knots[-1] - self._knots[-2]) * self.N / self.T

    @classmethod
    def from_betas(cls, betas) -> DiscreteVPSDE:
        """ᾱ_i = Π_{j≤i} (1 − β_j), each β_j in (0, 1)."""
        out, prod = [], 1.0
        for j, b in enumerate(betas):
            prod *= 1.0 - v.real(f"betas[{j}]", b, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
            out.append(prod)
        return cls(out)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod) -> DiscreteVPSDE:
        return cls(alphas_cumprod)

    def __repr__(self):
        return f"DiscreteVPSDE(N={self.N}, alphas_cumprod=[{self.alphas_cumprod[0]:.6g}, …, " \
               f"{self.alphas_cumprod[-1]:.6g}])"

    def timestep(self, t):
        """τ(t) = t N/T − 1: the network's timestep at time t (−1 at the data)."""
        return t * (self.N / self.T) - 1.0

    def time_of_timestep(self, tau):
        """t(τ) = (τ + 1) T/N."""
        return (tau + 1.0) * (self.T / self.N)

    def _segment(self, t):
        """(B_k, B_{k+1} − B_k, u − k) for u = t N/T, k = ⌊u⌋ clipped to 0..N−1."""
        xp = namespace(t)
        u = t * (self.N / self.T)
        k = xp.clip(xp.floor(u), 0.0, float(self.N - 1))
        knots = xp.asarray(self._knots, dtype=t.dtype, device=array_api_compat_device(t))
        idx = xp.reshape(xp.astype(k, xp.int64), (-1,))
        lo = xp.reshape(xp.take(knots, idx), t.shape)
        hi = xp.reshape(xp.take(knots, idx + 1), t.shape)
        return lo, hi - lo, u - k

    def beta(self, t):
        """β(t) = (B_{k+1} − B_k) N/T on the segment of t."""
        _, dB, _ = self._segment(self._t(t))
        return dB * (self.N / self.T)

    def integrated_beta(self, t):
        """B(t) = B_k + (u − k)(B_{k+1} − B_k), u = t N/T: −log ᾱ interpolated linearly."""
        lo, dB, frac = self._segment(self._t(t))
        return lo + frac * dB

    def time_of_integrated_beta(self, B):
        """The inverse of the piecewise-linear B: t = (k + (B − B_k)/(B_{k+1} − B_k)) T/N."""
        B = as_time(B)
        xp = namespace(B)
        knots = xp.asarray(self._knots, dtype=B.dtype, device=array_api_compat_device(B))
        flat = xp.reshape(B, (-1,))
        idx = xp.clip(xp.searchsorted(knots, flat, side="right") - 1, 0, self.N - 1)
        lo, hi = xp.take(knots, idx), xp.take(knots, idx + 1)
        k = xp.astype(idx, B.dtype)
        return xp.reshape((k + (flat - lo) / (hi - lo)) * (self.T / self.N), B.shape)

    def discrete_beta(self, i):
        """β_i = 1 − ᾱ_i/ᾱ_{i−1} (ᾱ_{−1} = 1) of the trained chain (host or array i)."""
        if not is_array(i):
            return -math.expm1(self._knots[int(i)] - self._knots[int(i) + 1])
        xp = namespace(i)
        knots = xp.asarray(self._knots, dtype=xp.float64 if xp.isdtype(i.dtype, "integral") else i.dtype,
                           device=array_api_compat_device(i))
        idx = xp.reshape(xp.astype(i, xp.int64), (-1,))
        lo, hi = xp.take(knots, idx), xp.take(knots, idx + 1)
        return xp.reshape(-xp.expm1(lo - hi), i.shape)

    def interval_beta(self, t, dt):
        """β = 1 − ᾱ(t)/ᾱ(t + dt) through the piecewise-linear B (the trained β_i between training timesteps)."""
        t = self._t(t)
        return -namespace(t).expm1(self.integrated_beta(t + dt) - self.integrated_beta(t))

    def discrete_alphas_cumprod(self) -> list[float]:
        return list(self.alphas_cumprod)

    def chain_index(self, t):
        """The training timestep i = round(τ(t)) nearest t, clipped to 0..N−1."""
        tau = self.timestep(t)
        if is_array(tau):
            xp = namespace(tau)
            return xp.clip(xp.round(tau), 0.0, float(self.N - 1))
        return min(max(round(tau), 0), self.N - 1)


class SubVPSDE(_BetaSDE):
    """Sub-VP: ``dx = −½ β(t) x dt + √(β(t)(1 − e^{−2B(t)})) dw``.

    m(t) = e^{−½ B(t)} (as VP), s(t) = 1 − e^{−B(t)} ≤ the VP std at every t.
    Its discrete chain is Euler–Maruyama with Δt = T/N.
    """

    def diffusion(self, t):
        t = self._t(t)
        xp = namespace(t)
        return xp.sqrt(self.beta(t) * -xp.expm1(-2.0 * self.integrated_beta(t)))

    def marginal(self, t):
        t = self._t(t)
        xp = namespace(t)
        B = self.integrated_beta(t)
        return xp.exp(-0.5 * B), -xp.expm1(-B)

    def time_of_sigma(self, sigma):
        """σ = s/m = (1 − e^{−B}) e^{B/2} = 2 sinh(B/2), so B = 2 asinh(σ/2), then t from B."""
        s = as_time(sigma)
        return _host_float(self.time_of_integrated_beta(2.0 * namespace(s).asinh(0.5 * s)), sigma)

    def time_of_std(self, std):
        """B = −log(1 − s), then t from B."""
        s = as_time(std)
        return self.time_of_integrated_beta(-namespace(s).log1p(-s))


#: The SDEs by the names the CLI and the training configuration use.
SDES: dict[str, type[SDE]] = {"ve": VESDE, "vp": VPSDE, "subvp": SubVPSDE}


def make_sde(name: str, **options) -> SDE:
    """The SDE named ``name`` (``"ve"``, ``"vp"`` or ``"subvp"``, see :data:`SDES`), built with
    ``options`` (e.g. ``beta_max=20``); its defaults otherwise."""
    from .validation import choice

    return SDES[choice("sde", name, SDES)](**options)
