"""Programs derived from a program: its JVP, and its VJP split into a forward and a backward part.

A program is evaluated by minidiff ops (:func:`evaluate`: bind each equation's primitive in
turn), so every transform can run it. A derived program is the trace of such a run under a
transform:

* **JVP.** Trace ``evaluate`` under a forward level with K directions: inputs (primals, tangents
  of the differentiated arguments), outputs (values, tangents of the outputs that have one).
  It computes value and tangent together, so a primal is never computed twice.
* **VJP.** Trace ``evaluate`` under a reverse level, then the backward sweep seeded with one
  cotangent input per differentiable output: the joint program has inputs (primals,
  cotangents) and outputs (values, cotangents of the arguments). It is split by dependence:
  the equations that do not read a cotangent form the **forward part** (run when the call is
  recorded; it returns the values and the *residuals*, the forward values the backward part
  reads), the rest the **backward part** (run by the tape's backward pass on the residuals and
  the cotangents). Partial derivatives that depend only on primals (σ(1 − σ) for a sigmoid)
  land in the forward part, so the tape keeps them instead of recomputing them.

Both are cached on the program (``Program.derived``) per use: which arguments are
differentiated, and K. Because derived programs are programs, they too can be differentiated,
and so on: ``hessian`` of a jitted function runs the JVP of the VJP's parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import backend as _backend
from ..core import bind, raw, shape_of
from ..forward import Dual, ForwardEngine
from ..reverse import ReverseEngine, Tape, TapeValue
from .program import Program, Var
from .simplify import prune
from .tracing import JitTracedValue, TraceEngine, trace

__all__ = ["evaluate", "evaluate_forward", "concrete", "jvp_program", "vjp_parts", "VjpParts",
           "prune", "derived_programs"]


def evaluate(program: Program, args: Sequence[Any]) -> list[Any]:
    """Run ``program`` on ``args`` with minidiff ops (each equation bound in turn), so that the
    levels of the arguments (transforms, a trace) see every primitive."""
    env: dict[int, Any] = {id(v): a for v, a in zip(program.inputs, args)}
    for eqn in program.equations:
        values = [env[id(a)] if isinstance(a, Var) else a.value for a in eqn.inputs]
        result = bind(eqn.primitive, *values, **eqn.params)
        if eqn.multiple:
            env.update((id(v), r) for v, r in zip(eqn.outs, result))
        else:
            env[id(eqn.out)] = result
    return [env[id(a)] if isinstance(a, Var) else a.value for a in program.outputs]


def concrete(x: Any) -> Any:
    """The concrete array under every box (inside a trace, the traced value's own); under
    vmap, that of the first batch element: programs are traced for one element (and batched
    by the jitted call's batching rule)."""
    value = raw(x)
    value = value.concrete if isinstance(value, JitTracedValue) else value
    shape = getattr(value, "shape", None)
    if shape is None:
        return value
    drop = len(shape) - len(shape_of(x))
    return value[(0,) * drop + (Ellipsis,)] if drop else value


def _trace_derived(fn: Any, inputs: Sequence[Any], name: str, parent: Program) -> Program:
    program, _ = trace(fn, [concrete(x) for x in inputs], name, executor=parent.executor,
                       backend=parent.backend)
    return prune(program)


# ---------------------------------------------------------------------------------------------
# JVP
# ---------------------------------------------------------------------------------------------


def jvp_program(program: Program, needs: tuple[bool, ...], primals: Sequence[Any],
                tangents: Sequence[Any]) -> tuple[Program, tuple[bool, ...]]:
    """The JVP of ``program`` for the differentiated arguments ``needs``, and which outputs
    have a tangent. Inputs: the primals, then the tangents (shape ``(K, *shape)``) of the
    arguments in ``needs``; outputs: the values, then the tangents of the flagged outputs."""
    k = shape_of(tangents[0])[0]
    key = ("jvp", needs, k, tuple(raw(t).dtype for t in tangents))
    found = program.derived.get(key)
    if found is not None:
        return found
    flags: list[bool] = []

    def run(engine: TraceEngine, *leaves: Any) -> list[Any]:
        outs, level = evaluate_forward(program, leaves, needs, k)
        values, tans = [], []
        for o in outs:
            ours = isinstance(o, Dual) and o.level is level
            flags.append(ours)
            values.append(o.value if ours else o)
            if ours:
                tans.append(o.tangent)
        return values + tans

    derived = _trace_derived(run, [*primals, *tangents], f"jvp({program.name})", program)
    found = program.derived[key] = (derived, tuple(flags))
    return found


def evaluate_forward(program: Program, leaves: Sequence[Any], needs: Sequence[bool], k: int
                     ) -> tuple[list[Any], Any]:
    """Run ``program`` at a new forward level with K = ``k`` directions.

    ``leaves`` are the primals (one per input), then the tangents (shape ``(K, *shape)``) of
    the inputs flagged in ``needs``, in input order. Returns the outputs (``Dual``s of the
    returned level where they have a tangent) and that level, closed."""
    n = len(needs)
    given = iter(leaves[n:])
    with ForwardEngine(k) as level:
        args = [Dual(p, next(given), level) if need else p
                for p, need in zip(leaves[:n], needs)]
        return evaluate(program, args), level


# ---------------------------------------------------------------------------------------------
# VJP, split into a forward and a backward part
# ---------------------------------------------------------------------------------------------


@dataclass
class VjpParts:
    """The two parts of a program's VJP.

    Attributes:
        forward: primals -> (values, residuals).
        backward: (residuals, one cotangent per differentiable output) -> one cotangent per
            differentiated argument.
        differentiable: indices of the outputs that depend on a differentiated argument (the
            ones that get a cotangent).
        n_residuals: how many residuals the forward part returns after the values.
        output_types: (shape, dtype) of every output, for zero cotangents.
    """

    forward: Program
    backward: Program
    differentiable: tuple[int, ...]
    n_residuals: int
    output_types: tuple[tuple[tuple[int, ...], Any], ...]


def vjp_parts(program: Program, needs: tuple[bool, ...], primals: Sequence[Any]) -> VjpParts:
    """The VJP of ``program`` for the differentiated arguments ``needs``, split in two."""
    key = ("vjp", needs)
    found = program.derived.get(key)
    if found is not None:
        return found
    n, m = len(needs), len(program.outputs)
    diff: list[int] = []
    backend = _backend.get_backend()

    def run(engine: TraceEngine, *leaves: Any) -> list[Any]:
        tape = Tape()
        with ReverseEngine(tape) as level:
            inputs = {}
            args = list(leaves)
            for i, need in enumerate(needs):
                if need:
                    args[i] = inputs[i] = tape.add_input(leaves[i], level)
            outs = evaluate(program, args)
        seeds = []
        for j, o in enumerate(outs):
            if isinstance(o, TapeValue) and o.level is level:
                diff.append(j)
                value = concrete(o.value)
                seed = engine.new_input(backend.xp.ones(shape_of(value), dtype=value.dtype))
                seeds.append((o, seed))
        values = [o.value if isinstance(o, TapeValue) and o.level is level else o for o in outs]
        cotangents = tape.backward_from(seeds) if seeds else [None] * len(tape.nodes)
        grads = []
        for i in sorted(inputs):
            g = cotangents[inputs[i].node.index]
            grads.append(backend.xp.zeros(shape_of(leaves[i]), dtype=backend.float_dtype)
                         if g is None else g)
        return values + grads

    joint, _ = trace(run, [concrete(x) for x in primals], f"vjp({program.name})",
                     executor=program.executor, backend=program.backend)
    forward, backward, n_res = _split(joint, n, m, program.name)
    types = tuple(program.atom_type(a) for a in program.outputs)
    found = program.derived[key] = VjpParts(forward, backward, tuple(diff), n_res, types)
    return found


def _split(joint: Program, n_primals: int, n_outputs: int, name: str
           ) -> tuple[Program, Program, int]:
    """Split a joint VJP program (inputs: primals, cotangent seeds; outputs: values, argument
    cotangents) into the equations that read no seed (forward) and the rest (backward)."""
    seeds = joint.inputs[n_primals:]
    late = {id(v) for v in seeds}  # values that depend on a seed
    backward_eqns = []
    forward_eqns = []
    for eqn in joint.equations:
        if any(isinstance(a, Var) and id(a) in late for a in eqn.inputs):
            late.update(id(v) for v in eqn.outs)
            backward_eqns.append(eqn)
        else:
            forward_eqns.append(eqn)
    values = joint.outputs[:n_outputs]
    grads = joint.outputs[n_outputs:]
    # the backward part: what the argument cotangents need
    needed = {id(a) for a in grads if isinstance(a, Var)}
    kept = []
    for eqn in reversed(backward_eqns):
        if any(id(v) in needed for v in eqn.outs):
            kept.append(eqn)
            needed.update(id(a) for a in eqn.inputs if isinstance(a, Var))
    kept.reverse()
    # residuals: forward values (computed or primal inputs) the backward part reads
    residuals: list[Var] = []
    seen: set[int] = set()
    for source in [*(a for e in kept for a in e.inputs), *grads]:
        if isinstance(source, Var) and id(source) not in late and id(source) not in seen:
            seen.add(id(source))
            residuals.append(source)
    forward = prune(Program(f"vjp_forward({name})", joint.inputs[:n_primals], forward_eqns,
                            [*values, *residuals], executor=joint.executor,
                            backend=joint.backend))
    backward = Program(f"vjp_backward({name})", [*residuals, *seeds], kept, grads,
                       executor=joint.executor, backend=joint.backend)
    return forward, backward, len(residuals)


def derived_programs(program: Program) -> list[Program]:
    """The programs derived from ``program`` so far (its JVPs and VJP parts), directly."""
    found = []
    for d in program.derived.values():
        if isinstance(d, VjpParts):
            found += [d.forward, d.backward]
        elif isinstance(d, tuple):
            found.append(d[0])
        # else: the jitted function batching the program under vmap (its own cache)
    return found


