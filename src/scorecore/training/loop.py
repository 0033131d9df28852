"""The training loop shared by every backend: configuration, data order, noise keys,
learning-rate schedule, loss log and safetensors checkpoints that resume exactly.

A backend supplies a *trainer* through ``Backend.trainer(config, event_shape)``
(:class:`scorecore.training.ArrayAPITrainer` for NumPy / CuPy / array-api-strict; the torch
and JAX backends supply their own, built on their frameworks' autodiff and optimizers) with:

* ``backend`` — the :class:`~scorecore.backend.Backend` its arrays live on;
* ``step(x0, k, lr) -> loss`` — one Adam update at 0-based step ``k`` with learning rate
  ``lr``; the DSM noise (t and z) comes from ``fold_in(key(seed), k)``, so a resumed run
  draws the same noise as an uninterrupted one;
* ``state_dict() -> {name: numpy array}`` and ``load_state_dict(state)`` — parameters
  ``params.*``, their EMA ``ema.*`` (both in the flat network layout of
  ``scorecore.checkpoint``, so weights move between backends) and the optimizer state
  ``opt.*`` (Adam's moments and update count). A fresh trainer's ``state_dict()`` has
  every tensor a checkpoint of it must have, with its shape and dtype: :func:`resume`
  checks a checkpoint against it before loading;
* ``score_model(ema=True)`` — the trained network as a score model ``(x, t)``.

Update k reads batch ``k mod B`` of epoch ``k // B`` (B full batches per epoch) from
``Dataset.batches(seed=seed, epoch=...)``; together with the noise keys this makes a
run a function of (config, seed) alone, and N steps + save + load + N steps equal 2N.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from itertools import islice

import numpy as np

from .. import checkpoint, validation
from ..backend import get_backend
from ..sde import SDES, make_sde
from .optim import warmup_lr

FORMAT = "scorecore.training/1"
#: the format of a checkpoint that holds the EMA weights alone (for evaluation; a few MB)
EMA_FORMAT = "scorecore.ema/1"
MODELS = ("mlp", "unet")
#: what the network outputs: the score s_θ itself, or ε_θ with s_θ = −ε_θ/s(t) (Ho et al. 2020)
PARAMETRIZATIONS = ("score", "eps")


@dataclasses.dataclass
class TrainConfig:
    """Everything that determines a training run (stored as JSON in every checkpoint).

    ``model_kwargs`` go to the network's constructor (``scorecore.models.MLP`` /
    ``ScoreMLP``: dim is set from the data; ``ScoreUNet``: in_channels likewise).
    ``grad_clip`` ≤ 0 turns clipping off; ``warmup`` 0 turns warm-up off.
    ``weighting`` and ``importance_sampling`` go to :func:`scorecore.losses.dsm_loss`
    (``"likelihood"`` with importance sampling: Song et al. 2021b); ``parametrization``
    ``"eps"`` trains ε_θ with s_θ(x, t) = −ε_θ(x, t)/s(t), whose DSM residual
    s(t) s_θ + z = z − ε_θ stays O(1) as t → 0.
    """

    backend: str = "numpy"
    model: str = "mlp"
    sde: str = "vp"
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 100
    grad_clip: float = 1.0
    ema: float = 0.999
    seed: int = 0
    weighting: str = "sigma2"
    importance_sampling: bool = False
    parametrization: str = "score"
    eps: float = 1e-5
    dtype: str | None = None
    dequantize: bool = False
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    data: str = ""

    def __post_init__(self):
        v = validation
        v.instance("backend", self.backend, str, "a backend name")
        v.choice("model", self.model, MODELS)
        v.choice("sde", self.sde, SDES)
        self.steps = v.steps("steps", self.steps)
        self.batch_size = v.positive_int("batch_size", self.batch_size)
        self.lr = v.positive_float("lr", self.lr)
        self.warmup = v.integer("warmup", self.warmup, lo=0)
        self.grad_clip = v.optional(v.real, "grad_clip", self.grad_clip)
        self.ema = v.real("ema", self.ema, lo=0.0, hi=1.0, hi_open=True)
        self.seed = v.integer("seed", self.seed, lo=0)
        v.instance("weighting", self.weighting, str, "a weighting name")
        self.importance_sampling = v.boolean("importance_sampling", self.importance_sampling)
        v.choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        self.eps = v.positive_float("eps", self.eps)
        v.optional(v.choice, "dtype", self.dtype, choices=("float32", "float64"))
        self.dequantize = v.boolean("dequantize", self.dequantize)
        v.instance("model_kwargs", self.model_kwargs, dict, "a dict of network options")
        v.instance("data", self.data, str, "a data set name")

    def make_sde(self):
        """The SDE named by ``sde`` with its default coefficients."""
        return make_sde(self.sde)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls(**json.loads(text))


def make_trainer(config: TrainConfig, event_shape: tuple[int, ...]):
    """A fresh trainer (initial weights from ``config.seed``) for data of ``event_shape``,
    supplied by the configured backend (``Backend.trainer``)."""
    validation.instance("config", config, TrainConfig, "a TrainConfig")
    event_shape = validation.shape("event_shape", (1, *event_shape))[1:]
    return get_backend(config.backend).trainer(config, event_shape)


def _first(batch):
    return batch[0] if isinstance(batch, tuple) else batch


def batches_per_epoch(dataset, batch_size: int) -> int:
    """B = ⌊n / batch size⌋ full batches per epoch (the last partial batch is dropped)."""
    n = len(dataset) // validation.positive_int("batch_size", batch_size)
    if n < 1:
        raise ValueError(f"batch_size ({batch_size}) exceeds the data set size ({len(dataset)})")
    return n


def fit(trainer, dataset, config: TrainConfig, *, start: int = 0, stop: int | None = None,
        progress: bool | None = None, on_step: Callable | None = None) -> list[tuple[int, float, float]]:
    """Run updates ``start .. stop − 1`` (default: to ``config.steps``); returns the log
    ``[(step, loss, lr), ...]`` (step counted from 1 after the update).

    ``progress``: a tqdm bar (None: only on a terminal); ``on_step(step, loss, lr)`` is
    called after every update (the CLI writes its CSV and checkpoints with it).
    """
    from tqdm.auto import tqdm

    start = validation.integer("start", start, lo=0)
    stop = config.steps if stop is None else validation.integer("stop", stop, lo=start)
    be = trainer.backend
    nb = batches_per_epoch(dataset, config.batch_size)
    log = []
    bar = tqdm(total=stop - start, desc="train", disable=None if progress is None else not progress)
    k = start
    try:
        while k < stop:
            epoch, position = divmod(k, nb)
            it = dataset.batches(config.batch_size, seed=config.seed, epoch=epoch, backend=be,
                                 dtype=config.dtype, dequantize=config.dequantize)
            for batch in islice(it, position, None):
                if k >= stop:
                    break
                lr = warmup_lr(k, config.lr, config.warmup)
                loss = float(trainer.step(_first(batch), k, lr))
                if not math.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at step {k + 1} (lr {lr:g}); "
                                             "lower --lr or set --grad-clip")
                k += 1
                log.append((k, loss, lr))
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                if on_step is not None:
                    on_step(k, loss, lr)
    finally:
        bar.close()
    return log


def save_checkpoint(path, trainer, config: TrainConfig, step: int, n_batches: int) -> None:
    """Write params, EMA, optimizer state and (as metadata) the config, the step and the
    data position (epoch, batch) to a safetensors file at ``path``."""
    epoch, position = divmod(step, n_batches)
    meta = {"format": FORMAT, "config": config.to_json(), "step": str(step), "epoch": str(epoch),
            "position": str(position), "backend": trainer.backend.name,
            "event_shape": json.dumps(list(trainer.event_shape))}
    tmp = os.fspath(path) + ".tmp"
    checkpoint.save(tmp, trainer.state_dict(), meta)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(path) -> tuple[TrainConfig, dict, int]:
    """(config, state, step) from a checkpoint written by :func:`save_checkpoint` (its
    checksum verified by :func:`scorecore.checkpoint.load`)."""
    meta = checkpoint.load_metadata(path)
    where = repr(os.fspath(path))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not a scorecore training checkpoint (format {meta.get('format')!r})")
    missing = [k for k in ("config", "step", "event_shape") if k not in meta]
    if missing:
        raise ValueError(f"training checkpoint {where} lacks the metadata {', '.join(missing)}")
    return TrainConfig.from_json(meta["config"]), checkpoint.load(path), int(meta["step"])


def check_state(state: dict, expected: dict, path, *, same_dtype: bool = True) -> None:
    """Raise a ValueError naming the first tensor of ``expected`` (a fresh trainer's
    ``state_dict()``, in its order) that ``state`` lacks or holds with another shape or
    dtype — or the first tensor ``state`` has that is not expected. With
    ``same_dtype=False`` (a checkpoint moved to another backend) only the kind of the dtype
    (float, int) must agree: floats are cast to the new trainer's precision."""
    where = repr(os.fspath(path))
    for name, want in expected.items():
        if name not in state:
            raise ValueError(f"checkpoint {where} has no tensor {name!r} (expected shape {want.shape}, "
                             f"dtype {want.dtype}): it was not written by this trainer configuration")
        got = state[name]
        if got.shape != want.shape:
            raise ValueError(f"tensor {name!r} of checkpoint {where} has shape {got.shape}, expected {want.shape}")
        if (got.dtype != want.dtype) if same_dtype else (got.dtype.kind != want.dtype.kind):
            raise ValueError(f"tensor {name!r} of checkpoint {where} has dtype {got.dtype}, expected {want.dtype}")
    extra = [name for name in state if name not in expected]
    if extra:
        raise ValueError(f"checkpoint {where} has tensors this trainer does not expect, first {extra[0]!r}")


