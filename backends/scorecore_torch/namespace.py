"""array-api-compat's torch namespace, calling torch's own function where it gives the
standard's answer for the arguments at hand.

An eager adaptive solve makes some fifty small array ops per evaluation of the model, and each
of array-api-compat's wrappers (Python scalars turned into tensors, the dtype of a 0-D operand
fixed up) adds 0.4–1 µs to a 1–3 µs kernel on a 64 × 17 tensor, one CPU thread. The functions
here go straight to torch when the operands are tensors of one dtype (``where`` also with a
Python scalar; ``clip`` with Python-number bounds on a float tensor; ``sum`` over one axis of a
float tensor; ``concat`` along an int axis): there array-api-compat's
wrapper ends in the same torch call with the same operands. ``isfinite`` and ``take`` reach the
same result in fewer kernels. Any other call goes to array-api-compat, so every result is
array-api-compat's.
"""

from __future__ import annotations

import math
import types

import array_api_compat.torch as compat
import torch

Tensor = torch.Tensor


def _one_dtype(x1, x2) -> bool:
    return type(x1) is Tensor and type(x2) is Tensor and x1.dtype == x2.dtype


def where(condition, x1, x2, /):
    # compat only changes two tensors of different dtypes (one 0-D); torch promotes a Python scalar as the standard does
    if type(x1) is Tensor and type(x2) is Tensor and x1.dtype != x2.dtype:
        return compat.where(condition, x1, x2)
    return torch.where(condition, x1, x2)


def _binary(direct, wrapped):
    def f(x1, x2, /):
        return direct(x1, x2) if _one_dtype(x1, x2) else wrapped(x1, x2)

    f.__name__, f.__doc__ = wrapped.__name__, wrapped.__doc__
    return f


maximum = _binary(torch.maximum, compat.maximum)
minimum = _binary(torch.minimum, compat.minimum)
logical_and = _binary(torch.logical_and, compat.logical_and)
logical_or = _binary(torch.logical_or, compat.logical_or)


def _bound(b) -> bool:
    return b is None or (type(b) in (float, int) and not math.isnan(b))


def clip(x, /, min=None, max=None):
    if type(x) is Tensor and x.is_floating_point() and _bound(min) and _bound(max) and (min, max) != (None, None):
        return torch.clamp(x, min, max)
    return compat.clip(x, min, max)


def sum(x, /, *, axis=None, dtype=None, keepdims=False):
    # compat's ends in torch.sum(x, axis, ...) for an int axis; an int tensor's default dtype is compat's to decide
    if type(axis) is int and dtype is None and type(x) is Tensor and x.is_floating_point():
        return torch.sum(x, axis, keepdim=keepdims)
    return compat.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)


def concat(arrays, /, *, axis=0):
    # compat's ends in torch.concat(arrays, axis) for an int axis
    if type(axis) is int:
        return torch.concat(arrays, axis)
    return compat.concat(arrays, axis=axis)


def isfinite(x, /):
    # torch's is four kernels on a float tensor (abs, ne, eq, mul); x − x is 0 exactly where x is finite
    if type(x) is Tensor and x.is_floating_point():
        return (x - x) == 0
    return compat.isfinite(x)


def take(x, indices, /, *, axis=None):
    # compat maps negative indices to non-negative ones first (three more kernels a call); on the CPU
    # index_select raises for any index out of [0, n) (IndexError on axis 0, RuntimeError on others),
    # and then compat takes over, with its result or its error.
    if axis is not None and type(x) is Tensor and x.device.type == "cpu":
        try:
            return torch.index_select(x, axis, indices)
        except (IndexError, RuntimeError):
            pass
    return compat.take(x, indices, axis=axis)


def scorecore_stage(y, hx, weights, ks):
    """y + h Σ_j w_j k_j (h Σ_j w_j k_j for y None) over the nonzero Python-float weights w_j: a
    Runge–Kutta stage (``scorecore.samplers.tableaus``), each term and the scaling one kernel
    (add with ``alpha``, addcmul) where the standard's operators make two: 16 → 10 µs for five
    terms on 64 × 17 float64, one CPU thread."""
    out = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            out = w * k if out is None else torch.add(out, k, alpha=w)
    return hx * out if y is None else torch.addcmul(y, hx, out)


#: The namespace: array-api-compat's torch module with the functions above in place of its own.
xp = types.ModuleType("scorecore_torch.xp", compat.__doc__)
xp.__dict__.update({k: v for k, v in vars(compat).items() if not k.startswith("__") or k == "__array_api_version__"})
xp.__dict__.update(where=where, maximum=maximum, minimum=minimum, logical_and=logical_and, logical_or=logical_or,
                   clip=clip, sum=sum, concat=concat, isfinite=isfinite, take=take,
                   scorecore_stage=scorecore_stage)

__all__ = ["xp"]
