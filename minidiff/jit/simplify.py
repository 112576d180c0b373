"""Rewrites of a program that change neither a bit of its results nor what it reads.

* **Pruning**: equations no output depends on are dropped (every primitive is pure).
* **Common subexpressions**: an equation that repeats an earlier one (same primitive, same
  arguments, same parameters) reuses its value. Rules produce these: the JVP of ``r * r`` is
  ``ṙ r + ṙ r``.
* **Negation before broadcasting**: ``negative(broadcast_to(u))`` becomes
  ``broadcast_to(negative(u))``. The backward pass of ``c − x`` for a scalar ``c`` negates a
  cotangent that was broadcast from a scalar: negating the scalar costs nothing, negating the
  N copies a pass over memory.
* **Sigmoids split** (NumPy): σ(x) as the backend computes it, four passes (negate, exp,
  add 1, divide), so that its negation merges with a scale before it: σ(5x) computes −5x in
  one pass, and the fusion executor keeps all but the exp in its loops.
* **Negated scales**: ``negative(multiply(c, x))`` for a number c becomes ``multiply(−c, x)``.
* **Negations carried to where they cancel**: ``v = −u`` is not computed while its uses can
  take the sign instead: (−u)·c = −(u·c), c/(−u) = −(c/u), (−u) − z = −(u + z), Σ(−u) = −Σu,
  and the sign is absorbed by ``z − (−u) = z + u`` and ``z + (−u) = z − u``. The tangent of
  ``−ν − ε`` times σ', subtracted from another, then needs no negation at all.

Negation is exact and rounding is symmetric in sign, so each of these gives the same bits.

Each rewrite keeps the order of the remaining equations, so the program still runs the
operations eager mode runs, on the same values. Only pruning is applied to the programs that
transforms differentiate: merging two equations into one value would also merge their
cotangents, summing the same numbers in another order than eager mode does. Executors apply
:func:`simplify` to the copy they compile.
"""

from __future__ import annotations

from typing import Any

from .. import backend as _backend
from .. import ops
from ..core import Primitive
from .program import Const, Equation, Program, Var

__all__ = ["simplify", "prune", "quiet_exp"]

# exp whose overflow to inf is expected (inside a split sigmoid, where 1/(1 + inf) = 0)
quiet_exp = Primitive("exp", lambda x: _backend.get_backend().kernels.into["quiet_exp"](x),
                      elementwise=True, fresh=True, into="quiet_exp",
                      scalar_loop="math.exp({0})")


def simplify(program: Program, backend: _backend.Backend | None = None) -> Program:
    """``program`` pruned, with repeated equations merged and negations moved to where they
    cost nothing (see the module notes); given the backend it runs on, with each sigmoid
    split into the passes the backend makes, so that its first one can merge with a scale."""
    if backend is not None:
        program = _split_sigmoids(program, backend)
    program = _merge_repeats(prune(program))
    program = _fold_negated_scales(_negate_before_broadcast(program))
    return prune(_carry_negations(program))


def _split_sigmoids(program: Program, backend: _backend.Backend) -> Program:
    """Each sigmoid of a float64 array as the backend computes it, NumPy's four passes:
    negate, exp, add 1, divide 1 by it (the same operations, so the same bits)."""
    if "quiet_exp" not in backend.kernels.into:
        return program
    out: list[Equation] = []
    for eqn in program.equations:
        x = eqn.inputs[0] if eqn.inputs else None
        if (eqn.primitive is ops.sigmoid and isinstance(x, Var) and x.shape
                and str(x.dtype) == "float64"):
            t, e, d = (Var(x.shape, x.dtype) for _ in range(3))
            out += [Equation(ops.negative, [x], {}, t), Equation(quiet_exp, [t], {}, e),
                    Equation(ops.add, [e, Const(1.0)], {}, d),
                    Equation(ops.divide, [Const(1.0), d], {}, eqn.out)]
        else:
            out.append(eqn)
    return _like(program, out, program.outputs) if len(out) != len(program.equations) \
        else program


def _fold_negated_scales(program: Program) -> Program:
    """``negative(multiply(c, x))`` for a number c, the product used nowhere else, becomes
    ``multiply(−c, x)``: one pass instead of two ((−c)·x = −(c·x) exactly)."""
    uses: dict[int, int] = {}
    for eqn in program.equations:
        for a in eqn.inputs:
            if isinstance(a, Var):
                uses[id(a)] = uses.get(id(a), 0) + 1
    for a in program.outputs:
        if isinstance(a, Var):
            uses[id(a)] = uses.get(id(a), 0) + 1
    scale_of: dict[int, tuple[int, int]] = {}  # product var -> (its equation, the number's slot)
    equations = list(program.equations)
    dropped: set[int] = set()
    for k, eqn in enumerate(equations):
        if eqn.primitive is ops.multiply:
            for slot, a in enumerate(eqn.inputs):
                if isinstance(a, Const) and type(a.value) is float:
                    scale_of[id(eqn.out)] = (k, slot)
                    break
        elif eqn.primitive is ops.negative and isinstance(eqn.inputs[0], Var):
            found = scale_of.get(id(eqn.inputs[0]))
            if found is not None and uses.get(id(eqn.inputs[0])) == 1:
                j, slot = found
                product = equations[j]
                inputs = list(product.inputs)
                inputs[slot] = Const(-product.inputs[slot].value)
                equations[k] = Equation(ops.multiply, inputs, {}, eqn.out)
                dropped.add(j)
    if not dropped:
        return program
    return _like(program, [e for k, e in enumerate(equations) if k not in dropped],
                 program.outputs)


