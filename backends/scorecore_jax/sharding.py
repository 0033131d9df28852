"""The batch layout of a JAX device mesh: sample rows split over devices, the rest replicated.

Score-based sampling and likelihood are embarrassingly parallel over samples: sample i's
noise depends on (seed, i, step) only and its arithmetic touches no other row. So the one
layout needed is ``NamedSharding(mesh, P(axis))`` on the leading (batch) axis of every
per-sample array, and ``NamedSharding(mesh, P())`` (replicated) for times, schedules and
parameters. Inside ``jax.jit`` the layout is a ``with_sharding_constraint``; XLA's sharding
propagation carries it through the step, so a fixed-step run has no cross-device traffic
at all and an adaptive one only the while-loop's "any sample still running" (an all-reduce
of one bool per iteration) and the NFE counter.

Several hosts: call ``jax.distributed.initialize()`` on each first; ``jax.devices()`` then
lists every host's devices and a mesh over them shards across hosts the same way (each
host feeds and reads its addressable rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from scorecore import validation


def _traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


@dataclass(frozen=True)
class BatchSharding:
    """Rows of the batch axis split along ``axis`` of ``mesh``; everything else replicated."""

    mesh: Mesh
    axis: str

    @classmethod
    def of(cls, mesh, axis: str | None = None) -> BatchSharding:
        """From a ``Mesh`` (``axis`` one of its names, default the first) or an int k (the first
        k devices of ``jax.devices()`` in a 1-D mesh named ``"batch"``)."""
        if isinstance(mesh, int) and not isinstance(mesh, bool):
            k = validation.integer("mesh (a device count)", mesh, lo=1, hi=len(jax.devices()))
            mesh = Mesh(jax.devices()[:k], ("batch",))
        validation.instance("mesh", mesh, Mesh, "a jax.sharding.Mesh or a device count")
        axis = mesh.axis_names[0] if axis is None else validation.choice("axis", axis, mesh.axis_names)
        return cls(mesh, axis)

    @property
    def size(self) -> int:
        """The number of devices the batch axis is split over."""
        return int(self.mesh.shape[self.axis])

    @property
    def rows(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(self.axis))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def sharding_of(self, shape) -> NamedSharding:
        """Batch-sharded for an array of rank ≥ 2 whose leading size the device count divides
        (and for a draw, which always has a batch axis); replicated otherwise."""
        if len(shape) >= 1 and int(shape[0]) % self.size == 0 and int(shape[0]) > 0:
            return self.rows
        return self.replicated

    def put(self, x, *, batch: bool | None = None):
        """``x`` laid out on the mesh: under a trace a sharding constraint, eagerly a
        ``device_put``. ``batch=None``: rank ≥ 2 arrays are batches, lower ranks replicated."""
        shape = tuple(x.shape)
        if batch is None:
            batch = len(shape) >= 2
        sharding = self.sharding_of(shape) if batch else self.replicated
        if _traced(x):
            return jax.lax.with_sharding_constraint(x, sharding)
        return jax.device_put(x, sharding)

    def put_draw(self, x):
        """A random draw (its leading axis is always the batch)."""
        return self.put(x, batch=True)

    def replicate(self, x):
        return jax.tree.map(lambda a: self.put(a, batch=False), x)

    def batch_tree(self, tree):
        """Every array leaf of ``tree`` with a leading axis batch-sharded (a training batch)."""
        return jax.tree.map(lambda a: self.put(a, batch=True) if getattr(a, "ndim", 0) >= 1 else a, tree)

    def shards(self, n: int) -> list[int]:
        """Rows per device for a batch of n (equal; n must be a multiple of the device count)."""
        if n % self.size:
            raise ValueError(f"the batch size ({n}) must be a multiple of the mesh's {self.size} devices along "
                             f"{self.axis!r} to be sharded")
        return [n // self.size] * self.size

    def __repr__(self) -> str:
        return f"BatchSharding({self.size} devices along {self.axis!r}, mesh {dict(self.mesh.shape)})"


def hlo_collectives(compiled_text: str) -> dict[str, int]:
    """How many of each cross-device collective an optimized HLO module holds."""
    names = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")
    return {n: compiled_text.count(f" {n}(") + compiled_text.count(f" {n}-start(") for n in names}


__all__ = ["BatchSharding", "hlo_collectives"]
