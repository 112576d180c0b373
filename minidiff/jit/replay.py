"""The replay executor: a program as straight-line Python over raw implementations.

Compiling a program writes one Python function with a line per equation,

    v7 = f7(v5, x2)             # f7 is multiply's impl: no bind, no levels, no boxes
    del v5                      # v5's last use: its memory is released now

so replaying a step costs its arithmetic and a few hundred nanoseconds per equation, where
eager mode pays the dispatch of ``bind`` and an engine for every op. It runs on every backend.

**Buffer reuse.** Where the backend's elementwise functions write into a given buffer
(``Backend.kernels.into``: NumPy's ``out=``), temporaries are not allocated at all. What the
executor may do with each equation is declared on its primitive (``Primitive.fresh``,
``into``, ``direct``, ``passes_through``; see :class:`minidiff.core.Primitive`). Liveness
analysis gives each value its last use; a value that lives only inside the program (not an
output, not a view that reaches one) is written into a scratch buffer of its shape and dtype,
and the buffer serves the next value of that shape once every value that may share its memory
is dead:

    v9 = g9(v7, v8, out=s[0])    # multiply into scratch buffer 0

Scratch buffers are kept with the compiled program, one set per thread, and reused on every
call, so a step replayed T times allocates its temporaries once (with glibc's default allocator
fresh arrays of this size cost page faults on every call). Outputs are always fresh arrays:
the caller (or the tape) keeps them. A view (reshape, getitem, ``straight_through``'s
pass-through) shares its input's memory, so the input's buffer lives as long as the view.

The results are the bits eager mode computes: the same raw implementations, or the library's
own function behind the operator (``x + y`` is ``np.add``) writing into a buffer.

The planning and the code writing work on *steps* (an equation here; the fusion executor adds
steps that run a compiled kernel with several outputs), so both executors share them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend as _backend
from .executors import register_executor
from .program import Const, Program, Var
from .simplify import simplify

__all__ = ["compile_replay", "Step", "Plan", "plan", "equation_step", "equation_steps",
           "write_function", "assemble"]


class Step:
    """One line of the compiled function: an equation, or (fusion) a compiled kernel.

    Attributes:
        inputs: the atoms it reads.
        outs: the variables it defines.
        fresh: its outputs are new arrays (never views of its inputs).
        into: for each output, whether it can be written into a given buffer.
        write: ``write(args, outs, scratch_names, namespace) -> lines`` writes its code.
    """

    __slots__ = ("inputs", "outs", "fresh", "into", "write")

    def __init__(self, inputs: Sequence[Any], outs: Sequence[Var], fresh: bool,
                 into: Sequence[bool], write: Callable[..., list[str]]) -> None:
        self.inputs = list(inputs)
        self.outs = list(outs)
        self.fresh = fresh
        self.into = list(into)
        self.write = write


class Plan:
    """What compiling decided: the last use of each value and the scratch buffers.

    Attributes:
        last_use: step index -> variables (by id) read for the last time there.
        scratch: variable id -> number of the scratch buffer it is written into.
        buffers: (shape, dtype) of each scratch buffer.
    """

    def __init__(self) -> None:
        self.last_use: dict[int, list[int]] = {}
        self.scratch: dict[int, int] = {}
        self.buffers: list[tuple[tuple[int, ...], Any]] = []


def plan(steps: Sequence[Step], program: Program, reuse: bool) -> Plan:
    """Liveness analysis and (with ``reuse``) scratch-buffer assignment over ``steps``."""
    result = Plan()
    outputs = {id(a) for a in program.outputs if isinstance(a, Var)}
    last_read: dict[int, int] = {}
    for k, step in enumerate(steps):
        for a in step.inputs:
            if isinstance(a, Var):
                last_read[id(a)] = k
    for k, step in enumerate(steps):
        for v in step.outs:
            last_read.setdefault(id(v), k)
    for v, k in last_read.items():
        if v not in outputs:
            result.last_use.setdefault(k, []).append(v)
    if not reuse:
        return result
    # which buffers each value may share memory with (its "roots")
    roots: dict[int, frozenset] = {id(v): frozenset() for v in program.inputs}
    for step in steps:
        shared: set = set()
        if not step.fresh:
            for a in step.inputs:
                if isinstance(a, Var):
                    shared |= roots[id(a)]
        for v in step.outs:
            roots[id(v)] = frozenset((id(v),)) if step.fresh else frozenset(shared)
    escaping: set = set()
    for a in program.outputs:
        if isinstance(a, Var):
            escaping |= roots[id(a)]
    # a buffer is free once every value that may share it has been read for the last time
    ends: dict[int, int] = {}
    for v, k in last_read.items():
        for r in roots.get(v, ()):
            ends[r] = max(ends.get(r, -1), k)
    free: dict[tuple, list[int]] = {}
    releasing: dict[int, list[tuple[tuple, int]]] = {}  # after step k, free these
    for k, step in enumerate(steps):
        for key, number in releasing.pop(k - 1, ()):
            free.setdefault(key, []).append(number)
        for v, into in zip(step.outs, step.into):
            if not into or id(v) in escaping or not v.shape:
                continue
            key = (v.shape, str(v.dtype))
            pool = free.get(key)
            if pool:
                number = pool.pop()
            else:
                number = len(result.buffers)
                result.buffers.append((v.shape, v.dtype))
            result.scratch[id(v)] = number
            releasing.setdefault(ends.get(id(v), k), []).append((key, number))
    return result


def _writes_into(eqn: Any, into: Any) -> bool:
    """Whether the backend's ``into`` kernel computes this equation bit for bit."""
    name = eqn.primitive.into
    if name is None or name not in into:
        return False
    inputs = eqn.inputs
    if eqn.primitive.selects:  # the condition is boolean; the others decide
        if str(eqn.out.dtype) != "float64":
            return False
        inputs = inputs[1:]
    dtypes = {str(a.dtype) if isinstance(a, Var) else str(a.value.dtype)
              for a in inputs if isinstance(a, Var) or (isinstance(a, Const) and a.is_array)}
    if len(dtypes) != 1:  # mixed dtypes: leave type promotion to the implementation
        return False
    return all(isinstance(a, Var) or a.is_array or type(a.value) in (float, int, bool)
               for a in inputs)


