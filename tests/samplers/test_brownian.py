"""The counter-based Brownian tree: its increments' law, consistency under refinement, batch
invariance, and the strong convergence it gives an Euler–Maruyama reverse-SDE sampler and, as a
``noise_sampler``, the stochastic σ samplers."""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc
from scorecore.samplers import PC, BrownianNoiseSampler, Context
from scorecore.samplers.brownian import BrownianTree, root_word
from scorecore.samplers.sigma_space import karras_sigmas, sigma_of_time

BE = sc.get_backend("numpy")
F64 = BE.xp.float64


def _ctx(n, d=2, offset=0, be=BE):
    return Context(be, be.xp.float64, (n, d), offset)


def _word(seed=0, be=BE):
    return root_word(be, be.key(seed), be.xp.float64)


def _inc(tree, ctx, word, ta, tb):
    return np.asarray(tree.increment(ctx, word, BE.asarray(ta), BE.asarray(tb)))


@pytest.mark.parametrize("ta, tb", [(0.3, 0.55), (0.0, 1.0), (0.123456, 0.124456), (0.5, 0.5 + 2**-10)])
def test_increments_are_centred_with_variance_the_interval_length(ta, tb):
    # m = 40,000 independent N(0, h) draws: the sample variance / h has standard deviation
    # √(2/m) = 0.007 and the mean / √h has 1/√m = 0.005; 5σ bounds. The interpolation deficit
    # (≤ 2⁻²² of the span per endpoint, relative to h ≥ 10⁻³: < 5·10⁻⁴) is far below them.
    tree = BrownianTree(0.0, 1.0)
    dw = _inc(tree, _ctx(20_000), _word(), ta, tb).ravel()
    m, h = dw.size, tb - ta
    assert abs(np.var(dw) / h - 1.0) < 5 * np.sqrt(2 / m)
    assert abs(np.mean(dw) / np.sqrt(h)) < 5 / np.sqrt(m)


def test_disjoint_increments_are_uncorrelated_and_the_path_differs_per_seed():
    tree, ctx = BrownianTree(0.0, 1.0), _ctx(20_000)
    a, b = _inc(tree, ctx, _word(), 0.1, 0.4).ravel(), _inc(tree, ctx, _word(), 0.4, 0.45).ravel()
    m = a.size
    assert abs(np.mean(a * b) / np.sqrt(0.3 * 0.05)) < 5 / np.sqrt(m)
    other = _inc(tree, ctx, _word(seed=1), 0.1, 0.4).ravel()
    assert abs(np.corrcoef(a, other)[0, 1]) < 5 / np.sqrt(m)


def test_sub_increments_sum_to_the_coarse_increment_whatever_the_order_visited():
    tree, ctx, word = BrownianTree(1e-3, 1.0), _ctx(500), _word(2)
    rng = np.random.default_rng(0)
    cuts = np.sort(np.concatenate([[0.2, 0.9], rng.uniform(0.2, 0.9, 37)]))
    coarse = _inc(tree, ctx, word, 0.2, 0.9)
    # Visit the sub-intervals in a random order: W is one function of t, so nothing depends on it.
    pieces = {i: _inc(tree, ctx, word, cuts[i], cuts[i + 1]) for i in rng.permutation(len(cuts) - 1)}
    total = sum(pieces[i] for i in range(len(cuts) - 1))
    scale = np.max(np.abs(coarse)) + 1.0
    np.testing.assert_allclose(total, coarse, rtol=0, atol=100 * np.finfo(np.float64).eps * scale)
    # Asking again, after other queries, returns the same numbers bit for bit.
    np.testing.assert_array_equal(_inc(tree, ctx, word, 0.2, 0.9), coarse)
    np.testing.assert_array_equal(_inc(tree, ctx, word, cuts[3], cuts[4]), pieces[3])


def test_rows_are_bit_identical_whatever_the_batch_and_per_row_times():
    tree, word = BrownianTree(0.0, 2.0), _word(4)
    t = np.random.default_rng(1).uniform(0.0, 2.0, 300)
    big = np.asarray(tree.value(_ctx(300, d=3), word, BE.asarray(t)))
    chunk = np.asarray(tree.value(_ctx(50, d=3, offset=120), word, BE.asarray(t[120:170])))
    np.testing.assert_array_equal(chunk, big[120:170])
    one = np.asarray(tree.value(_ctx(1, d=3, offset=7), word, BE.asarray(t[7:8])))
    np.testing.assert_array_equal(one, big[7:8])
    # Row i at its own time equals row i of a batch asked at that one (0-D) time.
    same = np.asarray(tree.value(_ctx(300, d=3), word, BE.asarray(t[9])))
    np.testing.assert_array_equal(same[9], big[9])


