"""Gradients for discrete samples drawn by inversion: what ``estimator=`` of a sampler picks.

A discrete sample x = F⁻¹(U; θ) is piecewise constant in θ, so its exact derivative is zero
almost everywhere. Each estimator keeps the hard value x (except the soft Gumbel-softmax) and
attaches a stand-in derivative; all are linear in the parameters' tangents, so they work in
forward and reverse mode alike. (``"score"`` attaches nothing here: the generator keeps the
log-probability, see :mod:`minidiff.random`.)

* ``"smoothed"``: x + s(x)·(θ − stop_gradient(θ)) with s = ``dist.smoothed_slope``, the average
  of the two one-sided jump rules: value x exactly, derivative s·δθ. E[s] = dE[X]/dθ, so it is
  unbiased for any f linear in the sample; biased otherwise; low variance.
* ``"straight_through"``: value x, derivative that of the mean E[X](θ) (categorical: of the
  one-hot's mean, ``probs``). Also unbiased for linear f, biased otherwise.
* ``"gumbel_softmax"`` (bernoulli, categorical): the relaxation y = softmax((log p + g)/τ) with
  Gumbel noise g; value x (``hard=True``) or y (``hard=False``), derivative that of y. The
  noise is drawn *given x* (for Bernoulli, g₁ − g₀ = −logit U from x's own U), which is the
  same joint law of (x, y) as the usual construction but keeps x equal to the inversion sample,
  so switching estimators never changes the simulated path. Biased; the bias shrinks as τ → 0
  while the variance grows.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend
from ..core import Box, Primitive, shape_of, without_derivatives
from ..ops import (
    add,
    broadcast_to,
    clip,
    log,
    log1p,
    multiply,
    sigmoid,
    softmax,
    stop_gradient,
    subtract,
)
from ..ops.linear import as_batched, reshape
from ..ops.surrogates import straight_through
from .distributions import on_values, traced_beyond_batching

__all__ = ["DISCRETE_GRADIENTS", "check_estimator", "gumbel_noise", "attach",
           "attach_categorical"]

# The gradients a discrete sample can carry: the names ``estimator=`` accepts.
DISCRETE_GRADIENTS = ("smoothed", "straight_through", "gumbel_softmax", "score", "none")
RELAXABLE = ("bernoulli", "categorical")


def check_estimator(name: str, estimator: Any, tau: Any = 1.0, one_hot: bool = False) -> None:
    """Refuse unknown estimator names, estimators the sampler ``name`` lacks, and τ ≤ 0."""
    if estimator not in DISCRETE_GRADIENTS:
        raise ValueError(f"{name}: unknown estimator {estimator!r}; choose one of "
                         f"{', '.join(map(repr, DISCRETE_GRADIENTS))}")
    if name == "categorical" and estimator == "smoothed":
        raise ValueError("categorical: estimator 'smoothed' needs one continuous parameter; "
                         "use 'straight_through', 'gumbel_softmax', 'score' or 'none'")
    if name == "categorical" and estimator in ("straight_through", "gumbel_softmax") \
            and not one_hot:
        raise ValueError(f"categorical: estimator {estimator!r} needs one_hot=True (an index "
                         f"has no derivative to borrow)")
    if estimator == "gumbel_softmax" and name not in RELAXABLE:
        raise ValueError(f"{name}: estimator 'gumbel_softmax' exists only for bernoulli and "
                         f"categorical; use 'smoothed', 'straight_through', 'score' or 'none'")
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not math.isfinite(tau) \
            or tau <= 0:
        raise ValueError(f"{name}: temperature tau must be a finite number > 0, got {tau!r}")


# _FLOOR: probabilities are clipped at eps² (about 5e-32) before the log. The relaxation of a
# class rarer than that is immaterial, and 1/eps² keeps the log's derivative finite for any
# sensible τ (a floor at the smallest normal number overflows it to inf).


def _finfo() -> Any:
    b = get_backend()
    return b.xp.finfo(b.float_dtype)


def gumbel_noise(u: Any) -> Any:
    """−log(−log U) on raw arrays: finite for U strictly inside (0, 1)."""
    xp = get_backend().xp
    return -xp.log(-xp.log(u))


def attach(dist: Any, x: Any, u: Any, params: tuple, shape: tuple, estimator: str,
           tau: float = 1.0, hard: bool = True) -> Any:
    """The sample ``x`` = dist.sample(u, params) with ``estimator``'s derivative attached.

    ``params`` may be traced; the continuous one (p or λ) comes last. Not for ``"score"``."""
    traced = any(traced_beyond_batching(p) for p in params)
    if estimator == "none" or (not traced and (hard or estimator != "gumbel_softmax")):
        return x
    if estimator == "smoothed":
        theta = params[-1]
        slope = on_values(dist.smoothed_slope, x, *params)
        x = add(x, multiply(slope, subtract(theta, stop_gradient(theta))))  # x, slope·δθ
        if dist.name == "binomial" and isinstance(params[0], Box):
            # a traced count n (e.g. a smoothed Poisson draw): one more trial adds p successes
            # on average, d E[X]/dn = p, so the smoothed derivative in n is p·δn
            n = params[0]
            x = add(x, multiply(broadcast_to(theta, shape), subtract(n, stop_gradient(n))))
        return x
    if estimator == "straight_through":
        mean = multiply(*params) if dist.name == "binomial" else dist.mean(*params)  # n·p, with
        return straight_through(x, broadcast_to(mean, shape))  # a raw n never the left operand
    # Bernoulli's Gumbel-softmax with classes (1, 0): y₁ = σ((log p − log(1−p) + g₁ − g₀)/τ).
    # g₁ − g₀ is Logistic, drawn as −logit U from the sample's own U: then the relaxed logit
    # is > 0 exactly when U < p, i.e. when x = 1 (the usual joint law of (x, y), coupled to x).
    xp = get_backend().xp
    eps = float(_finfo().eps)
    pc = clip(params[0], eps * eps, 1.0 - eps)  # see _FLOOR
    noise = log1p(-u) - log(u) if isinstance(u, Box) else xp.log1p(-u) - xp.log(u)
    y = sigmoid((log(pc) - log1p(-pc) + noise) / tau)
    return straight_through(x, y) if hard else y


def attach_categorical(onehot: Any, probs: Any, v: Any, estimator: str, tau: float = 1.0,
                       hard: bool = True) -> Any:
    """A one-hot sample (raw, shape (*batch, C)) with ``estimator``'s derivative in ``probs``.

    ``v``: uniforms strictly inside (0, 1) of the one-hot's shape, for the Gumbel noise."""
    if estimator == "none" or (not traced_beyond_batching(probs) and hard):
        return onehot
    if estimator == "straight_through":
        return straight_through(onehot, broadcast_to(probs, shape_of(onehot)))
    eps = float(_finfo().eps)
    logits = log(clip(probs, eps * eps, 1.0))  # see _FLOOR
    noise = conditional_gumbel(logits, onehot, v)
    y = softmax((logits + noise) / tau, axis=-1)
    return straight_through(onehot, y) if hard else y


