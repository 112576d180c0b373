"""The numba executor: chains of elementwise equations fused into one compiled loop each.

A replayed program makes one pass over memory per equation. A chain such as

    v5 = subtract(v4, x7)        # (4, N): the tangent of ε − ν
    v9 = multiply(v5, 5.0)
    v13 = multiply(v9, v12)      # times σ'(5x), an (N,) value
    ...

reads and writes K·N numbers at every step, although only the last value is needed
afterwards. Fusion groups such equations (same output shape, every input broadcasting to it)
into one loop written for numba:

    for q0 in range(o0.shape[0]):
        for q1 in range(o0.shape[1]):
            t0 = i0[q0, 0]; t1 = i1[q0, q1]; t2 = i2[q1]
            m0 = (t0 - t1); m1 = (m0 * 5.0); m2 = (m1 * t2)
            o0[q0, q1] = m2

so the chain costs one pass. An equation joins the oldest open group of its shape that it can
join without making a cycle (none of its inputs may depend on that group through something
outside it), so that values needed early, such as the arguments of two exponentials, are computed
together; the groups and the remaining equations then run in a topological order.

What is fused: the primitives that declare how one element reads in a loop
(``Primitive.loop``): arithmetic, comparisons, logical ops, ``where``, ``abs``, ``sqrt``, the
step of ``soft_step``, ``stop_gradient`` and ``straight_through``: operations a compiled loop
does exactly as NumPy does (IEEE arithmetic, no fast-math). What is not: transcendental functions
(numba calls scalar libm, several times slower than NumPy's vectorised ``exp``, so they stay
NumPy calls writing into scratch buffers; ``sigmoid`` is split as 1/(1 + exp(−x)) so that only
its ``exp`` leaves the loop), reductions (NumPy's pairwise sums), shapes, indexing and anything
else (run as in :mod:`minidiff.jit.replay`). Kernels are cached by their source, so a program
traced again (or a derived one with the same chain) reuses them; compiling takes numba a
fraction of a second per kernel, the first time, reported in ``cache_info().compile_seconds``.

Results agree with eager mode to rounding (the tests ask for 1e-12; with the same
operations in the same order they are usually identical).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend as _backend
from .executors import register_executor
from .program import Equation, Program, Var
from .replay import Step, assemble, equation_step
from .simplify import simplify
from .tracing import JitError

__all__ = ["compile_fused", "numba_available", "kernel_cache_size", "group"]

_MAX_RANK = 3
_OPEN_GROUPS = 4  # groups of one shape an equation may still join (the latest ones)
_KERNELS: dict[str, Any] = {}  # kernel source -> numba dispatcher


def numba_available() -> None:
    """Raise a clear error where numba is missing (the ``jit`` extra)."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "md.jit(executor='numba') needs numba: install the 'jit' extra "
            "(pip install minidiff[jit]), or use the default executor='replay'") from exc


def kernel_cache_size() -> int:
    """Compiled kernels kept in this process (shared by every program)."""
    return len(_KERNELS)


# ---------------------------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------------------------


def _fusable(eqn: Equation) -> bool:
    if eqn.primitive.loop is None or not 1 <= len(eqn.out.shape) <= _MAX_RANK:
        return False
    if str(eqn.out.dtype) not in ("float64", "bool"):
        return False
    for a in eqn.inputs:
        if isinstance(a, Var):
            if str(a.dtype) not in ("float64", "bool"):
                return False
        elif a.is_array or type(a.value) not in (float, int, bool):
            return False
    return True


class _Node:
    """A group of fused equations, or one equation run as it is."""

    __slots__ = ("eqns", "first", "deps", "shape", "fused")

    def __init__(self, eqn: Equation, first: int, fused: bool) -> None:
        self.eqns = [eqn]
        self.first = first
        self.deps: set[int] = set()  # ids of the nodes whose values it reads
        self.shape = eqn.out.shape if fused else None
        self.fused = fused


