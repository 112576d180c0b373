"""Shape and indexing primitives: they move numbers around without changing them.

Each is linear, so its JVP applies the same op to the tangent (shifted past the leading axis of
K directions) and its VJP applies the transpose:

=================  ===================================================
op                 transpose (VJP)
=================  ===================================================
reshape            reshape back
transpose(axes)    transpose by the inverse permutation
broadcast_to       unbroadcast (sum over the stretched axes)
x[index]           scatter-add into zeros of x's shape
concatenate        slice the cotangent back into pieces
=================  ===================================================

``expand_dims``, ``squeeze`` and ``stack`` are composed from these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import backend as _backend
from ..core import Box, Primitive, ShapeError, ndim_of, raw, shape_of
from .broadcasting import align_tangent, broadcasts_to, unbroadcast

__all__ = [
    "reshape", "transpose", "broadcast_to", "expand_dims", "squeeze", "concatenate", "stack",
    "getitem", "matrix_transpose", "zeros", "ones", "zeros_like", "ones_like",
]


def _xp() -> Any:
    return _backend._current[-1].xp


# ---------------------------------------------------------------------------------------------
# reshape
# ---------------------------------------------------------------------------------------------

_reshape_p = Primitive(
    "reshape",
    lambda x, shape: _xp().reshape(x, shape),
    jvp=lambda ts, args, out, shape: _reshape_p(ts[0], shape=(shape_of(ts[0])[0], *shape)),
    save=lambda args, out, needs, shape: shape_of(args[0]),
    vjp=lambda g, x_shape, needs, shape: [_reshape_p(g, shape=x_shape)],
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
# broadcast_to
# ---------------------------------------------------------------------------------------------


def _broadcast_jvp(ts: Sequence[Any], args: Sequence[Any], out: Any, shape: tuple) -> Any:
    t = align_tangent(ts[0], ndim_of(args[0]), len(shape))
    return _broadcast_p(t, shape=(shape_of(t)[0], *shape))


_broadcast_p = Primitive(
    "broadcast_to",
    lambda x, shape: _xp().broadcast_to(x, shape),
    jvp=_broadcast_jvp,
    save=lambda args, out, needs, shape: shape_of(args[0]),
    vjp=lambda g, x_shape, needs, shape: [unbroadcast(g, x_shape)],
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


# ---------------------------------------------------------------------------------------------
# indexing (read-only) and its transpose, scatter-add
# ---------------------------------------------------------------------------------------------


class _Index:
    """An index made hashable-free and backend-ready: a tuple of ints, slices, None, Ellipsis
    and raw integer or boolean arrays."""

    __slots__ = ("items", "advanced")

    def __init__(self, key: Any) -> None:
        backend = _backend._current[-1]
        items = key if isinstance(key, tuple) else (key,)
        converted = []
        for item in items:
            if isinstance(item, Box):
                item = raw(item)
            if isinstance(item, list):
                item = backend.xp.asarray(item)
            converted.append(item)
        self.items = tuple(converted)
        arrays = [i for i in self.items if hasattr(i, "shape")]
        # integer arrays may repeat an index, so their transpose must accumulate
        self.advanced = any(not backend.xp.isdtype(a.dtype, "bool") for a in arrays)
        positions = [n for n, i in enumerate(self.items)
                     if hasattr(i, "shape") or (isinstance(i, int) and not isinstance(i, bool))]
        if arrays and positions[-1] - positions[0] + 1 != len(positions):
            raise IndexError(
                "indexing: array indices separated by slices are not supported (NumPy moves "
                "their axes to the front); index in two steps instead"
            )

    def shifted(self) -> tuple:
        """The same index for a tangent with a leading axis of K directions."""
        return (slice(None), *self.items)


def _scatter_add_impl(g: Any, index: _Index, shape: tuple) -> Any:
    backend = _backend._current[-1]
    if index.advanced:
        return backend.scatter_add(shape, index.items, g)
    out = backend.xp.zeros(shape, dtype=g.dtype)
    try:
        out[index.items] = g
    except IndexError:  # beyond the standard (None, out-of-range slice stops), as in getitem
        return backend.scatter_add(shape, index.items, g)
    return out


def _shifted_index(index: _Index) -> _Index:
    shifted = _Index.__new__(_Index)
    shifted.items = index.shifted()
    shifted.advanced = index.advanced
    return shifted


_getitem_p = Primitive(
    "getitem",
    lambda x, index: _backend._current[-1].index(x, index.items),
    jvp=lambda ts, args, out, index: _getitem_p(ts[0], index=_shifted_index(index)),
    save=lambda args, out, needs, index: (shape_of(args[0]), index.items),
    vjp=lambda g, res, needs, index: [_scatter_add_p(g, index=index, shape=res[0])],
)

_scatter_add_p = Primitive(
    "scatter_add",
    _scatter_add_impl,
    jvp=lambda ts, args, out, index, shape: _scatter_add_p(
        ts[0], index=_shifted_index(index), shape=(shape_of(ts[0])[0], *shape)),
    save=lambda args, out, needs, index, shape: index.items,
    vjp=lambda g, res, needs, index, shape: [_getitem_p(g, index=index)],
)


def getitem(x: Any, key: Any) -> Any:
    """``x[key]`` for basic (ints, slices, None, ...), boolean-mask and integer-array indices.

    VJP: the cotangent is scatter-added into zeros of x's shape, so repeated integer indices
    accumulate, as the chain rule says they must.
    """
    return _getitem_p(x, index=_Index(key))


# ---------------------------------------------------------------------------------------------
# concatenate and stack
# ---------------------------------------------------------------------------------------------


def _concat_jvp(ts: Sequence[Any], args: Sequence[Any], out: Any, axis: int) -> Any:
    k = next(shape_of(t)[0] for t in ts if t is not None)
    pieces = [t if t is not None else zeros((k, *shape_of(a))) for t, a in zip(ts, args)]
    return _concat_p(*pieces, axis=axis + 1)


def _concat_vjp(g: Any, sizes: tuple, needs: Sequence[bool], axis: int) -> list[Any]:
    grads = []
    start = 0
    rank = ndim_of(g)
    for size, need in zip(sizes, needs):
        if need:
            key = (slice(None),) * axis + (slice(start, start + size),) + (slice(None),) * (
                rank - axis - 1)
            grads.append(getitem(g, key))
        else:
            grads.append(None)
        start += size
    return grads


_concat_p = Primitive(
    "concatenate",
    lambda *xs, axis: _xp().concat(xs, axis=axis),
    jvp=_concat_jvp,
    save=lambda args, out, needs, axis: tuple(shape_of(a)[axis] for a in args),
    vjp=_concat_vjp,
)


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along an existing axis."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array")
    shapes = [shape_of(a) for a in arrays]
    rank = len(shapes[0])
    if rank == 0:
        raise ShapeError("concatenate: zero-dimensional arrays cannot be concatenated")
    axis = axis % rank
    for s in shapes:
        if len(s) != rank or any(d != e for i, (d, e) in enumerate(zip(s, shapes[0]))
                                 if i != axis):
            raise ShapeError(f"concatenate: shapes {shapes} differ off axis {axis}")
    return _concat_p(*arrays, axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays of one shape along a new axis."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all arrays need the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


# ---------------------------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------------------------


def zeros(shape: Sequence[int]) -> Any:
    """A float64 array of zeros on the current backend."""
    b = _backend._current[-1]
    return b.xp.zeros(tuple(shape), dtype=b.float_dtype)


def ones(shape: Sequence[int]) -> Any:
    """A float64 array of ones on the current backend."""
    b = _backend._current[-1]
    return b.xp.ones(tuple(shape), dtype=b.float_dtype)


def zeros_like(x: Any) -> Any:
    return zeros(shape_of(x))


def ones_like(x: Any) -> Any:
    return ones(shape_of(x))