def equation_step(eqn: Any, k: int, backend: _backend.Backend) -> Step:
    """The step of one equation: its impl (or its ``into`` kernel, when it gets a buffer)."""
    primitive = eqn.primitive
    if eqn.multiple:
        return _results_step(eqn, k)
    into = backend.kernels.into
    writes = _writes_into(eqn, into)

    def write(args: list[str], outs: list[str], buffers: list[str | None],
              namespace: dict) -> list[str]:
        if primitive.passes_through is not None:
            return [f"{outs[0]} = {args[primitive.passes_through]}"]
        if primitive.coerce_numbers is not None:  # once here, where the impl would convert
            for i, a in enumerate(eqn.inputs):    # its numbers on every call
                if isinstance(a, Const) and not a.is_array:
                    namespace[f"n{k}_{i}"] = primitive.coerce_numbers(a.value)
                    args = [*args[:i], f"n{k}_{i}", *args[i + 1:]]
        if buffers[0] is not None:
            namespace[f"g{k}"] = into[primitive.into]
            return [f"{outs[0]} = g{k}({', '.join(args)}, out={buffers[0]})"]
        if writes:  # the library function itself, without the impl's indirections
            namespace[f"g{k}"] = into[primitive.into]
            return [f"{outs[0]} = g{k}({', '.join(args)})"]
        direct = backend.kernels.direct.get(primitive.direct) if primitive.direct else None
        if direct is not None:
            namespace[f"f{k}"] = functools.partial(direct, **eqn.params) if eqn.params \
                else direct
            return [f"{outs[0]} = f{k}({', '.join(args)})"]
        impl = primitive.impl
        namespace[f"f{k}"] = functools.partial(impl, **eqn.params) if eqn.params else impl
        return [f"{outs[0]} = f{k}({', '.join(args)})"]

    return Step(eqn.inputs, [eqn.out], primitive.fresh, [writes], write)


