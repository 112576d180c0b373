"""A traced program: the Wengert list as data.

Tracing a function (:mod:`minidiff.jit.tracing`) writes down every primitive it binds, in
order, as one :class:`Equation`

    v7: f64[1000] = multiply(v5, x2)

over typed variables (:class:`Var`: a shape and a dtype, no value) and constants
(:class:`Const`: arrays the function closed over, Python numbers). A :class:`Program` is the
list of equations with its inputs and outputs. It is plain data: it can be printed
(:meth:`Program.listing`, like JAX's ``make_jaxpr``), interpreted by minidiff ops
(:func:`minidiff.jit.derive.evaluate`, which is how a transform differentiates it), split,
pruned, and run by an executor with no per-op dispatch (:mod:`minidiff.jit.replay`,
:mod:`minidiff.jit.fusion`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from ..core import Primitive

__all__ = ["Var", "Const", "Equation", "Program", "dtype_name"]


class Var:
    """A variable of a program: what one primitive computed, or an input. Typed, no value."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype

    @property
    def type_text(self) -> str:
        """``f64[1000,3]``: dtype and shape, as the listing shows them."""
        return f"{dtype_name(self.dtype)}[{','.join(str(d) for d in self.shape)}]"

    def __repr__(self) -> str:
        return f"Var({self.type_text})"


