"""Training the Array API MLP (``scorecore.models.MLP``) without autodiff: NumPy, CuPy,
array-api-strict.

The DSM loss is computed by :func:`scorecore.losses.dsm_loss` itself; its gradient with
respect to the network output is written out by hand. Per sample the loss is
½ (λ/s²)‖s·s_θ(x_t, t) + z‖² = ½ λ ‖s_θ + z/s‖², so for the mean over n samples

    ∂L/∂s_θ(x_i, t_i) = λ(t_i) (s_θ(x_i, t_i) + z_i/s_i) / n,    z_i/s_i = (x_i − m_i x0_i)/s_i²,

and the parameter gradient is the MLP's exact ``vjp_params`` of that cotangent. The
(x_t, t) that ``dsm_loss`` drew are read back through a recording wrapper of the
model, so the noise is the loss function's own.
"""

from __future__ import annotations

import numpy as np

from .. import losses
from .._arrays import per_sample
from ..backend import get_backend
from ..models import MLP
from .optim import Adam, clip_by_global_norm, ema_update


class _Recorder:
    """The bound MLP, remembering the (x, t, out) of its last call."""

    def __init__(self, bound):
        self.bound, self.event_shape = bound, bound.event_shape

    def __call__(self, x, t):
        self.x, self.t = x, t
        self.out = self.bound(x, t)
        return self.out


class ArrayAPITrainer:
    """DSM training of :class:`scorecore.models.MLP` with :class:`~scorecore.training.optim.Adam`,
    global-norm clipping and weight EMA, on any Array API backend (see ``loop``)."""

    def __init__(self, config, event_shape: tuple[int, ...]):
        if config.model != "mlp":
            raise ValueError(f"backend {config.backend!r} trains model 'mlp' only (the U-Net needs "
                             f"autodiff: use --backend torch or jax), got {config.model!r}")
        if config.importance_sampling or config.parametrization != "score":
            raise ValueError(f"backend {config.backend!r} trains the score-parametrized MLP with uniform t only "
                             "(its gradients are derived by hand): importance_sampling and parametrization='eps' "
                             "need --backend torch")
        self.backend = be = get_backend(config.backend)
        self.config, self.event_shape = config, be.network_args("mlp", event_shape, config.seed)[0]
        self.sde = config.make_sde()
        self.lam = losses._weighting(config.weighting, self.sde)
        self.net = MLP(event_shape[0], **config.model_kwargs)
        full = self.net.init(be, seed=config.seed, dtype=config.dtype)
        self.fixed = {"fourier.W": full["fourier.W"]}
        self.params = {k: full[k] for k in self.net.trainable()}
        self.ema = dict(self.params)
        self.adam = Adam()
        self.opt = self.adam.init(self.params)
        self.key = be.key(config.seed)

    def loss_and_grads(self, params, x0, key):
        """(L, ∂L/∂θ) of the mean DSM loss with noise from ``key``."""
        model = _Recorder(self.net.bind({**self.fixed, **params}))
        c = self.config
        loss = losses.dsm_loss(model, self.sde, x0, weighting=c.weighting, eps=c.eps, backend=self.backend, key=key)
        m, s = self.sde.marginal(model.t)
        z_over_s = (model.x - per_sample(m, x0) * x0) / per_sample(s * s, x0)
        u = per_sample(self.lam(model.t) / x0.shape[0], x0) * (model.out + z_over_s)
        return loss, self.net.vjp_params({**self.fixed, **params}, model.x, model.t, u)

    def step(self, x0, k: int, lr: float):
        loss, grads = self.loss_and_grads(self.params, x0, self.backend.fold_in(self.key, k))
        grads = clip_by_global_norm(grads, self.config.grad_clip)
        self.params, self.opt = self.adam.update(self.params, grads, self.opt, lr)
        self.ema = ema_update(self.ema, self.params, self.config.ema)
        return loss

    def state_dict(self) -> dict:
        host = self.backend.to_numpy
        state = {f"params.{k}": host(v) for k, v in {**self.fixed, **self.params}.items()}
        state |= {f"ema.{k}": host(v) for k, v in {**self.fixed, **self.ema}.items()}
        state |= {f"opt.m.{k}": host(v) for k, v in self.opt["m"].items()}
        state |= {f"opt.v.{k}": host(v) for k, v in self.opt["v"].items()}
        state["opt.count"] = np.asarray([self.opt["count"]], dtype=np.int64)
        return {k: np.array(v) for k, v in state.items()}

    def load_state_dict(self, state: dict) -> None:
        be = self.backend
        dt = self.params["out.bias"].dtype
        arr = lambda name: be.xp.asarray(state[name], dtype=dt, device=be.device)  # noqa: E731
        self.net.check_params({k[len("params."):]: state[k] for k in state if k.startswith("params.")})
        self.fixed = {"fourier.W": arr("params.fourier.W")}
        self.params = {k: arr(f"params.{k}") for k in self.net.trainable()}
        self.ema = {k: arr(f"ema.{k}") for k in self.net.trainable()}
        self.opt = {"m": {k: arr(f"opt.m.{k}") for k in self.params}, "v": {k: arr(f"opt.v.{k}") for k in self.params},
                    "count": int(state["opt.count"][0])}

    def score_model(self, ema: bool = True):
        return self.net.bind({**self.fixed, **(self.ema if ema else self.params)})


__all__ = ["ArrayAPITrainer"]
