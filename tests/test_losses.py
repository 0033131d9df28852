"""The score-matching losses at the exact score of a Gaussian mixture, where each has a
known value, and at perturbed scores, whose excess is the Fisher divergence.

Monte-Carlo checks compare a mean to its expectation within 4.5 standard errors (a
1-in-150 000 event per check for a Gaussian mean); the expectations come from the
oracle (Fisher information from its own exact samples) or, per sample, from the
exact score at the very points the loss evaluated (a control variate, recorded by
the ``Spy`` model), which leaves a mean-zero residual with a small variance.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import scorecore_reference as ref

import scorecore as sc
from support import to_numpy
from scorecore import losses
from scorecore.losses import PROJECTIONS

TARGET = sc.GaussianMixture.example("8-ring")
ORACLE = ref.GaussianMixture(TARGET.weights, TARGET.means, TARGET.covs)
D = TARGET.dim
SDES = {"ve": (sc.VESDE, ref.VE), "vp": (sc.VPSDE, ref.VP), "subvp": (sc.SubVPSDE, ref.SubVP)}
Z_TOL = 4.5


def assert_mean(samples, expected, expected_se=0.0, what=""):
    """|mean − expected| within Z_TOL combined standard errors."""
    samples = np.asarray(samples, dtype=np.float64)
    se = math.hypot(samples.std(ddof=1) / math.sqrt(samples.size), expected_se)
    assert abs(samples.mean() - expected) < Z_TOL * se, (what, samples.mean(), expected, se)


def assert_worse(excess, predicted, paired=True):
    """A perturbed score's extra loss has the predicted mean, resolvably above 0 (never better).

    ``paired``: ``predicted`` is the per-sample conditional mean of ``excess`` (DSM-type
    losses); otherwise only their means agree (score matching, an integral over x)."""
    residual = excess - predicted if paired else excess
    se = math.hypot(residual.std(ddof=1), 0.0 if paired else predicted.std(ddof=1)) / math.sqrt(excess.size)
    assert abs(residual.mean() - (0.0 if paired else predicted.mean())) < Z_TOL * se, (excess.mean(), predicted.mean(), se)
    assert predicted.mean() > Z_TOL * se and excess.mean() > 0, (excess.mean(), predicted.mean(), se)


PERTURBATIONS = [(1.5, None), (1.0, [0.5, -0.3])]  # s_θ = a s + δc


@functools.cache
def oracle_fisher(kind, t, n=100_000):
    """J(t) = E‖∇log p_t‖² and its standard error, from the oracle's exact samples of p_t."""
    p = ORACLE if t == 0 else ORACLE.at_time(SDES[kind][1](), t)
    sq = np.sum(p.score(p.sample(n, np.random.default_rng(11))) ** 2, axis=1)
    return sq.mean(), sq.std(ddof=1) / math.sqrt(n)


class Spy:
    """a · s(x, t) + δ c around a model, recording where it was called; its Jacobian is a ∂s/∂x."""

    def __init__(self, model, a=1.0, shift=0.0):
        self.model, self.a, self.shift = model, a, shift
        self.event_shape = model.event_shape

    def __call__(self, x, t):
        self.x, self.t = x, t
        return self.a * self.model(x, t) + self.shift

    def jvp(self, x, t, v):
        return self.a * self.model.jvp(x, t, v)

    def divergence(self, x, t):
        return self.a * self.model.divergence(x, t)


def setup(backend, kind="vp", n=20_000, seed=1):
    sde = SDES[kind][0]()
    return sde, TARGET.score_model(sde), TARGET.sample(n, backend=backend, seed=seed)


def sq_norm(be, x):
    return np.sum(to_numpy(be, x) ** 2, axis=1)


