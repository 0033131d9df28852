"""The exceptions the library documents for bad input and failed runs.

A call on any input either returns a finite result or raises one of these: ``ValueError``
(a wrong number, shape or choice; ``CheckpointError`` is one), ``TypeError`` (an object of
the wrong kind), ``NonFiniteError`` (a ``FloatingPointError``: NaN/inf appeared mid-run, with
the step and time), ``BudgetExhaustedError`` (an adaptive solver ran out of its step budget),
``NotImplementedError`` (a capability the backend lacks, e.g. autodiff on NumPy),
``MissingBackendError`` (an ``ImportError``: the framework is not installed) and
``BackendUnavailableError`` (a ``RuntimeError``: it is installed but cannot run here).
Anything else (``IndexError``, ``AttributeError``, a bare ``RuntimeError``, …) is a bug.
"""

from __future__ import annotations

from scorecore import BackendUnavailableError, MissingBackendError, NonFiniteError
from scorecore import samplers as _samplers

DOCUMENTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, NonFiniteError, NotImplementedError, MissingBackendError, BackendUnavailableError,
)
# BudgetExhaustedError arrives with the sampler-contract change (issue 11); looked up by name so
# that this module imports on either side of it.
if hasattr(_samplers, "BudgetExhaustedError"):
    DOCUMENTED_ERRORS += (_samplers.BudgetExhaustedError,)
