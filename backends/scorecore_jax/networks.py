"""Score networks in JAX with Flax NNX: the time-conditioned MLP and a small DDPM++-style U-Net.

Why Flax NNX: Flax is the network library JAX users expect (the score_sde code base and
most JAX diffusion code use Flax), and NNX is the API Flax recommends since 0.10 (Linen
is in maintenance mode). NNX modules are Python objects holding their own parameters, like
torch modules, so the two implementations here mirror each other line by line and
their parameters flatten to the same names; they still work under ``jax.jit``,
``jax.grad`` and ``jax.vmap`` through ``nnx.split``/``nnx.merge`` or the ``nnx``
transforms. Equinox was the alternative (pytrees, elegant), but it is not installed
alongside Flax here and is the less common choice for users coming from score_sde.

Parameters flatten (:func:`to_state_dict`) to the core's checkpoint format
(``scorecore.checkpoint``): the names of ``scorecore_torch.networks`` and torch's
layouts, so that weights move between torch, JAX and NumPy through one safetensors file.
Flax keeps Dense kernels (in, out) and Conv kernels (kh, kw, in, out); the conversions
transpose them. The U-Net takes and returns NCHW arrays (scorecore's layout, the same
arrays as torch) and works in NHWC inside, as XLA's convolutions prefer.

Construction takes ``seed=`` (not ``rngs=``): initial weights are drawn with NumPy on the
host (see ``_HostInit``: eager JAX initializers compile one program per shape, which
took minutes for the U-Net on a 2-core CPU). Call the networks under ``nnx.jit`` (or
``jax.jit`` of ``nnx.merge``): eager Flax also compiles op by op.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scorecore import validation


class _HostInit:
    """Initial values drawn with NumPy on the host from one seeded generator.

    Eager JAX initializers compile one XLA program per parameter shape (about 0.1–1 s
    each on a CPU, minutes for a U-Net); host draws moved to the device compile nothing.
    Weights are N(0, 1/fan_in) (LeCun normal), biases 0, GroupNorm scales 1.
    """

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.rngs = nnx.Rngs(seed)  # required by the nnx layers' signatures; unused by these inits

    def kernel(self, key, shape, dtype=jnp.float32):
        fan_in = math.prod(shape[:-1])  # Flax kernels are (..., in, out)
        return jnp.asarray(self.rng.standard_normal(shape) / math.sqrt(fan_in), dtype=dtype)

    def normal(self, shape, scale):
        return jnp.asarray(self.rng.standard_normal(shape) * scale, dtype=jnp.float32)

    @staticmethod
    def zeros(key, shape, dtype=jnp.float32):
        return jnp.asarray(np.zeros(shape), dtype=dtype)

    @staticmethod
    def ones(key, shape, dtype=jnp.float32):
        return jnp.asarray(np.ones(shape), dtype=dtype)

    def linear(self, cin, cout, use_bias=True):
        return nnx.Linear(cin, cout, use_bias=use_bias, kernel_init=self.kernel, bias_init=self.zeros,
                          rngs=self.rngs)

    def conv(self, cin, cout, k, stride=1):
        pad = (k - 1) // 2  # explicit, as torch: 'SAME' pads stride-2 convs asymmetrically
        return nnx.Conv(cin, cout, kernel_size=(k, k), strides=(stride, stride),
                        padding=((pad, pad), (pad, pad)), kernel_init=self.kernel, bias_init=self.zeros,
                        rngs=self.rngs)

    def norm(self, c, groups):
        return nnx.GroupNorm(c, num_groups=groups, epsilon=1e-5, use_fast_variance=False,
                             scale_init=self.ones, bias_init=self.zeros, rngs=self.rngs)


class Buffer(nnx.Variable):
    """A fixed, non-trained array (the Fourier frequencies): not an ``nnx.Param``."""


def _time(t, x):
    t = jnp.asarray(t, dtype=x.dtype)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"t must be a number, 0-D or shape ({x.shape[0]},), got shape {t.shape}")
    return jnp.broadcast_to(t, (x.shape[0],))


class GaussianFourier(nnx.Module):
    """[sin(2π t W), cos(2π t W)], W ~ N(0, scale²) of size embed_dim/2, fixed."""

    def __init__(self, embed_dim: int, scale: float, init: _HostInit):
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin and cos halves), got {embed_dim}")
        self.W = Buffer(init.normal((embed_dim // 2,), scale))

    def __call__(self, t):
        angle = (2 * math.pi) * t[:, None] * self.W[...][None, :]
        return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=1)


class ScoreMLP(nnx.Module):
    """hₗ = silu(Wₗ hₗ₋₁ + bₗ + Uₗ e), e = silu(A f(t) + a), out = W_out h_L + b_out
    (:class:`scorecore.models.MLP`, same constructor arguments and parameter names)."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 2, embed_dim: int = 32,
                 fourier_scale: float = 16.0, *, seed: int = 0, out_dim: int | None = None):
        for name, v in (("dim", dim), ("hidden", hidden), ("depth", depth), ("embed_dim", embed_dim)):
            validation.positive_int(name, v)
        init = _HostInit(seed)
        self.config = dict(dim=dim, hidden=hidden, depth=depth, embed_dim=embed_dim,
                           fourier_scale=float(fourier_scale))
        self.event_shape = (dim,)
        self.fourier = GaussianFourier(embed_dim, fourier_scale, init)
        self.time_dense = init.linear(embed_dim, hidden)
        self.layers = nnx.List([init.linear(dim if l == 0 else hidden, hidden) for l in range(depth)])
        self.time_proj = nnx.List([init.linear(hidden, hidden, use_bias=False) for _ in range(depth)])
        self.out = init.linear(hidden, dim if out_dim is None else out_dim)

    def __call__(self, x, t):
        if x.ndim != 2 or x.shape[1] != self.config["dim"]:
            raise ValueError(f"x must have shape (n, {self.config['dim']}), got {x.shape}")
        e = jax.nn.silu(self.time_dense(self.fourier(_time(t, x))))
        h = x
        for layer, proj in zip(self.layers, self.time_proj):
            h = jax.nn.silu(layer(h) + proj(e))
        return self.out(h)


