"""Tiny randomly initialised diffusers networks (no weights are downloaded)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers", reason="diffusers not installed (pip install diffusers==0.42.1)")

TINY = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4)


def tiny_unet(dtype=torch.float64, seed=0, **extra):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(**{**TINY, **extra}).to(dtype).eval()
