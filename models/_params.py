"""Shared argument checks for the models: unpack parameter vectors and refuse bad values early.

Parameters may be plain numbers, backend arrays, or traced values (Dual, tape value, stochastic
triple): a vector is split with ``md.getitem`` so that each piece keeps its derivative, and the
range checks read only the primal value.
"""

from __future__ import annotations

import operator
from typing import Any

import minidiff as md
from minidiff.core import Box, raw, shape_of


def unpack(params: Any, names: tuple[str, ...], model: str) -> tuple[Any, ...]:
    """Split ``params`` into one scalar per name.

    Accepts a sequence of scalars, a 1-D array of len(names) entries, or (for one parameter) a
    scalar. Wrong counts raise ``ValueError`` naming the expected parameters."""
    expected = f"{len(names)} parameter(s) ({', '.join(names)})"
    if isinstance(params, list | tuple):
        if len(params) != len(names):
            raise ValueError(f"{model}: expected {expected}, got {len(params)}")
        return tuple(md.asarray(p) for p in params)
    arr = params if isinstance(params, Box) else md.asarray(params)
    shape = shape_of(arr)
    if shape == () and len(names) == 1:
        return (arr,)
    if len(shape) != 1 or shape[0] != len(names):
        raise ValueError(f"{model}: expected {expected} as a vector of shape ({len(names)},), "
                         f"got shape {shape}")
    return tuple(md.getitem(arr, k) for k in range(len(names)))


def value(x: Any) -> float:
    """The primal value of a scalar parameter as a Python float (for range checks only)."""
    v = raw(x)  # strips every level of tracing
    if shape_of(v) != ():
        raise ValueError(f"expected a scalar parameter, got shape {shape_of(v)}")
    return float(md.to_host(v))


def check_range(model: str, name: str, x: Any, low: float | None = None,
                high: float | None = None) -> None:
    """Refuse a parameter outside [low, high] (either bound may be None), or NaN."""
    v = value(x)
    if v != v or (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{model}: parameter {name} must lie in [{lo}, {hi}], got {v!r}")


def check_count(model: str, name: str, n: Any, least: int) -> int:
    """An integer ≥ ``least`` (bools and floats refused)."""
    try:
        k = None if isinstance(n, bool) else operator.index(n)
    except TypeError:
        k = None
    if k is None or k < least:
        raise ValueError(f"{model}: {name} must be an integer ≥ {least}, got {n!r}")
    return k
