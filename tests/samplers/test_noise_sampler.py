"""The ``noise_sampler(sigma, sigma_next)`` hook of the stochastic σ samplers and EDM's churn:
zero noise is the run without noise (S_noise = 0), replaying the run's own draws is the default
run, and k-diffusion fed the same noise through its own ``noise_sampler`` gives our samples."""

from __future__ import annotations

import numpy as np
import pytest
from support.ring import RING

import scorecore as sc
from scorecore.samplers.sigma_space import karras_sigmas, sigma_of_time

SDE = sc.VPSDE()
SHAPE, SEED = (32, 2), 3
CASES = [("euler_ancestral", {}), ("dpmpp_2s_ancestral", {}), ("dpmpp_2m_sde", {}), ("dpmpp_3m_sde", {}),
         ("edm", {"s_churn": 10.0})]


def levels(n=8):
    return karras_sigmas(sigma_of_time(SDE, SDE.T), sigma_of_time(SDE, 1e-3), n) + [0.0]


def replay(sigmas, draws):
    """noise_sampler(σ_i, ·) -> draws[i] (k-diffusion's convention: the step is found by its level)."""
    sig = [float(s) for s in sigmas]
    return lambda s, s_next: draws[sig.index(float(s))]


def step_draws(seed=SEED):
    be = sc.get_backend("numpy")
    return [np.asarray(be.normal(be.fold_in(be.key(seed), k), SHAPE, np.float64)) for k in range(16)]


def run(name, options, **kw):
    return sc.sample(RING.score_model(SDE), SDE, SHAPE, sampler=name, steps=8, seed=SEED, progress=False,
                     **(options | kw))


@pytest.mark.parametrize("name,options", CASES)
def test_zero_noise_is_the_run_without_noise(name, options):
    zeros = run(name, options, noise_sampler=lambda s, s_next: np.zeros(SHAPE))
    np.testing.assert_array_equal(zeros, run(name, options, s_noise=0.0))
    assert np.abs(zeros - run(name, options)).max() > 1e-2  # the default noise is not zero: the check can fail


@pytest.mark.parametrize("name,options", CASES)
def test_replaying_the_runs_draws_is_the_default_run(name, options):
    # EDM's churn is keyed by its level σ_i; the last one is drawn from the run's finish key.
    sig = levels() if name != "edm" else levels()[:-1]
    draws = step_draws()
    if name == "edm":
        be = sc.get_backend("numpy")
        draws[7] = np.asarray(be.normal(sc.streams.run_key(be, be.key(SEED), "finish"), SHAPE, np.float64))
    got = run(name, options, noise_sampler=replay(sig, draws))
    np.testing.assert_array_equal(got, run(name, options))


def test_noise_sampler_must_be_callable():
    with pytest.raises(TypeError, match="noise_sampler must be a callable"):
        sc.samplers.make_sampler("euler_ancestral", noise_sampler="brownian")
    with pytest.raises(TypeError, match="noise_sampler must be a callable"):
        sc.samplers.make_sampler("edm", noise_sampler=3)


@pytest.mark.parametrize("name,options", CASES)
def test_a_noise_sampler_of_the_wrong_shape_or_dtype_is_named(name, options):
    with pytest.raises(ValueError, match=r"noise_sampler\(sigma, sigma_next\) must have shape \(32, 2\)"):
        run(name, options, noise_sampler=lambda s, s_next: np.zeros((32, 3)))
    with pytest.raises(TypeError, match="noise_sampler.*dtype"):
        run(name, options, dtype="float64", noise_sampler=lambda s, s_next: np.zeros(SHAPE, dtype=np.float32))


def test_kdiffusion_fed_the_same_noise_gives_our_samples():
    from kdiffusion_stub import load_sampling

    kd, why = load_sampling()
    if kd is None:
        pytest.skip(why)
    torch = pytest.importorskip("torch")
    sig = levels()
    draws = step_draws(seed=9)  # not the run's own draws
    xh0 = np.random.default_rng(SEED).standard_normal(SHAPE) * sig[0]
    x_T = float(SDE.marginal(SDE.T)[0]) * xh0

    from test_kdiffusion_conformance import mixture_denoiser

    want = kd.sample_euler_ancestral(mixture_denoiser(RING), torch.from_numpy(xh0.copy()),
                                     torch.tensor(sig, dtype=torch.float64), disable=True,
                                     noise_sampler=lambda s, s_next: torch.from_numpy(draws[sig.index(float(s))]))
    got = sc.sample(RING.score_model(SDE), SDE, SHAPE, sampler="euler_ancestral", sigmas=sig, x_init=x_T,
                    noise_sampler=replay(sig, draws), progress=False)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-10)
    assert np.abs(got - run("euler_ancestral", {}, sigmas=sig, x_init=x_T)).max() > 1e-2
