"""The named random streams of a run, and why no two of them share noise.

Every random draw of a run comes from a key derived from the run's key ``K = key(seed)`` by
``fold_in`` with a tag from this table; a draw of shape (n, ...) then gives row i from
(key, offset + i) alone (:mod:`scorecore.random`), which makes every stream batch invariant.

=================  =====================================  ======================================
stream             key                                    drawn by
=================  =====================================  ======================================
``step``           fold_in(K, k), k = 0 … 2³¹ − 2          step k of a sampler (its own draw)
``corrector``      fold_in(step key, j + 1), j < 2³⁰       PC's corrector step j within step k
``bridge``         fold_in(step key, 1)                    the adaptive SDE's Brownian bridge
``projection``     fold_in(step key, 2³¹ − 1)              ``Conditioned``'s projection noise
``resample``       fold_in(step key, 2³¹ − 3)              TDS's resampling uniforms (one per group)
``finish``         fold_in(K, 2⁶³ − 4)                     a program's final map (EDM's last churn)
``finish`` j       fold_in(finish key, j), j = 0, 1        DPM-fast's lower-order last steps
``prior``          fold_in(K, 2⁶³ − 1)                     x(T) ~ the prior
``probes``         fold_in(K, 2⁶³ − 2)                     Hutchinson probes of the likelihood
``dequantization`` fold_in(K, 2⁶³ − 3)                     uniform dequantization of data
=================  =====================================  ======================================

Why they never collide. ``fold_in(k, d) = mix64(mix64(k ⊕ d) + γ)`` is, for a fixed parent k,
a composition of bijections of 64-bit words, hence injective in d: two streams with the same
parent and different tags get different keys, always. Step tags are below 2³¹ (step counts
are validated to ``validation.MAX_STEPS``) and the run-level tags are at least 2⁶³ − 4, so
the run-level streams are disjoint from every step. Within a step key, ``corrector`` (tags
1 … 2³⁰) and ``bridge`` (tag 1) belong to different samplers, which never share a run, and
``projection``'s tag 2³¹ − 1 and ``resample``'s 2³¹ − 3 are above every corrector tag. Keys
with different parents can coincide only by a collision of a 64-bit hash (probability 2⁻⁶⁴ per
pair). On JAX the keys are ``jax.random`` keys and ``fold_in`` is Threefry's, injective in the
same sense with overwhelming probability. The finish key's children (DPM-fast's tail) have one
parent, the finish key, which that sampler never draws from itself, so they are disjoint too.
"""

from __future__ import annotations

#: Run-level streams: tag of fold_in(run key, tag).
RUN_TAGS = {
    "prior": (1 << 63) - 1,
    "probes": (1 << 63) - 2,
    "dequantization": (1 << 63) - 3,
    "finish": (1 << 63) - 4,
}

#: Streams within step k's key: tag of fold_in(step key, tag) (``corrector`` adds j).
STEP_TAGS = {
    "corrector": 1,
    "bridge": 1,
    "projection": (1 << 31) - 1,
    # TDS's resampling: above every corrector tag, below the Brownian tree's and projection's.
    "resample": (1 << 31) - 3,
}


def run_key(backend, key, stream: str):
    """The key of a run-level ``stream`` (``"prior"``, ``"probes"``, ``"dequantization"``,
    ``"finish"``) of the run key ``key``."""
    return backend.fold_in(key, RUN_TAGS[stream])


def step_key(backend, key_k, stream: str, j: int = 0):
    """The key of ``stream`` within step k's key ``key_k``; ``j`` numbers corrector steps."""
    return backend.fold_in(key_k, STEP_TAGS[stream] + j)


__all__ = ["RUN_TAGS", "STEP_TAGS", "run_key", "step_key"]

# The Brownian tree's root word (samplers/brownian.py): a run-level tag below ``finish``'s, so
# disjoint from every step tag (< 2³¹) and from the other run-level tags by injectivity.
RUN_TAGS["brownian"] = (1 << 63) - 5
# The step-level key the Brownian tree's root word is drawn from at step 0 (and then carried):
# between the corrector tags (≤ 2³⁰) and ``projection``'s.
STEP_TAGS["brownian"] = (1 << 31) - 2