class Const:
    """A constant argument: an array the traced function closed over, or a Python number."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def is_array(self) -> bool:
        return hasattr(self.value, "shape")

    def __repr__(self) -> str:
        return f"Const({self.value!r})"


Atom = Var | Const


class Equation:
    """``out = primitive(*inputs, **params)``: one row of the program.

    A primitive with several results (``Primitive.multiple_results``: a scan) makes one
    equation with several variables, ``outs``; its ``out`` is refused, so that a pass written
    for one result cannot silently read only the first.
    """

    __slots__ = ("primitive", "inputs", "params", "outs")

    def __init__(self, primitive: Primitive, inputs: Sequence[Atom], params: dict,
                 out: Var | Sequence[Var]) -> None:
        self.primitive = primitive
        self.inputs = tuple(inputs)
        self.params = params
        self.outs: tuple[Var, ...] = (out,) if isinstance(out, Var) else tuple(out)

    @property
    def multiple(self) -> bool:
        """Whether the primitive returns a tuple (bound, it gives one value per ``outs``)."""
        return self.primitive.multiple_results

    @property
    def out(self) -> Var:
        """The variable of an equation with one result."""
        if self.primitive.multiple_results:
            raise TypeError(f"the equation of {self.primitive.name} has {len(self.outs)} "
                            f"results: read Equation.outs")
        return self.outs[0]

    def programs(self) -> list[Program]:
        """The programs among its parameters (a scan's body)."""
        return [v for v in self.params.values() if isinstance(v, Program)]

    def __repr__(self) -> str:
        return f"Equation({self.primitive.name}, {len(self.inputs)} inputs)"


class Program:
    """A function as data: typed inputs, one equation per primitive, outputs.

    Attributes:
        name: what the listing calls it (``step``, ``jvp(step)``, ...).
        inputs: the input variables, in the order the flat arguments come.
        equations: in the order they ran (a topological order).
        outputs: one atom per flat output (a variable, or a constant the function returned).
        executor: the name of the executor that runs it (``"replay"``, ``"numba"``).
        backend: the name of the backend it was traced on (its constants are that backend's).
        derived: the programs derived from this one (JVP, forward and backward parts of the
            VJP), cached by :mod:`minidiff.jit.derive` per kind of use.
        compiled: what executors made of it, by executor and backend.
        compile_seconds: time executors spent compiling it.
    """

    def __init__(self, name: str, inputs: Sequence[Var], equations: Sequence[Equation],
                 outputs: Sequence[Atom], *, executor: str = "replay",
                 backend: str = "numpy") -> None:
        self.name = name
        self.inputs = list(inputs)
        self.equations = list(equations)
        self.outputs = list(outputs)
        self.executor = executor
        self.backend = backend
        self.derived: dict[Any, Any] = {}
        self.compiled: dict[Any, Any] = {}
        self.compile_seconds = 0.0

    # -- reading --------------------------------------------------------------------------------

    @property
    def n_equations(self) -> int:
        return len(self.equations)

    def atom_type(self, atom: Atom) -> tuple[tuple[int, ...], Any]:
        """(shape, dtype) of an atom (a Python number is a 0-d value of its own type)."""
        if isinstance(atom, Var):
            return atom.shape, atom.dtype
        value = atom.value
        return tuple(getattr(value, "shape", ())), getattr(value, "dtype", type(value))

    def names(self) -> dict[int, str]:
        """Readable names by ``id`` of each Var and array Const: inputs ``x1..``, computed
        values ``v1..``, array constants ``c1..`` (the Wengert list's names)."""
        names: dict[int, str] = {}
        for i, v in enumerate(self.inputs, 1):
            names[id(v)] = f"x{i}"
        n_const = n_var = 0
        for eqn in self.equations:
            for a in eqn.inputs:
                if isinstance(a, Const) and a.is_array and id(a) not in names:
                    n_const += 1
                    names[id(a)] = f"c{n_const}"
            for v in eqn.outs:
                n_var += 1
                names.setdefault(id(v), f"v{n_var}")
        for a in self.outputs:
            if isinstance(a, Const) and a.is_array and id(a) not in names:
                n_const += 1
                names[id(a)] = f"c{n_const}"
        return names

    def listing(self) -> str:
        """The program as text: a header with the typed inputs, one line per equation, the
        outputs (the teaching view of ``md.jit``, like JAX's ``make_jaxpr``).

        An equation whose parameters hold a program (a scan's body) lists it indented in
        braces after the equation's line; the body names its own variables (``x1`` is the
        body's first input, not the enclosing program's)."""
        return "\n".join(self._lines())

    def _lines(self) -> list[str]:
        names = self.names()

        def atom(a: Atom) -> str:
            if isinstance(a, Var) or (isinstance(a, Const) and a.is_array):
                return names[id(a)]
            return repr(a.value)

        typed = ", ".join(f"{names[id(v)]}: {v.type_text}" for v in self.inputs)
        lines = [f"program {self.name}({typed}):"]
        consts = []
        seen: set[int] = set()
        for a in _const_atoms(self):
            if id(a) not in seen:
                seen.add(id(a))
                shape, dtype = self.atom_type(a)
                consts.append(f"{names[id(a)]}: {Var(shape, dtype).type_text}")
        if consts:
            lines.append(f"  constants {', '.join(consts)}")
        for eqn in self.equations:
            args = [atom(a) for a in eqn.inputs]
            args += [f"{k}={param_text(v)}" for k, v in eqn.params.items()
                     if not isinstance(v, Program)]
            outs = ", ".join(f"{names[id(v)]}: {v.type_text}" for v in eqn.outs)
            line = f"  {outs} = {eqn.primitive.name}({', '.join(args)})"
            bodies = eqn.programs()
            if not bodies:
                lines.append(line)
                continue
            lines.append(line + " {")
            for body in bodies:
                lines += [f"    {text}" for text in body._lines()]
            lines.append("  }")
        lines.append(f"  return ({', '.join(atom(a) for a in self.outputs)}"
                     f"{',' if len(self.outputs) == 1 else ''})")
        return lines

    __str__ = listing

    def __repr__(self) -> str:
        return (f"<minidiff program {self.name}: {len(self.inputs)} inputs, "
                f"{len(self.equations)} equations, {len(self.outputs)} outputs>")

    def fingerprint(self) -> str:
        """A hash of the program's structure: primitives, wiring, parameters and types (not
        the constants' values). Executors key compiled kernels by it."""
        names = self.names()
        h = hashlib.sha256()
        h.update(repr([(v.shape, dtype_name(v.dtype)) for v in self.inputs]).encode())
        for eqn in self.equations:
            ins = [names.get(id(a)) or repr(a.value) for a in eqn.inputs]
            params = sorted((k, v.fingerprint() if isinstance(v, Program) else param_text(v))
                            for k, v in eqn.params.items())
            h.update(repr((eqn.primitive.name, id(eqn.primitive), ins, params,
                           [(v.shape, dtype_name(v.dtype)) for v in eqn.outs])).encode())
        h.update(repr([names.get(id(a)) or repr(a.value) for a in self.outputs]).encode())
        return h.hexdigest()[:16]


def _const_atoms(program: Program) -> Iterable[Const]:
    for eqn in program.equations:
        for a in eqn.inputs:
            if isinstance(a, Const) and a.is_array:
                yield a
    for a in program.outputs:
        if isinstance(a, Const) and a.is_array:
            yield a


def dtype_name(dtype: Any) -> str:
    """``f64``, ``i64``, ``bool``: short names for the listing."""
    text = str(getattr(dtype, "name", dtype))
    text = text.rsplit(".", 1)[-1].strip("'>")
    short = {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32",
             "bool": "bool", "float": "float", "int": "int"}
    return short.get(text, text)


def param_text(value: Any) -> str:
    """A static parameter as the listing shows it (an index as ``[1:, ...]``)."""
    items = getattr(value, "items", None)
    if isinstance(items, tuple):
        return "[" + ", ".join(_index_item(i) for i in items) + "]"
    if isinstance(value, Program):
        return value.name
    return repr(value)


def _index_item(item: Any) -> str:
    if isinstance(item, slice):
        parts = ["" if p is None else str(p) for p in (item.start, item.stop, item.step)]
        return ":".join(parts[:2] if item.step is None else parts)
    if item is Ellipsis:
        return "..."
    if hasattr(item, "shape"):
        return f"array{tuple(item.shape)}"
    return repr(item)