def _results_step(eqn: Any, k: int) -> Step:
    """The step of an equation with several results (a scan): its impl, its tuple unpacked.
    Not fresh: a result may be an argument itself (a scan's carry after no step)."""
    impl = eqn.primitive.impl

    def write(args: list[str], outs: list[str], buffers: list[str | None],
              namespace: dict) -> list[str]:
        namespace[f"f{k}"] = functools.partial(impl, **eqn.params) if eqn.params else impl
        unpack = f"{''.join(o + ', ' for o in outs)}= " if outs else ""
        return [f"{unpack}f{k}({', '.join(args)})"]

    return Step(eqn.inputs, eqn.outs, False, [False] * len(eqn.outs), write)


def equation_steps(program: Program, backend: _backend.Backend) -> list[Step]:
    return [equation_step(eqn, k, backend) for k, eqn in enumerate(program.equations)]


def write_function(program: Program, steps: Sequence[Step], the_plan: Plan,
                   namespace: dict) -> str:
    """The source of ``run(args, s)``: the steps in order, each value deleted after its last
    use, scratch buffers taken from the list ``s``."""
    names: dict[int, str] = {}
    for i, v in enumerate(program.inputs):
        names[id(v)] = f"a{i}"
    lines = ["def run(args, s):"]
    if program.inputs:
        lines.append(f"    {', '.join(names[id(v)] for v in program.inputs)}, = args")

    def atom(a: Any) -> str:
        if isinstance(a, Var):
            return names[id(a)]
        key = f"c{len(namespace)}"
        namespace[key] = a.value
        return key

    count = 0
    for k, step in enumerate(steps):
        outs = []
        for v in step.outs:
            count += 1
            names[id(v)] = outs_name = f"v{count}"
            outs.append(outs_name)
        buffers = [f"s[{the_plan.scratch[id(v)]}]" if id(v) in the_plan.scratch else None
                   for v in step.outs]
        for line in step.write([atom(a) for a in step.inputs], outs, buffers, namespace):
            lines.append(f"    {line}")
        dead = [names[v] for v in the_plan.last_use.get(k, ()) if names[v].startswith("v")]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    lines.append(f"    return ({''.join(atom(a) + ', ' for a in program.outputs)})")
    return "\n".join(lines)


def assemble(program: Program, steps: Sequence[Step], backend: _backend.Backend,
             namespace: dict | None = None) -> Callable[[Sequence[Any]], tuple]:
    """Plan ``steps``, write their function and return ``run(args) -> outputs``."""
    the_plan = plan(steps, program, reuse=bool(backend.kernels.into))
    namespace = {} if namespace is None else namespace
    source = write_function(program, steps, the_plan, namespace)
    exec(compile(source, f"<md.jit {program.executor} of {program.name}>", "exec"), namespace)
    run = namespace["run"]
    if not the_plan.buffers:
        def execute(args: Sequence[Any]) -> tuple:
            return run(args, None)
    else:
        pool = _ScratchPool(the_plan.buffers, backend)

        def execute(args: Sequence[Any]) -> tuple:
            scratch = pool.take()
            try:
                return run(args, scratch)
            finally:
                pool.give(scratch)

    execute.source = source  # type: ignore[attr-defined]
    return execute


def compile_replay(program: Program, backend: _backend.Backend) -> Any:
    """``run(args) -> outputs`` for ``program`` on ``backend`` (see the module notes)."""
    program = simplify(program, backend)
    return assemble(program, equation_steps(program, backend), backend)


class _ScratchPool:
    """The scratch buffers of one compiled program: one set per thread, made on first use.
    A set in use (a program that re-enters itself) is never shared: a fresh one is made."""

    def __init__(self, types: list[tuple[tuple[int, ...], Any]],
                 backend: _backend.Backend) -> None:
        self._types = types
        self._xp = backend.xp
        self._local = threading.local()

    def take(self) -> list[Any]:
        mine = getattr(self._local, "free", None)
        if mine:
            return mine.pop()
        return [self._xp.empty(shape, dtype=dtype) for shape, dtype in self._types]

    def give(self, scratch: list[Any]) -> None:
        mine = getattr(self._local, "free", None)
        if mine is None:
            mine = self._local.free = []
        if not mine:
            mine.append(scratch)


register_executor("replay", compile_replay)
