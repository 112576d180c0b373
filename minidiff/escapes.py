"""What a traced value refuses to become, and the words for it.

A value boxed by a running transform must not turn into a Python or NumPy value: whatever is
computed from that value is invisible to the transform, so its derivative would silently be
zero. ``Box`` (in :mod:`minidiff.core`) refuses those conversions with a
:class:`TracerConversionError` worded here, naming the minidiff op to use instead (or
``stop_gradient``); this module also holds the table of NumPy ufuncs that stand for Python's
operators, which ``Box`` routes to minidiff's ops (``ndarray + box`` arrives as
``np.add(ndarray, box)``).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["TracerConversionError", "UFUNC_OPERATORS", "batched_escape_message",
           "escape_message", "is_complex_dtype", "numpy_call_message", "ufunc_op_name"]


class TracerConversionError(TypeError):
    """A traced value was about to become a Python or NumPy value, which would drop its
    derivative: ``float(x)``, ``np.asarray(x)``, ``np.sin(x)``, ``a[i] = x`` into a NumPy array.
    """


def is_complex_dtype(dtype: Any) -> bool:
    """True for a complex dtype of any backend (NumPy's have ``kind``; array_api_strict's
    only a name)."""
    if dtype is None:
        return False
    kind = getattr(dtype, "kind", None)
    return kind == "c" if kind is not None else "complex" in str(dtype)


# NumPy's ufuncs behind Python's operators, and the registered op each means (as Box's own
# operators): ``ndarray + box`` arrives as np.add(ndarray, box)
UFUNC_OPERATORS = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
    "true_divide": "divide", "power": "power", "matmul": "matmul", "negative": "negative",
    "absolute": "abs", "equal": "equal", "not_equal": "not_equal", "less": "less",
    "less_equal": "less_equal", "greater": "greater", "greater_equal": "greater_equal",
    "logical_and": "logical_and", "logical_or": "logical_or", "logical_not": "logical_not",
    "bitwise_and": "logical_and", "bitwise_or": "logical_or", "invert": "logical_not",
}

_UFUNC_ALIASES = {"absolute": "abs", "true_divide": "divide"}  # NumPy's name -> minidiff's
_REDUCTIONS = {("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
               ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
               ("add", "accumulate"): "cumsum"}

def ufunc_op_name(name: str, method: str) -> str | None:
    if method != "__call__":
        return _REDUCTIONS.get((name, method))
    return _UFUNC_ALIASES.get(name, name)


def _minidiff_has(name: str | None) -> bool:
    """Whether ``minidiff.ops`` offers an op of this name, to word an error. The ops sit
    above core, which cannot import them; by the time a traced value exists they have been
    imported, so the module is read from ``sys.modules``."""
    ops = sys.modules.get("minidiff.ops")
    return bool(name) and ops is not None and hasattr(ops, name)


def numpy_call_message(call: str, op_name: str | None) -> str:
    if _minidiff_has(op_name):
        use = f"use minidiff.{op_name}"
    else:
        use = "minidiff has no op of that name: compose it from minidiff ops"
    return (f"{call} on a traced value would drop its derivative: {use} (or "
            f"minidiff.stop_gradient(x) if no derivative is wanted)")


def escape_message(call: str, what: str) -> str:
    return (f"{call} of a traced value would make it {what} and drop its derivative (the "
            f"transform cannot see what is computed from it): keep it an array and use "
            f"minidiff ops (math.sin(x) -> minidiff.sin(x); storing it into a NumPy array "
            f"a[i] = x -> minidiff.stack or minidiff.where), or take "
            f"minidiff.stop_gradient(x) if no derivative is wanted")


def batched_escape_message(what: str) -> str:
    """Why a value batched by ``vmap`` cannot become one Python or NumPy value."""
    return (f"{what} a value batched by minidiff.vmap: it holds one value per batch element, "
            f"so there is no single answer (Python control flow would take one branch for "
            f"every element). Choose elementwise with minidiff.where(condition, x, y), or make "
            f"the value an unbatched argument (in_axes=None)")
