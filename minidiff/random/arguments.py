"""The checks and shapes of a draw's arguments: parameters as float arrays, ``size`` as a shape,
NumPy's rule for the output shape, and the ranges of parameters."""

from __future__ import annotations

import operator
from typing import Any

from .. import backend as _backend
from ..core import Box, raw, shape_of
from ..ops.linear import broadcast_shapes, broadcasts_to
from ..validation import check_probability

__all__ = ["as_parameter", "check_nonnegative", "check_probs", "out_shape", "plain_probability",
           "size_shape"]


def as_parameter(x: Any) -> Any:
    """A parameter as a float backend array, traced values (and triples) untouched."""
    if isinstance(x, Box):
        return x
    b = _backend.get_backend()
    arr = b.asarray(x)
    return arr if b.xp.isdtype(arr.dtype, "real floating") else b.xp.astype(arr, b.float_dtype)


def size_shape(name: str, size: Any) -> tuple | None:
    if size is None:
        return None
    try:
        shape = (operator.index(size),) if not isinstance(size, tuple | list) else tuple(
            operator.index(d) for d in size)
    except TypeError:
        raise TypeError(f"{name}: size must be an int or a tuple of ints, got {size!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{name}: size must not be negative, got {size!r}")
    return shape


def out_shape(name: str, size: Any, *params: Any) -> tuple:
    """NumPy's rule: the parameters' broadcast shape, or ``size`` if they broadcast to it.
    Each of ``params`` is a parameter or a shape (a tuple)."""
    shapes = [p if isinstance(p, tuple) else shape_of(p) for p in params]
    try:
        base = broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{name}: parameter shapes {shapes} do not broadcast together") from None
    shape = size_shape(name, size)
    if shape is None:
        return base
    if not broadcasts_to(base, shape):
        raise ValueError(f"{name}: parameters of shape {base} do not broadcast to size {shape}")
    return shape


def check_nonnegative(name: str, what: str, value: Any, finite: bool = False) -> None:
    b = _backend.get_backend()
    v = b.asarray(raw(value))
    v = v if b.xp.isdtype(v.dtype, "real floating") else b.xp.astype(v, b.float_dtype)
    ok = v >= 0
    if finite:
        ok = b.xp.logical_and(ok, b.xp.isfinite(v))
    if not bool(b.xp.all(ok)):
        bound = "finite and ≥ 0" if finite else "≥ 0"
        raise ValueError(f"{name}: {what} must be {bound}, got {raw(value)!r}")


def check_probs(probs: Any) -> None:
    b = _backend.get_backend()
    xp = b.xp
    v = raw(probs)
    if len(shape_of(v)) < 1 or shape_of(v)[-1] < 1:
        raise ValueError(f"categorical: probs needs a last axis of at least one class, got "
                         f"shape {shape_of(v)}")
    if not bool(xp.all(xp.logical_and(xp.isfinite(v), v >= 0))):
        raise ValueError(f"categorical: probs must be finite and ≥ 0, got {v!r}")
    if not bool(xp.all(xp.abs(xp.sum(v, axis=-1) - 1.0) <= 1e-9)):
        raise ValueError(f"categorical: probs must sum to 1 along the last axis (within "
                         f"1e-9), got sums {xp.sum(v, axis=-1)!r}")


def plain_probability(name: str, p: Any) -> float:
    """``p`` as a float in [0, 1], refused when it is traced (it would carry a derivative the
    sampler drops) or not a finite number."""
    if isinstance(p, Box):
        raise TypeError(f"{name}: p must be a plain number, but it is traced (it carries a "
                        f"derivative or a batch axis that {name} would drop); use "
                        f"bernoulli(p, size, estimator=...) for a p that depends on parameters")
    return check_probability(name, "p", p)
