"""Matrix products.

The primitive is ``matmul`` on operands of at least two dims (leading "batch" dims broadcast):

    C = A B,    Ċ = Ȧ B + A Ḃ,    Ā = C̄ Bᵀ,    B̄ = Aᵀ C̄

(with ``unbroadcast`` summing over broadcast batch dims). A 1-D operand is promoted to a
matrix by inserting an axis and the axis is removed again afterwards, as NumPy does, so the
rules only ever see matrices. ``dot`` is ``matmul`` for 1-D and 2-D operands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import BackendError, get_backend
from ..core import Primitive, ShapeError, ndim_of, register_ops, shape_of
from .elementwise import add, multiply
from .linear import align_tangent, batch_aligned, matrix_transpose, reshape, unbroadcast

__all__ = ["matmul", "dot"]


def _matmul_jvp(ts: Sequence[Any], args: Sequence[Any], out: Any) -> Any:
    a, b = args
    rank = ndim_of(out)
    total = None
    if ts[0] is not None:
        total = _matmul_p(align_tangent(ts[0], ndim_of(a), rank), b)
    if ts[1] is not None:
        term = _matmul_p(a, align_tangent(ts[1], ndim_of(b), rank))
        total = term if total is None else add(total, term)
    return total


def _matmul_save(args: Sequence[Any], out: Any, needs: Sequence[bool]) -> Any:
    a, b = args
    # Ā needs B, B̄ needs A
    return (a if needs[1] else None, b if needs[0] else None, shape_of(a), shape_of(b))


def _matmul_vjp(g: Any, residuals: Any, needs: Sequence[bool]) -> list[Any]:
    a, b, a_shape, b_shape = residuals
    return [
        unbroadcast(_matmul_p(g, matrix_transpose(b)), a_shape) if needs[0] else None,
        unbroadcast(_matmul_p(matrix_transpose(a), g), b_shape) if needs[1] else None,
    ]


_matmul_p = Primitive(
    "matmul",
    lambda a, b: get_backend().xp.matmul(a, b),
    fresh=True,
    jvp=_matmul_jvp,
    save=_matmul_save,
    vjp=_matmul_vjp,
    # both operands are matrices whose leading dims broadcast: line the batch axes up as for
    # an elementwise op, and one matmul computes every element's product
    batch=lambda size, args, batched: _matmul_p(*batch_aligned(args, batched)),
)


def matmul(a: Any, b: Any) -> Any:
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch dims."""
    a_shape, b_shape = shape_of(a), shape_of(b)
    if not a_shape or not b_shape:
        raise ShapeError(f"matmul: operands must have at least 1 dim, got shapes {a_shape} and "
                         f"{b_shape} (use * for scalars)")
    if a_shape[-1] != b_shape[-2 if len(b_shape) > 1 else 0]:
        raise ShapeError(f"matmul: shapes {a_shape} and {b_shape} are not aligned: "
                         f"{a_shape[-1]} (last dim of the first) != "
                         f"{b_shape[-2 if len(b_shape) > 1 else 0]} (the second's contracted dim)")
    a2 = reshape(a, (1, *a_shape)) if len(a_shape) == 1 else a
    b2 = reshape(b, (*b_shape, 1)) if len(b_shape) == 1 else b
    try:
        out = _matmul_p(a2, b2)
    except BackendError:
        raise
    except ValueError as exc:
        raise ShapeError(f"matmul: batch dims of shapes {a_shape} and {b_shape} do not "
                         f"broadcast ({exc})") from exc
    if len(b_shape) == 1:
        out = reshape(out, shape_of(out)[:-1])
    if len(a_shape) == 1:
        out_shape = shape_of(out)
        out = reshape(out, out_shape[:-2] + out_shape[-1:] if len(b_shape) > 1
                      else out_shape[:-1])
    return out


def dot(a: Any, b: Any) -> Any:
    """NumPy's ``dot`` for operands of at most 2 dims: a product if either is a scalar, else
    ``matmul``."""
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return multiply(a, b)
    if ndim_of(a) > 2 or ndim_of(b) > 2:
        raise ShapeError(f"dot: operands of more than 2 dims (shapes {shape_of(a)} and "
                         f"{shape_of(b)}) are not supported; use matmul")
    return matmul(a, b)


register_ops(matmul=matmul)
