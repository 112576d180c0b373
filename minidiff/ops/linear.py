"""Linear ops, the bottom of the table: reshaping, transposing, broadcasting and ``sum``.

Each op here is linear, so its JVP applies the same op to the tangent (shifted past the leading
axis of K directions) and its VJP applies the transpose:

=================  ===================================================
op                 transpose (VJP)
=================  ===================================================
reshape            reshape back
transpose(axes)    transpose by the inverse permutation
broadcast_to       unbroadcast (sum over the stretched axes)
sum(axis)          broadcast back over the summed axes
=================  ===================================================

``expand_dims`` and ``squeeze`` are composed from ``reshape``.

Broadcasting is undone in one place. NumPy broadcasting stretches an operand of shape ``(3, 1)``
to ``(2, 3, 4)`` by prepending axes and repeating along axes of length 1. Its transpose sums the
cotangent back over exactly those axes: :func:`unbroadcast`. Every VJP rule of a broadcasting op
calls it, and no rule repeats it.

Forward mode has the mirror problem. A tangent has a leading axis of K directions, shape
``(K, *S)``; NumPy aligns shapes from the right, so before a ``(K, 3)`` tangent meets a
``(2, 3)`` primal it must become ``(K, 1, 3)``: :func:`align_tangent`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..backend import get_backend
from ..core import Primitive, ShapeError, ndim_of, register_ops, shape_of

__all__ = [
    "reshape", "expand_dims", "squeeze", "transpose", "matrix_transpose", "broadcast_to", "sum",
    "unbroadcast", "align_tangent", "broadcast_shapes", "broadcasts_to", "normalize_axis",
    "keepdims_shape", "tangent_axes", "expand_reduced", "batch_aligned", "as_batched",
]


def _xp() -> Any:
    return get_backend().xp


# ---------------------------------------------------------------------------------------------
# shapes and axes
# ---------------------------------------------------------------------------------------------


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape NumPy's broadcasting gives to operands of ``shapes``."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for i, d in enumerate(s, start=rank - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise ValueError(f"shapes {shapes} cannot be broadcast together")
                out[i] = d
    return tuple(out)


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when an array of ``shape`` can be broadcast to exactly ``target``."""
    try:
        return broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def normalize_axis(axis: int | Sequence[int] | None, ndim: int, op: str) -> tuple[int, ...]:
    """Turn ``axis`` (None, an int or a sequence, negatives allowed) into sorted axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a!r} is out of bounds for an array of {ndim} dims")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def tangent_axes(axes: tuple[int, ...]) -> tuple[int, ...]:
    """Axes of a tangent, which has one extra leading axis (the K directions)."""
    return tuple(a + 1 for a in axes)


# ---------------------------------------------------------------------------------------------
# batching (vmap): a batched argument carries a leading batch axis before its own shape
# ---------------------------------------------------------------------------------------------


def batch_aligned(args: Sequence[Any], batched: Sequence[bool]) -> list[Any]:
    """Arguments of a broadcasting op with their batch axes lined up.

    A batched argument has shape ``(B, *S)``; NumPy aligns shapes from the right, so when
    another argument's own rank R exceeds len(S), ``(B, *S)`` becomes
    ``(B, 1, ..., 1, *S)`` (rank R + 1), and every batch axis sits at position 0 of the
    result. Unbatched arguments (rank ≤ R) broadcast as they would for one element."""
    ranks = [ndim_of(a) - 1 if b else ndim_of(a) for a, b in zip(args, batched)]
    rank = max(ranks)
    out = list(args)
    for i, (a, b, r) in enumerate(zip(args, batched, ranks)):
        if b and r < rank:
            shape = shape_of(a)
            out[i] = _reshape_p(a, shape=(shape[0], *(1,) * (rank - r), *shape[1:]))
    return out


def as_batched(x: Any, size: int, batched: bool) -> Any:
    """``x`` with a leading batch axis of ``size``: itself if batched, else broadcast (a
    view: every element shares the value)."""
    if batched:
        return x
    shape = shape_of(x)
    return _broadcast_p(_reshape_p(x, shape=(1, *shape)), shape=(size, *shape))


def _shift(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a + 1 for a in axes)


# ---------------------------------------------------------------------------------------------
# reshape
# ---------------------------------------------------------------------------------------------

_reshape_p = Primitive(
    "reshape",
    lambda x, shape: _xp().reshape(x, shape),
    negation_commutes=True,
    jvp=lambda ts, args, out, shape: _reshape_p(ts[0], shape=(shape_of(ts[0])[0], *shape)),
    save=lambda args, out, needs, shape: shape_of(args[0]),
    vjp=lambda g, x_shape, needs, shape: [_reshape_p(g, shape=x_shape)],
    batch=lambda size, args, batched, shape: _reshape_p(args[0], shape=(size, *shape)),
)


def reshape(x: Any, shape: int | Sequence[int]) -> Any:
    """The same elements in a new shape (one entry may be -1, inferred)."""
    x_shape = shape_of(x)
    shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    size = math.prod(x_shape)
    if shape.count(-1) == 1:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape an array of shape {x_shape} into {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    if math.prod(shape) != size or any(d < 0 for d in shape):
        raise ShapeError(f"reshape: cannot reshape an array of shape {x_shape} into {shape}")
    if shape == x_shape:
        return x
    return _reshape_p(x, shape=shape)


def expand_dims(x: Any, axis: int | Sequence[int]) -> Any:
    """Insert length-1 axes at ``axis`` (positions in the result)."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = ndim_of(x) + len(axes)
    positions = sorted(a % rank for a in axes)
    shape = list(shape_of(x))
    for a in positions:
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Any:
    """Remove length-1 axes (all of them, or those named by ``axis``)."""
    x_shape = shape_of(x)
    if axis is None:
        axes = {i for i, d in enumerate(x_shape) if d == 1}
    else:
        axes = {a % len(x_shape) for a in ((axis,) if isinstance(axis, int) else axis)}
        bad = [a for a in axes if x_shape[a] != 1]
        if bad:
            raise ShapeError(f"squeeze: axis {bad[0]} of shape {x_shape} does not have length 1")
    return reshape(x, tuple(d for i, d in enumerate(x_shape) if i not in axes))


