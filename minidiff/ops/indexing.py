"""Indexing and joining: linear ops that select or assemble elements.

=================  ===================================================
op                 transpose (VJP)
=================  ===================================================
x[index]           scatter-add into zeros of x's shape
concatenate        slice the cotangent back into pieces
=================  ===================================================

``stack`` is composed from ``expand_dims`` and ``concatenate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import get_backend
from ..core import Box, Primitive, ShapeError, ndim_of, raw, register_ops, shape_of
from .constants import zeros
from .linear import as_batched, expand_dims

__all__ = ["getitem", "concatenate", "stack"]


# ---------------------------------------------------------------------------------------------
# indexing (read-only) and its transpose, scatter-add
# ---------------------------------------------------------------------------------------------


class _Index:
    """An index made backend-ready: a tuple of ints, slices, None, Ellipsis and raw integer or
    boolean arrays."""

    __slots__ = ("items", "advanced")

    def __init__(self, key: Any) -> None:
        backend = get_backend()
        items = key if isinstance(key, tuple) else (key,)
        converted = []
        for item in items:
            if isinstance(item, Box):
                _refuse_batched_index(item)
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

    def frozen(self, keep: Any) -> _Index:
        """This index with ``keep`` applied to its arrays (the reverse pass keeps copies of
        arrays the caller could update in place before it reads them)."""
        items = tuple(keep(i) if hasattr(i, "shape") else i for i in self.items)
        if all(a is b for a, b in zip(items, self.items)):
            return self
        frozen = _Index.__new__(_Index)
        frozen.items = items
        frozen.advanced = self.advanced
        return frozen

    def shifted(self) -> tuple:
        """The same index for a tangent with a leading axis of K directions."""
        return (slice(None), *self.items)


def _refuse_batched_index(item: Box) -> None:
    x: Any = item
    while isinstance(x, Box):
        if x.batch_axes and x.level.active:
            raise TypeError(
                "indexing: an index array batched by minidiff.vmap (different indices per batch "
                "element) is not supported; select with minidiff.where, or with a one-hot "
                "matmul, or pass the index unbatched (in_axes=None)")
        x = x.value


def _scatter_add_impl(g: Any, index: _Index, shape: tuple) -> Any:
    backend = get_backend()
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
    lambda x, index: get_backend().index(x, index.items),
    jvp=lambda ts, args, out, index: _getitem_p(ts[0], index=_shifted_index(index)),
    save=lambda args, out, needs, index: (shape_of(args[0]), index.items),
    vjp=lambda g, res, needs, index: [_scatter_add_p(g, index=index, shape=res[0])],
    batch=lambda size, args, batched, index: _getitem_p(args[0], index=_shifted_index(index)),
)

_scatter_add_p = Primitive(
    "scatter_add",
    _scatter_add_impl,
    fresh=True,
    jvp=lambda ts, args, out, index, shape: _scatter_add_p(
        ts[0], index=_shifted_index(index), shape=(shape_of(ts[0])[0], *shape)),
    save=lambda args, out, needs, index, shape: index.items,
    vjp=lambda g, res, needs, index, shape: [_getitem_p(g, index=index)],
    batch=lambda size, args, batched, index, shape: _scatter_add_p(
        args[0], index=_shifted_index(index), shape=(size, *shape)),
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


def _concat_batch(size: int, args: Sequence[Any], batched: Sequence[bool], axis: int) -> Any:
    return _concat_p(*[as_batched(a, size, b) for a, b in zip(args, batched)], axis=axis + 1)


_concat_p = Primitive(
    "concatenate",
    lambda *xs, axis: get_backend().xp.concat(xs, axis=axis),
    fresh=True,
    jvp=_concat_jvp,
    save=lambda args, out, needs, axis: tuple(shape_of(a)[axis] for a in args),
    vjp=_concat_vjp,
    batch=_concat_batch,
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


register_ops(getitem=getitem, stack=stack)
