"""The ``scorecore`` command line.

Every option is checked by :mod:`scorecore.validation` while the command line is parsed
(argparse ``type=`` functions built on it), and output paths, the backend and the
resumed checkpoint right after, so that a bad argument fails with a message naming the
option before any work starts (exit status 2, argparse's).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from . import plots, validation
from .sde import SDES, make_sde

DIGITS_RANGE = "[-1,1]"


def _typed(option: str, parse, check, **kwargs):
    """An argparse ``type=``: the text parsed by ``parse`` (int, float), then ``check(option,
    value, **kwargs)``; text that does not parse goes to ``check`` as it is, which names
    what was expected."""

    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = text
        try:
            return check(option, value, **kwargs)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__  # argparse names the type in its own messages
    return convert


def _int(option, check=validation.positive_int, **kwargs):
    return _typed(option, int, check, **kwargs)


def _float(option, check=validation.positive_float, **kwargs):
    return _typed(option, float, check, **kwargs)


def _names(option, choices):
    """A comma-separated list, each name one of ``choices``."""

    def each(option, text):
        names = [n.strip() for n in text.split(",")]
        return [validation.choice(option, n, choices) for n in names]

    return _typed(option, str, each)


def _image_formats() -> set[str]:
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise SystemExit("the pictures need matplotlib: pip install 'scorecore[plot]'") from None
    return set(FigureCanvasBase.get_supported_filetypes())


def _check_image_path(option: str, path: str) -> None:
    """``path`` names a picture matplotlib can write, in a folder that exists."""
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    formats = _image_formats()
    if suffix not in formats:
        raise ValueError(f"{option} must end in an image suffix ({', '.join('.' + f for f in sorted(formats))}), "
                         f"got {path!r}")
    _check_writable_dir(option, os.path.dirname(os.path.abspath(path)), path, create=False)
    if os.path.isdir(path):
        raise ValueError(f"{option} must be a file name, got the folder {path!r}")


def _check_writable_dir(option: str, folder: str, given: str, *, create: bool) -> None:
    """``folder`` exists and is writable (``create``: or can be made under a writable folder)."""
    probe = folder
    while create and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "an existing folder or one that can be created" if create else "a path in an existing folder"
        raise ValueError(f"{option} must be {what}, got {given!r} ({probe!r} is not a folder)")
    if not os.access(probe, os.W_OK):
        raise ValueError(f"{option} must be a path in a writable folder, got {given!r} ({probe!r} is not writable)")


def _demo(args) -> int:
    import scorecore as sc

    target = sc.GaussianMixture.example(args.target)
    sde = make_sde(args.sde)
    model = target.score_model(sde)
    t0 = time.perf_counter()
    x, info = sc.sample(model, sde, (args.n, 2), sampler="ald", steps=args.levels,
                        n_steps_each=args.steps_each, backend="numpy", seed=args.seed,
                        progress=not args.quiet, return_info=True)
    elapsed = time.perf_counter() - t0
    exact = target.sample(args.n, seed=args.seed + 1)
    sw = sc.metrics.sliced_wasserstein(x, exact)
    floor = sc.metrics.noise_floor(lambda n, s: target.sample(n, seed=s), args.n)
    ed = sc.metrics.energy_distance(x, exact)
    ed_floor = sc.metrics.noise_floor(lambda n, s: target.sample(n, seed=s), args.n, sc.metrics.energy_distance)

    plots.samples_over_density(target, x, args.out, f"annealed Langevin, {sde!r}, NFE={info.nfe}")
    print(f"target        {args.target} (K={target.n_components}, exact score under {sde!r})")
    print(f"sampler       annealed Langevin: {args.levels} levels x {args.steps_each} steps + denoise, NFE = {info.nfe}")
    print(f"samples       {args.n} in {elapsed:.1f} s on backend 'numpy'")
    print(f"sliced W2     {sw:.4f} to exact samples (noise floor {floor:.4f}, ratio {sw / floor:.2f})")
    print(f"energy dist.  {ed:.5f} (noise floor {ed_floor:.5f})")
    print(f"picture       {args.out}")
    return 0


def _train(args) -> int:
    import csv
    import dataclasses
    import json
    import os

    import numpy as np

    import scorecore as sc
    from scorecore import training

    if args.threads:
        sc.get_backend(args.backend).set_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.safetensors")
    log_path = os.path.join(args.out, "loss.csv")
    if args.data == "digits":
        dataset = _digits("train", args.model)
    else:
        dataset = sc.data.toy(args.data, args.n_data, seed=args.seed)
    kwargs = {"hidden": args.width, "depth": args.depth} if args.model == "mlp" else \
        {"channels": args.width, "channel_mult": (1, 2), "groups": min(8, args.width), "embed_dim": 32}
    config = training.TrainConfig(
        backend=args.backend, model=args.model, sde=args.sde, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, warmup=args.warmup, grad_clip=args.grad_clip, ema=args.ema, seed=args.seed,
        dequantize=dataset.levels is not None, model_kwargs=kwargs, data=args.data)
    start = 0
    # Under torchrun the backend's distributed module trains data-parallel (DDP): every rank the
    # same global batch, its share of the rows; rank 0 alone writes the log and the checkpoints.
    ddp = sc.get_backend(args.backend).distributed if _ranks()[1] > 1 else None
    rank = ddp.init()[0] if ddp else 0
    if args.resume:
        trainer, old, start = ddp.resume(ckpt) if ddp else training.resume(ckpt)
        config = dataclasses.replace(old, steps=args.steps)  # a resumed run keeps its config, bar the length
        if rank == 0:
            print(f"resumed {ckpt} at step {start} (config {old.to_json()})")
        rows = [r for r in _read_log(log_path) if int(r[0]) <= start]
    else:
        trainer = ddp.DDPTrainer(config, dataset.event_shape) if ddp else training.make_trainer(config,
                                                                                                  dataset.event_shape)
        rows = []
    n_batches = training.batches_per_epoch(dataset, config.batch_size)

    def save(k):
        if rank == 0:
            training.save_checkpoint(ckpt, trainer, config, k, n_batches)
        if ddp:
            ddp.barrier()  # no rank runs ahead of a checkpoint it may resume from

    with open(log_path if rank == 0 else os.devnull, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "lr"])
        w.writerows(rows)
        f.flush()

        def on_step(k, loss, lr):
            w.writerow([k, f"{loss:.6g}", f"{lr:.6g}"])
            if args.checkpoint_every and k % args.checkpoint_every == 0:
                f.flush()
                save(k)

        t0 = time.perf_counter()
        training.fit(trainer, dataset, config, start=start,
                     progress=None if not args.quiet and rank == 0 else False, on_step=on_step)
        elapsed = time.perf_counter() - t0
    save(config.steps)
    if rank != 0:
        return 0  # rank 0 samples, plots and reports
    steps, loss = np.array([[float(r[0]), float(r[1])] for r in _read_log(log_path)]).T.reshape(2, -1)
    plots.loss_curve(steps, loss, os.path.join(args.out, "loss.png"), f"DSM loss, {args.data}, {args.model}, {args.backend}")
    print(f"trained       {config.steps - start} steps in {elapsed:.1f} s on backend {args.backend!r}; "
          f"final loss (mean of last 100) {np.mean(loss[-100:]):.4f}")
    print(f"checkpoint    {ckpt}")
    print(f"loss log      {log_path}, curve {os.path.join(args.out, 'loss.png')}")
    model, sde = trainer.score_model(ema=True), config.make_sde()
    options = {"n_steps_each": args.steps_each} if args.sampler == "ald" else {}
    x = sc.sample(model, sde, (args.n_samples, *dataset.event_shape), sampler=args.sampler,
                  steps=args.sample_steps, backend=trainer.backend, seed=args.seed + 1, progress=not args.quiet,
                  **options)
    x = trainer.backend.to_numpy(x)
    samples_png = os.path.join(args.out, "samples.png")
    if args.data == "digits":
        plots.image_grid(x, dataset.data_range, samples_png, f"{args.sampler} samples, EMA {args.model}, {config.steps} steps")
        # The MLP's weights move to NumPy's float64 MLP, whose exact divergence is analytic:
        # a float32 adaptive solve at rtol 1e-5 would grind its step size down.
        lik_model, lik_backend = ((training.resume(ckpt, backend="numpy")[0].score_model(ema=True), "numpy")
                                  if args.model == "mlp" else (model, trainer.backend))
        bpd = sc.bits_per_dim(lik_model, sde, _digits("test", args.model), n_dequant=args.n_dequant,
                              backend=lik_backend)
        print(f"test NLL      {bpd.mean:.3f} ± {bpd.stderr:.3f} bits/dim, median {np.median(bpd.per_draw):.3f} "
              f"({bpd.per_draw.shape[1]} test images x {args.n_dequant} dequantization draws, offset "
              f"{bpd.offset_bits:.3f} bits, NFE {bpd.nfe})")
    else:
        exact = np.asarray(sc.data.toy(args.data, args.n_samples, seed=args.seed + 2).x)
        sw = sc.metrics.sliced_wasserstein(x.astype(np.float64), exact)
        floor = sc.metrics.noise_floor(lambda n, s: sc.data.toy(args.data, n, seed=s).x, args.n_samples)
        print(f"sliced W2     {sw:.4f} to exact samples (noise floor {floor:.4f}, ratio {sw / floor:.2f})")
        title = f"{args.sampler} samples, EMA {args.model}, {config.steps} steps, SW2/floor {sw / floor:.2f}"
        if args.data in ("8-ring", "5x5-grid"):
            plots.samples_over_density(sc.GaussianMixture.example(args.data), x, samples_png, title)
        else:
            plots.samples_over_data(x, exact, samples_png, title)
    print(f"samples       {samples_png}")
    print(json.dumps({"steps": config.steps, "train_seconds": round(elapsed, 1)}))
    return 0


def _read_log(path):
    import csv

    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))[1:]
    except FileNotFoundError:
        return []


def _digits(split, model):
    """The digits in [−1, 1]; flat 64-pixel vectors for the MLP, (1, 8, 8) images for the U-Net."""
    import scorecore as sc

    ds = sc.data.digits(split, data_range=DIGITS_RANGE)
    return ds.flatten() if model == "mlp" else ds


def _bench(args) -> int:
    from .bench import BACKENDS, GPU_BACKENDS, nfe_table

    names = list(args.backends) if args.backends else [b for b in BACKENDS if b != "jax-eager"]
    if args.gpu:
        names += [b for b in GPU_BACKENDS if b not in names]
    nfe_table(names, model=args.model, batch=args.batch, steps=args.steps, repeats=args.repeats)
    return 0


def _ranks() -> tuple[int, int]:
    """(rank, world) from the environment ``torchrun`` (and ``mpirun``-style launchers) set:
    the job's shards are split by rank without any communication (:mod:`scorecore.jobs`)."""
    world = validation.positive_int("WORLD_SIZE", int(os.environ.get("WORLD_SIZE", "1")))
    rank = validation.integer("RANK", int(os.environ.get("RANK", "0")), lo=0, hi=world - 1)
    return rank, world


