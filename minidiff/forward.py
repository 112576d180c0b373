"""Forward mode: dual numbers.

A ``Dual`` pairs a primal value ``x`` with a tangent ``ẋ``, the derivative of ``x`` along some
input direction. Each primitive ``y = f(x1, ..., xn)`` maps the pair by its JVP rule,

    ẏ = Σ_i ∂f/∂x_i · ẋ_i,

computed alongside the primal, so one pass gives a Jacobian-vector product and nothing needs to
be kept for later: memory stays flat however long the program runs.

The tangent carries a leading axis of K directions, shape ``(K, *x.shape)``. ``jacfwd`` of a
function of K scalar inputs seeds the K unit directions and gets the whole Jacobian from one
pass, which evaluates the primal (and so draws its random numbers) once. ``jvp`` uses K = 1.
"""

from __future__ import annotations

from typing import Any

from .core import Box, Engine, Level, ModeError, Primitive, bind

__all__ = ["Dual", "ForwardEngine"]


class Dual(Box):
    """A primal value and its tangent(s) at one forward-mode level.

    Attributes:
        value: the primal, shape ``S`` (possibly boxed at a lower level).
        tangent: the tangents, shape ``(K, *S)`` (possibly boxed at a lower level).
        level: the forward-mode level that owns this pair.
    """

    __slots__ = ("tangent",)

    def __init__(self, value: Any, tangent: Any, level: Level) -> None:
        self.value = value
        self.tangent = tangent
        self.level = level

    def __repr__(self) -> str:
        return f"Dual(value={self.value!r}, tangent={self.tangent!r})"


class ForwardEngine(Engine):
    """Processes primitives at one forward-mode level with K tangent directions."""

    def __init__(self, n_directions: int) -> None:
        self.n_directions = n_directions

    def process(self, primitive: Primitive, args: tuple, params: dict) -> Any:
        joint = primitive.value_and_jvp
        if primitive.jvp is None and joint is None:
            raise ModeError(
                f"{primitive.name} has no JVP rule, so forward mode (jvp, jacfwd, hessian) "
                f"cannot differentiate it; give it one with .defjvp, or use reverse mode"
            )
        primals = []
        tangents = []
        for a in args:
            if isinstance(a, Dual) and a.level is self:
                primals.append(a.value)
                tangents.append(a.tangent)
            else:
                primals.append(a)
                tangents.append(None)
        if joint is None:
            out = bind(primitive, *primals, **params)
            tangent = primitive.jvp(tangents, primals, out, **params)
        else:
            out, tangent = joint(primals, tangents, **params)
        if primitive.multiple_results:
            return tuple(o if t is None else Dual(o, t, self) for o, t in zip(out, tangent))
        return Dual(out, tangent, self)
