"""Score networks in PyTorch: the time-conditioned MLP and a small DDPM++/NCSN++-style U-Net.

Both networks name and lay out their parameters as the core's flat checkpoint format
(``scorecore.checkpoint``): ``state_dict()`` keys are those names and weights are in
torch's layout (Linear (out, in), Conv2d (out, in, kh, kw)). ``ScoreMLP`` computes the
same function as the Array API :class:`scorecore.models.MLP` and as
``scorecore_jax.networks.ScoreMLP`` for the same weights; ``ScoreUNet`` the same as
``scorecore_jax.networks.ScoreUNet``. Move weights with :func:`to_state_dict` /
:func:`from_state_dict` and ``scorecore.checkpoint.save/load``.

Networks are called ``net(x, t)`` with ``t`` a number, a 0-D tensor or an (n,) tensor,
and return an array shaped like ``x``: a score, or an ε / denoiser output to convert
with ``scorecore.models`` (``score_from_eps``, ``score_from_denoiser``, ...).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from scorecore import validation


def _time(t, x):
    """``t`` as a (n,) tensor of ``x``'s dtype and device."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"t must be a number, 0-D or shape ({x.shape[0]},), got shape {tuple(t.shape)}")
    return t.expand(x.shape[0])


class GaussianFourier(nn.Module):
    """Gaussian Fourier features of time (Song et al. 2021): [sin(2π t W), cos(2π t W)],
    W ~ N(0, scale²) of size embed_dim/2, fixed (a buffer, not a parameter)."""

    def __init__(self, embed_dim: int, scale: float):
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin and cos halves), got {embed_dim}")
        self.register_buffer("W", torch.randn(embed_dim // 2) * scale)

    def forward(self, t):
        angle = (2 * math.pi) * t[:, None] * self.W[None, :]
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class ScoreMLP(nn.Module):
    """hₗ = silu(Wₗ hₗ₋₁ + bₗ + Uₗ e), e = silu(A f(t) + a), out = W_out h_L + b_out.

    The architecture of :class:`scorecore.models.MLP` (see its docstring), with the
    same constructor arguments (``self.config``) and parameter names.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 2, embed_dim: int = 32,
                 fourier_scale: float = 16.0, *, out_dim: int | None = None):
        super().__init__()
        for name, v in (("dim", dim), ("hidden", hidden), ("depth", depth), ("embed_dim", embed_dim)):
            validation.positive_int(name, v)
        self.config = dict(dim=dim, hidden=hidden, depth=depth, embed_dim=embed_dim,
                           fourier_scale=float(fourier_scale))
        self.event_shape = (dim,)
        self.fourier = GaussianFourier(embed_dim, fourier_scale)
        self.time_dense = nn.Linear(embed_dim, hidden)
        self.layers = nn.ModuleList([nn.Linear(dim if l == 0 else hidden, hidden) for l in range(depth)])
        self.time_proj = nn.ModuleList([nn.Linear(hidden, hidden, bias=False) for _ in range(depth)])
        self.out = nn.Linear(hidden, dim if out_dim is None else out_dim)

    def forward(self, x, t):
        if x.ndim != 2 or x.shape[1] != self.config["dim"]:
            raise ValueError(f"x must have shape (n, {self.config['dim']}), got {tuple(x.shape)}")
        e = F.silu(self.time_dense(self.fourier(_time(t, x))))
        h = x
        for layer, proj in zip(self.layers, self.time_proj):
            h = F.silu(layer(h) + proj(e))
        return self.out(h)


class ResBlock(nn.Module):
    """BigGAN/DDPM++ residual block: h = conv(silu(GN(x))) + Dense(silu(temb)),
    h = conv(silu(GN(h))), out = (skip(x) + h)/√2 (skip a 1×1 conv when channels change)."""

    def __init__(self, cin: int, cout: int, temb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return ((x if self.skip is None else self.skip(x)) + h) / math.sqrt(2.0)


class Attention(nn.Module):
    """Single-head self-attention over the H·W positions: softmax(q kᵀ/√C) v, residual /√2."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-5)
        self.q, self.k, self.v, self.proj = (nn.Linear(channels, channels) for _ in range(4))

    def forward(self, x):
        n, c, hh, ww = x.shape
        h = self.norm(x).reshape(n, c, hh * ww).transpose(1, 2)  # (n, HW, C)
        w = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / math.sqrt(c), dim=-1)
        o = self.proj(w @ self.v(h)).transpose(1, 2).reshape(n, c, hh, ww)
        return (x + o) / math.sqrt(2.0)


class ScoreUNet(nn.Module):
    """A small U-Net for images (n, C, H, W) in the spirit of DDPM++/NCSN++ (Song et al. 2021).

    Gaussian Fourier features of t → two dense layers (4·channels) → added in every
    residual block; per level ``num_res_blocks`` ResBlocks at ``channels·channel_mult[i]``
    channels, then a stride-2 conv down; a middle ResBlock–attention–ResBlock at the
    lowest resolution; the mirror path up (nearest ×2 + conv) with skip connections
    concatenated; GroupNorm–SiLU–conv out. H and W must be divisible by 2^(levels−1).
    """

    def __init__(self, in_channels: int = 3, channels: int = 32, channel_mult=(1, 2, 2),
                 num_res_blocks: int = 1, groups: int = 8, embed_dim: int = 64,
                 fourier_scale: float = 16.0):
        super().__init__()
        channel_mult = tuple(channel_mult)
        for name, v in (("in_channels", in_channels), ("channels", channels),
                        ("num_res_blocks", num_res_blocks), ("groups", groups), ("embed_dim", embed_dim)):
            validation.positive_int(name, v)
        if not channel_mult:
            raise ValueError(f"channel_mult must be a non-empty sequence of positive ints, got {channel_mult!r}")
        channel_mult = tuple(validation.positive_int(f"channel_mult[{i}]", m) for i, m in enumerate(channel_mult))
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        self.config = dict(in_channels=in_channels, channels=channels, channel_mult=channel_mult,
                           num_res_blocks=num_res_blocks, groups=groups, embed_dim=embed_dim,
                           fourier_scale=float(fourier_scale))
        temb = 4 * channels
        self.fourier = GaussianFourier(embed_dim, fourier_scale)
        self.time_dense0 = nn.Linear(embed_dim, temb)
        self.time_dense1 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        down, downsamples, skips, c = [], [], [channels], channels
        for i, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                down.append(ResBlock(c, channels * mult, temb, groups))
                c = channels * mult
                skips.append(c)
            if i < len(channel_mult) - 1:
                downsamples.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.down_blocks, self.downsamples = nn.ModuleList(down), nn.ModuleList(downsamples)
        self.mid1 = ResBlock(c, c, temb, groups)
        self.mid_attn = Attention(c, groups)
        self.mid2 = ResBlock(c, c, temb, groups)
        up, upsamples = [], []
        for i, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                up.append(ResBlock(c + skips.pop(), channels * mult, temb, groups))
                c = channels * mult
            if i > 0:
                upsamples.append(nn.Conv2d(c, c, 3, padding=1))
        self.up_blocks, self.upsamples = nn.ModuleList(up), nn.ModuleList(upsamples)
        self.out_norm = nn.GroupNorm(groups, c, eps=1e-5)
        self.out_conv = nn.Conv2d(c, in_channels, 3, padding=1)

    def forward(self, x, t):
        levels, nrb = len(self.config["channel_mult"]), self.config["num_res_blocks"]
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"x must have shape (n, {self.config['in_channels']}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 2 ** (levels - 1) or x.shape[3] % 2 ** (levels - 1):
            raise ValueError(f"x's height and width must be divisible by {2 ** (levels - 1)}, got {tuple(x.shape[2:])}")
        temb = self.time_dense1(F.silu(self.time_dense0(self.fourier(_time(t, x)))))
        h = self.conv_in(x)
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
                h = next(blocks)(torch.cat([h, hs.pop()], dim=1), temb)
            if i > 0:
                h = next(ups)(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


def to_state_dict(module: nn.Module) -> dict:
    """The module's parameters and buffers as ``{name: numpy array}`` (host copies)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def from_state_dict(module: nn.Module, state: dict) -> nn.Module:
    """Load ``{name: numpy array}`` into ``module`` (in place; cast to its dtype) and return it.

    Names and shapes must match exactly: a ValueError lists what differs.
    """
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"state does not fit {type(module).__name__}: missing {missing}, unexpected {extra}")
    bad = [f"{k}: {tuple(np.shape(state[k]))} vs {tuple(own[k].shape)}" for k in own
           if tuple(np.shape(state[k])) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"state has wrong shapes for {type(module).__name__}: {bad}")
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})  # copies
    return module
