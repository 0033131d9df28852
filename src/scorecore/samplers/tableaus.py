"""Butcher tableaus of the embedded explicit Runge–Kutta pairs the adaptive ODE solver runs.

A pair (c, A, b, b̂) of s stages advances y' = F(y, t) by one step h as

    k_i = F(y + h Σ_{j<i} a_ij k_j,  t + c_i h),   y₁ = y + h Σ_i b_i k_i,

and estimates its local error by e = y₁ − ŷ₁ = h Σ_i (b_i − b̂_i) k_i with the embedded
solution ŷ₁ of lower order q. Every pair here is *first same as last* (FSAL): its last row of A
is b and c_s = 1, so k_s = F(y₁, t + h) is the next step's k₁ and a step costs s − 1 evaluations.

* ``dopri5`` — Dormand & Prince (1980), order 5(4), 7 stages (Hairer, Nørsett & Wanner I, II.5).
* ``tsit5`` — Tsitouras (2011), "Runge–Kutta pairs of order 5(4) satisfying only the first
  column simplifying assumption", Table 1: order 5(4), 7 stages, smaller error constants.
* ``bosh3`` — Bogacki & Shampine (1989), order 3(2), 4 stages (3 evaluations a step).

Coefficients are Python floats (a torch tensor times a 0-D float64 array would promote).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._arrays import namespace


@dataclass(frozen=True)
class Tableau:
    """An FSAL embedded pair: ``c`` (s,), ``a`` rows 0 … s − 1 (row i has i entries), ``b`` (s,),
    ``e`` = b − b̂ (s,), the orders ``order`` (p, of y₁) and ``embedded_order`` (q, of ŷ₁)."""

    name: str
    order: int
    embedded_order: int
    c: tuple
    a: tuple
    b: tuple
    e: tuple

    def __post_init__(self):
        s = len(self.c)
        if not (len(self.a) == len(self.b) == len(self.e) == s and all(len(r) == i for i, r in enumerate(self.a))):
            raise ValueError(f"tableau {self.name}: c, a, b, e must describe {s} stages")
        if tuple(self.a[-1]) != tuple(self.b[:-1]) or self.b[-1] != 0.0 or self.c[-1] != 1.0:
            raise ValueError(f"tableau {self.name}: only first-same-as-last pairs are supported")

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def step_nfe(self) -> int:
        """Evaluations of F per step: s − 1, the last stage being the next step's first."""
        return self.stages - 1


DOPRI5 = Tableau(
    "dopri5", 5, 4,
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    e=(71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40),
)

_TSIT5_B = (0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
            2.324710524099774)
#: Tsitouras' embedded weights b̂ (Table 1); e = b − b̂.
_TSIT5_BHAT = (0.09468075576583945, 0.009183565540343254, 0.4877705284247616, 1.234297566930479,
               -2.7077123499835256, 1.866628418170587, 1 / 66)

TSIT5 = Tableau(
    "tsit5", 5, 4,
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=(
        (),
        (0.161,),
        (-0.008480655492356989, 0.335480655492357),
        (2.8971530571054935, -6.359448489975075, 4.3622954328695815),
        (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
        (5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383),
        _TSIT5_B,
    ),
    b=_TSIT5_B + (0.0,),
    e=tuple(b - bh for b, bh in zip(_TSIT5_B + (0.0,), _TSIT5_BHAT)),
)

BOSH3 = Tableau(
    "bosh3", 3, 2,
    c=(0.0, 1 / 2, 3 / 4, 1.0),
    a=((), (1 / 2,), (0.0, 3 / 4), (2 / 9, 1 / 3, 4 / 9)),
    b=(2 / 9, 1 / 3, 4 / 9, 0.0),
    # b̂ = (7/24, 1/4, 1/3, 1/8)
    e=(2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8),
)

#: name -> tableau of the adaptive methods.
TABLEAUS = {t.name: t for t in (DOPRI5, TSIT5, BOSH3)}


def rk_stages(F, tableau: Tableau, y, t, h, hx, f0, t_new=None):
    """(y₁, h Σ e_i k_i, F(y₁, t_new)) for one step from (y, t) with k₁ = ``f0``.

    ``h`` is the step per sample (n,) (for the times), ``hx`` the same broadcast against y;
    ``t_new`` (default t + h) is the time of the last stage, which a solver landing on its end
    time passes exactly."""
    stage = getattr(namespace(y), "scorecore_stage", _stage)
    ks = [f0]
    for i in range(1, tableau.stages):
        yi = stage(y, hx, tableau.a[i], ks)  # y_i = y + h Σ_j a_ij k_j
        # The last stage is at (y₁, t + h): its evaluation is the next step's first.
        last = i == tableau.stages - 1
        ks.append(F(yi, t_new if (last and t_new is not None) else t + tableau.c[i] * h))
    return yi, stage(None, hx, tableau.e, ks), ks[-1]


def _stage(y, hx, weights, ks):
    """y + h Σ_j w_j k_j over the nonzero Python-float weights w_j (h Σ_j w_j k_j for y None):
    the sum, then one scaling by h (the per-sample h times each k_j would be two array ops a
    term; eager backends pay per op). A namespace may supply its own ``scorecore_stage``
    (the torch backend's fuses each term into one kernel)."""
    out = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            out = w * k if out is None else out + w * k
    return hx * out if y is None else y + hx * out


__all__ = ["BOSH3", "DOPRI5", "TABLEAUS", "TSIT5", "Tableau", "rk_stages"]
