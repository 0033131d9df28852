"""Classifier guidance: conditional score models from an unconditional score and p_t(y | x).

By Bayes' rule p_t(x | y) ∝ p_t(x) p_t(y | x), so the conditional reverse-time SDE
(Song et al. 2021, eq. 48)

    dx = [f(x, t) − g(t)² (∇ₓ log p_t(x) + ∇ₓ log p_t(y | x))] dt + g(t) dw̄

is the unconditional one with the score replaced by ∇log p_t(x) + ∇log p_t(y | x). A
:class:`GuidedScore` is that sum as a score model ``(x, t) -> s_θ(x, t) + w ∇ₓ log p_t(y | x)``
with a guidance scale w (w = 1: the exact conditional; w > 1 sharpens p(y | x)^w, as in
Dhariwal & Nichol 2021), so every sampler (PC, reverse SDE, ODE, DDIM, EDM, …) runs
conditioned without change.

The classifier gradient comes from the backend's autodiff (:class:`ClassifierGradient`:
∇ₓ Σ_i log softmax(f(x_i, t_i))_{y_i}, one reverse pass for the batch since the samples
are independent) or, on a Gaussian mixture, in closed form
(``GaussianMixture.class_score``: :func:`mixture_guidance`).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import validation as v
from .._arrays import is_array, namespace


def _check_labels(labels, n_classes: int | None = None):
    """``labels`` if it is an int or a 1-D array of ints, each in [0, n_classes) when that is known.

    A label out of range would select no class: its guidance is log 0, a NaN at the first step."""
    hi = None if n_classes is None else n_classes - 1
    if isinstance(labels, numbers.Integral) and not isinstance(labels, bool):
        return v.integer("labels", labels, lo=0, hi=hi)
    lab = labels if is_array(labels) else np.asarray(labels)
    xp = namespace(lab)
    if lab.ndim != 1 or not xp.isdtype(lab.dtype, "integral"):
        raise TypeError(f"labels must be an int or a 1-D array of ints (one per sample), got {lab.dtype} "
                        f"of shape {tuple(lab.shape)}")
    ok = lab >= 0 if hi is None else xp.logical_and(lab >= 0, lab <= hi)
    v.array_all("labels", lab, ok, "class indices in [0, C − 1]" if hi is None else f"class indices in [0, {hi}]")
    return labels


def _labels_array(labels, x):
    """``labels`` (an int or a sequence/array of n ints) as an int32 array of shape (n,)."""
    import array_api_compat

    xp = namespace(x)
    n = x.shape[0]
    if isinstance(labels, numbers.Integral) and not isinstance(labels, bool):
        return xp.full((n,), int(labels), dtype=xp.int32, device=array_api_compat.device(x))
    # Always through x's namespace: labels given as a NumPy array (or a list) must become x's
    # kind of array, on x's device, before the framework's ops see them.
    lab = xp.asarray(labels, device=array_api_compat.device(x))
    if tuple(lab.shape) != (n,):
        raise ValueError(f"labels must be an int or have shape ({n},) (one per sample), got shape {tuple(lab.shape)}")
    return xp.astype(lab, xp.int32)


def _check_scale(scale):
    return v.nonneg_float("scale (the guidance weight w)", scale)


class GuidedScore:
    """The conditional score ``s(x, t) + w · guide(x, t)``, with ``guide(x, t) ≈ ∇ₓ log p_t(y | x)``.

    ``score``: the unconditional score model; ``guide``: a callable of the same
    signature; ``scale`` w ≥ 0. Keeps the score's ``event_shape``.
    """

    def __init__(self, score, guide, scale: float = 1.0):
        if not callable(score) or not callable(guide):
            raise TypeError("score and guide must be callables (x, t) -> array")
        self.score, self.guide, self.scale = score, guide, _check_scale(scale)
        event = getattr(score, "event_shape", None)
        if event is not None:
            self.event_shape = tuple(event)

    def __call__(self, x, t):
        s = self.score(x, t)
        if self.scale == 0.0:
            return s
        return s + self.scale * self.guide(x, t)

    def __repr__(self):
        return f"GuidedScore({self.score!r}, {self.guide!r}, scale={self.scale:g})"


class ClassifierGradient:
    """∇ₓ log p_t(y | x) of a time-dependent classifier by the backend's autodiff.

    ``classifier(x, t)`` returns logits (n, C) on the backend's arrays; then
    log p_t(y | x) = f_y − logsumexp_c f_c and the gradient of Σ_i log p_t(y_i | x_i) with
    respect to x is row i's gradient in row i (the samples do not interact), computed
    with ``backend.grad`` (``torch.func.grad``, ``jax.grad``). ``labels``: an int (every
    sample) or n ints (one per sample).
    """

    def __init__(self, classifier, labels, backend):
        from ..backend import get_backend

        if not callable(classifier):
            raise TypeError(f"classifier must be a callable (x, t) -> logits, got {type(classifier).__name__}")
        self.classifier, self.labels, self.backend = classifier, _check_labels(labels), get_backend(backend)
        self._n_classes_checked = None

    def log_prob(self, x, t):
        """log p_t(y_i | x_i), shape (n,)."""
        xp = namespace(x)
        logits = self.classifier(x, t)
        if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"classifier must return logits of shape ({x.shape[0]}, C), got {tuple(logits.shape)}")
        if self._n_classes_checked != logits.shape[1]:  # C is static: checked on the host once per C
            _check_labels(self.labels, logits.shape[1])
            self._n_classes_checked = logits.shape[1]
        lab = _labels_array(self.labels, x)
        onehot = xp.astype(lab[:, None] == _arange_like(xp, logits), logits.dtype)
        mx = xp.max(logits, axis=1, keepdims=True)
        lse = xp.log(xp.sum(xp.exp(logits - mx), axis=1)) + mx[:, 0]
        return xp.sum(onehot * logits, axis=1) - lse

    def __call__(self, x, t):
        xp = namespace(x)
        return self.backend.grad(lambda y: xp.sum(self.log_prob(y, t)))(x)

    def __repr__(self):
        return f"ClassifierGradient({self.classifier!r}, labels={self.labels!r}, backend={self.backend.name!r})"


def _arange_like(xp, logits):
    """[0, 1, …, C−1] as a (1, C) int32 array on the logits' device."""
    import array_api_compat

    return xp.arange(logits.shape[1], dtype=xp.int32, device=array_api_compat.device(logits))[None, :]


