"""An 8th-order fixed-step method for reference solutions: Gragg–Bulirsch–Stoer extrapolation.

Gragg's modified midpoint rule with n (even) substeps of size η = h/n,

    z₀ = y,  z₁ = z₀ + η F(z₀, t),  z_{m+1} = z_{m−1} + 2η F(z_m, t + mη)  (m = 1 … n − 1),

returns T(n) = z_n, whose error has an expansion in even powers of η alone (Gragg 1965; Hairer,
Nørsett & Wanner I, II.9). Aitken–Neville extrapolation of T(n₁), …, T(n_k) to η → 0,

    T_{j,l+1} = T_{j,l} + (T_{j,l} − T_{j−1,l}) / ((n_j / n_{j−l})² − 1),

cancels the first k − 1 terms: T_{k,k} has order 2k. With the step numbers (2, 4, 6, 8)
(Deuflhard's sequence) that is order 8 for 1 + 1 + 3 + 5 + 7 = 17 evaluations a step (F(y, t)
is shared by the four rules) — for reference solutions, far tighter than dopri5 per evaluation.
"""

from __future__ import annotations

#: The substep numbers n_j of the extrapolation table.
GBS_SEQUENCE = (2, 4, 6, 8)
#: Evaluations of F per step: F(y, t) once, then n − 1 per rule.
GBS8_NFE = 1 + sum(n - 1 for n in GBS_SEQUENCE)


def _midpoint(F, y, t, h, n, f0):
    eta = h / n
    z_prev, z = y, y + eta * f0
    for m in range(1, n):
        z_prev, z = z, z_prev + (2.0 * eta) * F(z, t + m * eta)
    return z


def gbs8_step(F, y, t, h):
    """One 8th-order step: the extrapolated midpoint rules T_{4,4} (see the module docstring)."""
    f0 = F(y, t)
    table = []
    for j, n in enumerate(GBS_SEQUENCE):
        row = [_midpoint(F, y, t, h, n, f0)]
        for l in range(1, j + 1):
            ratio = (n / GBS_SEQUENCE[j - l]) ** 2
            row.append(row[l - 1] + (row[l - 1] - table[j - 1][l - 1]) / (ratio - 1.0))
        table.append(row)
    return table[-1][-1]


__all__ = ["GBS8_NFE", "GBS_SEQUENCE", "gbs8_step"]
