"""Recomputation for checkpointing: replayed regions, the reverse level switched off and on,
and the pull-back of a segment re-run on a sub-tape.

Random numbers must repeat too. A step that draws from a generator made *outside* it would
see new numbers each time it is recomputed (the generator has advanced), and the gradient would
silently be that of another path. So under reverse mode every run of a step (or of a
checkpointed function) is a *replayed region*, and :mod:`minidiff.random` asks
:func:`check_draw` before it advances a generator: one made before the region opened raises
:class:`ReplayError`, and so does a generator made inside from fresh entropy
(:func:`check_entropy`). Generators made inside the step from a seed, or as a keyed stream
``rng.stream(("step", t))`` of an outer ``rng`` (which does not advance it), are recreated
identically by every run and may draw.

A recomputation must also read what the forward pass read: :func:`check_recomputed` compares
its value with the forward pass's and raises :class:`ReplayError` when they differ.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import backend as _backend
from . import core
from .core import Box, Level, raw, shape_of
from .ops import concatenate, reshape
from .reverse import ReverseEngine, Tape, TapeValue, same_values

__all__ = ["Packing", "Recomputation", "ReplayError", "birth_mark", "check_draw",
           "check_entropy", "check_recomputed", "innermost_reverse_level", "level_active",
           "pull_back", "replayable", "unbox"]


# ---------------------------------------------------------------------------------------------
# Replayed regions: a recomputed step must draw the same random numbers
# ---------------------------------------------------------------------------------------------


class ReplayError(RuntimeError):
    """A step that checkpointing will run again drew from a generator made outside it."""


_marks = itertools.count(1)  # each region's own number
# the replayed regions open in this thread, innermost last: (number, what is replayed)
_regions: contextvars.ContextVar[tuple[tuple[int, str], ...]] = contextvars.ContextVar(
    "minidiff_replayed_regions", default=())


def birth_mark() -> tuple[tuple[int, str], ...]:
    """The replayed regions open now in this thread: ``minidiff.random`` stamps every generator
    it makes with them, for :func:`check_draw`."""
    return _regions.get()


def check_draw(born: tuple[tuple[int, str], ...], what: str) -> None:
    """Refuse a draw (by the sampler ``what``) that advances a generator stamped ``born``
    unless it was made inside the innermost replayed region open now (in this thread): any
    other generator would be found advanced by the region's recomputation, which would draw
    other numbers."""
    regions = _regions.get()
    if regions and regions[-1] not in born:
        region = regions[-1][1]
        raise ReplayError(
            f"{what}: a {region} step drew from a random generator made outside the step. The "
            f"backward pass runs the step again, the generator would have moved on, and the "
            f"gradient would be that of other random numbers. Draw from a keyed stream made "
            f"inside the step instead, e.g. rng.stream(('step', t)).normal(...), which gives "
            f"the same numbers every time it is made (or draw them before the loop and index "
            f"them by step)")


def check_entropy(what: str) -> None:
    """Refuse fresh entropy (a generator seeded from the operating system, by ``what``) inside
    a replayed region: every run of the region would draw other numbers."""
    regions = _regions.get()
    if regions:
        raise ReplayError(
            f"{what}: a {regions[-1][1]} step made a generator from fresh entropy (seed None). "
            f"The backward pass runs the step again and would draw other numbers, so the "
            f"gradient would be wrong. Pass a seed, or a keyed stream of a generator made "
            f"before the loop, e.g. rng.stream(('step', t))")


@contextlib.contextmanager
def _replayed(what: str) -> Iterator[None]:
    token = _regions.set(_regions.get() + ((next(_marks), what),))
    try:
        yield
    finally:
        _regions.reset(token)


def replayable(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``fn`` run as a replayed region (see :func:`check_draw`)."""
    def run(*args: Any) -> Any:
        with _replayed(what):
            return fn(*args)

    return run


# ---------------------------------------------------------------------------------------------
# Levels: which reverse level to checkpoint at, and running with it switched off or on
# ---------------------------------------------------------------------------------------------


def innermost_reverse_level() -> Level | None:
    """The deepest open level if it is a reverse-mode level (else None: nothing to save)."""
    stack = core.active_levels()
    if stack and isinstance(stack[-1], ReverseEngine):
        return stack[-1]
    return None


@contextlib.contextmanager
def level_active(level: Level, active: bool) -> Iterator[None]:
    """Run with ``level`` switched off (values boxed at it act as their primals, so nothing
    is recorded) or, inside a pull-back called after its transform returned, back on."""
    previous = level.active
    level.active = active
    try:
        yield
    finally:
        level.active = previous


