"""Losses ℓ between a simulated series x and the observed one y, written with minidiff ops.

Each constructor takes the observed series y, shape (T,) or (T, d), does the work that depends
on y alone once, and returns a function of the simulated series x, shape (T′,) or (T′, d), to a
scalar (differentiable in x). A series of shape (T,) is T points in d = 1. Any other callable
``loss(x) -> scalar`` works as well.

* :func:`mmd`: the unbiased (U-statistic) estimate of the squared maximum mean discrepancy with
  the Gaussian kernel k(a, b) = exp(−‖a − b‖²/h),

      MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j)
               − 2/(mn) Σ_{i,j} k(x_i, y_j),

  with the bandwidth h given or, by the median heuristic, the median of the squared distances
  ‖y_i − y_j‖² over the pairs i < j of the *observed* points (computed once);
* :func:`energy_distance`: the squared energy distance between the empirical distributions
  (V-statistic), 2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖, which is SciPy's
  ``scipy.stats.energy_distance(x, y)`` squared for d = 1;
* :func:`gaussian_nll`: −Σ_t log N(y_t; x_t, s²) = Σ_t [½((y_t − x_t)/s)² + log s + ½ log 2π]
  (x is the simulated mean; x and y broadcast);
* :func:`mse`: mean_t (x_t − y_t)² (broadcasting).

Pairwise sums are taken over blocks of rows of x, so a forward-mode pass (which keeps no tape)
holds one block of the m × n distance matrix at a time rather than the whole of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import minidiff as md

__all__ = ["mmd", "energy_distance", "gaussian_nll", "mse", "median_heuristic"]

BLOCK_ROWS = 128


def _points(x: Any, name: str) -> Any:
    x = md.asarray(x)
    if x.ndim == 1:
        return md.reshape(x, (x.shape[0], 1))
    if x.ndim != 2:
        raise ValueError(f"{name}: a series must have shape (T,) or (T, d), got {x.shape}")
    return x


def _squared_distances(a: Any, b: Any) -> Any:
    """‖a_i − b_j‖², shape (len(a), len(b))."""
    diff = md.expand_dims(a, 1) - md.expand_dims(b, 0)
    return md.sum(diff * diff, axis=-1)


def _blockwise_sum(a: Any, b: Any, fn: Callable[[Any], Any]) -> Any:
    """Σ_{i,j} fn(‖a_i − b_j‖²), over blocks of rows of a."""
    total = None
    for start in range(0, a.shape[0], BLOCK_ROWS):
        block = md.getitem(a, slice(start, start + BLOCK_ROWS))
        part = md.sum(fn(_squared_distances(block, b)))
        total = part if total is None else total + part
    return total


def median_heuristic(observed: Any) -> float:
    """The median of ‖y_i − y_j‖² over pairs i < j of the observed points (a float)."""
    y = md.stop_gradient(_points(observed, "median_heuristic"))
    n = y.shape[0]
    if n < 2:
        raise ValueError("median_heuristic: needs at least two observed points")
    xp = md.get_backend().xp
    d2 = md.stop_gradient(_squared_distances(y, y))
    rows, cols = xp.meshgrid(xp.arange(n), xp.arange(n), indexing="ij")
    values = xp.sort(d2[rows < cols])
    m = values.shape[0]
    middle = values[m // 2] if m % 2 else 0.5 * (values[m // 2 - 1] + values[m // 2])
    h = float(middle)
    if not h > 0:
        raise ValueError("median_heuristic: the median squared distance of the observed "
                         "points is 0 (most points coincide); give the bandwidth explicitly")
    return h


def mmd(observed: Any, *, bandwidth: float | None = None) -> Callable[[Any], Any]:
    """ℓ(x) = MMD²_u(x, y) with a Gaussian kernel (see the module notes)."""
    y = _points(observed, "mmd")
    n = y.shape[0]
    if n < 2:
        raise ValueError("mmd: the U-statistic needs at least two observed points")
    h = median_heuristic(y) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"mmd: the bandwidth must be > 0, got {bandwidth!r}")

    def kernel(d2: Any) -> Any:
        return md.exp(-d2 / h)

    # Σ_{i≠j} k(y_i, y_j): the full sum less the n diagonal terms k = 1
    k_yy = float((_blockwise_sum(y, y, kernel) - n) / (n * (n - 1)))

    def loss(simulated: Any) -> Any:
        x = _points(simulated, "mmd")
        m = x.shape[0]
        if m < 2:
            raise ValueError("mmd: the U-statistic needs at least two simulated points")
        k_xx = (_blockwise_sum(x, x, kernel) - m) / (m * (m - 1))
        k_xy = _blockwise_sum(x, y, kernel) / (m * n)
        return k_xx + k_yy - 2.0 * k_xy

    loss.bandwidth = h
    return loss


def _distance(d2: Any) -> Any:
    """√d² with derivative 0 (not NaN) where d² = 0 (the diagonal of a self-distance)."""
    positive = md.greater(d2, 0.0)  # a comparison, so triples see it in every world
    return md.where(positive, md.sqrt(md.where(positive, d2, 1.0)), 0.0)


def energy_distance(observed: Any) -> Callable[[Any], Any]:
    """ℓ(x) = 2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ over the empirical distributions."""
    y = _points(observed, "energy_distance")
    n = y.shape[0]
    e_yy = float(_blockwise_sum(y, y, _distance) / (n * n))

    def loss(simulated: Any) -> Any:
        x = _points(simulated, "energy_distance")
        m = x.shape[0]
        e_xy = _blockwise_sum(x, y, _distance) / (m * n)
        e_xx = _blockwise_sum(x, x, _distance) / (m * m)
        return 2.0 * e_xy - e_xx - e_yy

    return loss


def gaussian_nll(observed: Any, *, scale: float = 1.0) -> Callable[[Any], Any]:
    """ℓ(x) = −Σ_t log N(y_t; x_t, scale²), x broadcasting against y."""
    y = md.asarray(observed)
    if not scale > 0:
        raise ValueError(f"gaussian_nll: scale must be > 0, got {scale!r}")
    constant = math.log(scale) + 0.5 * math.log(2.0 * math.pi)

    def loss(simulated: Any) -> Any:
        z = md.subtract(y, simulated) / scale
        return md.sum(0.5 * z * z + constant)

    return loss


def mse(observed: Any) -> Callable[[Any], Any]:
    """ℓ(x) = mean_t (x_t − y_t)², x broadcasting against y."""
    y = md.asarray(observed)

    def loss(simulated: Any) -> Any:
        diff = simulated - y
        return md.mean(diff * diff)

    return loss
