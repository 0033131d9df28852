"""Input fuzzing (issue 15): random shapes, dtypes, NaN positions and out-of-range values fed
to ``sc.sample``, ``sc.log_likelihood`` and the losses. Every call either raises one of the
exceptions the library documents (``support.DOCUMENTED_ERRORS``) with a message, or returns
only finite values; a NaN or inf returned, any other exception (an internal ``IndexError``, a
broadcast error, ``AttributeError``, ...), a result from a model that is wrong whatever the
call (``WRONG_MODELS``) or from a time outside [0, T] (both must be refused, see
``refusal``), or a run past ``Budgeted.limit`` score calls or ``TIME_LIMIT`` seconds (a
hang) is a bug.

Each call has at most two arguments wrong (``corrupted``), the rest valid, so that later
checks are reached too; ``test_valid_*`` show that with none wrong every call succeeds, so
the fuzz tests cannot pass by refusing everything. Tiny shapes, few steps and few examples
keep it fast; the NumPy backend, since the checks run on the host before any backend work."""

from __future__ import annotations

import contextlib
import math
import signal

import numpy as np
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import scorecore as sc
from scorecore import losses
from support import DOCUMENTED_ERRORS
from support.ring import RING

fuzz = settings(max_examples=30, deadline=None)
TIME_LIMIT = 20.0

