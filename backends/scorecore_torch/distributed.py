"""Many processes with ``torch.distributed``, launched by ``torchrun`` (gloo on CPU, NCCL on GPU).

Every rank runs the same script; :func:`init` joins the process group ``torchrun`` describes
in the environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``…), a no-op in a single process.
The work splits by rows: of n samples, rank r takes the contiguous rows
[offset_r, offset_r + count_r) (:func:`rows`) and draws them with ``offset=offset_r``. Since
sample i's noise depends on (seed, i, step) only, the ranks' rows together are the rows of
one n-sample run — bit for bit in the noise, to rounding in the model's arithmetic.

* :func:`sample` — each rank's rows, gathered to every rank (``gather=True``) or kept local;
* :func:`log_likelihood` — per-rank log p(x) of its rows; the totals Σ log p and Σ (log p)²
  all-reduced, so every rank gets the mean and its standard error over all n points;
* :func:`bits_per_dim` — the per-draw bits/dim of each rank's rows gathered, reduced as one
  process reduces them;
* :class:`DDPTrainer` — DSM training with ``DistributedDataParallel``: every rank reads the
  same global batch (the core's data order), trains on its rows with their noise rows
  (``offset``), DDP averages the gradients (= the gradient of the global batch-mean loss), and
  :func:`fit` writes checkpoints from rank 0 only (the others wait at a barrier); every rank
  resumes from the same checkpoint (:func:`resume`).

Several hosts: ``torchrun --nnodes=H --nproc_per_node=G --node_rank=h --rdzv_backend=c10d
--rdzv_endpoint=HOST:PORT script.py`` on each host h; nothing here changes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from scorecore import validation


def init(backend: str | None = None) -> tuple[int, int]:
    """Join the process group of ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), with
    ``backend`` (default: NCCL when CUDA is available, else gloo); returns (rank, world).
    Without ``torchrun``, or already joined, it only returns them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        validation.choice("backend", backend, ("gloo", "nccl", "mpi"))
        dist.init_process_group(backend)
    return rank_world()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the joined group, (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (nothing outside a group)."""
    if rank_world()[1] > 1:
        dist.barrier()


def local_device() -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def rows(n: int, rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """(offset, count) of rank ``rank``'s rows of n: contiguous blocks, the first n mod world
    ranks one row more."""
    n = validation.integer("n", n, lo=0)
    r0, w0 = rank_world()
    world = w0 if world is None else validation.positive_int("world", world)
    rank = r0 if rank is None else validation.integer("rank", rank, lo=0, hi=world - 1)
    base, extra = divmod(n, world)
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)


def gather_rows(local, n: int):
    """Every rank's rows (in rank order, hence in row order) on every rank: padded to the
    largest count for ``all_gather``, the padding dropped. A NumPy array comes back as one."""
    if isinstance(local, np.ndarray):
        return gather_rows(torch.as_tensor(local, device=_comm_device()), n).cpu().numpy()
    _, world = rank_world()
    if world == 1:
        return local
    most = -(-n // world)
    pad = torch.zeros((most - local.shape[0], *local.shape[1:]), dtype=local.dtype, device=local.device)
    parts = [torch.empty((most, *local.shape[1:]), dtype=local.dtype, device=local.device) for _ in range(world)]
    dist.all_gather(parts, torch.cat([local, pad]))
    return torch.cat([p[:rows(n, r, world)[1]] for r, p in enumerate(parts)])


def sample(model, sde, shape, sampler="pc", steps=None, *, backend="torch", gather: bool = True, offset: int = 0,
           **kwargs):
    """:func:`scorecore.sample` of ``shape`` = (n, ...) split over the ranks: this rank draws its
    :func:`rows` at ``offset`` + their start. Returns all n samples on every rank
    (``gather=True``) or (this rank's samples, their offset)."""
    import scorecore as sc

    shape = validation.shape("shape", shape)
    validation.boolean("gather", gather)
    start, count = rows(shape[0])
    if count == 0:
        raise ValueError(f"shape[0] ({shape[0]}) must be at least the number of ranks ({rank_world()[1]})")
    x = sc.sample(model, sde, (count, *shape[1:]), sampler, steps, backend=backend,
                  offset=validation.integer("offset", offset, lo=0) + start, **kwargs)
    return gather_rows(x, shape[0]) if gather else (x, offset + start)


@dataclass
class LikelihoodTotal:
    """log p over all ranks' points: ``mean`` and its ``stderr`` from the all-reduced Σ log p and
    Σ (log p)² over ``n`` points; ``local`` this rank's (count,) values, starting at ``offset``;
    ``all`` every point's value (when gathered)."""

    mean: float
    stderr: float
    n: int
    local: object
    offset: int
    all: object = None


def _all_reduce_sums(values: torch.Tensor) -> tuple[float, float, int]:
    # float64 sums: the totals of many ranks' float32 values keep their digits.
    v = values.detach().to(torch.float64)
    s = torch.stack([v.sum(), (v * v).sum(), torch.tensor(float(v.numel()), dtype=torch.float64,
                                                                   device=v.device)])
    if rank_world()[1] > 1:
        dist.all_reduce(s, op=dist.ReduceOp.SUM)
    return float(s[0]), float(s[1]), int(round(float(s[2])))


def log_likelihood(model, sde, x, *, backend="torch", gather: bool = False, offset: int = 0,
                   **kwargs) -> LikelihoodTotal:
    """:func:`scorecore.log_likelihood` of the points ``x`` (n, ...) — the same array on every
    rank — split over the ranks: this rank solves for its :func:`rows` (probes drawn at their
    row indices), and Σ log p, Σ (log p)² are all-reduced. ``gather`` also collects every value."""
    import scorecore as sc

    validation.boolean("gather", gather)
    n = int(x.shape[0])
    start, count = rows(n)
    if count == 0:
        raise ValueError(f"x has {n} points, fewer than the number of ranks ({rank_world()[1]})")
    logp = sc.log_likelihood(model, sde, x[start:start + count], backend=backend,
                             offset=validation.integer("offset", offset, lo=0) + start, **kwargs)
    total, squares, m = _all_reduce_sums(logp)
    mean = total / m
    var = (squares - m * mean * mean) / (m - 1) if m > 1 else float("nan")
    stderr = math.sqrt(max(var, 0.0) / m) if m > 1 else float("nan")
    return LikelihoodTotal(mean, stderr, m, logp, offset + start, gather_rows(logp, n) if gather else None)


def bits_per_dim(model, sde, data, *, backend="torch", offset: int = 0, **kwargs):
    """:func:`scorecore.bits_per_dim` of ``data`` (a Dataset with levels, or an integer array with
    ``n_levels``), this rank's rows only (dequantization noise and probes at their row
    indices); the per-draw values of all ranks gathered and reduced as in one process. Returns
    a :class:`scorecore.likelihood.BitsPerDim` over all points, the same on every rank."""
    import scorecore as sc
    from scorecore.data import Dataset
    from scorecore.likelihood import BitsPerDim

    n = len(data) if isinstance(data, Dataset) else int(np.asarray(data).shape[0])
    start, count = rows(n)
    if count == 0:
        raise ValueError(f"data has {n} points, fewer than the number of ranks ({rank_world()[1]})")
    part = data.subset(np.arange(start, start + count)) if isinstance(data, Dataset) else data[start:start + count]
    bpd = sc.bits_per_dim(model, sde, part, backend=backend, offset=validation.integer("offset", offset, lo=0) + start,
                          **kwargs)
    # The draws × points matrix, gathered column blocks in rank order.
    local = torch.as_tensor(np.ascontiguousarray(bpd.per_draw.T), dtype=torch.float64, device=_comm_device())
    per_draw = gather_rows(local, n).cpu().numpy().T
    nfe = torch.tensor([float(bpd.nfe), float(bpd.converged)], dtype=torch.float64, device=_comm_device())
    if rank_world()[1] > 1:
        dist.all_reduce(nfe, op=dist.ReduceOp.SUM)
    means = per_draw.mean(axis=0)
    units = means if n > 1 else per_draw[:, 0]
    stderr = float(units.std(ddof=1) / math.sqrt(units.size)) if units.size > 1 else float("nan")
    return BitsPerDim(float(per_draw.mean()), stderr, per_draw, bpd.offset_bits, bpd.n_levels, bpd.data_range,
                      int(nfe[0]), bool(int(nfe[1]) == rank_world()[1]))


def _comm_device() -> torch.device:
    """Where collectives' tensors live: NCCL needs CUDA tensors, gloo takes CPU ones."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return local_device()
    return torch.device("cpu")


class DDPTrainer:
    """The trainer protocol of :mod:`scorecore.training.loop` over ranks: a
    :class:`scorecore_torch.training.TorchTrainer` whose network is wrapped in
    ``DistributedDataParallel``. ``step(x0, k, lr)`` takes the global batch (the same on every
    rank), trains on this rank's rows with their noise rows (``offset``), and returns the
    global batch's mean loss (all-reduced). The global batch size must be a multiple of the
    world size (equal shards: DDP's gradient average is then the global mean's gradient)."""

    def __init__(self, config, event_shape, *, inner=None):
        from torch.nn.parallel import DistributedDataParallel

        from .training import TorchTrainer

        self.inner = TorchTrainer(config, event_shape) if inner is None else inner
        self.config, self.event_shape, self.backend = self.inner.config, self.inner.event_shape, self.inner.backend
        rank, world = rank_world()
        if config.batch_size % world:
            raise ValueError(f"batch_size ({config.batch_size}) must be a multiple of the world size ({world}): "
                             "each rank trains on an equal share of the global batch")
        dev = self.backend.device
        self.module = (DistributedDataParallel(self.inner.net, device_ids=[dev] if dev.type == "cuda" else None)
                       if world > 1 else self.inner.net)

    def step(self, x0, k: int, lr: float):
        start, count = rows(int(x0.shape[0]))
        # This rank's rows of the global batch; DDP all-reduces (averages) the gradients in backward.
        loss = self.inner.step(x0[start:start + count], k, lr, module=self.module, offset=start)
        mean = loss.to(torch.float64).reshape(1)
        if rank_world()[1] > 1:
            mean = mean.to(_comm_device())
            dist.all_reduce(mean, op=dist.ReduceOp.SUM)
            mean = mean / rank_world()[1]
        return mean[0]

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    def score_model(self, ema: bool = True):
        return self.inner.score_model(ema)


def fit(trainer: DDPTrainer, dataset, config, *, start: int = 0, stop: int | None = None, checkpoint=None,
        checkpoint_every: int = 0, progress: bool | None = False):
    """:func:`scorecore.training.fit` on every rank; ``checkpoint`` (a path) written by rank 0
    every ``checkpoint_every`` steps and at the end, the other ranks waiting at a barrier so
    that none runs ahead of a checkpoint it might resume from."""
    from scorecore import training

    checkpoint_every = validation.integer("checkpoint_every", checkpoint_every, lo=0)
    n_batches = training.batches_per_epoch(dataset, config.batch_size)
    rank = rank_world()[0]

    def save(k):
        if rank == 0:
            training.save_checkpoint(checkpoint, trainer, config, k, n_batches)
        barrier()

    def on_step(k, loss, lr):
        if checkpoint is not None and checkpoint_every and k % checkpoint_every == 0:
            save(k)

    log = training.fit(trainer, dataset, config, start=start, stop=stop, progress=progress if rank == 0 else False,
                       on_step=on_step)
    if checkpoint is not None:
        save(config.steps if stop is None else stop)
    return log


def resume(path):
    """(DDPTrainer, config, step) from a checkpoint, the same on every rank."""
    from scorecore import training

    inner, config, step = training.resume(path, backend="torch")
    return DDPTrainer(config, inner.event_shape, inner=inner), config, step


__all__ = ["DDPTrainer", "LikelihoodTotal", "barrier", "bits_per_dim", "fit", "gather_rows", "init", "local_device",
           "log_likelihood", "rank_world", "resume", "rows", "sample"]
