"""The per-sample status codes of adaptive solvers, their one message table, and the errors a
run ends with (as diffrax's ``RESULTS``: codes in the arrays, words in one place)."""

from __future__ import annotations

RUNNING, CONVERGED, BUDGET, NONFINITE, STEP_COLLAPSED, ESCAPED = 0, 1, 2, 3, 4, 5

#: status code -> what it means, for every message the driver writes.
STATUS_MESSAGES = {
    RUNNING: "running",
    CONVERGED: "converged",
    BUDGET: "step budget exhausted",
    NONFINITE: "non-finite values that no step size avoids",
    STEP_COLLAPSED: "step size collapsed below the time resolution",
    ESCAPED: "left the data region (|x| beyond the escape bound; its solve ended there)",
}


class NonFiniteError(FloatingPointError):
    """Non-finite values appeared while sampling (or in a loss); ``step`` and ``time`` say where first
    (``time`` is the time the state had reached; for adaptive solvers the time at which the
    first failing sample stopped). ``status`` holds the per-sample codes of adaptive runs."""

    def __init__(self, sampler: str, step: int, time: float | None, detail: str = "", status=None):
        self.sampler, self.step, self.time, self.status = sampler, step, time, status
        at = f" (t = {time:.6g})" if time is not None else ""
        where = "" if step is None else f" at step {step}"
        advice = "check the model at that time" + ("" if step is None else ", or use more steps")
        super().__init__(f"{sampler}: non-finite values (NaN or inf) first appeared{where}{at}{detail}; {advice}")


class BudgetExhaustedError(RuntimeError):
    """An adaptive solve ran out of its step budget before every sample reached the end;
    ``status`` holds the per-sample codes (pass ``return_info=True`` to get the unfinished
    samples with their status instead)."""

    def __init__(self, message: str, status=None):
        self.status = status
        super().__init__(message)


class EscapedError(FloatingPointError):
    """Probability-flow trajectories left the data region (status ESCAPED): their log-density
    would be a finite but meaningless number; ``status`` holds the per-sample codes (pass
    ``return_info=True`` to get the other samples, and these as NaN with their status)."""

    def __init__(self, message: str, status=None):
        self.status = status
        super().__init__(message)


def budget_message(what: str, n_bad: int, n: int, max_steps: int, detail: str) -> str:
    """The one wording of an exhausted budget: who, how many, the budget and where."""
    return (f"{what}: {n_bad} of {n} samples exhausted the step budget max_steps={max_steps} ({detail}); "
            "raise max_steps or loosen rtol/atol, or pass return_info=True to get the unfinished samples "
            "with their status")


__all__ = ["BUDGET", "BudgetExhaustedError", "budget_message", "CONVERGED", "ESCAPED", "EscapedError", "NONFINITE", "NonFiniteError", "RUNNING", "STATUS_MESSAGES",
           "STEP_COLLAPSED"]
