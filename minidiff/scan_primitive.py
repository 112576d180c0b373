"""The scan primitive: a loop of T steps whose body is a traced program, bound once.

``scan_p(*operands, body, kinds, carry_out, length, reverse)`` runs ``body`` (a
:class:`minidiff.jit.Program`) ``length`` times. Each operand is one input of the body, in the
body's input order, and ``kinds[i]`` says what it is:

* ``"c"``, a **carry**: the value at step 0; the output ``carry_out[j]`` of step t is the
  j-th carry of step t + 1, and the scan returns the last one;
* ``"x"``, a **scanned input** with a leading axis of length T: step t reads ``x[t]``;
* ``"k"``, a **constant**: every step reads the same value (arrays the body closed over that
  an enclosing transform differentiates, lifted into inputs by :mod:`minidiff.scanning`).

The body's other outputs are the **ys**: step t writes row t of a stacked result of shape
``(T, *shape)``. With ``reverse`` the steps run t = T − 1, ..., 0 (rows keep their index). The
results are the body's outputs in its order: final carries and stacked ys.

Like the jitted call, every rule binds ``scan_p`` again on a derived body, so enclosing levels
handle those scans in turn:

* **forward mode** scans the body's JVP: carries (primal, tangent), scanned inputs (primal,
  tangent), constants (primal, tangent). A carry is given a tangent (zero at first) when its
  next value depends on a differentiated input, so the tangent of every step is carried;
* **reverse mode** scans the forward part of the body's VJP, which returns each step's values
  and *residuals* (stacked as ys; residuals that are constants or scanned inputs are read
  where they are, not copied), records **one** tape node, and its rule runs a **reverse scan**
  of the backward part: its carry is the cotangent of the carry plus one running sum per
  differentiated constant, its scanned inputs the residuals and the cotangents of the ys,
  its ys the cotangents of the scanned inputs.

So ``grad`` of a scan costs two loops of T program calls and one node, ``hessian`` (forward
over reverse) scans the JVPs of both parts, and ``grad`` of ``grad`` the VJP of the reverse
scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import backend as _backend
from .core import ModeError, Primitive, close_level, open_level
from .forward import Dual, ForwardEngine
from .jit.call import _Collector, _Output, _token
from .jit.derive import concrete, evaluate, prune, vjp_parts
from .jit.executors import run_program
from .jit.program import Program, Var
from .jit.tracing import trace
from .ops import add, stack, transpose
from .reverse import ReverseEngine, TapeValue

__all__ = ["scan_p", "ScanPrimitive", "step_sample", "depends_on"]


# ---------------------------------------------------------------------------------------------
# running a scan on raw arrays
# ---------------------------------------------------------------------------------------------


def _impl(*operands: Any, body: Program, kinds: tuple[str, ...], carry_out: tuple[int, ...],
          length: int, reverse: bool) -> tuple:
    backend = _backend.get_backend()
    xp = backend.xp
    args = list(operands)
    carry_at = [i for i, k in enumerate(kinds) if k == "c"]
    x_at = [i for i, k in enumerate(kinds) if k == "x"]
    xs = [operands[i] for i in x_at]
    n_out = len(body.outputs)
    carry_set = set(carry_out)
    y_at = [o for o in range(n_out) if o not in carry_set]
    ys: list[Any] = [None] * len(y_at)
    steps = range(length - 1, -1, -1) if reverse else range(length)
    run = None  # the compiled body, looked up once (run_program compiles it on first use)
    for t in steps:
        for i, x in zip(x_at, xs):
            args[i] = x[t, ...]
        if run is None:
            outs = run_program(body, args)
            run = body.compiled[(body.executor, backend.name)]
        else:
            outs = run(args)
        for i, o in zip(carry_at, carry_out):
            args[i] = outs[o]
        for j, o in enumerate(y_at):
            y = outs[o]
            if ys[j] is None:
                ys[j] = xp.empty((length, *y.shape), dtype=y.dtype)
            ys[j][t, ...] = y
    results: list[Any] = [None] * n_out
    for i, o in zip(carry_at, carry_out):
        results[o] = args[i]
    for j, o in enumerate(y_at):
        if ys[j] is None:  # a zero-length scan: empty rows of the body's output type
            shape, dtype = body.atom_type(body.outputs[o])
            if dtype in (float, int, bool):  # a Python number the body returned
                dtype = backend.float_dtype
            ys[j] = xp.empty((0, *shape), dtype=dtype)
        results[o] = ys[j]
    return tuple(results)


def _no_generic_rule(*args: Any, **params: Any) -> Any:
    body = params.get("body")
    name = body.name if isinstance(body, Program) else "?"
    raise ModeError(
        f"md.scan({name}): a scan is differentiated by forward and reverse mode through "
        f"programs of its own; this transform (stochastic triples?) has no way to run it. "
        f"Write the loop in Python there.")


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
            live.add(id(eqn.out))
    return [isinstance(a, Var) and id(a) in live for a in program.outputs]


def _is_float(dtype: Any) -> bool:
    return "float" in str(dtype)


def _close_needs(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
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
# the primitive and its rules
# ---------------------------------------------------------------------------------------------


class ScanPrimitive(Primitive):
    """The primitive of ``md.scan`` (see the module notes)."""

    __slots__ = ()

    # -- forward mode: a scan of the body's JVP ---------------------------------------------------

    def process_forward(self, engine: ForwardEngine, args: tuple, params: dict) -> tuple:
        body: Program = params["body"]
        kinds, carry_out = params["kinds"], params["carry_out"]
        length, reverse = params["length"], params["reverse"]
        level = engine.level
        k = engine.n_directions
        primals, given = [], []
        for a in args:
            ours = isinstance(a, Dual) and a.level is level
            primals.append(a.value if ours else a)
            given.append(a.tangent if ours else None)
        needs = _close_needs(body, kinds, carry_out, [t is not None for t in given])
        xp = _backend.get_backend().xp
        tangents = []
        for i, need in enumerate(needs):
            if not need:
                continue
            t = given[i]
            if t is None:  # a carry that becomes differentiated: its tangent starts at zero
                value = concrete(primals[i])
                t = xp.zeros((k, *value.shape), dtype=value.dtype)
            elif kinds[i] == "x":  # (K, T, ...) -> (T, K, ...): step t reads row t
                t = _swap01(t)
            tangents.append(t)
        samples = [step_sample(p, kind, length) for p, kind in zip(primals, kinds)]
        samples += [step_sample(t, kinds[i], length) if kinds[i] != "x" else
                    _tangent_row(t, length)
                    for t, i in zip(tangents, (i for i, n in enumerate(needs) if n))]
        jvp = _jvp_body(body, kinds, carry_out, needs, k, samples)
        new_kinds = (*kinds, *(kinds[i] for i, n in enumerate(needs) if n))
        results = self(*primals, *tangents, body=jvp.program, kinds=new_kinds,
                       carry_out=tuple(range(jvp.n_carry)), length=length, reverse=reverse)
        out: list[Any] = [None] * len(body.outputs)
        for j, o in enumerate(carry_out):
            value = results[j]
            slot = jvp.carry_tangent[j]
            out[o] = value if slot is None else Dual(value, results[slot], level)
        for j, o in enumerate(jvp.y_outputs):
            value = results[jvp.n_carry + j]
            slot = jvp.y_tangent[j]
            out[o] = value if slot is None else Dual(value, _swap01(results[slot]), level)
        return tuple(out)

    # -- reverse mode: a scan of the forward part, one node, a reverse scan of the backward --

    def process_reverse(self, engine: ReverseEngine, args: tuple, params: dict) -> tuple:
        body: Program = params["body"]
        kinds, carry_out = params["kinds"], params["carry_out"]
        length, reverse = params["length"], params["reverse"]
        level = engine.level
        primals, tape_needs = [], []
        for a in args:
            ours = isinstance(a, TapeValue) and a.level is level
            primals.append(a.value if ours else a)
            tape_needs.append(ours)
        needs = _close_needs(body, kinds, carry_out, list(tape_needs))
        samples = [step_sample(p, kind, length) for p, kind in zip(primals, kinds)]
        vjp = _vjp_body(body, kinds, carry_out, needs, samples)
        results = self(*primals, body=vjp.forward, kinds=kinds, carry_out=carry_out,
                       length=length, reverse=reverse)
        m = len(body.outputs)
        values = list(results[:m])
        outputs = vjp.tape_outputs
        if not outputs:
            return tuple(values)
        collector = _Collector(len(outputs))
        saved = (list(results[m:]), [primals[i] for i in vjp.passed], collector)
        rule = _ScanRule(body.name, vjp, params)
        call = engine.record(rule, args, saved, _token(), {}, tuple(tape_needs))
        for slot, o in enumerate(outputs):
            values[o] = engine.record(_Output(f"scan({body.name})", o, slot, collector),
                                      (call,), None, values[o], {}, (True,))
        return tuple(values)

    def inline_in_trace(self, args: tuple, params: dict) -> tuple:
        """A scan inside a traced function (``md.jit``, another scan's body): its steps are
        recorded one after another."""
        body: Program = params["body"]
        kinds, carry_out = params["kinds"], params["carry_out"]
        length, reverse = params["length"], params["reverse"]
        values = list(args)
        carry_at = [i for i, k in enumerate(kinds) if k == "c"]
        y_at = [o for o in range(len(body.outputs)) if o not in set(carry_out)]
        rows: list[list[Any]] = [[] for _ in y_at]
        outs: list[Any] = []
        for t in (range(length - 1, -1, -1) if reverse else range(length)):
            step = [a[t, ...] if kind == "x" else v for a, v, kind in zip(args, values, kinds)]
            outs = evaluate(body, step)
            for i, o in zip(carry_at, carry_out):
                values[i] = outs[o]
            for j, o in enumerate(y_at):
                rows[j].append(outs[o])
        if not length:
            raise ModeError(f"md.scan({body.name}): a zero-length scan inside a traced "
                            f"function is not supported; skip the scan when length is 0")
        result: list[Any] = [None] * len(body.outputs)
        for i, o in zip(carry_at, carry_out):
            result[o] = values[i]
        for j, o in enumerate(y_at):
            result[o] = stack(rows[j][::-1] if reverse else rows[j])
        return tuple(result)


scan_p = ScanPrimitive("scan", _impl, jvp=_no_generic_rule, vjp=_no_generic_rule)


def _swap01(t: Any) -> Any:
    """Swap the two leading axes (directions and steps) with a differentiable op."""
    rank = len(getattr(concrete(t), "shape", ()))
    return transpose(t, (1, 0, *range(2, rank)))


def _tangent_row(t: Any, length: int) -> Any:
    value = concrete(t)
    if length:
        return value[0, ...]
    xp = _backend.get_backend().xp
    return xp.zeros(tuple(value.shape[1:]), dtype=value.dtype)


# ---------------------------------------------------------------------------------------------
# the derived bodies
# ---------------------------------------------------------------------------------------------


class _JvpBody:
    __slots__ = ("program", "n_carry", "carry_tangent", "y_outputs", "y_tangent")


def _jvp_body(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
              needs: tuple[bool, ...], k: int, samples: Sequence[Any]) -> _JvpBody:
    """The body's JVP as a scan body. Inputs: the primals, then the tangents of ``needs`` (in
    input order). Outputs: carry values, carry tangents (one per differentiated carry, zero
    where the step's tangent vanishes), ys, the tangents of the ys that have one."""
    key = ("scan_jvp", needs, k, tuple(str(concrete(s).dtype) for s in samples))
    found = body.derived.get(key)
    if found is not None:
        return found
    n = len(needs)
    carry_at = [i for i, kind in enumerate(kinds) if kind == "c"]
    carry_set = set(carry_out)
    y_outputs = [o for o in range(len(body.outputs)) if o not in carry_set]
    y_flags: list[bool] = []
    backend = _backend.get_backend()

    def run(engine: Any, *leaves: Any) -> list[Any]:
        given = iter(leaves[n:])
        forward = ForwardEngine(k)
        level = open_level(forward)
        try:
            args = [Dual(p, next(given), level) if need else p
                    for p, need in zip(leaves[:n], needs)]
            outs = evaluate(body, args)
        finally:
            close_level(level)

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
    found = _JvpBody()
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


class _VjpBody:
    """The VJP of a scan body: ``forward`` (a scan body returning values and the residuals to
    stack), which residuals are read from operands instead (``passed``), the scan outputs that
    get tape nodes, and the backward scan body (traced on first use)."""

    __slots__ = ("parts", "forward", "residual_source", "passed", "tape_outputs", "needs",
                 "backward", "backward_kinds", "n_ct_carry")


def _vjp_body(body: Program, kinds: Sequence[str], carry_out: Sequence[int],
              needs: tuple[bool, ...], samples: Sequence[Any]) -> _VjpBody:
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
    found = _VjpBody()
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


class _ScanRule:
    """The rule of a scan's node: the reverse scan of the backward part."""

    __slots__ = ("name", "info", "params")

    def __init__(self, name: str, info: _VjpBody, params: dict) -> None:
        self.name = f"scan({name})"
        self.info = info
        self.params = params

    def vjp(self, g: Any, residuals: Any, needs: Sequence[bool]) -> list[Any]:
        stacked, passed, collector = residuals
        info: _VjpBody = self.info
        params = self.params
        body: Program = params["body"]
        kinds, carry_out = params["kinds"], params["carry_out"]
        length, reverse = params["length"], params["reverse"]
        xp = _backend.get_backend().xp
        gs = collector.take()
        for slot, o in enumerate(info.tape_outputs):
            if gs[slot] is None:
                shape, dtype = info.parts.output_types[o]
                rows = () if o in carry_out else (length,)
                gs[slot] = xp.zeros((*rows, *shape), dtype=dtype)
        ct_of = dict(zip(info.tape_outputs, gs))
        carry_at = [i for i, kind in enumerate(kinds) if kind == "c"]
        c_need = [j for j, i in enumerate(carry_at) if info.needs[i]]
        k_need = [i for i, kind in enumerate(kinds) if kind == "k" and info.needs[i]]
        x_need = [i for i, kind in enumerate(kinds) if kind == "x" and info.needs[i]]
        diff_ys = [o for o in info.parts.differentiable if o not in set(carry_out)]
        passed_kinds = [kinds[i] for i in info.passed]
        ct_carry = [ct_of[carry_out[j]] for j in c_need]
        acc = [xp.zeros(tuple(body.inputs[i].shape), dtype=body.inputs[i].dtype)
               for i in k_need]
        ct_ys = [ct_of[o] for o in diff_ys]
        px = [p for p, kind in zip(passed, passed_kinds) if kind == "x"]
        pk = [p for p, kind in zip(passed, passed_kinds) if kind == "k"]
        operands = [*ct_carry, *acc, *stacked, *px, *ct_ys, *pk]
        new_kinds = ("c",) * (len(ct_carry) + len(acc)) + ("x",) * (
            len(stacked) + len(px) + len(ct_ys)) + ("k",) * len(pk)
        if not length:
            results = [*ct_carry, *acc] + [
                xp.zeros((0, *body.inputs[i].shape), dtype=body.inputs[i].dtype)
                for i in x_need]
        else:
            backward = self._backward(info, kinds, carry_out, c_need, k_need, x_need, diff_ys,
                                      operands, new_kinds)
            results = scan_p(*operands, body=backward, kinds=new_kinds,
                             carry_out=tuple(range(len(ct_carry) + len(acc))), length=length,
                             reverse=not reverse)
        cts: list[Any] = [None] * len(kinds)
        it = iter(results)
        for j in c_need:
            cts[carry_at[j]] = next(it)
        for i in k_need:
            cts[i] = next(it)
        for i in x_need:
            cts[i] = next(it)
        return [ct if need else None for ct, need in zip(cts, needs)]

    def _backward(self, info: _VjpBody, kinds: Sequence[str], carry_out: Sequence[int],
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