def resume(path, *, backend: str | None = None):
    """(trainer, config, step) restored from the checkpoint at ``path``; continue with
    ``fit(trainer, dataset, config, start=step)``.

    Every tensor the trainer expects (parameters, EMA, optimizer state) is checked for
    presence, shape and dtype before anything is loaded (:func:`check_state`)."""
    config, state, step = load_checkpoint(path)
    moved = backend is not None and backend != config.backend
    if moved:
        config = dataclasses.replace(config, backend=backend)
    event_shape = tuple(json.loads(checkpoint.load_metadata(path)["event_shape"]))
    trainer = make_trainer(config, event_shape)
    expected = {k: np.asarray(v) for k, v in trainer.state_dict().items()}
    check_state(state, expected, path, same_dtype=not moved)
    trainer.load_state_dict(state)
    return trainer, config, step


def save_ema(path, trainer, config: TrainConfig, step: int, *, dtype=np.float32) -> None:
    """Write the EMA weights alone (cast to ``dtype``) with the config as metadata: what
    :func:`load_score_model` reads, a quarter of a training checkpoint."""
    state = {k[len("ema."):]: np.asarray(w, dtype=dtype) for k, w in trainer.state_dict().items()
             if k.startswith("ema.")}
    meta = {"format": EMA_FORMAT, "config": config.to_json(), "step": str(step),
            "event_shape": json.dumps(list(trainer.event_shape))}
    tmp = os.fspath(path) + ".tmp"
    checkpoint.save(tmp, state, meta)
    os.replace(tmp, path)


