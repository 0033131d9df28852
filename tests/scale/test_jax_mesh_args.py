"""``JaxBackend(mesh=...)`` in this process (one CPU device): its arguments are checked, and a
one-device mesh gives the one-device run's noise and samples."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import scorecore as sc  # noqa: E402
from scorecore_jax import JaxBackend  # noqa: E402
from scorecore_jax.sharding import BatchSharding, hlo_collectives  # noqa: E402


def test_mesh_arguments_are_checked_naming_them():
    n = len(jax.devices())
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh or a device count, got str"):
        JaxBackend(mesh="all")
    with pytest.raises(ValueError, match=rf"mesh \(a device count\) must be an int in \[1, {n}\], got {n + 1}"):
        JaxBackend(mesh=n + 1)
    with pytest.raises(ValueError, match=r"mesh \(a device count\) must be an int in \[1, \d+\], got 0"):
        JaxBackend(mesh=0)
    with pytest.raises(ValueError, match="device and mesh are exclusive: a mesh names its devices"):
        JaxBackend("cpu", mesh=1)
    mesh = jax.sharding.Mesh(jax.devices()[:1], ("data",))
    with pytest.raises(ValueError, match="axis must be one of 'data', got 'batch'"):
        JaxBackend(mesh=mesh, axis="batch")
    be = JaxBackend(mesh=mesh)
    assert be.layout.axis == "data" and be.mesh is mesh and be.variant(jit=False).mesh is mesh


def test_a_one_device_mesh_gives_the_one_device_noise_and_samples():
    one, mesh = JaxBackend(), JaxBackend(mesh=1)
    np.testing.assert_array_equal(np.asarray(mesh.normal(mesh.key(2), (6, 3), offset=4)),
                                  np.asarray(one.normal(one.key(2), (6, 3), offset=4)))
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    a = sc.sample(model, sde, (8, 2), "dpmpp_2m", 6, backend=one, seed=1, progress=False)
    b = sc.sample(model, sde, (8, 2), "dpmpp_2m", 6, backend=mesh, seed=1, progress=False)
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0,
                               atol=100 * np.finfo(np.float32).eps * float(np.abs(np.asarray(a)).max()))
    assert isinstance(b.sharding, jax.sharding.NamedSharding)
    assert mesh.to_numpy(mesh.gather(b)).shape == (8, 2)


def test_layout_rules_and_collective_count():
    layout = BatchSharding.of(1)
    assert layout.sharding_of((8, 2)).spec == jax.sharding.PartitionSpec("batch")
    assert layout.replicated.spec == jax.sharding.PartitionSpec()
    assert layout.put(jax.numpy.ones(5)).sharding.spec == jax.sharding.PartitionSpec()  # times stay whole
    assert layout.put(jax.numpy.ones((4, 2))).sharding.spec == jax.sharding.PartitionSpec("batch")
    text = "%a = f32[] all-reduce(%x)\n%b = f32[4] all-gather(%y)\n%c = pred[] all-reduce-start(%z)"
    assert hlo_collectives(text) == {"all-reduce": 2, "all-gather": 1, "all-to-all": 0, "collective-permute": 0,
                                     "reduce-scatter": 0}