# -- denoising score matching ----------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(SDES))
def test_dsm_at_the_exact_score_is_D_over_s2_minus_the_fisher_information(backend, kind):
    """At fixed t: ½ λ(t) (D/s² − J(t)), with J(t) from the oracle's independent samples."""
    sde, model, x0 = setup(backend, kind)
    t = 0.3
    J, J_se = oracle_fisher(kind, t)
    s2 = float(sde.marginal(t)[1]) ** 2
    for weighting, lam in [("sigma2", s2), ("likelihood", float(sde.diffusion(t)) ** 2)]:
        per_sample = to_numpy(backend, losses.dsm_loss(model, sde, x0, weighting=weighting, t=t, reduce="none", backend=backend))
        assert_mean(per_sample, 0.5 * lam * (D / s2 - J), 0.5 * lam * J_se, weighting)


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood", "custom"])
def test_dsm_over_t_at_the_exact_score_and_the_excess_of_perturbed_scores(backend, weighting):
    """Per sample E[loss | t, x(t)] = ½ λ(t) (D/s² − ‖∇log p_t(x(t))‖²) at the exact score; a
    perturbed score s_θ costs exactly ½ λ E‖s_θ − ∇log p_t‖² more (same t, z)."""
    sde, model, x0 = setup(backend, "vp")
    lam_fn = {"sigma2": lambda t: sde.marginal(t)[1] ** 2, "likelihood": lambda t: sde.diffusion(t) ** 2,
              "custom": lambda t: 1.0 + t * t}[weighting]
    arg = lam_fn if weighting == "custom" else weighting
    spy = Spy(model)
    exact = to_numpy(backend, losses.dsm_loss(spy, sde, x0, weighting=arg, eps=1e-2, reduce="none", backend=backend, seed=5))
    t, true = spy.t, spy(spy.x, spy.t)
    lam, s2 = to_numpy(backend, lam_fn(t)), to_numpy(backend, sde.marginal(t)[1]) ** 2
    assert_mean(exact - 0.5 * lam * (D / s2 - sq_norm(backend, true)), 0.0, what="exact")
    for a, shift in PERTURBATIONS:
        worse = Spy(model, a, 0.0 if shift is None else backend.asarray(shift))
        perturbed = to_numpy(backend, losses.dsm_loss(worse, sde, x0, weighting=arg, eps=1e-2, reduce="none", backend=backend, seed=5))
        assert_worse(perturbed - exact, 0.5 * lam * sq_norm(backend, worse(spy.x, t) - true))


def test_importance_sampled_likelihood_weighting_has_the_same_mean_and_less_variance():
    sde, model, x0 = setup("numpy", "vp", n=50_000)
    # The uniform estimator's variance grows like 1/eps (λ/s² ~ 1/t); the weighted one stays O(D).
    for eps, factor in [(1e-2, 2.0), (1e-3, 5.0)]:
        uniform = losses.dsm_loss(model, sde, x0, weighting="likelihood", eps=eps, reduce="none", seed=3)
        imp = losses.dsm_loss(model, sde, x0, weighting="likelihood", eps=eps, importance_sampling=True, reduce="none", seed=4)
        se = math.hypot(uniform.std() / math.sqrt(uniform.size), imp.std() / math.sqrt(imp.size))
        assert abs(uniform.mean() - imp.mean()) < Z_TOL * se, (eps, uniform.mean(), imp.mean(), se)
        assert factor * imp.var() < uniform.var(), (eps, imp.var(), uniform.var())


def test_importance_sampling_on_the_grid_is_unbiased_for_a_custom_weighting():
    sde, model, x0 = setup("numpy", "subvp", n=50_000)

    def lam(t):
        return sde.diffusion(t) ** 2 * (1.0 + t)

    uniform = losses.dsm_loss(model, sde, x0, weighting=lam, eps=1e-2, reduce="none", seed=3)
    imp = losses.dsm_loss(model, sde, x0, weighting=lam, eps=1e-2, importance_sampling=True, reduce="none", seed=4)
    assert_mean(imp, uniform.mean(), uniform.std() / math.sqrt(uniform.size))
    assert imp.var() < uniform.var()


