"""Measuring memory: how much a call allocates at its peak, and how much a tape keeps.

Two instruments, answering two questions:

* :func:`measure` runs a call and reports the peak bytes allocated during it and its wall time.
  On NumPy it uses ``tracemalloc`` (NumPy reports its buffers to it); on CuPy the memory pool's
  high-water mark. This is what a user pays: primal, tangents, tape and temporaries together.
* :func:`tape_memory` runs ``grad`` of a function and reports what the tape kept: residual
  bytes at peak, by primitive. This is what reverse mode adds, and what checkpointing cuts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import backend as _backend
from .core import shape_of
from .transforms import _backward, record_on_tape

__all__ = ["Measurement", "measure", "tape_memory"]


@dataclass(frozen=True)
class Measurement:
    """The result of a call, the peak bytes allocated while it ran, and its wall time."""

    result: Any
    peak_bytes: int
    seconds: float

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def measure(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Measurement:
    """Run ``fn(*args, **kwargs)`` and return its result, peak allocation and wall time.

    The peak is relative to what was allocated when the call started, so it counts only what
    the call itself needed. Tracing memory slows NumPy code down somewhat, so the wall time of
    a measured call is an upper bound.
    """
    tracker = _backend.get_backend().peak_tracker()
    with tracker:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
    return Measurement(result, tracker.peak, seconds)


def tape_memory(f: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Differentiate scalar ``f`` at ``args`` (all arguments) by reverse mode and return the
    tape's account: ``bytes_peak`` (the most residual bytes held at once, which is at the end of
    the forward pass), ``bytes_now`` after the backward pass (0: everything freed),
    ``nodes`` and ``peak_by_primitive``."""
    engine, level, out, inputs = record_on_tape(f, args, range(len(args)), "tape_memory")
    if shape_of(out) != ():
        raise TypeError(f"tape_memory: f must return a scalar, got shape {shape_of(out)}")
    _backward(engine, level, out, inputs, seed=None, retain=False)  # frees as it goes
    return engine.tape.memory()
