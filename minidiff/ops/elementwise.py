"""Elementwise primitives: one derivative per argument, shared by JVP and VJP.

For an elementwise ``y = f(x_1, ..., x_n)`` the Jacobian is diagonal, so each rule is one
*partial* ∂y/∂x_i, an array of ``y``'s shape, and both modes follow from it:

    JVP:  ẏ  = Σ_i  ∂y/∂x_i · ẋ_i
    VJP:  x̄_i = unbroadcast(ȳ · ∂y/∂x_i, shape of x_i)

A partial names the values it reads as its parameters: the op's argument names (from ``impl``'s
signature) and ``out``, the op's value. ``multiply`` (``impl(x, y)``) has partials
``lambda y: y`` and ``lambda x: x``; ``exp`` has ``lambda out: out``. The tape keeps exactly the
values named by the partials of the arguments being differentiated, and a partial is called
with those values only, so what is kept cannot drift from what is read: ``exp`` keeps its
output, ``add`` keeps nothing, ``x * c`` with constant ``c`` keeps just ``c``.
"""

from __future__ import annotations

import inspect
import numbers
import operator
from collections.abc import Callable, Sequence
from typing import Any

from ..backend import get_backend
from ..core import Box, Primitive, ndim_of, register_ops, shape_of, without_derivatives
from .comparisons import equal, greater, sign
from .constants import zeros
from .linear import align_tangent, broadcast_to, unbroadcast

__all__ = [
    "elementwise_primitive", "NEGATE",
    "add", "subtract", "multiply", "divide", "power", "negative", "maximum", "where",
    "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh", "sigmoid", "softplus", "abs",
]

Partial = Callable[..., Any]


class Static:
    """Residual metadata (shapes) that holds no array: the tape's byte count skips it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


NEGATE = object()  # a partial derivative of -1, applied by negation rather than multiplication
OUT = 0            # in a partial's reads, position 0 of (out, *args) is the op's value


def _xp() -> Any:
    return get_backend().xp


def float_mask(mask: Any) -> Any:
    """A raw boolean array as float64 zeros and ones (a constant: its derivative is zero)."""
    b = get_backend()
    return b.xp.astype(mask, b.float_dtype)


def as_array(x: Any) -> Any:
    """Python numbers as float64 arrays, for functions that (in the standard) want arrays."""
    if isinstance(x, numbers.Number):
        b = get_backend()
        return b.xp.asarray(float(x), dtype=b.float_dtype)
    return x


# ---------------------------------------------------------------------------------------------
# Partials that name what they read
# ---------------------------------------------------------------------------------------------


def _impl_signature(name: str, impl: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """``impl``'s argument names (positional) and static parameter names (keyword-only)."""
    args, statics = [], []
    for p in inspect.signature(impl).parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            args.append(p.name)
        elif p.kind is p.KEYWORD_ONLY:
            statics.append(p.name)
        else:
            raise TypeError(f"{name}: an elementwise impl takes named arguments (static "
                            f"parameters keyword-only), not *{p.name}")
    return args, statics


def _reader(op: str, wrt: str, partial: Partial, args: list[str],
            statics: list[str]) -> tuple[frozenset, Callable[[tuple, dict], Any]]:
    """What one partial reads, and a caller that passes it exactly that.

    Returns ``(reads, call)``: ``reads`` are positions in ``values = (out, *args)``, and
    ``call(values, params)`` calls the partial with the values and static parameters its own
    parameters name, in its order. A partial naming anything else, or referring to an argument
    it does not name, is refused here, when the op is defined."""
    names = list(inspect.signature(partial).parameters)
    known = {"out": OUT, **{a: i + 1 for i, a in enumerate(args)}}
    for n in names:
        if n not in known and n not in statics:
            raise TypeError(
                f"{op}: the partial ∂{op}/∂{wrt} has a parameter {n!r}, which is neither an "
                f"argument of {op} ({', '.join(args)}), 'out' nor a static parameter"
                f"{' (' + ', '.join(statics) + ')' if statics else ''}")
    code = getattr(partial, "__code__", None)
    if code is not None:
        hidden = (set(known) - set(names)) & set(code.co_names + code.co_freevars)
        if hidden:
            raise TypeError(
                f"{op}: the partial ∂{op}/∂{wrt} refers to {', '.join(sorted(hidden))} without "
                f"naming it as a parameter, so the tape would not keep it; add it to the "
                f"partial's parameters")
    reads = frozenset(known[n] for n in names if n in known)
    if any(n in statics for n in names):
        order = [(n in statics, n if n in statics else known[n]) for n in names]
        return reads, lambda values, params: partial(
            *[params[k] if static else values[k] for static, k in order])
    picks = [known[n] for n in names]
    if not picks:
        return reads, lambda values, params: partial()
    if len(picks) == 1:
        (j,) = picks
        return reads, lambda values, params: partial(values[j])
    if len(picks) == 2:
        i, j = picks
        return reads, lambda values, params: partial(values[i], values[j])
    get = operator.itemgetter(*picks)
    return reads, lambda values, params: partial(*get(values))


