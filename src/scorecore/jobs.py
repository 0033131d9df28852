"""Sampling jobs that survive: numbered, checksummed shards in a folder, with a manifest.

A job of n samples in chunks of c is the shards s = 0 … ⌈n/c⌉ − 1, shard s holding the rows
[s·c, min((s + 1)·c, n)) drawn at ``offset = s·c``. Because sample i's noise depends only on
(seed, i, step) (:mod:`scorecore.random`), shard s holds the rows a single run of all n samples
gives at those indices — bit for bit in the noise, to rounding in the model's arithmetic — so
the shards of a killed and resumed job, of a job split over ranks, and of one run agree.

The folder holds

* ``manifest.json`` — the job: its description (sampler, model, SDE, seed, dtype, backend,
  event shape, … as given by the caller), n, the chunk, and every shard's offset and count;
  once all shards exist, also each shard's SHA-256;
* ``shard-00000.safetensors`` … — the samples ``x`` of one shard (and its offset and count in
  the metadata), each written to a temporary name and renamed, so a killed job never leaves
  half a shard under its name; the same shard is the same bytes whichever process wrote it;
* ``shard-00000.json`` … — the shard's record (index, offset, count, SHA-256 of the file),
  written after the shard: a shard is complete when its record exists and the file's
  SHA-256 equals the record's.

Ranks (``torchrun``, several hosts sharing a folder) take the shards s ≡ rank (mod world)
and need no communication: the records are per shard, and whichever rank finds every record
present writes the same complete manifest. :func:`merge` checks every checksum and
concatenates the shards in order, one shard in memory at a time when it writes to a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import checkpoint, validation

MANIFEST = "manifest.json"
#: The one metadata entry of a shard file: its offset and count (JSON).
SHARD_KEY = "scorecore.shard"
FORMAT = "scorecore-sample-job/1"


class JobError(ValueError):
    """A job folder that does not fit the job asked for, or whose shards are missing or corrupt."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index``: ``count`` rows starting at sample ``offset``."""

    index: int
    offset: int
    count: int

    @property
    def file(self) -> str:
        return f"shard-{self.index:05d}.safetensors"

    @property
    def record(self) -> str:
        return f"shard-{self.index:05d}.json"


@dataclass
class JobReport:
    """What one call of :func:`run` did on this rank: shards ``written`` (fresh), ``skipped``
    (already complete), ``redone`` (present but failing their checksum, or without a record)."""

    written: list
    skipped: list
    redone: list
    complete: bool


def plan(n: int, chunk: int) -> list[Shard]:
    """The shards of n samples in chunks of ``chunk``: shard s at offset s·chunk."""
    n, chunk = validation.positive_int("n", n), validation.positive_int("chunk", chunk)
    return [Shard(s, s * chunk, min(chunk, n - s * chunk)) for s in range(math.ceil(n / chunk))]


