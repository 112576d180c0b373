"""Scales estimated from the observed data, which make a model's default loss a negative
log-likelihood (up to a constant), so that w = 1 in ``minidiff calibrate`` is Bayes' rule with
that likelihood rather than an arbitrary weight.

* :func:`noise_sd`: the noise sd of each column of a series that is a smooth signal plus
  independent noise, from its second differences: for white noise e with sd σ,
  Δ²e_t = e_t − 2e_{t−1} + e_{t−2} has sd √6·σ, while a signal that is smooth on the scale of
  a step contributes little to Δ². The sd is taken robustly, as 1.4826 × the median absolute
  deviation (which equals the sd for Gaussian values), so a few sharp turns of the signal do
  not inflate it. It is floored at ``floor`` × the column's root mean square (a column with no
  visible noise must not get an infinitely sharp likelihood).

The estimates are constants of the data (plain arrays, no derivative flows through them).
"""

from __future__ import annotations

import math
from typing import Any

import minidiff as md

__all__ = ["noise_sd", "moment_se", "MAD_TO_SD"]

MAD_TO_SD = 1.4826  # 1/Φ⁻¹(3/4): the sd of a Gaussian over its median absolute deviation


def _median(xp: Any, x: Any) -> Any:
    s = xp.sort(x, axis=0)
    n = s.shape[0]
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def noise_sd(observed: Any, floor: float = 0.05) -> Any:
    """The noise sd of each column of ``observed`` (T, k) (or (T,)), shape (k,) (or ()), from
    its second differences (see the module notes); T ≥ 3."""
    xp = md.get_backend().xp
    y = md.stop_gradient(md.asarray(observed))
    if y.shape[0] < 3:
        raise ValueError(f"noise_sd: a noise scale from second differences needs at least 3 "
                         f"time steps, got {y.shape[0]}")
    d2 = y[2:] - 2.0 * y[1:-1] + y[:-2]
    mad = _median(xp, xp.abs(d2 - _median(xp, d2)))
    sd = MAD_TO_SD * mad / math.sqrt(6.0)
    rms = xp.sqrt(xp.mean(y * y, axis=0))
    return xp.maximum(sd, floor * rms + 1e-12)


def moment_se(observed: Any, n_lags: int) -> Any:
    """Large-sample standard errors of the summary statistics (mean, sd, ρ_1..ρ_K) of a series
    ``observed`` (T,), K = ``n_lags``, shape (2 + K,), from the data alone:

    * the mean: s·√((1 + ρ̂₁)/(1 − ρ̂₁))/√T, the AR(1) long-run variance (ρ̂₁ clipped to
      [0, 0.95], so a persistent series gets a wide but finite one);
    * the sd: s/√(2T) (Gaussian values);
    * each autocorrelation ρ_k: 1/√T (Bartlett's, for an uncorrelated series).
    """
    xp = md.get_backend().xp
    y = md.stop_gradient(md.asarray(observed))
    t = y.shape[0]
    centred = y - xp.mean(y)
    c0 = float(xp.mean(centred * centred))
    s = math.sqrt(c0)
    rho1 = float(xp.sum(centred[1:] * centred[:-1])) / t / c0 if c0 > 0 else 0.0
    rho1 = min(max(rho1, 0.0), 0.95)
    ses = [s * math.sqrt((1 + rho1) / (1 - rho1) / t), s / math.sqrt(2 * t)]
    ses += [1 / math.sqrt(t)] * n_lags
    floor = 1e-12 if s > 0 else 1.0
    return xp.asarray([max(v, floor) for v in ses], dtype=md.get_backend().float_dtype)
