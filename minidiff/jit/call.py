"""The jitted call: one primitive whose value, JVP and VJP are programs.

``call_program(program, *args)`` binds :data:`call_p` with the program as its parameter. Like
every primitive it is handed to the deepest level among its arguments:

* **no transform**: its implementation runs the program with its executor;
* **forward mode** (``jvp``, ``jacfwd``): ``process_forward`` binds ``call_p`` again, on the
  program's JVP (:func:`minidiff.jit.derive.jvp_program`), which computes values and tangents
  in one run, and boxes each output with its tangent;
* **reverse mode** (``grad``, ``vjp``): ``process_reverse`` binds ``call_p`` on the forward part
  of the program's VJP, which returns the values and the residuals, and records one tape node
  that keeps the residuals. Its rule binds ``call_p`` on the backward part. A call with
  several differentiable outputs records one node for the call and one small node per output:
  each output's node hands its cotangent to the call's node, whose backward program then runs
  once with all of them;
* **another trace** (a jitted call inside a jitted function): its equations are recorded
  inline.

Each rule binds ``call_p``, so levels further out handle those calls in turn: that is all the
nesting there is. ``hessian`` of a jitted function is forward mode over the backward part, which
runs the backward part's JVP; ``grad`` of a jitted ``grad`` records the forward part of the
VJP of the jitted gradient. So a Python loop calling a jitted step T times records T nodes
under ``grad`` and runs the compiled JVP T times under ``jacfwd``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend as _backend
from ..core import ModeError, Primitive
from ..forward import Dual, ForwardEngine
from ..reverse import ReverseEngine, TapeValue
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


class CallPrimitive(Primitive):
    """The primitive of a jitted call (see the module notes); ``program`` is its parameter."""

    __slots__ = ()

    def process_forward(self, engine: ForwardEngine, args: tuple, params: dict) -> tuple:
        program: Program = params["program"]
        level = engine.level
        primals, tangents, needs = [], [], []
        for a in args:
            ours = isinstance(a, Dual) and a.level is level
            primals.append(a.value if ours else a)
            needs.append(ours)
            if ours:
                tangents.append(a.tangent)
        jvp, flags = jvp_program(program, tuple(needs), primals, tangents)
        results = self(*primals, *tangents, program=jvp)
        m = len(program.outputs)
        tangent_of = iter(results[m:])
        return tuple(Dual(v, next(tangent_of), level) if has else v
                     for v, has in zip(results[:m], flags))

    def process_reverse(self, engine: ReverseEngine, args: tuple, params: dict) -> tuple:
        program: Program = params["program"]
        level = engine.level
        primals, needs = [], []
        for a in args:
            if isinstance(a, TapeValue) and a.level is level:
                primals.append(a.value)
                needs.append(True)
            else:
                primals.append(a)
                needs.append(False)
        needs = tuple(needs)
        parts = program.derived.get(("vjp", needs))
        if parts is None:
            parts = vjp_parts(program, needs, primals)
            parts.rule = _CallRule(program.name, parts)
        results = self(*primals, program=parts.forward)
        m = len(program.outputs)
        if not parts.differentiable:
            return tuple(results[:m])
        # constant arguments the program passes through as residuals, as they are now
        constants = [p for p, need in zip(primals, needs) if not need]
        residuals = engine.tape.keep_constants(tuple(results[m:]), constants)
        rule = parts.rule
        if m == 1:
            return (engine.record(rule, args, (residuals, None), results[0], {}, needs),)
        outs = list(results[:m])
        collector = _Collector(len(parts.differentiable))
        call = engine.record(rule, args, (residuals, collector), _token(), {}, needs)
        for slot, j in enumerate(parts.differentiable):
            outs[j] = engine.record(_Output(program.name, j, slot, collector), (call,), None,
                                    outs[j], {}, (True,))
        return tuple(outs)

    def inline_in_trace(self, args: tuple, params: dict) -> tuple:
        return tuple(evaluate(params["program"], args))


call_p = CallPrimitive("jit", _impl, jvp=_no_generic_rule, vjp=_no_generic_rule)


def call_program(program: Program, *args: Any) -> tuple:
    """Bind the jitted call of ``program`` on ``args``: a tuple of its outputs."""
    return call_p(*args, program=program)


class _Collector:
    """Where the output nodes of one call put their cotangents during a backward pass, for
    the call's node to read (a tape node has one cotangent; a call may have several outputs)."""

    __slots__ = ("gs",)

    def __init__(self, n: int) -> None:
        self.gs: list[Any] = [None] * n

    def take(self) -> list[Any]:
        gs, self.gs = self.gs, [None] * len(self.gs)
        return gs


_TOKENS: dict[str, Any] = {}


def _token() -> Any:
    """The cotangent output nodes pass to their call's node to say "run" (a 0-d zero of the
    current backend; its value is never read), also the call node's own stand-in value."""
    backend = _backend.get_backend()
    token = _TOKENS.get(backend.name)
    if token is None:
        token = _TOKENS[backend.name] = backend.xp.zeros(())
    return token


class _Output:
    """The rule of one output's node: hand its cotangent to the call's node."""

    __slots__ = ("name", "index", "slot", "collector")

    def __init__(self, name: str, index: int, slot: int, collector: _Collector) -> None:
        self.name = f"jit({name})[{index}]"
        self.index = index
        self.slot = slot
        self.collector = collector

    def vjp(self, g: Any, residuals: Any, needs: Sequence[bool]) -> list[Any]:
        self.collector.gs[self.slot] = g  # the tape has summed this output's cotangent
        return [_token()]


class _CallRule:
    """The rule of a call's node: run the backward part on the residuals and cotangents."""

    __slots__ = ("name", "parts")

    def __init__(self, name: str, parts: Any) -> None:
        self.name = f"jit({name})"
        self.parts = parts

    def vjp(self, g: Any, residuals: Any, needs: Sequence[bool]) -> list[Any]:
        kept, collector = residuals
        parts = self.parts
        if collector is None:
            gs = [g]
        else:
            gs = collector.take()
            xp = _backend.get_backend().xp
            for slot, j in enumerate(parts.differentiable):
                if gs[slot] is None:  # this output got no cotangent: it did not matter
                    shape, dtype = parts.output_types[j]
                    gs[slot] = xp.zeros(shape, dtype=dtype)
        cotangents = iter(call_p(*kept, *gs, program=parts.backward))
        return [next(cotangents) if need else None for need in needs]
