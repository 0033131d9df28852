"""Log-likelihood by the probability-flow ODE, bits per dimension, encode/decode: against the
float64 oracle's exact log-densities on Gaussian mixtures, on numpy and array_api_strict."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import scorecore_reference as ref

import scorecore as sc
from support import to_numpy
from support.tolerance import assert_close
from scorecore.samplers import status as codes

RING = sc.GaussianMixture.example("8-ring")
D16 = sc.GaussianMixture.example("16d")
TARGETS = {"ring": RING, "16d": D16}
SDES = {"VE": (sc.VESDE, ref.VE), "VP": (sc.VPSDE, ref.VP), "subVP": (sc.SubVPSDE, ref.SubVP)}
EPS = 1e-5


def oracle(target):
    return ref.GaussianMixture(target.weights, target.means, target.covs)


def data(target, n, seed=1):
    return np.asarray(target.sample(n, seed=seed))


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("target_name", list(TARGETS))
def test_exact_divergence_integral_equals_the_oracle_change_of_variables(backend, target_name, sde_name):
    """What the ODE computes, exactly: with the exact score the flow maps p_eps onto p_T, so

        Δ = ∫_eps^T ∇·f̃ dt = log p_eps(x) − log p_T(x(T)),

    with p_eps and p_T the oracle's exact marginals (``at_time``) under the default SDEs
    (VE σ_max = 50, VP/sub-VP β_max = 20), eps = 1e-5. The returned log π(z) + Δ differs from
    this by the prior's mismatch log π(z) − log p_T(z), checked here exactly too. Tolerance:
    1e-3 nats per dimension at rtol = atol = 1e-5 (the solver's global error is ≲ 5e-4/dim)."""
    target, (make_sde, make_ref) = TARGETS[target_name], SDES[sde_name]
    sde, rsde, orc = make_sde(), make_ref(), oracle(target)
    x = data(target, 6)
    D = x.shape[1]
    logp, info = sc.log_likelihood(target.score_model(sde), sde, x, backend=backend, rtol=1e-5, atol=1e-5,
                                   eps=EPS, return_info=True)
    z, delta = to_numpy(backend, info.z), to_numpy(backend, info.delta_logp)
    exact_delta = orc.log_prob_t(x, rsde, EPS) - orc.log_prob_t(z, rsde, sde.T)
    assert np.abs(delta - exact_delta).max() / D < 1e-3
    prior = rsde.prior_log_prob(z)
    np.testing.assert_allclose(to_numpy(backend, info.prior_logp), prior, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(backend, logp), prior + delta, rtol=1e-12)
    # Per-sample solver accounting: every sample converged; the batch ran as long as its slowest.
    status = to_numpy(backend, info.status)
    per = to_numpy(backend, info.nfe_per_sample)
    assert info.converged and np.all(status == codes.CONVERGED)
    np.testing.assert_array_equal(per, 1 + 6 * (to_numpy(backend, info.accepted) + to_numpy(backend, info.rejected)))
    assert info.nfe == per.max()


@pytest.mark.parametrize("sde", [sc.VPSDE(beta_max=30.0), sc.SubVPSDE(beta_max=30.0), sc.VESDE(sigma_max=2000.0)],
                         ids=["VP", "subVP", "VE"])
@pytest.mark.parametrize("target_name", list(TARGETS))
def test_nll_matches_the_exact_data_log_density(target_name, sde):
    """The returned log-likelihood against the oracle's exact log p_0(x) itself, 1e-3 nats per
    dimension at rtol = atol = 1e-5, eps = 1e-5: SDEs chosen so that the prior matches p_T
    (VP/sub-VP β_max = 30: mean coefficient e^{-7.5}; VE σ_max = 2000) and p_eps matches p_0
    (s(eps)² ≤ 1e-6) to well below the tolerance (measured ≤ 5e-4 nats/dim in total)."""
    target = TARGETS[target_name]
    x = data(target, 6, seed=2)
    logp = sc.log_likelihood(target.score_model(sde), sde, x, eps=EPS)
    assert np.abs(np.asarray(logp) - oracle(target).log_prob(x)).max() / x.shape[1] < 1e-3


@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased(probe):
    """The Skilling–Hutchinson Δ is unbiased: over R independent fixed probes (R copies of each
    point, each row its own probe), the mean lies within 4 standard errors of the exact-
    divergence Δ (16-D mixture, VP). With n_probes = 3 each row averages 3 probes."""
    sde = sc.VPSDE()
    model = D16.score_model(sde)
    x = data(D16, 2, seed=3)
    R = 24
    xr = np.repeat(x, R, axis=0)
    _, exact = sc.log_likelihood(model, sde, x, return_info=True)
    for n_probes in (1, 3):
        _, est = sc.log_likelihood(model, sde, xr, divergence="hutchinson", probe=probe, n_probes=n_probes,
                                   seed=7, return_info=True)
        d = np.asarray(est.delta_logp).reshape(2, R)
        mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(R)
        assert np.all(se > 0)
        assert np.all(np.abs(mean - np.asarray(exact.delta_logp)) < 4 * se), (mean, se, exact.delta_logp)
    # The probes are fixed along the trajectory and drawn per row: a row's estimate does not
    # depend on the batch it is in.
    _, one = sc.log_likelihood(model, sde, xr[5:6], divergence="hutchinson", probe=probe, seed=7, offset=5,
                               return_info=True)
    _, all_ = sc.log_likelihood(model, sde, xr[:6], divergence="hutchinson", probe=probe, seed=7,
                                return_info=True)
    np.testing.assert_allclose(np.asarray(one.delta_logp)[0], np.asarray(all_.delta_logp)[5], rtol=1e-4)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_encode_decode_are_inverse(backend, sde_name):
    """decode(encode(x)) = x to 1e-4 relative at rtol = atol = 1e-5 (16-D mixture)."""
    sde = SDES[sde_name][0]()
    model = D16.score_model(sde)
    x = backend.asarray(data(D16, 3, seed=4))
    z, info = sc.encode(model, sde, x, backend=backend, return_info=True)
    assert info.converged and info.nfe > 1
    x_back = sc.decode(model, sde, z, backend=backend)
    xn = to_numpy(backend, x)
    assert np.linalg.norm(to_numpy(backend, x_back) - xn) / np.linalg.norm(xn) < 1e-4
    if backend.name != "numpy":
        return
    # The latent is the one the likelihood integrates to.
    _, linfo = sc.log_likelihood(model, sde, x, backend=backend, return_info=True)
    zn = to_numpy(backend, z)
    assert np.linalg.norm(to_numpy(backend, linfo.z) - zn) / np.linalg.norm(zn) < 1e-4


def test_decode_temperature_scales_the_latent_and_interpolate_is_spherical():
    sde = sc.VPSDE()
    model = RING.score_model(sde)
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    np.testing.assert_array_equal(sc.decode(model, sde, z0, temperature=0.5), sc.decode(model, sde, 0.5 * z0))
    path = sc.interpolate(z0, z1, [0.0, 0.25, 0.5, 1.0])
    assert path.shape == (4, 3, 2)
    np.testing.assert_allclose(path[0], z0, atol=1e-14)
    np.testing.assert_allclose(path[-1], z1, atol=1e-14)
    # Between unit vectors at angle Ω, slerp moves along the great circle: unit norm, angle αΩ.
    u0 = z0 / np.linalg.norm(z0, axis=1, keepdims=True)
    u1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    omega = np.arccos(np.sum(u0 * u1, axis=1))
    mid = sc.interpolate(u0, u1, [0.25])[0]
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.arccos(np.clip(np.sum(mid * u0, axis=1), -1, 1)), 0.25 * omega, rtol=1e-9)
    # Parallel latents fall back to the linear path (no 0/0).
    np.testing.assert_allclose(sc.interpolate(z0, 2 * z0, [0.5])[0], 1.5 * z0, rtol=1e-12)


