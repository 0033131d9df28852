"""scorecore's asv suite: NFE/s per backend × sampler × batch × model, sample quality per NFE,
the cost of the abstraction (scorecore's sampler over a hand-written loop), and speed
against the peers (k-diffusion on torch, JAX repeated calls).

The checkout's own sources come first on ``sys.path``: asv labels every result with the
commit it was given (``--set-commit-hash``), so what runs must be that commit's code, not
whatever version of scorecore the environment has installed.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _sub in ("reference", "backends", "src", "benchmarks"):
    _path = os.path.join(_ROOT, _sub)
    if _path not in sys.path:
        sys.path.insert(0, _path)
