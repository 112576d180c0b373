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
on the enclosing tape as usual, and the sub-tapes' backward passes add their cotangents to
those values' nodes. Under
forward mode, or with no transform at all, both are the plain computation. Gradients are exact:
the recomputation repeats the same floating-point operations.

A recomputation must repeat the forward pass exactly: its random numbers (see
:mod:`minidiff.recomputation`) and the arrays it reads (a recomputation that differs raises
:class:`ReplayError`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from . import backend as _backend
from .core import Box, Level, raw, shape_of
from .ops import zeros
from .pytree import PyTreeDef, _describe_value, tree_flatten
from .recomputation import (
    Packing,
    Recomputation,
    ReplayError,
    birth_mark,
    check_draw,
    check_entropy,
    innermost_reverse_level,
    level_active,
    pull_back,
    replayable,
    unbox,
)
from .reverse import TapeValue
from .revolve import (
    ADVANCE,
    FIRSTTURN,
    RESTORE,
    TAKESHOT,
    YOUTURN,
    Action,
    revolve_schedule,
)
from .validation import check_int, check_positive_int

__all__ = ["checkpoint", "checkpointed_loop", "revolve_schedule", "default_snapshots",
           "Recomputation", "ReplayError", "birth_mark", "check_draw", "check_entropy"]

State = Any


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
        level = innermost_reverse_level()
        if level is None:
            return f(*args, **kwargs)
        leaves, tree = tree_flatten((args, kwargs))
        traced = [isinstance(x, TapeValue) and x.level is level for x in leaves]

        def call(*flat: Any) -> Any:
            positional, keywords = tree.unflatten(flat)
            return f(*positional, **keywords)

        replayed = replayable(call, "checkpoint")
        keep = level.tape.keep  # constants as they are now, for the recomputation
        primals = [unbox(a, level) if t else keep(a) for a, t in zip(leaves, traced)]
        with level_active(level, False):
            out = replayed(*primals)
        out_leaves, out_tree = tree_flatten(out)
        floating = [_is_floating(v) for v in out_leaves]
        if not any(floating):
            return out  # nothing to differentiate: no node
        packing = Packing(tuple(v for v, fl in zip(out_leaves, floating) if fl))

        def packed(*flat: Any) -> Any:
            again = tree_flatten(replayed(*flat))[0]
            return packing.pack(tuple(v for v, fl in zip(again, floating) if fl))

        forward = packing.pack(tuple(v for v, fl in zip(out_leaves, floating) if fl))

        def backward(g: Any, residuals: Any) -> list[Any]:
            return pull_back(level, packed, residuals, g, traced, forward, name)

        node = level.record(Recomputation(name, backward), leaves, tuple(primals),
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
    ``step`` is read again by the backward pass: a recomputed state that differs from the one
    the forward pass had (the step reads an array updated in place since) raises
    :class:`ReplayError`.
    """
    check_int("checkpointed_loop", "n_steps", n_steps, 0)
    check_positive_int("checkpointed_loop", "snapshots", snapshots, none_ok=True)
    states, tree = _state_leaves(state, "the initial state")
    signature = _signature(states)
    run = _checked_step(step, tree, signature)

    def repack(final: tuple) -> State:
        return tree.unflatten(final)

    level = innermost_reverse_level()
    if level is None or n_steps == 0:
        for t in range(n_steps):
            states = run(states, t)
        return repack(states)

    snapshots = default_snapshots(n_steps) if snapshots is None else snapshots
    schedule = revolve_schedule(n_steps, snapshots)
    run = replayable(run, "checkpointed_loop")  # every run may be run again: same draws
    primals = tuple(unbox(s, level) if isinstance(s, Box) else level.tape.keep(s)
                    for s in states)  # a constant initial state as it is now
    stored, held, first_turn = _forward_sweep(run, primals, schedule, level)
    final = _advance(run, held, n_steps - 1, n_steps, level)  # the last step, unrecorded

    packing = Packing(final)

    def backward(g: Any, residuals: Any) -> list[Any]:
        slots, last = residuals
        adjoint = packing.split(g)
        adjoint = _reverse_sweep(run, packing, slots, last, adjoint, schedule[first_turn:],
                                 level, final)
        return list(adjoint)

    rule = Recomputation("checkpointed_loop", backward)
    out = level.record(rule, states, (stored, held), packing.pack(final))
    return repack(packing.split(out))


def _advance(run: Callable[[tuple, int], tuple], state: tuple, start: int, stop: int,
             level: Level) -> tuple:
    """Steps ``start .. stop-1`` with ``level`` switched off, so nothing is recorded."""
    with level_active(level, False):
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


def _reverse_sweep(run: Callable[[tuple, int], tuple], packing: Packing,
                   slots: dict[int, tuple], held: tuple, adjoint: tuple, actions: list[Action],
                   level: Level, final: tuple) -> tuple:
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

            cotangents = pull_back(level, one_step, state, packing.pack(adjoint),
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