@pytest.mark.parametrize("kind", sorted(SDES))
def test_closed_form_importance_time_matches_the_numerical_grid(kind):
    sde = SDES[kind][0]()
    exact = losses.ImportanceTime(sde, "likelihood", eps=1e-4)
    grid = losses.ImportanceTime(sde, "likelihood", eps=1e-4, grid_size=4096)
    assert exact.closed_form and not grid.closed_form
    u = np.linspace(0.0, 0.999, 101)
    (t1, c1), (t2, c2) = exact.sample(u), grid.sample(u)
    assert t1.min() >= 1e-4 and t1.max() <= 1.0 and np.all(np.diff(t1) > 0)
    np.testing.assert_allclose(t1, t2, rtol=1e-5)
    np.testing.assert_allclose(exact.Z, grid.Z, rtol=1e-6)
    np.testing.assert_allclose(c1, c2, rtol=3e-3)  # the grid's density is piecewise
    # c = Z s² / (T − eps) for the closed form: the likelihood weight λ = g² cancels.
    np.testing.assert_allclose(c1, exact.Z * sde.marginal(t1)[1] ** 2 / (1 - 1e-4), rtol=1e-12)


# -- NCSN and DDPM ---------------------------------------------------------------------
def test_ncsn_loss_at_one_level_is_half_of_D_minus_sigma2_fisher(backend):
    sde, model, x0 = setup(backend, "ve")
    sigma = 1.5
    t = float(sde.time_of_std(sigma))
    J, J_se = oracle_fisher("ve", t)
    spy = Spy(model)
    per_sample = to_numpy(backend, losses.ncsn_loss(spy, sde, x0, [sigma], reduce="none", backend=backend))
    np.testing.assert_allclose(to_numpy(backend, spy.t), t, rtol=1e-12)
    assert_mean(per_sample, 0.5 * (D - sigma**2 * J), 0.5 * sigma**2 * J_se)


def test_ncsn_loss_over_levels_at_the_exact_and_perturbed_scores(backend):
    sde, model, x0 = setup(backend, "ve")
    sigmas = sc.noise_scales.geometric_sigmas(20.0, 0.05, 10)
    spy = Spy(model)
    exact = to_numpy(backend, losses.ncsn_loss(spy, sde, x0, sigmas, reduce="none", backend=backend, seed=8))
    t = spy.t
    sig2 = to_numpy(backend, sde.marginal(t)[1]) ** 2
    true = spy(spy.x, t)
    # Levels are uniform: every level is drawn, each about n/L times.
    counts = np.unique(np.round(sig2, 8), return_counts=True)[1]
    assert counts.size == 10 and counts.min() > 0.08 * x0.shape[0]
    assert_mean(exact - 0.5 * (D - sig2 * sq_norm(backend, true)), 0.0)
    for a, shift in PERTURBATIONS:
        worse = Spy(model, a, 0.0 if shift is None else backend.asarray(shift))
        excess = to_numpy(backend, losses.ncsn_loss(worse, sde, x0, sigmas, reduce="none", backend=backend, seed=8)) - exact
        assert_worse(excess, 0.5 * sig2 * sq_norm(backend, worse(spy.x, t) - true))


class DDPMChain:
    """The marginal (√ᾱ_i, √(1 − ᾱ_i)) of Ho et al.'s chain at t_i = i/(N − 1), from their
    linear schedule β = linspace(10⁻⁴, 0.02, 1000), for the mixture's exact score."""

    abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))

    def marginal(self, t):
        xp = sc._arrays.namespace(t)
        i = xp.astype(xp.round(t * 999.0), xp.int64)
        a = xp.take(xp.asarray(self.abar, dtype=t.dtype), i)
        return xp.sqrt(a), xp.sqrt(1.0 - a)


def test_ddpm_schedule_is_ho_et_al():
    np.testing.assert_allclose(losses.ddpm_alphas_cumprod(sc.VPSDE()), DDPMChain.abar, rtol=1e-12)


