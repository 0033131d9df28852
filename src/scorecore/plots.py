"""Pictures for the command line: 2-D samples over a density's contours, image grids, loss curves.

matplotlib is optional (``pip install 'scorecore[plot]'``) and imported only here, when a
picture is asked for; the figures are written with the non-interactive Agg backend.
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("the pictures need matplotlib: pip install 'scorecore[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _scatter_axes(plt, title):
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    return fig, ax


def samples_over_density(target, x, path, title):
    """2-D samples ``x`` over contours of log p_0 of a 2-D ``GaussianMixture``."""
    plt = _pyplot()
    x = np.asarray(x)
    lim = float(np.max(np.abs(target.means))) + 2.0
    g = np.linspace(-lim, lim, 300)
    gx, gy = np.meshgrid(g, g)
    logp = np.asarray(target.log_prob(np.stack([gx.ravel(), gy.ravel()], axis=1))).reshape(gx.shape)
    fig, ax = _scatter_axes(plt, title)
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.35, color="tab:blue", label="samples", rasterized=True)
    levels = np.max(logp) - np.array([12.0, 8.0, 5.0, 3.0, 1.5, 0.5])
    ax.contour(gx, gy, logp, levels=levels, colors="k", linewidths=0.8, linestyles="solid")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.legend(loc="upper right", markerscale=6)
    _save(plt, fig, path)


def samples_over_data(x, data, path, title):
    """2-D samples ``x`` over data points ``data``."""
    plt = _pyplot()
    fig, ax = _scatter_axes(plt, title)
    ax.scatter(data[:, 0], data[:, 1], s=1.5, alpha=0.25, color="k", label="data", rasterized=True)
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.35, color="tab:blue", label="samples", rasterized=True)
    ax.legend(loc="upper right", markerscale=6)
    _save(plt, fig, path)


def image_grid(x, data_range, path, title, ncols=8):
    """Up to ncols² 8×8 grey images (any shape reshapable to (n, 8, 8)) in [lo, hi)."""
    plt = _pyplot()
    lo, hi = data_range
    imgs = np.clip((np.asarray(x).reshape(len(x), 8, 8) - lo) / (hi - lo), 0, 1)[: ncols * ncols]
    rows = -(-len(imgs) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(ncols, rows), dpi=80)
    for ax, img in zip(np.ravel(axes), imgs):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    _save(plt, fig, path)


def histogram(values, path, title, xlabel, bins=40):
    """A histogram of ``values`` with its mean and median marked."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=bins, color="0.6")
    ax.axvline(float(np.mean(values)), color="C0", label=f"mean {np.mean(values):.3f}")
    ax.axvline(float(np.median(values)), color="C1", ls="--", label=f"median {np.median(values):.3f}")
    ax.set(title=title, xlabel=xlabel, ylabel="images")
    ax.legend()
    _save(plt, fig, path)


def loss_curve(steps, loss, path, title):
    """The per-step loss and its running mean, on a log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(steps, loss, lw=0.5, alpha=0.4, color="tab:blue", label="per step")
    w = max(1, len(loss) // 50)
    if len(loss) >= w:
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, color="tab:blue", lw=1.5, label=f"mean of {w}")
    ax.set_xlabel("step")
    ax.set_ylabel("DSM loss")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend()
    _save(plt, fig, path)


__all__ = ["histogram", "image_grid", "loss_curve", "samples_over_data", "samples_over_density"]
