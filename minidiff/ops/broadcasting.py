"""Broadcasting, undone in one place.

NumPy broadcasting stretches an operand of shape ``(3, 1)`` to ``(2, 3, 4)`` by prepending axes
and repeating along axes of length 1. Its transpose sums the cotangent back over exactly those
axes: :func:`unbroadcast`. Every VJP rule of a broadcasting op calls it, and no rule repeats it.

Forward mode has the mirror problem. A tangent has a leading axis of K directions, shape
``(K, *S)``; NumPy aligns shapes from the right, so before a ``(K, 3)`` tangent meets a
``(2, 3)`` primal it must become ``(K, 1, 3)``: :func:`align_tangent`.
"""

from __future__ import annotations

from typing import Any

from ..core import shape_of

__all__ = ["unbroadcast", "align_tangent", "broadcast_shapes", "broadcasts_to"]


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


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` down to ``shape``: the transpose of broadcasting ``shape`` to ``g.shape``.

    Axes that broadcasting prepended are summed away; axes where ``shape`` has length 1 are
    summed with ``keepdims``. Written with minidiff ops, so it is itself differentiable.
    """
    g_shape = shape_of(g)
    if g_shape == shape:
        return g
    from .reductions import sum as _sum
    from .shapes import reshape

    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g_shape[lead + i] != 1
    )
    if axes:
        g = _sum(g, axis=axes)
    return reshape(g, tuple(shape))


def align_tangent(t: Any, primal_ndim: int, rank: int) -> Any:
    """Insert length-1 axes after the direction axis so a tangent of a rank-``primal_ndim``
    value broadcasts correctly against rank-``rank`` primals."""
    if primal_ndim >= rank:
        return t
    from .shapes import reshape

    t_shape = shape_of(t)
    return reshape(t, (t_shape[0],) + (1,) * (rank - primal_ndim) + t_shape[1:])