@pytest.mark.parametrize("discrete", [True, False])
def test_ddpm_loss_at_the_exact_noise_and_a_perturbed_one(backend, discrete):
    """E‖ε − ε*(x_t)‖² = D − s² ‖∇log p_t‖² per sample, for ε* = −s ∇log p_t of the chain's
    (discrete) or the SDE's (continuous) marginal; ε* + δc costs ‖δc‖² more."""
    sde = sc.VPSDE()
    marginal_of = DDPMChain() if discrete else sde
    x0 = TARGET.sample(20_000, backend=backend, seed=1)

    class EpsModel:
        def __init__(self, shift=0.0):
            self.shift = shift

        def __call__(self, x, t):
            self.x, self.t = x, t
            s = marginal_of.marginal(t)[1]
            return -s[:, None] * TARGET.score(x, t, marginal_of) + self.shift

    exact_model = EpsModel()
    exact = to_numpy(backend, losses.ddpm_loss(exact_model, sde, x0, discrete=discrete, reduce="none", backend=backend, seed=2))
    assert_mean(exact - (D - sq_norm(backend, exact_model(exact_model.x, exact_model.t))), 0.0)
    if discrete:  # times on the chain's grid t_i = i/(N − 1)
        ti = to_numpy(backend, exact_model.t) * 999
        np.testing.assert_allclose(ti, np.round(ti), atol=1e-9)
    c = backend.asarray([0.1, -0.1])
    excess = to_numpy(backend, losses.ddpm_loss(EpsModel(c), sde, x0, discrete=discrete, reduce="none", backend=backend, seed=2)) - exact
    assert_worse(excess, np.full(excess.shape, 0.02))


# -- sliced and exact score matching ---------------------------------------------------
@pytest.mark.parametrize("variant", ["exact", "ssm-gaussian", "ssm-rademacher", "vr-gaussian", "vr-rademacher-4"])
def test_score_matching_at_the_exact_score_is_minus_half_the_fisher_information(backend, variant):
    _, model, x0 = setup(backend, "vp")
    J, J_se = oracle_fisher("vp", 0)
    if variant == "exact":
        per_sample = losses.exact_sm_loss(model, x0, reduce="none", backend=backend)
    else:
        kind, projection, *m = variant.split("-")
        per_sample = losses.ssm_loss(model, x0, projection=projection, n_projections=int(m[0]) if m else 1,
                                     variance_reduced=kind == "vr", reduce="none", backend=backend, seed=3)
    assert_mean(to_numpy(backend, per_sample), -0.5 * J, 0.5 * J_se, variant)


@pytest.mark.parametrize("loss", ["exact", "ssm", "vr"])
def test_perturbed_data_score_matching_and_the_excess_of_perturbed_scores(backend, loss):
    """On x(t) at fixed t: λ(t) (−½ J(t)); over t ~ U: −½ λ ‖∇log p_t‖² per sample; a perturbed
    score costs ½ λ E‖s_θ − ∇log p_t‖² more."""
    sde, model, x0 = setup(backend, "vp")

    def run(m, **kw):
        if loss == "exact":
            return to_numpy(backend, losses.exact_sm_loss(m, x0, sde=sde, reduce="none", backend=backend, seed=4, **kw))
        return to_numpy(backend, losses.ssm_loss(m, x0, sde=sde, variance_reduced=loss == "vr", n_projections=2,
                                                 reduce="none", backend=backend, seed=4, **kw))

    J, J_se = oracle_fisher("vp", 0.3)
    s2 = float(sde.marginal(0.3)[1]) ** 2
    assert_mean(run(model, t=0.3), -0.5 * s2 * J, 0.5 * s2 * J_se, "fixed t")
    spy = Spy(model)
    exact = run(spy, eps=1e-2)
    t, true = spy.t, spy(spy.x, spy.t)
    lam = to_numpy(backend, sde.marginal(t)[1]) ** 2
    # λ (tr H + ‖s‖²) has mean 0 at each t (∫ Δp_t = 0): the control variate of −½ λ J(t).
    assert_mean(exact + 0.5 * lam * sq_norm(backend, true), 0.0, what="t~U")
    for a, shift in PERTURBATIONS:
        worse = Spy(model, a, 0.0 if shift is None else backend.asarray(shift))
        predicted = 0.5 * lam * sq_norm(backend, worse(spy.x, t) - true)
        assert_worse(run(worse, eps=1e-2) - exact, predicted, paired=False)


def test_more_projections_and_rademacher_probes_lower_the_variance():
    """Var = Var(exact) + E Var_v(vᵀHv)/M, and Var_v(vᵀHv) is 2‖H‖²_F for Gaussian v but
    2 Σ_{i≠j} H_ij² for Rademacher v. (SSM-VR need not beat SSM at the exact score:
    there ½(vᵀs)² partly cancels vᵀHv, since E[ssᵀ] = −E[H].)"""
    _, model, x0 = setup("numpy", "vp", n=20_000)
    exact = losses.exact_sm_loss(model, x0, reduce="none")
    var = {(p, m): losses.ssm_loss(model, x0, variance_reduced=True, projection=p, n_projections=m,
                                   reduce="none", seed=3).var() for p in PROJECTIONS for m in (1, 8)}
    for p in PROJECTIONS:
        assert exact.var() < var[p, 8] < var[p, 1]
    for m in (1, 8):
        assert var["rademacher", m] < var["gaussian", m]