def rank_shards(shards: list[Shard], rank: int, world: int) -> list[Shard]:
    """The shards rank ``rank`` of ``world`` takes: s ≡ rank (mod world)."""
    world = validation.positive_int("world", world)
    rank = validation.integer("rank", rank, lo=0, hi=world - 1)
    return shards[rank::world]


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: str, obj) -> None:
    """Atomically: a reader sees the old file or the new one, never a part."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: str, what: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise JobError(f"{what} {path!r} is unreadable ({type(exc).__name__}: {exc})") from None


def _description(n: int, chunk: int, spec: dict) -> dict:
    spec = validation.instance("spec", spec, dict, "a dict describing the job (JSON values)")
    try:
        spec = json.loads(json.dumps(spec, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"spec must hold JSON values only ({exc})") from None
    return {"format": FORMAT, "n": n, "chunk": chunk, "spec": spec}


def open_job(out: str, n: int, chunk: int, spec: dict) -> list[Shard]:
    """The shards of the job in folder ``out``: its manifest written if new, else checked to
    describe the same job (n, chunk and every field of ``spec``), so that a rerun resumes the
    job it started and never mixes shards of two jobs. Raises :class:`JobError` naming the
    fields that differ."""
    shards = plan(n, chunk)
    desc = _description(n, chunk, spec)
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        old = _read_json(path, "manifest")
        old_desc = {k: old.get(k) for k in desc}
        if old_desc != desc:
            fields = [k for k in ("format", "n", "chunk") if old_desc[k] != desc[k]]
            a, b = old_desc.get("spec") or {}, desc["spec"]
            fields += [f"spec.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            raise JobError(f"{out!r} holds another job ({', '.join(fields)} differ: the folder has "
                           + ", ".join(f"{f}={_field(old_desc, f)!r}" for f in fields) + "; asked for "
                           + ", ".join(f"{f}={_field(desc, f)!r}" for f in fields)
                           + "): use another --out, or remove the folder")
        return shards
    os.makedirs(out, exist_ok=True)
    _write_json(path, {**desc, "shards": [_entry(s) for s in shards]})
    return shards


def _field(desc, name):
    return desc["spec"].get(name[5:]) if name.startswith("spec.") else desc.get(name)


def _entry(s: Shard, sha=None) -> dict:
    e = {"index": s.index, "offset": s.offset, "count": s.count, "file": s.file}
    return e if sha is None else {**e, "sha256": sha}


def shard_state(out: str, shard: Shard) -> str:
    """``"complete"``, ``"missing"`` (no file), or ``"corrupt"`` (a file without its record, or
    whose SHA-256 is not the record's: a flipped byte, a truncated copy, another job's shard)."""
    f, r = os.path.join(out, shard.file), os.path.join(out, shard.record)
    if not os.path.exists(f):
        return "missing"
    if not os.path.exists(r):
        return "corrupt"
    try:
        with open(r) as fh:
            rec = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return "corrupt"
    if rec.get("offset") != shard.offset or rec.get("count") != shard.count:
        return "corrupt"
    return "complete" if rec.get("sha256") == file_sha256(f) else "corrupt"


def _write_shard(out: str, shard: Shard, x: np.ndarray, meta: dict) -> str:
    tmp = os.path.join(out, f".{shard.file}.tmp{os.getpid()}")
    import safetensors.numpy

    # One metadata entry: safetensors writes its metadata map in hash order, so several entries
    # could come out in another order in another process, and the same shard hash differently.
    safetensors.numpy.save_file({"x": np.ascontiguousarray(x)}, tmp, metadata={
        SHARD_KEY: json.dumps({"offset": shard.offset, "count": shard.count, **meta}, sort_keys=True)})
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    sha = file_sha256(tmp)
    os.replace(tmp, os.path.join(out, shard.file))
    _write_json(os.path.join(out, shard.record), {**_entry(shard, sha)})
    return sha


def _remove_partial(out: str, mine: list[Shard]) -> None:
    """Delete the temporary files a killed run of this rank left (never another rank's)."""
    prefixes = tuple(f".{s.file}.tmp" for s in mine)
    for name in os.listdir(out):
        if name.startswith(prefixes):
            os.remove(os.path.join(out, name))


def _finalize(out: str, shards: list[Shard]) -> bool:
    """Fold the shard records into the manifest once every shard is complete."""
    shas = []
    for s in shards:
        if shard_state(out, s) != "complete":
            return False
        shas.append(_read_json(os.path.join(out, s.record), "shard record")["sha256"])
    path = os.path.join(out, MANIFEST)
    man = _read_json(path, "manifest")
    man["shards"] = [_entry(s, h) for s, h in zip(shards, shas)]
    man["complete"] = True
    _write_json(path, man)
    return True


def run(out: str, draw: Callable[[int, int], np.ndarray], n: int, chunk: int, spec: dict, *,
        rank: int = 0, world: int = 1, progress: bool = True,
        on_shard: Callable[[Shard], None] | None = None) -> JobReport:
    """Draw the job's shards that are not complete yet: ``draw(offset, count)`` returns the
    (count, ...) NumPy array of samples offset … offset + count − 1.

    Only this rank's shards (s ≡ rank mod world) are drawn, one at a time, so at most one
    chunk is held in memory. A complete shard is skipped; a missing one drawn; a corrupt one
    (:func:`shard_state`) drawn again; half-written files a killed run left are removed.
    ``on_shard(shard)`` is called after each shard is written. A progress bar counts this rank's samples across chunks."""
    validation.boolean("progress", progress)
    shards = open_job(out, n, chunk, spec)
    mine = rank_shards(shards, rank, world)
    states = {s.index: shard_state(out, s) for s in mine}
    _remove_partial(out, mine)
    report = JobReport([], [s.index for s in mine if states[s.index] == "complete"], [], False)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.count for s in mine), desc=f"sampling (rank {rank}/{world})" if world > 1
                   else "sampling", unit="sample", disable=None,
                   initial=sum(s.count for s in mine if states[s.index] == "complete"))
    try:
        for s in mine:
            if states[s.index] == "complete":
                continue
            x = np.asarray(draw(s.offset, s.count))
            if x.shape[0] != s.count:
                raise JobError(f"draw(offset={s.offset}, count={s.count}) returned {x.shape[0]} rows")
            _write_shard(out, s, x, {"job": FORMAT})
            (report.redone if states[s.index] == "corrupt" else report.written).append(s.index)
            del x  # one chunk at a time
            if bar is not None:
                bar.update(s.count)
            if on_shard is not None:
                on_shard(s)
    finally:
        if bar is not None:
            bar.close()
    report.complete = _finalize(out, shards)
    return report


