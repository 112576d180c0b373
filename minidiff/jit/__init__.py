"""``md.jit``: trace a function into a program once, then run it with no per-op dispatch.

    step = md.jit(step)                  # a decorator too: @md.jit, @md.jit(static_argnums=1)
    state = step(state, zeta, update)    # the first call traces, later calls replay
    print(md.jit(step).lower(state, zeta, update))   # the program, as a listing
    step.cache_info()                    # hits, misses (traces), compile time

The pieces, in the order a call meets them:

=================  =========================================================================
module             what it does
=================  =========================================================================
program            the program as data: typed variables, one equation per primitive, listing
tracing            the tracing level: records every primitive bound on its tracers, honestly
derive             programs derived from a program: its JVP; its VJP split into a forward part
                   (values and residuals) and a backward part
simplify           exact rewrites of the copy an executor compiles (repeats merged, negations
                   carried to where they cancel, dead equations pruned)
executors          the executor registry: compile a program for a backend, run it
replay             the default executor: straight-line Python over raw implementations, with
                   buffers reused by liveness analysis
fusion             the ``numba`` executor: chains of elementwise ops fused into compiled loops
call               the jitted call, one primitive whose JVP and VJP are derived programs
api                ``jit``, ``make_program``, the signature cache and ``cache_info``
=================  =========================================================================

``docs/jit.md`` explains tracing, fusion and buffer reuse with an example.

This module is callable: ``md.jit(f, ...)`` is :func:`minidiff.jit.api.jit`, so the package
and the function share one name without one hiding the other.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from . import fusion, replay
from .api import JitCacheInfo, Jitted, jit, make_program
from .call import call_p, call_program
from .derive import evaluate
from .executors import executor_names, register_executor
from .program import Const, Equation, Program, Var
from .tracing import JitError

__all__ = ["jit", "make_program", "Jitted", "JitCacheInfo", "JitError", "Program", "Equation",
           "Var", "Const", "call_p", "call_program", "evaluate", "executor_names",
           "register_executor", "fusion", "replay"]


class _CallableModule(types.ModuleType):
    """The ``minidiff.jit`` module, which is also the ``jit`` function."""

    def __call__(self, fun: Any = None, **options: Any) -> Any:
        return jit(fun, **options)


sys.modules[__name__].__class__ = _CallableModule
