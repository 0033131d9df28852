"""Compile once: the key under which a compiled sampling run is kept, and models whose
parameters enter that run as arguments.

A compiled run (``jax.jit`` of the whole loop) bakes into its trace everything its closure
reads: the sampler's options, the SDE, the shape, dtype, first row, ``eps`` and the model. Two
``sc.sample`` calls may share one compiled run exactly when all of those agree, so the key is
built from them — by value where an object defines equality (frozen dataclasses: samplers,
SDEs), by structure where it does not (a plain object is its type and its attributes, two
levels deep, so two ``target.score_model(sde)`` of the same target agree), and by identity
for anything else (arrays, functions), whose reference the cache keeps alive so an id is
never reused while its entry lives. A model is taken to be immutable between calls: one whose
NumPy array attribute is changed *in place* keeps its key and would reuse the old trace (give
it a new array, or pass weights as a pytree / NNX module, whose values are arguments);
``clear()`` forgets every kept run.

A model the backend can split into (structure, parameters) — a Flax NNX module, a JAX pytree
(the JAX backend's ``split_model``) — is keyed by its structure only and becomes a
:class:`ParamModel`: its parameters are an argument of the compiled run, so new weights reuse
the trace, as the seed (a key argument) does.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections import OrderedDict

#: How many compiled runs are kept (least recently used dropped first).
MAX_RUNS = 32

_RUNS: OrderedDict = OrderedDict()

_OPAQUE = (types.FunctionType, types.BuiltinFunctionType, functools.partial, type, types.ModuleType)


def token(obj, keep: list, depth: int = 2):
    """A hashable stand-in for ``obj``: the object itself where it hashes by value, its type
    and attributes where it hashes by identity (``depth`` levels deep), else its id (``obj``
    appended to ``keep``)."""
    if (depth > 0 and type(obj).__hash__ is object.__hash__ and hasattr(obj, "__dict__")
            and not isinstance(obj, _OPAQUE)):
        return (type(obj), tuple((k, token(v, keep, depth - 1)) for k, v in sorted(vars(obj).items())))
    if type(obj) is tuple:  # a list is mutable: by identity
        return (tuple, tuple(token(v, keep, depth) for v in obj))
    try:
        hash(obj)
        return obj
    except TypeError:
        keep.append(obj)
        return ("id", id(obj))


class ParamModel:
    """``rebuild(params)`` as a score model whose ``params`` are read when the run is traced.

    Eagerly it is the model rebuilt from its own parameters; inside a compiled run the driver
    binds the traced parameters (:meth:`bound`), so the trace holds no weights."""

    def __init__(self, rebuild, params, event_shape=None, name: str = "model"):
        self.rebuild, self.params, self.event_shape = rebuild, params, event_shape
        self._live = None
        self.__name__ = name  # errors name the user's model, not this wrapper

    @contextlib.contextmanager
    def bound(self, params):
        """Calls inside this block use the model rebuilt from ``params`` (traced arrays)."""
        outer, self._live = self._live, self.rebuild(params)
        try:
            yield
        finally:
            self._live = outer

    def __call__(self, x, t):
        model = self.rebuild(self.params) if self._live is None else self._live
        return model(x, t)


def prepare(model, be):
    """(the model to build the program with, its key token, the objects the key refers to by id)."""
    keep: list = []
    split = getattr(be, "split_model", None)
    parts = split(model) if split is not None else None
    if parts is None:
        return model, token(model, keep), keep
    static, params, rebuild = parts
    name = getattr(model, "__name__", None) or type(model).__name__
    return ParamModel(rebuild, params, getattr(model, "event_shape", None), name), ("params", static), keep


def with_kwargs(built, model_token, keep: list, kwargs: dict, be, n: int):
    """(the model ``x, t -> built(x, t, **kwargs)``, its key token) for a run of ``n`` rows.

    An array among ``kwargs`` is per row (class labels, conditioning): its leading axis must be
    the batch's n, and it becomes a parameter of a :class:`ParamModel`, so a compiled run takes
    it as an argument and new labels reuse the trace; the other values are constants of the
    trace, keyed by value (or identity) like the model. Without kwargs, ``built`` as it is."""
    if not kwargs:
        return built, model_token
    rows, const = {}, {}
    for name, value in kwargs.items():
        if getattr(value, "shape", None) is not None and len(value.shape) >= 1:
            if value.shape[0] != n:
                raise ValueError(f"model_kwargs[{name!r}] must have the batch's {n} rows on its first axis "
                                 f"(a per-row array), got shape {tuple(value.shape)}")
            rows[name] = be.xp.asarray(value, device=be.device)
        else:
            const[name] = value
    inner = built.params if isinstance(built, ParamModel) else None

    def rebuild(params):
        model = built.rebuild(params[0]) if isinstance(built, ParamModel) else built
        return lambda x, t: model(x, t, **const, **params[1])

    name = getattr(built, "__name__", None) or type(built).__name__
    shapes = tuple((k, tuple(v.shape), str(v.dtype)) for k, v in sorted(rows.items()))
    return (ParamModel(rebuild, (inner, rows), getattr(built, "event_shape", None), name),
            ("kwargs", model_token, token(tuple(sorted(const.items())), keep), shapes))


def lookup(key):
    """The cached (program, model) for ``key``, or None; a key that cannot be compared misses."""
    try:
        hit = _RUNS.get(key)
    except (TypeError, ValueError):  # an __eq__ that returns an array, say
        return None
    if hit is not None:
        _RUNS.move_to_end(key)
    return hit


def store(key, program, model, keep):
    try:
        _RUNS[key] = (program, model, keep)
    except (TypeError, ValueError):
        return
    while len(_RUNS) > MAX_RUNS:
        _RUNS.popitem(last=False)


def clear():
    """Forget every kept compiled run."""
    _RUNS.clear()


__all__ = ["MAX_RUNS", "ParamModel", "clear", "lookup", "prepare", "store", "token", "with_kwargs"]