# ---------------------------------------------------------------------------------------------
# transpose
# ---------------------------------------------------------------------------------------------


def _inverse_permutation(axes: tuple[int, ...]) -> tuple[int, ...]:
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return tuple(inverse)


_transpose_p = Primitive(
    "transpose",
    lambda x, axes: _xp().permute_dims(x, axes),
    jvp=lambda ts, args, out, axes: _transpose_p(ts[0], axes=(0, *(a + 1 for a in axes))),
    save=lambda args, out, needs, axes: None,
    vjp=lambda g, res, needs, axes: [_transpose_p(g, axes=_inverse_permutation(axes))],
    batch=lambda size, args, batched, axes: _transpose_p(args[0], axes=(0, *_shift(axes))),
)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """Permute axes (reverse them by default, as NumPy's ``transpose`` and ``.T``)."""
    rank = ndim_of(x)
    axes = tuple(reversed(range(rank))) if axes is None else tuple(a % rank for a in axes)
    if sorted(axes) != list(range(rank)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {rank} axes")
    if axes == tuple(range(rank)):
        return x
    return _transpose_p(x, axes=axes)


def matrix_transpose(x: Any) -> Any:
    """Swap the last two axes."""
    rank = ndim_of(x)
    if rank < 2:
        raise ShapeError(f"matrix_transpose: needs at least 2 dims, got shape {shape_of(x)}")
    return transpose(x, (*range(rank - 2), rank - 1, rank - 2))


# ---------------------------------------------------------------------------------------------
# broadcast_to, and its transpose unbroadcast
# ---------------------------------------------------------------------------------------------


def align_tangent(t: Any, primal_ndim: int, rank: int) -> Any:
    """Insert length-1 axes after the direction axis so a tangent of a rank-``primal_ndim``
    value broadcasts correctly against rank-``rank`` primals."""
    if primal_ndim >= rank:
        return t
    t_shape = shape_of(t)
    return reshape(t, (t_shape[0],) + (1,) * (rank - primal_ndim) + t_shape[1:])


def _broadcast_jvp(ts: Sequence[Any], args: Sequence[Any], out: Any, shape: tuple) -> Any:
    t = align_tangent(ts[0], ndim_of(args[0]), len(shape))
    return _broadcast_p(t, shape=(shape_of(t)[0], *shape))


def _broadcast_batch(size: int, args: Sequence[Any], batched: Sequence[bool],
                     shape: tuple) -> Any:
    x = align_tangent(args[0], ndim_of(args[0]) - 1, len(shape))  # (B, 1, .., 1, *S)
    return _broadcast_p(x, shape=(size, *shape))


_broadcast_p = Primitive(
    "broadcast_to",
    lambda x, shape: _xp().broadcast_to(x, shape),
    negation_commutes=True,
    expands=True,
    scalar_loop="{0}",  # a loop over single elements reads the one element it repeats
    jvp=_broadcast_jvp,
    save=lambda args, out, needs, shape: shape_of(args[0]),
    vjp=lambda g, x_shape, needs, shape: [unbroadcast(g, x_shape)],
    batch=_broadcast_batch,
)


def broadcast_to(x: Any, shape: Sequence[int]) -> Any:
    """Stretch ``x`` to ``shape`` by NumPy's broadcasting rules (a read-only view)."""
    shape = tuple(int(d) for d in shape)
    x_shape = shape_of(x)
    if not broadcasts_to(x_shape, shape):
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x_shape} to {shape}")
    if x_shape == shape:
        return x
    return _broadcast_p(x, shape=shape)


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` down to ``shape``: the transpose of broadcasting ``shape`` to ``g.shape``.

    Axes that broadcasting prepended are summed away; axes where ``shape`` has length 1 are
    summed with ``keepdims``. Written with minidiff ops, so it is itself differentiable.
    """
    g_shape = shape_of(g)
    if g_shape == shape:
        return g
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g_shape[lead + i] != 1
    )
    if axes:
        g = sum(g, axis=axes)
    return reshape(g, tuple(shape))


# ---------------------------------------------------------------------------------------------
# sum: linear, so its JVP is itself and its VJP is a broadcast
# ---------------------------------------------------------------------------------------------


def expand_reduced(g: Any, x_shape: tuple[int, ...], axes: tuple[int, ...],
                   keepdims: bool) -> Any:
    """Broadcast a cotangent reduced over ``axes`` back to the input's shape ``x_shape``."""
    if not keepdims:
        g = reshape(g, keepdims_shape(x_shape, axes))
    return broadcast_to(g, x_shape)


_sum_p = Primitive(
    "sum",
    lambda x, axis, keepdims: _xp().sum(x, axis=axis, keepdims=keepdims),
    fresh=True,
    direct="sum",
    negation_commutes=True,
    jvp=lambda ts, args, out, axis, keepdims: _sum_p(ts[0], axis=tangent_axes(axis),
                                                     keepdims=keepdims),
    save=lambda args, out, needs, axis, keepdims: shape_of(args[0]),
    vjp=lambda g, x_shape, needs, axis, keepdims: [expand_reduced(g, x_shape, axis, keepdims)],
    batch=lambda size, args, batched, axis, keepdims: _sum_p(args[0], axis=_shift(axis),
                                                             keepdims=keepdims),
)


def sum(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Σ over ``axis`` (all axes by default). VJP: x̄ = broadcast of ȳ."""
    return _sum_p(x, axis=normalize_axis(axis, ndim_of(x), "sum"), keepdims=keepdims)


register_ops(reshape=reshape, transpose=transpose, matrix_transpose=matrix_transpose, sum=sum)
