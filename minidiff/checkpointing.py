"""Checkpointing: trade recomputation for reverse-mode memory.

Reverse mode keeps every residual of the forward pass until the backward pass reads it, so the
tape of a T-step simulation grows like T. Checkpointing keeps less and recomputes the rest:

* ``checkpoint(f)``: ``f`` records one tape node that keeps only its inputs. When the backward
  pass reaches it, ``f`` runs again on a fresh sub-tape, is pulled back, and the sub-tape is
  dropped (the node's rule is a :class:`Recomputation`, not a formula). Memory: the inputs
  instead of every residual inside ``f``; cost: one more run of ``f``.
* ``checkpointed_loop(step, state, n_steps, snapshots)``: ``n_steps`` applications of ``step``
  record one node that keeps at most ``snapshots`` states. Its backward pass follows Griewank
  and Walther's binomial schedule (revolve, :mod:`minidiff.revolve`), which does the fewest
  step recomputations possible with that many stored states.

Both work with values the function closes over (model parameters, say): those are recorded
on the enclosing tape as usual, and the sub-tapes hand their cotangents back to it. Under
forward mode, or with no transform at all, both are the plain computation. Gradients are exact:
the recomputation repeats the same floating-point operations.

Random numbers must repeat too. A step that draws from a generator made *outside* it would
see new numbers each time it is recomputed (the generator has advanced), and the gradient would
silently be that of another path. So under reverse mode every run of a step (or of a
checkpointed function) is a *replayed region*, and :mod:`minidiff.random` asks
:func:`check_draw` before it advances a generator: one made before the region opened raises
:class:`ReplayError`, and so does a generator made inside from fresh entropy
(:func:`check_entropy`). Generators made inside the step from a seed, or as a keyed stream
``rng.stream(("step", t))`` of an outer ``rng`` (which does not advance it), are recreated
identically by every run and may draw.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import backend as _backend
from . import core
from .core import Box, Level, raw, shape_of
from .ops import concatenate, reshape, zeros
from .pytree import PyTreeDef, _describe_value, tree_flatten
from .reverse import ReverseEngine, Tape, TapeValue, same_values
from .revolve import (
    ADVANCE,
    FIRSTTURN,
    RESTORE,
    TAKESHOT,
    YOUTURN,
    Action,
    revolve_schedule,
)

__all__ = ["checkpoint", "checkpointed_loop", "revolve_schedule", "default_snapshots",
           "Recomputation", "ReplayError", "birth_mark", "check_draw", "check_entropy"]

State = Any


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


def _replayable(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``fn`` run as a replayed region (see :func:`check_draw`)."""
    def run(*args: Any) -> Any:
        with _replayed(what):
            return fn(*args)

    return run


# ---------------------------------------------------------------------------------------------
# Levels: which reverse level to checkpoint at, and running with it switched off or on
# ---------------------------------------------------------------------------------------------


def _innermost_reverse_level() -> Level | None:
    """The deepest open level if it is a reverse-mode level (else None: nothing to save)."""
    stack = core.active_levels()
    if stack and isinstance(stack[-1].engine, ReverseEngine):
        return stack[-1]
    return None


@contextlib.contextmanager
def _level_active(level: Level, active: bool) -> Iterator[None]:
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
    engine = level.engine
    previous = engine.tape
    engine.tape = tape
    try:
        with _level_active(level, True):
            yield
    finally:
        engine.tape = previous


def _unbox(x: Any, level: Level) -> Any:
    return x.value if isinstance(x, Box) and x.level is level else x


def _pull_back(level: Level, fn: Callable[..., Any], inputs: Sequence[Any], seed: Any,
               outer: Tape, traced: Sequence[bool] | None = None,
               expected: Any = None, what: str = "checkpoint") -> list[Any]:
    """Re-run ``fn`` on ``inputs`` recording on a sub-tape, and pull ``seed`` back to them.

    Only inputs marked in ``traced`` (all by default) are boxed; the others are passed as they
    are. Cotangents of values ``fn`` captured from ``outer`` (or a tape enclosing it) are added
    there. With ``expected`` (the value the forward pass computed), a recomputation that
    differs from it raises :class:`ReplayError`. Returns one cotangent per input (None where
    none flows)."""
    sub = Tape()
    traced = [True] * len(inputs) if traced is None else traced
    with _recording_on(level, sub):
        boxed = [sub.add_input(x, level) if t else x for x, t in zip(inputs, traced)]
        out = fn(*boxed)
    if expected is not None:
        check_recomputed(_unbox(out, level), expected, what)
    if not (isinstance(out, TapeValue) and out.level is level and sub.owns(out.node)):
        return [None] * len(inputs)
    cotangents = sub.backward(out, seed, on_foreign=outer.accumulate)
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


# ---------------------------------------------------------------------------------------------
# checkpoint(f)
# ---------------------------------------------------------------------------------------------


