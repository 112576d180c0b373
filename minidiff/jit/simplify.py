"""Rewrites of a program that change neither a bit of its results nor what it reads.

* **Pruning**: equations no output depends on are dropped (every primitive is pure).
* **Common subexpressions**: an equation that repeats an earlier one (same primitive, same
  arguments, same parameters) reuses its value. Rules produce these: the JVP of ``r * r`` is
  ``ṙ r + ṙ r``.
* **Negation before broadcasting**: ``negative(broadcast_to(u))`` becomes
  ``broadcast_to(negative(u))``. The backward pass of ``c − x`` for a scalar ``c`` negates a
  cotangent that was broadcast from a scalar: negating the scalar costs nothing, negating the
  N copies a pass over memory. Negation is exact, so the values are the same.

Each rewrite keeps the order of the remaining equations, so the program still runs the
operations eager mode runs, on the same values. Only pruning is applied to the programs that
transforms differentiate: merging two equations into one value would also merge their
cotangents, summing the same numbers in another order than eager mode does. Executors apply
:func:`simplify` to the copy they compile.
"""

from __future__ import annotations

from typing import Any

from .. import ops
from ..ops import linear
from .program import Const, Equation, Program, Var

__all__ = ["simplify", "prune"]


def simplify(program: Program) -> Program:
    """``program`` pruned, with repeated equations merged and negations moved before
    broadcasts (see the module notes)."""
    return prune(_negate_before_broadcast(_merge_repeats(prune(program))))


def prune(program: Program) -> Program:
    """``program`` without the equations no output depends on."""
    needed = {id(a) for a in program.outputs if isinstance(a, Var)}
    kept = []
    for eqn in reversed(program.equations):
        if id(eqn.out) in needed:
            kept.append(eqn)
            needed.update(id(a) for a in eqn.inputs if isinstance(a, Var))
    if len(kept) == len(program.equations):
        return program
    kept.reverse()
    return _like(program, kept, program.outputs)


def _like(program: Program, equations: list[Equation], outputs: list[Any]) -> Program:
    return Program(program.name, program.inputs, equations, outputs,
                   executor=program.executor, backend=program.backend)


def _key(value: Any) -> Any:
    """A hashable stand-in for an argument or parameter, equal only for equal values."""
    if isinstance(value, Var):
        return ("var", id(value))
    if isinstance(value, Const):
        value = value.value
        if hasattr(value, "shape"):
            return ("array", id(value))
    if isinstance(value, float):
        return ("float", repr(value))  # 0.0 and -0.0 differ
    if isinstance(value, tuple):
        return ("tuple", tuple(_key(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value), value) if isinstance(value, int | bool | str | type(None)) \
        else ("id", id(value))


def _merge_repeats(program: Program) -> Program:
    seen: dict[Any, Var] = {}
    replaced: dict[int, Var] = {}
    equations = []
    for eqn in program.equations:
        inputs = [replaced.get(id(a), a) if isinstance(a, Var) else a for a in eqn.inputs]
        key = (id(eqn.primitive), tuple(_key(a) for a in inputs),
               tuple(sorted((k, _key(v)) for k, v in eqn.params.items())))
        earlier = seen.get(key)
        if earlier is not None and earlier.shape == eqn.out.shape:
            replaced[id(eqn.out)] = earlier
            continue
        seen[key] = eqn.out
        equations.append(eqn if inputs == list(eqn.inputs)
                         else Equation(eqn.primitive, inputs, eqn.params, eqn.out))
    if not replaced:
        return program
    outputs = [replaced.get(id(a), a) if isinstance(a, Var) else a for a in program.outputs]
    return _like(program, equations, outputs)


def _negate_before_broadcast(program: Program) -> Program:
    broadcast_of: dict[int, Equation] = {}
    equations = []
    changed = False
    for eqn in program.equations:
        if eqn.primitive is linear._broadcast_p:
            broadcast_of[id(eqn.out)] = eqn
        source = broadcast_of.get(id(eqn.inputs[0])) if (
            eqn.primitive is ops.negative and isinstance(eqn.inputs[0], Var)) else None
        if source is not None and isinstance(source.inputs[0], Var):
            small = source.inputs[0]
            negated = Var(small.shape, small.dtype)
            equations.append(Equation(ops.negative, [small], {}, negated))
            equations.append(Equation(linear._broadcast_p, [negated], dict(source.params),
                                      eqn.out))
            changed = True
            continue
        equations.append(eqn)
    return _like(program, equations, program.outputs) if changed else program