def _group(eqns: Sequence[Equation],
           fusable: Callable[[Equation], bool] = _fusable) -> list[_Node]:
    """Nodes in a topological order: ``fusable`` equations grouped by shape, where no cycle
    forbids it (see the module notes)."""
    nodes: dict[int, _Node] = {}
    producer: dict[int, _Node] = {}
    open_groups: dict[tuple, list[_Node]] = {}

    def depends_on(node: _Node, target: _Node) -> bool:
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if n is target:
                return True
            if id(n) in seen:
                continue
            seen.add(id(n))
            stack.extend(nodes[d] for d in n.deps)
        return False

    for k, eqn in enumerate(eqns):
        sources = [producer[id(a)] for a in eqn.inputs
                   if isinstance(a, Var) and id(a) in producer]
        node = None
        if fusable(eqn):
            groups = open_groups.setdefault(eqn.out.shape, [])
            for group in groups:  # the oldest group it can join: values computed early
                if not any(s is not group and depends_on(s, group) for s in sources):
                    node = group
                    node.eqns.append(eqn)
                    break
            else:
                node = _Node(eqn, k, fused=True)
                groups.append(node)
                del groups[:-_OPEN_GROUPS]
        else:
            node = _Node(eqn, k, fused=False)
        nodes[id(node)] = node
        node.deps.update(id(s) for s in sources if s is not node)
        producer.update((id(v), node) for v in eqn.outs)
    # Kahn's algorithm, earliest first equation first
    waiting = {i: len(n.deps) for i, n in nodes.items()}
    users: dict[int, list[int]] = {i: [] for i in nodes}
    for i, n in nodes.items():
        for d in n.deps:
            users[d].append(i)
    ready = [(n.first, i) for i, n in nodes.items() if not n.deps]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (nodes[u].first, u))
    if len(order) != len(nodes):  # pragma: no cover - grouping never makes a cycle
        raise JitError("md.jit(executor='numba'): fusion made a cycle; please report it")
    # a group of one equation is not worth a kernel, except a where: NumPy's branches on
    # every element, which a random mask makes unpredictable; the loop selects without them
    for n in order:
        if n.fused and len(n.eqns) == 1 and not n.eqns[0].primitive.selects:
            n.fused = False
    return order


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------


def _kernel_step(node: _Node, used_outside: set, program: Program, index: int) -> Step:
    """The step that runs one fused group: one numba loop over the group's shape."""
    members = {id(e.out) for e in node.eqns}
    inputs: list[Any] = []
    slot: dict[int, int] = {}
    for eqn in node.eqns:
        for a in eqn.inputs:
            if isinstance(a, Var) and id(a) not in members and id(a) not in slot:
                slot[id(a)] = len(inputs)
                inputs.append(a)
    outs = [e.out for e in node.eqns if id(e.out) in used_outside]
    shape = node.shape
    rank = len(shape)
    loops = [f"q{d}" for d in range(rank)]
    constants_ns: dict[str, Any] = {}
    body: list[str] = []
    pad = "    " * (rank + 1)
    scalar_inputs = {i for i, a in enumerate(inputs) if not a.shape}
    for i, a in enumerate(inputs):
        if i in scalar_inputs:
            continue
        subscript = [("0" if d == 1 else loops[rank - len(a.shape) + j])
                     for j, d in enumerate(a.shape)]
        body.append(f"{pad}t{i} = i{i}[{', '.join(subscript)}]")
    names: dict[int, str] = {}
    for m, eqn in enumerate(node.eqns):
        args = []
        for a in eqn.inputs:
            if isinstance(a, Var):
                if id(a) in names:
                    args.append(names[id(a)])
                else:
                    i = slot[id(a)]
                    args.append(f"i{i}" if i in scalar_inputs else f"t{i}")
            else:
                key = f"k{len(constants_ns)}"
                constants_ns[key] = a.value
                args.append(key)
        names[id(eqn.out)] = f"m{m}"
        body.append(f"{pad}m{m} = {eqn.primitive.loop.format(*args)}")
    for o, v in enumerate(outs):
        body.append(f"{pad}o{o}[{', '.join(loops)}] = {names[id(v)]}")
    params = [f"i{i}" for i in range(len(inputs))] + [f"o{o}" for o in range(len(outs))]
    lines = [f"def kernel({', '.join(params)}):"]
    for d in range(rank):
        lines.append(f"{'    ' * (d + 1)}for q{d} in range(o0.shape[{d}]):")
    source = "\n".join(lines + body)
    kernel = _compiled(source, constants_ns)

    def write(args: list[str], out_names: list[str], buffers: list[str | None],
              namespace: dict) -> list[str]:
        name = f"k{index}"
        namespace[name] = _timed(kernel, program)
        namespace.setdefault("empty", _backend.get_backend().xp.empty)
        lines_ = []
        for o, (v, buffer) in enumerate(zip(outs, buffers)):
            if buffer is None:
                namespace[f"d{index}_{o}"] = v.dtype
                lines_.append(f"{out_names[o]} = empty({v.shape!r}, dtype=d{index}_{o})")
            else:
                lines_.append(f"{out_names[o]} = {buffer}")
        call_args = []
        for i, a in enumerate(inputs):
            call_args.append(f"{'bool' if str(a.dtype) == 'bool' else 'float'}({args[i]})"
                             if i in scalar_inputs else args[i])
        lines_.append(f"{name}({', '.join(call_args + out_names)})")
        return lines_

    return Step(inputs, outs, True, [True] * len(outs), write)


