"""The replay executor: a program as straight-line Python over raw implementations.

Compiling a program writes one Python function with a line per equation,

    v7 = f7(v5, x2)             # f7 is multiply's impl: no bind, no levels, no boxes
    del v5                      # v5's last use: its memory is released now

so replaying a step costs its arithmetic and a few hundred nanoseconds per equation, where
eager mode pays the dispatch of ``bind`` and an engine for every op. It runs on every backend.

**Buffer reuse.** Where the backend's elementwise functions write into a given buffer
(``Backend.kernels.into``: NumPy's ``out=``), temporaries are not allocated at all. Liveness
analysis gives each value its last use; a value that lives only inside the program (not an
output, not a view that reaches one) is written into a scratch buffer of its shape and dtype,
and the buffer serves the next value of that shape once every value that may share its memory
is dead:

    v9 = g9(v7, v8, out=s[0])    # multiply into scratch buffer 0

Scratch buffers are kept with the compiled program, one set per thread, and reused on every
call, so a step replayed T times allocates its temporaries once (with glibc's default allocator
fresh arrays of this size cost page faults on every call). Outputs are always fresh arrays:
the caller (or the tape) keeps them. A view (reshape, getitem, ``straight_through``'s pass-through)
shares its input's memory, so the input's buffer lives as long as the view.

The results are the bits eager mode computes: the same raw implementations, or the library's
own function behind the operator (``x + y`` is ``np.add``) writing into a buffer.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

from .. import backend as _backend
from .. import ops
from ..ops import (
    comparisons,
    constants,
    elementwise,
    indexing,
    linalg,
    linear,
    reductions,
    special,
    surrogates,
)
from .executors import register_executor
from .program import Const, Program, Var

__all__ = ["compile_replay", "Plan", "plan"]

# minidiff's own primitives that always return a new array (never a view of an argument)
_FRESH = {
    ops.add, ops.subtract, ops.multiply, ops.divide, ops.power, ops.negative, ops.maximum,
    ops.exp, ops.log, ops.log1p, ops.expm1, ops.sqrt, ops.sin, ops.cos, ops.tanh, ops.sigmoid,
    ops.softplus, ops.abs, elementwise._where_p, comparisons.equal, comparisons.not_equal,
    comparisons.less, comparisons.less_equal, comparisons.greater, comparisons.greater_equal,
    comparisons.logical_and, comparisons.logical_or, comparisons.logical_not,
    comparisons.sign, comparisons.floor, surrogates._soft_step_p, special.erf,
    special.gammaln, special.polygamma_p, linear._sum_p, reductions._max_p,
    reductions._prod_p, reductions._cumsum_p, linalg._matmul_p, indexing._concat_p,
    indexing._scatter_add_p,
}
# ... and those a backend may compute into a given buffer, by op name (Kernels.into)
_INTO = {
    ops.add: "add", ops.subtract: "subtract", ops.multiply: "multiply", ops.divide: "divide",
    ops.negative: "negative", ops.maximum: "maximum", ops.exp: "exp", ops.log: "log",
    ops.log1p: "log1p", ops.expm1: "expm1", ops.sqrt: "sqrt", ops.sin: "sin", ops.cos: "cos",
    ops.tanh: "tanh", ops.abs: "abs", ops.sigmoid: "sigmoid", comparisons.sign: "sign",
    comparisons.floor: "floor", comparisons.equal: "equal", comparisons.not_equal: "not_equal",
    comparisons.less: "less", comparisons.less_equal: "less_equal",
    comparisons.greater: "greater", comparisons.greater_equal: "greater_equal",
    comparisons.logical_and: "logical_and", comparisons.logical_or: "logical_or",
    comparisons.logical_not: "logical_not",
}
_IDENTITY = {constants._stop_gradient_p}


class Plan:
    """What compiling a program decided: the last use of each value and its scratch buffer.

    Attributes:
        last_use: for each equation index, the variables (by id) read for the last time there.
        scratch: equation index -> scratch buffer number its output is written into.
        buffers: (shape, dtype) of each scratch buffer.
    """

    def __init__(self) -> None:
        self.last_use: dict[int, list[int]] = {}
        self.scratch: dict[int, int] = {}
        self.buffers: list[tuple[tuple[int, ...], Any]] = []


def plan(program: Program, backend: _backend.Backend) -> Plan:
    """Liveness analysis and scratch-buffer assignment for ``program`` on ``backend``."""
    result = Plan()
    eqns = program.equations
    outputs = {id(a) for a in program.outputs if isinstance(a, Var)}
    # last read of every variable (outputs live to the end)
    last_read: dict[int, int] = {}
    for k, eqn in enumerate(eqns):
        for a in eqn.inputs:
            if isinstance(a, Var):
                last_read[id(a)] = k
    for k, eqn in enumerate(eqns):
        last_read.setdefault(id(eqn.out), k)
    for v, k in last_read.items():
        if v not in outputs:
            result.last_use.setdefault(k, []).append(v)
    into = backend.kernels.into
    if not into:
        return result
    # which buffers each value may share memory with (its "roots")
    roots: dict[int, frozenset] = {id(v): frozenset() for v in program.inputs}
    for eqn in eqns:
        out = id(eqn.out)
        if eqn.primitive in _FRESH:
            roots[out] = frozenset((out,))
        else:
            shared: set = set()
            for a in eqn.inputs:
                if isinstance(a, Var):
                    shared |= roots[id(a)]
            roots[out] = frozenset(shared)
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
    releasing: dict[int, list[tuple[tuple, int]]] = {}  # after this equation, free these
    for k, eqn in enumerate(eqns):
        for key_buffer in releasing.pop(k - 1, ()):
            free.setdefault(key_buffer[0], []).append(key_buffer[1])
        out = eqn.out
        if not _writes_into(eqn, into) or id(out) in escaping or not out.shape:
            continue
        key = (out.shape, str(out.dtype))
        pool = free.get(key)
        if pool:
            number = pool.pop()
        else:
            number = len(result.buffers)
            result.buffers.append((out.shape, out.dtype))
        result.scratch[k] = number
        releasing.setdefault(ends.get(id(out), k), []).append((key, number))
    return result


def _writes_into(eqn: Any, into: Any) -> bool:
    name = _INTO.get(eqn.primitive)
    if name is None or name not in into:
        return False
    dtypes = {str(a.dtype) if isinstance(a, Var) else str(a.value.dtype)
              for a in eqn.inputs if isinstance(a, Var) or (isinstance(a, Const) and a.is_array)}
    if len(dtypes) != 1:  # mixed dtypes: leave type promotion to the implementation
        return False
    return all(isinstance(a, Var) or a.is_array or type(a.value) in (float, int, bool)
               for a in eqn.inputs)


def compile_replay(program: Program, backend: _backend.Backend) -> Any:
    """``run(args) -> outputs`` for ``program`` on ``backend`` (see the module notes)."""
    the_plan = plan(program, backend)
    namespace: dict[str, Any] = {}
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

    into = backend.kernels.into
    for k, eqn in enumerate(program.equations):
        out = f"v{k}"
        names[id(eqn.out)] = out
        args = [atom(a) for a in eqn.inputs]
        if eqn.primitive in _IDENTITY:
            lines.append(f"    {out} = {args[0]}")
        elif k in the_plan.scratch:
            namespace[f"g{k}"] = into[_INTO[eqn.primitive]]
            lines.append(f"    {out} = g{k}({', '.join(args)}, out=s[{the_plan.scratch[k]}])")
        else:
            impl = eqn.primitive.impl
            namespace[f"f{k}"] = functools.partial(impl, **eqn.params) if eqn.params else impl
            lines.append(f"    {out} = f{k}({', '.join(args)})")
        dead = [names[v] for v in the_plan.last_use.get(k, ()) if names[v].startswith("v")]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    lines.append(f"    return ({''.join(atom(a) + ', ' for a in program.outputs)})")
    source = "\n".join(lines)
    exec(compile(source, f"<md.jit replay of {program.name}>", "exec"), namespace)
    run = namespace["run"]
    if not the_plan.buffers:
        return lambda args: run(args, None)
    pool = _ScratchPool(the_plan.buffers, backend)

    def execute(args: Sequence[Any]) -> tuple:
        scratch = pool.take()
        try:
            return run(args, scratch)
        finally:
            pool.give(scratch)

    execute.source = source  # type: ignore[attr-defined]
    return execute


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
