"""DSM training on JAX: ``jax.value_and_grad`` of a pure loss (the network merged from its
``nnx.split`` state inside :func:`scorecore.losses.dsm_loss`), optax's
``clip_by_global_norm`` + ``scale_by_adam`` (optax.adam without its fixed learning rate,
which the core's warm-up schedule supplies per step), and the weight EMA — one
``jax.jit``-compiled update.

The loop, schedule, data order and checkpoint format are the core's
(``scorecore.training``); ``JaxBackend.trainer`` supplies this trainer. Initial weights: the MLP's from ``scorecore.models.MLP.init``
(NumPy, seeded; the same as the torch and NumPy trainers'), the U-Net's from its
``seed=``. Optimizer-state leaves are checkpointed by position (``opt.0``, ``opt.1``, ...
in ``jax.tree.leaves`` order), restored into the tree of a fresh ``tx.init``.

Data parallel: :meth:`JaxTrainer.shard` puts the parameters, EMA and optimizer state
replicated on a mesh and every batch split along its batch axis; the same jitted update
then runs SPMD (XLA all-reduces the gradient of the batch-mean loss), one compiled step, with
the noise rows of the one-device run (they depend on the row index only).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from scorecore import losses
from scorecore.backend import get_backend
from scorecore.models import MLP

from . import cast_module
from .networks import ScoreMLP, ScoreUNet, from_state_dict, to_state_dict


def build_network(config, event_shape, dtype):
    """The configured network with its seeded initial weights, cast to ``dtype``."""
    event_shape, _ = get_backend(config.backend).network_args(config.model, event_shape, config.seed)
    if config.model == "mlp":
        net = ScoreMLP(event_shape[0], **config.model_kwargs, seed=config.seed)
        from_state_dict(net, MLP(event_shape[0], **config.model_kwargs).init("numpy", seed=config.seed))
    else:
        net = ScoreUNet(in_channels=event_shape[0], **config.model_kwargs, seed=config.seed)
    return cast_module(net, dtype)


def _copy(state):
    """A state with new Variable objects (same immutable arrays)."""
    return jax.tree.map(lambda a: a, state)


class _Score:
    """A network state as a score model: merged inside the caller's trace, so it works eagerly
    and under the sampler's whole-run ``jax.jit``."""

    def __init__(self, graphdef, state, event_shape):
        self.graphdef, self.state, self.event_shape = graphdef, state, tuple(event_shape)
        self._call = jax.jit(lambda s, x, t: nnx.merge(graphdef, s)(x, t))

    def __call__(self, x, t):
        return self._call(self.state, x, t)


_STEPS: dict = {}


def _compiled_step(config_json, event_shape, graphdef, tx):
    """The jitted update for one configuration, compiled once per process (trainers with
    the same config — a resumed run, a test's twin runs — share it)."""
    cache_key = (config_json, event_shape)
    if cache_key not in _STEPS:
        from scorecore.training import TrainConfig

        config = TrainConfig.from_json(config_json)
        be, sde, decay = get_backend(config.backend), config.make_sde(), float(config.ema)

        def loss_fn(params, rest, x0, key, k):
            model = nnx.merge(graphdef, params, rest)
            return losses.dsm_loss(model, sde, x0, weighting=config.weighting,
                                   importance_sampling=config.importance_sampling, eps=config.eps, backend=be,
                                   key=be.fold_in(key, k))

        def step(params, ema, opt, rest, x0, key, k, lr):
            loss, grads = jax.value_and_grad(loss_fn)(params, rest, x0, key, k)
            updates, opt = tx.update(grads, opt, params)
            params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
            ema = jax.tree.map(lambda e, p: e - (1.0 - decay) * (e - p), ema, params)
            return params, ema, opt, loss

        _STEPS[cache_key] = jax.jit(step)
    return _STEPS[cache_key]


class JaxTrainer:
    """The trainer protocol of ``scorecore.training.loop`` on JAX."""

    def __init__(self, config, event_shape):
        if config.parametrization != "score":
            raise ValueError("the JAX trainer trains score-parametrized networks: parametrization='eps' needs "
                             "--backend torch")
        self.config, self.event_shape = config, tuple(event_shape)
        self.backend = be = get_backend(config.backend)
        net = build_network(config, self.event_shape, be.dtype(config.dtype))
        self.graphdef, self.params, self.rest = nnx.split(net, nnx.Param, ...)
        self.ema = _copy(self.params)
        clip = config.grad_clip if config.grad_clip is not None and config.grad_clip > 0 else None
        self.tx = optax.chain(*([optax.clip_by_global_norm(clip)] if clip else []), optax.scale_by_adam())
        self.opt = self.tx.init(self.params)
        self.key = be.key(config.seed)
        self.layout = None
        # The seed enters as the key argument: runs differing only in seed share one compile.
        self._step = _compiled_step(dataclasses.replace(config, seed=0).to_json(), self.event_shape, self.graphdef,
                                    self.tx)

    def shard(self, mesh, axis: str | None = None):
        """Train data-parallel on ``mesh`` (a ``jax.sharding.Mesh`` or a device count): the state
        replicated on its devices, each batch's rows split along ``axis``. Returns ``self``."""
        from .sharding import BatchSharding

        self.layout = BatchSharding.of(mesh, axis)
        self.params, self.ema, self.opt, self.rest = self.layout.replicate((self.params, self.ema, self.opt,
                                                                             self.rest))
        return self

    def step(self, x0, k: int, lr: float):
        dt = self.backend.dtype(self.config.dtype)
        if self.layout is not None:
            self.layout.shards(x0.shape[0])  # an uneven batch is refused, naming the device count
            x0 = self.layout.put_draw(x0)
        self.params, self.ema, self.opt, loss = self._step(self.params, self.ema, self.opt, self.rest, x0,
                                                           self.key, jnp.uint32(k), jnp.asarray(lr, dtype=dt))
        return loss

    def _module(self, params):
        """A module over copies of ``params`` (nnx.merge reuses Variable objects, which
        ``from_state_dict`` updates in place)."""
        return nnx.merge(self.graphdef, _copy(params), _copy(self.rest))

    def state_dict(self) -> dict:
        state = {f"params.{k}": v for k, v in to_state_dict(self._module(self.params)).items()}
        state |= {f"ema.{k}": v for k, v in to_state_dict(self._module(self.ema)).items()}
        state |= {f"opt.{i}": np.array(leaf) for i, leaf in enumerate(jax.tree.leaves(self.opt))}
        return state

    def load_state_dict(self, state: dict) -> None:
        pick = lambda prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}  # noqa: E731
        _, self.params, self.rest = nnx.split(from_state_dict(self._module(self.params), pick("params.")),
                                              nnx.Param, ...)
        _, self.ema, _ = nnx.split(from_state_dict(self._module(self.ema), pick("ema.")), nnx.Param, ...)
        leaves, treedef = jax.tree.flatten(self.tx.init(self.params))
        if len(pick("opt.")) != len(leaves):
            raise ValueError(f"the checkpoint has {len(pick('opt.'))} optimizer arrays, this optimizer {len(leaves)}")
        # Checkpoints written before 0-D arrays were kept 0-D hold the count as shape (1,).
        self.opt = jax.tree.unflatten(treedef, [jnp.asarray(np.reshape(state[f"opt.{i}"], leaf.shape), dtype=leaf.dtype)
                                                for i, leaf in enumerate(leaves)])

    def score_model(self, ema: bool = True):
        graphdef, state = nnx.split(self._module(self.ema if ema else self.params))
        return _Score(graphdef, state, self.event_shape)
