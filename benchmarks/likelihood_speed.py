"""The likelihood at the peers' speed, and JAX compiling it once: ratios measured side by side.

    PYTHONPATH=src:backends:reference python benchmarks/likelihood_speed.py [--repeats 3] [--quick]

Model: the exact score of the "16d" Gaussian mixture under the VE SDE (σ ∈ [0.01, 50]), given
to every contender as a plain callable without its analytic derivatives (each takes ∇·s from its
framework's autodiff), float64, 1 thread, rtol = atol = 1e-5, eps = 1e-5, batches 64 and 1024.
One Rademacher probe per sample, held fixed along the trajectory (everyone's design).

torch contenders, alternating in one process, best of ``repeats``:
* scorecore ``sc.log_likelihood(..., backend="torch", divergence="hutchinson", probe="rademacher")``
  (one autograd VJP per evaluation, whose forward pass is the score: no second call), with its
  defaults (the predictive PI controller, only the running samples evaluated once a tenth (and 32) have
  finished); and with ``controller="integral"`` (the default before) and without compaction;
* score_sde's design (its ``likelihood.py``): SciPy ``solve_ivp`` RK45 on the batch flattened to one
  vector (one step size), the divergence by ``torch.autograd.grad`` of Σ s·ε, host copies per call;
* k-diffusion 0.1.1.post1 ``sampling.log_likelihood`` (torchdiffeq dopri5, one step size for the
  batch) on the denoiser D(x; σ) = x + σ² s(x, t(σ)), which integrates the same ODE in σ.
Exact divergence: scorecore with the backend's Jacobian trace (16 backward directions batched in one call) and
with the model's analytic divergence, against the one-probe time.

Error per sample: |log p − the same method's log p at rtol = atol = 1e-10 with the same probe|
(each contender's own probe: the solve's error, not the estimator's variance); max and p99.

JAX rows (float64): the second identical ``sc.log_likelihood`` call, a call with a new seed, and
one with new weights (a Flax NNX module: the exact score times 1 + 0.01 tanh(W x + b)) against the warm ``jax.jit`` of
``sc.log_likelihood_fn``; and that warm compiled run against diffrax 0.7.2 (``diffeqsolve`` Dopri5
with a PID controller at the same tolerances, ``jax.vmap`` over the samples: a step size per sample,
as ours). Writes benchmarks/results/likelihood_speed.md.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time

import numpy as np

import scorecore as sc

TOL, REF_TOL, EPS, LOOSE = 1e-5, 1e-10, 1e-5, 1e-4
SDE = sc.VESDE()
TARGET = sc.GaussianMixture.example("16d")
HERE = pathlib.Path(__file__).parent


class Plain:
    """The exact score with no derivatives of its own."""

    def __init__(self, model):
        self.model, self.event_shape = model, (16,)

    def __call__(self, x, t):
        return self.model(x, t)


def best_of(fns: dict, repeats: int):
    """{name: (best seconds, spread = worst/best, last result)}, the contenders alternating."""
    times = {k: [] for k in fns}
    out = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v), max(v) / min(v), out[k]) for k, v in times.items()}


# -- torch -------------------------------------------------------------------------------

def torch_contenders(n: int, x64):
    import torch
    from scipy.integrate import solve_ivp

    sys.path.insert(0, str(HERE.parent / "tests" / "samplers"))
    from kdiffusion_stub import load_sampling

    kd, why = load_sampling()
    if kd is None:
        raise SystemExit(why)
    be = sc.get_backend("torch")
    score = Plain(TARGET.score_model(SDE))
    x = torch.as_tensor(x64)
    eps_t = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype) < 0.5,
                        -1.0, 1.0).to(x.dtype)

    def ours(tol, divergence="hutchinson", model=score, controller=None, compact=True):
        """``controller=None``: the likelihood's default; ``compact=False``: every row every step."""
        from scorecore.samplers import compaction

        opts = {} if controller is None else {"controller": controller}

        def go():
            below = compaction.COMPACT_BELOW
            compaction.COMPACT_BELOW = below if compact else 0.0
            try:
                lp, info = sc.log_likelihood(model, SDE, x, backend=be, eps=EPS, rtol=tol, atol=tol,
                                             divergence=divergence, probe="rademacher", seed=3, return_info=True, **opts)
            finally:
                compaction.COMPACT_BELOW = below
            return lp.numpy(), info.nfe, info.model_nfe
        return go

    def score_sde(tol):
        """score_sde's likelihood.py design on this SDE: one flat vector, one step, host copies."""
        shape = x.shape

        def rhs(t, y):
            xt = torch.as_tensor(y[:-shape[0]].reshape(shape)).requires_grad_(True)
            tt = torch.full((shape[0],), t, dtype=x.dtype)
            with torch.enable_grad():
                drift = SDE.reverse_drift(xt, tt, score(xt, tt), probability_flow=True)
                grad = torch.autograd.grad(torch.sum(drift * eps_t), xt)[0]
            div = torch.sum(grad * eps_t, dim=1)
            return np.concatenate([drift.detach().numpy().ravel(), div.detach().numpy()])

        def go():
            y0 = np.concatenate([x64.ravel(), np.zeros(shape[0])])
            sol = solve_ivp(rhs, (EPS, SDE.T), y0, method="RK45", rtol=tol, atol=tol)
            z = torch.as_tensor(sol.y[:-shape[0], -1].reshape(shape))
            return (SDE.prior_log_prob(z).numpy() + sol.y[-shape[0]:, -1]), sol.nfev, sol.nfev
        return go

    def denoiser(xs, sigma):
        t = torch.log(sigma / SDE.sigma_min) / math.log(SDE.sigma_max / SDE.sigma_min)
        return xs + (sigma ** 2)[:, None] * score(xs, t)

    def kdiff(tol):
        def go():
            torch.manual_seed(11)  # its probe: the first draw of torch's generator
            ll, stats = kd.log_likelihood(denoiser, x, float(SDE.sigma(torch.tensor(EPS, dtype=x.dtype))),
                                          SDE.sigma_max, atol=tol, rtol=tol)
            return ll.detach().numpy(), stats["fevals"], stats["fevals"]
        return go

    analytic = TARGET.score_model(SDE)
    contenders = {"scorecore (1 probe)": ours, "score_sde design (SciPy RK45)": score_sde,
                  "k-diffusion log_likelihood": kdiff,
                  # Per-sample error control is stricter than one norm over the batch: the same
                  # solve at a looser tolerance, for the time at the peers' error.
                  f"scorecore (1 probe), rtol = atol = {LOOSE:g}": lambda tol: ours(LOOSE if tol == TOL else tol),
                  "scorecore (1 probe), controller='integral'": lambda tol: ours(tol, controller="integral"),
                  "scorecore (1 probe), no compaction": lambda tol: ours(tol, compact=False),
                  "scorecore exact (Jacobian trace)": lambda tol: ours(tol, "exact"),
                  "scorecore exact (analytic divergence)": lambda tol: ours(tol, "exact", analytic)}
    return contenders


