"""User-defined primitives: give a function your own derivative rules.

``custom_jvp`` and ``custom_vjp`` turn a function into a primitive of its own. The function
body computes the value (with minidiff ops or anything else that works on arrays); the rules
you attach say how to differentiate it, and minidiff never looks inside the body.

    @minidiff.custom_jvp
    def log1pexp(x):
        return minidiff.log(1.0 + minidiff.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), minidiff.sigmoid(x) * t

    @minidiff.custom_vjp
    def clip_gradient(x):
        return x

    def clip_fwd(x):
        return x, None                       # value and residuals

    def clip_bwd(residuals, g):
        return (minidiff.clip(g, -1.0, 1.0),)  # one cotangent per argument

    clip_gradient.defvjp(clip_fwd, clip_bwd)

Tangents carry a leading axis of K directions (shape ``(K, *x.shape)``), so elementwise rules
like ``sigmoid(x) * t`` work as written. Each decorator supports one mode unless both rules
are given (``defjvp`` and ``defvjp`` can both be called on either): using the missing mode
raises ``minidiff.ModeError``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .core import Primitive, shape_of
from .ops import zeros

__all__ = ["custom_jvp", "custom_vjp", "CustomPrimitive"]


class CustomPrimitive:
    """A function whose derivatives are given by user rules rather than by tracing its body."""

    def __init__(self, fun: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.primitive = Primitive(getattr(fun, "__name__", "custom"),
                                   lambda *args: fun(*args))

    def __call__(self, *args: Any) -> Any:
        return self.primitive(*args)

    def defjvp(self, rule: Callable[[tuple, tuple], tuple[Any, Any]]) -> Callable:
        """``rule(primals, tangents) -> (out, out_tangent)``. Constant arguments get zero
        tangents."""

        def jvp(tangents: list, args: list, out: Any) -> Any:
            k = next(shape_of(t)[0] for t in tangents if t is not None)
            filled = tuple(zeros((k, *shape_of(a))) if t is None else t
                           for t, a in zip(tangents, args))
            return rule(tuple(args), filled)[1]

        self.primitive.jvp = jvp
        return rule

    def defvjp(self, fwd: Callable[..., tuple[Any, Any]],
               bwd: Callable[[Any, Any], tuple]) -> None:
        """``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, g) -> cotangents`` (a tuple,
        one per argument; None for a zero cotangent)."""
        name = self.primitive.name

        def vjp(g: Any, residuals: Any, needs: tuple) -> list[Any]:
            grads = bwd(residuals, g)
            if not isinstance(grads, tuple | list) or len(grads) != len(needs):
                raise TypeError(f"{name}: the bwd rule must return a tuple of {len(needs)} "
                                f"cotangent(s), one per argument")
            return list(grads)

        self.primitive.save = lambda args, out, needs: fwd(*args)[1]
        self.primitive.vjp = vjp


custom_jvp = CustomPrimitive
custom_vjp = CustomPrimitive