# -- reductions, batch invariance, errors ----------------------------------------------
LOSSES = {
    "dsm": lambda m, sde, x, **kw: losses.dsm_loss(m, sde, x, **kw),
    "dsm-is": lambda m, sde, x, **kw: losses.dsm_loss(m, sde, x, weighting="likelihood", importance_sampling=True, **kw),
    "ncsn": lambda m, sde, x, **kw: losses.ncsn_loss(m, sde, x, [0.9, 0.5, 0.1], **kw),
    "ddpm": lambda m, sde, x, **kw: losses.ddpm_loss(m, sde, x, discrete=True, **kw),
    "ssm": lambda m, sde, x, **kw: losses.ssm_loss(m, x, sde=sde, projection="rademacher", n_projections=3, **kw),
    "esm": lambda m, sde, x, **kw: losses.exact_sm_loss(m, x, sde=sde, **kw),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_reductions_and_batch_invariance(backend, name):
    sde, model, x0 = setup(backend, "vp", n=300)
    fn = LOSSES[name]
    per_sample = to_numpy(backend, fn(model, sde, x0, reduce="none", backend=backend, seed=9))
    assert per_sample.shape == (300,) and np.all(np.isfinite(per_sample))
    np.testing.assert_allclose(to_numpy(backend, fn(model, sde, x0, reduce="mean", backend=backend, seed=9)), per_sample.mean(), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(backend, fn(model, sde, x0, reduce="sum", backend=backend, seed=9)), per_sample.sum(), rtol=1e-12)
    # Sample i's draws depend on (key, offset + i) only: a chunk equals its rows of the whole.
    chunk = fn(model, sde, x0[100:200, ...], reduce="none", backend=backend, key=backend.key(9), offset=100)
    np.testing.assert_allclose(to_numpy(backend, chunk), per_sample[100:200], rtol=1e-12)


def test_bad_input_is_named():
    sde, model, x0 = setup("numpy", "vp", n=8)
    with pytest.raises(ValueError, match=r"weighting \(a name, or a callable λ\(t\)\) must be one of 'sigma2', 'likelihood'"):
        losses.dsm_loss(model, sde, x0, weighting="sigma")
    for eps in (0.0, -1e-3, 1.0, 2.0):
        with pytest.raises(ValueError, match=r"eps must be a finite number > 0 and < 1, got"):
            losses.dsm_loss(model, sde, x0, eps=eps)
    with pytest.raises(ValueError, match="reduce must be one of 'mean', 'sum', 'none'"):
        losses.dsm_loss(model, sde, x0, reduce="avg")
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, 2\)"):
        losses.dsm_loss(model, sde, np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"x0 must be an array of shape \(n, d, \.\.\.\) with n ≥ 1"):
        losses.dsm_loss(model, sde, np.zeros(8))
    with pytest.raises(ValueError, match=r"model <lambda> must return its score with the shape of x, \(8, 2\), got \(8, 1\)"):
        losses.dsm_loss(lambda x, t: x[:, :1], sde, x0)
    with pytest.raises(ValueError, match=r"t must be a number or an array of shape \(n,\)"):
        losses.dsm_loss(model, sde, x0, t=np.full(3, 0.5))
    with pytest.raises(ValueError, match=r"t must be a finite number > 0 and ≤ 1, got 0.0"):
        losses.dsm_loss(model, sde, x0, t=0.0)
    with pytest.raises(ValueError, match="t cannot be given with importance_sampling"):
        losses.dsm_loss(model, sde, x0, t=0.5, importance_sampling=True)
    with pytest.raises(TypeError, match="sde must be a scorecore SDE"):
        losses.dsm_loss(model, "vp", x0)
    with pytest.raises(TypeError, match="x0 must be an array of backend 'array_api_strict'"):
        losses.dsm_loss(model, sde, x0, backend="array_api_strict")
    with pytest.raises(ValueError, match=r"sigmas must be a non-empty sequence of levels in \(0, s\(T\)"):
        losses.ncsn_loss(model, sde, x0, [2.0])
    with pytest.raises(TypeError, match="sde must be a VPSDE"):
        losses.ddpm_loss(model, sc.VESDE(), x0, discrete=True)
    with pytest.raises(ValueError, match="projection must be one of 'gaussian', 'rademacher'"):
        losses.ssm_loss(model, x0, projection="sphere")
    with pytest.raises(ValueError, match="n_projections must be a positive int"):
        losses.ssm_loss(model, x0, n_projections=0)
    with pytest.raises(ValueError, match="weighting and t need an sde"):
        losses.exact_sm_loss(model, x0, weighting="sigma2")
    with pytest.raises(ValueError, match="λ\\(t\\) > 0"):
        losses.ImportanceTime(sde, lambda t: 0.0 * t)