def torch_rows(repeats: int, batches):
    import torch

    torch.set_num_threads(1)
    rows = []
    for n in batches:
        x64 = np.asarray(TARGET.sample(n, seed=5), dtype=np.float64)
        cont = torch_contenders(n, x64)
        timed = best_of({k: make(TOL) for k, make in cont.items()}, repeats)
        # The loose row solves the one-probe ODE, the Jacobian-trace row the analytic one: shared references.
        same = {k: k for k in cont} | {"scorecore exact (Jacobian trace)": "scorecore exact (analytic divergence)"}
        same |= {k: "scorecore (1 probe)" for k in cont if k.startswith("scorecore (1 probe), ")}
        refs = {k: cont[k](REF_TOL)()[0] for k in set(same.values())}
        for k, (best, spread, (lp, nfe, model_nfe)) in timed.items():
            err = np.abs(lp - refs[same[k]])
            rows.append((k, n, best, spread, nfe, model_nfe, float(err.max()), float(np.quantile(err, 0.99))))
            print(rows[-1], flush=True)
    return rows


# -- JAX ---------------------------------------------------------------------------------

def _perturbed():
    import jax.numpy as jnp
    from flax import nnx

    class Perturbed(nnx.Module):
        """s(x, t) = exact score · (1 + 0.01 tanh(W x + b)): weights the solve takes as arguments,
        trajectories that stay in the data region (random networks' do not)."""

        def __init__(self, score, seed: int):
            self.score = score
            self.lin = nnx.Linear(16, 16, rngs=nnx.Rngs(seed), param_dtype="float64")

        def __call__(self, x, t):
            return self.score(x, t) * (1.0 + 0.01 * jnp.tanh(self.lin(x)))

    return Perturbed


