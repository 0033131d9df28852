"""Argument checks for every public entry point, so that each "must be" reads the same.

Each check takes the argument's *name* (as the caller wrote it) and its value, and returns
the value normalised (a Python int or float) or raises an error of the form
``"<name> must be <what>, got <value>"`` before any work starts: ``ValueError`` for a wrong
number or choice (a string where a number belongs included, as the samplers always did),
``TypeError`` for an object of the wrong kind (:func:`instance`, a model's output). Array checks run on
the host, once per run, never inside a traced step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Iterable

#: Counters in compiled loops are int32: a step count above this would overflow them.
MAX_STEPS = 2**31 - 2


def _fail(name: str, what: str, value, exc=ValueError):
    raise exc(f"{name} must be {what}, got {value!r}")


def integer(name: str, value, *, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (either bound optional); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, "an int", value)
    value = int(value)
    if lo is not None and hi is not None and not lo <= value <= hi:
        _fail(name, f"an int in [{lo}, {hi}]", value)
    if lo is not None and value < lo:
        _fail(name, "a positive int" if lo == 1 else f"an int ≥ {lo}", value)
    if hi is not None and value > hi:
        _fail(name, f"an int ≤ {hi}", value)
    return value


def positive_int(name: str, value) -> int:
    """An int ≥ 1."""
    return integer(name, value, lo=1)


def steps(name: str, value, *, lo: int = 1) -> int:
    """A step count or step budget: an int in [lo, 2³¹ − 2], so no loop counter overflows
    (the message names the bound that was missed)."""
    return integer(name, integer(name, value, lo=lo), hi=MAX_STEPS)


def real(name: str, value, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False, finite: bool = True) -> float:
    """``value`` as a float, finite unless ``finite=False`` (then ±inf pass, NaN never), within
    [lo, hi] (``lo_open``/``hi_open`` make that end open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, "a number", value)
    v = float(value)
    lo_ok = lo is None or (v > lo if lo_open else v >= lo)
    hi_ok = hi is None or (v < hi if hi_open else v <= hi)
    if math.isnan(v) or (finite and math.isinf(v)) or not (lo_ok and hi_ok):
        fin = "a finite number" if finite else "a number"
        bounds = []
        if lo is not None:
            bounds.append(f"{'>' if lo_open else '≥'} {lo:g}")
        if hi is not None:
            bounds.append(f"{'<' if hi_open else '≤'} {hi:g}")
        _fail(name, fin + (" " + " and ".join(bounds) if bounds else ""), value)
    return v


def positive_float(name: str, value, *, finite: bool = True) -> float:
    """A number > 0 (finite unless ``finite=False``)."""
    return real(name, value, lo=0.0, lo_open=True, finite=finite)


def nonneg_float(name: str, value, *, finite: bool = True) -> float:
    """A number ≥ 0 (finite unless ``finite=False``)."""
    return real(name, value, lo=0.0, finite=finite)


def optional(check, name: str, value, **kwargs):
    """``None``, or ``check(name, value)``."""
    return None if value is None else check(name, value, **kwargs)


def choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``."""
    choices = list(choices)
    try:
        ok = value in choices
    except TypeError:  # an unhashable value in a dict's keys
        ok = False
    if not ok:
        _fail(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def named(name: str, value, base: type, registry: dict):
    """``value`` if it is a ``base`` instance, else ``registry[value]()`` for one of its names."""
    if isinstance(value, base):
        return value
    return registry[choice(name, value, sorted(registry))]()


def decreasing(name: str, values, *, hi: float, end_at_zero: bool = True) -> tuple[float, ...]:
    """At least two finite numbers, strictly decreasing, in (0, hi]; the last may be 0 if
    ``end_at_zero``. A sampler's explicit σ levels or times."""
    try:
        v = tuple(float(a) for a in values)
    except (TypeError, ValueError):
        _fail(name, "a sequence of numbers", values)
    what = f"a strictly decreasing sequence of at least 2 numbers in (0, {hi:g}]" + \
        (", the last one possibly 0" if end_at_zero else "")
    pos = v[:-1] if end_at_zero else v
    if (len(v) < 2 or any(not math.isfinite(a) for a in v) or any(b >= a for a, b in zip(v, v[1:]))
            or v[0] > hi or any(a <= 0 for a in pos) or v[-1] < 0):
        _fail(name, what, values)
    return v


