"""Faults end with a diagnosis: a bad model or budget is named before work starts, and a model
that turns non-finite mid-run stops the adaptive solvers within a few steps, with a status
per sample and the step and a real time — on every backend, float32 included."""

from __future__ import annotations

import math

import numpy as np
import pytest

import scorecore as sc
from support import CountingScore
from support.ring import RING
from scorecore._arrays import namespace
from scorecore.samplers import status as codes

BACKENDS = ["numpy", "torch", "jax"]


def _backend(name):
    pytest.importorskip({"numpy": "numpy", "torch": "torch", "jax": "jax"}[name])
    return sc.get_backend(name)


def nan_below_half(x, t):
    """A score that is NaN for t < 0.5 and a contraction above: every solve must fail at t ≈ 0.5."""
    xp = namespace(x, t)
    return xp.where(t[:, None] < 0.5, xp.full_like(x, math.nan), -x / (1.0 + t[:, None]))


# JAX float64 needs its global x64 switch, which the conformance suite owns.
@pytest.mark.parametrize("name, dtype", [("numpy", "float32"), ("numpy", "float64"), ("torch", "float32"),
                                         ("torch", "float64"), ("jax", "float32")])
@pytest.mark.parametrize("sampler", ["dopri5", "adaptive_sde", "dpm_adaptive"])
def test_a_model_turning_nan_stops_the_adaptive_solvers_with_step_and_time(name, sampler, dtype):
    be = _backend(name)
    with pytest.raises(sc.NonFiniteError, match=rf"{sampler}: non-finite values .* at step \d+ \(t = 0\.\d+") as err:
        sc.sample(nan_below_half, sc.VPSDE(), (16, 2), sampler=sampler, backend=be, dtype=dtype, progress=False)
    # Stopped where the model fails, within the step control's few dozen shrinking tries,
    # not after spending the 10,000- (or 4,000-) step budget. DPM-Solver-3 evaluates nothing
    # at a step's end (its last stage is at ⅔ h), so an accepted step may end just past 0.5
    # and the next try fails at its first evaluation, there (measured t = 0.4988).
    early = 0.005 if sampler == "dpm_adaptive" else 0.0
    assert 0.5 - early <= err.value.time < 0.51
    assert err.value.step < 300, err.value.step
    status = be.to_numpy(err.value.status)
    assert np.all(status == codes.NONFINITE), status


@pytest.mark.parametrize("name", BACKENDS)
def test_an_exhausted_budget_is_an_error_naming_it_on_every_backend(name):
    be = _backend(name)
    with pytest.raises(sc.samplers.BudgetExhaustedError, match=r"16 of 16 samples exhausted the step budget "
                                                                r"max_steps=3 \(the furthest behind stopped at t = 0\.\d+\)"):
        sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (16, 2), sampler="dopri5", steps=3, backend=be,
                  dtype="float32", progress=False)


def test_step_counts_cannot_overflow_the_int32_counters():
    for sampler in ("dopri5", "adaptive_sde", "euler", "pc", "dpm_adaptive"):
        with pytest.raises(ValueError, match=r"must be an int ≤ 2147483646, got 2147483648"):
            sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (4, 2), sampler=sampler, steps=2**31, progress=False)


@pytest.mark.parametrize("out, match", [
    (lambda x: x[:, :1], r"model bad must return its score with the shape of x, \(8, 2\), got \(8, 1\)"),
    (lambda x: x.sum(), r"model bad must return its score with the shape of x, \(8, 2\), got \(\)"),
    (lambda x: x.astype(np.float32), r"model bad must return its score in the dtype of x, float64, got float32"),
    (lambda x: [1.0, 2.0], r"model bad must return an array"),
], ids=["n-by-1", "0-d", "dtype", "list"])
def test_a_model_output_of_the_wrong_shape_or_dtype_is_named_at_its_first_call(out, match):
    calls = []

    def bad(x, t):
        calls.append(1)
        return out(x)

    with pytest.raises((ValueError, TypeError), match=match):
        sc.sample(bad, sc.VPSDE(), (8, 2), sampler="euler", steps=10, progress=False)
    assert len(calls) == 1


@pytest.mark.parametrize("out, exc, match", [
    (lambda x: x[:, :1], ValueError, r"with the shape of x, \(8, 2\), got \(8, 1\)"),
    (lambda x: x.astype("float16"), TypeError, "in the dtype of x, float32, got float16"),
], ids=["shape", "dtype"])
def test_a_bad_model_output_is_named_at_trace_time_on_jax(out, exc, match):
    pytest.importorskip("jax")

    def bad(x, t):
        return out(x)

    with pytest.raises(exc, match="model bad must return its score " + match):
        sc.sample(bad, sc.VPSDE(), (8, 2), sampler="heun", steps=5, backend="jax", dtype="float32", progress=False)


def test_a_model_non_finite_at_its_first_call_is_named():
    def bad(x, t):
        return x * math.nan

    with pytest.raises(sc.NonFiniteError, match="model bad: non-finite values .* in its first output"):
        sc.sample(bad, sc.VPSDE(), (8, 2), sampler="dpmpp_2m", steps=10, progress=False)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(sampler="pc", n_steps_each=0), ValueError, r"n_steps_each .* must be a positive int, got 0"),
    (dict(sampler="dopri5", rtol=math.nan), ValueError, "rtol must be a finite number > 0, got nan"),
    (dict(sampler="edm", sigma_max=math.inf), ValueError, "sigma_max must be a finite number > 0, got inf"),
    (dict(sampler="ddim", denoise="no"), TypeError, "denoise must be True or False, got 'no'"),
    (dict(x_init=[[0.0, 0.0]] * 4), TypeError, r"x_init must be an array of shape \(4, 2\), got list"),
    (dict(x_init=np.zeros((4, 3))), ValueError, r"x_init must have shape \(4, 2\), got \(4, 3\)"),
    (dict(offset=-1), ValueError, "offset must be an int ≥ 0, got -1"),
    (dict(progress="yes"), TypeError, "progress must be True or False"),
    (dict(sde="vp"), TypeError, "sde must be a scorecore SDE"),
], ids=lambda v: str(v)[:40] if isinstance(v, dict) else None)
def test_bad_arguments_are_named_before_the_model_runs(kwargs, exc, match):
    model = CountingScore(RING.score_model(sc.VPSDE()))
    args = dict(shape=(4, 2), sampler="pc", steps=30, progress=False) | kwargs
    sde = args.pop("sde", sc.VPSDE())
    with pytest.raises(exc, match=match):
        sc.sample(model, sde, **args)
    assert model.calls == 0


def test_samplers_are_frozen_dataclasses_and_presets_are_registry_entries():
    a = sc.samplers.make_sampler("ancestral", 30)
    assert a == sc.samplers.PC(n_steps=30, predictor="ancestral", corrector="none")
    assert "predictor='ancestral'" in repr(a)
    with pytest.raises(AttributeError):
        a.n_steps = 5
    assert sc.samplers.make_sampler("dopri5", 7) == sc.samplers.ProbabilityFlowODE(method="dopri5", max_steps=7)