def prune(program: Program) -> Program:
    """``program`` without the equations no output depends on."""
    needed = {id(a) for a in program.outputs if isinstance(a, Var)}
    kept = []
    for eqn in reversed(program.equations):
        if any(id(v) in needed for v in eqn.outs):
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
        if eqn.multiple:  # several results (a scan): kept as it is, its arguments renamed
            equations.append(eqn if inputs == list(eqn.inputs)
                             else Equation(eqn.primitive, inputs, eqn.params, eqn.outs))
            continue
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
    """``negative(e(u))`` becomes ``e(negative(u))`` for an op ``e`` that only repeats its
    argument's elements (``Primitive.expands``: ``broadcast_to``)."""
    broadcast_of: dict[int, Equation] = {}
    equations = []
    changed = False
    for eqn in program.equations:
        if eqn.primitive.expands:
            broadcast_of[id(eqn.out)] = eqn
        source = broadcast_of.get(id(eqn.inputs[0])) if (
            eqn.primitive is ops.negative and isinstance(eqn.inputs[0], Var)) else None
        if source is not None and isinstance(source.inputs[0], Var):
            small = source.inputs[0]
            negated = Var(small.shape, small.dtype)
            equations.append(Equation(ops.negative, [small], {}, negated))
            equations.append(Equation(source.primitive, [negated], dict(source.params),
                                      eqn.out))
            changed = True
            continue
        equations.append(eqn)
    return _like(program, equations, program.outputs) if changed else program


def _carry_negations(program: Program) -> Program:
    """Defer each ``negative`` to the uses that can absorb its sign (see the module notes).

    ``negated[v] = u`` records a value v = −u that has not been computed; ``plain`` computes it
    when a use cannot take the sign (an exp, a where, an output)."""
    negated: dict[int, Var] = {}
    computed: set[int] = set()
    alias: dict[int, Var] = {}  # −(−u) is u
    equations: list[Equation] = []
    outputs = {id(a) for a in program.outputs if isinstance(a, Var)}

    def plain(a: Any) -> Any:
        if isinstance(a, Var) and id(a) in negated and id(a) not in computed:
            equations.append(Equation(ops.negative, [negated[id(a)]], {}, a))
            computed.add(id(a))
        return a

    def emit(primitive: Any, args: list[Any], params: dict, out: Var, flip: bool) -> None:
        """out = primitive(*args), or out = −primitive(*args) when ``flip``: deferred when it
        may be (a floating value the program does not return), else computed now."""
        if not flip:
            equations.append(Equation(primitive, args, params, out))
            return
        inner = Var(out.shape, out.dtype)
        equations.append(Equation(primitive, args, params, inner))
        negated[id(out)] = inner
        if id(out) in outputs:
            plain(out)

    for eqn in program.equations:
        ins = [alias.get(id(a), a) if isinstance(a, Var) else a for a in eqn.inputs]
        if eqn.multiple:  # several results (a scan): every argument computed, signs applied
            if any(isinstance(a, Var) and (id(a) in alias or id(a) in negated)
                   for a in eqn.inputs):
                eqn = Equation(eqn.primitive, [plain(a) for a in ins], eqn.params, eqn.outs)
            equations.append(eqn)
            continue
        p, out = eqn.primitive, eqn.out
        signs = [isinstance(a, Var) and id(a) in negated and id(a) not in computed
                 for a in ins]
        inner = [negated[id(a)] if sign else a for a, sign in zip(ins, signs)]
        floating = str(out.dtype).startswith("float")
        if floating and p is ops.negative and isinstance(ins[0], Var):
            if signs[0] and id(out) not in outputs:
                alias[id(out)] = inner[0]          # −(−u) = u
            elif not signs[0] and id(out) not in outputs:
                negated[id(out)] = ins[0]          # deferred
            else:
                equations.append(Equation(p, [plain(ins[0])], eqn.params, out))
            continue
        if floating and any(signs) and (p is ops.multiply or p is ops.divide):
            emit(p, inner, eqn.params, out, flip=sum(signs) % 2 == 1)  # (−a)·b = −(a·b)
            continue
        if floating and any(signs) and (p is ops.add or p is ops.subtract):
            a, b = inner
            sa, sb = signs[0], signs[1] != (p is ops.subtract)  # z − w = z + (−w)
            if sa and sb:
                emit(ops.add, [a, b], {}, out, flip=True)          # −a − b = −(a + b)
            elif sa:
                emit(ops.subtract, [b, a], {}, out, flip=False)    # −a + b = b − a
            elif sb:
                emit(ops.subtract, [a, b], {}, out, flip=False)    # a + (−b) = a − b
            else:
                emit(ops.add, [a, b], {}, out, flip=False)         # a − (−b) = a + b
            continue
        if floating and signs and signs[0] and len(ins) == 1 and p.negation_commutes:
            emit(p, inner, eqn.params, out, flip=True)             # Σ(−u) = −Σu
            continue
        if any(signs) or any(isinstance(a, Var) and id(a) in alias for a in eqn.inputs):
            eqn = Equation(p, [plain(a) for a in ins], eqn.params, out)
        equations.append(eqn)
    if not negated and not alias:
        return program
    results = [alias.get(id(a), a) if isinstance(a, Var) else a for a in program.outputs]
    return _like(program, equations, results)
