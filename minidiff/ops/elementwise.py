"""Elementwise primitives: one derivative per argument, shared by JVP and VJP.

For an elementwise ``y = f(x_1, ..., x_n)`` the Jacobian is diagonal, so each rule is one
*partial* ∂y/∂x_i, an array of ``y``'s shape, and both modes follow from it:

    JVP:  ẏ  = Σ_i  ∂y/∂x_i · ẋ_i
    VJP:  x̄_i = unbroadcast(ȳ · ∂y/∂x_i, shape of x_i)

A rule declares which values its partial reads (``uses``: argument positions and/or
``"out"``); the tape keeps only those, and only for arguments being differentiated. ``exp``
keeps its output, ``add`` keeps nothing, ``x * c`` with constant ``c`` keeps just ``c``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend as _backend
from ..core import Primitive, ndim_of, raw, shape_of
from .broadcasting import align_tangent, unbroadcast

__all__ = [
    "elementwise_primitive",
    "add", "subtract", "multiply", "divide", "power", "negative", "maximum", "where",
    "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh", "sigmoid", "softplus",
    "abs", "erf", "gammaln", "polygamma_p",
]

Partial = Callable[..., Any]


class Static:
    """Residual metadata (shapes) that holds no array: the tape's byte count skips it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
NEGATE = object()  # a partial derivative of -1, applied by negation rather than multiplication


def _broadcast_to(x: Any, shape: tuple) -> Any:
    from .shapes import broadcast_to

    return broadcast_to(x, shape)


def _xp() -> Any:
    return _backend._current[-1].xp


def _float_mask(mask: Any) -> Any:
    """A raw boolean array as float64 zeros and ones (a constant: its derivative is zero)."""
    b = _backend._current[-1]
    return b.xp.astype(mask, b.float_dtype)


def _as_array(x: Any) -> Any:
    """Python numbers as float64 arrays, for functions that (in the standard) want arrays."""
    if isinstance(x, numbers.Number):
        b = _backend._current[-1]
        return b.xp.asarray(float(x), dtype=b.float_dtype)
    return x


def elementwise_primitive(name: str, impl: Callable[..., Any],
                          partials: Sequence[Partial | None],
                          uses: Sequence[Sequence[int | str]]) -> Primitive:
    """Build an elementwise primitive from its partial derivatives.

    Args:
        name: NumPy name of the op.
        impl: the op on raw arrays.
        partials: ``partials[i](out, *args, **params)`` returns ∂out/∂args[i]. Two constant
            partials are given directly instead, so no pass multiplies by them: None for 1
            (as in ``add``) and ``NEGATE`` for -1 (as in ``subtract``). Arguments not in
            ``uses[i]`` arrive as None in the reverse pass.
        uses: for each partial, the argument positions (and ``"out"``) it reads.
    """
    n_args = len(partials)
    uses = [frozenset(u) for u in uses]

    def jvp(tangents: Sequence[Any], args: Sequence[Any], out: Any, **params: Any) -> Any:
        out_shape = shape_of(out)
        rank = len(out_shape)
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            t = align_tangent(t, ndim_of(args[i]), rank)
            partial = partials[i]
            if partial is NEGATE:
                total = negative(t) if total is None else subtract(total, t)
                continue
            p = None if partial is None else partial(out, *args, **params)
            term = t if p is None else multiply(t, p)  # a partial may also return None for 1
            total = term if total is None else add(total, term)
        target = (shape_of(total)[0], *out_shape)
        if shape_of(total) != target:
            total = _broadcast_to(total, target)
        return total

    keep_for: dict[tuple, tuple[tuple[bool, ...], bool]] = {}  # needs -> what to keep

    def save(args: Sequence[Any], out: Any, needs: Sequence[bool], **params: Any) -> Any:
        plan = keep_for.get(needs)
        if plan is None:
            used: set = set()
            for i in range(n_args):
                if needs[i]:
                    used |= uses[i]
            plan = keep_for[needs] = (tuple(i in used for i in range(n_args)), "out" in used)
        keep_args, keep_out = plan
        kept = tuple([a if keep else None for a, keep in zip(args, keep_args)])
        return kept, (out if keep_out else None), Static([shape_of(a) for a in args])

    def vjp(g: Any, residuals: Any, needs: Sequence[bool], **params: Any) -> list[Any]:
        kept, out, shapes = residuals
        shapes = shapes.value
        grads: list[Any] = []
        for i in range(n_args):
            if not needs[i]:
                grads.append(None)
                continue
            partial = partials[i]
            if partial is None:
                gi = g
            elif partial is NEGATE:
                gi = negative(g)
            else:
                p = partial(out, *kept, **params)
                gi = g if p is None else multiply(g, p)
            grads.append(unbroadcast(gi, shapes[i]))
        return grads

    return Primitive(name, impl, jvp=jvp, vjp=vjp, save=save, broadcasts=n_args > 1,
                     elementwise=True)