MODEL_KINDS = ("diffusers",)


def _model_spec(option: str, text: str) -> tuple[str, str]:
    """``KIND:DIR`` (``diffusers:path/to/folder``) with KIND one of :data:`MODEL_KINDS` and DIR a folder."""
    kind, sep, path = text.partition(":")
    if not sep or not path:
        raise ValueError(f"{option} must be KIND:DIR with KIND one of {', '.join(MODEL_KINDS)}, got {text!r}")
    validation.choice(f"{option} kind", kind, MODEL_KINDS)
    if not os.path.isdir(path):
        raise ValueError(f"{option} must name a model folder, got {path!r}, which is not a folder")
    return kind, path


def _foreign_model(args):
    """(model, sde, event shape, spec) of ``--model KIND:DIR``, loaded by the backend's adapters."""
    kind, path = args.model
    load = getattr(args.backend_obj, "load_model", None)
    if load is None:
        raise ValueError(f"--model {kind}:DIR needs a backend with adapters (--backend torch), "
                         f"got --backend {args.backend_obj.name}")
    model, sde = load(kind, path, dtype=args.dtype)
    event = tuple(int(d) for d in model.event_shape)
    return model, sde, event, {"model": kind, "model_dir": os.path.abspath(path), "sde": repr(sde)}