def status(out: str) -> dict:
    """``{"n", "chunk", "spec", "shards": {index: state}}`` of the job in ``out``."""
    man = _read_json(os.path.join(out, MANIFEST), "manifest")
    if man.get("format") != FORMAT:
        raise JobError(f"{out!r} is not a scorecore sample job (its manifest has format {man.get('format')!r})")
    shards = plan(man["n"], man["chunk"])
    return {"n": man["n"], "chunk": man["chunk"], "spec": man["spec"],
            "shards": {s.index: shard_state(out, s) for s in shards}}


def _load(out: str, shard: Shard) -> np.ndarray:
    # The file's SHA-256 was checked against its record by status(): the tensor and header both.
    return checkpoint.load(os.path.join(out, shard.file), verify=False)["x"]


def merge(out: str, *, into: str | None = None) -> np.ndarray:
    """The job's n samples as one array, every shard's checksum checked first; raises
    :class:`JobError` naming the shards that are missing or corrupt.

    ``into``: a ``.npy`` path written shard by shard (one shard in memory at a time),
    returned as a read-only memory map."""
    st = status(out)
    bad = {i: state for i, state in st["shards"].items() if state != "complete"}
    if bad:
        listed = ", ".join(f"{i} ({state})" for i, state in list(bad.items())[:10])
        raise JobError(f"{out!r} is not complete: {len(bad)} of {len(st['shards'])} shards are missing or corrupt: "
                       f"{listed}{', ...' if len(bad) > 10 else ''}; rerun the job to draw them")
    shards = plan(st["n"], st["chunk"])
    first = _load(out, shards[0])
    shape, dtype = (st["n"], *first.shape[1:]), first.dtype
    if into is None:
        dest = np.empty(shape, dtype)
        for s, x in _shards_in_order(out, shards, first, shape, dtype):
            dest[s.offset:s.offset + s.count] = x
        return dest
    if not str(into).endswith(".npy"):
        raise ValueError(f"into must be a path ending in .npy, got {into!r}")
    # Plain writes after an .npy header, not a memory map: a map's touched pages count as this
    # process's resident memory, a write's do not.
    tmp = f"{into}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": shape})
        for _, x in _shards_in_order(out, shards, first, shape, dtype):
            f.write(np.ascontiguousarray(x).tobytes())
    os.replace(tmp, into)
    return np.load(into, mmap_mode="r")


def _shards_in_order(out, shards, first, shape, dtype):
    for s in shards:
        x = first if s.index == 0 else _load(out, s)
        if x.shape != (s.count, *shape[1:]) or x.dtype != dtype:
            raise JobError(f"shard {s.index} of {out!r} holds {x.dtype} {x.shape}, expected {dtype} "
                           f"{(s.count, *shape[1:])}")
        yield s, x


def sample_job(model, sde, event_shape, n: int, chunk: int, out: str, *, spec: dict, sampler="pc",
               steps=None, backend=None, seed: int = 0, dtype=None, rank: int = 0, world: int = 1,
               progress: bool = True, on_shard=None, **options) -> JobReport:
    """:func:`run` with ``draw`` = :func:`scorecore.sample` of ``(count, *event_shape)`` at
    ``offset`` (its own progress bar off: the job's counts samples across chunks). ``spec``
    describes the model (the job's manifest records it with the sampler's arguments)."""
    from .api import sample
    from .backend import get_backend

    be = get_backend(backend)
    event_shape = tuple(validation.shape("event_shape", (1, *event_shape))[1:])
    full = {**spec, "sampler": sampler if isinstance(sampler, str) else repr(sampler), "steps": steps,
            "seed": seed, "dtype": be.dtype_name(dtype), "backend": be.name, "event_shape": list(event_shape),
            "options": {k: options[k] for k in sorted(options)}}

    check_sampler(model, sde, event_shape, sampler, steps, backend=be, dtype=dtype, **options)

    def draw(offset, count):
        x = sample(model, sde, (count, *event_shape), sampler, steps, backend=be, seed=seed, dtype=dtype,
                   offset=offset, progress=False, **options)
        return be.to_numpy(x)

    return run(out, draw, n, chunk, full, rank=rank, world=world, progress=progress, on_shard=on_shard)


def check_sampler(model, sde, event_shape, sampler="pc", steps=None, *, backend=None, dtype=None, **options):
    """Build (not run) the sampler's program for a one-row batch, so that a sampler argument that
    cannot work (too few steps for the VP chain, an unknown option) fails before any shard."""
    from .api import default_eps
    from .backend import get_backend
    from .samplers import Context, make_sampler

    be = get_backend(backend)
    ctx = Context(be, be.dtype(dtype), (1, *event_shape), 0)
    make_sampler(sampler, steps, **options).program(model, sde, ctx, float(default_eps(sde)))


__all__ = ["FORMAT", "MANIFEST", "JobError", "JobReport", "Shard", "check_sampler", "merge", "open_job", "plan",
           "rank_shards", "run", "sample_job", "shard_state", "status"]
