"""Training score networks with DSM: Adam, warm-up, clipping, EMA, exact resume.

``fit(make_trainer(config, event_shape), dataset, config)`` trains on any backend, with
the trainer the backend supplies (``Backend.trainer``): the Array API MLP with
hand-derived gradients on NumPy (``ArrayAPITrainer``), torch.optim on torch, optax on JAX.
``fisher_divergence`` measures a trained score against an analytic target's.
"""

from .array_api import ArrayAPITrainer
from .loop import (EMA_FORMAT, FORMAT, TrainConfig, batches_per_epoch, check_state, fisher_divergence, fit,
                   load_checkpoint, load_score_model, make_trainer, resume, save_checkpoint, save_ema)
from .optim import Adam, clip_by_global_norm, ema_update, global_norm, warmup_lr

__all__ = [
    "EMA_FORMAT", "FORMAT", "Adam", "ArrayAPITrainer", "TrainConfig", "batches_per_epoch", "check_state", "clip_by_global_norm",
    "ema_update",
    "fisher_divergence", "fit", "global_norm", "load_checkpoint", "load_score_model", "make_trainer", "resume", "save_checkpoint", "save_ema",
    "warmup_lr",
]
