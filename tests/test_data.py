"""In-memory data sets: toy sets, the digits, batching and dequantization."""

from __future__ import annotations

import numpy as np
import pytest
import scorecore_reference as ref

import scorecore as sc
from scorecore import data


def test_responsibilities_match_the_oracle(backend):
    target = sc.GaussianMixture.example("5x5-grid")
    oracle = ref.GaussianMixture(target.weights, target.means, target.covs)
    x = oracle.sample(50, np.random.default_rng(0))
    r = np.asarray(backend.to_numpy(target.responsibilities(backend.asarray(x))))
    np.testing.assert_allclose(r, oracle.posterior_labels(x), rtol=1e-9, atol=1e-12)


def test_toy_sets():
    ring = data.toy("8-ring", 2000, seed=1)
    assert ring.x.shape == (2000, 2) and set(np.unique(ring.labels)) == set(range(8))
    rings = data.toy("rings", 1000)
    radius = np.linalg.norm(rings.x, axis=1)
    np.testing.assert_allclose(radius, 2.0 + 2.0 * rings.labels, atol=0.6)
    with pytest.raises(ValueError, match="name must be one of"):
        data.toy("moons", 10)


def test_digits_split_levels_and_dequantization():
    train, test = data.digits("train"), data.digits("test")
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert train.x.shape[1:] == (1, 8, 8) and train.n_levels == 17
    u = np.random.default_rng(0).random(train.x.shape)
    deq = train.dequantize(u)
    # Each dequantized value stays in its level's cell [v/17, (v+1)/17).
    np.testing.assert_array_equal(np.floor(deq * 17).astype(int), train.levels)
    sym = data.digits("train", data_range="[-1,1]")
    assert sym.x.min() > -1 and sym.x.max() < 1
    with pytest.raises(ValueError, match="split must be"):
        data.digits("valid")


def test_batches_are_a_permutation_fixed_by_seed_and_epoch(backend):
    ds = data.toy("rings", 103, seed=0)
    batches = list(ds.batches(10, seed=3, epoch=2, backend=backend))
    assert len(batches) == 10 and all(b[0].shape == (10, 2) for b in batches)
    seen = np.concatenate([np.asarray(backend.to_numpy(b[0])) for b in batches])
    assert len({tuple(r) for r in seen}) == 100
    again = np.concatenate([np.asarray(backend.to_numpy(b[0])) for b in ds.batches(10, seed=3, epoch=2, backend=backend)])
    np.testing.assert_array_equal(seen, again)
    other = np.concatenate([np.asarray(backend.to_numpy(b[0])) for b in ds.batches(10, seed=3, epoch=3, backend=backend)])
    assert not np.array_equal(seen, other)
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.batches(0))
