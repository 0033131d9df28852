"""Checkpoints you can trust: the tensors' SHA-256 travels in the safetensors metadata and is
verified on load; a resumed trainer checks every tensor it expects (parameters, EMA,
optimizer state) for presence, shape and dtype, and names the first that is wrong."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import scorecore as sc
from scorecore import checkpoint, training
from scorecore.checkpoint import CheckpointError
from scorecore.training import TrainConfig, fit, make_trainer

pytest.importorskip("safetensors")

TINY = dict(hidden=8, depth=1, embed_dim=4, fourier_scale=4.0)
TRAINER_MODULE = {"numpy": "numpy", "torch": "torch", "jax": "flax.nnx"}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny matrices: torch's thread pool costs more than it saves (and the CPU is shared)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tensors():
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4).astype(np.float32),
            "count": np.asarray(7, dtype=np.int64)}


def flip_byte(path, position):
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def data_start(path) -> int:
    """Where the tensor bytes begin: after the 8-byte header length and the JSON header."""
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_len


def test_a_flipped_byte_in_the_tensors_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    checkpoint.save(path, tensors())
    assert set(checkpoint.load(path)) == {"w", "b", "count"}
    size = path.stat().st_size
    for position in (data_start(path), size - 1, (data_start(path) + size) // 2):
        checkpoint.save(path, tensors())
        flip_byte(path, position)
        with pytest.raises(CheckpointError, match=rf"checkpoint '{path}' is corrupt: its tensors do not match "
                                                  "the SHA-256 checksum"):
            checkpoint.load(path)


def test_a_damaged_header_or_a_truncated_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    checkpoint.save(path, tensors())
    flip_byte(path, 8)  # the header's opening '{'
    with pytest.raises(CheckpointError, match=rf"checkpoint '{path}' is not a readable safetensors file"):
        checkpoint.load(path)
    checkpoint.save(path, tensors())
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match=rf"checkpoint '{path}' is not a readable safetensors file"):
        checkpoint.load(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "nothing.safetensors")


def test_a_file_without_a_checksum_loads_only_when_asked(tmp_path):
    import safetensors.numpy

    path = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"w": np.ones((2, 2))}, str(path))
    with pytest.raises(CheckpointError, match="has no scorecore.sha256 checksum.*verify=False"):
        checkpoint.load(path)
    np.testing.assert_array_equal(checkpoint.load(path, verify=False)["w"], np.ones((2, 2)))


def test_the_checksum_covers_names_dtypes_shapes_and_bytes_in_a_fixed_order():
    base = tensors()
    h = checkpoint.checksum(base)
    assert checkpoint.checksum(dict(reversed(list(base.items())))) == h  # insertion order is irrelevant
    changed = [  # each differs from base in one field only
        {**base, "w": base["w"].reshape(4, 3)},                            # shape
        {**base, "w": base["w"].view(np.int64)},                           # dtype
        {("v" if k == "w" else k): v for k, v in base.items()},            # name
        {**base, "b": np.concatenate([np.nextafter(base["b"][:1], np.float32(0)), base["b"][1:]])},  # one ulp
    ]
    for other in changed:
        assert checkpoint.checksum(other) != h


def test_metadata_round_trips_without_the_checksum_and_0d_stays_0d(tmp_path):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, tensors(), metadata={"arch": "MLP"})
    assert checkpoint.load_metadata(path) == {"arch": "MLP"}
    assert checkpoint.load(path)["count"].shape == ()
    with pytest.raises(ValueError, match="reserved for the checksum"):
        checkpoint.save(path, tensors(), metadata={checkpoint.CHECKSUM_KEY: "0"})


# -- resume: every expected tensor present, with its shape and dtype ---------------------------

def saved_run(backend, tmp_path, steps=2):
    pytest.importorskip(TRAINER_MODULE[backend])
    data = sc.data.toy("8-ring", 32, seed=3)
    cfg = TrainConfig(backend=backend, steps=4, batch_size=16, lr=1e-2, warmup=2, ema=0.9, seed=7,
                      model_kwargs=TINY)
    trainer = make_trainer(cfg, (2,))
    fit(trainer, data, cfg, stop=steps, progress=False)
    path = tmp_path / f"{backend}.safetensors"
    training.save_checkpoint(path, trainer, cfg, steps, training.batches_per_epoch(data, cfg.batch_size))
    return path


def rewrite(path, edit):
    """The checkpoint at ``path`` with its tensors edited (and a valid checksum of the result)."""
    state, meta = checkpoint.load(path), checkpoint.load_metadata(path)
    checkpoint.save(path, edit(dict(state)), meta)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_resume_names_a_missing_optimizer_tensor(backend, tmp_path):
    path = saved_run(backend, tmp_path)
    first_opt = next(k for k in make_trainer(training.load_checkpoint(path)[0], (2,)).state_dict()
                     if k.startswith("opt."))
    rewrite(path, lambda s: {k: v for k, v in s.items() if k != first_opt})
    with pytest.raises(ValueError, match=rf"checkpoint '{path}' has no tensor '{first_opt}' \(expected shape"):
        training.resume(path)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_resume_names_a_mis_shaped_ema_tensor(backend, tmp_path):
    path = saved_run(backend, tmp_path)
    good = checkpoint.load(path)["ema.out.weight"]
    rewrite(path, lambda s: {**s, "ema.out.weight": np.zeros(good.shape[::-1] + (1,), good.dtype)})
    with pytest.raises(ValueError, match=rf"tensor 'ema.out.weight' of checkpoint '{path}' has shape "
                                         rf"\({good.shape[1]}, {good.shape[0]}, 1\), expected \({good.shape[0]}, "
                                         rf"{good.shape[1]}\)"):
        training.resume(path)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_resume_names_a_tensor_of_another_dtype_and_an_unexpected_one(backend, tmp_path):
    path = saved_run(backend, tmp_path)
    good = checkpoint.load(path)["params.out.bias"]
    other = np.float64 if good.dtype == np.float32 else np.float32
    rewrite(path, lambda s: {**s, "params.out.bias": good.astype(other)})
    with pytest.raises(ValueError, match=rf"tensor 'params.out.bias' of checkpoint '{path}' has dtype "
                                         rf"{np.dtype(other)}, expected {good.dtype}"):
        training.resume(path)
    rewrite(path, lambda s: {**s, "params.out.bias": good, "ema.extra": np.zeros(2)})
    with pytest.raises(ValueError, match="tensors this trainer does not expect, first 'ema.extra'"):
        training.resume(path)


def test_a_checkpoint_moved_to_another_backend_may_change_precision(tmp_path):
    """torch trains in float32; resumed on NumPy (float64) its floats are cast, not refused."""
    path = saved_run("torch", tmp_path)
    trainer, config, step = training.resume(path, backend="numpy")
    assert (config.backend, step) == ("numpy", 2)
    np.testing.assert_allclose(trainer.state_dict()["ema.out.weight"], checkpoint.load(path)["ema.out.weight"],
                               rtol=0, atol=0)
    rewrite(path, lambda s: {**s, "opt.count": s["opt.count"].astype(np.float32)})
    with pytest.raises(ValueError, match="tensor 'opt.count' .* has dtype float32, expected int64"):
        training.resume(path, backend="numpy")


def test_a_torch_checkpoint_before_the_first_update_has_every_tensor(tmp_path):
    path = saved_run("torch", tmp_path, steps=0)
    state = checkpoint.load(path)
    assert int(state["opt.count"][0]) == 0 and np.all(state["opt.m.out.weight"] == 0)
    trainer, _, step = training.resume(path)
    assert step == 0 and sorted(trainer.state_dict()) == sorted(state)


def test_resume_of_a_corrupt_checkpoint_names_the_file(tmp_path):
    path = saved_run("numpy", tmp_path)
    flip_byte(path, path.stat().st_size - 2)
    with pytest.raises(CheckpointError, match=rf"checkpoint '{path}' is corrupt"):
        training.resume(path)


def test_a_training_checkpoint_without_its_metadata_is_named(tmp_path):
    path = tmp_path / "bare.safetensors"
    checkpoint.save(path, {"a": np.zeros(2)}, {"format": training.FORMAT, "config": TrainConfig().to_json()})
    with pytest.raises(ValueError, match="lacks the metadata step, event_shape"):
        training.load_checkpoint(path)
    assert json.loads(TrainConfig().to_json())["sde"] == "vp"
