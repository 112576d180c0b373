"""The bodies a scan's rules run, derived from the scan's body program.

* :func:`jvp_body`: the body's JVP as a scan body (carries and their tangents, scanned inputs
  and theirs, constants and theirs);
* :func:`vjp_body`: the body's VJP split in two (:func:`minidiff.jit.derive.vjp_parts`): the
  forward part as a scan body that returns each step's values and the residuals to stack, and
  (:func:`backward_body`, traced on first use) the backward part as the body of the reverse
  scan, whose carry is the carry's cotangent plus a running sum per differentiated constant.

Each is cached on the body program (``Program.derived``), per set of differentiated inputs.
The layout of a scan's operands (``kinds``: carry, scanned, constant) is described in
:mod:`minidiff.scan_primitive`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import backend as _backend
from .forward import Dual
from .jit.derive import concrete, evaluate, evaluate_forward, prune, vjp_parts
from .jit.program import Program, Var
from .jit.tracing import trace
from .ops import add, broadcast_to
from .vmapping import vmap

__all__ = ["depends_on", "close_needs", "step_sample", "jvp_body", "JvpBody", "vjp_body",
           "VjpBody", "backward_body", "close_batched", "batch_body"]

# ---------------------------------------------------------------------------------------------
# helpers shared by the rules
# ---------------------------------------------------------------------------------------------


def depends_on(program: Program, needs: Sequence[bool]) -> list[bool]:
    """For each output, whether it may depend on a differentiated input (through equations of
    differentiable primitives: a superset of what has a derivative)."""
    live = {id(v) for v, need in zip(program.inputs, needs) if need}
    for eqn in program.equations:
        if eqn.primitive.differentiable and any(
                isinstance(a, Var) and id(a) in live for a in eqn.inputs):
            live.update(id(v) for v in eqn.outs)
    return [isinstance(a, Var) and id(a) in live for a in program.outputs]


def _is_float(dtype: Any) -> bool:
    return "float" in str(dtype)


def close_needs(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
                 needs: list[bool]) -> tuple[bool, ...]:
    """Differentiate a carry too when its next value depends on a differentiated input (its
    derivative then flows from step to step even if the initial carry is a constant)."""
    carry_at = [i for i, k in enumerate(kinds) if k == "c"]
    while True:
        deps = depends_on(body, needs)
        changed = False
        for i, o in zip(carry_at, carry_out):
            if deps[o] and not needs[i] and _is_float(body.inputs[i].dtype):
                needs[i] = changed = True
        if not changed:
            return tuple(needs)


def step_sample(operand: Any, kind: str, length: int) -> Any:
    """A concrete value of what one step reads from an operand (row 0 of a scanned input, or
    zeros for a zero-length scan), to trace a body on."""
    value = concrete(operand)
    if kind != "x":
        return value
    if length:
        return value[0, ...]
    xp = _backend.get_backend().xp
    return xp.zeros(tuple(value.shape[1:]), dtype=value.dtype)



# ---------------------------------------------------------------------------------------------
# the derived bodies
# ---------------------------------------------------------------------------------------------


class JvpBody:
    __slots__ = ("program", "n_carry", "carry_tangent", "y_outputs", "y_tangent")


def jvp_body(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
              needs: tuple[bool, ...], k: int, samples: Sequence[Any]) -> JvpBody:
    """The body's JVP as a scan body. Inputs: the primals, then the tangents of ``needs`` (in
    input order). Outputs: carry values, carry tangents (one per differentiated carry, zero
    where the step's tangent vanishes), ys, the tangents of the ys that have one."""
    key = ("scan_jvp", needs, k, tuple(str(concrete(s).dtype) for s in samples))
    found = body.derived.get(key)
    if found is not None:
        return found
    carry_at = [i for i, kind in enumerate(kinds) if kind == "c"]
    carry_set = set(carry_out)
    y_outputs = [o for o in range(len(body.outputs)) if o not in carry_set]
    y_flags: list[bool] = []
    backend = _backend.get_backend()

    def run(engine: Any, *leaves: Any) -> list[Any]:
        outs, level = evaluate_forward(body, leaves, needs, k)

        def split(o: Any) -> tuple[Any, Any]:
            if isinstance(o, Dual) and o.level is level:
                return o.value, o.tangent
            return o, None

        carry_values, carry_tangents = [], []
        for i, o in zip(carry_at, carry_out):
            value, tangent = split(outs[o])
            carry_values.append(value)
            if needs[i]:
                if tangent is None:
                    shape, dtype = body.inputs[i].shape, body.inputs[i].dtype
                    tangent = backend.xp.zeros((k, *shape), dtype=dtype)
                carry_tangents.append(tangent)
        y_values, y_tangents = [], []
        for o in y_outputs:
            value, tangent = split(outs[o])
            y_values.append(value)
            y_flags.append(tangent is not None)
            if tangent is not None:
                y_tangents.append(tangent)
        return carry_values + carry_tangents + y_values + y_tangents

    program, _ = trace(run, samples, f"jvp({body.name})", executor=body.executor,
                       backend=body.backend)
    found = JvpBody()
    found.program = prune(program)
    n_c = len(carry_at)
    needed_carries = [j for j, i in enumerate(carry_at) if needs[i]]
    found.n_carry = n_c + len(needed_carries)
    found.carry_tangent = [None] * n_c
    for slot, j in enumerate(needed_carries):
        found.carry_tangent[j] = n_c + slot
    found.y_outputs = y_outputs
    found.y_tangent = []
    slot = found.n_carry + len(y_outputs)
    for flag in y_flags:
        found.y_tangent.append(slot if flag else None)
        slot += flag
    body.derived[key] = found
    return found


class VjpBody:
    """The VJP of a scan body: ``forward`` (a scan body returning values and the residuals to
    stack), which residuals are read from operands instead (``passed``), the scan outputs that
    get tape nodes, and the backward scan body (traced on first use)."""

    __slots__ = ("parts", "forward", "residual_source", "passed", "tape_outputs", "needs",
                 "backward", "backward_kinds", "n_ct_carry")


def vjp_body(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
              needs: tuple[bool, ...], samples: Sequence[Any]) -> VjpBody:
    key = ("scan_vjp", needs)
    found = body.derived.get(key)
    if found is not None:
        return found
    parts = vjp_parts(body, needs, samples)
    m = len(body.outputs)
    forward = parts.forward
    where = {id(v): i for i, v in enumerate(forward.inputs)}
    stacked, source, passed = [], [], []
    for atom in forward.outputs[m:]:
        i = where.get(id(atom)) if isinstance(atom, Var) else None
        if i is not None and kinds[i] in "xk":  # read where it is, not stacked again
            source.append(("passed", len(passed)))
            passed.append(i)
        else:
            source.append(("stacked", len(stacked)))
            stacked.append(atom)
    found = VjpBody()
    found.parts = parts
    found.forward = prune(Program(forward.name, forward.inputs, forward.equations,
                                  [*forward.outputs[:m], *stacked], executor=forward.executor,
                                  backend=forward.backend))
    found.residual_source = source
    found.passed = passed
    carry_at = [i for i, kind in enumerate(kinds) if kind == "c"]
    outputs = {o for i, o in zip(carry_at, carry_out) if needs[i]}
    outputs |= {o for o in parts.differentiable if o not in set(carry_out)}
    found.tape_outputs = sorted(outputs)
    found.needs = needs
    found.backward = None
    body.derived[key] = found
    return found


def backward_body(info: VjpBody, kinds: Sequence[str], carry_out: Sequence[int],
                  c_need: list[int], k_need: list[int], x_need: list[int],
                  diff_ys: list[int], operands: list[Any], new_kinds: tuple) -> Program:
    """The backward scan body, traced on first use (on row 0 of the residuals)."""
    if info.backward is not None:
        return info.backward
    parts = info.parts
    carry_at = [i for i, kind in enumerate(kinds) if kind == "c"]
    n_c, n_k = len(c_need), len(k_need)
    n_stacked = sum(1 for s, _ in info.residual_source if s == "stacked")
    passed_kinds = [kinds[i] for i in info.passed]
    n_px = passed_kinds.count("x")
    needed_inputs = [i for i, need in enumerate(info.needs) if need]
    carry_of_output = {o: j for j, o in enumerate(carry_out)}

    def run(engine: Any, *leaves: Any) -> list[Any]:
        it = iter(leaves)
        ct_c = dict(zip(c_need, (next(it) for _ in range(n_c))))
        acc = [next(it) for _ in range(n_k)]
        stacked = [next(it) for _ in range(n_stacked)]
        px = iter([next(it) for _ in range(n_px)])
        ct_y = dict(zip(diff_ys, (next(it) for _ in diff_ys)))
        pk = iter(list(it))
        passed = [next(px) if kind == "x" else next(pk) for kind in passed_kinds]
        residuals = [stacked[n] if s == "stacked" else passed[n]
                     for s, n in info.residual_source]
        seeds = []
        for o in parts.differentiable:
            if o in carry_of_output:
                j = carry_of_output[o]
                if j not in ct_c:
                    raise AssertionError(f"scan: carry {j} has a derivative but was not "
                                         f"differentiated")
                seeds.append(ct_c[j])
            else:
                seeds.append(ct_y[o])
        grads = dict(zip(needed_inputs, evaluate(parts.backward, [*residuals, *seeds])))
        return ([grads[carry_at[j]] for j in c_need]
                + [add(a, grads[i]) for a, i in zip(acc, k_need)]
                + [grads[i] for i in x_need])

    samples = [step_sample(o, kind, 1) for o, kind in zip(operands, new_kinds)]
    program, _ = trace(run, samples, f"scan_backward({parts.backward.name})",
                       executor=parts.backward.executor, backend=parts.backward.backend)
    info.backward = prune(program)
    return info.backward


# ---------------------------------------------------------------------------------------------
# the batched body (vmap of a scan)
# ---------------------------------------------------------------------------------------------


def close_batched(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
                  batched: list[bool]) -> tuple[bool, ...]:
    """Batch a carry too when its next value depends on a batched input (through any
    equation): from that step on it differs across the batch."""
    carry_at = [i for i, k in enumerate(kinds) if k == "c"]
    while True:
        live = {id(v) for v, b in zip(body.inputs, batched) if b}
        for eqn in body.equations:
            if any(isinstance(a, Var) and id(a) in live for a in eqn.inputs):
                live.update(id(v) for v in eqn.outs)
        changed = False
        for i, o in zip(carry_at, carry_out):
            atom = body.outputs[o]
            if not batched[i] and isinstance(atom, Var) and id(atom) in live:
                batched[i] = changed = True
        if not changed:
            return tuple(batched)


def batch_body(body: Program, batched: tuple[bool, ...], size: int,
               samples: Sequence[Any], unbatched: frozenset[int] = frozenset()) -> Program:
    """The body of a batched scan: ``body`` under ``vmap`` (batched inputs with a leading
    axis of length ``size``), every output batched (those the same for every element are
    broadcast, so that the batched carries and the ys keep their type) except the outputs in
    ``unbatched``: the next values of carries that stay the same for every element, which
    keep the type of their unbatched input. ``samples``: one step's operands."""
    key = ("scan_batch", batched, size, unbatched)
    found = body.derived.get(key)
    if found is not None:
        return found
    in_axes = tuple(0 if b else None for b in batched)

    def element(*args: Any) -> tuple:
        return tuple(evaluate(body, list(args)))

    def run(engine: Any, *leaves: Any) -> list[Any]:
        out_axes = tuple(None if j in unbatched else 0 for j in range(len(body.outputs)))
        outs = vmap(element, in_axes=in_axes, out_axes=out_axes)(*leaves)
        return [o if j in unbatched or (tuple(concrete(o).shape[:1]) == (size,) and
                                        len(concrete(o).shape) == len(body.atom_type(a)[0]) + 1)
                else broadcast_to(o, (size, *body.atom_type(a)[0]))
                for j, (o, a) in enumerate(zip(outs, body.outputs))]

    program, _ = trace(run, samples, f"vmap({body.name})", executor=body.executor,
                       backend=body.backend)
    found = body.derived[key] = prune(program)
    return found
