"""Arrays that carry no derivative: zeros and ones, conversions, and ``stop_gradient``.

These sit at the bottom of the ops: they make or unwrap raw backend arrays and have no rules,
so every other op may use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import get_backend
from ..core import (
    Box,
    Primitive,
    TracerConversionError,
    holds_box,
    shape_of,
    stacked,
    without_derivatives,
)
from ..escapes import batched_escape_message

__all__ = ["zeros", "ones", "zeros_like", "ones_like", "asarray", "to_host", "stop_gradient"]


def zeros(shape: int | Sequence[int]) -> Any:
    """A float64 array of zeros on the current backend (``shape`` an int or a tuple)."""
    b = get_backend()
    return b.xp.zeros((shape,) if isinstance(shape, int) else tuple(shape), dtype=b.float_dtype)


def ones(shape: int | Sequence[int]) -> Any:
    """A float64 array of ones on the current backend (``shape`` an int or a tuple)."""
    b = get_backend()
    return b.xp.ones((shape,) if isinstance(shape, int) else tuple(shape), dtype=b.float_dtype)


def zeros_like(x: Any) -> Any:
    return zeros(shape_of(x))


def ones_like(x: Any) -> Any:
    return ones(shape_of(x))


def asarray(x: Any, dtype: Any = None) -> Any:
    """Python numbers, lists and arrays as arrays of the current backend (floats as float64).
    Traced values are returned unchanged."""
    if isinstance(x, Box):
        return x
    if isinstance(x, list | tuple) and holds_box(x):  # traced entries: the array they make
        return stacked(x)
    return get_backend().asarray(x, dtype=dtype)


def to_host(x: Any) -> Any:
    """A NumPy copy of ``x``'s value (dropping any tracing). A value batched by a running
    ``vmap`` is refused: it holds one value per batch element, not the one value the function
    (written for one element) expects."""
    v = x
    while isinstance(v, Box):
        if v.batch_axes and v.level.active:
            raise TracerConversionError(batched_escape_message("minidiff.to_host of"))
        v = v.value
    return get_backend().to_host(v)


# the identity, recorded when md.jit traces a stop_gradient (so a derived program keeps the cut)
_stop_gradient_p = Primitive("stop_gradient", lambda x: x, elementwise=True,
                             differentiable=False, passes_through=0, loop="{0}")


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` as a constant: no derivative flows through it, in any transform."""
    x = without_derivatives(x)
    return _stop_gradient_p(x) if isinstance(x, Box) else x
