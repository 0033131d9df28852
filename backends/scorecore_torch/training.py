"""DSM training on PyTorch: ``loss.backward()`` through :func:`scorecore.losses.dsm_loss`,
``torch.optim.Adam``, ``torch.nn.utils.clip_grad_norm_``, and an EMA copy of the network.

The loop, schedule, data order and checkpoint format are the core's
(``scorecore.training``); this module is the trainer protocol described there, supplied
by ``TorchBackend.trainer``. Initial
weights: the MLP's come from ``scorecore.models.MLP.init`` (NumPy, seeded), so torch,
JAX and NumPy start from the same weights; the U-Net's from torch's generator seeded
with ``config.seed`` inside ``torch.random.fork_rng`` (the global generator is untouched).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from scorecore import losses
from scorecore.backend import get_backend
from scorecore.models import MLP, score_from_eps

from .networks import ScoreMLP, ScoreUNet, from_state_dict, to_state_dict


def build_network(config, event_shape, dtype):
    """The configured network with its seeded initial weights."""
    event_shape, _ = get_backend(config.backend).network_args(config.model, event_shape, config.seed)
    if config.model == "mlp":
        net = ScoreMLP(event_shape[0], **config.model_kwargs)
        init = MLP(event_shape[0], **config.model_kwargs).init("numpy", seed=config.seed)
        from_state_dict(net, init)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = ScoreUNet(in_channels=event_shape[0], **config.model_kwargs)
    return net.to(dtype)


class _Eval(torch.nn.Module):
    """A network as a score model for sampling: no autograd graph, ``event_shape`` set."""

    def __init__(self, net, event_shape):
        super().__init__()
        self.net, self.event_shape = net, tuple(event_shape)

    def forward(self, x, t):
        with torch.no_grad():
            return self.net(x, t)


def as_score(net, config, sde):
    """The network as a score model: itself, or −ε_θ/s(t) under the ε-parametrization."""
    return score_from_eps(net, sde) if config.parametrization == "eps" else net


class TorchTrainer:
    """The trainer protocol of ``scorecore.training.loop`` on torch (CPU or CUDA)."""

    def __init__(self, config, event_shape):
        self.config, self.event_shape = config, tuple(event_shape)
        self.backend = be = get_backend(config.backend)
        self.sde = config.make_sde()
        self.net = build_network(config, self.event_shape, be.dtype(config.dtype)).to(be.device)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        self.names = [n for n, _ in self.net.named_parameters()]
        # foreach=False: the single-tensor update, the one the core's Array API Adam mirrors.
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr, foreach=False)
        self.key = be.key(config.seed)

    def step(self, x0, k: int, lr: float, *, module=None, offset: int = 0):
        """One Adam update on the DSM loss of ``x0``, rows ``offset`` … of the step's global batch
        (their noise at those row indices), through ``module`` (the network, or a
        DistributedDataParallel wrapper of it, whose backward all-reduces the gradients)."""
        c = self.config
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        net = as_score(self.net if module is None else module, c, self.sde)
        loss = losses.dsm_loss(net, self.sde, x0, weighting=c.weighting, importance_sampling=c.importance_sampling,
                               eps=c.eps, backend=self.backend, key=self.backend.fold_in(self.key, k), offset=offset)
        loss.backward()
        if c.grad_clip is not None and c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
        self.opt.step()
        with torch.no_grad():
            for e, p in zip(self.ema_net.parameters(), self.net.parameters()):
                e.sub_((1.0 - c.ema) * (e - p))
        return loss.detach()

    def state_dict(self) -> dict:
        state = {f"params.{k}": v for k, v in to_state_dict(self.net).items()}
        state |= {f"ema.{k}": v for k, v in to_state_dict(self.ema_net).items()}
        params = dict(self.net.named_parameters())
        count = 0
        for name in self.names:
            s = self.opt.state.get(params[name])
            if s:
                state[f"opt.m.{name}"] = s["exp_avg"].detach().cpu().numpy().copy()
                state[f"opt.v.{name}"] = s["exp_avg_sq"].detach().cpu().numpy().copy()
                count = int(s["step"])
            else:
                # Before the first update torch keeps no state: write Adam's zero moments, so
                # that every checkpoint (and a fresh trainer's state, the resume check's
                # reference) has the same tensors.
                zero = np.zeros(tuple(params[name].shape), dtype=state[f"params.{name}"].dtype)
                state[f"opt.m.{name}"], state[f"opt.v.{name}"] = zero, zero.copy()
        state["opt.count"] = np.asarray([count], dtype=np.int64)
        return state

    def load_state_dict(self, state: dict) -> None:
        pick = lambda prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}  # noqa: E731
        from_state_dict(self.net, pick("params."))
        from_state_dict(self.ema_net, pick("ema."))
        count = int(state["opt.count"][0])
        self.opt.state.clear()
        if count > 0:
            dev = self.backend.device
            for name, p in self.net.named_parameters():
                self.opt.state[p] = {
                    "step": torch.tensor(float(count)),
                    "exp_avg": torch.as_tensor(np.array(state[f"opt.m.{name}"]), dtype=p.dtype, device=dev),
                    "exp_avg_sq": torch.as_tensor(np.array(state[f"opt.v.{name}"]), dtype=p.dtype, device=dev),
                }

    def score_model(self, ema: bool = True):
        return _Eval(as_score(self.ema_net if ema else self.net, self.config, self.sde), self.event_shape)
