"""Loop-form reference samplers; every random draw is an explicit input.

Feeding the same ``noises`` to the library and to these loops makes the two
trajectories comparable step for step.
"""
import numpy as np


def annealed_langevin(score, x0, sigmas, times, step_lr, n_steps_each, noises, denoise=False):
    """Annealed Langevin dynamics, Algorithm 1 of Song & Ermon (2019).

    for i = 1..L:  alpha_i = eps sigma_i^2 / sigma_L^2
        for j = 1..T:  x <- x + (alpha_i / 2) s(x, t_i) + sqrt(alpha_i) z_{i,j}
    optional denoising step x <- x + sigma_L^2 s(x, t_L) (Tweedie, mean coefficient 1).

    score(x, t): x (n, D), scalar t.  noises: (L, T, n, D).
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    noises = np.asarray(noises, dtype=np.float64)
    x = np.array(x0, dtype=np.float64, copy=True)
    L = sigmas.shape[0]
    if len(times) != L:
        raise ValueError("times must have one entry per noise level")
    if noises.shape != (L, n_steps_each) + x.shape:
        raise ValueError(f"noises must have shape {(L, n_steps_each) + x.shape}, got {noises.shape}")
    sigma_L = sigmas[-1]
    for i in range(L):
        alpha = step_lr * sigmas[i] ** 2 / sigma_L ** 2
        for j in range(n_steps_each):
            x = x + 0.5 * alpha * score(x, times[i]) + np.sqrt(alpha) * noises[i, j]
    if denoise:
        x = x + sigma_L ** 2 * score(x, times[-1])
    return x


def euler_maruyama_reverse(score, sde, x_T, times, noises):
    """Euler-Maruyama on the reverse-time SDE dx = [f(x,t) - g(t)^2 grad log p_t(x)] dt + g(t) dw-bar.

    times runs from T down to the final time; dt_k = times[k+1] - times[k] < 0 and
    x <- x + (f - g^2 s) dt_k + g sqrt(|dt_k|) z_k.  noises: (len(times) - 1, *x_T.shape).
    """
    times = np.asarray(times, dtype=np.float64)
    noises = np.asarray(noises, dtype=np.float64)
    x = np.array(x_T, dtype=np.float64, copy=True)
    if noises.shape != (times.size - 1,) + x.shape:
        raise ValueError(f"noises must have shape {(times.size - 1,) + x.shape}, got {noises.shape}")
    for k in range(times.size - 1):
        t, dt = times[k], times[k + 1] - times[k]
        g = float(sde.diffusion(t))
        drift = sde.drift(x, t) - g ** 2 * score(x, t)
        x = x + drift * dt + g * np.sqrt(abs(dt)) * noises[k]
    return x


def probability_flow_euler(score, sde, x_T, times):
    """Euler on the probability-flow ODE dx = [f(x,t) - 1/2 g(t)^2 grad log p_t(x)] dt, times from T down."""
    times = np.asarray(times, dtype=np.float64)
    x = np.array(x_T, dtype=np.float64, copy=True)
    for k in range(times.size - 1):
        t, dt = times[k], times[k + 1] - times[k]
        g = float(sde.diffusion(t))
        x = x + (sde.drift(x, t) - 0.5 * g ** 2 * score(x, t)) * dt
    return x
