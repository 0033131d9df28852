"""The counter-based normal generator with its integer half fused by ``torch.compile``.

Eager, :func:`scorecore.random.normal` dispatches about 30 int64 ops per draw (the
SplitMix64 rounds on a fresh buffer each). Compiled, those rounds and the conversion to
uniforms are one kernel: they are exact integer work plus one rounding, so the fused
kernel's bits equal the eager ones whatever its vectorisation. log/cos/sin stay eager:
inductor's CPU kernels evaluate a vector body and a scalar tail with different libm
routines, whose last bits differ, so a compiled Box–Muller would make a row's normal
depend on where the batch ends (measured: a one-row draw 1 ulp off the same row of a
1,001-row draw).

The key and the counter base are 0-D int64 tensors and the shape is dynamic, so one
compiled kernel serves every key, step, offset and batch size (per dtype and device).
"""

from __future__ import annotations

import functools

import array_api_compat.torch as xp_torch
import torch

from scorecore import random as _random


@functools.cache
def _fused_uniforms(device: torch.device):
    def uniforms(k, base, rows: int, pairs: int, dtype):
        return _random.normal_uniforms(xp_torch, k, base, rows, pairs, dtype, device)

    return torch.compile(uniforms, dynamic=True, fullgraph=True)


def normal(key: int, shape, dtype, *, offset: int, device: torch.device):
    """:func:`scorecore.random.normal` on ``device``, bit for bit, through the fused kernel."""
    rows, width = _random._event_size(shape)
    pairs = (width + 1) // 2
    k = torch.tensor(_random._signed(key), dtype=torch.int64, device=device)
    base = torch.tensor(offset * 2 * pairs, dtype=torch.int64, device=device)
    u1, angle = _fused_uniforms(device)(k, base, rows, pairs, dtype)
    return _random.box_muller(xp_torch, u1, angle, shape)
