"""Data sets held in memory, batched onto a backend: 2-D toy sets and scikit-learn's 8×8 digits.

Data live on the host as NumPy arrays and move to the backend one batch at a time. The
batch order of epoch e is a permutation drawn from (seed, e) alone, so a run resumed at
epoch e sees exactly the batches an uninterrupted run would.

Quantized data (images) carry their number of levels K. Uniform dequantization maps an
integer level v ∈ {0, …, K−1} to (v + u)/K with u ~ U[0, 1), a continuous density on
[0, 1)^D whose log-likelihood lower-bounds the discrete one (Theis et al. 2016); in bits
per dimension that bound is what Song et al. (2021) report.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import validation as check
from .backend import get_backend

RANGES = {"[0,1]": (0.0, 1.0), "[-1,1]": (-1.0, 1.0)}


@dataclass(frozen=True)
class Dataset:
    """Samples ``x`` (n, ...) with optional integer ``labels`` (n,).

    For quantized data, ``levels`` holds the integer levels (n, ...) and ``n_levels``
    their count K; ``data_range`` is the interval [lo, hi) that dequantized values fill.
    """

    x: np.ndarray
    labels: np.ndarray | None = None
    levels: np.ndarray | None = None
    n_levels: int | None = None
    data_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if self.labels is not None and len(self.labels) != len(self.x):
            raise ValueError(f"labels must have length {len(self.x)}, got {len(self.labels)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, idx) -> Dataset:
        """The samples at ``idx`` (labels and levels alike)."""
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Dataset(self.x[idx], pick(self.labels), pick(self.levels), self.n_levels, self.data_range)

    def flatten(self) -> Dataset:
        """The same samples with their event axes flattened to vectors (n, D)."""
        flat = lambda a: None if a is None else a.reshape(len(self), -1)  # noqa: E731
        return Dataset(flat(self.x), self.labels, flat(self.levels), self.n_levels, self.data_range)

    def dequantize(self, u: np.ndarray) -> np.ndarray:
        """Dequantized samples lo + (hi − lo)(v + u)/K for uniform noise ``u`` of x's shape."""
        if self.levels is None:
            raise ValueError("dequantize needs quantized data (levels and n_levels)")
        lo, hi = self.data_range
        return lo + (hi - lo) * (self.levels + u) / self.n_levels

    def batches(self, batch_size: int, *, seed: int = 0, epoch: int = 0, backend=None, dtype=None,
                shuffle: bool = True, drop_last: bool = True, dequantize: bool = False) -> Iterator:
        """Batches of one epoch as backend arrays (x, or (x, labels) when labelled).

        The order is the permutation of ``np.random.default_rng([seed, epoch])``; with
        ``dequantize`` each batch gets fresh uniform dequantization noise from the same
        generator (so it too is a function of (seed, epoch) alone).
        """
        check.positive_int("batch_size", batch_size)
        if drop_last and batch_size > len(self):
            raise ValueError(f"batch_size ({batch_size}) exceeds the data set size ({len(self)}) with drop_last")
        be = get_backend(backend)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self)) if shuffle else np.arange(len(self))
        stop = len(self) - (len(self) % batch_size if drop_last else 0)
        for a in range(0, stop, batch_size):
            idx = order[a : a + batch_size]
            x = self.subset(idx).dequantize(rng.random(self.x[idx].shape)) if dequantize else self.x[idx]
            xb = be.asarray(x, dtype=dtype)
            yield xb if self.labels is None else (xb, be.xp.asarray(self.labels[idx], device=be.device))


def toy(name: str, n: int, *, seed: int = 0) -> Dataset:
    """A 2-D toy set: ``"8-ring"`` or ``"5x5-grid"`` (exact samples of the named Gaussian
    mixtures, labelled by component) or ``"rings"`` (two concentric noisy circles of radii
    2 and 4, labelled by ring)."""
    check.positive_int("n", n)
    check.choice("name", name, ("8-ring", "5x5-grid", "rings"))
    if name in ("8-ring", "5x5-grid"):
        from .targets import GaussianMixture

        target = GaussianMixture.example(name)
        x = np.asarray(target.sample(n, seed=seed))
        return Dataset(x, labels=np.argmax(np.asarray(target.responsibilities(x)), axis=1))
    if name == "rings":
        rng = np.random.default_rng(seed)
        ring = rng.integers(0, 2, n)
        angle = rng.uniform(0, 2 * math.pi, n)
        r = 2.0 + 2.0 * ring + 0.1 * rng.standard_normal(n)
        return Dataset(np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1), labels=ring)


def digits(split: str = "train", *, data_range: str = "[0,1]", test_fraction: float = 0.2,
           seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 17 grey levels 0..16,
    no download) as (n, 1, 8, 8) images, centred in their dequantization cells:
    x = lo + (hi − lo)(v + ½)/17. A fixed split (``seed``) holds out ``test_fraction``."""
    check.choice("split", split, ("train", "test", "all"))
    check.choice("data_range", data_range, sorted(RANGES))
    check.real("test_fraction", test_fraction, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits data set needs scikit-learn: pip install 'scorecore[data]'") from None
    raw = load_digits()
    levels = raw.images.astype(np.int64)[:, None, :, :]
    labels = raw.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    idx = {"test": order[:n_test], "train": order[n_test:], "all": order}[split]
    lo, hi = RANGES[data_range]
    full = Dataset(lo + (hi - lo) * (levels + 0.5) / 17.0, labels, levels, 17, (lo, hi))
    return full.subset(np.sort(idx))


__all__ = ["RANGES", "Dataset", "digits", "toy"]