def test_the_path_starts_at_zero_and_ends_with_the_span_variance():
    tree, ctx = BrownianTree(0.5, 3.0), _ctx(20_000)
    w0 = np.asarray(tree.value(ctx, _word(), BE.asarray(0.5)))
    np.testing.assert_array_equal(w0, np.zeros_like(w0))
    w1 = np.asarray(tree.value(ctx, _word(), BE.asarray(3.0))).ravel()
    assert abs(np.var(w1) / 2.5 - 1.0) < 5 * np.sqrt(2 / w1.size)


def test_bad_tree_options_are_refused():
    with pytest.raises(ValueError, match="t1 must be a finite number > 1"):
        BrownianTree(1.0, 0.5)
    with pytest.raises(ValueError, match=r"depth must be an int in \[1, 48\]"):
        BrownianTree(0.0, 1.0, depth=60)
    with pytest.raises(ValueError, match="brownian must be one of 'steps', 'tree', got 'bridge'"):
        PC(predictor="euler-maruyama", corrector="none", brownian="bridge")


# -- the reverse-SDE sampler on one Brownian path ----------------------------------------

SDE = sc.VPSDE()
GAUSS = sc.GaussianMixture(np.array([1.0]), np.array([[1.0, -0.5]]), np.diag([0.5, 2.0])[None])


def _em(n_steps, x_T, brownian, seed=1, **kw):
    return np.asarray(sc.sample(GAUSS.score_model(SDE), SDE, x_T.shape, "reverse-sde", n_steps, x_init=x_T,
                                seed=seed, brownian=brownian, progress=False, dtype="float64", **kw))


def test_euler_maruyama_on_a_brownian_tree_converges_strongly_with_order_one():
    # Additive noise (g depends on t only): Euler–Maruyama's strong order is 1. Against a fine
    # run on the same path, the RMS error must fall with the step count at a fitted slope near
    # −1 (between −1.3 and −0.8); with fresh noise per step it cannot fall at all.
    x_T = np.asarray(BE.normal(BE.key(3), (200, 2), "float64"))
    fine = _em(512, x_T, "tree")
    ns = [8, 16, 32, 64]
    errs = [np.sqrt(np.mean((_em(n, x_T, "tree") - fine) ** 2)) for n in ns]
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert -1.3 < slope < -0.8, (errs, slope)
    assert errs[-1] < 0.15 * errs[0]
    fresh = [np.sqrt(np.mean((_em(n, x_T, "steps") - fine) ** 2)) for n in (8, 64)]
    assert fresh[1] > 0.5 * fresh[0] and fresh[1] > 5 * errs[-1]


def test_tree_noise_is_batch_invariant_through_the_sampler_and_default_noise_is_unchanged():
    # An elementwise model: no BLAS kernel between, so rows must agree bit for bit.
    def score(x, t):
        return -x

    kw = dict(progress=False, dtype="float64", seed=5, brownian="tree")
    whole = np.asarray(sc.sample(score, SDE, (40, 3), "reverse-sde", 12, **kw))
    part = np.asarray(sc.sample(score, SDE, (10, 3), "reverse-sde", 12, offset=25, **kw))
    np.testing.assert_array_equal(part, whole[25:35])
    # brownian="steps" is the default: the same numbers as before the option existed.
    base = dict(progress=False, dtype="float64", seed=5)
    np.testing.assert_array_equal(np.asarray(sc.sample(score, SDE, (40, 3), "reverse-sde", 12, brownian="steps",
                                                       **base)),
                                  np.asarray(sc.sample(score, SDE, (40, 3), "reverse-sde", 12, **base)))
    assert not np.array_equal(whole, np.asarray(sc.sample(score, SDE, (40, 3), "reverse-sde", 12, **base)))


def test_tree_noise_runs_under_jax_jit_and_equals_numpy():
    # Portable noise: the root word is the NumPy backend's, so the jitted path's bits are too.
    pytest.importorskip("jax")
    import jax
    from scorecore_jax import JaxBackend

    before = jax.config.jax_enable_x64
    try:
        out = []
        for be in (sc.portable(JaxBackend(x64=True)), BE):
            x = sc.sample(lambda x, t: -x, SDE, (16, 2), "reverse-sde", 10, backend=be, dtype="float64", seed=2,
                          brownian="tree", progress=False)
            out.append(np.asarray(x))
        np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", before)