# ---------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------

add = elementwise_primitive(
    "add", lambda x, y: x + y,
    partials=[None, None], uses=[(), ()])

subtract = elementwise_primitive(
    "subtract", lambda x, y: x - y,
    partials=[None, NEGATE], uses=[(), ()])

multiply = elementwise_primitive(
    "multiply", lambda x, y: x * y,
    partials=[lambda out, x, y: y,          # ∂(xy)/∂x = y
              lambda out, x, y: x],         # ∂(xy)/∂y = x
    uses=[(1,), (0,)])

divide = elementwise_primitive(
    "divide", lambda x, y: x / y,
    partials=[lambda out, x, y: 1.0 / y,           # ∂(x/y)/∂x = 1/y
              lambda out, x, y: negative(out / y)],  # ∂(x/y)/∂y = -x/y² = -out/y
    uses=[(1,), ("out", 1)])

negative = elementwise_primitive(
    "negative", lambda x: -x,
    partials=[NEGATE], uses=[()])


def _power_dx(out: Any, x: Any, y: Any) -> Any:
    """∂(x^y)/∂x = y · x^(y-1), with the common constant exponents made cheap."""
    if isinstance(y, numbers.Number):
        if y == 2:
            return 2.0 * x
        if y == 1:
            return None
        return y * x ** (y - 1)
    # named ops: a raw array operator (array_api_strict) rejects a traced right operand
    return multiply(y, power(x, subtract(y, 1.0)))


def _power_dy(out: Any, x: Any, y: Any) -> Any:
    """∂(x^y)/∂y = x^y · log x, taken as 0 where x = 0 (the limit for y > 0)."""
    safe_x = where(_xp().asarray(raw(x) == 0), 1.0, x)  # asarray: x may be a Python number
    return out * log(safe_x)


power = elementwise_primitive(
    "power", lambda x, y: x ** y,
    partials=[_power_dx, _power_dy], uses=[(0, 1), ("out", 0)])


def _maximum_dx(out: Any, x: Any, y: Any) -> Any:
    """∂max(x, y)/∂x: 1 where x > y, 0 where x < y, and 1/2 at ties (a subgradient)."""
    rx, ry = raw(x), raw(y)
    return _float_mask(rx > ry) + 0.5 * _float_mask(rx == ry)


maximum = elementwise_primitive(
    "maximum", lambda x, y: _xp().maximum(_as_array(x), _as_array(y)),
    partials=[_maximum_dx, lambda out, x, y: _maximum_dx(out, y, x)],
    uses=[(0, 1), (0, 1)])


# ---------------------------------------------------------------------------------------------
# where(cond, x, y): cond selects, and is not differentiated
# ---------------------------------------------------------------------------------------------


def _where_impl(cond: Any, x: Any, y: Any) -> Any:
    return _xp().where(cond, _as_array(x), _as_array(y))


def _where_jvp(tangents: Sequence[Any], args: Sequence[Any], out: Any) -> Any:
    cond, x, y = args
    rank = len(shape_of(out))
    t_x, t_y = tangents[1], tangents[2]
    k = shape_of(t_x if t_x is not None else t_y)[0]
    t_x = 0.0 if t_x is None else align_tangent(t_x, ndim_of(x), rank)
    t_y = 0.0 if t_y is None else align_tangent(t_y, ndim_of(y), rank)
    result = where(cond, t_x, t_y)
    target = (k, *shape_of(out))
    if shape_of(result) != target:
        from .shapes import broadcast_to

        result = broadcast_to(result, target)
    return result


