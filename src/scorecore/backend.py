"""The backend protocol, its Array API base, and the registry of backends by name.

A backend supplies what the Array API standard lacks: the namespace and device, a
dtype policy, functional random numbers, autodiff, and compiled control flow.
Backends are found through the entry-point group ``scorecore.backends``, so a
package outside this repository can add one without touching the core. The backend is
the one registry of framework parts: what it can differentiate and compile is declared
on it (``has_autodiff``, ``compiles``), and it supplies its networks (``networks``,
``network(...)``) and its trainer (``trainer(config, event_shape)``); the core never
looks a framework module up by name.

Arrays enter a backend through :meth:`Backend.asarray`: nested sequences and NumPy
arrays are converted, an array of another framework crosses by DLPack only (a
conversion such as ``torch.asarray`` of a JAX array can flatten it).

Random numbers are functional: a key is a value, never carried generator state.
Every draw is row-wise batch invariant: row ``i`` of a draw of shape
``(n, *event)`` depends only on ``(key, offset + i)``. The noise of sample ``i``
at step ``k`` is therefore ``normal(fold_in(key, k), ..., offset=i)`` whatever the
batch size or chunking.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from importlib import import_module, metadata
from typing import Any

from . import random as _random
from . import validation
from ._arrays import namespace

ENTRY_POINT_GROUP = "scorecore.backends"

# The packages that provide the backends shipped with scorecore, and the extra
# that installs each; used to tell a user what to install.
_SHIPPED = {
    "numpy": ("numpy", None),
    "array_api_strict": ("array-api-strict", "strict"),
    "torch": ("torch", "torch"),
    "jax": ("jax", "jax"),
    "cupy": ("cupy-cuda13x", "cupy"),
}


class Backend:
    """The Array API base every backend derives from.

    Subclasses set ``name`` and ``xp`` and override what their framework does
    better (RNG on device, autodiff, ``jit``, ``fori_loop``). What is here is
    correct for any Array API namespace and eager execution.
    """

    name: str = "array-api"
    xp: Any = None
    default_dtype_name: str = "float64"
    #: Whether ``fori_loop`` runs the body eagerly in Python (a progress bar is possible).
    eager: bool = True
    #: Portable noise: draws are the NumPy backend's, moved to this backend (see :func:`portable`).
    portable: bool = False
    #: Whether ``vjp``/``jvp``/``grad``/``divergence`` differentiate any function (else they
    #: raise NotImplementedError, and models must bring their own derivatives).
    has_autodiff: bool = False
    #: What ``jit`` compiles: ``None`` (nothing: ``jit`` is the identity), ``"step"`` (the
    #: sampling driver compiles the step, loops stay in Python: torch.compile) or ``"run"``
    #: (the whole run, loop included: ``jax.jit`` over ``jax.lax`` loops).
    compiles: str | None = None

    def __init__(self, device=None):
        self.device = device

    # -- arrays -----------------------------------------------------------------
    def dtype(self, dtype=None):
        """The namespace's dtype for ``dtype`` (a name, a dtype, or None for the default)."""
        if dtype is None:
            dtype = self.default_dtype_name
        if isinstance(dtype, str):
            return getattr(self.xp, validation.choice("dtype", dtype, ("float32", "float64")))
        if dtype in (self.xp.float32, self.xp.float64):
            return dtype
        raise ValueError(f"dtype must be float32 or float64 of backend {self.name!r}, got {dtype!r}")

    def dtype_name(self, dtype=None) -> str:
        """``'float32'`` or ``'float64'``: the name of ``self.dtype(dtype)``."""
        return "float32" if self.dtype(dtype) == self.xp.float32 else "float64"

    def asarray(self, x, dtype=None, *, name: str = "x"):
        """``x`` (a nested sequence, a NumPy array, or an array of any DLPack-capable
        framework) as this backend's array of ``dtype``.

        An array of another framework crosses by DLPack (:meth:`from_dlpack`) — shape and
        values kept — or raises a ValueError naming the argument ``name`` and this backend.
        """
        if self._is_foreign(x):
            x = self._import_foreign(x, name)
        return self.xp.asarray(x, dtype=self.dtype(dtype), device=self.device)

    def _is_foreign(self, x) -> bool:
        """Whether ``x`` is an array of another framework (not NumPy, not this namespace's)."""
        import numpy as np

        if isinstance(x, (np.ndarray, np.generic)) or not hasattr(x, "__dlpack__"):
            return False
        try:
            return namespace(x) is not self.xp
        except TypeError:  # a DLPack exporter array-api-compat does not know
            return True

    def _import_foreign(self, x, name: str):
        try:
            return self.from_dlpack(x)
        except Exception as exc:  # each framework raises its own kind (BufferError, RuntimeError...)
            raise ValueError(
                f"{name} must be an array of backend {self.name!r} or one DLPack can move to it, got "
                f"{type(x).__module__}.{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))} "
                f"(DLPack failed: {type(exc).__name__}: {exc}); convert it with scorecore.convert(x, "
                f"{self.name!r}) or pass a NumPy array"
            ) from exc

    def to_numpy(self, x):
        """A NumPy copy of ``x`` (host transfer)."""
        import numpy as np

        return np.asarray(x)

    def to_host(self, *xs) -> tuple:
        """NumPy copies of the arrays ``xs``: what a run reports, in one transfer where the
        backend can batch them."""
        return tuple(self.to_numpy(x) for x in xs)

    def block_until_ready(self, x):
        """Wait for asynchronous work on ``x`` (timing); a no-op for eager CPU backends."""
        return x

    def from_dlpack(self, x):
        """``x`` (an array of any DLPack-capable framework) as this backend's array, zero-copy
        when both live on the same device; otherwise copied to ``self.device``."""
        try:
            y = self.xp.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError):
            # Another device (CUDA → host, say): DLPack cannot alias it, so copy via the host,
            # but only from an array NumPy reads with its shape (never an object wrapped as 0-D).
            import numpy as np

            host = _host_copy(x)
            if not (hasattr(host, "__array_interface__") or hasattr(host, "__array__")):
                raise
            y = self.xp.asarray(np.asarray(host))
        return self._to_device(y)

    def _to_device(self, x):
        import array_api_compat

        if self.device is None or array_api_compat.device(x) == self.device:
            return x
        return array_api_compat.to_device(x, self.device)

    # -- random numbers ---------------------------------------------------------
    def key(self, seed: int):
        """A key from an integer seed."""
        return _random.key(seed)

    def fold_in(self, key, data: int):
        """A key derived from ``key`` and an integer (a step index, say)."""
        return _random.fold_in(key, data)

    def split(self, key, num: int = 2):
        """``num`` independent keys."""
        return _random.split(key, num)

    def normal(self, key, shape, dtype=None, *, offset: int = 0):
        """Standard normal draws, row ``i`` a function of ``(key, offset + i)`` only."""
        return self._draw("normal", key, shape, dtype, offset)

    def uniform(self, key, shape, dtype=None, *, offset: int = 0):
        """U[0, 1) draws, row-wise batch invariant."""
        return self._draw("uniform", key, shape, dtype, offset)

    def rademacher(self, key, shape, dtype=None, *, offset: int = 0):
        """±1 draws, row-wise batch invariant (Hutchinson probes)."""
        return self._draw("rademacher", key, shape, dtype, offset)

    def _draw(self, kind: str, key, shape, dtype, offset: int):
        """The counter-based generator run on this backend's device, or on the host (portable).

        Its integer bits, hence its uniforms and ±1, are identical on every backend; normals
        go through log/cos/sin, whose last bit differs between math libraries, so only
        portable mode makes them identical.
        """
        if self.portable:
            return self.asarray(host_draw(kind, key, shape, self.dtype_name(dtype), offset), dtype)
        return getattr(_random, kind)(self.xp, key, shape, self.dtype(dtype), offset=offset, device=self.device)

    # -- autodiff ---------------------------------------------------------------
    def _no_autodiff(self, what: str):
        # has_autodiff = False: a capability this backend declares it lacks.
        raise NotImplementedError(
            f"backend {self.name!r} has no automatic differentiation ({what}); use a model "
            "that provides it (e.g. an analytic target's score with .divergence) or the "
            "'torch' or 'jax' backend"
        )

    def vjp(self, fn: Callable, x, v):
        """``vᵀ ∂fn/∂x`` at ``x``."""
        self._no_autodiff("vjp")

    def jvp(self, fn: Callable, x, v):
        """``(∂fn/∂x) v`` at ``x``."""
        self._no_autodiff("jvp")

    def grad(self, fn: Callable):
        """∇ of a scalar-valued ``fn``."""
        self._no_autodiff("grad")

    def value_and_vjp(self, fn: Callable, x, u):
        """``(fn(x), uᵀ ∂fn/∂x)`` from one pass where the framework keeps the forward pass for
        the backward one; here ``fn`` is called once more."""
        return fn(x), self.vjp(fn, x, u)

    def value_and_probe(self, fn: Callable, x, v):
        """``(fn(x), w)`` with vᵀw = vᵀ (∂fn/∂x) v per row: the product a probe estimate needs,
        by whichever mode the framework runs faster (w = J v or Jᵀ v); here :meth:`value_and_jvp`."""
        return self.value_and_jvp(fn, x, v)

    def value_and_jvp(self, fn: Callable, x, v):
        """``(fn(x), (∂fn/∂x) v)`` from one pass where the framework carries the primal along
        with the tangent (forward mode); here ``fn`` is called once more."""
        return fn(x), self.jvp(fn, x, v)

    def value_and_divergence(self, fn: Callable, x, t):
        """``(fn(x, t), ∇ₓ·fn(x, t))``: the exact trace tr(∂fn/∂x) = Σ_d e_dᵀ (∂fn/∂x) e_d per
        sample, by D Jacobian-vector products with the basis vectors e_d (shared by the batch:
        samples must not interact, as in every score model without batch statistics); the
        value rides along with the first. Here the D products are D calls; torch and JAX batch
        them into one (``vmap``). Exact and fine for small D; use Hutchinson's estimator for images."""
        xp = self.xp
        n, event = x.shape[0], tuple(x.shape[1:])
        D = math.prod(event)
        eye = xp.eye(D, dtype=x.dtype, device=self.device)
        total, value = xp.zeros((n,), dtype=x.dtype, device=self.device), None
        for d in range(D):
            v = xp.broadcast_to(xp.reshape(eye[d, :], (1,) + event), x.shape)
            out, jv = self.value_and_jvp(lambda y: fn(y, t), x, v)
            value = out if value is None else value
            total = total + xp.reshape(jv, (n, D))[:, d]
        return value, total

    def divergence(self, fn: Callable, x, t):
        """Exact ∇ₓ·fn(x, t) per sample, shape (n,): :meth:`value_and_divergence` without the value."""
        return self.value_and_divergence(fn, x, t)[1]

    def set_threads(self, n: int) -> None:
        """Use ``n`` intra-op threads where the framework has such a setting (torch); else nothing."""
        validation.positive_int("threads", n)

    # -- framework parts --------------------------------------------------------
    @property
    def networks(self):
        """The module of this backend's networks: ``ScoreMLP(dim, ...)``, ``ScoreUNet(...)``
        (where it has one), ``to_state_dict``/``from_state_dict`` in the flat layout of
        :mod:`scorecore.checkpoint`. On the Array API base: :mod:`scorecore.models` (the
        :class:`~scorecore.models.MLP` with hand-derived derivatives, no U-Net)."""
        from . import models

        return models

    def network(self, name: str, event_shape, *, seed: int = 0, dtype=None, **options):
        """A network of this backend as a score model ``s_θ(x, t)`` on its arrays, weights
        initialised from ``seed``: ``"mlp"`` for event shape (D,), ``"unet"`` for (C, H, W).
        ``options`` go to the network's constructor. For benchmarks and examples (no gradient
        is kept); training builds its networks through :meth:`trainer`."""
        event_shape, seed = self.network_args(name, event_shape, seed, unet=False)
        net = self.networks.MLP(event_shape[0], **options)
        return net.bind(net.init(self, seed=seed, dtype=dtype))

    def network_args(self, name: str, event_shape, seed, *, unet: bool = True):
        """(event shape, seed) checked for :meth:`network`: ``"mlp"`` takes (D,), ``"unet"``
        (C, H, W) where the backend has one (``unet``)."""
        validation.choice("network", name, ("mlp", "unet"))
        event_shape = validation.shape("event_shape", (1, *event_shape))[1:]
        seed = validation.integer("seed", seed, lo=0)
        if name == "unet" and not unet:
            raise NotImplementedError(f"backend {self.name!r} has no U-Net (it needs autodiff): use 'torch' or 'jax'")
        rank, want = (1, "(D,)") if name == "mlp" else (3, "(C, H, W)")
        if len(event_shape) != rank:
            raise ValueError(f"network {name!r} needs event_shape {want}, got {event_shape}")
        return event_shape, seed

    def trainer(self, config, event_shape):
        """A fresh DSM trainer for ``config`` (a :class:`scorecore.training.TrainConfig`) on
        data of ``event_shape``: the trainer protocol of :mod:`scorecore.training.loop`. On the
        Array API base: :class:`scorecore.training.ArrayAPITrainer` (the MLP only)."""
        from .training.array_api import ArrayAPITrainer

        return ArrayAPITrainer(config, tuple(event_shape))

    def variant(self, **options) -> Backend:
        """A new backend of this kind with constructor ``options`` (``device=``, and e.g.
        ``compile=True`` on torch, ``jit=False`` on JAX); the device is kept unless given."""
        options.setdefault("device", self.device)
        return type(self)(**options)

    # -- control flow -----------------------------------------------------------
    def jit(self, fn: Callable, **kwargs) -> Callable:
        """Compile ``fn`` where the framework can; the identity on eager backends."""
        return fn

    def fori_loop(self, lower: int, upper: int, body: Callable, init, *, progress=None):
        """``for i in range(lower, upper): state = body(i, state)``.

        ``progress`` (a description string) shows a tqdm bar on eager backends.
        """
        steps = range(lower, upper)
        if progress:
            from tqdm.auto import tqdm

            # disable=None: no bar when stderr is not a terminal (CI logs).
            steps = tqdm(steps, desc=str(progress), leave=False, disable=None)
        state = init
        for i in steps:
            state = body(i, state)
        return state

    def scan(self, body: Callable, init, xs, length: int | None = None):
        """``jax.lax.scan`` semantics: ``carry, y = body(carry, x)`` over the leading axis of
        ``xs`` (or ``length`` steps of None); the ys stacked (a tuple of ys, each stacked)."""
        carry, ys = init, []
        items = xs if xs is not None else [None] * int(length)
        for x in items:
            carry, y = body(carry, x)
            ys.append(y)
        if not ys or ys[0] is None:
            return carry, None
        if isinstance(ys[0], tuple):
            return carry, tuple(self.xp.stack(list(col)) for col in zip(*ys))
        return carry, self.xp.stack(ys)

    def while_loop(self, cond: Callable, body: Callable, init):
        """``while cond(state): state = body(state)``."""
        state = init
        while bool(cond(state)):
            state = body(state)
        return state

    def __repr__(self) -> str:
        dev = "" if self.device is None else f", device={self.device!r}"
        flags = ("" if self.eager else ", compiled loops") + (", portable" if self.portable else "")
        return f"<scorecore backend {self.name!r}{dev}{flags}>"


