"""The jitted call: one primitive whose value, JVP and VJP are programs.

``call_program(program, *args)`` binds :data:`call_p` with the program as its parameter. Like
every primitive it is handed to the deepest level among its arguments:

* **no transform**: its implementation runs the program with its executor;
* **forward mode** (``jvp``, ``jacfwd``): its joint rule ``value_and_jvp`` binds ``call_p``
  again, on the program's JVP (:func:`minidiff.jit.derive.jvp_program`), which computes values
  and tangents in one run;
* **reverse mode** (``grad``, ``vjp``): its joint rule ``value_and_save`` binds ``call_p`` on the
  forward part of the program's VJP, which returns the values and the residuals; the tape
  records one node for the call (and, as for every primitive with several results, one per
  differentiable output). Its VJP rule binds ``call_p`` on the backward part, once with every
  output's cotangent;
* **another trace** (a jitted call inside a jitted function): its equations are recorded
  inline.

Each rule binds ``call_p``, so levels further out handle those calls in turn: that is all the
nesting there is. ``hessian`` of a jitted function is forward mode over the backward part, which
runs the backward part's JVP; ``grad`` of a jitted ``grad`` records the forward part of the
VJP of the jitted gradient. So a Python loop calling a jitted step T times records T nodes
under ``grad`` and runs the compiled JVP T times under ``jacfwd``.
"""

from __future__ import annotations

from typing import Any

from .. import backend as _backend
from ..core import ModeError, Primitive
from .derive import evaluate, jvp_program, vjp_parts
from .executors import run_program
from .program import Program

__all__ = ["call_p", "call_program", "CallPrimitive"]


def _impl(*args: Any, program: Program) -> tuple:
    return run_program(program, args)


def _no_generic_rule(*args: Any, **params: Any) -> Any:
    program = params.get("program")
    name = program.name if isinstance(program, Program) else "?"
    raise ModeError(
        f"md.jit({name}): a jitted call is differentiated by forward and reverse mode through "
        f"its own programs; this transform (stochastic triples?) has no way to run it. Call the "
        f"function without md.jit there.")


def _value_and_jvp(primals: list, tangents: list, *, program: Program) -> tuple:
    """Forward mode: the program's JVP, one run for values and tangents (None for an output
    that does not depend on a differentiated argument)."""
    needs = tuple(t is not None for t in tangents)
    jvp, flags = jvp_program(program, needs, primals, [t for t in tangents if t is not None])
    results = call_p(*primals, *(t for t in tangents if t is not None), program=jvp)
    m = len(program.outputs)
    tangent_of = iter(results[m:])
    return tuple(results[:m]), tuple(next(tangent_of) if has else None for has in flags)


def _value_and_save(primals: list, needs: tuple, *, program: Program) -> tuple:
    """Reverse mode: the forward part of the program's VJP, one run for values and residuals;
    the outputs that depend on a differentiated argument get nodes."""
    parts = vjp_parts(program, needs, primals)
    results = call_p(*primals, program=parts.forward)
    m = len(program.outputs)
    return tuple(results[:m]), tuple(results[m:]), parts.differentiable


def _vjp(gs: list, residuals: tuple, needs: tuple, *, program: Program) -> list:
    """The backward part of the program's VJP, on the residuals and one cotangent per
    differentiable output (zeros for those that got none)."""
    parts = vjp_parts(program, needs, ())
    xp = _backend.get_backend().xp
    cts = []
    for j in parts.differentiable:
        g = gs[j]
        if g is None:  # this output got no cotangent: it did not matter
            shape, dtype = parts.output_types[j]
            g = xp.zeros(shape, dtype=dtype)
        cts.append(g)
    cotangents = iter(call_p(*residuals, *cts, program=parts.backward))
    return [next(cotangents) if need else None for need in needs]


class CallPrimitive(Primitive):
    """The primitive of a jitted call (see the module notes); ``program`` is its parameter."""

    __slots__ = ()

    def inline_in_trace(self, args: tuple, params: dict) -> tuple:
        return tuple(evaluate(params["program"], args))


call_p = CallPrimitive("jit", _impl, jvp=_no_generic_rule, vjp=_vjp, multiple_results=True,
                       value_and_jvp=_value_and_jvp, value_and_save=_value_and_save)


def call_program(program: Program, *args: Any) -> tuple:
    """Bind the jitted call of ``program`` on ``args``: a tuple of its outputs."""
    return call_p(*args, program=program)