def _sample_model(args):
    """(model, sde, event shape, spec) of ``scorecore sample``: an analytic target's exact score,
    the EMA network of a training checkpoint (its SDE and event shape from its config), or a
    model saved by another library (``--model diffusers:DIR``)."""
    import scorecore as sc

    if getattr(args, "model", None):
        return _foreign_model(args)
    if args.checkpoint:
        from scorecore import checkpoint, training

        trainer, config, step = training.resume(args.checkpoint, backend=args.backend)
        event = tuple(int(d) for d in trainer.event_shape)
        spec = {"model": "checkpoint", "checkpoint": os.path.abspath(args.checkpoint), "train_step": step,
                "checkpoint_sha256": checkpoint.load_metadata(args.checkpoint).get("scorecore.sha256")}
        return trainer.score_model(ema=True), config.make_sde(), event, spec
    sde = make_sde(args.sde)
    target = sc.GaussianMixture.example(args.target)
    return target.score_model(sde), sde, (2,), {"model": f"exact score of {args.target}", "sde": args.sde}


def _write_grid(x, path, data_range=(-1.0, 1.0)):
    """Images x (n, C, H, W) in ``data_range`` tiled ⌈√n⌉ to a row, one pixel of padding, as a PNG."""
    import numpy as np
    from matplotlib import image

    x = np.asarray(x, dtype=np.float64)
    lo, hi = data_range
    x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    n, c, h, w = x.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, 3))
    for i in range(n):
        r, q = divmod(i, cols)
        tile = np.repeat(x[i], 3, axis=0) if c == 1 else x[i][:3]
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = tile.transpose(1, 2, 0)
    image.imsave(path, grid)