def _compiled(source: str, constants_ns: dict) -> Any:
    key = source + repr(sorted((k, repr(v)) for k, v in constants_ns.items()))
    kernel = _KERNELS.get(key)
    if kernel is None:
        import numba  # the optional 'jit' extra (checked when the executor was chosen)

        namespace = {"math": math, **constants_ns}
        exec(compile(source, "<md.jit numba kernel>", "exec"), namespace)
        kernel = _KERNELS[key] = numba.njit(error_model="numpy", cache=False)(
            namespace["kernel"])
    return kernel


def _timed(kernel: Any, program: Program) -> Any:
    """The kernel, with the time of every call that made numba compile a specialization
    (the first call, and any call with new argument types) added to the program's compile
    time."""
    compiled = kernel.overloads  # numba's live table of specializations
    clock = time.perf_counter

    def call(*args: Any) -> Any:
        known = len(compiled)
        started = clock()
        result = kernel(*args)
        if len(compiled) != known:
            program.compile_seconds += clock() - started
        return result

    return call


def compile_fused(program: Program, backend: _backend.Backend) -> Any:
    """``run(args) -> outputs`` with fused elementwise chains (NumPy only; other backends
    replay)."""
    original, program = program, simplify(program, backend)  # compile times: the original
    eqns = program.equations
    if not backend.kernels.into:  # not NumPy: numba cannot read these arrays
        from_replay = [equation_step(e, k, backend) for k, e in enumerate(program.equations)]
        return assemble(program, from_replay, backend)
    order = _group(eqns)
    members_of = {id(v): n for n in order for e in n.eqns for v in e.outs}
    used_outside: set = {id(a) for a in program.outputs if isinstance(a, Var)}
    for n in order:
        for e in n.eqns:
            for a in e.inputs:
                if isinstance(a, Var) and members_of.get(id(a)) is not n:
                    used_outside.add(id(a))
    steps = []
    for k, n in enumerate(order):
        if n.fused:
            steps.append(_kernel_step(n, used_outside, original, k))
        else:
            steps.extend(equation_step(e, 1000 * k + j, backend) for j, e in enumerate(n.eqns))
    return assemble(program, steps, backend)


group = _group  # the grouping, for other compiled loops (md.scan's whole-loop kernel)

register_executor("numba", compile_fused, check=numba_available)
