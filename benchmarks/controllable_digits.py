"""Controllable generation on scikit-learn's 8×8 digits (PyTorch, CPU, a few minutes).

Trains (or loads from ``--cache``) an unconditional ε-prediction MLP score model on the
digits in [−1, 1] under the VP SDE, and a time-dependent conv classifier p_t(y | x(t)) on
noisy digits; then writes

* ``docs/digits_conditional.png``: class-conditional samples, one row per digit 0–9, by
  classifier guidance (score + w ∇ₓ log p_t(y | x), the gradient by ``torch.func.grad``)
  with the PC sampler;
* ``docs/digits_inpainting.png``: held-out digits with their bottom (then right) half
  masked, inpainted by the measurement-aware PC sampler (replacement + correction).

and prints what an independent judge (logistic regression on the clean training digits)
says about the results, and the inpainting error on the masked half.

    PYTHONPATH=src:backends python benchmarks/controllable_digits.py
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import scorecore as sc
from scorecore.conditional import Conditioned, Inpainting, classifier_guidance
from scorecore_torch.classifier import TimeClassifierConv, train_classifier
from scorecore_torch.networks import ScoreMLP, from_state_dict, to_state_dict


class ImageScore:
    """An MLP over the 64 flattened pixels as a score model on (n, 1, 8, 8) images:
    s(x, t) = −ε_θ(x, t)/s(t)."""

    def __init__(self, net, sde):
        self.net, self.sde, self.event_shape = net, sde, (1, 8, 8)

    def __call__(self, x, t):
        _, s = self.sde.marginal(t)
        eps = self.net(x.reshape(x.shape[0], 64), t).reshape(x.shape)
        return -eps / s.reshape(-1, 1, 1, 1)


def train_score(x, sde, steps, seed):
    torch.manual_seed(seed)
    net = ScoreMLP(64, hidden=512, depth=3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    xt = torch.as_tensor(x.reshape(len(x), 64), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        idx = torch.randint(0, len(xt), (256,), generator=gen)
        loss = sc.losses.ddpm_loss(net, sde, xt[idx], backend="torch", seed=i, eps=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if i % 1000 == 0 or i == steps - 1:
            print(f"  score model step {i}: loss {loss.detach().item():.3f}", flush=True)
    return net.eval()


def grid(rows, path, row_labels=None, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nr, nc = len(rows), len(rows[0])
    fig, axes = plt.subplots(nr, nc, figsize=(nc * 0.7 + (0.8 if row_labels else 0), nr * 0.7 + 0.4), dpi=110)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(np.asarray(img).reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    fig.savefig(path)
    plt.close(fig)


def load_models(cache, sde, score_steps, classifier_steps, seed):
    """(train, test, score MLP, time-dependent classifier, judge): the networks loaded from
    ``cache`` or trained and saved there; the judge an independent logistic regression on
    the clean training digits."""
    train, test = sc.data.digits("train", data_range="[-1,1]"), sc.data.digits("test", data_range="[-1,1]")
    score_path = os.path.join(cache, "score_mlp.safetensors")
    if os.path.exists(score_path):
        net = from_state_dict(ScoreMLP(64, hidden=512, depth=3), sc.checkpoint.load(score_path)).eval()
    else:
        t0 = time.perf_counter()
        net = train_score(train.x, sde, score_steps, seed)
        sc.checkpoint.save(score_path, to_state_dict(net))
        print(f"score model: {score_steps} steps in {time.perf_counter() - t0:.0f} s")
    clf_path = os.path.join(cache, "classifier_conv.safetensors")
    clf = TimeClassifierConv(1, 10)
    if os.path.exists(clf_path):
        from_state_dict(clf, sc.checkpoint.load(clf_path)).eval()
    else:
        t0 = time.perf_counter()
        losses = train_classifier(clf, sde, train.x, train.labels, steps=classifier_steps, seed=seed)
        sc.checkpoint.save(clf_path, to_state_dict(clf))
        print(f"classifier: {classifier_steps} steps in {time.perf_counter() - t0:.0f} s, "
              f"final loss {np.mean(losses[-100:]):.3f}")
    for p_ in list(net.parameters()) + list(clf.parameters()):
        p_.requires_grad_(False)
    from sklearn.linear_model import LogisticRegression

    judge = LogisticRegression(max_iter=2000).fit(train.x.reshape(len(train), -1), train.labels)
    return train, test, net, clf, judge


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="out/controllable_digits", help="where trained weights are kept")
    p.add_argument("--score-steps", type=int, default=4000)
    p.add_argument("--classifier-steps", type=int, default=2000)
    p.add_argument("--sampler-steps", type=int, default=500)
    p.add_argument("--scale", type=float, default=2.0, help="guidance scale w")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--docs", default="docs")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    os.makedirs(args.docs, exist_ok=True)
    t_start = time.perf_counter()

    sde = sc.VPSDE()
    be = sc.get_backend("torch")
    train, test, net, clf, judge = load_models(args.cache, sde, args.score_steps, args.classifier_steps, args.seed)
    judge_acc = judge.score(test.x.reshape(len(test), -1), test.labels)
    xt = torch.as_tensor(test.x, dtype=torch.float32)
    with torch.no_grad():
        acc = {t: float((clf(xt if t == 0 else noisy_test(sde, xt, t, args.seed), torch.full((len(xt),), max(t, 1e-3)))
                         .argmax(1).numpy() == test.labels).mean()) for t in (0.0, 0.3, 0.5)}
    print(f"judge (logistic regression) test accuracy {judge_acc:.3f}; time-dependent classifier test accuracy "
          + ", ".join(f"t={t}: {a:.3f}" for t, a in acc.items()))

    model = ImageScore(net, sde)
    # -- class-conditional samples
    n = 10 * args.per_class
    labels = np.repeat(np.arange(10), args.per_class)
    guided = classifier_guidance(model, clf, torch.as_tensor(labels), scale=args.scale, backend=be)
    t0 = time.perf_counter()
    xs = sc.sample(guided, sde, (n, 1, 8, 8), sampler="pc", steps=args.sampler_steps, backend=be,
                   seed=args.seed, progress=False).clamp(-1, 1).numpy()
    hit = float((judge.predict(xs.reshape(n, -1)) == labels).mean())
    xu = sc.sample(model, sde, (n, 1, 8, 8), sampler="pc", steps=args.sampler_steps, backend=be, seed=args.seed,
                   progress=False).clamp(-1, 1).numpy()
    base = float((judge.predict(xu.reshape(n, -1)) == labels).mean())
    print(f"class-conditional (w = {args.scale:g}, PC {args.sampler_steps} steps, {time.perf_counter() - t0:.0f} s): "
          f"{hit:.1%} of {n} samples classified as their target by the judge (unguided samples "
          f"with the same noise: {base:.1%}, chance 10%)")
    grid([xs[labels == c][: args.per_class] for c in range(10)], os.path.join(args.docs, "digits_conditional.png"),
         [str(c) for c in range(10)], f"classifier guidance, w = {args.scale:g} (rows: target class)")

    # -- inpainting: bottom half, then right half masked, of 10 held-out digits (one per class)
    pick = np.array([np.nonzero(test.labels == c)[0][0] for c in range(10)])
    truth = test.x[pick]
    rows, errs, judged = [], {}, {}
    for name, sl in (("bottom", (slice(None), slice(0, 4), slice(None))), ("right", (slice(None), slice(None), slice(0, 4)))):
        mask = np.zeros((1, 8, 8))
        mask[sl] = 1.0  # known: the top (left) half
        reps = 3
        y = np.repeat(truth, reps, axis=0)
        xi = sc.sample(model, sde, (10 * reps, 1, 8, 8), sampler=Conditioned("pc", Inpainting(mask, y), steps=args.sampler_steps),
                       backend=be, seed=args.seed + 1, progress=False).clamp(-1, 1).numpy()
        miss = mask == 0
        errs[name] = float(np.sqrt(np.mean(((xi - y) ** 2)[:, miss])))
        judged[name] = float((judge.predict(xi.reshape(len(xi), -1)) == np.repeat(test.labels[pick], reps)).mean())
        shown = np.where(mask > 0, truth, -1.0)
        rows += [list(truth), list(shown)] + [list(xi[r::reps]) for r in range(reps)]
    print("inpainting (PC " + str(args.sampler_steps) + " steps): RMSE on the missing half " +
          ", ".join(f"{k} {v:.3f}" for k, v in errs.items()) + " (pixels in [−1, 1]); judge agrees with the true digit on " +
          ", ".join(f"{k} {v:.0%}" for k, v in judged.items()))
    labels_rows = []
    for name in ("bottom", "right"):
        labels_rows += ["truth", f"{name} masked"] + [f"sample {r + 1}" for r in range(3)]
    grid(rows, os.path.join(args.docs, "digits_inpainting.png"), labels_rows,
         "inpainting: known half kept, missing half sampled (white = masked)")
    print(f"total {time.perf_counter() - t_start:.0f} s; wrote {args.docs}/digits_conditional.png, {args.docs}/digits_inpainting.png")
    return 0


def noisy_test(sde, x, t, seed):
    g = torch.Generator().manual_seed(seed)
    m, s = sde.marginal(torch.full((len(x),), t))
    return m.reshape(-1, 1, 1, 1) * x + s.reshape(-1, 1, 1, 1) * torch.randn(x.shape, generator=g)


if __name__ == "__main__":
    raise SystemExit(main())
