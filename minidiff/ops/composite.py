"""Ops composed from primitives: fewer rules to get wrong.

Each of these is ordinary code over the primitives, so both engines differentiate it with no
rule of its own. ``logsumexp`` and ``softmax`` subtract the maximum first, a constant shift
(under ``stop_gradient``) that leaves the value and the derivative unchanged but keeps ``exp``
from overflowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend as _backend
from ..core import ndim_of, raw
from .elementwise import cos, exp, log, maximum, negative, sin, where
from .reductions import max as _max
from .reductions import normalize_axis
from .reductions import sum as _sum
from .shapes import squeeze

__all__ = [
    "stop_gradient", "minimum", "clip", "tan", "sign", "floor", "logsumexp", "softmax",
    "square", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
]


def _xp() -> Any:
    return _backend._current[-1].xp


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` as a constant: no derivative flows through it, in any transform."""
    return raw(x)


def minimum(x: Any, y: Any) -> Any:
    """Elementwise minimum: min(x, y) = -max(-x, -y). Ties share the derivative equally."""
    return negative(maximum(negative(x), negative(y)))


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Limit ``x`` to [a_min, a_max]. The derivative flows to ``x`` inside the interval and to
    the bound that is active outside it."""
    if a_min is None and a_max is None:
        raise ValueError("clip: give at least one of a_min and a_max")
    if a_min is not None:
        x = where(raw(x) < raw(a_min), a_min, x)
    if a_max is not None:
        x = where(raw(x) > raw(a_max), a_max, x)
    return x


def tan(x: Any) -> Any:
    """tan x = sin x / cos x, so tan' = 1/cos² x."""
    return sin(x) / cos(x)


def square(x: Any) -> Any:
    return x * x


def sign(x: Any) -> Any:
    """Sign of x (-1, 0, 1). Piecewise constant, so it is returned as a constant."""
    return _xp().sign(raw(x))


def floor(x: Any) -> Any:
    """Largest integer ≤ x, as a float. Piecewise constant, so returned as a constant."""
    return _xp().floor(raw(x))


def logsumexp(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """log Σ exp(x) over ``axis``, computed as m + log Σ exp(x - m) with m = max x.

    Its derivative is ``softmax(x)``."""
    axes = normalize_axis(axis, ndim_of(x), "logsumexp")
    m = raw(_max(stop_gradient(x), axis=axes, keepdims=True))
    xp = _xp()
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    out = log(_sum(exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else squeeze(out, axes) if axes else out


def softmax(x: Any, axis: int | Sequence[int] | None = -1) -> Any:
    """exp(x_i) / Σ_j exp(x_j) along ``axis``, shifted by the maximum for stability."""
    axes = normalize_axis(axis, ndim_of(x), "softmax")
    e = exp(x - raw(_max(stop_gradient(x), axis=axes, keepdims=True)))
    return e / _sum(e, axis=axes, keepdims=True)


# comparisons: plain boolean arrays, computed on the values (their derivative is zero). A value
# that lives in several worlds at once (a stochastic triple) compares in each of them.
_COMPARE = {
    "equal": lambda a, b: a == b, "not_equal": lambda a, b: a != b,
    "less": lambda a, b: a < b, "less_equal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
}


def _compare(name: str, x: Any, y: Any) -> Any:
    for a in (x, y):
        hook = getattr(a, "compare_in_all_worlds", None)
        if hook is not None:
            return hook(name, _COMPARE[name], x, y)
    return _COMPARE[name](raw(x), raw(y))


def equal(x: Any, y: Any) -> Any:
    return _compare("equal", x, y)


def not_equal(x: Any, y: Any) -> Any:
    return _compare("not_equal", x, y)


def less(x: Any, y: Any) -> Any:
    return _compare("less", x, y)


def less_equal(x: Any, y: Any) -> Any:
    return _compare("less_equal", x, y)


def greater(x: Any, y: Any) -> Any:
    return _compare("greater", x, y)


def greater_equal(x: Any, y: Any) -> Any:
    return _compare("greater_equal", x, y)