def ordered(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    """Raise unless lo < hi: a range given as two arguments (σ_min < σ_max, β_min < β_max)."""
    if not lo < hi:
        raise ValueError(f"{hi_name} must exceed {lo_name}, got {lo_name}={lo!r}, {hi_name}={hi!r}")


def ordered_range(lo_name: str, lo, hi_name: str, hi, *, lo_positive: bool = True) -> tuple[float, float]:
    """(lo, hi) as floats with 0 < lo < hi (0 ≤ lo when not ``lo_positive``): a range given as
    two constructor arguments (σ_min, σ_max; β_min, β_max)."""
    lo = (positive_float if lo_positive else nonneg_float)(lo_name, lo)
    hi = positive_float(hi_name, hi)
    ordered(lo_name, lo, hi_name, hi)
    return lo, hi


def time_in(name: str, value, T: float, *, lo_open: bool = False) -> float:
    """A time in [0, T] (or (0, T] with ``lo_open``), as a float."""
    return real(name, value, lo=0.0, hi=float(T), lo_open=lo_open)


def boolean(name: str, value) -> bool:
    """A bool (NumPy's bool too); an int or a string is refused: ``denoise="no"`` is a mistake."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    _fail(name, "True or False", value, TypeError)


def instance(name: str, value, types, what: str):
    """``value`` if it is an instance of ``types``, else TypeError naming ``what`` was expected."""
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def function(name: str, value, *, signature: str):
    """``value`` if it is callable; TypeError naming the ``signature`` expected otherwise."""
    if not callable(value):
        raise TypeError(f"{name} must be a callable {signature}, got {type(value).__name__}")
    return value


def shape(name: str, value, *, event=None) -> tuple[int, ...]:
    """A sample shape (n, *event) of positive ints, matching ``event`` if known."""
    try:
        value = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints (n, ...), got {value!r}") from None
    if len(value) < 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in value):
        _fail(name, "(n, d, ...) with positive ints", value)
    value = tuple(int(s) for s in value)
    if event is not None and value[1:] != tuple(event):
        raise ValueError(f"{name} {value!r} does not match the model's event shape {tuple(event)!r}: "
                         f"expected (n, {', '.join(map(str, event))})")
    return value


def array_shape(name: str, x, expected: tuple[int, ...]) -> None:
    """Raise unless the array ``x`` has shape ``expected``."""
    got = getattr(x, "shape", None)
    if got is None:
        raise TypeError(f"{name} must be an array of shape {expected}, got {type(x).__name__}")
    if tuple(got) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(got)}")


def host_array(name: str, value, expected: tuple[int | None, ...]):
    """``value`` as a finite float64 NumPy array whose shape matches ``expected`` (None: any size
    on that axis)."""
    import numpy as np

    a = np.asarray(value, dtype=np.float64)
    if a.ndim != len(expected) or any(e is not None and g != e for g, e in zip(a.shape, expected)):
        want = "(" + ", ".join("·" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {int(np.sum(~np.isfinite(a)))} non-finite values")
    return a


def spd_matrices(name: str, a):
    """The eigendecomposition (λ, U) of the host array ``a`` (…, D, D), after checking that it
    holds symmetric positive-definite matrices (symmetric to 1e-12 of its largest entry, every
    λ > 0)."""
    import numpy as np

    if not np.allclose(a, np.swapaxes(a, -1, -2), rtol=0, atol=1e-12 * np.abs(a).max()):
        raise ValueError(f"{name} must be symmetric, got an asymmetry of {np.abs(a - np.swapaxes(a, -1, -2)).max():.3g}")
    lam, U = np.linalg.eigh(a)
    if np.any(lam <= 0):
        raise ValueError(f"{name} must be positive definite, got the eigenvalue {lam.min():.6g}")
    return lam, U


def model_name(model) -> str:
    """How errors name a model: its ``__name__`` (functions), else its class's."""
    return getattr(model, "__name__", None) or type(model).__name__


def model_output(model, out, x, *, what: str = "score") -> None:
    """Check a model's first output against its input x: an array of x's shape and dtype.

    Called once per run on the first evaluation (at trace time on JAX: only shape and
    dtype, which are static). A model returning (n, 1), a 0-D value or float64 in a float32
    run would otherwise be broadcast or passed through silently.
    """
    name = model_name(model)
    shp = getattr(out, "shape", None)
    if shp is None or not hasattr(out, "dtype"):
        raise TypeError(f"model {name} must return an array (its {what} s_θ(x, t)), got {type(out).__name__}")
    if tuple(shp) != tuple(x.shape):
        raise ValueError(f"model {name} must return its {what} with the shape of x, {tuple(x.shape)}, "
                         f"got {tuple(shp)}")
    if out.dtype != x.dtype:
        raise TypeError(f"model {name} must return its {what} in the dtype of x, {x.dtype}, got {out.dtype}")


def host_bool(pred):
    """``bool(pred)``, or None for a value traced by ``jax.jit`` (it has no values to check yet)."""
    try:
        return bool(pred)
    except Exception as e:  # JAX's ConcretizationTypeError and subclasses; anything else is real
        if any(c.__name__ == "ConcretizationTypeError" for c in type(e).__mro__):
            return None
        raise


def array_all(name: str, x, ok, what: str) -> None:
    """Raise ValueError naming ``name`` unless the boolean array ``ok`` (of x's shape) is all True,
    with the count of bad entries and the first one. A host check, once per call; skipped on a
    traced x (inside ``jax.jit``)."""
    import array_api_compat

    xp = array_api_compat.array_namespace(ok)
    if host_bool(xp.all(ok)) is not False:
        return
    bad = xp.reshape(xp.logical_not(ok), (-1,))
    first = int(xp.argmax(xp.astype(bad, xp.int32)))
    count = int(xp.sum(xp.astype(bad, xp.int32)))
    value = float(xp.reshape(x, (-1,))[first]) if tuple(x.shape) == tuple(ok.shape) else None
    at = f", the first {value:.8g} at flat index {first}" if value is not None else f", the first at flat index {first}"
    raise ValueError(f"{name} must be {what}, got {count} value{'s' if count > 1 else ''} that {'are' if count > 1 else 'is'} "
                     f"not{at}")


def finite_array(name: str, x) -> None:
    """Raise unless every value of the array ``x`` is finite (no NaN or inf)."""
    import array_api_compat

    array_all(name, x, array_api_compat.array_namespace(x).isfinite(x), "finite (no NaN or inf)")


def times_array(name: str, t, T: float, *, lo_open: bool = False) -> None:
    """Raise unless every time of the array ``t`` lies in [0, T] (or (0, T] with ``lo_open``)."""
    import array_api_compat

    xp = array_api_compat.array_namespace(t)
    lo_ok = t > 0.0 if lo_open else t >= 0.0
    array_all(name, t, xp.logical_and(lo_ok, t <= float(T)), f"times in {'(' if lo_open else '['}0, T={float(T):g}]")


def batch_array(name: str, x, *, event=None) -> None:
    """Raise unless ``x`` is an array of shape (n, d, ...) with n ≥ 1 (and (n, *event) if given)."""
    import array_api_compat

    if not array_api_compat.is_array_api_obj(x):
        raise TypeError(f"{name} must be an array of shape (n, d, ...), got {type(x).__name__}")
    shp = tuple(x.shape)
    if len(shp) < 2 or shp[0] < 1:
        raise ValueError(f"{name} must be an array of shape (n, d, ...) with n ≥ 1, got shape {shp}")
    if event is not None and shp[1:] != tuple(event):
        raise ValueError(f"{name} must have shape (n, {', '.join(map(str, event))}) (the model's event shape), "
                         f"got {shp}")


def option(default, check, /, *, label: str | None = None, none_ok: bool | None = None, **kwargs):
    """A dataclass field defaulting to ``default`` whose value must pass ``check(label or name,
    value, **kwargs)``; ``None`` passes too if ``none_ok`` (default: when the default is None).
    The check stands beside the option it guards and runs in :meth:`Checked.__post_init__`."""
    bound = functools.partial(check, **kwargs)
    none_ok = default is None if none_ok is None else none_ok
    return dataclasses.field(default=default, metadata={"check": bound, "label": label, "none_ok": none_ok})


@functools.cache
def _checks(cls) -> dict:
    """{field: its option metadata} over ``cls``'s bases too: a subclass that gives an option a
    new default (``n_steps: int = 50``) keeps its base's check."""
    checks = {}
    for c in reversed(cls.__mro__):
        checks.update({k: f.metadata for k, f in vars(c).get("__dataclass_fields__", {}).items()
                       if "check" in f.metadata})
    return checks


class Checked:
    """Base of the dataclasses of options (samplers, controllers): on construction every field
    declared with :func:`option` is checked, in declaration order; a subclass adds the checks that
    relate two fields in its own ``__post_init__`` after ``super().__post_init__()``."""

    def __post_init__(self):
        checks = _checks(type(self))
        for f in dataclasses.fields(self):
            meta, value = checks.get(f.name), getattr(self, f.name)
            if meta is not None and not (value is None and meta["none_ok"]):
                meta["check"](meta["label"] or f.name, value)


__all__ = [
    "Checked", "MAX_STEPS", "array_all", "array_shape", "batch_array", "boolean", "choice", "decreasing", "finite_array",
    "function", "host_array", "host_bool", "instance", "integer", "model_name", "model_output", "named", "nonneg_float", "option",
    "optional", "ordered", "positive_float", "positive_int", "real", "shape", "spd_matrices", "steps", "time_in",
    "times_array",
]