class ResBlock(nnx.Module):
    """h = conv(silu(GN(x))) + Dense(silu(temb)); h = conv(silu(GN(h))); (skip(x) + h)/√2."""

    def __init__(self, cin, cout, temb_dim, groups, init: _HostInit):
        self.norm1 = init.norm(cin, groups)
        self.conv1 = init.conv(cin, cout, 3)
        self.temb_proj = init.linear(temb_dim, cout)
        self.norm2 = init.norm(cout, groups)
        self.conv2 = init.conv(cout, cout, 3)
        self.skip = init.conv(cin, cout, 1) if cin != cout else None

    def __call__(self, x, temb):
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.temb_proj(jax.nn.silu(temb))[:, None, None, :]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return ((x if self.skip is None else self.skip(x)) + h) / math.sqrt(2.0)


class Attention(nnx.Module):
    """Single-head self-attention over the H·W positions, residual /√2."""

    def __init__(self, channels, groups, init: _HostInit):
        self.norm = init.norm(channels, groups)
        self.q, self.k, self.v, self.proj = (init.linear(channels, channels) for _ in range(4))

    def __call__(self, x):
        n, hh, ww, c = x.shape
        h = self.norm(x).reshape(n, hh * ww, c)
        w = jax.nn.softmax(self.q(h) @ jnp.swapaxes(self.k(h), 1, 2) / math.sqrt(c), axis=-1)
        return (x + self.proj(w @ self.v(h)).reshape(n, hh, ww, c)) / math.sqrt(2.0)


