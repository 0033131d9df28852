"""Bits per dimension of quantized data under a score model, an upper bound by dequantization.

Data with K levels in [lo, hi) (8-bit images: K = 256; scikit-learn's digits: K = 17) are
dequantized uniformly, x = lo + c (v + u), c = (hi − lo)/K, u ~ U[0, 1)^D. The discrete
probability of the level vector v is the mass of its cell, P(v) = ∫_cell p(x) dx = c^D E_u[p(x)],
and by Jensen's inequality (Theis et al. 2016)

    log P(v) ≥ E_u[log p(lo + c(v + u))] + D log c,
    bpd = −log₂ P(v) / D ≤ −E_u[log p(x)] / (D log 2) + log₂(K / (hi − lo)).

The offset log₂(K/(hi − lo)) is 8 for 8-bit data in [0, 1] and 7 for data in [−1, 1]:
score_sde's ``7 − inverse_scaler(−1)`` (inverse_scaler(−1) = 0 for centred data, −1
otherwise). Without dequantization the density at the K cell centres is unbounded and
the "bpd" can be negative; here every draw is dequantized, E_u is estimated by the mean
over ``n_dequant`` draws, and the standard error comes with it.

Samples whose probability-flow solve did not give a log-density — a trajectory that left the
data region (status ESCAPED) or turned non-finite (NONFINITE) — are NaN in ``per_draw``, counted
in ``status_counts`` and left out of ``mean`` with a warning: never averaged in silently.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import streams
from .. import validation as v
from ..backend import get_backend
from ..sde import SDE
from ..samplers.status import CONVERGED, NONFINITE, STATUS_MESSAGES, NonFiniteError
from .change_of_variables import log_likelihood
from .solve import check_status, host



@dataclass
class BitsPerDim:
    """Bits per dimension of a quantized data set, a bound: ``mean`` over samples and
    dequantization draws, ``stderr`` its standard error (over the per-sample means when
    n > 1, over the draws when n = 1). ``per_draw`` (n_dequant, n) holds each draw's
    per-sample bpd (NumPy); ``offset_bits`` = log₂(K/(hi − lo)); ``nfe`` the evaluations
    spent in all solves; ``converged`` whether every solve converged (always, for a result: a
    solve that exhausts its step budget raises :class:`~scorecore.samplers.BudgetExhaustedError`)."""

    mean: float
    stderr: float
    per_draw: np.ndarray
    offset_bits: float
    n_levels: int
    data_range: tuple[float, float]
    nfe: int
    converged: bool
    status: np.ndarray | None = field(default=None, repr=False)

    @property
    def per_sample(self) -> np.ndarray:
        """Each sample's bpd averaged over the dequantization draws, shape (n,) (NaN where flagged)."""
        return self.per_draw.mean(axis=0)

    @property
    def flagged(self) -> np.ndarray:
        """Which samples (n,) had a draw whose solve gave no log-density (status not CONVERGED)."""
        return np.zeros(self.per_draw.shape[1], bool) if self.status is None else \
            (self.status != CONVERGED).any(axis=0)

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    @property
    def median(self) -> float:
        """The median over the unflagged samples of their per-sample bpd."""
        return float(np.median(self.per_sample[~self.flagged]))

    @property
    def status_counts(self) -> dict:
        """{status message: number of solves} over every draw and sample."""
        codes = np.full(self.per_draw.shape, CONVERGED) if self.status is None else self.status
        values, counts = np.unique(codes, return_counts=True)
        return {STATUS_MESSAGES[int(c)]: int(k) for c, k in zip(values, counts)}


def dequantize(levels, n_levels: int, data_range=(0.0, 1.0), *, backend=None, dtype=None, seed: int = 0,
               key=None, draw: int = 0, offset: int = 0):
    """Uniformly dequantized data lo + (hi − lo)(v + u)/K, u ~ U[0, 1)^D, for integer
    ``levels`` v ∈ {0, …, K−1} (n, ...). Draw number ``draw`` of :func:`bits_per_dim`:
    u comes from fold_in(the run key's ``dequantization`` stream, draw), row i from (key, offset + i)."""
    K, (lo, hi) = _check_levels(n_levels, data_range)
    be = get_backend(backend)
    key = be.key(seed) if key is None else key
    lv = be.asarray(levels, dtype=dtype)
    u = be.uniform(be.fold_in(streams.run_key(be, key, "dequantization"), draw), tuple(lv.shape), lv.dtype, offset=offset)
    return lo + ((hi - lo) / K) * (lv + u)


