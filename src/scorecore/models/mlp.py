"""A time-conditioned MLP for vector data, in Array API code with hand-derived derivatives.

One network for every Array API namespace (NumPy, CuPy, array-api-strict): parameters
are a flat dict of arrays whose names and layouts are those of the torch backend's
``networks.ScoreMLP`` ``state_dict`` (weights are (out, in), as ``torch.nn.Linear``), so weights
move between NumPy, torch and JAX unchanged. The architecture, for x ∈ ℝ^D and t:

    f   = [sin(2π t W), cos(2π t W)]        Gaussian Fourier features (Song et al. 2021),
                                            W ∈ ℝ^{E/2} ~ N(0, scale²), fixed (not trained)
    e   = silu(A f + a)                     time embedding, ℝ^H
    h₀  = x
    hₗ  = silu(Wₗ hₗ₋₁ + bₗ + Uₗ e)          l = 1..L (time added in every layer)
    out = W_out h_L + b_out                 ℝ^D

with silu(z) = z σ(z). On frameworks without autodiff the derivatives are written out:
``jvp`` (∂out/∂x · v), ``vjp_x`` (uᵀ ∂out/∂x), ``vjp_params`` (uᵀ ∂out/∂θ, for
training) and the exact ``divergence`` tr(∂out/∂x), by pushing the identity through
the layers as a batch of tangent matrices: J = W_out diag(σ'_L) W_L ⋯ diag(σ'_1) W_1.
"""

from __future__ import annotations

import math

from .. import validation as check
from .._arrays import as_time, namespace
from ..backend import get_backend


def _silu(z, xp):
    """(silu(z), silu'(z)) with σ(z) = ½(1 + tanh(z/2)), which cannot overflow."""
    sig = 0.5 * (1.0 + xp.tanh(0.5 * z))
    return z * sig, sig * (1.0 + z * (1.0 - sig))


