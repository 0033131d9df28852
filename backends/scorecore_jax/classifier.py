"""Time-dependent classifiers p_t(y | x(t)) in JAX (Flax NNX), and their training on noisy data.

The JAX twins of ``scorecore_torch.classifier`` (same architectures and parameter names):
trained with the cross-entropy −log p_t(y | m(t) x(0) + s(t) z), t ~ U(eps, T), by optax's
Adam under one ``nnx.jit``-compiled step. Pass a trained classifier to
``scorecore.conditional.classifier_guidance(score, net, labels, backend="jax")``; its
gradient comes from ``jax.grad`` (traced with the whole sampler under ``jax.jit``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from scorecore import validation

from .networks import GaussianFourier, ScoreMLP, _HostInit, _time


class TimeClassifierMLP(ScoreMLP):
    """logits = W_out h_L, hₗ = silu(Wₗ hₗ₋₁ + Uₗ e), e = silu(A [sin, cos](2π t W)); x (n, dim)."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128, depth: int = 2, embed_dim: int = 32,
                 fourier_scale: float = 4.0, *, seed: int = 0):
        super().__init__(dim, hidden, depth, embed_dim, fourier_scale, seed=seed, out_dim=n_classes)


class TimeClassifierConv(nnx.Module):
    """The small conv net of ``scorecore_torch.classifier.TimeClassifierConv`` for NCHW images."""

    def __init__(self, in_channels: int, n_classes: int, channels: int = 32, embed_dim: int = 32,
                 fourier_scale: float = 4.0, *, seed: int = 0):
        init = _HostInit(seed)
        self.fourier = GaussianFourier(embed_dim, fourier_scale, init)
        self.time_dense = init.linear(embed_dim, channels * 2)
        outs = (channels, channels, 2 * channels, 2 * channels)
        ins = (in_channels,) + outs[:-1]
        self.convs = nnx.List([init.conv(ci, co, 3, stride=2 if i == 2 else 1) for i, (ci, co) in enumerate(zip(ins, outs))])
        self.temb = nnx.List([init.linear(channels * 2, co) for co in outs])
        self.norms = nnx.List([init.norm(co, 8) for co in outs])
        self.head = init.linear(2 * channels, n_classes)

    def __call__(self, x, t):
        e = jax.nn.silu(self.time_dense(self.fourier(_time(t, x))))
        h = jnp.transpose(x, (0, 2, 3, 1))  # NHWC inside
        for conv, proj, norm in zip(self.convs, self.temb, self.norms):
            h = jax.nn.silu(norm(conv(h) + proj(e)[:, None, None, :]))
        return self.head(jnp.mean(h, axis=(1, 2)))


def train_classifier(net: nnx.Module, sde, x, labels, *, steps: int = 2000, batch_size: int = 256,
                     lr: float = 2e-3, eps: float = 1e-3, seed: int = 0, progress: bool = False) -> list[float]:
    """Minimise E_{t ~ U(eps, T), x(0), z} [−log p_t(y | m(t) x(0) + s(t) z)] with Adam (cosine
    learning-rate decay), updating ``net`` in place. Batches, times and noise come from
    ``jax.random.key(seed)``. Returns the loss per step."""
    steps = validation.steps("steps", steps)
    eps = validation.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True)
    batch_size = validation.positive_int("batch_size", batch_size)
    lr = validation.positive_float("lr", lr)
    seed = validation.integer("seed", seed, lo=0)
    x = jnp.asarray(np.asarray(x), dtype=jnp.float32)
    y = jnp.asarray(np.asarray(labels), dtype=jnp.int32)
    validation.array_shape("labels", y, (x.shape[0],))
    opt = nnx.Optimizer(net, optax.adam(optax.cosine_decay_schedule(lr, steps)), wrt=nnx.Param)

    @nnx.jit
    def step(net, opt, key):
        k_i, k_t, k_z = jax.random.split(key, 3)
        idx = jax.random.randint(k_i, (batch_size,), 0, x.shape[0])
        t = eps + (sde.T - eps) * jax.random.uniform(k_t, (batch_size,))
        xt = sde.perturb(x[idx], t, jax.random.normal(k_z, x[idx].shape))

        def loss_fn(net):
            return optax.softmax_cross_entropy_with_integer_labels(net(xt, t), y[idx]).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(net)
        opt.update(net, grads)
        return loss

    key = jax.random.key(seed)
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="classifier")
    return [float(step(net, opt, jax.random.fold_in(key, i))) for i in it]
