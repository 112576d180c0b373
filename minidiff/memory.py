"""Measuring memory: how much a call allocates at its peak, and how much a tape keeps.

Two instruments, answering two questions:

* :func:`measure` runs a call and reports the peak bytes allocated during it and its wall time.
  On NumPy it uses ``tracemalloc`` (NumPy reports its buffers to it); on CuPy the memory pool's
  high-water mark. This is what a user pays: primal, tangents, tape and temporaries together.
* :func:`tape_memory` runs ``grad`` of a function on a :class:`MeteredTape` and reports what
  the tape kept: residual bytes at peak, by primitive. This is what reverse mode adds, and what
  checkpointing cuts.

The metered tape is the reverse engine's tape plus an account. Each buffer its residuals keep
alive (:func:`residual_buffers`) is charged once, to the first node that keeps it, and leaves
the account when the last node holding it is freed. A plain ``grad`` records on a plain tape
and counts nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import backend as _backend
from .core import Box, shape_of
from .reverse import Node, Tape
from .transforms import _backward, record_on_tape

__all__ = ["Measurement", "measure", "MeteredTape", "residual_buffers",
           "tape_memory"]


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


# ---------------------------------------------------------------------------------------------
# The metered tape
# ---------------------------------------------------------------------------------------------


def residual_buffers(x: Any) -> dict[int, int]:
    """The buffers a residual keeps alive, as ``{key: nbytes}``: raw arrays, inside tuples and
    inside boxes of lower levels (whose tangents count too). A buffer appears once however
    often it is referenced, and a view is charged for the array that owns its memory."""
    backend = _backend.get_backend()
    found: dict[int, int] = {}
    stack = [x]
    while stack:
        item = stack.pop()
        if item is None or type(item) in (int, float, bool):
            continue
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, Box):
            stack.append(item.value)
            tangent = getattr(item, "tangent", None)
            if tangent is not None:
                stack.append(tangent)
        elif isinstance(item, backend.array_type):
            key, nbytes = backend.memory_of(item)
            found[key] = nbytes
    return found


class MeteredTape(Tape):
    """A tape that counts the bytes of the residuals it holds, now and at peak, by primitive.

    Attributes:
        bytes_now: residual bytes held now.
        bytes_peak: the most held at once.
        bytes_by_primitive: bytes held now, by the name of the node that was charged.
        peak_by_primitive: the most each primitive's nodes held at once.

    What each node cost is :meth:`nbytes_of`: the bytes it added to the account (buffers
    already kept by an earlier node are not charged again).
    """

    def __init__(self) -> None:
        super().__init__()
        self.bytes_now = 0
        self.bytes_peak = 0
        self.bytes_by_primitive: dict[str, int] = defaultdict(int)
        self.peak_by_primitive: dict[str, int] = defaultdict(int)
        self._held: dict[int, list] = {}  # buffer key -> [holders, nbytes, charged primitive]
        self._charges: dict[int, tuple[int, tuple[int, ...]]] = {}  # node index -> (bytes
        # charged, keys of the buffers its residuals keep alive)

    def record(self, rule: Any, parents: tuple, residuals: Any, params: dict,
               needs: tuple | None = None) -> Node:
        node = super().record(rule, parents, residuals, params, needs)
        name = node.name
        charged = 0
        buffers = residual_buffers(residuals)
        for key, nbytes in buffers.items():
            entry = self._held.get(key)
            if entry is None:
                self._held[key] = [1, nbytes, name]
                charged += nbytes
            else:
                entry[0] += 1
        self._charges[node.index] = (charged, tuple(buffers))
        if charged:
            self.bytes_now += charged
            self.bytes_peak = max(self.bytes_peak, self.bytes_now)
            self.bytes_by_primitive[name] += charged
            self.peak_by_primitive[name] = max(self.peak_by_primitive[name],
                                               self.bytes_by_primitive[name])
        return node

    def free(self, node: Node) -> bool:
        """Drop a node's residuals; a buffer leaves the account when its last holder goes."""
        if not super().free(node):
            return False
        for key in self._charges.get(node.index, (0, ()))[1]:
            entry = self._held[key]
            entry[0] -= 1
            if entry[0] == 0:
                del self._held[key]
                self.bytes_now -= entry[1]
                self.bytes_by_primitive[entry[2]] -= entry[1]
        return True

    def nbytes_of(self, node: Node) -> int:
        """The bytes ``node`` added to the account when it was recorded."""
        return self._charges.get(node.index, (0, ()))[0]

    def memory(self) -> dict[str, Any]:
        """Bytes of residuals held now and at peak, with a breakdown by primitive."""
        return {
            "nodes": len(self.nodes),
            "bytes_now": self.bytes_now,
            "bytes_peak": self.bytes_peak,
            "bytes_by_primitive": {k: v for k, v in self.bytes_by_primitive.items() if v},
            "peak_by_primitive": dict(self.peak_by_primitive),
        }


def tape_memory(f: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Differentiate scalar ``f`` at ``args`` (all arguments) by reverse mode on a metered tape
    and return its account: ``bytes_peak`` (the most residual bytes held at once, which is at
    the end of the forward pass), ``bytes_now`` after the backward pass (0: everything freed),
    ``nodes`` and ``peak_by_primitive``."""
    engine, level, out, inputs = record_on_tape(f, args, range(len(args)), "tape_memory",
                                                tape=MeteredTape())
    if shape_of(out) != ():
        raise TypeError(f"tape_memory: f must return a scalar, got shape {shape_of(out)}")
    _backward(engine, level, out, inputs, seed=None, retain=False)  # frees as it goes
    return engine.tape.memory()
