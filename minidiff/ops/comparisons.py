"""Piecewise-constant ops: comparisons, logical combinations, ``sign`` and ``floor``.

Each is a primitive made with ``differentiable=False``: its derivative is zero wherever it is
defined, so it has no rules. Engines that follow derivatives (forward and reverse mode) never
see it: ``bind`` computes it on the values and returns a plain array, a constant. An engine
that follows finite jumps (stochastic triples) does see it, and evaluates it in every world
like any elementwise op, which is why ``where(x > c, a, b)`` takes the other branch in a world
where x crossed c.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from ..backend import get_backend
from ..core import Primitive, register_ops

__all__ = [
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_not", "sign", "floor",
]


def _constant(name: str, impl: Callable[..., Any], n_args: int, loop: str | None = None,
              scalar_loop: str | None = None) -> Primitive:
    """A piecewise-constant elementwise op: a fresh array, computed into a buffer by the
    backend's ``into`` kernel of the same name (and, given ``loop``, in a compiled loop)."""
    return Primitive(name, impl, broadcasts=n_args > 1, elementwise=True, differentiable=False,
                     fresh=True, into=name, loop=loop, scalar_loop=scalar_loop)


# comparisons: boolean arrays
equal = _constant("equal", operator.eq, 2, "({0} == {1})")                # x == y
not_equal = _constant("not_equal", operator.ne, 2, "({0} != {1})")        # x != y
less = _constant("less", operator.lt, 2, "({0} < {1})")                   # x < y
less_equal = _constant("less_equal", operator.le, 2, "({0} <= {1})")      # x <= y
greater = _constant("greater", operator.gt, 2, "({0} > {1})")             # x > y
greater_equal = _constant("greater_equal", operator.ge, 2, "({0} >= {1})")  # x >= y

# logical combinations of booleans (the operators &, | and ~ of a traced boolean)
logical_and = _constant("logical_and", lambda x, y: get_backend().xp.logical_and(x, y), 2,
                        "({0} and {1})")
logical_or = _constant("logical_or", lambda x, y: get_backend().xp.logical_or(x, y), 2,
                       "({0} or {1})")
logical_not = _constant("logical_not", lambda x: get_backend().xp.logical_not(x), 1,
                        "(not {0})")

# sign of x (-1, 0, 1) and the largest integer ≤ x (as a float)
sign = _constant("sign", lambda x: get_backend().xp.sign(x), 1,
                 scalar_loop="(1.0 if {0} > 0.0 else (-1.0 if {0} < 0.0 else {0}))")
floor = _constant("floor", lambda x: get_backend().xp.floor(x), 1)

register_ops(equal=equal, not_equal=not_equal, less=less, less_equal=less_equal,
             greater=greater, greater_equal=greater_equal, logical_and=logical_and,
             logical_or=logical_or, logical_not=logical_not)
