"""Discrete quantiles (host, NumPy and SciPy): Poisson and binomial inversion of one uniform.

X = F⁻¹(u) = min{k : F(k) ≥ u} is found by a search on the integers that reads the exact CDF
only: a Cornish–Fisher guess k₀ ≈ μ + σz + (skew terms), z = Φ⁻¹(u), is off by a few units, an
exponential search from k₀ brackets the answer and a bisection closes the bracket. Each draw
costs O(log |k₀ − X|) CDF evaluations, so the work is bounded whatever λ or n is (no loop over
the support). F(k) ≥ u is tested in the smaller tail: F(k) ≥ u for u ≤ ½, and P(X > k) ≤ 1 − u
(which is exact in floating point) above, so the far upper tail keeps its precision.

The functions take and return NumPy arrays; each backend wraps them (``Backend.poisson_quantile``,
``Backend.binomial_quantile``), copying other libraries' arrays to the host and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special as sps

__all__ = ["poisson_quantile", "binomial_quantile"]

_MAX_SEARCH_STEPS = 4096  # far more than any float64 bracket needs (2 × 1024 halvings)
_SADDLE_VARIANCE = 1e7    # binomial CDF by saddle point above this n·p·q (see below)
_POISSON_LIMIT = 2.0 ** -60  # a binomial with p·max(np, 1) below this is Poisson(np)


def _poisson_tail(k: np.ndarray, lam: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """P(X ≤ k) where ``lower``, else P(X > k), for X ~ Poisson(λ) and integers k ≥ 0:
    Q(k + 1, λ) and P(k + 1, λ), the regularised incomplete gamma functions."""
    return np.where(lower, sps.gammaincc(k + 1.0, lam), sps.gammainc(k + 1.0, lam))


def _two_product_error(x: np.ndarray, y: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """e with x·y = xy + e exactly, xy the rounded product (Dekker's splitting)."""
    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = 134217729.0 * v  # 2^27 + 1
        high = c - (c - v)
        return high, v - high

    xh, xl = split(x)
    yh, yl = split(y)
    return ((xh * yh - xy) + xh * yl + xl * yh) + xl * yl


def _entropy_ratio(d: np.ndarray) -> np.ndarray:
    """g(d) − 1 with g(d) = 2((1 + d) log(1 + d) − d)/d², for d > −1, without cancellation
    (the series Σ_{j≥1} 2(−d)^j/((j+1)(j+2)) for |d| < 1/8)."""
    out = np.empty_like(d)
    small = np.abs(d) < 0.125
    if small.any():
        ds = d[small]
        term, total = -ds, np.zeros_like(ds)
        for j in range(1, 24):  # |d|^24 < 2^-72
            total += term * (2.0 / ((j + 1) * (j + 2)))
            term *= -ds
        out[small] = total
    if not small.all():
        dl = d[~small]
        out[~small] = 2.0 * ((1.0 + dl) * np.log1p(dl) - dl) / (dl * dl) - 1.0
    return out


def _binomial_saddle(k: np.ndarray, n: np.ndarray, p: np.ndarray, lower: np.ndarray
                     ) -> np.ndarray:
    """P(X ≤ k) (``lower``) or P(X > k) for X ~ Binomial(n, p), 0 ≤ k < n, by Lugannani–Rice.

    P(X ≤ k) = P(B > p) for B ~ Beta(a, b), a = k + 1, b = n − k, and B > p ⇔ Y = qG_a − pG_b
    > 0 for independent Gamma(a), Gamma(b). Y is continuous with cumulant generating function
    K(t) = −a log(1 − qt) − b log(1 + pt), whose saddle point at y = 0 gives, with N = a + b
    and Δ = a − Np,

        w² = −2K(t̂) = 2a log(a/Np) + 2b log(b/Nq),      u = −Δ √(N/(ab)),
        P(Y ≥ 0) ≈ 1 − Φ(ŵ) + φ(ŵ)(1/u − 1/ŵ),          ŵ = −sign(Δ)·w.

    Its error falls as npq grows (for a continuous law like Y's, relatively like (npq)^(-3/2)
    near the mean); above the switch at npq = 10⁷ it was below that of SciPy's incomplete beta
    against a 35-digit reference. Δ is computed with N·p exact (a two-product), and w² and
    1/u − 1/ŵ from series in Δ/Np and Δ/Nq, so nothing cancels near the mean."""
    q = 1.0 - p
    a, b = k + 1.0, n - k
    big_n = a + b
    np_ = big_n * p
    delta = (a - np_) - _two_product_error(big_n, p, np_)
    da, db = delta / np_, -delta / (big_n * q)
    ga, gb = _entropy_ratio(da), _entropy_ratio(db)
    spread = q * ga + p * gb                        # w² = Δ²/(Npq) · (1 + spread)
    w2 = delta * delta / (np_ * q) * (1.0 + spread)
    w = -np.sign(delta) * np.sqrt(w2)
    shift = da + db + da * db                       # (1 + da)(1 + db) − 1
    r = shift + spread + shift * spread             # w²/u² − 1
    with np.errstate(invalid="ignore", divide="ignore"):
        correction = np.where(delta == 0, 0.0, r / (1.0 + np.sqrt(1.0 + r)) / w)
    density = np.exp(-0.5 * w2) / math.sqrt(2.0 * math.pi)
    upper = sps.ndtr(-w) + density * correction     # P(X ≤ k)
    return np.where(lower, upper, sps.ndtr(w) - density * correction)


def _binomial_tail(k: np.ndarray, n: np.ndarray, p: np.ndarray, lower: np.ndarray
                   ) -> np.ndarray:
    """P(X ≤ k) where ``lower``, else P(X > k), for X ~ Binomial(n, p) and 0 ≤ k < n.

    By regime: p (or 1 − p) so small that Binomial(n, p) and Poisson(np) are the same law to
    float64 precision (one uniform inverts to different values with probability Σ_k |ΔF(k)|,
    about n·p², here below 2⁻⁶⁰): the Poisson tails; n·p·q > 10⁷: the saddle point (there more
    accurate than the incomplete beta, whose cost also grows like √(npq)); otherwise the
    regularised incomplete beta, written in whichever of p and 1 − p is ≤ ½ (that one is exact
    in floating point)."""
    q = 1.0 - p
    tiny_p = p * np.maximum(n * p, 1.0) <= _POISSON_LIMIT
    tiny_q = q * np.maximum(n * q, 1.0) <= _POISSON_LIMIT
    saddle = n * p * q > _SADDLE_VARIANCE
    regime = np.where(tiny_p, 0, np.where(tiny_q, 1, np.where(saddle, 2, np.where(p <= 0.5,
                                                                                 3, 4))))
    out = np.empty(k.shape)
    for r in np.unique(regime):  # at most five groups, each one vectorised call
        m = regime == r
        km, nm, pm, qm, lm = k[m], n[m], p[m], q[m], lower[m]
        if r == 0:
            out[m] = _poisson_tail(km, nm * pm, lm)
        elif r == 1:  # n − X ~ Poisson(nq): P(X ≤ k) = P(n − X > n − k − 1)
            out[m] = _poisson_tail(nm - km - 1.0, nm * qm, ~lm)
        elif r == 2:
            out[m] = _binomial_saddle(km, nm, pm, lm)
        elif r == 3:  # P(X > k) = I_p(k + 1, n − k)
            out[m] = np.where(lm, sps.betaincc(km + 1.0, nm - km, pm),
                              sps.betainc(km + 1.0, nm - km, pm))
        else:  # P(X ≤ k) = I_q(n − k, k + 1)
            out[m] = np.where(lm, sps.betainc(nm - km, km + 1.0, qm),
                              sps.betaincc(nm - km, km + 1.0, qm))
    return out


def _invert(name: str, u: np.ndarray, guess: np.ndarray, top: np.ndarray,
            tail: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """min{k ∈ {0, …, top} : F(k) ≥ u} elementwise (1-d arrays; ``top`` may be inf), where
    ``tail(k, index, lower)`` is F(k) (``lower``) or 1 − F(k) for the elements ``index``."""
    lower = u <= 0.5
    level = np.where(lower, u, 1.0 - u)

    def reached(k: np.ndarray, index: np.ndarray) -> np.ndarray:
        t = tail(k, index, lower[index])
        return np.where(lower[index], t >= level[index], t <= level[index])

    k0 = np.clip(np.floor(guess), 0.0, top)
    hit = np.ones(u.shape, dtype=bool)
    inner = k0 < top  # F(top) = 1 ≥ u needs no evaluation
    hit[inner] = reached(k0[inner], np.nonzero(inner)[0])
    hi = np.where(hit, k0, np.inf)       # F(hi) ≥ u
    lo = np.where(hit, -np.inf, k0)      # F(lo) < u (−1 stands for "below the support")
    step = np.maximum(1.0, np.spacing(k0))
    for _ in range(_MAX_SEARCH_STEPS):   # exponential search for the missing end
        down = np.nonzero(np.isneginf(lo))[0]
        up = np.nonzero(np.isposinf(hi))[0]
        if down.size == 0 and up.size == 0:
            break
        c = hi[down] - step[down]
        below = c < 0.0
        lo[down[below]] = -1.0
        test, c = down[~below], c[~below]
        ok = reached(c, test)
        hi[test[ok]], lo[test[~ok]] = c[ok], c[~ok]
        c = lo[up] + step[up]
        over = c >= top[up]
        hi[up[over]] = top[up[over]]
        test, c = up[~over], c[~over]
        ok = reached(c, test)
        hi[test[ok]], lo[test[~ok]] = c[ok], c[~ok]
        step *= 2.0
    for _ in range(_MAX_SEARCH_STEPS):   # bisection; stops where floats have no integer between
        mid = np.floor(lo + (hi - lo) / 2.0)
        open_ = np.nonzero(np.logical_and(mid > lo, mid < hi))[0]
        if open_.size == 0:
            return hi
        ok = reached(mid[open_], open_)
        hi[open_[ok]], lo[open_[~ok]] = mid[open_][ok], mid[open_][~ok]
    raise RuntimeError(f"{name}: the quantile search did not converge in "
                       f"{_MAX_SEARCH_STEPS} steps (please report this)")


def _flat(*arrays: Any) -> tuple[tuple[int, ...], list[np.ndarray]]:
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    return shape, [np.broadcast_to(np.asarray(a, dtype=np.float64), shape).ravel()
                   for a in arrays]


def poisson_quantile(u: Any, lam: Any) -> np.ndarray:
    """F⁻¹(u) = min{k : P(X ≤ k) ≥ u} for X ~ Poisson(λ), elementwise on NumPy arrays (u in
    (0, 1), λ finite ≥ 0, broadcast together), as float64. Exact to the precision of SciPy's
    incomplete gamma function for every λ; beyond 2⁵³ the sample is rounded to a float."""
    shape, (u, lam) = _flat(u, lam)
    with np.errstate(all="ignore"):
        z = sps.ndtri(u)
        sd = np.sqrt(lam)
        guess = lam + sd * z + (z * z - 1.0) / 6.0
        x = _invert("poisson", u, guess, np.full(u.shape, np.inf),
                    lambda k, i, lower: _poisson_tail(k, lam[i], lower))
    return x.reshape(shape)


def binomial_quantile(u: Any, n: Any, p: Any) -> np.ndarray:
    """F⁻¹(u) for X ~ Binomial(n, p), elementwise on NumPy arrays (u in (0, 1), n a finite
    integer ≥ 0, p in [0, 1], broadcast together), as float64; see ``_binomial_tail`` for how
    the CDF is computed in each regime."""
    shape, (u, n, p) = _flat(u, n, p)
    with np.errstate(all="ignore"):
        z = sps.ndtri(u)
        sd = np.sqrt(n * p * (1.0 - p))
        guess = n * p + sd * z + (1.0 - 2.0 * p) * (z * z - 1.0) / 6.0
        x = _invert("binomial", u, np.nan_to_num(guess), n,
                    lambda k, i, lower: _binomial_tail(k, n[i], p[i], lower))
    return x.reshape(shape)

