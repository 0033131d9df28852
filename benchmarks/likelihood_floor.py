"""How far the torch likelihood solve is from a hand-written loop doing the same arithmetic.

    PYTHONPATH=src:backends:reference python benchmarks/likelihood_floor.py [--repeats 25]

The one-probe likelihood of ``likelihood_speed.py`` at 64 points (16-D mixture, VE, float64, one
CPU thread, rtol = atol = 1e-5), timed in one process, alternating, by CPU time (``process_time``:
a shared machine's other tenants do not count): ``sc.log_likelihood``; a per-sample Dormand–Prince
loop written inline in plain torch with the same tableau, predictive PI controller, first step and
right-hand side (VJP of the score, the probe's quadratic, c(t) [s_θ, ∇·s_θ]) — no statuses, no
compaction, no escape test, the probes drawn outside the timing; the same loop with scorecore's
``rk_stages``, ``decide``/``propose`` and ``advance``/``time_floor`` dropped in; and score_sde's
design. The loops give the same log p as ``sc.log_likelihood`` to the last digit (printed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import likelihood_speed as L  # noqa: E402

import scorecore as sc  # noqa: E402
from scorecore import divergence, streams  # noqa: E402
from scorecore.samplers import adaptive, ode  # noqa: E402
from scorecore.samplers.status import CONVERGED, RUNNING  # noqa: E402
from scorecore.samplers.tableaus import DOPRI5, rk_stages  # noqa: E402

N = 64


def hand_loop(torch, x, probes, *, ours: bool):
    """``run() -> log p``: the inline loop, or (``ours``) the same loop on scorecore's pieces."""
    sde, be = L.SDE, sc.get_backend("torch")
    score = L.Plain(L.TARGET.score_model(sde))
    k0, rate = -sde.sigma_min ** 2 * sde._log_ratio, 2 * sde._log_ratio
    a_rows, c, e = DOPRI5.a, DOPRI5.c, DOPRI5.e
    ctrl = ode.CONTROLLERS["predictive"](DOPRI5.embedded_order)
    alpha, beta, gamma, safety = ctrl.exponent, ctrl.prev_exponent, ctrl.predictive, ctrl.safety
    n, tol, t1 = x.shape[0], L.TOL, sde.T

    def F(y, t):
        with torch.enable_grad():
            xg = y[:, :-1].detach().requires_grad_(True)
            s = score(xg, t)
            (g,) = torch.autograd.grad(s, xg, probes)
        return (k0 * torch.exp(t * rate))[:, None] * torch.cat([s.detach(), (probes * g).sum(1)[:, None]], 1)

    def combo(weights, ks):
        out = None
        for w, k in zip(weights, ks):
            if w:
                out = w * k if out is None else torch.add(out, k, alpha=w)
        return out

    def run():
        y = torch.cat([x, torch.zeros(n, 1, dtype=x.dtype)], 1)
        t = torch.full((n,), L.EPS, dtype=x.dtype)
        f = F(y, t)
        scale0 = tol + tol * y.abs()
        d0, d1 = ((y / scale0) ** 2).mean(1).sqrt(), ((f / scale0) ** 2).mean(1).sqrt()
        h = torch.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1.clamp(min=1e-10)).clamp(1e-6, t1 - L.EPS)
        e_prev, h_prev = torch.ones(n, dtype=x.dtype), torch.zeros(n, dtype=x.dtype)
        rejected = torch.zeros(n, dtype=torch.bool)
        status = torch.zeros(n, dtype=torch.int32)
        while bool((status == RUNNING).any()):
            run_ = status == RUNNING
            rem = t1 - t
            last = run_ & (h >= rem)
            hm = torch.where(run_, torch.minimum(h, rem), 0.0)
            hx, t_new = hm[:, None], torch.where(last, t1, t + hm)
            if ours:
                y_new, err, f_new = rk_stages(F, DOPRI5, y, t, hm, hx, f, t_new)
            else:
                ks = [f]
                for i in range(1, 7):
                    y_new = torch.addcmul(y, hx, combo(a_rows[i], ks))
                    ks.append(F(y_new, t_new if i == 6 else t + c[i] * hm))
                err, f_new = hx * combo(e, ks), ks[-1]
            en = ((err / (tol + tol * torch.maximum(y.abs(), y_new.abs()))) ** 2).mean(1).sqrt()
            if ours:
                accept, reject, finite = adaptive.decide(run_, en)
                fac, (e_prev, was, h_prev) = ctrl.propose(en, accept, (e_prev, rejected, h_prev), hm, finite)
                rejected = torch.where(run_, was, rejected)
            else:
                accept = run_ & (en <= 1.0)
                safe = en.clamp(min=1e-10)
                fac = (safety * safe ** -alpha).clamp(0.2, 10.0)
                fac = torch.where(accept, (safety * safe ** -alpha * e_prev ** beta).clamp(0.2, 10.0), fac)
                known = accept & (h_prev > 0)
                gus = (safety * hm / torch.where(known, h_prev, 1.0)) * e_prev ** gamma * safe ** (-2 * gamma)
                fac = torch.where(known, torch.minimum(fac, gus.clamp(0.2, 10.0)), fac)
                e_prev, h_prev = torch.where(accept, en.clamp(min=1e-4), e_prev), torch.where(accept, hm, h_prev)
            h_next = torch.where(run_, torch.where(last & accept, h, hm * fac), h)
            if ours:
                status = adaptive.advance(status, accept=accept, reject=reject, last=last, finite=finite,
                                          h_next=h_next, floor=adaptive.time_floor(t, t1 - L.EPS))
            else:
                status = torch.where(accept & last, CONVERGED, status)
            h, acc = h_next, accept[:, None]
            y, f, t = torch.where(acc, y_new, y), torch.where(acc, f_new, f), torch.where(accept, t_new, t)
        return (sde.prior_log_prob(y[:, :-1]) + y[:, -1]).numpy()

    return run


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=25)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    be = sc.get_backend("torch")
    x64 = np.asarray(L.TARGET.sample(N, seed=5), dtype=np.float64)
    x = torch.as_tensor(x64)
    probes = divergence.draw_probes(be, streams.run_key(be, be.key(3), "probes"), "rademacher", (N, 1, 16),
                                    x.dtype)[:, 0]
    cont = L.torch_contenders(N, x64)
    fns = {"sc.log_likelihood": lambda: cont["scorecore (1 probe)"](L.TOL)()[0],
           "hand-written loop": hand_loop(torch, x, probes, ours=False),
           "the loop on scorecore's stages, controller, status": hand_loop(torch, x, probes, ours=True),
           "score_sde design (SciPy RK45)": lambda: cont["score_sde design (SciPy RK45)"](L.TOL)()[0]}
    want = fns["sc.log_likelihood"]()
    for k in ("hand-written loop", "the loop on scorecore's stages, controller, status"):  # score_sde: its own probe
        print(f"{k}: max |log p − sc.log_likelihood's| = {np.abs(fns[k]() - want).max():.1e}")
    times = {k: [] for k in fns}
    for _ in range(a.repeats):
        for k, fn in fns.items():
            t0 = time.process_time()
            fn()
            times[k].append(time.process_time() - t0)
    ref = min(times["score_sde design (SciPy RK45)"])
    print("| contender | min CPU ms | median CPU ms | min ÷ score_sde design's |\n|---|---:|---:|---:|")
    for k, v in times.items():
        print(f"| {k} | {min(v) * 1e3:.1f} | {np.median(v) * 1e3:.1f} | {min(v) / ref:.3f} |")


if __name__ == "__main__":
    main()