class FlatImages:
    """A score on images (n, 1, 4, 4): the 16-D mixture's exact score on the flattened pixels."""

    def __init__(self, model):
        self.model, self.event_shape = model, (1, 4, 4)

    def __call__(self, x, t):
        return np.reshape(self.model(np.reshape(x, (x.shape[0], 16)), t), x.shape)

    def divergence(self, x, t):
        return self.model.divergence(np.reshape(x, (x.shape[0], 16)), t)


def test_images_are_flattened_over_their_event_axes():
    sde = sc.VESDE()
    model = D16.score_model(sde)
    x = data(D16, 3, seed=5)
    flat, info = sc.log_likelihood(model, sde, x, return_info=True)
    img, img_info = sc.log_likelihood(FlatImages(model), sde, x.reshape(3, 1, 4, 4), return_info=True)
    np.testing.assert_allclose(img, flat, rtol=1e-13)
    assert img_info.z.shape == (3, 1, 4, 4) and img_info.nfe == info.nfe


def _gaussian_case():
    """A single Gaussian N(μ, σ² I) on [0, 1]^4 as a 'model' with exact score, and levels."""
    mu, sig, D = 0.45, 0.2, 4
    target = sc.GaussianMixture([1.0], np.full((1, D), mu), sig**2 * np.eye(D)[None])
    levels = np.random.default_rng(6).integers(0, 17, size=(5, D))
    return target, mu, sig, D, levels


