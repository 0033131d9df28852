"""Conformance with diffusers 0.42's ``UniPCMultistepScheduler`` (data prediction, bh1/bh2,
orders 1–3, with and without the corrector) and ``DEISMultistepScheduler`` (tAB in log ρ,
orders 1–3): both run in float64 on the same exact 8-ring denoiser and the same σ levels, and
agree to 1e-10.

diffusers steps x = α x̂ with α = 1/√(1 + σ²), which is the VP SDE's m(t) at σ(t) = σ: under
``sc.VPSDE()`` both samplers see the same x. Its levels are built in float32 from a discrete
schedule; here they are replaced after ``set_timesteps`` by scorecore's float64 levels, and the
model (``prediction_type="sample"``) is the exact denoiser at the level of the step.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.ring import RING

import scorecore as sc
from scorecore.samplers.sigma_space import sigma_of_time, sigma_steps

diffusers = pytest.importorskip("diffusers", reason="diffusers not installed (pip install diffusers==0.42.1)")
torch = pytest.importorskip("torch")

# diffusers' set_timesteps builds (and we then replace) its float32 levels through np.array(tensor).
# Its DEIS takes np.log of 0-D tensors (NumPy 2's __array_wrap__ deprecation).
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context")]
SDE = sc.VPSDE()
N_SAMPLES, SEED = 64, 3


def exact_denoiser(xh, sigma):
    """E[x(0) | x(0) + σ n = x̂] of the 8-ring in NumPy (its components are isotropic)."""
    w, mu, cov = (np.asarray(a, dtype=np.float64) for a in (RING.weights, RING.means, RING.covs))
    c = cov + sigma**2 * np.eye(mu.shape[1])
    diff = xh[:, None, :] - mu[None]
    sol = np.linalg.solve(c[None], diff[..., None])[..., 0]
    logp = np.log(w)[None] - 0.5 * np.einsum("nkd,nkd->nk", diff, sol) - 0.5 * np.linalg.slogdet(c)[1][None]
    r = np.exp(logp - logp.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", r, mu[None] + np.einsum("kde,nke->nkd", cov, sol))


def run_diffusers(sigmas, x0, order, solver_type, corrector, final_zero):
    n = len(sigmas) - 1
    sched = diffusers.UniPCMultistepScheduler(solver_order=order, solver_type=solver_type, prediction_type="sample",
                                              final_sigmas_type="zero" if final_zero else "sigma_min",
                                              disable_corrector=[] if corrector else list(range(n)))
    return run_scheduler(sched, sigmas, x0)


def run_scheduler(sched, sigmas, x0):
    """diffusers' sampling loop with the scheduler's levels replaced by ``sigmas`` (float64)."""
    n = len(sigmas) - 1
    sched.set_timesteps(n)
    assert len(sched.sigmas) == n + 1
    sched.sigmas = torch.tensor(sigmas, dtype=torch.float64)
    x = torch.from_numpy(x0.copy())
    for k, t in enumerate(sched.timesteps):
        s = sigmas[k]
        den = torch.from_numpy(exact_denoiser(x.numpy() * np.sqrt(1 + s * s), s))
        x = sched.step(den, t, x).prev_sample
    return x.numpy()


def levels(n, final_zero):
    top, low = sigma_of_time(SDE, SDE.T), sigma_of_time(SDE, sc.api.default_eps(SDE))
    sig = sigma_steps(SDE, "logsnr", n if final_zero else n + 1, top, low)
    return sig + [0.0] if final_zero else sig


def x_start(sigma0):
    return np.random.default_rng(SEED).standard_normal((N_SAMPLES, 2)) * sigma0 / np.sqrt(1 + sigma0**2)


CASES = [(order, st, corr) for order in (1, 2, 3) for st in ("bh1", "bh2") for corr in (True, False)]


@pytest.mark.parametrize("n", [5, 12])
@pytest.mark.parametrize("order,solver_type,corrector", CASES)
def test_unipc_agrees_with_diffusers_on_levels_ending_above_zero(order, solver_type, corrector, n):
    sig = levels(n, final_zero=False)
    x0 = x_start(sig[0])
    want = run_diffusers(sig, x0, order, solver_type, corrector, final_zero=False)
    got = sc.sample(RING.score_model(SDE), SDE, x0.shape, sampler="unipc", order=order, solver_type=solver_type,
                    corrector=corrector, sigmas=sig, x_init=x0, progress=False)
    # The grid ends at σ_N > 0: compare in x = m(t_N) x̂ on both sides.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    if order > 1 or corrector:  # the options matter: another order or corrector lands elsewhere
        other = run_diffusers(sig, x0, order, solver_type, not corrector, final_zero=False)
        assert np.abs(other - want).max() > 1e-6


@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_bh2_agrees_with_diffusers_into_sigma_zero(order):
    sig = levels(10, final_zero=True)
    x0 = x_start(sig[0])
    want = run_diffusers(sig, x0, order, "bh2", True, final_zero=True)
    got = sc.sample(RING.score_model(SDE), SDE, x0.shape, sampler="unipc", order=order, sigmas=sig, x_init=x0,
                    progress=False)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_unipc_bh1_into_sigma_zero_is_finite_where_diffusers_gives_nan():
    # diffusers' last bh1 step into σ = 0 multiplies B(h) = −h = −∞ by a zero correction (NaN);
    # scorecore's last step is the denoiser, x̂_N = D(x̂_{N−1}; σ_{N−1}), as bh2's limit is.
    sig = levels(10, final_zero=True)
    x0 = x_start(sig[0])
    with np.errstate(invalid="ignore"):
        theirs = run_diffusers(sig, x0, 2, "bh1", True, final_zero=True)
    assert np.isnan(theirs).all()
    got = sc.sample(RING.score_model(SDE), SDE, x0.shape, sampler="unipc_bh1", sigmas=sig, x_init=x0, progress=False)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("n", [5, 12, 16])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("lower_order_final", [True, False])
def test_deis_agrees_with_diffusers(order, n, lower_order_final):
    # diffusers' DEIS ends above σ = 0 (at its first training level); so do these levels.
    sig = levels(n, final_zero=False)
    x0 = x_start(sig[0])
    sched = diffusers.DEISMultistepScheduler(solver_order=order, prediction_type="sample",
                                             lower_order_final=lower_order_final)
    want = run_scheduler(sched, sig, x0)
    got = sc.sample(RING.score_model(SDE), SDE, x0.shape, sampler="deis", order=order, sigmas=sig, x_init=x0,
                    lower_order_final=lower_order_final, progress=False)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
