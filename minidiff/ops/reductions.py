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
from ..core import Primitive, ndim_of, register_ops, shape_of, without_derivatives
from .comparisons import equal
from .constants import ones
from .elementwise import divide, multiply, negative, subtract, where
from .indexing import concatenate, getitem
from .linear import (
    expand_reduced,
    keepdims_shape,
    normalize_axis,
    reshape,
    tangent_axes,
    transpose,
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
    if n == 0:
        raise ValueError(f"mean: the array of shape {shape_of(x)} is empty along axis "
                         f"{axis!r}, and the mean of no elements is undefined")
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
    fresh=True,
    jvp=_max_jvp,
    save=lambda args, out, needs, axis, keepdims: (without_derivatives(args[0]),
                                                   without_derivatives(out)),
    vjp=_max_vjp,
    batch=lambda size, args, batched, axis, keepdims: _max_p(args[0], axis=tangent_axes(axis),
                                                             keepdims=keepdims),
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
# prod: ∂(Π x)/∂x_i = Π_{j≠i} x_j, the product of the other factors (never Π x / x_i)
# ---------------------------------------------------------------------------------------------


def _exclusive_cumprod(y: Any) -> Any:
    """p_i = Π_{j<i} y_j along the last axis (p_0 = 1), shape of ``y``.

    A doubling scan (Hillis and Steele): shift the factors right by one, then ⌈log₂ n⌉ times
    multiply each entry by the one d places before it (d = 1, 2, 4, ...), which doubles the
    run of factors it holds. Only ``multiply``, ``concatenate`` and slices, so derivatives of
    every order are exact products too, zeros included.
    """
    shape = shape_of(y)
    n = shape[-1]
    lead = shape[:-1]
    if n <= 1:
        return ones(shape)
    p = concatenate([ones((*lead, 1)), getitem(y, (Ellipsis, slice(0, n - 1)))], axis=-1)
    d = 1
    while d < n:
        p = multiply(p, concatenate([ones((*lead, d)), getitem(p, (Ellipsis, slice(0, n - d)))],
                                    axis=-1))
        d *= 2
    return p


def _product_of_others(x: Any, axes: tuple) -> Any:
    """Π_{j≠i} x_j over the reduced ``axes``, for each i (shape of x).

    The reduced axes are moved last and flattened into one of length n; then the product of
    the others is (product of those before) · (product of those after): two exclusive scans,
    one of them run backwards. No division, so it is exact where x has zeros (one zero: the
    product of the rest at the zero and 0 elsewhere; two: 0 everywhere), and so are its own
    derivatives: ∂²(Π x)/∂x_i∂x_k = Π_{j≠i,k} x_j.
    """
    shape = shape_of(x)
    kept = tuple(a for a in range(len(shape)) if a not in axes)
    order = (*kept, *axes)
    kept_shape = tuple(shape[a] for a in kept)
    reduced_shape = tuple(shape[a] for a in axes)
    n = 1
    for d in reduced_shape:
        n *= d
    y = reshape(transpose(x, order), (*kept_shape, n))
    backwards = (Ellipsis, slice(None, None, -1))
    before = _exclusive_cumprod(y)
    after = getitem(_exclusive_cumprod(getitem(y, backwards)), backwards)
    others = reshape(multiply(before, after), (*kept_shape, *reduced_shape))
    inverse = [0] * len(order)
    for position, a in enumerate(order):
        inverse[a] = position
    return transpose(others, tuple(inverse))


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
    fresh=True,
    jvp=_prod_jvp,
    save=lambda args, out, needs, axis, keepdims: args[0],
    vjp=_prod_vjp,
    batch=lambda size, args, batched, axis, keepdims: _prod_p(args[0], axis=tangent_axes(axis),
                                                              keepdims=keepdims),
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
    fresh=True,
    jvp=lambda ts, args, out, axis: _cumsum_p(ts[0], axis=axis + 1),
    save=lambda args, out, needs, axis: None,
    vjp=_cumsum_vjp,
    batch=lambda size, args, batched, axis: _cumsum_p(args[0], axis=axis + 1),
)


def cumsum(x: Any, axis: int | None = None) -> Any:
    """Running sum along ``axis``; with ``axis=None`` the array is flattened first (as NumPy)."""
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    (axis,) = normalize_axis(axis, ndim_of(x), "cumsum")
    return _cumsum_p(x, axis=axis)


register_ops(mean=mean, max=max, min=min, prod=prod)
