"""Helpers shared by the test files (a package, not ``conftest``, so tests import it like any
module): ``arrays`` (host copies), ``models`` (a call-counting score), ``ring`` (the 8-ring, a
Gaussian's closed-form flow, distances next to the noise floor), ``backends`` (the backends a
test can run on, with skip reasons), ``tolerance`` (the float32/float64 tolerance model) and
``errors`` (the exceptions the library documents)."""

from .arrays import to_numpy
from .errors import DOCUMENTED_ERRORS
from .models import CountingScore
from .tolerance import assert_close, tolerance

__all__ = ["CountingScore", "DOCUMENTED_ERRORS", "assert_close", "to_numpy", "tolerance"]
