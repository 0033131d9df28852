"""A diffusers ``UNet2DModel`` as a score model.

On a discrete VP chain (ᾱ_i at training timestep i, :class:`~scorecore.sde.DiscreteVPSDE`) the
network sees x_t = m x₀ + s ε with m = √ᾱ(t), s = √(1 − ᾱ(t)) and its timestep τ(t) = t N/T − 1,
and predicts one of

* ``"epsilon"``:      ε̂,                     ∇ₓ log p_t(x) = −ε̂ / s;
* ``"v_prediction"``: v̂ = m ε − s x₀,        ε̂ = m v̂ + s x (m² + s² = 1);
* ``"sample"``:       x̂₀,                    ∇ₓ log p_t(x) = (m x̂₀ − x) / s².

diffusers' score-SDE-VE ``UNet2DModel`` (``time_embedding_type="fourier"``) takes σ(t) itself and
already divides its output by σ, so its output is the score of x_t = x₀ + σ z (a VE SDE).
"""

from __future__ import annotations

import contextlib

import torch

from scorecore import validation
from scorecore.sde import SDE, VESDE, DiscreteVPSDE, diffusers_betas

PREDICTIONS = ("epsilon", "v_prediction", "sample")


def _per_sample(c, x):
    return c.reshape((-1,) + (1,) * (x.ndim - 1)) if c.ndim else c


def snap_timestep(tau: torch.Tensor, N: int) -> torch.Tensor:
    """τ rounded to the nearest integer where it is one up to the float error of t·N.

    The samplers' times t_i = (i + 1)/N are rounded to the dtype, so τ = tN − 1 misses the
    integer the network was trained on by ~N·eps; the timestep embedding (sin/cos of τ at
    frequencies up to 1) would turn that into an O(N·eps) change of the output.
    """
    r = torch.round(tau)
    tol = 8 * N * torch.finfo(tau.dtype).eps
    return torch.where((tau - r).abs() <= tol, r, tau)


class DiffusersUNet:
    """``score(x, t)`` of a diffusers ``UNet2DModel`` on ``sde``.

    ``sde`` is a :class:`~scorecore.sde.DiscreteVPSDE` (ε/v/x₀ prediction) or a
    :class:`~scorecore.VESDE` for a σ-conditioned (Fourier-embedded) network. ``class_labels``
    (an (n,) integer tensor, or None) is passed to every call.
    """

    def __init__(self, unet, sde: SDE, prediction_type: str = "epsilon", class_labels=None):
        if not callable(unet):
            raise TypeError(f"unet must be a callable diffusers UNet2DModel, got {type(unet).__name__}")
        validation.instance("sde", sde, (DiscreteVPSDE, VESDE), "a DiscreteVPSDE (ε/v/x₀ networks) or a VESDE")
        self.prediction_type = validation.choice("prediction_type", prediction_type, PREDICTIONS)
        self.unet, self.sde, self.class_labels = unet, sde, class_labels
        self._differentiating = False
        config = getattr(unet, "config", None)
        if config is not None:
            self.event_shape = (config.in_channels, config.sample_size, config.sample_size) if isinstance(
                config.sample_size, int) else (config.in_channels, *config.sample_size)

    def __repr__(self):
        return f"DiffusersUNet({type(self.unet).__name__}, {self.sde!r}, {self.prediction_type})"

    def jvp(self, x, t, v):
        """(∂score/∂x) v by reverse mode twice: u ↦ Jᵀu is linear, so its vjp with v is J v.

        Forward mode fails on diffusers' UNet (torch 2.x: the fused attention kernels have no
        forward derivative, and group_norm's rejects the tangent's strides after attention);
        attention runs on PyTorch's plain ("math") kernel, whose double backward exists.
        """
        with self._autodiff():
            _, pullback = torch.func.vjp(lambda y: self(y, t), x)
            _, pull_u = torch.func.vjp(lambda u: pullback(u)[0], torch.zeros_like(x))
            return pull_u(v)[0]

    def divergence(self, x, t):
        """Exact ∇ₓ·score = Σ_d e_dᵀ (∂score/∂x) e_d by D reverse passes of one pullback (forward
        mode, the backend's default, fails on this network: see :meth:`jvp`). D passes: use
        Hutchinson's estimator for images of any size."""
        n, D = x.shape[0], x[0].numel()
        total = torch.zeros(n, dtype=x.dtype, device=x.device)
        with self._autodiff():
            _, pullback = torch.func.vjp(lambda y: self(y, t), x)
            for d in range(D):
                e = torch.zeros((n, D), dtype=x.dtype, device=x.device)
                e[:, d] = 1.0
                total = total + pullback(e.reshape(x.shape))[0].reshape(n, D)[:, d]
        return total

    def vjp(self, x, t, u):
        """uᵀ ∂score/∂x by reverse mode."""
        with self._autodiff():
            return torch.func.vjp(lambda y: self(y, t), x)[1](u)[0]

    @contextlib.contextmanager
    def _autodiff(self):
        """Gradients on, and attention on PyTorch's plain kernel (its double backward exists)."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        self._differentiating = True
        try:
            with sdpa_kernel([SDPBackend.MATH]), torch.enable_grad():
                yield
        finally:
            self._differentiating = False

    def _net(self, x, cond):
        # Sampling records no autograd graph through the network's parameters (it would grow
        # with every step); the autodiff methods above switch gradients back on.
        with torch.set_grad_enabled(self._differentiating):
            return self.unet(x, cond, class_labels=self.class_labels).sample

    def __call__(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if isinstance(self.sde, VESDE):
            return self._net(x, self.sde.sigma(t).expand(x.shape[0]) if t.ndim == 0 else self.sde.sigma(t))
        m, s = (_per_sample(c, x) for c in self.sde.marginal(t))
        tau = snap_timestep(self.sde.timestep(t), self.sde.N)
        out = self._net(x, tau)
        if self.prediction_type == "epsilon":
            return -out / s
        if self.prediction_type == "v_prediction":
            return -(m * out + s * x) / s
        return (m * out - x) / (s * s)


def sde_of_scheduler_config(config: dict) -> tuple[SDE, str]:
    """(SDE, prediction_type) of a diffusers scheduler config (``scheduler_config.json``).

    ``ScoreSdeVeScheduler`` → ``VESDE(sigma_min, sigma_max)``; every DDPM-family scheduler →
    the :class:`~scorecore.sde.DiscreteVPSDE` of its ``trained_betas`` or of its
    ``beta_schedule``/``beta_start``/``beta_end``/``num_train_timesteps``.
    """
    validation.instance("scheduler config", config, dict, "a dict (scheduler_config.json)")
    if config.get("_class_name") == "ScoreSdeVeScheduler":
        return VESDE(sigma_min=config.get("sigma_min", 0.01), sigma_max=config.get("sigma_max", 1348.0),
                     N=config.get("num_train_timesteps", 2000)), "score"
    if config.get("trained_betas") is not None:
        betas = list(config["trained_betas"])
    else:
        betas = diffusers_betas(config.get("beta_schedule", "linear"), config.get("num_train_timesteps", 1000),
                                config.get("beta_start", 0.0001), config.get("beta_end", 0.02))
    return DiscreteVPSDE.from_betas(betas), config.get("prediction_type", "epsilon")