def load_score_model(path, *, backend: str | None = None, dtype: str | None = None):
    """``(score model, config)`` of a checkpoint by :func:`save_checkpoint` or :func:`save_ema`: the
    EMA weights in the network the config names, on ``backend`` (default: the one it was trained
    on) in ``dtype`` (default: the config's), under its parametrization (ε: s = −ε/s(t))."""
    meta = checkpoint.load_metadata(path)
    where = repr(os.fspath(path))
    if meta.get("format") not in (FORMAT, EMA_FORMAT):
        raise ValueError(f"{where} is not a scorecore training or EMA checkpoint (format {meta.get('format')!r})")
    config = TrainConfig.from_json(meta["config"])
    config = dataclasses.replace(config, backend=backend or config.backend, dtype=dtype or config.dtype)
    event_shape = tuple(json.loads(meta["event_shape"]))
    state = checkpoint.load(path)
    if meta["format"] == FORMAT:
        state = {k[len("ema."):]: w for k, w in state.items() if k.startswith("ema.")}
    trainer = make_trainer(config, event_shape)
    fresh = {k: np.asarray(w) for k, w in trainer.state_dict().items()}
    want = {k[len("ema."):]: w for k, w in fresh.items() if k.startswith("ema.")}
    check_state(state, want, path, same_dtype=False)
    cast = {k: np.asarray(state[k], dtype=w.dtype) for k, w in want.items()}
    trainer.load_state_dict(fresh | {f"ema.{k}": w for k, w in cast.items()} | {f"params.{k}": w for k, w in cast.items()})
    return trainer.score_model(ema=True), config


def fisher_divergence(model, target, sde, *, n: int = 4096, eps: float | None = None, weighting="sigma2",
                      backend=None, seed: int = 0, dtype=None, chunk: int = 2048) -> float:
    """The λ-weighted Fisher divergence of a score model to the exact score of ``target``:

        D(θ) = E_{t~U(eps,T)} λ(t) E_{x~p_t} ‖s_θ(x, t) − ∇ₓ log p_t(x)‖²,

    Monte Carlo over n pairs (t_i, x_i) with x_i an exact sample of p_{t_i}
    (``target.sample(t=, sde=)``) and ∇log p_t from ``target.score``. With λ = s(t)²
    (``"sigma2"``) this is twice the excess of the DSM loss over its minimum. The same
    ``seed`` gives the same (t, x) for every model (common random numbers), so D of a
    trained net, of the net at init and of the zero score (D₀ = E λ J(t)) compare with
    little noise. ``eps`` defaults to the samplers' (1e-5 VE, 1e-3 VP/sub-VP).
    """
    from ..api import default_eps
    from ..losses import _weighting

    be = get_backend(backend)
    xp = be.xp
    n = validation.positive_int("n", n)
    chunk = validation.positive_int("chunk", chunk)
    seed = validation.integer("seed", seed, lo=0)
    eps = default_eps(sde) if eps is None else validation.time_in("eps", eps, sde.T, lo_open=True)
    lam = _weighting(weighting, sde)
    k_t, k_x = be.split(be.key(seed), 2)
    total = 0.0
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        t = eps + (sde.T - eps) * be.uniform(k_t, (m,), dtype, offset=a)
        x = target.sample(m, backend=be, key=k_x, dtype=dtype, t=t, sde=sde, offset=a)
        d = model(x, t) - target.score(x, t, sde)
        total += float(xp.sum(lam(t) * xp.sum(xp.reshape(d * d, (m, -1)), axis=1)))
    return total / n


__all__ = [
    "EMA_FORMAT", "FORMAT", "MODELS", "PARAMETRIZATIONS", "TrainConfig", "batches_per_epoch", "check_state",
    "fisher_divergence", "fit", "load_checkpoint", "load_score_model", "make_trainer", "resume", "save_checkpoint",
    "save_ema",
]