def _sample_grid(args, model, sde, event) -> int:
    """``--out grid.png``: the n samples drawn in chunks of ``--chunk`` rows (each row's noise
    depends on its index only, so the chunking does not change them), written as one image grid."""
    import numpy as np

    import scorecore as sc

    be, parts = args.backend_obj, []
    for a in range(0, args.n, args.chunk):
        rows = min(args.chunk, args.n - a)
        x = sc.sample(model, sde, (rows, *event), sampler=args.sampler, steps=args.steps, backend=be,
                      seed=args.seed, dtype=args.dtype, offset=a, progress=not args.quiet)
        parts.append(np.asarray(be.to_numpy(x)))
    _write_grid(np.concatenate(parts), args.out)
    print(f"wrote a grid of {args.n} samples of shape {event} to {args.out}")
    return 0


def _sample(args) -> int:
    from . import jobs

    rank, world = _ranks()
    model, sde, event, spec = _sample_model(args)
    be = args.backend_obj
    if args.out.lower().endswith(".png"):
        return _sample_grid(args, model, sde, event)
    t0 = time.perf_counter()
    report = jobs.sample_job(model, sde, event, args.n, args.chunk, args.out, spec=spec, sampler=args.sampler,
                             steps=args.steps, backend=be, seed=args.seed, dtype=args.dtype, rank=rank,
                             world=world, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    who = f"rank {rank}/{world}: " if world > 1 else ""
    print(f"{who}shards written {len(report.written)}, redone (corrupt) {len(report.redone)}, "
          f"skipped (complete) {len(report.skipped)} in {elapsed:.1f} s")
    if report.redone:
        print(f"{who}redone shards {report.redone}: their files did not match their SHA-256")
    print(f"{who}job {'complete' if report.complete else 'not complete yet'}: {args.out}")
    return 0


def _load_levels(path: str, event: tuple[int, ...]):
    """8-bit images (n, C, H, W) from an .npz (its ``levels``/``images``/``x`` array, else its first)
    or a folder of .png files; channels-last arrays (n, H, W, C) are transposed to ``event``."""
    import numpy as np

    if os.path.isdir(path):
        from matplotlib import image

        files = sorted(f for f in os.listdir(path) if f.lower().endswith(".png"))
        if not files:
            raise ValueError(f"--data folder {path!r} holds no .png images")
        imgs = [np.asarray(image.imread(os.path.join(path, f)), dtype=np.float64) for f in files]
        x = np.round(np.stack([i if i.ndim == 3 else i[..., None] for i in imgs]) * 255.0)
    else:
        with np.load(path, allow_pickle=False) as z:
            names = [k for k in ("levels", "images", "x") if k in z.files] or z.files
            if not names:
                raise ValueError(f"--data {path!r} holds no arrays")
            x = np.asarray(z[names[0]])
    if x.ndim == 4 and tuple(x.shape[1:]) != event and x.shape[3] in (1, 3, 4):
        x = x[..., :event[0]].transpose(0, 3, 1, 2)
    if tuple(x.shape[1:]) != event:
        raise ValueError(f"--data images have shape {tuple(x.shape[1:])}, the model's are {event}")
    if not np.all(x == np.round(x)) or x.min() < 0 or x.max() > 255:
        raise ValueError("--data must hold 8-bit images: integers in [0, 255]")
    return x.astype(np.int64)


def _likelihood(args) -> int:
    """Bits per dimension of quantized images, dequantized uniformly, one probability-flow solve
    per chunk of ``--batch-size`` under a progress bar: 8-bit images in [−1, 1] under a model saved
    by another library, or a data set under a scorecore checkpoint (its EMA weights)."""
    import numpy as np
    from tqdm.auto import tqdm

    import scorecore as sc

    if args.threads:
        args.backend_obj.set_threads(args.threads)
    if args.checkpoint:
        from scorecore import training

        model, config = training.load_score_model(args.checkpoint, backend=args.backend, dtype=args.dtype)
        sde, event = config.make_sde(), tuple(int(d) for d in model.event_shape)
    else:
        model, sde, event, _ = _foreign_model(args)
    if args.data == "digits":
        ds = _digits("test", "mlp" if len(event) == 1 else "unet")
        levels, n_levels, data_range = ds.levels.reshape((len(ds),) + event), ds.n_levels, ds.data_range
    else:
        levels, n_levels, data_range = _load_levels(args.data, event), 256, (-1.0, 1.0)
    n, per_draw, status, nfe = len(levels), [], [], 0
    # Under torchrun each rank scores its own rows (noise and probes at their row indices);
    # rank 0 prints the gathered per-image values, as one process would.
    ddp = sc.get_backend("torch").distributed if _ranks()[1] > 1 else None
    rank = ddp.init()[0] if ddp else 0
    start, count = ddp.rows(n) if ddp else (0, n)
    bar = tqdm(total=count, desc="bits/dim", unit="image", disable=args.quiet or rank > 0)
    for a in range(start, start + count, args.batch_size):
        chunk = levels[a:min(a + args.batch_size, start + count)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the flagged samples are counted below
            res = sc.likelihood.bits_per_dim(model, sde, chunk, n_levels=n_levels, data_range=data_range,
                                             n_dequant=args.n_dequant, backend=args.backend_obj, dtype=args.dtype,
                                             seed=args.seed, offset=a, divergence=args.divergence,
                                             probe="rademacher", rtol=args.tol, atol=args.tol,
                                             method="dopri5" if args.steps is None else "rk4",
                                             steps=args.steps or 100)
        per_draw.append(res.per_draw)
        status.append(res.status)
        nfe += res.nfe
        bar.update(len(chunk))
    bar.close()
    per_draw, status = np.concatenate(per_draw, axis=1), np.concatenate(status, axis=1)
    if ddp:
        per_draw = ddp.gather_rows(per_draw.T, n).T
        status = ddp.gather_rows(status.T, n).T
        if rank > 0:
            return 0
    flagged = (status != sc.samplers.status.CONVERGED).any(axis=0)
    bpd = per_draw[:, ~flagged].mean(axis=0)
    stderr = float(bpd.std(ddof=1) / np.sqrt(bpd.size)) if bpd.size > 1 else float("nan")
    codes, counts = np.unique(status, return_counts=True)
    words = ", ".join(f"{sc.samplers.status.STATUS_MESSAGES[int(c)]}: {int(k)}" for c, k in zip(codes, counts))
    print(f"bits/dim      {bpd.mean():.4f} ± {stderr:.4f} (SE over {bpd.size} images; {args.n_dequant} "
          f"dequantization draw(s), divergence {args.divergence}), median {np.median(bpd):.4f}")
    print(f"solves        {words}; NFE {nfe}")
    if flagged.any():
        print(f"flagged       {int(flagged.sum())} of {n} images left out of the mean (rows "
              f"{np.flatnonzero(flagged)[:20].tolist()})")
    if args.hist:
        plots.histogram(bpd, args.hist, f"bits/dim of {bpd.size} images, mean {bpd.mean():.3f}", "bits/dim")
        print(f"histogram     {args.hist}")
    return 0


def _check_likelihood(args) -> None:
    import scorecore as sc

    if (args.model is None) == (args.checkpoint is None):
        raise ValueError("give one model: --model KIND:DIR or --checkpoint PATH")
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint must be a scorecore checkpoint file, got {args.checkpoint!r}")
    if not (args.data == "digits" or os.path.isdir(args.data)
            or (os.path.isfile(args.data) and args.data.endswith(".npz"))):
        raise ValueError(f"--data must be 'digits', a folder of .png images or an .npz file, got {args.data!r}")
    if args.hist:
        _check_image_path("--hist", args.hist)
    args.backend_obj = sc.get_backend(args.backend)
    args.backend_obj.dtype(args.dtype)


def _merge(args) -> int:
    from . import jobs

    x = jobs.merge(args.dir, into=args.out)
    print(f"merged        {x.shape[0]} samples of shape {tuple(x.shape[1:])} ({x.dtype}) into {args.out}")
    return 0


def _check_sample(args) -> None:
    import scorecore as sc

    from . import jobs

    if args.chunk > args.n:
        args.chunk = args.n
    if args.backend is None:
        args.backend = "torch" if args.model else "numpy"
    if args.model and args.checkpoint:
        raise ValueError("--model and --checkpoint name two models: give one")
    grid = args.out.lower().endswith(".png")
    if grid:
        _check_image_path("--out", args.out)
    else:
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out must be a folder, got the file {args.out!r} (an --out ending in .png "
                             "writes an image grid)")
        _check_writable_dir("--out", os.path.abspath(args.out), args.out, create=True)
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint must be a training checkpoint file, got {args.checkpoint!r}, "
                         "which does not exist")
    _ranks()
    args.backend_obj = sc.get_backend(args.backend)
    args.backend_obj.dtype(args.dtype)  # float64 on JAX without x64 fails now
    model, sde, event, spec = _sample_model(args)
    jobs.check_sampler(model, sde, event, args.sampler, args.steps, backend=args.backend_obj, dtype=args.dtype)
    if grid and len(event) != 3:
        raise ValueError(f"--out {args.out!r} asks for an image grid, but the model's samples have shape {event}, "
                         "not (C, H, W): give a folder for a sampling job")
    if not grid and os.path.exists(os.path.join(args.out, jobs.MANIFEST)):
        # A rerun must be the same job: compared before any sampling.
        be = args.backend_obj
        jobs.open_job(args.out, args.n, args.chunk, {
            **spec, "sampler": args.sampler, "steps": args.steps, "seed": args.seed,
            "dtype": be.dtype_name(args.dtype), "backend": be.name, "event_shape": list(event), "options": {}})


def _check_merge(args) -> None:
    from . import jobs

    if args.out is None:
        args.out = os.path.join(args.dir, "samples.npy")
    if not os.path.isfile(os.path.join(args.dir, jobs.MANIFEST)):
        raise ValueError(f"DIR must be a folder written by 'scorecore sample', got {args.dir!r} (no {jobs.MANIFEST})")
    if not args.out.endswith(".npy"):
        raise ValueError(f"--out must end in .npy, got {args.out!r}")
    _check_writable_dir("--out", os.path.dirname(os.path.abspath(args.out)), args.out, create=False)


def _check_demo(args) -> None:
    _check_image_path("--out", args.out)


def _check_train(args) -> None:
    import scorecore as sc

    if args.model == "unet" and args.data != "digits":
        raise ValueError(f"--model unet is for images: use --model mlp with --data {args.data}, or --data digits")
    if args.batch_size > args.n_data and args.data != "digits":
        raise ValueError(f"--batch-size ({args.batch_size}) must not exceed --n-data ({args.n_data})")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out must be a folder, got the file {args.out!r}")
    _check_writable_dir("--out", os.path.abspath(args.out), args.out, create=True)
    if _ranks()[1] > 1 and args.backend != "torch":
        raise ValueError(f"--backend must be torch under torchrun (WORLD_SIZE={_ranks()[1]}), got {args.backend!r}")
    if args.resume:
        ckpt = os.path.join(args.out, "checkpoint.safetensors")
        if not os.path.isfile(ckpt):
            raise ValueError(f"--resume needs a checkpoint at {ckpt!r}, which does not exist")
    sc.get_backend(args.backend)  # a missing framework is reported now, not after the data is loaded
    _image_formats()


def main(argv=None) -> int:
    from .bench import MODELS, VARIANTS
    from .samplers import SAMPLERS

    parser = argparse.ArgumentParser(prog="scorecore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="annealed Langevin on an analytic Gaussian mixture (NumPy); writes a PNG")
    demo.add_argument("--target", default="8-ring", choices=["8-ring", "5x5-grid"])
    demo.add_argument("--sde", default="ve", choices=sorted(SDES))
    demo.add_argument("--n", type=_int("--n"), default=5000, help="number of samples")
    demo.add_argument("--levels", type=_int("--levels", validation.steps), default=100, help="noise levels L")
    demo.add_argument("--steps-each", type=_int("--steps-each", validation.steps), default=10,
                      help="Langevin steps T per level")
    demo.add_argument("--seed", type=_int("--seed", validation.integer, lo=0), default=0)
    demo.add_argument("--out", default="demo.png", help="where to write the picture (.png, .pdf, .svg, ...)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo, check=_check_demo, parser=demo)
    tr = sub.add_parser("train", help="train a score network with DSM; writes a checkpoint, a loss log and PNGs")
    tr.add_argument("--data", default="8-ring", choices=["8-ring", "5x5-grid", "rings", "digits"])
    tr.add_argument("--backend", default="numpy", choices=["numpy", "torch", "jax"])
    tr.add_argument("--model", default="mlp", choices=["mlp", "unet"])
    tr.add_argument("--sde", default="vp", choices=sorted(SDES))
    tr.add_argument("--steps", type=_int("--steps", validation.steps), default=2000,
                    help="total updates (a resumed run continues to this)")
    tr.add_argument("--batch-size", type=_int("--batch-size"), default=128)
    tr.add_argument("--lr", type=_float("--lr"), default=1e-3, help="Adam learning rate after warm-up")
    tr.add_argument("--warmup", type=_int("--warmup", validation.integer, lo=0), default=100,
                    help="linear warm-up steps (0: none)")
    tr.add_argument("--grad-clip", type=_float("--grad-clip", validation.real), default=1.0,
                    help="clip gradients to this global norm (≤0: off)")
    tr.add_argument("--ema", type=_float("--ema", validation.real, lo=0.0, hi=1.0, hi_open=True), default=0.999,
                    help="EMA decay of the weights, in [0, 1)")
    tr.add_argument("--seed", type=_int("--seed", validation.integer, lo=0), default=0)
    tr.add_argument("--width", type=_int("--width"), default=128, help="MLP hidden width, or U-Net base channels")
    tr.add_argument("--depth", type=_int("--depth"), default=3, help="MLP hidden layers")
    tr.add_argument("--n-data", type=_int("--n-data"), default=20_000, help="size of a 2-D toy training set")
    tr.add_argument("--out", default="runs/train", help="directory for checkpoint, loss.csv and PNGs")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    tr.add_argument("--checkpoint-every", type=_int("--checkpoint-every", validation.integer, lo=0), default=1000,
                    help="also checkpoint every N steps (0: end only)")
    tr.add_argument("--sampler", default="pc", type=_typed("--sampler", str, validation.choice, choices=SAMPLERS),
                    help="sampler for the final picture (scorecore.samplers)")
    tr.add_argument("--n-dequant", type=_int("--n-dequant"), default=2,
                    help="dequantization draws for the digits' test bits/dim")
    tr.add_argument("--sample-steps", type=_int("--sample-steps", validation.steps), default=None,
                    help="sampler steps (PC: predictor steps; ALD: noise levels)")
    tr.add_argument("--steps-each", type=_int("--steps-each", validation.steps), default=5,
                    help="ALD: Langevin steps per level")
    tr.add_argument("--n-samples", type=_int("--n-samples"), default=2000, help="samples drawn for the picture")
    tr.add_argument("--threads", type=_int("--threads", validation.integer, lo=0), default=0,
                    help="torch CPU threads (0: torch's default)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_train, check=_check_train, parser=tr)
    bench = sub.add_parser("bench", help="NFE/s of the samplers on every installed backend (and a GPU with --gpu)")
    bench.add_argument("--model", default="mixture-2d", choices=list(MODELS))
    bench.add_argument("--batch", type=_int("--batch"), default=16384)
    bench.add_argument("--steps", type=_int("--steps", validation.steps), default=20)
    bench.add_argument("--repeats", type=_int("--repeats"), default=3, help="best of this many warm runs")
    bench.add_argument("--backends", type=_names("--backends", VARIANTS), default=None,
                       help="comma-separated (default: numpy,torch,torch-compile,jax,cupy)")
    bench.add_argument("--gpu", action="store_true", help="add torch-cuda, torch-compile-cuda, jax-gpu, cupy")
    bench.set_defaults(func=_bench, check=lambda args: None, parser=bench)  # its options are checked by type=
    sm = sub.add_parser("sample", help="a resumable sampling job: numbered, checksummed shards and a manifest "
                        "in OUT (ranks of torchrun split the shards)")
    sm.add_argument("--target", default="8-ring", choices=["8-ring", "5x5-grid"], help="analytic target (exact score)")
    sm.add_argument("--checkpoint", default=None, help="sample a trained network instead (its EMA weights)")
    sm.add_argument("--model", default=None, type=_typed("--model", str, _model_spec),
                    help="sample a model saved by another library: diffusers:DIR (a UNet2DModel folder, "
                         "safetensors only); implies --backend torch")
    sm.add_argument("--sde", default="vp", choices=sorted(SDES))
    sm.add_argument("--sampler", default="pc", type=_typed("--sampler", str, validation.choice, choices=SAMPLERS))
    sm.add_argument("--steps", type=_int("--steps", validation.steps), default=None,
                    help="sampler steps (adaptive samplers: the step budget)")
    sm.add_argument("--n", type=_int("--n"), default=50_000, help="number of samples")
    sm.add_argument("--chunk", type=_int("--chunk"), default=4096, help="samples per shard (one in memory per rank)")
    sm.add_argument("--seed", type=_int("--seed", validation.integer, lo=0), default=0)
    sm.add_argument("--backend", default=None, choices=["numpy", "torch", "jax"],
                    help="default: torch with --model, numpy otherwise")
    sm.add_argument("--dtype", default=None, choices=["float32", "float64"], help="default: the backend's")
    sm.add_argument("--out", default="runs/samples",
                    help="the job's folder (a rerun resumes it), or a .png: one image grid of the samples")
    sm.add_argument("--quiet", action="store_true", help="no progress bar")
    sm.set_defaults(func=_sample, check=_check_sample, parser=sm)
    lk = sub.add_parser("likelihood", help="bits/dim of quantized images under a scorecore checkpoint or a model "
                        "saved by another library: mean ± SE, median, per-sample solver status")
    lk.add_argument("--model", default=None, type=_typed("--model", str, _model_spec),
                    help="diffusers:DIR (a UNet2DModel folder, safetensors only)")
    lk.add_argument("--checkpoint", default=None,
                    help="a scorecore training or EMA checkpoint (e.g. data/checkpoints/digits_unet_likelihood.safetensors)")
    lk.add_argument("--data", required=True,
                    help="'digits' (scikit-learn's test split), a folder of .png images, or an .npz of uint8 images")
    lk.add_argument("--tol", type=_float("--tol"), default=1e-5, help="the adaptive solve's rtol = atol")
    lk.add_argument("--hist", default=None, help="write a histogram of the per-image bits/dim to this picture")
    lk.add_argument("--n-dequant", type=_int("--n-dequant"), default=1, help="uniform dequantization draws")
    lk.add_argument("--batch-size", type=_int("--batch-size"), default=16)
    lk.add_argument("--divergence", default="hutchinson", choices=["exact", "hutchinson"],
                    help="exact costs one backward pass per dimension: hutchinson for images")
    lk.add_argument("--steps", type=_int("--steps", validation.steps), default=None,
                    help="fixed RK4 steps instead of the adaptive dopri5 solve")
    lk.add_argument("--seed", type=_int("--seed", validation.integer, lo=0), default=0)
    lk.add_argument("--backend", default="torch", choices=["torch"])
    lk.add_argument("--dtype", default=None, choices=["float32", "float64"], help="default: the backend's")
    lk.add_argument("--threads", type=_int("--threads", validation.integer, lo=0), default=0,
                    help="torch CPU threads (0: torch's default)")
    lk.add_argument("--quiet", action="store_true", help="no progress bar")
    lk.set_defaults(func=_likelihood, check=_check_likelihood, parser=lk)

    mg = sub.add_parser("merge", help="one .npy array from the shards of a 'scorecore sample' job, checksums checked")
    mg.add_argument("dir", metavar="DIR", help="the job's folder")
    mg.add_argument("--out", default=None, help="the .npy file to write (default: DIR/samples.npy)")
    mg.set_defaults(func=_merge, check=_check_merge, parser=mg)
    args = parser.parse_args(argv)
    try:
        args.check(args)
    except (TypeError, ValueError, ImportError, RuntimeError) as exc:  # JobError is a ValueError
        args.parser.error(str(exc))  # exits with status 2 before any work
    return args.func(args)


__all__ = ["main"]


if __name__ == "__main__":
    sys.exit(main())