def test_bits_per_dim_equals_the_hand_computed_value():
    """bpd = −(log p_eps(x_deq) + D log((hi − lo)/K)) / (D log 2) for a Gaussian with exact score
    (VP, β_max = 50: m(T) = e^{-12.5}, so the prior's mismatch with p_T, ≈ m(T) μ·z, is below
    1e-5 nats; at β_max = 30 it is 7e-4 nats for a point 2.5σ out), on levels in {0..16} scaled to [0, 1) and
    to [−1, 1) (rtol = atol = 1e-8, so the solver's error is below the 1e-5 bpd tolerance): p_eps is N(m μ, (m² σ² + s²) I) in closed form, the dequantized points are
    the public `dequantize` draws. Offsets log₂(K/(hi − lo)): log₂ 17 and log₂ 8.5."""
    target, mu, sig, D, levels = _gaussian_case()
    sde = sc.VPSDE(beta_max=50.0)
    m, s = (float(v) for v in sde.marginal(EPS))
    for lo, hi, shift in ((0.0, 1.0, 0.0), (-1.0, 1.0, -1.0)):
        # Shift the Gaussian with the data so both ranges see the same density shape.
        tgt = sc.GaussianMixture([1.0], target.means * (hi - lo) + lo, target.covs * (hi - lo) ** 2)
        res = sc.bits_per_dim(tgt.score_model(sde), sde, levels, n_levels=17, data_range=(lo, hi), n_dequant=3,
                              seed=11, rtol=1e-8, atol=1e-8)
        assert res.offset_bits == pytest.approx(math.log2(17 / (hi - lo)), rel=1e-15)
        expected = np.empty((3, len(levels)))
        var = (m * sig * (hi - lo)) ** 2 + s**2
        for r in range(3):
            x = sc.likelihood.dequantize(levels, 17, (lo, hi), seed=11, draw=r)
            assert np.all((x >= lo) & (x < hi))
            logp = -0.5 * np.sum((x - m * (mu * (hi - lo) + lo)) ** 2, axis=1) / var - 0.5 * D * math.log(2 * math.pi * var)
            expected[r] = -(logp + D * math.log((hi - lo) / 17)) / (D * math.log(2))
        np.testing.assert_allclose(res.per_draw, expected, atol=1e-5)
        assert res.mean == pytest.approx(expected.mean(), abs=1e-5)
        per = expected.mean(axis=0)
        assert res.stderr == pytest.approx(per.std(ddof=1) / math.sqrt(len(per)), rel=1e-2)
        assert res.converged and res.nfe > 0


def test_bits_per_dim_takes_levels_from_a_dataset_and_is_batch_invariant():
    target, _, _, D, levels = _gaussian_case()
    sde = sc.VPSDE()
    model = target.score_model(sde)
    ds = sc.data.Dataset(levels / 16.0, levels=levels, n_levels=17, data_range=(0.0, 1.0))
    a = sc.bits_per_dim(model, sde, ds, n_dequant=2, seed=3, divergence="hutchinson")
    b = sc.bits_per_dim(model, sde, levels, n_levels=17, n_dequant=2, seed=3, divergence="hutchinson", batch_size=2)
    np.testing.assert_allclose(a.per_draw, b.per_draw, rtol=1e-5)
    assert a.n_levels == 17 and a.data_range == (0.0, 1.0) and a.per_sample.shape == (5,)