def elementwise_primitive(name: str, impl: Callable[..., Any],
                          partials: Sequence[Partial | None], **executor: Any) -> Primitive:
    """Build an elementwise primitive from its partial derivatives.

    Args:
        name: NumPy name of the op.
        impl: the op on raw arrays; its positional parameters name the arguments and its
            keyword-only parameters the static ones (as ``polygamma``'s order ``n``).
        partials: ``partials[i]`` is ∂out/∂args[i], a function whose parameters name the values
            it reads (argument names, ``out``, static parameters), in any order. Two constant
            partials are given directly instead, so no pass multiplies by them: None for 1
            (as in ``add``) and ``NEGATE`` for -1 (as in ``subtract``). A partial may also
            return None for 1.
        executor: the executor fields of :class:`~minidiff.core.Primitive` (``fresh``,
            ``into``, ``loop``, ...).
    """
    arg_names, statics = _impl_signature(name, impl)
    if len(partials) != len(arg_names):
        raise TypeError(f"{name}: {len(partials)} partial(s) for {len(arg_names)} argument(s) "
                        f"({', '.join(arg_names)})")
    reads: list[frozenset] = []   # what each partial reads, as positions in (out, *args)
    readers: list[Any] = []       # None (1), NEGATE (-1), or call(values, params)
    for partial, wrt in zip(partials, arg_names):
        if partial is None or partial is NEGATE:
            reads.append(frozenset())
            readers.append(partial)
        else:
            read, call = _reader(name, wrt, partial, arg_names, statics)
            reads.append(read)
            readers.append(call)
    n_args = len(arg_names)

    def jvp(tangents: Sequence[Any], args: Sequence[Any], out: Any, **params: Any) -> Any:
        out_shape = shape_of(out)
        rank = len(out_shape)
        values = (out, *args)
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            t = align_tangent(t, ndim_of(args[i]), rank)
            reader = readers[i]
            if reader is NEGATE:
                total = negative(t) if total is None else subtract(total, t)
                continue
            p = None if reader is None else reader(values, params)
            term = t if p is None else multiply(t, p)
            total = term if total is None else add(total, term)
        target = (shape_of(total)[0], *out_shape)
        if shape_of(total) != target:
            total = broadcast_to(total, target)
        return total

    keep_for: dict[tuple, tuple[tuple[bool, ...], bool]] = {}  # needs -> what to keep

    def save(args: Sequence[Any], out: Any, needs: Sequence[bool], **params: Any) -> Any:
        plan = keep_for.get(needs)
        if plan is None:
            read: set = set()
            for i in range(n_args):
                if needs[i]:
                    read |= reads[i]
            plan = keep_for[needs] = (tuple(i + 1 in read for i in range(n_args)), OUT in read)
        keep_args, keep_out = plan
        kept = tuple([a if keep else None for a, keep in zip(args, keep_args)])
        return kept, (out if keep_out else None), Static([shape_of(a) for a in args])

    def vjp(g: Any, residuals: Any, needs: Sequence[bool], **params: Any) -> list[Any]:
        kept, out, shapes = residuals
        shapes = shapes.value
        values = (out, *kept)
        grads: list[Any] = []
        for i in range(n_args):
            if not needs[i]:
                grads.append(None)
                continue
            reader = readers[i]
            if reader is None:
                gi = g
            elif reader is NEGATE:  # negate after summing: -Σg = Σ(-g) exactly, on fewer
                grads.append(negative(unbroadcast(g, shapes[i])))
                continue
            else:
                p = reader(values, params)
                gi = g if p is None else multiply(g, p)
            grads.append(unbroadcast(gi, shapes[i]))
        return grads

    return Primitive(name, impl, jvp=jvp, vjp=vjp, save=save, broadcasts=n_args > 1,
                     elementwise=True, **executor)


