"""The discrete distributions: sampling by inversion, and what a derivative does to a sample.

Each distribution here is drawn by *inversion* of a uniform U: the sample is F⁻¹(U) for the
CDF F. Two runs at nearby parameters that share U are then coupled: their samples differ only
where U falls between the two CDFs. The derivative of E[f(X)] with respect to a parameter is
therefore carried by rare, finite jumps of the sample, which these rules describe.

For a parameter moving at rate δ (the tangent), a sample X jumps to X + Δ at rate w (per unit
of the parameter), and

    d/dθ E[f(X)] = E[ Σ_events w · (f(X + Δ) − f(X)) ].

The rules (derived from the inversion coupling; ``rate`` is per unit |δ|):

=============  ======================  =============================  =============================
distribution   parameter               δ > 0                          δ < 0
=============  ======================  =============================  =============================
Bernoulli(p)   p                       X=0 → 1 at rate 1/(1−p)        X=1 → 0 at rate 1/p
Binomial(n,p)  p                       X → X+1 at rate (n−X)/(1−p)    X → X−1 at rate X/p
Poisson(λ)     λ                       X → X+1 at rate 1              X → X−1 at rate X/λ
Geometric(p)   p (failures before      X → X−1 at rate X/(p(1−p))     X → X+1 at rate (X+1)/p
               the first success)
=============  ======================  =============================  =============================

Categorical, whose parameters are the cumulative probabilities F_c: each boundary c moves, with
both signs at once, c → c+1 at rate (−δF_c)⁺/p_c and c → c−1 at rate (δF_{c−1})⁺/p_c.

The *smoothed* (two-sided) estimator replaces each jump by its expected effect on X, averaged
over the two one-sided rules so that it is linear in δ (usable in reverse mode):
``smoothed_slope`` gives dX/dθ per unit δ, unbiased for E[X] and for any f that is linear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backend import get_backend
from ..core import Box, Primitive, raw, shape_of, without_derivatives
from ..ops import equal, gammaln, getitem, log, log1p, where
from ..ops import sum as _sum
from ..ops.linear import as_batched, reshape

__all__ = ["DISTRIBUTIONS", "Bernoulli", "Binomial", "Poisson", "Geometric", "Categorical",
           "Event", "check_probability", "traced_beyond_batching", "on_values",
           "categorical_sample"]


@dataclass(frozen=True)
class Event:
    """Candidate jumps of a sample: ``change`` (X → X + change) at ``rate`` ≥ 0 (arrays of the
    sample's shape, possibly with a leading axis of K directions); a rate of 0 means none."""

    change: Any
    rate: Any


def _xp() -> Any:
    return get_backend().xp


def _float(x: Any) -> Any:
    b = get_backend()
    return b.xp.astype(x, b.float_dtype)


def check_probability(p: Any, name: str, what: str = "p") -> None:
    """Refuse probabilities outside [0, 1] (and NaN) with a message naming the sampler."""
    xp = _xp()
    value = raw(p)
    if hasattr(value, "shape"):
        ok = bool(xp.all(xp.logical_and(value >= 0.0, value <= 1.0)))
    else:
        ok = 0.0 <= float(value) <= 1.0
    if not ok:
        raise ValueError(f"{name}: probability {what} must lie in [0, 1], got {value!r}")


def _safe_divide(num: Any, den: Any) -> Any:
    """num/den with 0 where den = 0 (rates at impossible states)."""
    xp = _xp()
    den_safe = xp.where(den == 0, xp.ones_like(den), den)
    return xp.where(den == 0, xp.zeros_like(num * den), num / den_safe)


def _one_sided(d: Any, rate_rising: Any, rate_falling: Any, step: float = 1.0) -> list[Event]:
    """The one jump a sample can make when its parameter moves at rate ``d``: by ``step`` at
    ``rate_rising`` where d > 0, by ``-step`` at ``rate_falling`` where d < 0."""
    xp = _xp()
    rising = d > 0
    rate = xp.where(rising, rate_rising, rate_falling)
    change = xp.where(rising, step * xp.ones_like(rate), -step * xp.ones_like(rate))
    return [Event(change, rate)]


# ---------------------------------------------------------------------------------------------
# Bernoulli
# ---------------------------------------------------------------------------------------------


class Bernoulli:
    """X ∈ {0, 1}, P(X = 1) = p; X = 1[U < p]."""

    name = "bernoulli"

    @staticmethod
    def sample(u: Any, p: Any) -> Any:
        return _float(u < p)

    @staticmethod
    def events(x: Any, p: Any, dp: Any) -> list[Event]:
        """Jumps for tangent ``dp`` (raw, shape (K, ...)): a one-sided rule per sign."""
        return _one_sided(dp, _safe_divide(dp * (1.0 - x), 1.0 - p), _safe_divide(-dp * x, p))

    @staticmethod
    def smoothed_slope(x: Any, p: Any) -> Any:
        """dX/dp per unit: ½ [(1−X)/(1−p) + X/p]; its mean is 1 = dE[X]/dp."""
        return 0.5 * (_safe_divide(1.0 - x, 1.0 - p) + _safe_divide(x, p))

    @staticmethod
    def mean(p: Any) -> Any:
        return p

    @staticmethod
    def log_prob(x: Any, p: Any) -> Any:
        """x log p + (1 − x) log(1 − p), with 0 log 0 = 0."""
        xr = without_derivatives(x)
        return where(xr > 0.5, log(where(xr > 0.5, p, 1.0)), log1p(-where(xr > 0.5, 0.0, p)))


# ---------------------------------------------------------------------------------------------
# Binomial
# ---------------------------------------------------------------------------------------------


class Binomial:
    """X = number of successes in n trials of probability p, by inversion."""

    name = "binomial"

    @staticmethod
    def sample(u: Any, n: Any, p: Any) -> Any:
        """F⁻¹(u), by the backend's exact quantile search (bounded work for any n)."""
        return get_backend().binomial_quantile(u, n, p)

    @staticmethod
    def events(x: Any, n: Any, p: Any, dp: Any) -> list[Event]:
        return _one_sided(dp, _safe_divide(dp * (n - x), 1.0 - p), _safe_divide(-dp * x, p))

    @staticmethod
    def smoothed_slope(x: Any, n: Any, p: Any) -> Any:
        """½ [(n−X)/(1−p) + X/p]; its mean is n."""
        return 0.5 * (_safe_divide(n - x, 1.0 - p) + _safe_divide(x, p))

    @staticmethod
    def mean(n: Any, p: Any) -> Any:
        return n * p

    @staticmethod
    def log_prob(x: Any, n: Any, p: Any) -> Any:
        xr, nr = without_derivatives(x), without_derivatives(n)
        log_choose = gammaln(nr + 1.0) - gammaln(xr + 1.0) - gammaln(nr - xr + 1.0)
        log_p = log(where(xr > 0, p, 1.0))
        log_q = log1p(-where(nr - xr > 0, p, 0.0))
        return log_choose + xr * log_p + (nr - xr) * log_q


# ---------------------------------------------------------------------------------------------
# Poisson
# ---------------------------------------------------------------------------------------------


class Poisson:
    """X ~ Poisson(λ), by inversion."""

    name = "poisson"

    @staticmethod
    def sample(u: Any, lam: Any) -> Any:
        """F⁻¹(u), by the backend's exact quantile search (bounded work for any λ)."""
        return get_backend().poisson_quantile(u, lam)

    @staticmethod
    def events(x: Any, lam: Any, dlam: Any) -> list[Event]:
        return _one_sided(dlam, dlam + 0.0 * x, _safe_divide(-dlam * x, lam))

    @staticmethod
    def smoothed_slope(x: Any, lam: Any) -> Any:
        """½ [1 + X/λ]; its mean is 1."""
        return 0.5 * (1.0 + _safe_divide(x, lam))

    @staticmethod
    def mean(lam: Any) -> Any:
        return lam

    @staticmethod
    def log_prob(x: Any, lam: Any) -> Any:
        xr = without_derivatives(x)
        return xr * log(lam) - lam - gammaln(xr + 1.0)


# ---------------------------------------------------------------------------------------------
# Geometric (number of failures before the first success)
# ---------------------------------------------------------------------------------------------


class Geometric:
    """X ∈ {0, 1, ...}, P(X = k) = (1 − p)^k p; X = ⌊log U / log(1 − p)⌋."""

    name = "geometric"

    @staticmethod
    def sample(u: Any, p: Any) -> Any:
        xp = _xp()
        one = xp.ones_like(u)
        # P(X ≥ k) = (1-p)^k: X = floor(log(U) / log(1-p)), with X = 0 when p = 1
        q_log = xp.log1p(-xp.where(p >= 1.0, 0.0 * one, p * one))
        return xp.where(p >= 1.0, 0.0 * one, xp.floor(xp.log(u) / xp.where(
            q_log == 0, -one, q_log)))

    @staticmethod
    def events(x: Any, p: Any, dp: Any) -> list[Event]:
        # a rising p means fewer failures: the sample jumps down
        return _one_sided(dp, _safe_divide(dp * x, p * (1.0 - p)),
                          _safe_divide(-dp * (x + 1.0), p), step=-1.0)

    @staticmethod
    def smoothed_slope(x: Any, p: Any) -> Any:
        """−½ [X/(p(1−p)) + (X+1)/p]; its mean is −1/p² = dE[X]/dp."""
        return -0.5 * (_safe_divide(x, p * (1.0 - p)) + _safe_divide(x + 1.0, p))

    @staticmethod
    def mean(p: Any) -> Any:
        return (1.0 - p) / p

    @staticmethod
    def log_prob(x: Any, p: Any) -> Any:
        xr = without_derivatives(x)
        return xr * log1p(-where(xr > 0, p, 0.0)) + log(p)


# ---------------------------------------------------------------------------------------------
# Categorical (probabilities along the last axis; the sample is an index, as float64)
# ---------------------------------------------------------------------------------------------


class Categorical:
    """X ∈ {0, ..., C−1} with P(X = c) = probs[..., c]; X = #{c : F_c ≤ U}."""

    name = "categorical"

    @staticmethod
    def sample(u: Any, probs: Any) -> Any:
        xp = _xp()
        cdf = xp.cumulative_sum(probs, axis=-1)
        n_cat = probs.shape[-1]
        below = _float(cdf[..., :-1] <= u[..., None])
        return xp.minimum(xp.sum(below, axis=-1), float(n_cat - 1))

    @staticmethod
    def events(x: Any, probs: Any, dprobs: Any) -> list[Event]:
        """``dprobs`` has shape (K, ..., C). Two candidate jumps per sample: up and down."""
        xp = _xp()
        n_cat = probs.shape[-1]
        d_cdf = xp.cumulative_sum(dprobs, axis=-1)
        index = xp.astype(x, xp.int64)
        onehot = _float(xp.arange(n_cat) == index[..., None])
        below = _float(xp.arange(n_cat) == (index - 1)[..., None])
        p_c = xp.sum(probs * onehot, axis=-1)
        d_upper = xp.sum(d_cdf * onehot, axis=-1)      # δF_c
        d_lower = xp.sum(d_cdf * below, axis=-1)       # δF_{c−1} (0 for c = 0)
        up_rate = _safe_divide(xp.maximum(-d_upper, 0.0 * d_upper), p_c)
        down_rate = _safe_divide(xp.maximum(d_lower, 0.0 * d_lower), p_c)
        up_rate = xp.where(x >= n_cat - 1, 0.0 * up_rate, up_rate)
        return [Event(xp.ones_like(up_rate), up_rate), Event(-xp.ones_like(down_rate), down_rate)]

    @staticmethod
    def log_prob(x: Any, probs: Any) -> Any:
        xp = _xp()
        x = without_derivatives(x)
        if isinstance(x, Box):  # batched by vmap: the one-hot with ops
            classes = _float(xp.arange(shape_of(probs)[-1]))
            onehot = where(equal(classes, getitem(x, (Ellipsis, None))), 1.0, 0.0)
        else:
            index = xp.astype(x, xp.int64)
            onehot = _float(xp.arange(shape_of(probs)[-1]) == index[..., None])
        return log(_sum(probs * onehot, axis=-1))


DISTRIBUTIONS = {d.name: d for d in (Bernoulli, Binomial, Poisson, Geometric, Categorical)}


def uniform_like(rng: Any, shape: Sequence[int]) -> Any:
    """Uniforms strictly inside (0, 1), as backend arrays."""
    b = get_backend()
    u = b.asarray(rng.random(tuple(shape)))
    tiny = float(b.xp.finfo(b.float_dtype).smallest_normal)
    return b.xp.clip(u, tiny, 1.0 - float(b.xp.finfo(b.float_dtype).eps))




# ---------------------------------------------------------------------------------------------
# Raw-array functions of values that a transform may box
# ---------------------------------------------------------------------------------------------
# A sample (and its smoothed slope) is computed on raw arrays: piecewise constant in the
# parameters, so every derivative engine sees constants. Under vmap (or md.jit) the values are
# still boxed after the derivatives are removed; then the function runs as a primitive, which
# those engines process (vmap: elementwise, one call on the stacked values).

_values_p = Primitive("on_values", lambda *args, fn: fn(*args), broadcasts=True,
                      elementwise=True, differentiable=False)


def traced_beyond_batching(x: Any) -> bool:
    """True when ``x`` is boxed by anything but ``vmap``: a derivative transform, or md.jit's
    trace (whose program may be differentiated later), so an estimator must be attached. A
    value only batched by vmap is plain data to every sampler."""
    while isinstance(x, Box):
        if not x.batch_axes:
            return True
        x = x.value
    return False


def on_values(fn: Any, *args: Any) -> Any:
    """``fn`` (elementwise, on raw arrays) of the values of ``args``, without derivatives."""
    values = [without_derivatives(a) for a in args]
    if any(isinstance(v, Box) for v in values):
        return _values_p(*values, fn=fn)
    return fn(*values)


def _categorical_batch(size: int, args: Any, batched: Any) -> Any:
    """u (B, *b) and probs (B, *pb, C) with pb broadcasting to b: line pb up with b."""
    u, probs = (as_batched(a, size, f) for a, f in zip(args, batched))
    u_rank, p_rank = len(shape_of(u)) - 1, len(shape_of(probs)) - 2
    if p_rank < u_rank:
        shape = shape_of(probs)
        probs = reshape(probs, (shape[0], *(1,) * (u_rank - p_rank), *shape[1:]))
    return _categorical_p(u, probs)


_categorical_p = Primitive("categorical_sample", lambda u, probs: Categorical.sample(u, probs),
                           differentiable=False, batch=_categorical_batch)


def categorical_sample(u: Any, probs: Any) -> Any:
    """Categorical.sample on the values of ``u`` and ``probs`` (see :func:`on_values`)."""
    values = [without_derivatives(u), without_derivatives(probs)]
    if any(isinstance(v, Box) for v in values):
        return _categorical_p(*values)
    return Categorical.sample(*values)
