"""What batch invariance promises, on any CPU and BLAS kernel.

Sample i's noise depends only on (seed, offset + i, step), so a sampler's own arithmetic never
couples samples. Two consequences are tested here:

* with a score model built of elementwise operations (no matrix product, whose kernel may round
  differently at another batch size), every sampler's samples are **bit-identical** whatever
  the batch size or offset — the sampler itself adds nothing batch dependent;
* with a model whose arithmetic goes through BLAS (the exact mixture score: one (n, D) × (D, K·D)
  product), samples agree to rounding: a tolerance of a few thousand ulps of the samples' scale
  (OpenBLAS's small-matrix dgemm path rounds row 48 of a 50-row batch differently from the same
  row of a 500-row batch on SkylakeX kernels, by 1.8e-14 after a run).
"""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc
from support.ring import RING
from scorecore._arrays import namespace, per_sample


class ProductMixtureScore:
    """The exact score of p_0 = Π_j ½(N(a, s₀²) + N(−a, s₀²)) in every coordinate j, under ``sde``:
    with p_t's per-coordinate variance v = m² s₀² + s², ∂_j log p_t = (−x_j + m a tanh(m a x_j / v))/v.
    Elementwise only: row i of the output is bit-identical whatever the batch around it."""

    event_shape = (2,)

    def __init__(self, sde, a: float = 2.0, s0: float = 0.3):
        self.sde, self.a, self.s0 = sde, a, s0

    def __call__(self, x, t):
        xp = namespace(x)
        m, s = self.sde.marginal(t)
        m, s = per_sample(m, x), per_sample(s, x)
        v = m * m * self.s0**2 + s * s
        return (-x + (m * self.a) * xp.tanh((m * self.a) * x / v)) / v


# Every sampler but PC with corrector="langevin": score_sde's rule takes the batch means of the
# norms, so a sample depends on its batch by construction (correctors.py).
CASES = [
    ("pc", dict(steps=30, corrector="langevin-capped", n_steps_each=1)),
    ("pc", dict(steps=30)),
    ("reverse-sde", dict(steps=20)),
    ("reverse-diffusion", dict(steps=30)),
    ("ancestral", dict(steps=30)),
    ("euler", dict(steps=10)),
    ("heun", dict(steps=10)),
    ("rk4", dict(steps=5)),
    ("dopri5", dict(rtol=1e-4, atol=1e-4)),
    ("edm", dict(steps=8, s_churn=10.0)),
    ("ddim", dict(steps=10, eta=1.0)),
    ("dpmpp_2m", dict(steps=10)),
    ("euler_ancestral", dict(steps=10)),
    ("lms", dict(steps=10)),
    ("dpm_2", dict(steps=6)),
    ("dpmpp_2s", dict(steps=6)),
    ("dpmpp_2s_ancestral", dict(steps=6)),
    ("dpmpp_2m_sde", dict(steps=10)),
    ("dpmpp_3m", dict(steps=10)),
    ("dpmpp_3m_sde", dict(steps=10, s_noise=0.8)),
    ("unipc", dict(steps=10, order=3)),
    ("deis", dict(steps=10)),
    ("dpm_solver", dict(steps=6)),
    ("dpm_solver", dict(steps=6, order=2)),
    ("dpm_fast", dict(steps=10, eta=1.0)),
    ("dpm_adaptive", dict(eta=0.0)),
    ("dpm_adaptive", dict(eta=1.0, order=2)),
    ("pndm", dict(steps=8)),
    ("plms", dict(steps=8)),
    ("adaptive_sde", dict(rtol=0.3, atol=0.3)),
    ("ald", dict(steps=5, n_steps_each=2)),
    ("langevin", dict(steps=20, step_size=1e-2)),
]
IDS = [f"{s}-{i}" for i, (s, _) in enumerate(CASES)]


@pytest.mark.parametrize("sampler, options", CASES, ids=IDS)
def test_samples_are_bit_identical_across_batches_with_an_elementwise_model(sampler, options):
    sde = sc.VPSDE()
    kw = dict(sampler=sampler, seed=5, progress=False, **options)
    big = sc.sample(ProductMixtureScore(sde), sde, (300, 2), **kw)
    # Two chunks at offsets reproduce the big run's rows exactly, and so does a lone row.
    np.testing.assert_array_equal(sc.sample(ProductMixtureScore(sde), sde, (50, 2), **kw), big[:50])
    np.testing.assert_array_equal(sc.sample(ProductMixtureScore(sde), sde, (100, 2), offset=200, **kw), big[200:])
    np.testing.assert_array_equal(sc.sample(ProductMixtureScore(sde), sde, (1, 2), offset=77, **kw), big[77:78])
    other = sc.sample(ProductMixtureScore(sde), sde, (50, 2), **(kw | dict(seed=6)))
    # Deterministic given x(T): the seed does not enter.
    deterministic = sampler in ("euler", "heun", "rk4", "dopri5", "dpmpp_2m", "lms", "dpm_2", "dpmpp_2s",
                                "dpmpp_3m", "unipc", "deis", "dpm_solver", "pndm", "plms") or options.get("eta") == 0
    if not deterministic:
        assert np.abs(other - big[:50]).max() > 1e-3  # the seed matters: the check can fail


def _tolerance(x, dtype):
    """A few thousand ulps of the samples' scale: the rounding a batch-size-dependent product
    introduces once per step, carried through the run."""
    return 4096 * np.finfo(dtype).eps * float(np.abs(x).max())


@pytest.mark.parametrize("sampler, options", [("ald", dict(steps=5, n_steps_each=2)),
                                              ("edm", dict(steps=8, s_churn=10.0)),
                                              ("adaptive_sde", dict(rtol=0.3, atol=0.3)),
                                              ("dpm_adaptive", dict(eta=1.0)),
                                              ("pc", dict(steps=30))])
def test_samples_agree_to_rounding_across_batches_with_a_blas_model(sampler, options):
    sde = sc.VESDE() if sampler == "ald" else sc.VPSDE()
    kw = dict(sampler=sampler, seed=11, progress=False, **options)
    big = sc.sample(RING.score_model(sde), sde, (500, 2), **kw)
    tol = _tolerance(big, np.float64)
    np.testing.assert_allclose(sc.sample(RING.score_model(sde), sde, (50, 2), **kw), big[:50], rtol=0, atol=tol)
    np.testing.assert_allclose(sc.sample(RING.score_model(sde), sde, (100, 2), offset=400, **kw), big[400:],
                               rtol=0, atol=tol)


def test_jax_float32_chunks_agree_with_one_run_to_float32_rounding():
    pytest.importorskip("jax")
    sde = sc.VPSDE()
    kw = dict(sampler="dpmpp_2m", steps=10, seed=3, progress=False, backend="jax", dtype="float32")
    whole = np.asarray(sc.sample(RING.score_model(sde), sde, (1000, 2), **kw))
    chunks = np.concatenate([np.asarray(sc.sample(RING.score_model(sde), sde, (k, 2), offset=o, **kw))
                             for o, k in ((0, 300), (300, 300), (600, 400))])
    np.testing.assert_allclose(chunks, whole, rtol=0, atol=_tolerance(whole, np.float32))
    # The chunks' noise is bit-identical to the whole run's: only the model's arithmetic rounds.
    be = sc.get_backend("jax")
    key = be.key(3)
    noise = np.asarray(be.normal(key, (1000, 2), "float32"))
    parts = [np.asarray(be.normal(key, (k, 2), "float32", offset=o)) for o, k in ((0, 300), (300, 300), (600, 400))]
    np.testing.assert_array_equal(np.concatenate(parts), noise)
