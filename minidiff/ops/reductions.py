"""Reductions: ``max``, ``prod`` and ``cumsum`` are primitives; ``mean`` and ``min`` are composed
(``sum``, being linear, sits with the linear ops).

Shapes: reducing ``x`` of shape ``S`` over ``axes`` gives ``S`` with those axes removed (or
kept as length 1 with ``keepdims``). Every VJP first puts the removed axes back
(``expand_reduced``), then spreads the cotangent over the reduced elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import get_backend
from ..core import Primitive, ndim_of, raw, register_ops, shape_of, without_derivatives
from .comparisons import equal
from .elementwise import divide, float_mask, multiply, negative, subtract, where
from .linear import (
    expand_reduced,
    keepdims_shape,
    normalize_axis,
    reshape,
    tangent_axes,
)
from .linear import sum as _sum

__all__ = ["max", "prod", "cumsum", "mean", "min"]


def _xp() -> Any:
    return get_backend().xp


def _expand_raw(r: Any, x_shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    return r if keepdims else _xp().reshape(r, keepdims_shape(x_shape, axes))


def mean(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """Σ x / n over ``axis``."""
    axes = normalize_axis(axis, ndim_of(x), "mean")
    n = 1
    for a in axes:
        n *= shape_of(x)[a]
    return _sum(x, axis=axes, keepdims=keepdims) / float(n)


# ---------------------------------------------------------------------------------------------
# max: the derivative picks the maximal element, shared equally among ties
# ---------------------------------------------------------------------------------------------


def _max_weights(x: Any, out: Any, axes: tuple, keepdims: bool) -> Any:
    """w = 1[x = max] / #ties, so that ∂max/∂x = w (a subgradient at ties). A constant, built
    from ops on the values without their derivatives (so md.jit records it)."""
    x, out = without_derivatives(x), without_derivatives(out)
    if not keepdims:
        out = reshape(out, keepdims_shape(shape_of(x), axes))
    mask = where(equal(x, out), 1.0, 0.0)
    return divide(mask, _sum(mask, axis=axes, keepdims=True))


def _max_jvp(ts: Sequence[Any], args: Sequence[Any], out: Any, axis: tuple,
             keepdims: bool) -> Any:
    w = _max_weights(args[0], out, axis, keepdims)
    return _sum(multiply(ts[0], w), axis=tangent_axes(axis), keepdims=keepdims)


def _max_vjp(g: Any, residuals: Any, needs: Sequence[bool], axis: tuple,
             keepdims: bool) -> list[Any]:
    x, out = residuals
    w = _max_weights(x, out, axis, keepdims)
    return [multiply(expand_reduced(g, shape_of(x), axis, keepdims), w)]


_max_p = Primitive(
    "max",
    lambda x, axis, keepdims: _xp().max(x, axis=axis, keepdims=keepdims),
    jvp=_max_jvp,
    save=lambda args, out, needs, axis, keepdims: (without_derivatives(args[0]),
                                                   without_derivatives(out)),
    vjp=_max_vjp,
)


def max(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Largest element over ``axis``. Ties share the derivative equally."""
    axes = normalize_axis(axis, ndim_of(x), "max")
    if any(shape_of(x)[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce a zero-length axis of shape {shape_of(x)} "
                         f"(an empty set has no maximum)")
    return _max_p(x, axis=axes, keepdims=keepdims)


def min(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Smallest element over ``axis``: min x = -max(-x)."""
    return negative(max(negative(x), axis=axis, keepdims=keepdims))


# ---------------------------------------------------------------------------------------------
# prod: ∂(Π x)/∂x_i = Π_{j≠i} x_j, computed without dividing by zero
# ---------------------------------------------------------------------------------------------


def _product_of_others(x: Any, axes: tuple) -> Any:
    """Π_{j≠i} x_j for each i, along ``axes`` (shape of x).

    With no zero in a slice it is Π x / x_i. With one zero it is the product of the non-zeros
    at the zero and 0 elsewhere; with two or more zeros it is 0 everywhere. (At exact zeros the
    second derivative of ``prod`` is therefore not exact.)
    """
    xp = _xp()
    is_zero = raw(x) == 0
    n_zero = xp.sum(float_mask(is_zero), axis=axes, keepdims=True)
    nonzero = where(is_zero, 1.0, x)
    p = _prod_p(nonzero, axis=axes, keepdims=True)
    at_lone_zero = xp.logical_and(is_zero, n_zero == 1)
    return where(n_zero == 0, p / nonzero, where(at_lone_zero, p, 0.0))


def _prod_jvp(ts: Sequence[Any], args: Sequence[Any], out: Any, axis: tuple,
              keepdims: bool) -> Any:
    return _sum(multiply(ts[0], _product_of_others(args[0], axis)), axis=tangent_axes(axis),
               keepdims=keepdims)


def _prod_vjp(g: Any, x: Any, needs: Sequence[bool], axis: tuple, keepdims: bool) -> list[Any]:
    return [multiply(expand_reduced(g, shape_of(x), axis, keepdims),
                     _product_of_others(x, axis))]


_prod_p = Primitive(
    "prod",
    lambda x, axis, keepdims: _xp().prod(x, axis=axis, keepdims=keepdims),
    jvp=_prod_jvp,
    save=lambda args, out, needs, axis, keepdims: args[0],
    vjp=_prod_vjp,
)


def prod(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """Π over ``axis``. VJP: x̄_i = ȳ · Π_{j≠i} x_j."""
    return _prod_p(x, axis=normalize_axis(axis, ndim_of(x), "prod"), keepdims=keepdims)


# ---------------------------------------------------------------------------------------------
# cumsum: linear; its transpose is the reversed cumulative sum
# ---------------------------------------------------------------------------------------------


def _cumsum_vjp(g: Any, residuals: Any, needs: Sequence[bool], axis: int) -> list[Any]:
    # x̄_i = Σ_{j ≥ i} ȳ_j = Σ_j ȳ_j - Σ_{j ≤ i} ȳ_j + ȳ_i
    total = _sum(g, axis=axis, keepdims=True)
    return [subtract(total, _cumsum_p(g, axis=axis)) + g]


_cumsum_p = Primitive(
    "cumsum",
    lambda x, axis: _xp().cumulative_sum(x, axis=axis),
    jvp=lambda ts, args, out, axis: _cumsum_p(ts[0], axis=axis + 1),
    save=lambda args, out, needs, axis: None,
    vjp=_cumsum_vjp,
)


def cumsum(x: Any, axis: int | None = None) -> Any:
    """Running sum along ``axis``; with ``axis=None`` the array is flattened first (as NumPy)."""
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    (axis,) = normalize_axis(axis, ndim_of(x), "cumsum")
    return _cumsum_p(x, axis=axis)


register_ops(mean=mean, max=max, min=min, prod=prod)