class Counting:
    """A score model that counts its calls (to show a refused input did no work)."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.event_shape = getattr(model, "event_shape", None)
        for method in ("jvp", "divergence"):  # the exact derivatives, where the model has them
            if hasattr(model, method):
                setattr(self, method, getattr(model, method))

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_nan_in_x0_is_refused_before_the_model_runs(name):
    sde, model, x0 = setup("numpy", "vp", n=8)
    counting = Counting(model)
    x0 = x0.copy()
    x0[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"x0 must be finite \(no NaN or inf\), got 1 value that is not, "
                                         r"the first nan at flat index 11"):
        LOSSES[name](counting, sde, x0)
    assert counting.calls == 0


@pytest.mark.parametrize("bad", [1.5, -0.25])
def test_times_outside_0_T_are_refused_before_the_model_runs(bad):
    sde, model, x0 = setup("numpy", "vp", n=8)
    counting = Counting(model)
    t = np.full(8, 0.5)
    t[3] = bad
    for fn in (losses.dsm_loss, lambda m, s, x, t: losses.ssm_loss(m, x, sde=s, t=t),
               lambda m, s, x, t: losses.exact_sm_loss(m, x, sde=s, t=t)):
        with pytest.raises(ValueError, match=rf"t must be times in \(0, T=1\], got 1 value that is not, "
                                             rf"the first {bad} at flat index 3"):
            fn(counting, sde, x0, t=t)
        with pytest.raises(ValueError, match=r"t must be a finite number > 0 and ≤ 1"):
            fn(counting, sde, x0, t=bad)
    assert counting.calls == 0


@pytest.mark.parametrize("eps", [0.0, -1e-3, 1.0, 2.0, float("nan")])
def test_eps_outside_0_T_is_refused_by_every_loss_with_a_time(eps):
    sde, model, x0 = setup("numpy", "vp", n=8)
    counting = Counting(model)
    for fn in (losses.dsm_loss, lambda m, s, x, eps: losses.ddpm_loss(m, s, x, eps=eps),
               lambda m, s, x, eps: losses.ssm_loss(m, x, sde=s, eps=eps),
               lambda m, s, x, eps: losses.ImportanceTime(s, eps=eps)):
        with pytest.raises(ValueError, match=r"eps must be a finite number > 0 and < 1, got"):
            fn(counting, sde, x0, eps=eps)
    assert counting.calls == 0


def test_autodiff_comes_from_the_backend_and_numpy_says_it_has_none():
    sde, model, x0 = setup("numpy", "vp", n=8)
    plain = lambda x, t: model(x, t)  # noqa: E731 (no .jvp / .divergence)
    with pytest.raises(NotImplementedError, match="backend 'numpy' has no automatic differentiation \\(jvp\\)"):
        losses.ssm_loss(plain, x0)
    with pytest.raises(NotImplementedError, match="backend .numpy. has no automatic differentiation"):
        losses.exact_sm_loss(plain, x0)

    class Recording(sc.get_backend("numpy").__class__):
        """A backend with finite-difference 'autodiff', to see that the loss uses it."""

        def jvp(self, fn, x, v):
            h = 1e-6
            return (fn(x + h * v) - fn(x - h * v)) / (2 * h)

        def divergence(self, fn, x, t):
            return model.divergence(x, t)

    be = Recording()
    np.testing.assert_allclose(losses.ssm_loss(plain, x0, backend=be), losses.ssm_loss(model, x0), rtol=1e-6)
    np.testing.assert_allclose(losses.exact_sm_loss(plain, x0, backend=be), losses.exact_sm_loss(model, x0), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_only_device(name):
    """On array-api-strict's float32-only device (like JAX's default) every loss runs in
    float32 and agrees with float64 to float32 accuracy (same seed, same draws)."""
    import array_api_strict

    f32 = sc.get_backend("array_api_strict").__class__(device=array_api_strict.Device("no_float64"))
    f64 = sc.get_backend("array_api_strict")
    sde, model, x0 = setup("numpy", "vp", n=200)
    lo = LOSSES[name](model, sde, f32.asarray(x0), reduce="none", backend=f32, seed=9)
    hi = LOSSES[name](model, sde, f64.asarray(x0), reduce="none", backend=f64, seed=9)
    assert lo.dtype == array_api_strict.float32
    np.testing.assert_allclose(to_numpy(f32, lo), to_numpy(f64, hi), rtol=2e-3, atol=2e-3)


class StdNormalScore:
    """The score −x of N(0, I) with its exact jvp and divergence: any shape, any dtype."""

    def __call__(self, x, t):
        return -x

    def jvp(self, x, t, v):
        return -v

    def divergence(self, x, t):
        return 0.0 * np.reshape(x, (x.shape[0], -1))[:, 0] - math.prod(x.shape[1:])


_BAD_NUMBERS = [float("nan"), float("inf"), -0.1, 0.0, 1.0, 1.5]


@given(data=st.data(), name=st.sampled_from(sorted(LOSSES)), n=st.integers(1, 4),
       event=st.sampled_from([(1,), (3,), (2, 2)]), dtype=st.sampled_from(["float32", "float64"]))
@settings(max_examples=60, deadline=None)
def test_any_input_gives_a_finite_loss_or_a_documented_error(data, name, n, event, dtype):
    """Random shapes, dtypes, NaN/inf positions, times and eps: each call either returns a finite
    loss or raises ValueError/TypeError naming the argument, before the model runs."""
    x0 = np.asarray(data.draw(st.lists(st.floats(-3, 3), min_size=n * math.prod(event),
                                       max_size=n * math.prod(event))), dtype=dtype).reshape((n,) + event)
    expect = None
    if data.draw(st.booleans(), label="poison x0"):
        x0.reshape(-1)[data.draw(st.integers(0, x0.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        expect = "x0 must be finite"
    kw = {}
    if name in ("dsm", "esm", "ssm") and data.draw(st.booleans(), label="fixed t"):
        t = data.draw(st.one_of(st.sampled_from(_BAD_NUMBERS + [0.3]),
                                st.lists(st.sampled_from([0.2, 0.7, 1.0, -0.5, 2.0, float("nan")]),
                                         min_size=n, max_size=n).map(lambda v: np.asarray(v, dtype=dtype))))
        kw["t"] = t
        ok = np.all((np.asarray(t) > 0) & (np.asarray(t) <= 1))
        expect = expect or (None if ok else "t must be")
    elif name in ("dsm", "ddpm", "ssm", "esm") and data.draw(st.booleans(), label="eps"):
        kw["eps"] = data.draw(st.sampled_from(_BAD_NUMBERS + [1e-5, 0.5]))
        expect = expect or (None if 0 < kw["eps"] < 1 else "eps must be")
    model = Counting(StdNormalScore())
    model.event_shape = event
    if name == "ddpm" and "eps" in kw:  # the continuous DDPM loss takes eps
        call = lambda: losses.ddpm_loss(model, sc.VPSDE(), x0, **kw)  # noqa: E731
    else:
        call = lambda: LOSSES[name](model, sc.VPSDE(), x0, **kw)  # noqa: E731
    if expect is None:
        assert np.isfinite(float(call()))
    else:
        with pytest.raises((ValueError, TypeError), match=expect):
            call()
        assert model.calls == 0
