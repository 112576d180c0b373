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

* **forward mode** (the joint rule ``value_and_jvp``) scans the body's JVP: carries (primal,
  tangent), scanned inputs (primal, tangent), constants (primal, tangent). A carry is given a
  tangent (zero at first) when its next value depends on a differentiated input, so the
  tangent of every step is carried;
* **reverse mode** (the joint rule ``value_and_save``) scans the forward part of the body's VJP,
  which returns each step's values and *residuals* (stacked as ys; residuals that are
  constants or scanned inputs are read where they are, not copied), records **one** tape node
  for the call, and its VJP rule runs a **reverse scan** of the backward part: its carry is
  the cotangent of the carry plus one running sum per differentiated constant, its scanned
  inputs the residuals and the cotangents of the ys, its ys the cotangents of the scanned
  inputs.

Under tracing (``md.jit``, an enclosing scan's body) a scan is one equation of the program,
with one variable per result and the body as its parameter; the executors run it with
:func:`_impl`, and the programs derived from the enclosing one (its JVP, its VJP's parts) hold
the scans these rules bind.

So ``grad`` of a scan costs two loops of T program calls and one node, ``hessian`` (forward
over reverse) scans the JVPs of both parts, and ``grad`` of ``grad`` the VJP of the reverse
scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import backend as _backend
from .core import ModeError, Primitive, shape_of
from .jit.derive import concrete
from .jit.executors import run_program
from .jit.loop_kernel import loop_kernel
from .jit.program import Program
from .ops import broadcast_to, transpose
from .scan_derive import (
    backward_body,
    batch_body,
    close_batched,
    close_needs,
    jvp_body,
    step_sample,
    vjp_body,
)

__all__ = ["scan_p"]


# ---------------------------------------------------------------------------------------------
# running a scan on raw arrays
# ---------------------------------------------------------------------------------------------


def _impl(*operands: Any, body: Program, kinds: tuple[str, ...], carry_out: tuple[int, ...],
          length: int, reverse: bool) -> tuple:
    backend = _backend.get_backend()
    if body.executor == "numba":
        whole = loop_kernel(body, kinds, carry_out)
        if whole is not None:
            return whole(operands, length, reverse)
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
# the primitive and its rules
# ---------------------------------------------------------------------------------------------


# -- forward mode: a scan of the body's JVP, values and tangents in one run

def _value_and_jvp(primals: list, given: list, *, body: Program, kinds: tuple,
                  carry_out: tuple, length: int, reverse: bool) -> tuple:
    k = next(shape_of(t)[0] for t in given if t is not None)
    needs = close_needs(body, kinds, carry_out, [t is not None for t in given])
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
    jvp = jvp_body(body, kinds, carry_out, needs, k, samples)
    new_kinds = (*kinds, *(kinds[i] for i, n in enumerate(needs) if n))
    results = scan_p(*primals, *tangents, body=jvp.program, kinds=new_kinds,
                     carry_out=tuple(range(jvp.n_carry)), length=length, reverse=reverse)
    out: list[Any] = [None] * len(body.outputs)
    tangent_out: list[Any] = [None] * len(body.outputs)
    for j, o in enumerate(carry_out):
        out[o] = results[j]
        slot = jvp.carry_tangent[j]
        tangent_out[o] = None if slot is None else results[slot]
    for j, o in enumerate(jvp.y_outputs):
        out[o] = results[jvp.n_carry + j]
        slot = jvp.y_tangent[j]
        tangent_out[o] = None if slot is None else _swap01(results[slot])
    return tuple(out), tuple(tangent_out)

# -- reverse mode: a scan of the forward part, one node, a reverse scan of the backward --

def _value_and_save(primals: list, tape_needs: tuple, *, body: Program, kinds: tuple,
                   carry_out: tuple, length: int, reverse: bool) -> tuple:
    needs = close_needs(body, kinds, carry_out, list(tape_needs))
    samples = [step_sample(p, kind, length) for p, kind in zip(primals, kinds)]
    vjp = vjp_body(body, kinds, carry_out, needs, samples)
    results = scan_p(*primals, body=vjp.forward, kinds=kinds, carry_out=carry_out,
                     length=length, reverse=reverse)
    m = len(body.outputs)
    saved = (list(results[m:]), [primals[i] for i in vjp.passed], vjp)
    return tuple(results[:m]), saved, vjp.tape_outputs


def _vjp(g: list, residuals: Any, needs: Sequence[bool], *, body: Program, kinds: tuple,
         carry_out: tuple, length: int, reverse: bool) -> list[Any]:
    """The rule of a scan's node: the reverse scan of the backward part, with one
    cotangent per output (None for those that got none)."""
    stacked, passed, info = residuals
    xp = _backend.get_backend().xp
    gs = [g[o] for o in info.tape_outputs]
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
        backward = backward_body(info, kinds, carry_out, c_need, k_need, x_need, diff_ys,
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


def _batch(size: int, args: Sequence[Any], batched: Sequence[bool], *, body: Program,
           kinds: tuple[str, ...], carry_out: tuple[int, ...], length: int,
           reverse: bool) -> tuple:
    """vmap of a scan: one scan of the batched body (``vmap`` of the body program), not one
    scan per element. Scanned inputs (B, T, ...) are read as (T, B, ...), so that step t reads
    the (B, ...) rows of every element; a carry that becomes batched is broadcast at step 0;
    the ys come back as (B, T, ...)."""
    given = list(batched)
    batched = close_batched(body, kinds, carry_out, list(batched))
    operands = []
    for a, kind, was, now in zip(args, kinds, given, batched):
        if kind == "x" and was:
            a = _swap01(a)
        elif now and not was:
            a = broadcast_to(a, (size, *shape_of(a)))
        operands.append(a)
    samples = [step_sample(a, kind, length) for a, kind in zip(operands, kinds)]
    carry_at = [i for i, kind in enumerate(kinds) if kind == "c"]
    unbatched = frozenset(o for i, o in zip(carry_at, carry_out) if not batched[i])
    program = batch_body(body, batched, size, samples, unbatched)
    results = scan_p(*operands, body=program, kinds=kinds, carry_out=carry_out, length=length,
                     reverse=reverse)
    carry_set = set(carry_out)
    return tuple(broadcast_to(r, (size, *shape_of(r))) if o in unbatched else
                 r if o in carry_set else _swap01(r) for o, r in enumerate(results))


scan_p = Primitive("scan", _impl, jvp=_no_generic_rule, vjp=_vjp, multiple_results=True,
                   value_and_jvp=_value_and_jvp, value_and_save=_value_and_save, batch=_batch)


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
