"""Ops composed from primitives: fewer rules to get wrong.

Each of these is ordinary code over the primitives, so every engine differentiates it with no
rule of its own. ``logsumexp`` and ``softmax`` subtract the maximum first, a constant shift
(under ``stop_gradient``) that leaves the value and the derivative unchanged but keeps ``exp``
from overflowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import get_backend
from ..core import ShapeError, ndim_of, shape_of
from .comparisons import equal, greater, less
from .constants import stop_gradient
from .elementwise import cos, exp, log, maximum, negative, sin, where
from .indexing import getitem
from .linear import normalize_axis, squeeze, transpose
from .linear import sum as _sum
from .reductions import max as _max

__all__ = ["minimum", "clip", "tan", "square", "logsumexp", "softmax", "trace"]


def minimum(x: Any, y: Any) -> Any:
    """Elementwise minimum: min(x, y) = -max(-x, -y). Ties share the derivative equally."""
    return negative(maximum(negative(x), negative(y)))


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Limit ``x`` to [a_min, a_max]. The derivative flows to ``x`` inside the interval and to
    the bound that is active outside it."""
    if a_min is None and a_max is None:
        raise ValueError("clip: give at least one of a_min and a_max")
    if a_min is not None:
        x = where(less(x, a_min), a_min, x)
    if a_max is not None:
        x = where(greater(x, a_max), a_max, x)
    return x


def tan(x: Any) -> Any:
    """tan x = sin x / cos x, so tan' = 1/cos² x."""
    return sin(x) / cos(x)


def square(x: Any) -> Any:
    return x * x


def logsumexp(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """log Σ exp(x) over ``axis``, computed as m + log Σ exp(x - m) with m = max x.

    Its derivative is ``softmax(x)``."""
    axes = normalize_axis(axis, ndim_of(x), "logsumexp")
    m = _max(stop_gradient(x), axis=axes, keepdims=True)
    m = where(equal(m - m, 0.0), m, 0.0)  # m − m = 0 exactly when m is finite
    out = log(_sum(exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else squeeze(out, axes) if axes else out


def softmax(x: Any, axis: int | Sequence[int] | None = -1) -> Any:
    """exp(x_i) / Σ_j exp(x_j) along ``axis``, shifted by the maximum for stability."""
    axes = normalize_axis(axis, ndim_of(x), "softmax")
    e = exp(x - _max(stop_gradient(x), axis=axes, keepdims=True))  # a constant shift
    return e / _sum(e, axis=axes, keepdims=True)


def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """Σ_i x[i, i + offset] over the diagonal of the ``(axis1, axis2)`` planes (NumPy's
    ``trace``): shape of ``x`` without those two axes. ``offset`` > 0 takes a diagonal above
    the main one, < 0 below. Composed from a transpose, an integer-array index and a sum, so
    its derivative puts the cotangent on the diagonal and zeros elsewhere."""
    shape = shape_of(x)
    rank = len(shape)
    if rank < 2:
        raise ShapeError(f"trace: needs an array of at least 2 dims, got shape {shape}")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"trace: offset must be an int, got {offset!r}")
    a1, a2 = normalize_axis(axis1, rank, "trace")[0], normalize_axis(axis2, rank, "trace")[0]
    if a1 == a2:
        raise ValueError(f"trace: axis1 and axis2 must differ, got {axis1} and {axis2}")
    rest = [a for a in range(rank) if a not in (a1, a2)]
    planes = transpose(x, (*rest, a1, a2))  # the two axes last
    n_rows, n_cols = shape[a1], shape[a2]
    first_row, first_col = (0, offset) if offset >= 0 else (-offset, 0)
    length = max(0, min(n_rows - first_row, n_cols - first_col))
    xp = get_backend().xp
    i = xp.arange(length)
    diagonal = getitem(planes, (Ellipsis, i + first_row, i + first_col))
    return _sum(diagonal, axis=-1)