def jax_rows(repeats: int, n: int):
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax
    from flax import nnx

    be = sc.get_backend("jax")
    Perturbed = _perturbed()
    x = be.asarray(np.asarray(TARGET.sample(n, seed=5)), dtype="float64")
    opts = dict(eps=EPS, rtol=TOL, atol=TOL, divergence="hutchinson", probe="rademacher")
    score = TARGET.score_model(SDE)
    f = jax.jit(sc.log_likelihood_fn(score, SDE, x.shape, backend=be, dtype="float64", **opts))
    net0, net1 = (Perturbed(score, s) for s in (0, 1))
    g = jax.jit(sc.log_likelihood_fn(net0, SDE, x.shape, backend=be, dtype="float64", **opts))
    state1 = nnx.state(net1)
    key = be.key(3)
    probes = be.rademacher(sc.streams.run_key(be, key, "probes"), (n, 1, 16), "float64")[:, 0]

    def drx(tol):
        def vf(t, y, eps_i):
            xi = y[:-1]

            def drift(z):
                return SDE.reverse_drift(z[None], t[None], score(z[None], t[None]), probability_flow=True)[0]

            dx, jv = jax.jvp(drift, (xi,), (eps_i,))
            return jax.numpy.concatenate([dx, jax.numpy.sum(jv * eps_i)[None]])

        term = diffrax.ODETerm(vf)

        def one(xi, eps_i):
            y0 = jax.numpy.concatenate([xi, jax.numpy.zeros(1)])
            sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), EPS, SDE.T, None, y0, args=eps_i,
                                      stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                                      max_steps=10_000)
            yT = sol.ys[-1]
            return SDE.prior_log_prob(yT[None, :-1])[0] + yT[-1], sol.stats["num_steps"]

        return jax.jit(jax.vmap(one))

    d5, d10 = drx(TOL), drx(REF_TOL)
    f10 = jax.jit(sc.log_likelihood_fn(score, SDE, x.shape, backend=be, dtype="float64",
                                       **{**opts, "rtol": REF_TOL, "atol": REF_TOL}))
    ready = jax.block_until_ready
    fns = {
        "warm jax.jit(log_likelihood_fn)": lambda: ready(f(x, key)),
        "sc.log_likelihood, same call again": lambda: ready(sc.log_likelihood(score, SDE, x, backend=be, seed=3,
                                                                              **opts)),
        "sc.log_likelihood, new seed each call": lambda: ready(sc.log_likelihood(
            score, SDE, x, backend=be, seed=int(time.perf_counter_ns() % 1000), **opts)),
        "warm jax.jit(log_likelihood_fn), NNX model": lambda: ready(g(x, key, state1)),
        "sc.log_likelihood, NNX model with new weights": lambda: ready(sc.log_likelihood(
            net1 if time.perf_counter_ns() % 2 else net0, SDE, x, backend=be, seed=3, **opts)),
        "diffrax diffeqsolve (vmap)": lambda: ready(d5(x, probes)[0]),
    }
    first = {}
    for k, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[k] = time.perf_counter() - t0
    timed = best_of(fns, 5 * repeats)  # ~20 ms each: more repeats for the same wall time
    err_ours = np.abs(np.asarray(f(x, key)) - np.asarray(f10(x, key)))
    err_drx = np.abs(np.asarray(d5(x, probes)[0]) - np.asarray(d10(x, probes)[0]))
    return timed, first, err_ours, err_drx


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="batch 64 only")
    a = p.parse_args(argv)
    batches = (64,) if a.quick else (64, 1024)
    load0 = os.getloadavg()
    trows = torch_rows(a.repeats, batches)
    jrows = {n: jax_rows(a.repeats, n) for n in batches}
    load1 = os.getloadavg()
    lines = ["# Likelihood speed: scorecore against score_sde's design, k-diffusion and diffrax", "",
             f"`PYTHONPATH=src:backends:reference python benchmarks/likelihood_speed.py --repeats {a.repeats}`. "
             "16d mixture's exact score under VE (σ ∈ [0.01, 50]), float64, CPU, 1 torch thread, "
             f"rtol = atol = {TOL:g}, eps = {EPS:g}, one Rademacher probe; contenders alternate in one "
             f"process, best of {a.repeats} (torch) and {5 * a.repeats} (JAX); spread = worst/best. Error: |log p − the same method at "
             f"rtol = atol = {REF_TOL:g} with the same probe| (nats). **Machine load** (1-min load average "
             f"of a 2-core machine shared with other sessions): {load0[0]:.1f} at the start, {load1[0]:.1f} "
             "at the end; ratios from one run move by ±20 % on this machine.", "",
             "## torch: one probe, and the exact divergence", "",
             "| contender | batch | time (s) | spread | ratio to scorecore (1 probe) | NFE (RHS) | model passes "
             "| max err | p99 err |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in batches:
        base = next(r[2] for r in trows if r[1] == n and r[0] == "scorecore (1 probe)")
        for k, nn, best, spread, nfe, mnfe, emax, e99 in trows:
            if nn == n:
                lines.append(f"| {k} | {n} | {best:.3f} | {spread:.2f} | {best / base:.2f} | {nfe} | {mnfe} | "
                             f"{emax:.1e} | {e99:.1e} |")
    lines += ["", "Ratio above 1: slower than scorecore's one-probe solve. Model passes: scorecore's "
              "`info.model_nfe` (a JVP or one Jacobian direction = one pass); the peers' evaluations each "
              "make one forward and one backward pass.", "", "## JAX: compile once, and diffrax", "",
              "| batch | run | first call (s) | best (s) | spread | ratio to the warm compiled run |",
              "|---:|---|---:|---:|---:|---:|"]
    for n, (timed, first, eo, ed) in jrows.items():
        for k, (best, spread, _) in timed.items():
            base = timed["warm jax.jit(log_likelihood_fn), NNX model" if "NNX" in k
                         else "warm jax.jit(log_likelihood_fn)"][0]
            lines.append(f"| {n} | {k} | {first[k]:.2f} | {best:.4f} | {spread:.2f} | {best / base:.2f} |")
        lines.append(f"| {n} | error (max / p99): scorecore {eo.max():.1e} / {np.quantile(eo, 0.99):.1e}, "
                     f"diffrax {ed.max():.1e} / {np.quantile(ed, 0.99):.1e} | | | | |")
    out = HERE / "results" / "likelihood_speed.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
