"""Every option of every sampler is checked on construction, by the check declared beside it."""

from __future__ import annotations

import dataclasses

import pytest

import scorecore as sc
from scorecore import validation
from scorecore.samplers.adaptive import Controller
from scorecore.samplers.correctors import CappedLangevinCorrector

CLASSES = sorted({cls for cls, _, _ in sc.samplers.SAMPLERS.values()} | {Controller, CappedLangevinCorrector},
                 key=lambda c: c.__name__)


def options(cls):
    return [f.name for f in dataclasses.fields(cls)]


class Meaningless:
    """A value no option accepts: not a number, a name, a sequence or a callable."""

    def __repr__(self):
        return "Meaningless()"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_option_refuses_a_meaningless_value_naming_itself(cls):
    for name in options(cls):
        with pytest.raises((TypeError, ValueError), match=name):
            cls(**{name: Meaningless()})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_defaults_pass_their_checks(cls):
    assert cls() == cls()


def test_a_subclass_that_changes_a_default_keeps_the_base_check():
    # DDIM redeclares n_steps = 50 and schedule = "uniform" over TimeGridSampler's options.
    assert sc.samplers.DDIM().n_steps == 50
    with pytest.raises(ValueError, match="n_steps must be a positive int, got 0"):
        sc.samplers.DDIM(n_steps=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        sc.samplers.DDIM(schedule="linear-ish")


def test_none_passes_only_where_the_option_allows_it():
    assert sc.samplers.EDM(sigma_min=None).sigma_min is None
    assert sc.samplers.AdaptiveSDE(step_quantum=None).step_quantum is None
    with pytest.raises(ValueError, match="rho must be a number, got None"):
        sc.samplers.EDM(rho=None)


def test_an_option_label_names_what_it_counts():
    with pytest.raises(ValueError, match=r"n_steps \(the levels"):
        sc.samplers.EDM(n_steps=1)


def test_option_binds_the_check_arguments():
    @dataclasses.dataclass(frozen=True)
    class Opts(validation.Checked):
        k: int = validation.option(2, validation.integer, lo=1, hi=3)

    assert Opts(3).k == 3
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\], got 4"):
        Opts(4)
