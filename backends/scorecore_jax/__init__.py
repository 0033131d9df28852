"""The JAX backend: ``jax.numpy``, ``jax.random`` keys, ``jax.lax`` loops and ``jax.jit``.

``JaxBackend(device=None, *, x64=False, jit=True, portable=False, matmul_precision="highest", mesh=None,
axis=None)``:

- ``matmul_precision``: the float32 matmul precision of the runs this backend compiles,
  scoped with ``jax.default_matmul_precision`` around each call of a ``jit``-ed run, so
  JAX's process-wide setting (and a user's model run elsewhere) is untouched.

- dtype policy: float32 by default; float64 only with JAX's x64 mode on. Asking for
  float64 while ``jax_enable_x64`` is off raises (JAX would silently give float32);
  ``x64=True`` turns the process-wide switch on explicitly.
- random numbers: ``jax.random`` keys. Element j of row i of a draw is hashed from the
  counter (offset + i, j) with the key by Threefry-2x32 (``jax.extend.random``), in one
  call for the whole batch, so draws are row-wise batch invariant; ``fold_in`` accepts a
  traced step index inside ``lax.fori_loop``. (One ``fold_in`` per row under ``vmap``
  and a draw per row — the obvious design — costs 3× as much.) Keys of another
  implementation than threefry2x32 fall back to that design.
- ``jit=True`` (default): ``fori_loop``/``scan``/``while_loop`` are ``jax.lax``'s and the
  sampling driver compiles the whole run; ``jit=False`` runs loops eagerly in Python
  (a progress bar, op-by-op dispatch) — the reference the compiled run is tested against.
- ``portable=True``: the NumPy backend's draws for the same Python-int key; eagerly a
  host copy, under ``jit`` a ``jax.pure_callback`` (the traced step index is folded in
  on the host).
- ``mesh``: a ``jax.sharding.Mesh`` (or an int k: the first k devices in a 1-D mesh named
  ``"batch"``) whose ``axis`` (default: the mesh's first) shards the batch axis with
  ``NamedSharding``; see :mod:`scorecore_jax.sharding`. The whole run stays one ``jax.jit``:
  arrays of rank ≥ 2 entering through ``asarray`` (data, ``x_init``) and every random draw
  (prior, step noise, probes) are laid out batch-sharded, rank 0 and 1 arrays (times,
  schedules) replicated, and XLA's sharding propagation keeps the per-sample arithmetic on
  each device's rows. The adaptive solvers keep per-sample step sizes; their loop's one
  cross-device reduction is "is any sample still running". A batch whose size the device
  count does not divide is replicated (correct, not faster). Results come back sharded
  (``gather(x)`` replicates one; ``to_numpy`` copies it to the host).
- framework parts: ``jax`` autodiff (``has_autodiff``), ``compiles == "run"`` with
  ``jit=True``, ``networks`` (:mod:`scorecore_jax.networks`, Flax NNX; imported on first
  use, so the backend works without Flax), ``trainer(config, event_shape)``
  (:class:`scorecore_jax.training.JaxTrainer`, Flax + optax).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32

from scorecore import random as _random
from scorecore import validation
from scorecore.backend import Backend, host_draw

_U32 = 1 << 32


class _DeferredKey:
    """A portable (Python-int) key folded with traced integers: resolved on the host."""

    def __init__(self, base: int, data: tuple):
        self.base, self.data = base, data


def _is_traced(v) -> bool:
    return isinstance(v, jax.core.Tracer)


#: fold_in compiled: a host key derivation is one dispatch, not a dozen op-by-op ones.
_fold_in = jax.jit(jax.random.fold_in)


@functools.lru_cache(maxsize=4)
def _impl_key(impl: str):
    return jax.random.key(0, impl=impl)


@functools.lru_cache(maxsize=256)
def _seed_key(impl: str, seed: int):
    """The run key of ``seed`` under the PRNG implementation ``impl``, made once (keys are
    immutable): a repeated call with the same seed makes no dispatch (~0.2 ms of a 7 ms
    compiled 64-point likelihood)."""
    return JaxBackend._fold(_impl_key(impl), seed)


def _counter_words(key, rows: int, cols: int, offset: int):
    """(rows, 2·cols) uint32: Threefry-2x32 with ``key`` of the counters (offset + i, m),
    m < cols, two words each, in one call: row i depends on (key, offset + i) only."""
    r = jnp.repeat(jnp.arange(rows, dtype=jnp.uint32) + jnp.uint32(offset), cols)
    m = jnp.tile(jnp.arange(cols, dtype=jnp.uint32), rows)
    # threefry_2x32 hashes the pairs (count[p], count[n + p]) and returns both words of pair p
    # at p and n + p.
    out = threefry_2x32(jax.random.key_data(key), jnp.concatenate([r, m]))
    n = rows * cols
    return jnp.stack([out[:n], out[n:]], axis=-1).reshape(rows, 2 * cols)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _counter_draw(kind, key, shape, dt, offset):
    """Row-wise batch-invariant normal/uniform/Rademacher draws from counter-based bits.

    Uniform U ∈ [0, 1) from the top mantissa bits (23 for float32, 52 for float64: one
    word, resp. both words of a counter, per element); normal √2 erf⁻¹(2U − 1), U's lower
    end clamped so that erf⁻¹ stays finite (as ``jax.random.normal``); Rademacher ±1 by U < ½.
    """
    rows, d = shape[0], math.prod(shape[1:])
    if jnp.dtype(dt).itemsize == 8:
        w = _counter_words(key, rows, d, offset).astype(jnp.uint64)
        bits = (w[:, 0::2] << 32) | w[:, 1::2]
        unit = jax.lax.bitcast_convert_type((bits >> 12) | jnp.uint64(0x3FF0000000000000), jnp.float64) - 1.0
    else:
        w = _counter_words(key, rows, (d + 1) // 2, offset)[:, :d]
        unit = jax.lax.bitcast_convert_type((w >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0
    if kind == "uniform":
        out = unit
    elif kind == "rademacher":
        out = jnp.where(unit < 0.5, -1.0, 1.0).astype(unit.dtype)
    else:
        lo = jnp.nextafter(jnp.asarray(-1.0, unit.dtype), jnp.asarray(0.0, unit.dtype))
        out = math.sqrt(2.0) * jax.scipy.special.erfinv(jnp.maximum(2.0 * unit - 1.0, lo))
    return jnp.reshape(out, shape).astype(dt)


def _nnx():
    """flax.nnx if Flax is already imported (a model cannot be an NNX module otherwise)."""
    return sys.modules.get("flax.nnx") if "flax" in sys.modules else None


def cast_module(net, dtype):
    """The Flax NNX module ``net`` with every array cast to ``dtype`` (built in float32)."""
    if dtype == jnp.float32:
        return net
    from flax import nnx

    graphdef, state = nnx.split(net)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a.astype(dtype), state))


class JaxBackend(Backend):
    """JAX on its default device (CPU, GPU or TPU) or on ``device`` (a ``jax.Device`` or a
    platform name such as ``"gpu"``)."""

    name = "jax"
    xp = jnp
    default_dtype_name = "float32"
    has_autodiff = True

    def __init__(self, device=None, *, x64: bool = False, jit: bool = True, portable: bool = False,
                 matmul_precision: str | None = "highest", mesh=None, axis: str | None = None):
        if isinstance(device, str):
            device = jax.devices(device)[0]
        if mesh is not None and device is not None:
            raise ValueError("device and mesh are exclusive: a mesh names its devices")
        super().__init__(device)
        from .sharding import BatchSharding

        self.layout = None if mesh is None else BatchSharding.of(mesh, axis)
        if x64:
            jax.config.update("jax_enable_x64", True)
        # JAX's default float32 matmul on GPUs is TF32 (10-bit mantissa, ~1e-3 relative
        # error), which no float32 tolerance against the exact oracle admits. The precision is
        # scoped to the runs this backend compiles (``jit``), never set process-wide, so a
        # user's own model elsewhere keeps JAX's default; None leaves JAX's setting (faster).
        self.matmul_precision = (None if matmul_precision is None
                                 else validation.choice("matmul_precision", matmul_precision,
                                                        ("default", "high", "highest", "bfloat16",
                                                         "tensorfloat32", "float32")))
        self.eager = not validation.boolean("jit", jit)
        self.portable = validation.boolean("portable", portable)

    @property
    def compiles(self):
        return None if self.eager else "run"

    def variant(self, **options):
        options.setdefault("jit", not self.eager)
        if self.layout is not None:
            options.setdefault("mesh", self.layout.mesh)
            options.setdefault("axis", self.layout.axis)
            if options.get("mesh") is not None:
                options.setdefault("device", None)
        return super().variant(**options)

    @property
    def mesh(self):
        """The device mesh whose batch axis shards the runs (None: one device)."""
        return None if self.layout is None else self.layout.mesh

    def asarray(self, x, dtype=None, *, name: str = "x"):
        """As :meth:`Backend.asarray`; with a mesh, laid out on it (:meth:`BatchSharding.put`)."""
        out = super().asarray(x, dtype, name=name)
        return out if self.layout is None else self.layout.put(out)

    def gather(self, x):
        """``x`` replicated on every device of the mesh (unchanged without one)."""
        return x if self.layout is None else self.layout.replicate(x)

    def to_numpy(self, x):
        """A host copy of ``x``; an array spread over several processes' devices (a mesh after
        ``jax.distributed.initialize``) is gathered from all of them (every process must call)."""
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    def to_host(self, *xs) -> tuple:
        if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in xs):
            return tuple(np.asarray(h) for h in jax.device_get(xs))  # one wait for all of them
        return tuple(self.to_numpy(x) for x in xs)

    # -- arrays -----------------------------------------------------------------
    def dtype(self, dtype=None):
        dt = super().dtype(dtype)
        if dt == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError(
                "float64 on JAX needs x64 mode, which is off (JAX would silently compute in "
                "float32): call jax.config.update('jax_enable_x64', True) at start-up, set "
                "JAX_ENABLE_X64=1, or use JaxBackend(x64=True)"
            )
        return dt

    def block_until_ready(self, x):
        return jax.block_until_ready(x)

    # -- random numbers ---------------------------------------------------------
    def key(self, seed: int):
        if self.portable:
            return _random.key(seed)
        return _seed_key(str(jax.config.jax_default_prng_impl), validation.integer("seed", seed, lo=0))

    @staticmethod
    def _fold(key, data):
        """jax.random.fold_in for any data: traced (uint32-range) or a Python int of up to
        64 bits (high word folded first)."""
        if _is_traced(data) or not isinstance(data, int):
            return jax.random.fold_in(key, data)
        if not 0 <= data < _U32:
            data &= _random.MASK64
            key, data = _fold_in(key, np.uint32(data >> 32)), data & (_U32 - 1)
        return _fold_in(key, np.uint32(data))

    def fold_in(self, key, data):
        if not self.portable:
            return self._fold(key, data)
        if isinstance(key, _DeferredKey):
            return _DeferredKey(key.base, key.data + (data,))
        if _is_traced(data) or not isinstance(data, int):
            return _DeferredKey(key, (data,))
        return _random.fold_in(key, data)

    def split(self, key, num: int = 2):
        if self.portable:
            if isinstance(key, _DeferredKey):
                raise NotImplementedError("split of a portable key folded with a traced value")
            return _random.split(key, num)
        return jax.random.split(key, num)

    def _row_keys(self, key, rows: int, offset: int):
        idx = jnp.arange(rows, dtype=jnp.uint32) + jnp.uint32(offset)
        return jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)

    def _draw(self, kind, key, shape, dtype, offset):
        dt = self.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        if self.portable:
            name = self.dtype_name(dt)
            if not isinstance(key, _DeferredKey):
                return self.asarray(host_draw(kind, key, shape, name, offset), dt)

            def on_host(*data):
                k = key.base
                for d in data:
                    k = _random.fold_in(k, int(d))
                return np.asarray(host_draw(kind, k, shape, name, offset))

            out = jax.ShapeDtypeStruct(shape, dt)
            return self._laid_out(jax.pure_callback(on_host, out, *key.data))
        if len(shape) == 0:
            raise ValueError("shape must have a leading batch axis, got ()")
        # Row counters are uint32: offset + rows must not wrap.
        validation.integer("offset", offset, lo=0, hi=_U32 - shape[0])
        if str(jax.random.key_impl(key)) == "threefry2x32":
            return self._laid_out(_counter_draw(kind, key, shape, dt, np.uint32(offset)))
        event = shape[1:]
        if kind == "normal":
            one = lambda k: jax.random.normal(k, event, dt)  # noqa: E731
        elif kind == "uniform":
            one = lambda k: jax.random.uniform(k, event, dt)  # noqa: E731
        else:
            one = lambda k: jax.random.rademacher(k, event, dt)  # noqa: E731
        return self._laid_out(jax.vmap(one)(self._row_keys(key, shape[0], offset)))

    def _laid_out(self, draw):
        # Counter-based bits are elementwise in (row, element), so computing them sharded gives
        # each device exactly its rows of the one-device draw.
        return draw if self.layout is None else self.layout.put_draw(draw)

    # -- framework parts --------------------------------------------------------
    @property
    def networks(self):
        from . import networks

        return networks

    def network(self, name, event_shape, *, seed=0, dtype=None, **options):
        """``ScoreMLP`` for (D,) or ``ScoreUNet`` for (C, H, W) (Flax NNX modules), weights
        drawn from ``seed``, cast to this backend's ``dtype``."""
        event_shape, seed = self.network_args(name, event_shape, seed)
        net = (self.networks.ScoreMLP(event_shape[0], **options, seed=seed) if name == "mlp"
               else self.networks.ScoreUNet(in_channels=event_shape[0], **options, seed=seed))
        return cast_module(net, self.dtype(dtype))

    def trainer(self, config, event_shape):
        from .training import JaxTrainer

        return JaxTrainer(config, tuple(event_shape))

    # -- autodiff ---------------------------------------------------------------
    def vjp(self, fn, x, v):
        return jax.vjp(fn, x)[1](v)[0]

    def jvp(self, fn, x, v):
        return jax.jvp(fn, (x,), (v,))[1]

    def grad(self, fn):
        return jax.grad(fn)

    def value_and_jvp(self, fn, x, v):
        return jax.jvp(fn, (x,), (v,))

    def value_and_divergence(self, fn, x, t):
        """fn(x, t) once and its exact trace tr(∂fn/∂x) per sample: ``jax.linearize`` then the
        D basis-vector JVPs of the linearization batched with ``vmap``."""
        n, D = x.shape[0], math.prod(x.shape[1:])
        value, tangent = jax.linearize(lambda y: fn(y, t), x)
        eye = jnp.eye(D, dtype=x.dtype)

        def diag(e):
            return jnp.reshape(tangent(jnp.broadcast_to(jnp.reshape(e, x.shape[1:]), x.shape)), (n, D)) @ e

        return value, jnp.sum(jax.vmap(diag)(eye), axis=0)

    # -- control flow -----------------------------------------------------------
    def precision(self):
        """A context in which JAX's matmuls use this backend's ``matmul_precision``."""
        if self.matmul_precision is None:
            return contextlib.nullcontext()
        return jax.default_matmul_precision(self.matmul_precision)

    def jit(self, fn, **kwargs):
        """``jax.jit(fn)`` (``fn`` itself with ``jit=False``), traced and run under
        :meth:`precision`: the precision is part of jit's cache key, so it reaches the compiled
        program without touching the process-wide setting."""
        compiled = fn if self.eager else jax.jit(fn, **kwargs)

        @functools.wraps(fn)
        def scoped(*args, **kw):
            with self.precision():
                return compiled(*args, **kw)

        if not self.eager:
            def lower(*args, **kw):
                """``jax.jit(fn).lower`` under the same precision (for inspecting the HLO)."""
                with self.precision():
                    return compiled.lower(*args, **kw)

            scoped.lower = lower
        return scoped

    def split_model(self, model):
        """(structure, parameters, rebuild) for a model whose weights are arrays — a Flax NNX
        module (``nnx.split``) or a JAX pytree with array leaves — else None. The compiled
        sampling run is keyed by the (hashable) structure and takes the parameters as an
        argument, so new weights do not retrace; ``rebuild(parameters)`` is the model."""
        nnx = _nnx()
        if nnx is not None and isinstance(model, nnx.Module):
            graphdef, state = nnx.split(model)
            return graphdef, state, functools.partial(nnx.merge, graphdef)
        leaves, treedef = jax.tree_util.tree_flatten(model)
        if treedef.num_nodes == 1 or not leaves or not all(isinstance(v, jax.Array) for v in leaves):
            return None  # a leaf (a plain callable) or a pytree holding more than arrays
        try:
            hash(treedef)
        except TypeError:
            return None
        return treedef, leaves, functools.partial(jax.tree_util.tree_unflatten, treedef)

    def fori_loop(self, lower, upper, body, init, *, progress=None):
        if self.eager:
            return super().fori_loop(lower, upper, body, init, progress=progress)
        return jax.lax.fori_loop(lower, upper, body, init)

    def scan(self, body, init, xs, length=None):
        if self.eager:
            return super().scan(body, init, xs, length)
        return jax.lax.scan(body, init, xs, length=length)

    def while_loop(self, cond, body, init):
        if self.eager:
            return super().while_loop(cond, body, init)
        return jax.lax.while_loop(cond, body, init)


backend = JaxBackend()
