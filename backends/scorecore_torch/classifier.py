"""Time-dependent classifiers p_t(y | x(t)) in PyTorch, and their training on noisy data.

A classifier for guidance must know the noise level: it is trained on x(t) = m(t) x(0) +
s(t) z, t ~ U(eps, T), with the cross-entropy −log p_t(y | x(t)) (Song et al. 2021, §5 and
App. I.1; there a Wide-ResNet with time embedding, here small networks for vectors and
8×8 images). Both return logits (n, C); pass them to
``scorecore.conditional.classifier_guidance(score, net, labels, backend="torch")``, whose
gradient ∇ₓ log p_t(y | x) comes from ``torch.func.grad``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from scorecore import validation

from .networks import GaussianFourier, ScoreMLP, _time


class TimeClassifierMLP(ScoreMLP):
    """logits = W_out h_L, hₗ = silu(Wₗ hₗ₋₁ + Uₗ e), e = silu(A [sin, cos](2π t W)) — the
    ScoreMLP's architecture with C outputs; x of shape (n, dim)."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128, depth: int = 2, embed_dim: int = 32,
                 fourier_scale: float = 4.0):
        super().__init__(dim, hidden, depth, embed_dim, fourier_scale, out_dim=n_classes)


class TimeClassifierConv(nn.Module):
    """A small conv net for (n, C, 8, 8)-sized images: two 3×3 conv blocks at full resolution,
    a stride-2 conv, one more block, global average pooling, a linear head; the time
    embedding is added (per channel) after every conv, as in the U-Net's residual blocks."""

    def __init__(self, in_channels: int, n_classes: int, channels: int = 32, embed_dim: int = 32,
                 fourier_scale: float = 4.0):
        super().__init__()
        self.fourier = GaussianFourier(embed_dim, fourier_scale)
        self.time_dense = nn.Linear(embed_dim, channels * 2)
        self.convs = nn.ModuleList([
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1),
        ])
        self.temb = nn.ModuleList([nn.Linear(channels * 2, c.out_channels) for c in self.convs])
        self.norms = nn.ModuleList([nn.GroupNorm(8, c.out_channels) for c in self.convs])
        self.head = nn.Linear(2 * channels, n_classes)

    def forward(self, x, t):
        e = F.silu(self.time_dense(self.fourier(_time(t, x))))
        h = x
        for conv, proj, norm in zip(self.convs, self.temb, self.norms):
            h = F.silu(norm(conv(h) + proj(e)[:, :, None, None]))
        return self.head(h.mean(dim=(2, 3)))


def noisy_batch(sde, x0, t, z):
    """x(t) = m(t) x(0) + s(t) z for per-sample times t (n,)."""
    return sde.perturb(x0, t, z)


def train_classifier(net: nn.Module, sde, x, labels, *, steps: int = 2000, batch_size: int = 256,
                     lr: float = 2e-3, eps: float = 1e-3, seed: int = 0, progress: bool = False) -> list[float]:
    """Minimise E_{t ~ U(eps, T), x(0), z} [−log p_t(y | m(t) x(0) + s(t) z)] with Adam.

    ``x`` (N, ...) and ``labels`` (N,) are host arrays (or tensors); batches, times and
    noise come from one ``torch.Generator`` seeded with ``seed``. Returns the loss per step.
    """
    steps = validation.steps("steps", steps)
    eps = validation.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True)
    batch_size = validation.positive_int("batch_size", batch_size)
    lr = validation.positive_float("lr", lr)
    seed = validation.integer("seed", seed, lo=0)
    p = next(net.parameters())
    x = torch.as_tensor(np.asarray(x), dtype=p.dtype, device=p.device)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=p.device)
    validation.array_shape("labels", y, (x.shape[0],))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    net.train()
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="classifier")
    for _ in it:
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen).to(p.device)
        t = (eps + (sde.T - eps) * torch.rand(batch_size, generator=gen, dtype=p.dtype)).to(p.device)
        z = torch.randn((batch_size,) + tuple(x.shape[1:]), generator=gen, dtype=p.dtype).to(p.device)
        loss = F.cross_entropy(net(noisy_batch(sde, x[idx], t, z), t), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach().item())
    net.eval()
    return losses
