"""Counter-based random numbers in the Array API, batch invariant by construction.

A key is a Python int (an unsigned 64-bit word held on the host). Every draw is a
pure function of ``(key, row, element)``: row ``i`` of an ``(n, *event)`` draw is
the same whether it is drawn alone, in a batch of 10, or in a batch of 10,000 at
offset ``i``. Sharded or chunked runs therefore equal one big run.

The bits come from the SplitMix64 stream (Steele, Lea & Flood 2014):
``state_c = key + c·γ`` with γ = 0x9E3779B97F4A7C15 and output
``mix64(state_c)``; SplitMix64 is that map evaluated at consecutive counters, so
the counter form inherits its statistical quality (it passes BigCrush). It is
written with int64 and masked logical shifts, because unsigned 64-bit arithmetic is
missing on torch and optional in the standard: int64 multiplication wraps modulo
2⁶⁴ on every backend, which is bit-for-bit the unsigned product.

Normals use Box–Muller on pairs of uniforms, both the cosine and the sine branch.
"""

from __future__ import annotations

import math

from . import validation

MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _signed(v: int) -> int:
    """The int64 with the same bits as the uint64 ``v``."""
    v &= MASK64
    return v - (1 << 64) if v >= (1 << 63) else v


def mix64(z: int) -> int:
    """SplitMix64's finaliser on a host integer: the key derivation of ``fold_in``."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & MASK64
    return z ^ (z >> 31)


def key(seed: int) -> int:
    """A key from a non-negative integer seed: ``mix64(seed + γ)``."""
    seed = validation.integer("seed", seed, lo=0)
    return mix64(seed + _GAMMA)


def fold_in(k: int, data: int) -> int:
    """A new key from ``k`` and an integer ``data`` (step index, sample block, ...)."""
    return mix64(mix64(k ^ (int(data) & MASK64)) + _GAMMA)


def split(k: int, num: int = 2) -> list[int]:
    """``num`` independent keys derived from ``k``."""
    return [fold_in(k, (1 << 62) + i) for i in range(num)]


def _srl(xp, x, s: int):
    """Logical right shift of int64 ``x`` by ``s`` bits (``>>`` is arithmetic on signed ints)."""
    out = x >> s
    out &= (1 << (64 - s)) - 1
    return out


def _mix64_array(xp, z):
    """SplitMix64's finaliser on an int64 array the caller owns (updated in place where the
    framework allows: one buffer instead of eleven temporaries; JAX rebinds)."""
    for shift, mult in ((30, _signed(_MIX1)), (27, _signed(_MIX2))):
        z ^= _srl(xp, z, shift)
        z *= mult
    z ^= _srl(xp, z, 31)
    return z


def _bits(xp, k, base, rows: int, width: int, device):
    """SplitMix64 words for counters ``base + flat index``, shape (rows, width).

    ``k`` (the key as a signed int64) and ``base`` may be host ints or 0-D int64 arrays, so
    that a compiled caller can pass them as arguments instead of baking them into its code."""
    c = xp.arange(rows * width, dtype=xp.int64, device=device)
    c += base
    c *= _signed(_GAMMA)
    c += k
    return xp.reshape(_mix64_array(xp, c), (rows, width))


def _unit_interval(xp, bits, dtype, open_at_zero: bool):
    """Uniforms in [0, 1) (or (0, 1]) from the top 53 (float64) or 24 (float32) bits."""
    mbits = 53 if dtype == xp.float64 else 24
    u = xp.astype(_srl(xp, bits, 64 - mbits), dtype)
    if open_at_zero:
        u += 1.0
    u *= 2.0**-mbits
    return u


def _event_size(shape) -> tuple[int, int]:
    if len(shape) == 0:
        raise ValueError("shape must have a leading batch axis, got ()")
    rows = int(shape[0])
    width = math.prod(int(s) for s in shape[1:])
    return rows, width


def uniform(xp, k: int, shape, dtype, *, offset: int = 0, device=None):
    """U[0, 1) draws; row ``i`` depends only on ``(k, offset + i)``."""
    rows, width = _event_size(shape)
    u = _unit_interval(xp, _bits(xp, _signed(k), offset * width, rows, width, device), dtype, False)
    return xp.reshape(u, tuple(shape))


def rademacher(xp, k: int, shape, dtype, *, offset: int = 0, device=None):
    """±1 with probability ½ each (from the top bit); row-wise batch invariant."""
    rows, width = _event_size(shape)
    top = _srl(xp, _bits(xp, _signed(k), offset * width, rows, width, device), 63)
    v = xp.astype(top, dtype) * 2.0 - 1.0
    return xp.reshape(v, tuple(shape))


def normal_uniforms(xp, k, base, rows: int, pairs: int, dtype, device=None):
    """The integer half of :func:`normal`: u₁ ∈ (0, 1] and the angle 2πu₂ ∈ [0, 2π), each
    (rows, pairs), from the counters ``base`` + flat index (``k`` signed, as :func:`_bits`).

    Exact integer work and one rounding (the angle's), so any code path — a compiled,
    vectorised kernel included — gives the same bits as this one."""
    bits = _bits(xp, k, base, rows, 2 * pairs, device)
    u1 = _unit_interval(xp, bits[:, :pairs], dtype, True)
    angle = _unit_interval(xp, bits[:, pairs:], dtype, False)
    angle *= 2.0 * math.pi
    return u1, angle


def box_muller(xp, u1, angle, shape):
    """z = √(−2 log u₁)·(cos θ, sin θ), interleaved and cut to ``shape``: the float half of
    :func:`normal`, kept in the framework's own kernels, whose results do not depend on the
    batch size (a vectorised loop and its scalar tail can round log/cos/sin differently)."""
    rows, width = _event_size(shape)
    radius = xp.log(u1)
    radius *= -2.0
    radius = xp.sqrt(radius)
    cos, sin = xp.cos(angle), xp.sin(angle)
    cos *= radius
    sin *= radius
    z = xp.stack([cos, sin], axis=-1)
    z = xp.reshape(z, (rows, 2 * u1.shape[1]))[:, :width]
    return xp.reshape(z, tuple(shape))


def normal(xp, k: int, shape, dtype, *, offset: int = 0, device=None):
    """Standard normal draws by Box–Muller, z = √(−2 log u₁)·(cos 2πu₂, sin 2πu₂).

    Row ``i`` depends only on ``(k, offset + i)``. In float32 the uniforms carry 24
    bits, so |z| ≤ √(2·24·log 2) ≈ 5.8 (a tail mass of 7·10⁻⁹ is cut off).
    """
    rows, width = _event_size(shape)
    pairs = (width + 1) // 2
    u1, angle = normal_uniforms(xp, _signed(k), offset * 2 * pairs, rows, pairs, dtype, device)
    return box_muller(xp, u1, angle, shape)
