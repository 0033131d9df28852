"""Why three digits test images escaped under the README's MLP: each candidate cause tested on them.

    python benchmarks/digits_escapes.py runs/digits_mlp/checkpoint.safetensors

(the checkpoint of the README's ``scorecore train --data digits --model mlp`` command). Scores the
359 test images (NumPy float64 MLP, exact divergence, draw 0) with the escape check off, finds
the images whose x(T) ran off, and re-solves those with: a tighter tolerance, fixed-step RK4,
a larger eps, float32; then follows max|x(t)| along their trajectories and compares the MLP's
score there with the score −(x − m(t)μ)/·· of the Gaussian fitted to the training data.
"""

from __future__ import annotations

import sys

import numpy as np

import scorecore as sc
from scorecore import training


def main(path):
    model, config = training.load_score_model(path, backend="numpy", dtype="float64")
    sde = config.make_sde()
    ds = sc.data.digits("test", data_range="[-1,1]").flatten()
    be = sc.get_backend("numpy")
    x = np.asarray(sc.likelihood.dequantize(ds.levels.reshape(len(ds), -1), 17, (-1.0, 1.0), backend=be, key=be.key(0)))
    off = dict(escape_factor=float("inf"), return_info=True)
    logp, info = sc.log_likelihood(model, sde, x, **off)
    D, offset = 64, np.log2(17 / 2)
    bpd = -logp / (D * np.log(2)) + offset
    zmax = np.abs(np.asarray(info.z)).max(axis=1)
    bad = np.flatnonzero(zmax > 20)
    print(f"escape check off: mean {bpd.mean():.4g}, median {np.median(bpd):.4f}; images with max|x(T)| > 20: "
          f"{bad.tolist()}, bpd {bpd[bad].round(1).tolist()}, max|x(T)| {zmax[bad].round(1).tolist()}")
    flagged = sc.log_likelihood(model, sde, x, return_info=True)[1]
    st = np.asarray(flagged.status)
    print(f"escape check on (default bound): status ESCAPED at {np.flatnonzero(st == 5).tolist()}; "
          f"mean of the rest {bpd[st == 1].mean():.4f}")
    xb = x[bad]
    for name, kw in [("rtol=atol=1e-5 (baseline)", {}), ("rtol=atol=1e-8", dict(rtol=1e-8, atol=1e-8)),
                     ("fixed RK4, 2000 steps", dict(method="rk4", steps=2000)), ("eps = 1e-3", dict(eps=1e-3)),
                     ("float32", dict(dtype="float32"))]:
        m = training.load_score_model(path, backend="numpy", dtype="float32")[0] if "dtype" in kw else model
        lp, inf = sc.log_likelihood(m, sde, xb.astype(kw.get("dtype", "float64")), **off, **kw)
        print(f"  {name:28s} bpd {(-np.asarray(lp, float) / (D * np.log(2)) + offset).round(1).tolist()}  "
              f"max|x(T)| {np.abs(np.asarray(inf.z, float)).max(axis=1).round(1).tolist()}")
    # Where along the flow the trajectory leaves, and the MLP's score there vs the Gaussian's.
    train = sc.data.digits("train", data_range="[-1,1]").flatten().x
    mu, cov = train.mean(axis=0), np.cov(train, rowvar=False) + (2 / 17) ** 2 / 12 * np.eye(64)
    ts = [1e-5, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    y = xb
    for t0, t1 in zip(ts[:-1], ts[1:]):
        y = np.asarray(sc.samplers.ode.integrate(sc.likelihood.change_of_variables.flow(model, sde), y, t0, t1,
                                                 backend="numpy")[0]) if t0 > 0 else y
        m_t, s_t = (float(v) for v in sde.marginal(np.asarray(t1)))
        c_t = m_t ** 2 * cov + s_t ** 2 * np.eye(64)
        gauss = -np.linalg.solve(c_t, (y - m_t * mu).T).T
        mlp = np.asarray(model(y, np.full(len(y), t1)))
        print(f"  t = {t1:4.2f}: max|x| {np.abs(y).max(axis=1).round(2).tolist()}  |s_MLP|/|s_Gauss| "
              f"{(np.linalg.norm(mlp, axis=1) / np.linalg.norm(gauss, axis=1)).round(2).tolist()}  "
              f"cos {(np.sum(mlp * gauss, 1) / np.linalg.norm(mlp, axis=1) / np.linalg.norm(gauss, axis=1)).round(2).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1])
