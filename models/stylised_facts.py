"""The stylised facts of daily returns, to compare a model's series with a market's.

Three facts of asset returns r_1..r_T that hold across markets (Cont 2001, "Empirical
properties of asset returns: stylized facts and statistical issues", Quantitative Finance 1):

* **fat tails**: the excess kurtosis κ − 3 with κ = mean(z⁴)/mean(z²)², z = r − mean(r),
  is well above 0 (0 for Gaussian returns);
* **volatility clustering**: the autocorrelation of |r| is positive and decays slowly over
  lags 1–10 (and beyond);
* **no linear predictability**: the autocorrelation of r itself at lag 1 is close to 0.

The autocorrelation at lag k is ρ(k) = Σ_{t=1}^{T−k} a_t a_{t+k} / Σ_t a_t² with
a = x − mean(x) (the standard biased estimator, so |ρ| ≤ 1). Under independence its sampling
sd is about 1/√T, the band against which a printed ρ is read.

Everything is computed with minidiff ops, so a traced series gives traced facts.
"""

from __future__ import annotations

from typing import Any

import minidiff as md
from minidiff.core import shape_of
from minidiff.validation import check_positive_int

__all__ = ["excess_kurtosis", "autocorrelation", "stylised_facts", "FACTS", "N_LAGS"]

N_LAGS = 10
FACTS = ("excess kurtosis", *(f"acf |r| lag {k}" for k in range(1, N_LAGS + 1)),
         "acf r lag 1")
"""The names of the entries of :func:`stylised_facts`, in order."""


def _series(where: str, x: Any, least: int) -> Any:
    x = md.asarray(x)
    shape = shape_of(x)
    if len(shape) != 1 or shape[0] < least:
        raise ValueError(f"{where}: expected a series of shape (T,) with T ≥ {least}, got "
                         f"shape {shape}")
    return x


def excess_kurtosis(returns: Any) -> Any:
    """mean(z⁴)/mean(z²)² − 3 with z = r − mean(r), a scalar; r of shape (T,), T ≥ 2, not
    constant (a constant series has no kurtosis: the result is not finite)."""
    r = _series("excess_kurtosis", returns, 2)
    z = md.subtract(r, md.mean(r))
    z2 = md.mean(md.square(z))
    return md.subtract(md.divide(md.mean(md.square(md.square(z))), md.square(z2)), 3.0)


def autocorrelation(x: Any, lag: int) -> Any:
    """ρ(lag) = Σ_{t=1}^{T−lag} a_t a_{t+lag} / Σ_t a_t², a = x − mean(x); x of shape (T,)
    with T > lag ≥ 1."""
    check_positive_int("autocorrelation", "lag", lag)
    x = _series("autocorrelation", x, lag + 1)
    a = md.subtract(x, md.mean(x))
    head = md.getitem(a, slice(None, -lag))
    tail = md.getitem(a, slice(lag, None))
    return md.divide(md.sum(md.multiply(head, tail)), md.sum(md.square(a)))


def stylised_facts(returns: Any) -> Any:
    """The vector (excess kurtosis, ρ_|r|(1), ..., ρ_|r|(10), ρ_r(1)), shape (12,), named by
    :data:`FACTS`; r of shape (T,) with T > 10."""
    r = _series("stylised_facts", returns, N_LAGS + 1)
    magnitude = md.abs(r)
    return md.stack([excess_kurtosis(r),
                     *(autocorrelation(magnitude, k) for k in range(1, N_LAGS + 1)),
                     autocorrelation(r, 1)])