class ScoreUNet(nnx.Module):
    """The U-Net of ``scorecore_torch.networks.ScoreUNet`` (see there), on NCHW arrays."""

    def __init__(self, in_channels: int = 3, channels: int = 32, channel_mult=(1, 2, 2),
                 num_res_blocks: int = 1, groups: int = 8, embed_dim: int = 64,
                 fourier_scale: float = 16.0, *, seed: int = 0):
        channel_mult = tuple(channel_mult)
        for name, v in (("in_channels", in_channels), ("channels", channels),
                        ("num_res_blocks", num_res_blocks), ("groups", groups), ("embed_dim", embed_dim)):
            validation.positive_int(name, v)
        if not channel_mult:
            raise ValueError(f"channel_mult must be a non-empty sequence of positive ints, got {channel_mult!r}")
        channel_mult = tuple(validation.positive_int(f"channel_mult[{i}]", m) for i, m in enumerate(channel_mult))
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        init = _HostInit(seed)
        self.config = dict(in_channels=in_channels, channels=channels, channel_mult=channel_mult,
                           num_res_blocks=num_res_blocks, groups=groups, embed_dim=embed_dim,
                           fourier_scale=float(fourier_scale))
        temb = 4 * channels
        self.fourier = GaussianFourier(embed_dim, fourier_scale, init)
        self.time_dense0 = init.linear(embed_dim, temb)
        self.time_dense1 = init.linear(temb, temb)
        self.conv_in = init.conv(in_channels, channels, 3)
        down, downsamples, skips, c = [], [], [channels], channels
        for i, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                down.append(ResBlock(c, channels * mult, temb, groups, init))
                c = channels * mult
                skips.append(c)
            if i < len(channel_mult) - 1:
                downsamples.append(init.conv(c, c, 3, stride=2))
                skips.append(c)
        self.down_blocks, self.downsamples = nnx.List(down), nnx.List(downsamples)
        self.mid1 = ResBlock(c, c, temb, groups, init)
        self.mid_attn = Attention(c, groups, init)
        self.mid2 = ResBlock(c, c, temb, groups, init)
        up, upsamples = [], []
        for i, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                up.append(ResBlock(c + skips.pop(), channels * mult, temb, groups, init))
                c = channels * mult
            if i > 0:
                upsamples.append(init.conv(c, c, 3))
        self.up_blocks, self.upsamples = nnx.List(up), nnx.List(upsamples)
        self.out_norm = init.norm(c, groups)
        self.out_conv = init.conv(c, in_channels, 3)

    def __call__(self, x, t):
        levels, nrb = len(self.config["channel_mult"]), self.config["num_res_blocks"]
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"x must have shape (n, {self.config['in_channels']}, H, W), got {x.shape}")
        if x.shape[2] % 2 ** (levels - 1) or x.shape[3] % 2 ** (levels - 1):
            raise ValueError(f"x's height and width must be divisible by {2 ** (levels - 1)}, got {x.shape[2:]}")
        temb = self.time_dense1(jax.nn.silu(self.time_dense0(self.fourier(_time(t, x)))))
        h = self.conv_in(jnp.transpose(x, (0, 2, 3, 1)))  # NCHW -> NHWC
        hs = [h]
        blocks = iter(self.down_blocks)
        for i in range(levels):
            for _ in range(nrb):
                h = next(blocks)(h, temb)
                hs.append(h)
            if i < levels - 1:
                h = self.downsamples[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        blocks, ups = iter(self.up_blocks), iter(self.upsamples)
        for i in reversed(range(levels)):
            for _ in range(nrb + 1):
                h = next(blocks)(jnp.concatenate([h, hs.pop()], axis=-1), temb)
            if i > 0:
                h = next(ups)(jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2))
        h = self.out_conv(jax.nn.silu(self.out_norm(h)))
        return jnp.transpose(h, (0, 3, 1, 2))  # NHWC -> NCHW


# -- weights as the core's flat {name: numpy array} ------------------------------------
def _to_torch_layout(path, value):
    """(flat name, array in torch layout) for a Flax variable at ``path``."""
    *head, leaf = (str(p) for p in path)
    if leaf == "kernel":  # Dense (in, out) -> (out, in); Conv (kh, kw, in, out) -> (out, in, kh, kw)
        value = value.T if value.ndim == 2 else np.transpose(value, (3, 2, 0, 1))
        leaf = "weight"
    elif leaf == "scale":  # GroupNorm's γ
        leaf = "weight"
    return ".".join([*head, leaf]), value


def _from_torch_layout(leaf, value):
    if leaf == "kernel":
        return value.T if value.ndim == 2 else np.transpose(value, (2, 3, 1, 0))
    return value


def to_state_dict(module: nnx.Module) -> dict:
    """The module's variables as ``{name: numpy array}`` in the torch names and layouts."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(module)):
        name, value = _to_torch_layout(path, np.asarray(var[...]))
        out[name] = np.ascontiguousarray(value)
    return out


def from_state_dict(module: nnx.Module, state: dict) -> nnx.Module:
    """Load ``{name: numpy array}`` (torch names and layouts) into ``module`` in place, cast to
    each variable's dtype, and return it. Names and shapes must match exactly."""
    flat = nnx.to_flat_state(nnx.state(module))
    names = {_to_torch_layout(path, np.zeros((1,) * np.ndim(var[...])))[0]: path for path, var in flat}
    missing, extra = sorted(set(names) - set(state)), sorted(set(state) - set(names))
    if missing or extra:
        raise ValueError(f"state does not fit {type(module).__name__}: missing {missing}, unexpected {extra}")
    updates = []
    for path, var in flat:
        name = _to_torch_layout(path, np.zeros((1,) * np.ndim(var[...])))[0]
        value = _from_torch_layout(str(path[-1]), np.asarray(state[name]))
        if value.shape != var[...].shape:
            raise ValueError(f"state[{name!r}] has shape {np.shape(state[name])}, which does not fit "
                             f"{type(module).__name__}'s variable of shape {var[...].shape} (Flax layout)")
        updates.append((path, var.replace(jnp.asarray(value, dtype=var[...].dtype))))
    nnx.update(module, nnx.from_flat_state(updates))
    return module
