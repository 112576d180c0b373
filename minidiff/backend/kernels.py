"""Fast kernels: cheaper eager rules, each bit for bit what the plain formula computes.

Rules never ask which library runs; ops whose plain formula wastes passes over memory call a
kernel of the current backend instead (``get_backend().kernels``), and each backend supplies
its fastest *exact* way: NumPy's below (:data:`NUMPY_KERNELS`); other backends get the
portable formulas of :func:`generic_kernels`. ``minidiff.jit``'s executors read the ``into``
and ``direct`` tables by the names that primitives declare (``Primitive.into``,
``Primitive.direct``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Kernels", "generic_kernels", "NUMPY_KERNELS"]


@dataclass(frozen=True)
class Kernels:
    """The fast paths of one backend.

    Attributes:
        sigmoid: ``sigmoid(x)``, σ(x) = 1/(1 + e^{-x}) of a raw floating array.
        select: ``select(condition, x, y)``, bit for bit the library's ``where``.
        into: the library's elementwise functions that write into a given buffer,
            ``into[name](*args, out=buffer)``, each giving bit for bit the op whose primitive
            declares that name as ``Primitive.into`` (``"add"``, ``"exp"``, ``"sigmoid"``,
            ...). ``minidiff.jit``'s replay executor uses them to reuse buffers instead of
            allocating; empty where the library has no ``out=`` (array_api_strict).
        direct: functions that compute an op exactly as its implementation does, with fewer
            indirections, by the name its primitive declares as ``Primitive.direct``
            (``"sum"``: the reduction itself; ``"where"``: ``select``), for code that calls
            them many times (md.jit's replay).
        mark: ``mark(size, positions)``, booleans of shape (size,), True exactly at the given
            positions (a sorted integer array without repeats, each in [0, size)).
    """

    sigmoid: Callable[[Any], Any]
    select: Callable[[Any, Any, Any], Any]
    mark: Callable[[int, Any], Any]
    into: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    direct: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


def generic_kernels(xp: Any) -> Kernels:
    """Portable kernels from array API calls only."""

    def sigmoid(x: Any) -> Any:
        e = xp.exp(-xp.abs(x))  # e^{-|x|} <= 1: no overflow
        # numerator e^{-|x|} for x < 0 and 1 for x >= 0 (where e <= 1): no branch
        return xp.maximum(e, xp.astype(x >= 0, e.dtype)) / (1.0 + e)

    def select(condition: Any, x: Any, y: Any) -> Any:
        return xp.where(condition, _as_xp(xp, x), _as_xp(xp, y))

    def mark(size: int, positions: Any) -> Any:
        # no assignment through an index array in the standard: each cell counts the positions
        # equal to it (0 or 1, the positions being distinct), by two sorted searches
        cells = xp.arange(size, dtype=positions.dtype)
        return (xp.searchsorted(positions, cells, side="right")
                > xp.searchsorted(positions, cells, side="left"))

    return Kernels(sigmoid=sigmoid, select=select, mark=mark)


def _as_xp(xp: Any, v: Any) -> Any:
    return xp.asarray(float(v)) if isinstance(v, int | float) else v


_SELECT_MIN_SIZE = 2048  # below this NumPy's where is as fast as the bit select


def _numpy_sigmoid(x: Any, out: Any = None) -> Any:
    """1/(1 + e^{-x}) in four passes over one buffer (negate, exp, add, divide).

    e^{-x} overflows to inf for x < -709, where 1/(1 + inf) = 0 is the right limit, so the
    overflow is not worth a warning. Relative accuracy is a few ulp everywhere (no
    cancellation: 1 + e^{-x} >= 1)."""
    if type(x) is not np.ndarray or x.ndim == 0 or x.dtype.kind != "f":
        return generic_kernels(np).sigmoid(x)
    t = np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1.0
    np.divide(1.0, t, out=t)
    return t


def _float64_bits(v: Any) -> Any:
    """The bits of a float64 array or number as int64 (a view; no copy), or None."""
    if type(v) is float:
        return np.float64(v).view(np.int64)
    if isinstance(v, np.ndarray | np.float64) and v.dtype == np.float64:
        return v.view(np.int64)
    return None


def _numpy_select(condition: Any, x: Any, y: Any) -> Any:
    """``np.where(condition, x, y)`` without branches, bit for bit.

    ``np.where`` branches on every element, and a random mask (agents that reset, a
    threshold crossed) makes the branch unpredictable: at 50 % it is several times slower
    than a multiply. For float64 the select is done on the bits instead: with m = -1 (all
    ones) where the condition holds and 0 elsewhere,

        where(c, x, y) = y ^ ((x ^ y) & m),    where(c, x, +0.0) = x & m,

    which copies NaNs, infinities and signed zeros exactly as ``where`` does. It takes a few
    passes, so it is used only when the branch would be mispredicted often: when between 15 %
    and 85 % of the mask holds (counting costs a fraction of one pass). Outside that range
    the few elements of one side are put into a copy of the other."""
    if type(condition) is not np.ndarray or condition.dtype != np.bool_:
        return np.where(condition, x, y)
    if type(x) is float and type(y) is float and x == 1.0 and y == 0.0 \
            and math.copysign(1.0, y) > 0:
        return condition.astype(np.float64)  # where(c, 1.0, 0.0): the mask as floats
    if condition.size < _SELECT_MIN_SIZE:
        return np.where(condition, x, y)
    bx, by = _float64_bits(x), _float64_bits(y)
    if bx is None or by is None:
        return np.where(condition, x, y)
    share = np.count_nonzero(condition) / condition.size
    if share < 0.15 or share > 0.85:  # few elements to take from one side: copy the other
        rare, keep = (x, y) if share < 0.15 else (y, x)
        out = _copy_and_put(condition if share < 0.15 else ~condition, rare, keep)
        return np.where(condition, x, y) if out is None else out
    m = np.negative(condition, dtype=np.int64)  # 0 or -1
    if type(y) is float and y == 0.0 and math.copysign(1.0, y) > 0:
        bits = _in_place(np.bitwise_and, m, bx)  # x & m
    else:
        bits = _in_place(np.bitwise_and, np.bitwise_xor(bx, by), m)  # (x ^ y) & m
        np.bitwise_xor(bits, by, out=bits)  # y ^ ((x ^ y) & m)
    return bits.view(np.float64)


def _copy_and_put(mask: np.ndarray, rare: Any, keep: Any) -> np.ndarray | None:
    """A copy of ``keep`` with ``rare`` put where the 1-d ``mask`` (along the last axis)
    holds: where(mask, rare, keep) when few elements hold, as a copy and a scatter (no
    branches). None when the shapes do not allow it (``keep`` must have the result's shape)."""
    if type(keep) is not np.ndarray or mask.ndim != 1 or keep.dtype != np.float64:
        return None
    if np.broadcast_shapes(mask.shape, np.shape(rare), keep.shape) != keep.shape:
        return None
    out = keep.copy()
    at = np.flatnonzero(mask)
    if np.ndim(rare) and np.shape(rare)[-1] != 1:
        rare = rare[..., at]
    out[..., at] = rare
    return out


def _in_place(ufunc: Any, a: np.ndarray, b: Any) -> np.ndarray:
    """``ufunc(a, b)`` written over ``a`` (a fresh array) when the result has a's shape."""
    full = np.broadcast_shapes(a.shape, np.shape(b))
    return ufunc(a, b, out=a if full == a.shape else None)


def _numpy_select_into(condition: Any, x: Any, y: Any, out: Any = None) -> Any:
    """``select`` written into ``out`` (float64, the result's shape): the side that holds
    less often is copied in, then the other put where it holds (no fresh array, no branches).
    Exactly ``where``'s bits, as :func:`_numpy_select`. A small select returns a fresh
    array instead (one call beats four there; the caller uses what is returned)."""
    if type(condition) is np.ndarray and condition.size < _SELECT_MIN_SIZE:
        return np.where(condition, x, y)
    if (out is None or type(condition) is not np.ndarray or condition.dtype != np.bool_
            or condition.ndim != 1 or out.dtype != np.float64 or not out.shape
            or out.shape[-1] != condition.shape[0] or _float64_bits(x) is None
            or _float64_bits(y) is None):
        result = _numpy_select(condition, x, y)
        if out is None:
            return result
        np.copyto(out, result)
        return out
    share = np.count_nonzero(condition) / condition.size
    rare, keep, mask = (x, y, condition) if share < 0.5 else (y, x, ~condition)
    np.copyto(out, keep)
    at = np.flatnonzero(mask)
    out[..., at] = rare[..., at] if np.ndim(rare) and np.shape(rare)[-1] != 1 else rare
    return out


def _quiet_exp(x: Any, out: Any = None) -> Any:
    with np.errstate(over="ignore"):
        return np.exp(x, out=out)


_NUMPY_INTO = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "negative": np.negative, "maximum": np.maximum, "exp": np.exp, "log": np.log,
    "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
    "tanh": np.tanh, "abs": np.abs, "sign": np.sign, "floor": np.floor, "equal": np.equal,
    "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_not": np.logical_not, "sigmoid": _numpy_sigmoid,
    "quiet_exp": _quiet_exp,  # exp whose overflow to inf is expected (inside a sigmoid)
    "where": _numpy_select_into,
}

def _numpy_sum(x: Any, axis: Any, keepdims: bool) -> Any:
    return np.add.reduce(x, axis=axis, keepdims=keepdims)  # what np.sum calls


def _numpy_mark(size: int, positions: Any) -> np.ndarray:
    out = np.zeros(size, dtype=bool)
    out[positions] = True
    return out


NUMPY_KERNELS = Kernels(sigmoid=_numpy_sigmoid, select=_numpy_select, mark=_numpy_mark,
                        into=_NUMPY_INTO, direct={"sum": _numpy_sum, "where": _numpy_select})

