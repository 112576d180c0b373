"""Tracing: run a function once and write down every primitive it binds.

Tracing opens a level like any transform, run by a :class:`TraceEngine`. Its boxes, the
:class:`Tracer`\\ s, stand for the function's inputs; :func:`minidiff.core.bind` hands every
primitive applied to them to the engine, which computes the value on the concrete arrays (so
the first call's result comes out of its trace) and appends one equation to the program. AD
levels opened inside the traced function (``jit(grad(f))``) box tracers in turn: their rules
run ops on tracers, so the derivative passes are recorded too.

The engine is a *staging* engine (``stages = True``): it follows values, not derivatives. It
sees every primitive, piecewise-constant ones included (``tracks_jumps = True``), because a
comparison's result is data the program must recompute; and ``stop_gradient`` keeps its box
(:func:`minidiff.core.without_derivatives`), recording the cut instead of baking in a value.

Tracing is honest. Inside a tracer is a :class:`JitTracedValue`, which has a shape and a dtype
but refuses to give up its numbers: ``bool()``, ``float()``, an index, ``np.asarray`` or NumPy
arithmetic on :func:`minidiff.core.raw` of a traced value raise a :class:`JitError` that says
what to use instead (``md.where``, ``static_argnums``), since a program traced once could not
repeat a decision made on the first call's values. So do indices computed from traced values
(shapes that depend on data), values of an enclosing transform captured from the function's
closure (their derivative would be lost), and tracers that escape the function and are used
after the trace has ended.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from ..core import (
    Box,
    Engine,
    Level,
    Primitive,
    TracerConversionError,
    bind,
    close_level,
    open_level,
)
from ..reverse import copy_array, is_mutable_array, same_values
from .program import Const, Equation, Program, Var

__all__ = ["JitError", "JitTracedValue", "Tracer", "TraceEngine", "trace", "compare_traces"]


class JitError(TracerConversionError):
    """Something ``md.jit`` cannot trace honestly (the message says what to do instead): a
    traced value that would become a Python or NumPy value, or a program that could not
    repeat what the function did."""


_BRANCH_HELP = (
    "A program is traced once and replayed for every call with the same argument shapes, so "
    "a decision taken on one call's values cannot be recorded. To choose elementwise use "
    "md.where(condition, x, y); to branch in Python on an argument's value mark it static, "
    "md.jit(f, static_argnums=...) (f is then traced again for each value).")


class JitTracedValue:
    """What :func:`minidiff.core.raw` finds inside a tracer: a shape and a dtype, no numbers.

    The concrete value of the first call is kept for the trace's own use only; anything that
    would read it from outside the trace raises :class:`JitError`.
    """

    __slots__ = ("concrete", "var", "engine")
    __array_priority__ = 2000

    def __init__(self, concrete: Any, var: Var, engine: TraceEngine) -> None:
        self.concrete = concrete
        self.var = var
        self.engine = engine

    shape = property(lambda self: self.var.shape)
    dtype = property(lambda self: self.var.dtype)
    ndim = property(lambda self: len(self.var.shape))

    @property
    def size(self) -> int:
        n = 1
        for d in self.var.shape:
            n *= d
        return n

    def __len__(self) -> int:
        if not self.var.shape:
            raise TypeError("len() of a 0-d array")
        return self.var.shape[0]

    def _refuse(self, what: str, help_text: str = _BRANCH_HELP) -> JitError:
        where = f"md.jit({self.engine.name})"
        if self.engine.finished:
            return JitError(
                f"{where}: a value traced inside {self.engine.name} ({self.var.type_text}) "
                f"escaped it (kept in a global, a closure or an attribute) and was used after "
                f"the trace ended ({what}); return it from the function instead")
        return JitError(f"{where}: {what} needs the value of a traced array "
                        f"({self.var.type_text}) while {self.engine.name} is being traced. "
                        f"{help_text}")

    def __bool__(self) -> bool:
        raise self._refuse("Python control flow (if, while, and, or, bool())")

    def __float__(self) -> float:
        raise self._refuse("float()")

    def __int__(self) -> int:
        raise self._refuse("int()")

    def __index__(self) -> int:
        raise self._refuse("using it as an index or a size")

    def __complex__(self) -> complex:
        raise self._refuse("complex()")

    def __iter__(self) -> Any:
        raise self._refuse("iterating over the raw array")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse(
            "converting it to a NumPy array (np.asarray, to_host, or an array library called "
            "on minidiff.core.raw(x))",
            "Compute with minidiff ops, which the trace records; if this comes from inside a "
            "minidiff op, that op does not support md.jit yet.")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        raise self._refuse(f"NumPy's {ufunc.__name__} on the raw array",
                           "Compute with minidiff ops, which the trace records.")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise self._refuse(f"NumPy's {func.__name__} on the raw array",
                           "Compute with minidiff ops, which the trace records.")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse("indexing the raw array",
                           "Index the traced value itself (x[...] on the minidiff value).")

    def __repr__(self) -> str:
        state = "escaped from" if self.engine.finished else "traced in"
        return f"<{self.var.type_text} {state} md.jit({self.engine.name})>"

    __hash__ = object.__hash__


def _refusing_operator(name: str) -> Callable[..., Any]:
    def method(self: JitTracedValue, *other: Any) -> Any:
        raise self._refuse(f"the operator {name} on the raw array (minidiff.core.raw(x))",
                           "Use the traced value itself, or minidiff ops, which the trace "
                           "records; if this comes from inside a minidiff op, that op does "
                           "not support md.jit yet.")
    method.__name__ = name
    return method


for _name in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "pow",
              "rpow", "matmul", "rmatmul", "neg", "abs", "eq", "ne", "lt", "le", "gt", "ge",
              "and", "rand", "or", "ror", "invert", "mod", "floordiv"):
    setattr(JitTracedValue, f"__{_name}__", _refusing_operator(f"__{_name}__"))
JitTracedValue.__hash__ = object.__hash__


class Tracer(Box):
    """A value of the function being traced: a box around a :class:`JitTracedValue`."""

    __slots__ = ("var",)

    def __init__(self, value: JitTracedValue, level: Level) -> None:
        self.value = value
        self.level = level
        self.var = value.var

    def __repr__(self) -> str:
        return f"Tracer({self.var.type_text})"

    # conversions ask the traced value, which explains what md.jit needs instead
    def __bool__(self) -> bool:
        return bool(self.value)

    def __index__(self) -> int:
        return operator.index(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __complex__(self) -> complex:
        return complex(self.value)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self.value.__array__(*args, **kwargs)


class TraceEngine(Engine):
    """Records the primitives bound at one tracing level as the equations of a program."""

    tracks_jumps = True  # comparisons, sign, floor: their outputs are data the program recomputes
    stages = True        # follows values, not derivatives (see minidiff.core.without_derivatives)

    def __init__(self, name: str, executor: str = "replay") -> None:
        self.name = name
        self.executor = executor  # what will run the program (a scan traced inside inherits it)
        self.inputs: list[Var] = []
        self.equations: list[Equation] = []
        self.finished = False
        self._consts: dict[int, tuple[Any, Const]] = {}  # id of a captured array -> (it,
        # its Const): one each

    def new_input(self, concrete: Any) -> Tracer:
        var = Var(tuple(getattr(concrete, "shape", ())), concrete.dtype)
        self.inputs.append(var)
        return Tracer(JitTracedValue(concrete, var, self), self)

    def process(self, primitive: Primitive, args: tuple, params: dict) -> Any:
        if self.finished:
            raise JitError(
                f"md.jit({self.name}): a value traced inside {self.name} escaped it (kept in a "
                f"global, a closure or an attribute) and was passed to {primitive.name} after "
                f"the trace ended; return it from the function instead")
        inline = getattr(primitive, "inline_in_trace", None)
        if inline is not None:  # a jitted call inside a traced function: record its equations
            return inline(args, params)
        atoms, concrete = [], []
        for a in args:
            atom, value = self._atom(a, primitive.name)
            atoms.append(atom)
            concrete.append(value)
        _check_params(self.name, primitive.name, params)
        out = bind(primitive, *concrete, **params)  # the raw computation, as eager runs it
        params = {k: v.frozen(self._baked) if hasattr(v, "frozen") else self._baked(v)
                  for k, v in params.items()}  # an index array: baked like a constant
        if primitive.multiple_results:  # one equation, one variable per result
            outs = [Var(tuple(getattr(o, "shape", ())), getattr(o, "dtype", type(o)))
                    for o in out]
            self.equations.append(Equation(primitive, atoms, params, outs))
            return tuple(Tracer(JitTracedValue(o, v, self), self) for o, v in zip(out, outs))
        if isinstance(out, tuple | list):
            raise JitError(f"md.jit({self.name}): the primitive {primitive.name} returned "
                           f"several values but does not declare multiple_results, so a "
                           f"traced program cannot record it")
        var = Var(tuple(getattr(out, "shape", ())), getattr(out, "dtype", type(out)))
        self.equations.append(Equation(primitive, atoms, params, var))
        return Tracer(JitTracedValue(out, var, self), self)

    def _atom(self, a: Any, op: str) -> tuple[Any, Any]:
        """The program atom for one argument, and its concrete value."""
        if isinstance(a, Tracer) and a.level is self:
            return a.var, a.value.concrete
        if isinstance(a, JitTracedValue) and a.engine is self:  # raw() of one of ours
            return a.var, a.concrete
        if isinstance(a, Box | JitTracedValue):
            raise _captured_error(self.name, op, a)
        if hasattr(a, "shape"):
            return self._const(a), a
        return Const(a), a

    def _const(self, a: Any) -> Const:
        """The ``Const`` of a captured array, holding its value when it is read (a copy of an
        array that could be updated in place): a program bakes what it closes over. Reads of
        one array share a ``Const`` while its values stay the same."""
        held = self._consts.get(id(a))
        if held is None or held[0] is not a or (held[1].value is not a
                                                and not same_values(held[1].value, a)):
            value = copy_array(a) if is_mutable_array(a) else a
            held = self._consts[id(a)] = (a, Const(value))
        return held[1]

    def _baked(self, value: Any) -> Any:
        return self._const(value).value if hasattr(value, "shape") else value

    def output_atom(self, x: Any) -> tuple[Any, Any]:
        """The program atom and concrete value of one output of the traced function."""
        if isinstance(x, Box | JitTracedValue) and not (
                (isinstance(x, Tracer) and x.level is self)
                or (isinstance(x, JitTracedValue) and x.engine is self)):
            raise _captured_error(self.name, "the function's result", x)
        return self._atom(x, "the result")


def _captured_error(name: str, op: str, a: Any) -> JitError:
    level = getattr(a, "level", None)
    engine = type(level).__name__ if level is not None else "another md.jit trace"
    return JitError(
        f"md.jit({name}): {op} received a {type(a).__name__} of an enclosing transform "
        f"({engine}) that {name} reads from outside its arguments (a closure, a global, an "
        f"attribute). The traced program would hold it as a constant and lose its derivative. "
        f"Pass it to the jitted function as an argument instead.")


def _check_params(name: str, op: str, params: dict) -> None:
    """Refuse parameters that hold traced values (a data-dependent index or shape)."""
    for key, value in params.items():
        if _holds_traced(value):
            raise JitError(
                f"md.jit({name}): the parameter {key!r} of {op} holds a traced value: an index "
                f"or shape computed from traced values (a boolean mask, integer positions) makes "
                f"the result's shape, or the elements it reads, depend on the data, which a "
                f"program traced once cannot follow. Keep shapes fixed with "
                f"md.where(mask, x, 0.0), or pass the index as a static argument "
                f"(md.jit(f, static_argnums=...)).")


def _holds_traced(value: Any, depth: int = 0) -> bool:
    if isinstance(value, Box | JitTracedValue):
        return True
    if depth > 4:
        return False
    if isinstance(value, tuple | list):
        return any(_holds_traced(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_traced(v, depth + 1) for v in value.values())
    items = getattr(value, "items", None)  # getitem's index
    if isinstance(items, tuple):
        return any(_holds_traced(v, depth + 1) for v in items)
    return False


def trace(fn: Callable[..., Sequence[Any]], concrete_inputs: Sequence[Any], name: str, *,
          executor: str = "replay", backend: str = "numpy") -> tuple[Program, list[Any]]:
    """Trace ``fn(engine, *tracers) -> flat outputs`` on concrete inputs.

    ``fn`` gets the engine too, so that it can add inputs as it goes
    (``engine.new_input(value)``, as the VJP does for the cotangents of the outputs it finds
    differentiable). Returns the program and the concrete outputs of this run (the values
    eager mode would have computed). Outputs that are not traced become constant outputs.
    """
    engine = TraceEngine(name, executor)
    level = open_level(engine)
    try:
        tracers = [engine.new_input(x) for x in concrete_inputs]
        outs = list(fn(engine, *tracers))
    finally:
        close_level(level)
        # The level stays marked active, so that a tracer that escaped (stored somewhere and
        # used later) still reaches this engine, which explains the mistake instead of
        # computing with a stale value.
        level.active = True
        engine.finished = True
    atoms, values = [], []
    for o in outs:
        atom, value = engine.output_atom(o)
        atoms.append(atom)
        values.append(value)
    program = Program(name, engine.inputs, engine.equations, atoms, executor=executor,
                      backend=backend)
    return program, values


# ---------------------------------------------------------------------------------------------
# Two traces of one function must agree (hidden state, e.g. a captured random generator)
# ---------------------------------------------------------------------------------------------


def compare_traces(first: Program, second: Program, same: Callable[[Any, Any], bool]) -> str:
    """'' when two traces of one function made the same program, else what differed.

    ``same(a, b)`` compares two constant arrays by value. A function that reads hidden state
    (draws from a random generator it closes over, a counter, the clock) gives constants, or
    equations, that differ from one trace to the next: a replay would silently repeat the
    first trace's values.
    """
    if len(first.equations) != len(second.equations):
        return (f"the first trace recorded {len(first.equations)} equations and the second "
                f"{len(second.equations)}")
    index, index2 = ({id(v): i for i, v in enumerate(
        [*p.inputs, *(v for e in p.equations for v in e.outs)])} for p in (first, second))
    for k, (a, b) in enumerate(zip(first.equations, second.equations), 1):
        if a.primitive is not b.primitive or len(a.inputs) != len(b.inputs):
            return f"equation {k} was {a.primitive.name} the first time and {b.primitive.name} " \
                   f"the second"
        bodies, bodies2 = a.programs(), b.programs()
        for body, body2 in zip(bodies, bodies2):  # a scan's body: traced once, in each trace
            differs = "" if body is body2 else compare_traces(body, body2, same)
            if differs:
                return f"the body of {a.primitive.name} (equation {k}): {differs}"
        for x, y in zip(a.inputs, b.inputs):
            if isinstance(x, Var) != isinstance(y, Var):
                return f"an argument of equation {k} ({a.primitive.name}) changed"
            if isinstance(x, Var):
                if index.get(id(x)) != index2.get(id(y)):
                    return f"an argument of equation {k} ({a.primitive.name}) changed"
            elif x.value is not y.value and not same(x.value, y.value):
                if hasattr(x.value, "shape"):
                    kind = f"a constant {Var(tuple(x.value.shape), x.value.dtype).type_text}"
                else:
                    kind = f"the number {x.value!r}"
                return f"{kind} passed to {a.primitive.name} (equation {k}) changed"
    if len(first.outputs) != len(second.outputs):
        return "the number of results"
    for j, (x, y) in enumerate(zip(first.outputs, second.outputs), 1):
        if isinstance(x, Var) != isinstance(y, Var) or (
                index.get(id(x)) != index2.get(id(y)) if isinstance(x, Var)
                else x.value is not y.value and not same(x.value, y.value)):
            return f"result {j}"
    return ""

