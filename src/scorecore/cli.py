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


def _sample_model(args):
    """(model, sde, event shape, spec) of ``scorecore sample``: an analytic target's exact score,
    or the EMA network of a training checkpoint (its SDE and event shape from its config)."""
    import scorecore as sc

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


def _sample(args) -> int:
    from . import jobs

    rank, world = _ranks()
    model, sde, event, spec = _sample_model(args)
    be = args.backend_obj
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
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out must be a folder, got the file {args.out!r}")
    _check_writable_dir("--out", os.path.abspath(args.out), args.out, create=True)
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint must be a training checkpoint file, got {args.checkpoint!r}, "
                         "which does not exist")
    _ranks()
    args.backend_obj = sc.get_backend(args.backend)
    args.backend_obj.dtype(args.dtype)  # float64 on JAX without x64 fails now
    model, sde, event, spec = _sample_model(args)
    jobs.check_sampler(model, sde, event, args.sampler, args.steps, backend=args.backend_obj, dtype=args.dtype)
    if os.path.exists(os.path.join(args.out, jobs.MANIFEST)):
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
    sm.add_argument("--sde", default="vp", choices=sorted(SDES))
    sm.add_argument("--sampler", default="pc", type=_typed("--sampler", str, validation.choice, choices=SAMPLERS))
    sm.add_argument("--steps", type=_int("--steps", validation.steps), default=None,
                    help="sampler steps (adaptive samplers: the step budget)")
    sm.add_argument("--n", type=_int("--n"), default=50_000, help="number of samples")
    sm.add_argument("--chunk", type=_int("--chunk"), default=4096, help="samples per shard (one in memory per rank)")
    sm.add_argument("--seed", type=_int("--seed", validation.integer, lo=0), default=0)
    sm.add_argument("--backend", default="numpy", choices=["numpy", "torch", "jax"])
    sm.add_argument("--dtype", default=None, choices=["float32", "float64"], help="default: the backend's")
    sm.add_argument("--out", default="runs/samples", help="the job's folder (a rerun resumes it)")
    sm.add_argument("--quiet", action="store_true", help="no progress bar")
    sm.set_defaults(func=_sample, check=_check_sample, parser=sm)
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


if __name__ == "__main__":
    sys.exit(main())