class MissingBackendError(ImportError):
    """A backend was asked for whose framework is not installed."""


class BackendUnavailableError(RuntimeError):
    """A backend's framework imports but cannot run here (no GPU for CuPy, say)."""


def host_draw(kind: str, key, shape, dtype_name: str, offset: int = 0):
    """The NumPy backend's draw (``kind`` of 'normal', 'uniform', 'rademacher'): portable noise."""
    import array_api_compat.numpy as npx

    return getattr(_random, kind)(npx, key, shape, getattr(npx, dtype_name), offset=offset)


def portable(backend: str | Backend) -> Backend:
    """``backend`` with portable noise: every draw is the NumPy backend's draw for the same
    (Python-int) key, moved to the device, so noise is bit-identical on every backend.

    For conformance tests and cross-backend comparisons; it costs a host-to-device copy
    per draw (on JAX under ``jit``, a host callback).
    """
    be = copy.copy(get_backend(backend))
    be.portable = True
    return be


def convert(x, to: str | Backend):
    """``x`` as an array of backend ``to`` through DLPack: zero-copy on a shared device."""
    return get_backend(to).from_dlpack(x)


def _host_copy(x):
    """A host (NumPy-convertible) view of an array of any framework, for cross-device copies."""
    for attr in ("get", "cpu"):  # CuPy's .get(), torch's .cpu()
        if hasattr(x, attr) and not hasattr(x, "__array_interface__"):
            return getattr(x, attr)()
    return x


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of the registered backends whose framework imports."""
    names = []
    for name in sorted(set(_entry_points()) | set(_SHIPPED)):
        try:
            get_backend(name)
        except (ImportError, RuntimeError):
            continue
        names.append(name)
    return names


def get_backend(backend: str | Backend | None = None) -> Backend:
    """The ``Backend`` named ``backend`` (default ``"numpy"``), or ``backend`` itself."""
    if backend is None:
        backend = "numpy"
    if isinstance(backend, Backend):
        return backend
    validation.instance("backend", backend, str, "a name or a Backend")
    eps = _entry_points()
    if backend not in eps and backend not in _SHIPPED:
        known = ", ".join(sorted(set(eps) | set(_SHIPPED)))
        raise ValueError(f"backend {backend!r} is not registered; registered backends: {known}")
    try:
        # Shipped backends also load from a source checkout that was never installed.
        obj = eps[backend].load() if backend in eps else import_module(f"scorecore_{backend}").backend
    except ImportError as exc:
        package, extra = _SHIPPED.get(backend, (backend, None))
        hint = f"pip install 'scorecore[{extra}]'" if extra else f"pip install {package}"
        raise MissingBackendError(
            f"backend {backend!r} needs the package {package!r}, which is not installed "
            f"({exc}); install it with: {hint}"
        ) from exc
    return obj() if callable(obj) and not isinstance(obj, Backend) else obj


__all__ = [
    "ENTRY_POINT_GROUP", "Backend", "BackendUnavailableError", "MissingBackendError", "available_backends",
    "convert", "get_backend", "host_draw", "portable",
]