# ---------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------

add = elementwise_primitive("add", lambda x, y: x + y, partials=[None, None],
                            fresh=True, into="add", loop="({0} + {1})")

subtract = elementwise_primitive("subtract", lambda x, y: x - y, partials=[None, NEGATE],
                                 fresh=True, into="subtract", loop="({0} - {1})")

multiply = elementwise_primitive(
    "multiply", lambda x, y: x * y,
    partials=[lambda y: y,                     # ∂(xy)/∂x = y
              lambda x: x],                    # ∂(xy)/∂y = x
    fresh=True, into="multiply", loop="({0} * {1})")

divide = elementwise_primitive(
    "divide", lambda x, y: x / y,
    partials=[lambda y: 1.0 / y,               # ∂(x/y)/∂x = 1/y
              lambda out, y: negative(out / y)],  # ∂(x/y)/∂y = -x/y² = -out/y
    fresh=True, into="divide", loop="({0} / {1})")

negative = elementwise_primitive("negative", lambda x: -x, partials=[NEGATE],
                                 fresh=True, into="negative", loop="(-{0})")


def _power_dx(x: Any, y: Any) -> Any:
    """∂(x^y)/∂x = y · x^(y-1), and exactly 0 where y = 0 (x⁰ = 1 is constant, even at x = 0,
    where the formula would give 0 · 0⁻¹ = NaN), with the common constant exponents made cheap.

    For an array exponent the zero-exponent entries also get a safe base of 1 inside the
    formula, so that no NaN or infinity arises there for a derivative of this partial to
    multiply by zero (NaN · 0 is NaN: masking only the result would not keep it out).
    """
    if isinstance(y, numbers.Number):
        if y == 0:
            return 0.0
        if y == 2:
            return 2.0 * x
        if y == 1:
            return None
        return y * x ** (y - 1)
    zero = _is_zero(y)
    safe_x = where(zero, 1.0, x)
    # named ops: a raw array operator (array_api_strict) rejects a traced right operand
    return where(zero, 0.0, multiply(y, power(safe_x, subtract(y, 1.0))))


def _power_dy(out: Any, x: Any) -> Any:
    """∂(x^y)/∂y = x^y · log x, taken as 0 where x = 0 (the limit for y > 0)."""
    safe_x = where(_is_zero(x), 1.0, x)
    return out * log(safe_x)


def _is_zero(v: Any) -> Any:
    """The mask v == 0, a constant: a raw array, or (under vmap) one mask per batch element."""
    v = without_derivatives(v)
    if isinstance(v, Box):
        return equal(v, 0.0)
    return _xp().asarray(v == 0)  # asarray: v may be a Python number


power = elementwise_primitive("power", lambda x, y: x ** y, partials=[_power_dx, _power_dy],
                              fresh=True)


def _maximum_dx(x: Any, y: Any) -> Any:
    """∂max(x, y)/∂x: 1 where x > y, 0 where x < y, and 1/2 at ties (a subgradient). A constant
    (comparisons carry no derivative), built from ops so that md.jit records it."""
    x, y = without_derivatives(x), without_derivatives(y)
    return where(greater(x, y), 1.0, where(equal(x, y), 0.5, 0.0))


maximum = elementwise_primitive(
    "maximum", lambda x, y: _xp().maximum(as_array(x), as_array(y)),
    partials=[_maximum_dx, lambda x, y: _maximum_dx(y, x)], fresh=True, into="maximum",
    scalar_loop="({0} if ({0} >= {1} or {0} != {0}) else {1})")  # NaN wins, as in NumPy


# ---------------------------------------------------------------------------------------------
# where(cond, x, y): cond selects, and is not differentiated
# ---------------------------------------------------------------------------------------------