class MLP:
    """The time-conditioned MLP's architecture (no parameters: those are a dict).

    ``dim``: data dimension D (input and output); ``hidden``: width H; ``depth``: number
    L ≥ 1 of hidden layers; ``embed_dim``: E, the (even) number of Fourier features;
    ``fourier_scale``: std of the fixed Fourier frequencies W.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 2, embed_dim: int = 32,
                 fourier_scale: float = 16.0):
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth), ("embed_dim", embed_dim)):
            check.positive_int(name, value)
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin and cos halves), got {embed_dim}")
        check.positive_float("fourier_scale", fourier_scale)
        self.dim, self.hidden, self.depth = dim, hidden, depth
        self.embed_dim, self.fourier_scale = embed_dim, float(fourier_scale)

    def __repr__(self):
        return (f"MLP(dim={self.dim}, hidden={self.hidden}, depth={self.depth}, "
                f"embed_dim={self.embed_dim}, fourier_scale={self.fourier_scale})")

    # -- parameters ------------------------------------------------------------------
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape; ``fourier.W`` is fixed, the rest trainable."""
        D, H, E = self.dim, self.hidden, self.embed_dim
        shapes = {"fourier.W": (E // 2,), "time_dense.weight": (H, E), "time_dense.bias": (H,)}
        for l in range(self.depth):
            shapes[f"layers.{l}.weight"] = (H, D if l == 0 else H)
            shapes[f"layers.{l}.bias"] = (H,)
            shapes[f"time_proj.{l}.weight"] = (H, H)
        shapes["out.weight"] = (D, H)
        shapes["out.bias"] = (D,)
        return shapes

    def trainable(self) -> list[str]:
        """Names of the trained parameters (all but the fixed Fourier frequencies)."""
        return [k for k in self.shapes() if k != "fourier.W"]

    def init(self, backend=None, key=None, *, seed: int = 0, dtype=None) -> dict:
        """Parameters drawn from ``backend``'s RNG: weights N(0, 1/fan_in) (LeCun normal),
        biases 0, Fourier frequencies N(0, scale²)."""
        be = get_backend(backend)
        key = be.key(seed) if key is None else key
        shapes = self.shapes()
        params = {}
        for i, (name, shape) in enumerate(shapes.items()):
            if name.endswith(".bias"):
                params[name] = be.xp.zeros(shape, dtype=be.dtype(dtype), device=be.device)
            else:
                std = self.fourier_scale if name == "fourier.W" else 1.0 / math.sqrt(shape[-1])
                params[name] = std * be.normal(be.fold_in(key, i), shape, dtype)
        return params

    def check_params(self, params) -> None:
        """Raise ValueError unless ``params`` has exactly this architecture's names and shapes."""
        shapes = self.shapes()
        if not isinstance(params, dict) or set(params) != set(shapes):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"params must be a dict with keys {sorted(shapes)}, got {got}")
        for name, shape in shapes.items():
            if tuple(params[name].shape) != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {tuple(params[name].shape)}")

    # -- forward -----------------------------------------------------------------------
    def _forward(self, params, x, t):
        """The output and what the derivatives need: the time features, the embedding,
        each layer's input and silu'(pre-activation)."""
        if getattr(x, "ndim", None) != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {getattr(x, 'shape', None)}")
        xp = namespace(x)
        t = as_time(t, x)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a number, 0-D or shape ({x.shape[0]},), got shape {t.shape}")
        t = xp.broadcast_to(t, (x.shape[0],))
        angle = (2.0 * math.pi) * t[:, None] * params["fourier.W"][None, :]
        f = xp.concat([xp.sin(angle), xp.cos(angle)], axis=1)
        e, de = _silu(f @ params["time_dense.weight"].T + params["time_dense.bias"], xp)
        h, layers = x, []
        for l in range(self.depth):
            z = h @ params[f"layers.{l}.weight"].T + params[f"layers.{l}.bias"] + e @ params[f"time_proj.{l}.weight"].T
            h_in = h
            h, dh = _silu(z, xp)
            layers.append((h_in, dh))
        out = h @ params["out.weight"].T + params["out.bias"]
        return out, (f, e, de, layers, h)

    def apply(self, params, x, t):
        """out(x, t), shape (n, D); ``t`` a number, 0-D or (n,) array."""
        return self._forward(params, x, t)[0]

    # -- derivatives --------------------------------------------------------------------
    def jvp(self, params, x, t, v):
        """(∂out/∂x) v: the tangent pushed forward, δhₗ = σ'ₗ ⊙ (Wₗ δhₗ₋₁)."""
        _, (_, _, _, layers, _) = self._forward(params, x, t)
        d = v
        for l, (_, dh) in enumerate(layers):
            d = dh * (d @ params[f"layers.{l}.weight"].T)
        return d @ params["out.weight"].T

    def _backward(self, params, layers, u):
        """Cotangents gₗ = ∂(u·out)/∂zₗ of each layer's pre-activation, last layer first."""
        g = u @ params["out.weight"]
        deltas = []
        for l in reversed(range(self.depth)):
            delta = g * layers[l][1]
            deltas.append(delta)
            g = delta @ params[f"layers.{l}.weight"]
        return deltas[::-1], g

    def vjp_x(self, params, x, t, u):
        """uᵀ ∂out/∂x, shape (n, D)."""
        _, (_, _, _, layers, _) = self._forward(params, x, t)
        return self._backward(params, layers, u)[1]

    def vjp_params(self, params, x, t, u) -> dict:
        """∂/∂θ Σ_i u_i · out(x_i, t_i) for every trainable θ (summed over the batch):
        ∂/∂Wₗ = gₗᵀ hₗ₋₁, ∂/∂bₗ = Σ gₗ, ∂/∂Uₗ = gₗᵀ e, then through e = silu(A f + a)."""
        xp = namespace(x)
        _, (f, e, de, layers, h_last) = self._forward(params, x, t)
        deltas, _ = self._backward(params, layers, u)
        grads = {"out.weight": u.T @ h_last, "out.bias": xp.sum(u, axis=0)}
        g_e = 0.0 * e
        for l, delta in enumerate(deltas):
            grads[f"layers.{l}.weight"] = delta.T @ layers[l][0]
            grads[f"layers.{l}.bias"] = xp.sum(delta, axis=0)
            grads[f"time_proj.{l}.weight"] = delta.T @ e
            g_e = g_e + delta @ params[f"time_proj.{l}.weight"]
        delta_e = g_e * de
        grads["time_dense.weight"] = delta_e.T @ f
        grads["time_dense.bias"] = xp.sum(delta_e, axis=0)
        return {k: grads[k] for k in self.trainable()}

    def divergence(self, params, x, t):
        """tr ∂out/∂x exactly, shape (n,): the Jacobian built as (n, H, D) tangents
        Tₗ = σ'ₗ ⊙ (Wₗ Tₗ₋₁), T₀ = I, then tr(W_out T_L) = Σ_ij W_out[i, j] T_L[j, i]."""
        xp = namespace(x)
        _, (_, _, _, layers, _) = self._forward(params, x, t)
        T = layers[0][1][:, :, None] * params["layers.0.weight"][None, :, :]
        for l in range(1, self.depth):
            T = layers[l][1][:, :, None] * xp.matmul(params[f"layers.{l}.weight"], T)
        return xp.sum(params["out.weight"][None, :, :] * xp.permute_dims(T, (0, 2, 1)), axis=(1, 2))

    def bind(self, params) -> BoundMLP:
        """The network with ``params`` as a model ``(x, t) -> out`` with exact ``divergence``,
        ``jvp`` and ``vjp``: a score model, or an ε/denoiser model to convert with
        :mod:`scorecore.models.parametrization`."""
        self.check_params(params)
        return BoundMLP(self, params)


class BoundMLP:
    """An :class:`MLP` with its parameters: callable ``(x, t)``, with exact derivatives."""

    def __init__(self, net: MLP, params: dict):
        self.net, self.params = net, params
        self.event_shape = (net.dim,)

    def __repr__(self):
        return f"BoundMLP({self.net!r})"

    def __call__(self, x, t):
        return self.net.apply(self.params, x, t)

    def divergence(self, x, t):
        """tr ∂out/∂x, exact."""
        return self.net.divergence(self.params, x, t)

    def jvp(self, x, t, v):
        """(∂out/∂x) v."""
        return self.net.jvp(self.params, x, t, v)

    def vjp(self, x, t, u):
        """uᵀ ∂out/∂x."""
        return self.net.vjp_x(self.params, x, t, u)


__all__ = ["MLP", "BoundMLP"]
