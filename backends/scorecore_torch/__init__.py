"""The PyTorch backend: ``array_api_compat.torch`` (:mod:`.namespace`: its hot functions called
straight through) on CPU or CUDA, ``torch.func`` autodiff.

``TorchBackend(device=None, *, compile=False, portable=False)``:

- dtype policy: float32 by default, float64 on request.
- random numbers: the core's counter-based generator (``scorecore.random``) run on the
  device in int64, so its uniforms and ±1 are bit-identical to NumPy's and every draw
  is row-wise batch invariant; normals agree with NumPy's to the last bit of
  log/cos/sin (``portable=True`` makes them identical).
- loops are Python loops (a progress bar); ``compile=True`` makes ``jit`` —
  which the sampling driver applies to the step — ``torch.compile`` (the step, never the
  unrolled loop: compile time grows with the loop's length): ``compiles == "step"``; it
  also fuses the normal generator's integer half into one kernel (:mod:`.rng`: the same
  bits, 1.5× faster than eager at 16,384 × 2 and × 16 on one CPU thread).
- framework parts: ``torch.func`` autodiff (``has_autodiff``), ``networks``
  (:mod:`scorecore_torch.networks`), ``trainer(config, event_shape)``
  (:class:`scorecore_torch.training.TorchTrainer`).
"""

from __future__ import annotations

import math

import torch

from scorecore import validation
from scorecore._arrays import register_namespace
from scorecore.backend import Backend, BackendUnavailableError

from .namespace import xp as xp_torch

register_namespace(torch.Tensor, xp_torch)


class TorchBackend(Backend):
    """PyTorch on ``device`` (default CPU; ``"cuda"`` or ``"cuda:1"`` for a GPU)."""

    name = "torch"
    xp = xp_torch
    default_dtype_name = "float32"
    has_autodiff = True

    def __init__(self, device=None, *, compile: bool = False, portable: bool = False):
        device = torch.device("cpu" if device is None else device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"backend 'torch' on {device}: torch {torch.__version__} sees no CUDA device "
                "(a CPU-only build, or no GPU/driver); use TorchBackend() for the CPU"
            )
        if device.type == "cuda" and device.index is None:
            # Tensors report cuda:<index>; name the device the same way.
            device = torch.device("cuda", torch.cuda.current_device())
        super().__init__(device)
        self.compile = validation.boolean("compile", compile)
        self.portable = validation.boolean("portable", portable)

    @property
    def compiles(self):
        return "step" if self.compile else None

    def to_numpy(self, x):
        return x.detach().cpu().numpy()

    def block_until_ready(self, x):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return x

    def set_threads(self, n: int) -> None:
        torch.set_num_threads(validation.positive_int("threads", n))

    # -- framework parts --------------------------------------------------------
    @property
    def networks(self):
        from . import networks

        return networks

    def network(self, name, event_shape, *, seed=0, dtype=None, **options):
        """``ScoreMLP`` for (D,) or ``ScoreUNet`` for (C, H, W), weights from torch's generator
        seeded with ``seed`` (the global generator untouched), without gradients, on this
        backend's device and dtype."""
        event_shape, seed = self.network_args(name, event_shape, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = (self.networks.ScoreMLP(event_shape[0], **options) if name == "mlp"
                   else self.networks.ScoreUNet(in_channels=event_shape[0], **options))
        return net.to(device=self.device, dtype=self.dtype(dtype)).requires_grad_(False)

    @property
    def distributed(self):
        """:mod:`scorecore_torch.distributed`: torchrun ranks, all-reduced likelihoods, DDP."""
        from . import distributed

        return distributed

    def load_model(self, kind: str, path, *, dtype=None):
        """``(score_model, sde)`` of a model saved by another library (:mod:`scorecore_torch.adapters`):
        ``kind`` ``"diffusers"`` (a ``UNet2DModel`` folder), loaded on this device and dtype."""
        from .adapters import load_diffusers

        validation.choice("model kind", kind, ("diffusers",))
        return load_diffusers(path, dtype=self.dtype(dtype), device=self.device)

    def trainer(self, config, event_shape):
        from .training import TorchTrainer

        return TorchTrainer(config, tuple(event_shape))

    def _draw(self, kind, key, shape, dtype, offset):
        if self.compile and kind == "normal" and not self.portable:
            from . import rng

            return rng.normal(key, shape, self.dtype(dtype), offset=offset, device=self.device)
        return super()._draw(kind, key, shape, dtype, offset)

    # -- autodiff ---------------------------------------------------------------
    def vjp(self, fn, x, v):
        return torch.func.vjp(fn, x)[1](v)[0]

    def jvp(self, fn, x, v):
        return torch.func.jvp(fn, (x,), (v,))[1]

    def grad(self, fn):
        return torch.func.grad(fn)

    def value_and_jvp(self, fn, x, v):
        return torch.func.jvp(fn, (x,), (v,))

    def value_and_probe(self, fn, x, v):
        """Jᵀ v by autograd: torch's forward mode runs its ops through Python decompositions (on
        the 16d mixture, batch 64, a torch.func.jvp took 3.2 ms, the reverse pass 1.0 ms). A model
        that hides its graph (``torch.no_grad`` inside, as an EMA wrapper) gets J v by forward mode,
        which no_grad does not stop."""
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            out = fn(y)
            if not out.requires_grad:
                return self.value_and_jvp(fn, x, v)
            (g,) = torch.autograd.grad(out, y, v)
        return out.detach(), g

    def value_and_divergence(self, fn, x, t):
        """fn(x, t) once and tr(∂fn/∂x) from the D basis directions' backward passes batched in
        one call (``is_grads_batched``: a vmap over the directions), not D calls: the diagonal
        of the Jacobian is the same read from its rows (VJPs) as from its columns."""
        n, event = x.shape[0], tuple(x.shape[1:])
        D = math.prod(event)
        basis = torch.eye(D, dtype=x.dtype, device=x.device).reshape((D, 1) + event).expand((D,) + tuple(x.shape))
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            out = fn(y, t)
            if not out.requires_grad:  # a model that hides its graph: forward mode, direction by direction
                return super().value_and_divergence(fn, x, t)
            (rows,) = torch.autograd.grad(out, y, basis, is_grads_batched=True)  # (D, n, ...): e_dᵀ ∂fn/∂x
        return out.detach(), torch.einsum("dnd->n", rows.reshape(D, n, D))

    # -- control flow -----------------------------------------------------------
    def jit(self, fn, **kwargs):
        return torch.compile(fn, **kwargs) if self.compile else fn


backend = TorchBackend()