def classifier_guidance(score, classifier, labels, *, scale: float = 1.0, backend=None) -> GuidedScore:
    """The conditional score s_θ(x, t) + w ∇ₓ log p_t(y | x) with a classifier's autodiff gradient.

    ``classifier(x, t)`` -> logits (n, C), trained on noisy data x(t) = m(t) x(0) + s(t) z
    (see the ``classifier`` modules of the torch and JAX backends).
    """
    return GuidedScore(score, ClassifierGradient(classifier, labels, backend), scale)


def mixture_guidance(target, sde, labels, *, classes=None, scale: float = 1.0) -> GuidedScore:
    """Exact classifier guidance on a Gaussian mixture: ∇log p_t(x) + w ∇log p_t(c | x) with the
    closed-form ``target.class_score``; at w = 1 it is the exact score of the mixture restricted
    to class c (``classes`` (K,) assigns components to classes; default one class per component)."""
    host, _ = target._classes(classes, np.zeros(1))  # validate before sampling
    _check_labels(labels, int(host.max()) + 1)

    def guide(x, t):
        lab = labels if isinstance(labels, numbers.Integral) else _labels_array(labels, x)
        return target.class_score(x, t, sde, labels=lab, classes=classes)

    return GuidedScore(target.score_model(sde), guide, scale)


__all__ = ["ClassifierGradient", "GuidedScore", "classifier_guidance", "mixture_guidance"]