def conditional_gumbel(logits: Any, onehot: Any, v: Any) -> Any:
    """:func:`_conditional_gumbel` on the values of its arguments (without derivatives); under
    ``vmap`` one noise per batch element, by the primitive's batching rule."""
    values = [without_derivatives(a) for a in (logits, onehot, v)]
    if any(isinstance(a, Box) for a in values):
        return _conditional_gumbel_p(*values)
    return _conditional_gumbel(*values)


def _conditional_gumbel_batch(size: int, args: Any, batched: Any) -> Any:
    """logits (B, *pl, C), onehot and v (B, *b, C) with pl broadcasting to b: line pl up with
    b, so the reductions over the last axis and the broadcast see one element per row."""
    logits, onehot, v = (as_batched(a, size, f) for a, f in zip(args, batched))
    missing = len(shape_of(v)) - len(shape_of(logits))
    if missing > 0:
        shape = shape_of(logits)
        logits = reshape(logits, (shape[0], *(1,) * missing, *shape[1:]))
    return _conditional_gumbel_p(logits, onehot, v)


def _conditional_gumbel(logits: Any, onehot: Any, v: Any) -> Any:
    """Gumbel noise g (raw) with argmax(logits + g) = the class marked in ``onehot``.

    Given the argmax k, the maximum M = max_j(a_j + g_j) is Gumbel(logsumexp a) and independent
    of k; each other a_j + g_j is Gumbel(a_j) truncated below M, drawn by inversion as
    −log(e^{−M} + e^{−a_j}(−log V_j)). Together (k, g) have the joint law of the Gumbel-max
    trick, so the relaxation is the usual one, but k is the inversion sample."""
    xp = get_backend().xp
    a = xp.broadcast_to(logits, v.shape)
    top = xp.max(a, axis=-1, keepdims=True)
    lse = top + xp.log(xp.sum(xp.exp(a - top), axis=-1, keepdims=True))
    m = lse + xp.sum(onehot * gumbel_noise(v), axis=-1, keepdims=True)
    others = -xp.logaddexp(-m, xp.log(-xp.log(v)) - a)
    return xp.where(onehot > 0.5, m, others) - a


_conditional_gumbel_p = Primitive("conditional_gumbel", _conditional_gumbel,
                                  differentiable=False, batch=_conditional_gumbel_batch)