def test_bad_input_is_refused_before_work():
    sde = sc.VPSDE()
    model = RING.score_model(sde)
    x = data(RING, 2)
    with pytest.raises(ValueError, match="divergence"):
        sc.log_likelihood(model, sde, x, divergence="trace")
    with pytest.raises(ValueError, match="probe"):
        sc.log_likelihood(model, sde, x, divergence="hutchinson", probe="uniform")
    with pytest.raises(ValueError, match="n_probes"):
        sc.log_likelihood(model, sde, x, n_probes=0)
    with pytest.raises(ValueError, match="eps"):
        sc.log_likelihood(model, sde, x, eps=0.0)
    with pytest.raises(ValueError, match="shape"):
        sc.log_likelihood(model, sde, x[0])
    with pytest.raises(ValueError, match="event shape"):
        sc.log_likelihood(model, sde, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="autodiff"):  # numpy has no Jacobian trace of a plain callable
        sc.log_likelihood(lambda y, t: model(y, t), sde, x)
    with pytest.raises(ValueError, match="controller"):
        sc.log_likelihood(model, sde, x, controller="pid")
    with pytest.raises(ValueError, match="temperature"):
        sc.decode(model, sde, x, temperature=0.0)
    with pytest.raises(ValueError, match="integers in"):
        sc.bits_per_dim(model, sde, np.array([[0, 17]]), n_levels=17)
    with pytest.raises(ValueError, match="n_levels is required"):
        sc.bits_per_dim(model, sde, np.array([[0, 1]]))
    with pytest.raises(ValueError, match="n_dequant"):
        sc.bits_per_dim(model, sde, np.array([[0, 1]]), n_levels=4, n_dequant=0)


def test_fixed_step_methods_converge_to_the_adaptive_value():
    """RK4 with 200 steps agrees with dopri5 to 1e-4 nats on the ring (VP); NFE = 4·steps."""
    sde = sc.VPSDE()
    x = data(RING, 3)
    adaptive = sc.log_likelihood(RING.score_model(sde), sde, x, rtol=1e-8, atol=1e-8)
    fixed, info = sc.log_likelihood(RING.score_model(sde), sde, x, method="rk4", steps=200, return_info=True)
    np.testing.assert_allclose(fixed, adaptive, atol=1e-4)
    assert info.nfe == info.nfe_per_sample == 800 and info.converged


@pytest.mark.parametrize("controller", ["integral", "pi", "predictive"])
def test_every_step_size_controller_reaches_the_oracle_change_of_variables(controller):
    """The likelihood's ``controller`` option: the 16-D mixture under VE, exact divergence,
    rtol = atol = 1e-5, within 1e-3 nats per dimension of the oracle's exact Δ (as the default,
    "predictive", is above)."""
    sde, rsde, orc = sc.VESDE(), ref.VE(), oracle(D16)
    x = data(D16, 4)
    _, info = sc.log_likelihood(D16.score_model(sde), sde, x, eps=EPS, controller=controller, return_info=True)
    exact_delta = orc.log_prob_t(x, rsde, EPS) - orc.log_prob_t(np.asarray(info.z), rsde, sde.T)
    assert np.abs(np.asarray(info.delta_logp) - exact_delta).max() / x.shape[1] < 1e-3
    assert info.converged


def test_the_likelihood_defaults_to_the_predictive_controller():
    """``controller`` defaults to "predictive" (on the 16-D mixture under VE with one probe, batches
    64 and 1024, fewer evaluations and a smaller error than "integral":
    benchmarks/results/likelihood_speed.md; not on every batch: here 139 against 133);
    "integral" is one argument away, a different solve."""
    sde = sc.VESDE()
    model = D16.score_model(sde)
    x = np.asarray(D16.sample(6, seed=2))
    default, info = sc.log_likelihood(model, sde, x, return_info=True)
    pred, info_p = sc.log_likelihood(model, sde, x, controller="predictive", return_info=True)
    integral, info_i = sc.log_likelihood(model, sde, x, controller="integral", return_info=True)
    # The same solve twice: equal to float64 round-off (not bits: a threaded kernel need not repeat
    # its summation order); "integral" differs by ~1e-4, far beyond it.
    assert_close(default, pred, 64 * np.finfo(np.float64).eps, what="default controller")
    assert info.nfe == info_p.nfe != info_i.nfe and np.max(np.abs(integral - default)) > 1e-8