def _where_save(args: Sequence[Any], out: Any, needs: Sequence[bool]) -> Any:
    cond, x, y = args
    return cond, shape_of(x), shape_of(y)


def _where_vjp(g: Any, residuals: Any, needs: Sequence[bool]) -> list[Any]:
    cond, x_shape, y_shape = residuals
    return [
        None,
        unbroadcast(where(cond, g, 0.0), x_shape) if needs[1] else None,
        unbroadcast(where(cond, 0.0, g), y_shape) if needs[2] else None,
    ]


_where_p = Primitive("where", _where_impl, jvp=_where_jvp, vjp=_where_vjp, save=_where_save,
                     broadcasts=True, elementwise=True)


def where(condition: Any, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` holds, else ``y`` (broadcasting). The condition is a constant:
    the derivative flows to whichever branch was chosen, elementwise."""
    if not getattr(condition, "keep_as_condition", False):  # perturbed booleans stay boxed
        condition = raw(condition)
    return _where_p(condition, x, y)


# ---------------------------------------------------------------------------------------------
# Unary functions
# ---------------------------------------------------------------------------------------------


def _unary(name: str, impl: Callable[[Any], Any], partial: Partial, uses: Sequence) -> Primitive:
    return elementwise_primitive(name, impl, [partial], [uses])


exp = _unary("exp", lambda x: _xp().exp(x), lambda out, x: out, ["out"])       # (eˣ)' = eˣ
log = _unary("log", lambda x: _xp().log(x), lambda out, x: 1.0 / x, [0])       # (log x)' = 1/x
log1p = _unary("log1p", lambda x: _xp().log1p(x),
               lambda out, x: 1.0 / (1.0 + x), [0])                          # 1/(1+x)
expm1 = _unary("expm1", lambda x: _xp().expm1(x), lambda out, x: out + 1.0, ["out"])  # eˣ
sqrt = _unary("sqrt", lambda x: _xp().sqrt(x), lambda out, x: 0.5 / out, ["out"])  # 1/(2√x)
sin = _unary("sin", lambda x: _xp().sin(x), lambda out, x: cos(x), [0])
cos = _unary("cos", lambda x: _xp().cos(x), lambda out, x: negative(sin(x)), [0])
tanh = _unary("tanh", lambda x: _xp().tanh(x),
              lambda out, x: 1.0 - out * out, ["out"])                        # 1 - tanh²


def _sigmoid_impl(x: Any) -> Any:
    """σ(x) = 1/(1+e^{-x}), evaluated without overflow for large |x|."""
    b = _backend._current[-1]
    e = b.xp.exp(-b.xp.abs(x))
    # numerator e^{-|x|} for x < 0 and 1 for x >= 0 (where e <= 1): no branch, no overflow
    return b.xp.maximum(e, b.xp.astype(x >= 0, e.dtype)) / (1.0 + e)


sigmoid = _unary("sigmoid", _sigmoid_impl, lambda out, x: out * (1.0 - out), ["out"])  # σ(1-σ)


def _softplus_impl(x: Any) -> Any:
    """log(1 + eˣ) = max(x, 0) + log1p(e^{-|x|}), stable for large |x|."""
    xp = _xp()
    return xp.maximum(x, _as_array(0.0)) + xp.log1p(xp.exp(-xp.abs(x)))


softplus = _unary("softplus", _softplus_impl, lambda out, x: sigmoid(x), [0])  # σ(x)


def _sign_of(x: Any) -> Any:
    return _xp().sign(raw(x))


abs = _unary("abs", lambda x: _xp().abs(x), lambda out, x: _sign_of(x), [0])  # noqa: A001

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf = _unary("erf", lambda x: _backend._current[-1].erf(x),
             lambda out, x: _TWO_OVER_SQRT_PI * exp(negative(x * x)), [0])  # (2/√π) e^{-x²}
gammaln = _unary("gammaln", lambda x: _backend._current[-1].gammaln(x),
                 lambda out, x: polygamma_p(x, n=0), [0])                   # ψ(x)
polygamma_p = _unary("polygamma", lambda x, n: _backend._current[-1].polygamma(n, x),
                     lambda out, x, n: polygamma_p(x, n=n + 1), [0])        # ψ⁽ⁿ⁾' = ψ⁽ⁿ⁺¹⁾
