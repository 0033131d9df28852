"""``sc.sample(..., model_kwargs=...)``: extra arguments of every model call. A class-conditional
exact model (label k → the score of the 8-ring's component k) gives each row samples of its
own component, on every sampler family, eagerly and in a compiled JAX run (where the labels are
an argument: new labels reuse the trace); chunks at an offset take their own rows' labels; a
label array of the wrong batch length is refused naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from support.backends import jax_x64
from support.ring import RING

import scorecore as sc
from scorecore._arrays import namespace

SDE = sc.VPSDE()
N = 64
COMPONENTS = [sc.GaussianMixture(RING.weights[k:k + 1] / RING.weights[k], RING.means[k:k + 1], RING.covs[k:k + 1])
              for k in range(len(RING.weights))]


class ClassConditional:
    """score(x, t, label): row i gets the exact score of component label[i] (an (n,) int array)."""

    def __init__(self, sde):
        self.scores = [c.score_model(sde) for c in COMPONENTS]
        self.event_shape = (2,)

    def __call__(self, x, t, label):
        xp = namespace(x)
        out = xp.zeros_like(x)
        for k, score in enumerate(self.scores):
            pick = xp.reshape(label == k, (-1, 1))
            out = xp.where(pick, score(x, t), out)
        return out


def labels(n=N, shift=0):
    return (np.arange(n) + shift) % len(COMPONENTS)


def nearest_component(x):
    x = np.asarray(x)
    return np.argmin(((x[:, None, :] - np.asarray(RING.means)[None]) ** 2).sum(-1), axis=1)


@pytest.mark.parametrize("sampler,options", [("pc", dict(steps=200)), ("dpmpp_2m", dict(steps=20)),
                                             ("pndm", dict(steps=10)), ("euler_ancestral", dict(steps=40)),
                                             ("dopri5", dict(rtol=1e-4, atol=1e-4)), ("edm", dict(steps=12))])
def test_each_row_samples_its_own_component(sampler, options):
    x = sc.sample(ClassConditional(SDE), SDE, (N, 2), sampler=sampler, seed=0, progress=False,
                  model_kwargs={"label": labels()}, **options)
    np.testing.assert_array_equal(nearest_component(x), labels())


def test_chunks_at_an_offset_take_their_own_labels():
    kw = dict(sampler="euler_ancestral", steps=20, seed=1, progress=False)
    big = sc.sample(ClassConditional(SDE), SDE, (N, 2), model_kwargs={"label": labels()}, **kw)
    part = sc.sample(ClassConditional(SDE), SDE, (16, 2), offset=40, model_kwargs={"label": labels()[40:56]}, **kw)
    np.testing.assert_allclose(part, big[40:56], rtol=0, atol=1e-12)


def test_compiled_jax_run_takes_the_labels_as_an_argument():
    pytest.importorskip("jax")
    from scorecore_jax import JaxBackend

    with jax_x64():  # restored after: other tests expect JAX's float32 default
        kw = dict(sampler="dpmpp_2m", steps=20, seed=0, progress=False, backend=JaxBackend(), dtype="float64")
        sc.run_cache.clear()
        first = sc.sample(ClassConditional(SDE), SDE, (N, 2), model_kwargs={"label": labels()}, **kw)
        second = sc.sample(ClassConditional(SDE), SDE, (N, 2), model_kwargs={"label": labels(shift=3)}, **kw)
    np.testing.assert_array_equal(nearest_component(first), labels())
    np.testing.assert_array_equal(nearest_component(second), labels(shift=3))  # not the first call's constants


def test_labels_of_another_batch_length_are_refused():
    with pytest.raises(ValueError, match=r"model_kwargs\['label'\] must have the batch's 64 rows"):
        sc.sample(ClassConditional(SDE), SDE, (N, 2), sampler="dpmpp_2m", steps=5, progress=False,
                  model_kwargs={"label": labels(N + 1)})
    with pytest.raises(TypeError, match="model_kwargs must be a dict"):
        sc.sample(ClassConditional(SDE), SDE, (N, 2), sampler="dpmpp_2m", steps=5, progress=False,
                  model_kwargs=[("label", labels())])
