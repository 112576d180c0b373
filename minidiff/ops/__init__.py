"""minidiff's ops, with NumPy's names. Each works on raw arrays, Python numbers and traced
values alike; on traced values it is recorded (reverse mode) or pushed forward (forward mode).

Importing this package also gives traced values (``Dual``, ``TapeValue``) NumPy's operators:
``+ - * / ** @``, unary ``-``, comparisons (plain boolean arrays), indexing and ``.T``.
"""

from __future__ import annotations

from typing import Any

from .. import backend as _backend
from ..core import Box, raw
from .composite import (
    clip,
    equal,
    floor,
    greater,
    greater_equal,
    less,
    less_equal,
    logsumexp,
    minimum,
    not_equal,
    sign,
    softmax,
    square,
    stop_gradient,
    tan,
)
from .elementwise import (
    abs,
    add,
    cos,
    divide,
    erf,
    exp,
    expm1,
    gammaln,
    log,
    log1p,
    maximum,
    multiply,
    negative,
    polygamma_p,
    power,
    sigmoid,
    sin,
    softplus,
    sqrt,
    subtract,
    tanh,
    where,
)
from .linalg import dot, matmul
from .reductions import cumsum, max, mean, min, prod, sum
from .shapes import (
    broadcast_to,
    concatenate,
    expand_dims,
    getitem,
    matrix_transpose,
    ones,
    ones_like,
    reshape,
    squeeze,
    stack,
    transpose,
    zeros,
    zeros_like,
)

__all__ = [
    "abs", "add", "asarray", "broadcast_to", "clip", "concatenate", "cos", "cumsum", "digamma",
    "divide", "dot", "equal", "erf", "exp", "expand_dims", "expm1", "floor", "gammaln",
    "getitem", "greater", "greater_equal", "less", "less_equal", "log", "log1p", "logsumexp",
    "matmul", "matrix_transpose", "max", "maximum", "mean", "min", "minimum", "multiply",
    "negative", "not_equal", "ones", "ones_like", "polygamma", "power", "prod", "reshape",
    "sigmoid", "sign", "sin", "softmax", "softplus", "sqrt", "square", "squeeze", "stack",
    "stop_gradient", "subtract", "sum", "tan", "tanh", "to_host", "transpose", "where", "zeros",
    "zeros_like",
]


def digamma(x: Any) -> Any:
    """ψ(x) = d/dx log Γ(x); its derivative is the trigamma function ψ⁽¹⁾."""
    return polygamma_p(x, n=0)


def polygamma(n: int, x: Any) -> Any:
    """ψ⁽ⁿ⁾(x), the n-th derivative of the digamma function (SciPy's argument order)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"polygamma: order n must be a non-negative int, got {n!r}")
    return polygamma_p(x, n=n)


def asarray(x: Any, dtype: Any = None) -> Any:
    """Python numbers, lists and arrays as arrays of the current backend (floats as float64).
    Traced values are returned unchanged."""
    if isinstance(x, Box):
        return x
    return _backend.get_backend().asarray(x, dtype=dtype)


def to_host(x: Any) -> Any:
    """A NumPy copy of ``x``'s value (dropping any tracing)."""
    return _backend.get_backend().to_host(raw(x))


def _attach_operators() -> None:
    def flip(fn):
        return lambda self, other: fn(other, self)

    ops = {
        "__add__": add, "__radd__": flip(add),
        "__sub__": subtract, "__rsub__": flip(subtract),
        "__mul__": multiply, "__rmul__": flip(multiply),
        "__truediv__": divide, "__rtruediv__": flip(divide),
        "__pow__": power, "__rpow__": flip(power),
        "__matmul__": matmul, "__rmatmul__": flip(matmul),
        "__neg__": negative, "__pos__": lambda self: self, "__abs__": abs,
        "__getitem__": getitem,
        "__eq__": equal, "__ne__": not_equal, "__lt__": less, "__le__": less_equal,
        "__gt__": greater, "__ge__": greater_equal,
        "sum": sum, "mean": mean, "max": max, "min": min, "prod": prod,
        "reshape": lambda self, *shape: reshape(
            self, shape[0] if len(shape) == 1 else shape),
        "transpose": lambda self, *axes: transpose(self, axes or None),
    }
    for name, fn in ops.items():
        if not isinstance(fn, type(flip)):  # primitives are callables, not functions:
            fn = (lambda f: lambda *a, **k: f(*a, **k))(fn)  # wrap so they bind as methods
        setattr(Box, name, fn)
    Box.__hash__ = object.__hash__
    Box.__array_ufunc__ = None  # NumPy arrays defer to Box's reflected operators
    Box.T = property(lambda self: transpose(self))
    Box.mT = property(matrix_transpose)


_attach_operators()