SDES = st.sampled_from([sc.VESDE(), sc.VPSDE(), sc.SubVPSDE()])


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Raise ``Runaway`` if the block runs longer than ``seconds`` (a hang before any model
    call, e.g. a step grid of 2⁴⁰ points built on the host); where SIGALRM exists."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(signum, frame):
        raise Runaway(f"{what}: still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def finite_or_documented(call, what: str, refuse: str | None = None):
    """Run ``call()``: pass if it raises a documented error with a message, or, unless
    ``refuse`` says why the call must be refused, returns only finite values; never more
    than ``TIME_LIMIT`` seconds (every valid call here takes well under one)."""
    try:
        with time_limit(TIME_LIMIT, what):
            out = call()
    except DOCUMENTED_ERRORS as exc:
        assert str(exc), f"{what}: {type(exc).__name__} without a message"
        return
    assert refuse is None, f"{what}: accepted without an error, although {refuse}"
    values = out[0] if isinstance(out, tuple) else out
    values = np.asarray(sc.get_backend("numpy").to_numpy(values), dtype=np.float64)
    assert np.all(np.isfinite(values)), f"{what}: returned non-finite values without an error: {values.ravel()[:6]}"


@st.composite
def arrays(draw, shape, bad: bool):
    """A host float array of ``shape``; if ``bad``, one defect: a NaN/inf/huge value at a drawn
    position, another shape, an integer or float16 dtype, or a nested list."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal(shape)
    kind = draw(st.sampled_from(["float64", "float32"]))
    if bad:
        defect = draw(st.sampled_from(["value", "value", "shape", "dtype", "list"]))
        if defect == "value":
            x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e300]))
        elif defect == "shape":
            x = rng.standard_normal(draw(st.sampled_from([(shape[0],), (shape[0], 3), (shape[0], 2, 2), (0, 2)])))
        elif defect == "dtype":
            kind = draw(st.sampled_from(["float16", "int64", "bool"]))
        else:
            return x.tolist()
    with np.errstate(all="ignore"):
        return x.astype(kind)


class Runaway(Exception):
    """A run that spent more score calls than any of these tiny runs can need: a hang."""


class Budgeted:
    """A score model that raises ``Runaway`` after ``limit`` calls, so that a missing step
    check fails the test instead of hanging it; other attributes (``event_shape``,
    ``divergence``) are the wrapped model's."""

    limit = 20_000

    def __init__(self, model, name):
        self.model, self.calls, self.__name__ = model, 0, name

    def __call__(self, x, t):
        self.calls += 1
        if self.calls > self.limit:
            raise Runaway(f"model {self.__name__} called more than {self.limit} times")
        return self.model(x, t)

    def __getattr__(self, attr):
        return getattr(self.model, attr)


#: Models that are wrong whatever the call: a result from one of them is a silent bug.
WRONG_MODELS = ("column", "scalar", "other_dtype", "list")


def make_model(kind: str, sde, nan_row: int = 0):
    """(score model, its SDE, ``kind``). Valid kinds: ``"ring"`` (the exact ring score) and
    ``"gaussian"`` (the exact score of p_0 = N(0, I), −x/(m(t)² + s(t)²)). Bad kinds:
    ``"nan_below_half"`` (NaN below t = 0.5 in row ``nan_row``) and the ``WRONG_MODELS``:
    returns (n, 1), a 0-D value, the other float dtype, or a list."""
    if kind == "ring":
        return Budgeted(RING.score_model(sde), kind), sde, kind

    def gaussian_score(x, t):
        m, s = sde.marginal(t)
        return -x / (m * m + s * s)[:, None]

    def model(x, t):
        if kind == "gaussian":
            return gaussian_score(x, t)
        if kind == "nan_below_half":
            rows = np.arange(x.shape[0])[:, None]
            return np.where((t[:, None] < 0.5) & (rows == nan_row), np.nan, gaussian_score(x, t))
        if kind == "column":
            return -x[:, :1]
        if kind == "scalar":
            return np.float64(1.0)
        if kind == "other_dtype":
            return (-x).astype(np.float32 if x.dtype == np.float64 else np.float64)
        return (-x).tolist()

    return Budgeted(model, kind), sde, kind


@st.composite
def models(draw, bad: bool, good=("ring", "gaussian")):
    """A valid model (``make_model``, one of ``good``) or, if ``bad``, a bad one, with a drawn SDE."""
    kind = draw(st.sampled_from(["nan_below_half", *WRONG_MODELS] if bad else list(good)))
    return make_model(kind, draw(SDES), draw(st.integers(0, 1)))


def corrupted(draw, spec: dict, max_bad: int):
    """Arguments from ``spec`` (name -> (valid strategy, bad strategy)), at most ``max_bad`` of
    them bad (a call with every argument wrong would only ever test the first check), and the
    set of the bad ones' names."""
    names = sorted(spec)
    bad = draw(st.sets(st.sampled_from(names), max_size=max_bad))
    return {k: draw(spec[k][1] if k in bad else spec[k][0]) for k in names}, bad


def refusal(kind: str, bad: set, must: tuple = ()) -> str | None:
    """Why a call must raise: its model is one of ``WRONG_MODELS``, or an argument in ``must``
    (one that no valid call has: a time outside [0, T], say) is bad."""
    if kind in WRONG_MODELS:
        return f"its model is {kind!r}"
    wrong = sorted(bad & set(must))
    return f"{', '.join(wrong)} is out of range" if wrong else None


def bad_or_good(good, bad):
    return (st.sampled_from(good), st.sampled_from(bad))


N = 2  # batch size: tiny, and one shape so that nothing recompiles
EPS = bad_or_good([None, 1e-3], [0.0, -1e-3, 1.0, 2.0, math.nan, math.inf, "0.01"])
DTYPE = bad_or_good([None, "float64", "float32"], ["float16", "int32", "f8", np.float16])

SAMPLER_OPTIONS = {
    "pc": {}, "ald": {"n_steps_each": 1}, "langevin": {}, "reverse-sde": {}, "reverse-diffusion": {},
    "ancestral": {}, "euler": {}, "heun": {}, "rk4": {}, "ode": {}, "dopri5": {"rtol": 1e-2, "atol": 1e-2},
    "edm": {}, "ddim": {}, "dpmpp_2m": {}, "adaptive_sde": {"rtol": 0.5, "atol": 0.5},
}

# A few steps for every fixed-step sampler; the adaptive solvers keep their default budget.
VALID_STEPS = {"dopri5": None, "adaptive_sde": None}


@st.composite
def sample_calls(draw, max_bad=2):
    a, bad = corrupted(draw, max_bad=max_bad, spec={
        "model": (models(False), models(True)),
        "sampler": bad_or_good(sorted(SAMPLER_OPTIONS), ["leapfrog", None, 3]),
        # No valid huge step count: it would run.
        "steps": bad_or_good(["valid"], [1, 0, -1, 2**31 - 1, 2**40, 2.5, "3", True]),
        "eps": EPS, "dtype": DTYPE,
        "shape": bad_or_good([(N, 2)], [(N, 1), (1, N, 2), (N,), (0, 2), (N, 0), (N, -1), (2.0, 2), ()]),
        "x_init": (st.one_of(st.none(), arrays((N, 2), False)), arrays((N, 2), True)),
        "seed": bad_or_good([0, 3], [-1, 2**70, 1.5, "0"]),
        "offset": bad_or_good([0, 5], [-1, 2.0]),
    })
    model, sde, kind = a.pop("model")
    if a["steps"] == "valid":
        a["steps"] = VALID_STEPS.get(a["sampler"], 3) if isinstance(a["sampler"], str) else 3
    options = SAMPLER_OPTIONS.get(a["sampler"], {}) if isinstance(a["sampler"], str) else {}
    return (model, sde, a.pop("shape")), dict(a, progress=False, **options), kind, refusal(kind, bad)


# Inputs that gave silent or unclear answers (issue 15), run first on every test run.
X2 = np.array([[0.1, -0.1], [0.6, 0.1]])
X2_NAN = np.array([[0.1, -0.1], [np.nan, 0.1]])
SAMPLE_KW = dict(dtype=None, eps=None, offset=0, seed=0, x_init=None, progress=False)


def _sample_example(kind, sampler, refuse, **kw):
    model, sde, kind = make_model(kind, sc.VESDE())
    return example(call=((model, sde, (N, 2)), dict(SAMPLE_KW, sampler=sampler, **kw), kind, refuse))


@fuzz
@_sample_example("column", "ald", "its model is 'column'", steps=3, n_steps_each=1)
@_sample_example("gaussian", "euler", None, steps=3, x_init=X2.tolist())
@_sample_example("gaussian", "ancestral", None, steps=2**40)
@given(call=sample_calls())
def test_sample(call):
    (model, sde, shape), kwargs, kind, refuse = call
    finite_or_documented(lambda: sc.sample(model, sde, shape, **kwargs),
                         f"sample({kind}, {type(sde).__name__}, {shape}, {kwargs!r})", refuse)


@st.composite
def likelihood_calls(draw, max_bad=2, exact_ring_only=False):
    """``exact_ring_only``: the valid calls that run on NumPy (no autodiff), where only the exact
    ring score brings its own divergence — drawn directly, not filtered, so that hypothesis's
    filter health check cannot fail."""
    good_models, divergences = (("ring",), ["exact"]) if exact_ring_only else (("ring", "gaussian"), ["exact", "hutchinson"])
    a, bad = corrupted(draw, max_bad=max_bad, spec={
        "model": (models(False, good_models), models(True)),
        "x": (arrays((N, 2), False), arrays((N, 2), True)),
        "eps": EPS, "dtype": DTYPE,
        "method": bad_or_good(["dopri5", "rk4", "euler"], ["leapfrog", None]),
        "steps": bad_or_good([2, 5], [0, -1, 2**40, 2.5]),
        "max_steps": bad_or_good([200], [0, 1, 2, 3, -1, 2.5]),
        "divergence": bad_or_good(divergences, ["bogus", None]),
        "rtol": bad_or_good([1e-3], [0.0, -1e-3, math.nan, math.inf]),
    })
    model, sde, kind = a.pop("model")
    x = a.pop("x")
    return (model, sde, x), a, kind, refusal(kind, bad)


@fuzz
@example(call=((make_model("ring", sc.VESDE())[0], sc.VESDE(), X2),
               dict(dtype=None, eps=None, method="dopri5", steps=2, max_steps=1, divergence="exact", rtol=1e-3),
               "ring", None))
@given(call=likelihood_calls())
def test_log_likelihood(call):
    (model, sde, x), kwargs, kind, refuse = call
    finite_or_documented(lambda: sc.log_likelihood(model, sde, x, atol=kwargs["rtol"], **kwargs),
                         f"log_likelihood({kind}, {type(sde).__name__}, x={x!r}, {kwargs!r})", refuse)


TIME = bad_or_good([None, 0.5, 1.0], [0.0, -0.5, 1.5, math.nan, math.inf, "0.5"])


@st.composite
def loss_calls(draw, max_bad=2):
    loss = draw(st.sampled_from(["dsm", "ncsn", "ddpm", "exact_sm"]))
    a, bad = corrupted(draw, max_bad=max_bad, spec={
        "model": (models(False), models(True)),
        "x0": (arrays((N, 2), False), arrays((N, 2), True)),
        "t": (st.one_of(TIME[0], st.builds(lambda v: np.full(N, v), st.sampled_from([0.5, 1.0]))),
              st.one_of(TIME[1], st.builds(lambda v: np.full(N, v), st.sampled_from([0.0, -0.5, 1.5, math.nan])),
                        st.just(np.full(N + 1, 0.5)))),
        "eps": bad_or_good([1e-5, 1e-3], [0.0, -1e-3, 1.0, 2.0, math.nan]),
        "reduce": bad_or_good(["mean", "sum", "none"], ["median", None]),
        "weighting": bad_or_good(["sigma2", "likelihood"], ["unit", None]),
        "sigmas": bad_or_good([[1.0, 0.1], [0.5]], [[1.0, 0.0], [1.0, -0.1], [math.nan], [], [math.inf, 1.0]]),
        "discrete": bad_or_good([False, True], ["yes"]),
    })
    model, sde, kind = a.pop("model")
    # Times outside [0, T] (or NaN) must be refused, even where the loss comes out finite.
    must = ("t",) if loss in ("dsm", "exact_sm") else ()
    return loss, (model, sde, a.pop("x0")), a, kind, refusal(kind, bad, must)


def _loss_example(loss, kind, x0=X2, refuse=None, sde=None, **kw):
    model, sde, kind = make_model(kind, sde or sc.VPSDE())
    a = dict(t=None, eps=1e-5, reduce="mean", weighting="sigma2", sigmas=[1.0, 0.1], discrete=False) | kw
    return example(call=(loss, (model, sde, x0), a, kind, refuse))


@fuzz
@_loss_example("dsm", "ring", x0=X2_NAN)
@_loss_example("dsm", "gaussian", t=np.zeros(N), refuse="t is out of range")
@_loss_example("dsm", "gaussian", t=np.full(N, -0.5), refuse="t is out of range")
@_loss_example("dsm", "gaussian", t=np.full(N, 1.5), refuse="t is out of range")
@_loss_example("dsm", "nan_below_half", t=np.full(N, 0.25))
@_loss_example("ncsn", "ring", x0=X2_NAN, sde=sc.VESDE())
@_loss_example("ddpm", "other_dtype", refuse="its model is 'other_dtype'")
@_loss_example("exact_sm", "ring", t=np.full(N, math.nan), refuse="t is out of range")
@given(call=loss_calls())
def test_losses(call):
    loss, (model, sde, x0), a, kind, refuse = call
    calls = {
        "dsm": lambda: losses.dsm_loss(model, sde, x0, weighting=a["weighting"], eps=a["eps"], t=a["t"],
                                       reduce=a["reduce"]),
        "ncsn": lambda: losses.ncsn_loss(model, sde, x0, a["sigmas"], reduce=a["reduce"]),
        "ddpm": lambda: losses.ddpm_loss(model, sde, x0, discrete=a["discrete"], eps=a["eps"], reduce=a["reduce"]),
        # Exact score matching needs model.divergence on NumPy (no autodiff): only the ring has it.
        "exact_sm": lambda: losses.exact_sm_loss(model, x0, sde=sde, eps=a["eps"], t=a["t"], reduce=a["reduce"]),
    }
    used = {"dsm": ("weighting", "eps", "t", "reduce"), "ncsn": ("sigmas", "reduce"),
            "ddpm": ("discrete", "eps", "reduce"), "exact_sm": ("eps", "t", "reduce")}[loss]
    args = ", ".join(f"{k}={a[k]!r}" for k in used)
    finite_or_documented(calls[loss], f"{loss}_loss({kind}, {type(sde).__name__}, x0={x0!r}, {args})", refuse)


# -- the fuzz tests above cannot pass vacuously: with no argument wrong, every call succeeds ----

@settings(max_examples=15, deadline=None)
@given(call=sample_calls(max_bad=0))
def test_valid_sample_calls_succeed(call):
    (model, sde, shape), kwargs, kind, _ = call
    assume(not (kwargs["sampler"] == "ancestral" and isinstance(sde, sc.SubVPSDE)))  # defined for VE and VP only
    x = sc.sample(model, sde, shape, **kwargs)
    assert np.all(np.isfinite(x)), (kind, kwargs)


@settings(max_examples=10, deadline=None)
@given(call=likelihood_calls(max_bad=0, exact_ring_only=True))
def test_valid_log_likelihood_calls_succeed(call):
    (model, sde, x), kwargs, kind, _ = call
    logp = sc.log_likelihood(model, sde, x, atol=kwargs["rtol"], **kwargs)
    assert np.all(np.isfinite(logp)), (kind, kwargs)


@settings(max_examples=15, deadline=None)
@given(call=loss_calls(max_bad=0))
def test_valid_loss_calls_succeed(call):
    loss, (model, sde, x0), a, kind, _ = call
    assume(loss != "exact_sm" or kind == "ring")
    test_losses.hypothesis.inner_test(call)