def test_tree_noise_without_int64_is_refused_before_the_model_runs():
    pytest.importorskip("jax")
    import jax

    before = jax.config.jax_enable_x64
    calls = []

    def score(x, t):
        calls.append(1)
        return -x

    try:
        jax.config.update("jax_enable_x64", False)
        with pytest.raises(ValueError, match="brownian='tree' needs int64 arrays, which backend 'jax' does not"):
            sc.sample(score, SDE, (8, 2), "reverse-sde", 10, backend="jax", brownian="tree", progress=False)
        assert not calls
    finally:
        jax.config.update("jax_enable_x64", before)


SIGMA_T, SIGMA_EPS = sigma_of_time(SDE, SDE.T), sigma_of_time(SDE, 1e-3)


def _sigma_run(name, n_levels, noise, x_T, seed=1):
    levels = karras_sigmas(SIGMA_T, SIGMA_EPS, n_levels) + [0.0]
    return np.asarray(sc.sample(GAUSS.score_model(SDE), SDE, x_T.shape, name, sigmas=levels, x_init=x_T,
                                seed=seed, noise_sampler=noise, progress=False, dtype="float64"))


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_a_brownian_noise_sampler_makes_the_stochastic_sigma_samplers_converge_strongly(name):
    # k-diffusion's BrownianTreeNoiseSampler property, batch invariant: on one path W(σ) the
    # runs on refined Karras levels approach the fine run (each doubling at least 1.5× closer;
    # measured 1.9–4.2×: order 1 for the ancestral two, faster for the 2M/3M SDE solvers at these
    # N), where fresh per-step noise leaves them O(1) apart (RMS 1.5 at N = 64, against 0.04–0.11).
    x_T = np.asarray(BE.normal(BE.key(3), (200, 2), "float64"))
    path = lambda: BrownianNoiseSampler(x_T.shape, sigma_max=SIGMA_T, seed=4, dtype="float64")  # noqa: E731
    fine = _sigma_run(name, 512, path(), x_T)
    errs = [np.sqrt(np.mean((_sigma_run(name, n, path(), x_T) - fine) ** 2)) for n in (16, 32, 64)]
    assert errs[1] < errs[0] / 1.5 and errs[2] < errs[1] / 1.5, errs
    fresh = np.sqrt(np.mean((_sigma_run(name, 64, None, x_T) - _sigma_run(name, 512, None, x_T)) ** 2))
    assert fresh > 5 * errs[2], (fresh, errs)


def test_the_brownian_noise_sampler_is_standard_normal_refinable_and_batch_invariant():
    noise = BrownianNoiseSampler((20_000, 2), sigma_max=80.0, seed=2, dtype="float64")
    z = np.asarray(noise(BE.asarray(10.0), BE.asarray(7.5)))
    assert abs(z.mean()) < 0.03 and abs(z.var() - 1.0) < 0.04
    # √Δ z over [7.5, 10] is the sum of its halves' (one path), to rounding.
    halves = [np.asarray(noise(BE.asarray(a), BE.asarray(b))) * np.sqrt(a - b) for a, b in ((10.0, 8.75), (8.75, 7.5))]
    np.testing.assert_allclose(halves[0] + halves[1], z * np.sqrt(2.5), rtol=0, atol=1e-12)
    # Row i depends on (seed, offset + i) alone. Bit for bit because this is the noise itself:
    # counter-based integer bits, Box–Muller and the bridge's elementwise arithmetic, with no
    # reduction, BLAS kernel or model between (the same promise as the tree's own row test).
    part = BrownianNoiseSampler((30, 2), sigma_max=80.0, seed=2, dtype="float64", offset=100)
    np.testing.assert_array_equal(np.asarray(part(BE.asarray(10.0), BE.asarray(7.5))), z[100:130])


def test_bad_brownian_noise_sampler_options_are_refused():
    with pytest.raises(ValueError, match="sigma_max"):
        BrownianNoiseSampler((4, 2), sigma_max=0.0)
    with pytest.raises(ValueError, match="offset"):
        BrownianNoiseSampler((4, 2), sigma_max=1.0, offset=-1)
    with pytest.raises((ValueError, TypeError), match="shape"):
        BrownianNoiseSampler("4x2", sigma_max=1.0)