def _where_impl(cond: Any, x: Any, y: Any) -> Any:
    # Python numbers stay numbers (floats): the backend's select has fast paths for them
    return get_backend().select(cond, _float_number(x), _float_number(y))


def _float_number(v: Any) -> Any:
    return float(v) if isinstance(v, numbers.Number) and type(v) is not float else v


def _where_jvp(tangents: Sequence[Any], args: Sequence[Any], out: Any) -> Any:
    cond, x, y = args
    rank = len(shape_of(out))
    t_cond, t_x, t_y = tangents
    if t_x is None and t_y is None:  # only the (never differentiated) condition is traced:
        # a zero tangent, as a broadcast view of one zero (no K×N array is written)
        return broadcast_to(zeros(()), (shape_of(t_cond)[0], *shape_of(out)))
    k = shape_of(t_x if t_x is not None else t_y)[0]
    t_x = 0.0 if t_x is None else align_tangent(t_x, ndim_of(x), rank)
    t_y = 0.0 if t_y is None else align_tangent(t_y, ndim_of(y), rank)
    result = where(cond, t_x, t_y)
    target = (k, *shape_of(out))
    if shape_of(result) != target:
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
                     broadcasts=True, elementwise=True, fresh=True, into="where",
                     direct="where", loop="({1} if {0} else {2})", selects=True,
                     coerce_numbers=_float_number)


def where(condition: Any, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` holds, else ``y`` (broadcasting). The condition is never
    differentiated: the derivative flows to whichever branch was chosen, elementwise."""
    return _where_p(condition, x, y)


# ---------------------------------------------------------------------------------------------
# Unary functions
# ---------------------------------------------------------------------------------------------


def _unary(name: str, impl: Callable[[Any], Any], partial: Partial, **executor: Any
           ) -> Primitive:
    """An elementwise function of one argument; unless told otherwise its result is fresh and
    the backend's ``into`` kernel of the same name computes it into a buffer."""
    return elementwise_primitive(name, impl, [partial], **{"fresh": True, "into": name,
                                                            **executor})


exp = _unary("exp", lambda x: _xp().exp(x), lambda out: out,               # (eˣ)' = eˣ
             scalar_loop="math.exp({0})")
log = _unary("log", lambda x: _xp().log(x), lambda x: 1.0 / x,             # (log x)' = 1/x
             scalar_loop="math.log({0})")
log1p = _unary("log1p", lambda x: _xp().log1p(x), lambda x: 1.0 / (1.0 + x),  # 1/(1+x)
               scalar_loop="math.log1p({0})")
expm1 = _unary("expm1", lambda x: _xp().expm1(x), lambda out: out + 1.0,   # eˣ
               scalar_loop="math.expm1({0})")
sqrt = _unary("sqrt", lambda x: _xp().sqrt(x), lambda out: 0.5 / out,     # 1/(2√x)
              loop="math.sqrt({0})")
sin = _unary("sin", lambda x: _xp().sin(x), lambda x: cos(x), scalar_loop="math.sin({0})")
cos = _unary("cos", lambda x: _xp().cos(x), lambda x: negative(sin(x)),
             scalar_loop="math.cos({0})")
tanh = _unary("tanh", lambda x: _xp().tanh(x), lambda out: 1.0 - out * out,  # 1 - tanh²
              scalar_loop="math.tanh({0})")


sigmoid = _unary("sigmoid", lambda x: get_backend().sigmoid(x),  # the backend's fast kernel
                 lambda out: out * (1.0 - out),                    # σ' = σ(1-σ)
                 scalar_loop="(1.0 / (1.0 + math.exp(-{0})))")


def _softplus_impl(x: Any) -> Any:
    """log(1 + eˣ) = max(x, 0) + log1p(e^{-|x|}), stable for large |x|."""
    xp = _xp()
    return xp.maximum(x, as_array(0.0)) + xp.log1p(xp.exp(-xp.abs(x)))


softplus = _unary("softplus", _softplus_impl, lambda x: sigmoid(x), into=None)  # σ(x)

abs = _unary("abs", lambda x: _xp().abs(x), lambda x: sign(x),  # noqa: A001  (|x|)' = sign x
             loop="abs({0})")

register_ops(add=add, subtract=subtract, multiply=multiply, divide=divide, power=power,
             negative=negative, abs=abs)
