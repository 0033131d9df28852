"""Solver error against the exact probability flow, scorecore's deterministic samplers beside
k-diffusion's, at NFE 5, 10, 20 and 50 — from the same x(T), on exact scores (float64).

Metric: the RMS over samples of ‖x − x*‖, x* the exact flow's end from the same x(T) (sliced W₂
over its noise floor cannot see these errors at n = 2,000; see issue 17). Targets:

* ``gauss``: N(μ, diag λ) in 3-D (μ = (1, −0.5, 2), √λ = (0.3, 1, 0.05)), whose flow is known
  in closed form; every sampler ends at σ = 0 except DDIM and DPM-Solver++(2M), which end at
  t = eps (their x* is the flow at eps);
* ``8-ring``: the 2-D mixture; x* from LMS with 2,000 Karras steps (its own error, the distance
  to DPM-2 with 2,000 steps, is printed under the table).

k-diffusion's samplers run on its default use, Karras levels (ρ = 7) from σ(T) to σ(eps) and
then 0, built here in float64, on the exact denoiser x̂ ↦ E[x(0) | x̂] of the same target
(test_kdiffusion_conformance.py shows they equal ours on the same levels to 1e-10). Steps
per budget: one evaluation per step (N = NFE) or two (N = ⌊(NFE + 1)/2⌋: 2N − 1 evaluations
when the last step is into σ = 0). diffusers' UniPC and DEIS equal ours on the same
levels (test_diffusers_conformance.py); its own discrete-timestep schedules are not run here yet.

    PYTHONPATH=src:backends:reference python benchmarks/peers.py [--out benchmarks/results/peers.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import scorecore as sc
from scorecore.samplers.sigma_space import karras_sigmas, sigma_of_time

BUDGETS = (5, 10, 20, 50)
MU, LAM = np.array([1.0, -0.5, 2.0]), np.array([0.3, 1.0, 0.05]) ** 2
GAUSS = sc.GaussianMixture(np.array([1.0]), MU[None], np.diag(LAM)[None])
RING = sc.GaussianMixture.example("8-ring")


def one(nfe):
    return nfe


def two(nfe):
    return (nfe + 1) // 2


def three(nfe):
    return (nfe - 1) // 3 + 1  # 3N − 2 evaluations: the last step is into σ = 0


def pndm_steps(nfe):
    """The most steps N whose N + 3 min(3, N − 1) evaluations (three Runge–Kutta steps) fit the budget."""
    return max(n for n in range(1, nfe + 1) if n + 3 * min(3, n - 1) <= nfe)


#: label -> (scorecore sampler, options, steps for a budget, ends at σ = 0)
OURS = {
    "ddim (uniform t)": ("ddim", {}, one, False),
    "ddim (logsnr)": ("ddim", {"schedule": "logsnr"}, one, False),
    "dpmpp_2m (logsnr)": ("dpmpp_2m", {}, one, False),
    "edm (heun)": ("edm", {}, two, True),
    "lms": ("lms", {}, one, True),
    "lms (logsnr)": ("lms", {"schedule": "logsnr"}, one, True),
    "dpm_2": ("dpm_2", {}, two, True),
    "dpmpp_2s": ("dpmpp_2s", {}, two, True),
    "dpmpp_2s (logsnr)": ("dpmpp_2s", {"schedule": "logsnr"}, two, True),
    "dpmpp_2m_sde η=0": ("dpmpp_2m_sde", {"eta": 0.0}, one, True),
    "dpmpp_3m": ("dpmpp_3m", {}, one, True),
    "dpmpp_3m (logsnr)": ("dpmpp_3m", {"schedule": "logsnr"}, one, True),
    "dpmpp_3m taylor (logsnr)": ("dpmpp_3m", {"schedule": "logsnr", "taylor": True}, one, True),
    "unipc bh2 p=2 (logsnr)": ("unipc", {}, one, True),
    "unipc bh2 p=3 (logsnr)": ("unipc", {"order": 3}, one, True),
    "unipc bh1 p=3 (logsnr)": ("unipc_bh1", {"order": 3}, one, True),
    "unipc bh2 p=3 (karras)": ("unipc", {"order": 3, "schedule": "karras"}, one, True),
    "deis tAB-3 (logsnr)": ("deis", {}, one, True),
    "deis tAB-3 (karras)": ("deis", {"schedule": "karras"}, one, True),
    "dpm_solver-2": ("dpm_solver", {"order": 2}, two, True),
    "dpm_solver-3": ("dpm_solver", {}, three, True),
    "dpm_solver-3 (logsnr)": ("dpm_solver", {"schedule": "logsnr"}, three, True),
    "dpm_fast": ("dpm_fast", {}, one, False),
    "pndm (prk warm-up)": ("pndm", {}, pndm_steps, True),
    "plms (heun warm-up)": ("plms", {}, lambda nfe: nfe - 1, True),
}
#: label -> (k-diffusion function, options, steps for a budget)
THEIRS = {
    "k: sample_euler": ("sample_euler", {}, one),
    "k: sample_heun": ("sample_heun", {}, two),
    "k: sample_lms": ("sample_lms", {}, one),
    "k: sample_dpm_2": ("sample_dpm_2", {}, two),
    "k: sample_dpmpp_2s_ancestral η=0": ("sample_dpmpp_2s_ancestral", {"eta": 0.0}, two),
    "k: sample_dpmpp_2m": ("sample_dpmpp_2m", {}, one),
    "k: sample_dpmpp_3m_sde η=0": ("sample_dpmpp_3m_sde", {"eta": 0.0}, one),
}


def kdiffusion():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "samplers"))
    from kdiffusion_stub import load_sampling

    return load_sampling()


def denoiser(target):
    """E[x(0) | x(0) + σ n = x̂] of a Gaussian mixture, on torch tensors (k-diffusion's model)."""
    import torch

    w, mu, cov = (np.asarray(a, dtype=np.float64) for a in (target.weights, target.means, target.covs))
    eye = np.eye(mu.shape[1])

    def D(x, sigma):
        xn, s = x.numpy(), sigma.numpy()[:, None, None, None]
        c = cov[None] + s**2 * eye
        diff = xn[:, None, :] - mu[None]
        sol = np.linalg.solve(c, diff[..., None])[..., 0]
        logp = np.log(w)[None] - 0.5 * np.einsum("nkd,nkd->nk", diff, sol) - 0.5 * np.linalg.slogdet(c)[1]
        r = np.exp(logp - logp.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        return torch.from_numpy(np.einsum("nk,nkd->nd", r, mu[None] + np.einsum("kde,nke->nkd", cov, sol)))

    return D


def rms(e):
    return float(np.sqrt(np.mean(np.sum(e**2, axis=1))))


def gauss_flow(sde, x_T, t):
    (m_T, s_T), (m, s) = ([float(a) for a in sde.marginal(u)] for u in (sde.T, t))
    sig_T, sig_t = np.sqrt(m_T**2 * LAM + s_T**2), np.sqrt(m**2 * LAM + s**2)
    return m * MU + sig_t / sig_T * (x_T - m_T * MU)


def run_case(target_name, sde_name, n, kd):
    sde = {"VP": sc.VPSDE(), "VE": sc.VESDE()}[sde_name]
    target = GAUSS if target_name == "gauss" else RING
    model, eps = target.score_model(sde), sc.api.default_eps(sde)
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((n, target.dim))
    note = ""
    if target_name == "gauss":
        exact = {True: gauss_flow(sde, x_T, 0.0), False: gauss_flow(sde, x_T, eps)}
    else:
        ref = sc.sample(model, sde, x_T.shape, sampler="lms", steps=2000, x_init=x_T, progress=False)
        check = sc.sample(model, sde, x_T.shape, sampler="dpm_2", steps=2000, x_init=x_T, progress=False)
        eps_ref = sc.sample(model, sde, x_T.shape, sampler="dpmpp_2m", steps=4000, x_init=x_T, progress=False)
        exact = {True: ref, False: eps_ref}
        note = (f"x* at σ = 0: LMS, 2,000 steps, error ≈ {rms(ref - check):.1e} RMS (against DPM-2, 2,000 steps); "
                f"x* at t = eps: DPM-Solver++(2M), 4,000 steps.")
    rows = {}
    for label, (name, opts, steps, to_zero) in OURS.items():
        rows[label] = []
        for nfe in BUDGETS:
            x, info = sc.sample(model, sde, x_T.shape, sampler=name, steps=steps(nfe), x_init=x_T, progress=False,
                                return_info=True, **opts)
            rows[label].append((rms(x - exact[to_zero]), info.nfe))
    if kd is not None:
        import torch

        m_T = float(sde.marginal(sde.T)[0])
        s_T, s_e = sigma_of_time(sde, sde.T), sigma_of_time(sde, eps)
        for label, (fn, opts, steps) in THEIRS.items():
            rows[label] = []
            for nfe in BUDGETS:
                N = steps(nfe)
                sig = torch.tensor(karras_sigmas(s_T, s_e, N) + [0.0], dtype=torch.float64)
                calls = [0]

                def counted(x, s, D=denoiser(target)):
                    calls[0] += 1
                    return D(x, s)

                x = getattr(kd, fn)(counted, torch.from_numpy(x_T / m_T), sig, disable=True, **opts).numpy()
                rows[label].append((rms(x - exact[True]), calls[0]))
    return rows, note


def table(rows, note) -> list[str]:
    out = ["| sampler | " + " | ".join(f"NFE {b}" for b in BUDGETS) + " |",
           "| --- | " + " | ".join("---:" for _ in BUDGETS) + " |"]
    best = [min(r[i][0] for r in rows.values()) for i in range(len(BUDGETS))]
    for label, cells in rows.items():
        txt = []
        for i, (err, nfe) in enumerate(cells):
            c = f"{err:.3g}" + (f" ({nfe})" if nfe != BUDGETS[i] else "")
            txt.append(f"**{c}**" if err <= best[i] * (1 + 1e-9) else c)  # equal methods tie to rounding
        out.append(f"| {label} | " + " | ".join(txt) + " |")
    if note:
        out += ["", note]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="samples per case")
    parser.add_argument("--out", type=Path, default=None, help="write the tables here (markdown)")
    args = parser.parse_args(argv)
    kd, why = kdiffusion()
    lines = ["# Solver error against the exact flow: scorecore and k-diffusion side by side", "",
             f"RMS over {args.n} samples of ‖x − x*‖ from the same x(T), float64 (benchmarks/peers.py; "
             "its docstring gives the set-up). A cell's NFE is in brackets where it differs from the budget; "
             "bold: the best of the column.", ""]
    if kd is None:
        lines += [f"k-diffusion not run: {why}", ""]
    for target in ("gauss", "8-ring"):
        for sde in ("VP", "VE"):
            rows, note = run_case(target, sde, args.n, kd)
            lines += [f"## {target}, {sde}", ""] + table(rows, note) + [""]
            print("\n".join(lines[-len(rows) - 6:]), flush=True)
    if args.out:
        args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
