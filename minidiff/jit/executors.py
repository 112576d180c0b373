"""Executors: what runs a program's equations on raw arrays.

An executor compiles a :class:`Program` for a backend into a function ``run(args) -> tuple of
outputs``; the result is cached on the program, per executor and backend. ``"replay"`` (every
backend) and ``"numba"`` (NumPy, with numba installed: the ``jit`` extra) register themselves
here; ``md.jit(f, executor=...)`` picks one by name, and programs derived from a program
(its JVP and VJP parts) run on the same executor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend as _backend
from .program import Program
from .tracing import JitError

__all__ = ["register_executor", "executor_names", "check_executor", "run_program",
           "compile_seconds"]

Compiler = Callable[[Program, _backend.Backend], Callable[[Sequence[Any]], tuple]]
_EXECUTORS: dict[str, Compiler] = {}
_CHECKS: dict[str, Callable[[], None]] = {}
_SECONDS = {"compile": 0.0}


def register_executor(name: str, compile_program: Compiler,
                      check: Callable[[], None] | None = None) -> None:
    """Make ``name`` an executor: ``compile_program(program, backend)`` returns the function
    that runs it; ``check()`` raises when the executor cannot be used here (a missing extra)."""
    _EXECUTORS[name] = compile_program
    if check is not None:
        _CHECKS[name] = check


def executor_names() -> tuple[str, ...]:
    return tuple(_EXECUTORS)


def check_executor(name: str) -> str:
    """``name`` if it is an executor that can run here, else a clear error."""
    if name not in _EXECUTORS:
        raise ValueError(f"md.jit: unknown executor {name!r}; choose one of "
                         f"{', '.join(map(repr, _EXECUTORS))}")
    check = _CHECKS.get(name)
    if check is not None:
        check()
    return name


def run_program(program: Program, args: Sequence[Any]) -> tuple:
    """Run ``program`` on raw arrays with its executor (compiling it on first use)."""
    backend = _backend.get_backend()
    key = (program.executor, backend.name)
    run = program.compiled.get(key)
    if run is None:
        if backend.name != program.backend:
            raise JitError(f"md.jit({program.name}): the program was traced on the "
                           f"{program.backend!r} backend and cannot run on {backend.name!r}; "
                           f"call the jitted function again under this backend to retrace")
        started = time.perf_counter()
        run = program.compiled[key] = _EXECUTORS[program.executor](program, backend)
        seconds = time.perf_counter() - started
        program.compile_seconds += seconds
        _SECONDS["compile"] += seconds
    return run(args)


def compile_seconds() -> float:
    """Seconds spent compiling programs so far, in this process (all executors)."""
    return _SECONDS["compile"]