@contextlib.contextmanager
def _recording_on(level: Level, tape: Tape) -> Iterator[None]:
    """Send what ``level`` records to ``tape`` (a sub-tape) for the duration."""
    engine = level
    previous = engine.tape
    engine.tape = tape
    # back on the stack too: a transform opened while the segment re-records (a scan's
    # trace, a nested grad) must be deeper than this level, not tied with it
    token = None if level in core.active_levels() else core.reopen_level(level)
    try:
        with level_active(level, True):
            yield
    finally:
        if token is not None:
            core.restore_levels(token)
        engine.tape = previous


def unbox(x: Any, level: Level) -> Any:
    return x.value if isinstance(x, Box) and x.level is level else x


def pull_back(level: Level, fn: Callable[..., Any], inputs: Sequence[Any], seed: Any,
              traced: Sequence[bool] | None = None, expected: Any = None,
              what: str = "checkpoint") -> list[Any]:
    """Re-run ``fn`` on ``inputs`` recording on a sub-tape, and pull ``seed`` back to them.

    Only inputs marked in ``traced`` (all by default) are boxed; the others are passed as they
    are. Values ``fn`` captured from the enclosing tape (or a tape enclosing that) are parents
    of nodes on the sub-tape: its backward pass adds their cotangents to their nodes, where
    the enclosing tape's pass (under way: it is running this segment's rule) finds them. With
    ``expected`` (the value the forward pass computed), a recomputation that differs from it
    raises :class:`ReplayError`. Returns one cotangent per input (None where none flows)."""
    sub = Tape()
    traced = [True] * len(inputs) if traced is None else traced
    with _recording_on(level, sub):
        boxed = [sub.add_input(x, level) if t else x for x, t in zip(inputs, traced)]
        out = fn(*boxed)
    if expected is not None:
        check_recomputed(unbox(out, level), expected, what)
    if not (isinstance(out, TapeValue) and out.level is level
            and out.node.index < len(sub.nodes) and sub.nodes[out.node.index] is out.node):
        return [None] * len(inputs)  # the output is not recorded on the sub-tape
    cotangents = sub.backward(out, seed)
    return [cotangents[b.node.index] if t else None for b, t in zip(boxed, traced)]


def check_recomputed(again: Any, before: Any, what: str) -> None:
    """Refuse a recomputation whose value differs from the forward pass's (NaN equal to NaN).

    The same operations on the same inputs give the same bits, so a difference means the
    function read something that changed in between: most often a NumPy array it closes over,
    updated in place after the forward pass. Its backward pass would then differentiate another
    function, silently."""
    again, before = raw(again), raw(before)
    if again is before:
        return
    xp = _backend.get_backend().xp
    if not same_values(xp.asarray(again), xp.asarray(before)):
        raise ReplayError(
            f"{what}: recomputing it for the backward pass gave other values than the forward "
            f"pass. It reads state that changed in between, most often a NumPy array it closes "
            f"over that was updated in place after the forward pass (checkpointing re-reads "
            f"what the function reads). Pass that array as an argument, or copy it before "
            f"changing it.")


class Recomputation:
    """The rule of a checkpoint node: a recomputation, not a formula.

    A primitive's node keeps what its VJP formula reads. A checkpoint node keeps the inputs of
    a whole segment (``checkpoint``'s arguments, ``checkpointed_loop``'s snapshots), and its
    pull-back ``pull_back(g, residuals)`` re-runs the segment on a sub-tape to send ``g`` back
    through it (one cotangent per argument). It answers the tape's ``vjp`` call like a rule.
    """

    __slots__ = ("name", "pull_back")

    def __init__(self, name: str, pull_back: Callable[[Any, Any], list[Any]]) -> None:
        self.name = name
        self.pull_back = pull_back

    def vjp(self, g: Any, residuals: Any, needs: Sequence[bool]) -> list[Any]:
        return self.pull_back(g, residuals)

    def __repr__(self) -> str:
        return f"<minidiff recomputation {self.name}>"


class Packing:
    """A tuple of arrays as one flat vector (a tape node has one output), and back."""

    def __init__(self, example: tuple) -> None:
        self.shapes = [shape_of(x) for x in example]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.single = len(example) == 1

    def pack(self, pieces: tuple) -> Any:
        if self.single:
            return pieces[0]
        return concatenate([reshape(p, (-1,)) for p in pieces])

    def split(self, flat: Any) -> tuple:
        if self.single:
            return (flat,)
        pieces, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            pieces.append(reshape(flat[start:start + size], shape))
            start += size
        return tuple(pieces)