def _check_levels(n_levels, data_range):
    n_levels = v.integer("n_levels (256 for 8-bit data)", n_levels, lo=2)
    try:
        lo, hi = (float(end) for end in data_range)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (lo, hi), got {data_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be finite with lo < hi, got {data_range!r}")
    return n_levels, (lo, hi)


def bits_per_dim(model, sde: SDE, data, *, n_levels: int | None = None, data_range=None, n_dequant: int = 1,
                 batch_size: int | None = None, backend=None, dtype=None, seed: int = 0, offset: int = 0,
                 **options) -> BitsPerDim:
    """Bits per dimension of quantized data under the model, an upper bound (see the module
    docstring for the derivation):

        bpd = −( E_u[log p_eps(lo + c(v + u))] + D log c ) / (D log 2),   c = (hi − lo)/K,

    the expectation over uniform dequantization noise estimated with ``n_dequant`` draws.

    ``data``: a :class:`~scorecore.data.Dataset` with ``levels`` (``n_levels`` and
    ``data_range`` are taken from it), or an integer array of levels (n, ...) with
    ``n_levels`` K and ``data_range`` (lo, hi) given (default (0, 1)). ``batch_size``
    splits the data into chunks (results do not depend on it: every draw is row-wise
    batch invariant). ``options`` go to :func:`log_likelihood` (``divergence``, ``rtol``, …).
    """
    from ..data import Dataset

    if isinstance(data, Dataset):
        if data.levels is None:
            raise ValueError("data is a Dataset without levels: bits per dimension need quantized data")
        levels = data.levels
        n_levels = data.n_levels if n_levels is None else n_levels
        data_range = data.data_range if data_range is None else data_range
    else:
        levels = data
        if n_levels is None:
            raise ValueError("n_levels is required when data is an array of levels (256 for 8-bit data)")
    K, (lo, hi) = _check_levels(n_levels, (0.0, 1.0) if data_range is None else data_range)
    v.positive_int("n_dequant", n_dequant)
    lv = host(levels)
    if lv.ndim < 2 or lv.shape[0] < 1:
        raise ValueError(f"levels must have shape (n, d, ...), got {lv.shape}")
    if not np.all(lv == np.round(lv)) or lv.min() < 0 or lv.max() > K - 1:
        raise ValueError(f"levels must be integers in [0, {K - 1}] (n_levels={K})")
    n = lv.shape[0]
    if batch_size is None:
        batch_size = n
    v.positive_int("batch_size", batch_size)
    for bad in ("x", "key", "return_info"):
        if bad in options:
            raise TypeError(f"bits_per_dim() got an unexpected keyword argument {bad!r}")
    be = get_backend(backend)
    key = be.key(seed)
    D = math.prod(lv.shape[1:])
    offset_bits = math.log2(K / (hi - lo))
    per_draw = np.empty((n_dequant, n))
    status = np.full((n_dequant, n), CONVERGED, dtype=np.int32)
    nfe, converged = 0, True

    def solve_rows(r, a, b):
        """(logp, status, nfe) of rows a..b−1 in draw r; a non-finite solve is split into rows (every
        draw is row-wise batch invariant, so a row alone gives what it gives in the batch)."""
        x = dequantize(lv[a:b], K, (lo, hi), backend=be, dtype=dtype, key=key, draw=r, offset=offset + a)
        try:
            logp, info = log_likelihood(model, sde, x, backend=be, key=be.fold_in(key, r), offset=offset + a,
                                        return_info=True, **options)
        except NonFiniteError:
            if b - a == 1:
                return np.full(1, np.nan), np.full(1, NONFINITE, dtype=np.int32), 0
            parts = [solve_rows(r, i, i + 1) for i in range(a, b)]
            return tuple(np.concatenate([p[k] for p in parts]) for k in range(2)) + (sum(p[2] for p in parts),)
        if not info.converged:  # bits per dim of unfinished solves would be NaN: say why
            check_status("bits_per_dim", info, sde.T, options.get("max_steps", 10_000), allow_budget=False)
        codes = np.full(b - a, CONVERGED, dtype=np.int32) if info.status is None else host(info.status)
        return host(logp), codes, info.nfe

    for r in range(n_dequant):  # draw r: dequantization and Hutchinson probes from fold_in(key, r)
        for a in range(0, n, batch_size):
            b = min(a + batch_size, n)
            logp, codes, spent = solve_rows(r, a, b)
            per_draw[r, a:b] = -logp / (D * math.log(2)) + offset_bits
            status[r, a:b] = codes
            nfe += spent
            converged = converged and bool(np.all(codes == CONVERGED))
    per_draw[status != CONVERGED] = np.nan
    flagged = (status != CONVERGED).any(axis=0)
    if flagged.any():
        counts = {STATUS_MESSAGES[int(c)]: int(k) for c, k in zip(*np.unique(status[status != CONVERGED],
                                                                              return_counts=True))}
        warnings.warn(f"bits_per_dim: {int(flagged.sum())} of {n} samples have no log-density ({counts}); "
                      "they are NaN in per_draw and left out of the mean", RuntimeWarning, stacklevel=2)
    kept = per_draw[:, ~flagged]
    units = kept.mean(axis=0) if n > 1 else kept[:, 0] if kept.size else kept.reshape(-1)
    stderr = float(units.std(ddof=1) / math.sqrt(units.size)) if units.size > 1 else float("nan")
    mean = float(kept.mean()) if kept.size else float("nan")
    return BitsPerDim(mean, stderr, per_draw, offset_bits, K, (lo, hi), nfe, converged, status)


__all__ = ["BitsPerDim", "bits_per_dim", "dequantize"]