def checkpoint(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` with its internals recomputed, not stored, under reverse mode.

    ``f`` takes arrays (positional and keyword arguments, or tuples, lists and dicts of them)
    and returns an array or such a pytree of arrays; integer and boolean outputs pass through
    as constants. Under ``grad``/``vjp`` the tape keeps only its inputs (one node, whose output
    is the floating outputs packed into one vector); the backward pass re-runs ``f`` to pull
    the cotangent through it. A function is read at the forward pass *and* re-read at the
    backward pass: if what it reads changed in between (an array it closes over, updated in
    place), the recomputation differs, and that raises :class:`ReplayError` rather than
    differentiating another function.
    """
    name = f"checkpoint({getattr(f, '__name__', 'f')})"

    @functools.wraps(f)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        level = _innermost_reverse_level()
        if level is None:
            return f(*args, **kwargs)
        leaves, tree = tree_flatten((args, kwargs))
        traced = [isinstance(x, TapeValue) and x.level is level for x in leaves]

        def call(*flat: Any) -> Any:
            positional, keywords = tree.unflatten(flat)
            return f(*positional, **keywords)

        replayed = _replayable(call, "checkpoint")
        keep = level.engine.tape.keep  # constants as they are now, for the recomputation
        primals = [_unbox(a, level) if t else keep(a) for a, t in zip(leaves, traced)]
        with _level_active(level, False):
            out = replayed(*primals)
        out_leaves, out_tree = tree_flatten(out)
        floating = [_is_floating(v) for v in out_leaves]
        if not any(floating):
            return out  # nothing to differentiate: no node
        packing = _Packing(tuple(v for v, fl in zip(out_leaves, floating) if fl))

        def packed(*flat: Any) -> Any:
            again = tree_flatten(replayed(*flat))[0]
            return packing.pack(tuple(v for v, fl in zip(again, floating) if fl))

        outer = level.engine.tape
        forward = packing.pack(tuple(v for v, fl in zip(out_leaves, floating) if fl))

        def pull_back(g: Any, residuals: Any) -> list[Any]:
            return _pull_back(level, packed, residuals, g, outer, traced, forward, name)

        node = level.engine.record(Recomputation(name, pull_back), leaves, tuple(primals),
                                   forward)
        pieces = iter(packing.split(node))
        return out_tree.unflatten([next(pieces) if fl else v
                                   for v, fl in zip(out_leaves, floating)])

    return checkpointed


def _is_floating(x: Any) -> bool:
    """True for a floating-point array (or a box of one): an output a derivative flows to."""
    dtype = getattr(raw(x), "dtype", None)
    return dtype is not None and _backend.get_backend().xp.isdtype(dtype, "real floating")


# ---------------------------------------------------------------------------------------------
# checkpointed_loop
# ---------------------------------------------------------------------------------------------


def default_snapshots(n_steps: int) -> int:
    """⌈√n⌉ snapshots: memory grows like √n while each step is recomputed at most about twice
    (with s snapshots revolve reverses C(s+r, s) steps advancing none more than r times, and
    C(√n + 2, 2) > n), a balance that suits long simulations."""
    return max(1, math.isqrt(max(n_steps - 1, 0)) + 1)


def _state_leaves(state: Any, where: str) -> tuple[tuple, PyTreeDef]:
    """The leaves of a state pytree as arrays (Python numbers become 0-d float64 arrays), and
    its structure."""
    leaves, tree = tree_flatten(state)
    b = _backend.get_backend()
    out = []
    for leaf, path in zip(leaves, tree.paths()):
        if isinstance(leaf, bool | int | float):
            leaf = b.asarray(float(leaf))
        elif not (isinstance(leaf, Box) or hasattr(leaf, "shape")):
            raise TypeError(f"checkpointed_loop: {where}{' at ' + path if path else ''} is "
                            f"{_describe_value(leaf)}; the state must be arrays or numbers, or "
                            f"tuples, lists and dicts of them")
        out.append(leaf)
    return tuple(out), tree


def _signature(state: tuple) -> tuple:
    return tuple((shape_of(s), str(raw(s).dtype)) for s in state)


def _checked_step(step: Callable[[State, int], State], tree: PyTreeDef,
                  signature: tuple) -> Callable[[tuple, int], tuple]:
    """``step`` on the tuple of the state's leaves, refusing steps that change the state's
    structure, shapes or dtypes."""

    def run(state: tuple, t: int) -> tuple:
        new, new_tree = _state_leaves(step(tree.unflatten(state), t), f"step {t}'s new state")
        if new_tree != tree:
            raise ValueError(f"checkpointed_loop: step {t} changed the state's structure from "
                             f"{tree._describe()} to {new_tree._describe()}; the state must "
                             f"keep its structure from step to step")
        got = _signature(new)
        if got != signature:
            changed = [f"{'at ' + path + ' ' if path else ''}from {before} to {after}"
                       for path, before, after in zip(tree.paths(), signature, got)
                       if before != after]
            raise ValueError(
                f"checkpointed_loop: step {t} changed the state {'; '.join(changed)} (shape, "
                f"dtype); the state must keep its shapes and dtypes from step to step"
            )
        return new

    return run


def checkpointed_loop(step: Callable[[State, int], State], state: State, n_steps: int,
                      snapshots: int | None = None) -> State:
    """Run ``state = step(state, t)`` for t = 0..n_steps-1 and return the final state.

    Args:
        step: maps a state (an array, a number, or a pytree of them: tuples, lists and dicts)
            and the step index to the next state of the same structure, shapes and dtypes.
            It may close over parameters.
        state: the initial state; Python numbers in it become 0-d float64 arrays.
        n_steps: number of steps (>= 0).
        snapshots: states stored at once under reverse mode (>= 1); default
            :func:`default_snapshots`, ⌈√n_steps⌉. One more state (the last but one) is kept
            from the forward pass for the first turn.

    Under reverse mode the whole loop is one tape node that keeps only its snapshots; its
    backward pass follows ``revolve_schedule(n_steps, snapshots)``, recording one step at a
    time on a sub-tape. Under forward mode, or with plain arrays, it is an ordinary loop.
    """
    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"checkpointed_loop: n_steps must be an int >= 0, got {n_steps!r}")
    if snapshots is not None and (not isinstance(snapshots, int) or snapshots < 1):
        raise ValueError(f"checkpointed_loop: snapshots must be an int >= 1, got {snapshots!r}")
    states, tree = _state_leaves(state, "the initial state")
    signature = _signature(states)
    run = _checked_step(step, tree, signature)

    def repack(final: tuple) -> State:
        return tree.unflatten(final)

    level = _innermost_reverse_level()
    if level is None or n_steps == 0:
        for t in range(n_steps):
            states = run(states, t)
        return repack(states)

    snapshots = default_snapshots(n_steps) if snapshots is None else snapshots
    schedule = revolve_schedule(n_steps, snapshots)
    run = _replayable(run, "checkpointed_loop")  # every run may be run again: same draws
    primals = tuple(_unbox(s, level) if isinstance(s, Box) else level.engine.tape.keep(s)
                    for s in states)  # a constant initial state as it is now
    stored, held, first_turn = _forward_sweep(run, primals, schedule, level)
    final = _advance(run, held, n_steps - 1, n_steps, level)  # the last step, unrecorded

    outer = level.engine.tape
    packing = _Packing(final)

    def pull_back(g: Any, residuals: Any) -> list[Any]:
        slots, last = residuals
        adjoint = packing.split(g)
        adjoint = _reverse_sweep(run, packing, slots, last, adjoint, schedule[first_turn:],
                                 level, outer, final)
        return list(adjoint)

    rule = Recomputation("checkpointed_loop", pull_back)
    out = level.engine.record(rule, states, (stored, held), packing.pack(final))
    return repack(packing.split(out))


def _advance(run: Callable[[tuple, int], tuple], state: tuple, start: int, stop: int,
             level: Level) -> tuple:
    """Steps ``start .. stop-1`` with ``level`` switched off, so nothing is recorded."""
    with _level_active(level, False):
        for t in range(start, stop):
            state = run(state, t)
    return state


def _forward_sweep(run: Callable[[tuple, int], tuple], state: tuple, schedule: list[Action],
                   level: Level) -> tuple[dict[int, tuple], tuple, int]:
    """Carry out the schedule up to its first turn: advance (recording nothing) and store
    snapshots. Returns the slots, the state held at the first turn (state n-1) and the
    position of the first turn in the schedule."""
    slots: dict[int, tuple] = {}
    for position, action in enumerate(schedule):
        if action.kind == ADVANCE:
            state = _advance(run, state, action.state, action.target, level)
        elif action.kind == TAKESHOT:
            slots[action.slot] = state
        elif action.kind == FIRSTTURN:
            return slots, state, position
        else:  # pragma: no cover - revolve_schedule never does this before its first turn
            raise RuntimeError(f"unexpected {action.kind} before the first turn")
    raise RuntimeError("revolve schedule without a first turn")  # pragma: no cover


def _reverse_sweep(run: Callable[[tuple, int], tuple], packing: _Packing,
                   slots: dict[int, tuple], held: tuple, adjoint: tuple, actions: list[Action],
                   level: Level, outer: Tape, final: tuple) -> tuple:
    """Carry out the rest of the schedule: each turn records one step on a sub-tape and pulls
    the adjoint of state t+1 back to state t; advances and restores move between states.

    Each turn's recomputed state t+1 must equal the state t+1 the turn before it started from
    (the forward pass's final state, for the first turn): a difference means the step reads
    something that changed since the forward pass, and raises :class:`ReplayError`."""
    slots = dict(slots)
    state = held
    later = final
    for action in actions:
        if action.kind in (FIRSTTURN, YOUTURN):

            def one_step(*pieces: Any, t: int = action.state) -> Any:
                return packing.pack(run(pieces, t))

            cotangents = _pull_back(level, one_step, state, packing.pack(adjoint), outer,
                                    expected=packing.pack(later), what="checkpointed_loop")
            adjoint = tuple(zeros(shape_of(s)) if c is None else c
                            for c, s in zip(cotangents, state))
            later, state = state, None
        elif action.kind == RESTORE:
            state = slots[action.slot]
        elif action.kind == ADVANCE:
            state = _advance(run, state, action.state, action.target, level)
        elif action.kind == TAKESHOT:
            slots[action.slot] = state
    return adjoint


class _Packing:
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