def test_an_exhausted_budget_raises_and_with_return_info_is_nan_with_its_status():
    sde = sc.VESDE()
    x = data(RING, 3)
    with pytest.raises(sc.BudgetExhaustedError, match=r"log_likelihood: 3 of 3 samples exhausted the step budget "
                                                      r"max_steps=3 \(the first: sample 0, before reaching t=1\)"):
        sc.log_likelihood(RING.score_model(sde), sde, x, max_steps=3)
    with pytest.raises(sc.BudgetExhaustedError, match="encode: 3 of 3 samples"):
        sc.encode(RING.score_model(sde), sde, x, max_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the status is the report: no warning on the side
        logp, info = sc.log_likelihood(RING.score_model(sde), sde, x, max_steps=3, return_info=True)
    assert np.all(np.isnan(logp)) and not info.converged
    np.testing.assert_array_equal(info.status, codes.BUDGET)


class HalfStdNormal:
    """Half the score of N(0, I) (which VP keeps at N(0, I)): −x/2, any event shape, so that the
    flow is not zero and a small step budget runs out."""

    def __call__(self, x, t):
        return -0.5 * x

    def divergence(self, x, t):
        return 0.0 * np.reshape(x, (x.shape[0], -1))[:, 0] - 0.5 * math.prod(x.shape[1:])


@given(data=st.data(), n=st.integers(1, 3), event=st.sampled_from([(1,), (3,), (2, 2)]),
       dtype=st.sampled_from(["float32", "float64"]))
@settings(max_examples=25, deadline=None)
def test_any_input_gives_finite_log_likelihoods_or_a_documented_error(data, n, event, dtype):
    """Random shapes, dtypes, NaN positions, eps and step budgets: log_likelihood returns finite
    values, or raises ValueError naming the argument, BudgetExhaustedError or NonFiniteError."""
    x = np.asarray(data.draw(st.lists(st.floats(-3, 3), min_size=n * math.prod(event),
                                      max_size=n * math.prod(event))), dtype=dtype).reshape((n,) + event)
    expect = None
    eps = data.draw(st.sampled_from([None, 1e-3, 0.0, 1.0, float("nan")]), label="eps")
    if eps is not None and not 0 < eps < 1:  # the arguments are checked before the data
        expect = (ValueError, "eps must be")
    if data.draw(st.booleans(), label="poison x"):
        x.reshape(-1)[data.draw(st.integers(0, x.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf]))
        expect = expect or (ValueError, "x must be finite")
    max_steps = data.draw(st.sampled_from([2, 10_000]), label="max_steps")
    if expect is None and max_steps == 2:
        expect = (sc.BudgetExhaustedError, "exhausted the step budget max_steps=2")
    call = lambda: sc.log_likelihood(HalfStdNormal(), sc.VPSDE(), x, eps=eps, max_steps=max_steps)  # noqa: E731
    if expect is None:
        logp = np.asarray(call())
        assert logp.shape == (n,) and np.all(np.isfinite(logp))
    else:
        with pytest.raises(expect[0], match=expect[1]):
            call()


def test_a_model_or_divergence_of_the_wrong_shape_is_named():
    x = np.zeros((3, 2))

    class BadDivergence(HalfStdNormal):
        def divergence(self, x, t):
            return -0.5 * x

    class BadScore(HalfStdNormal):
        def __call__(self, x, t):
            return x[:, :1]

    with pytest.raises(ValueError, match=r"model BadDivergence.divergence\(x, t\) must have shape \(3,\), got \(3, 2\)"):
        sc.log_likelihood(BadDivergence(), sc.VPSDE(), x)
    with pytest.raises(ValueError, match=r"model BadScore must return its score with the shape of x, \(3, 2\), got \(3, 1\)"):
        sc.log_likelihood(BadScore(), sc.VPSDE(), x)
    class Float64Score(HalfStdNormal):
        def __call__(self, x, t):
            return np.asarray(-0.5 * x, dtype=np.float64)

    with pytest.raises(TypeError, match=r"model Float64Score must return its score in the dtype of x, float32, "
                                        r"got float64"):
        sc.log_likelihood(Float64Score(), sc.VPSDE(), x.astype(np.float32))


def test_bits_per_dim_raises_when_a_solve_runs_out_of_steps():
    sde = sc.VPSDE()
    with pytest.raises(sc.BudgetExhaustedError, match=r"bits_per_dim: 2 of 2 samples .* max_steps=2"):
        sc.bits_per_dim(HalfStdNormal(), sde, np.array([[0, 1], [2, 3]]), n_levels=4, max_steps=2)
