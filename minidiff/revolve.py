"""Binomial checkpointing (Revolve): the optimal order in which to reverse a long chain of steps.

A time loop computes ``state_0 -> state_1 -> ... -> state_n``, step ``t`` mapping ``state_t`` to
``state_{t+1}``. Its adjoint needs the steps in reverse, ``n-1, n-2, ..., 0``, each one re-run
*recording* from its input state. Keeping all n states is too much memory; keeping only
``state_0`` costs n(n+1)/2 step evaluations. With ``s`` snapshot slots the optimum lies between,
and Griewank (1992) found it in closed form. This module computes that optimum and the schedule
of actions achieving it; it runs no steps itself (pure Python, no minidiff imports).

Conventions
-----------
* **Slots.** ``snapshots`` counts every stored state *including* ``state_0``: as in Revolve,
  slot 0 holds ``state_0`` (the schedule's first action stores it there). With one snapshot only
  ``state_0`` is kept. (A caller whose ``state_0`` is kept elsewhere for free has one slot more.)
  A state is stored only if it is restored later, so n = 1 needs no ``takeshot`` at all.
* **Cost** = the number of times any step function is evaluated, recorded or not: every step
  run by an ``advance`` plus one per turn. Reversing one step costs 1 and n steps cost >= 2n-1.
  Griewank's count t(n, s) = r n - β(s+1, r-1) leaves out the n recorded steps, so
  ``minimal_forward_steps`` returns t(n, s) + n.

Actions (``Action(kind, state, target, slot)``); the driver starts holding ``state_0``, no slot
filled:

* ``advance``: holds ``state_{state}``; runs steps ``state .. target-1`` without recording and
  then holds ``state_{target}``. Cost ``target - state``.
* ``takeshot``: copies the held ``state_{state}`` into ``slot`` (overwriting it). Cost 0.
* ``restore``: ``slot`` holds ``state_{state}``; loads it, so the driver holds ``state_{state}``.
* ``firstturn``: holds ``state_{n-1}``; runs step n-1 recording, seeds the adjoint of
  ``state_n`` and pulls it back through step n-1. ``state = n-1``, ``target = n``. Cost 1.
* ``youturn``: holds ``state_t`` (t = ``state``); runs step t recording and pulls the adjoint of
  ``state_{t+1}`` back through it to ``state_t``. ``target = t+1``. Cost 1.

After a turn the driver holds no forward state; the next action is a ``restore`` (or the end).
Every step is turned exactly once, in the order n-1, n-2, ..., 0, the first by ``firstturn``.
Slots are used as a stack: the slot of a snapshot never restored again is simply overwritten.

The maths
---------
Let β(s, r) = C(s+r, s) (and 0 for r < 0). With s slots, a chain of l steps can be reversed
advancing no step more than r times iff l <= β(s, r); call the least such r the *repetition
number* r(l, s). Reversal is recursive: advance m steps, store ``state_m`` (one slot fewer for
the right part), reverse the last l-m steps, restore ``state_0``, reverse the first m with all
s slots. Its cost obeys ``F(l, s) = min_m [m + F(l-m, s-1) + F(m, s)]``, ``F(1, s) = 1`` and
``F(l, 1) = l(l+1)/2``, and the advance part T = F - l is

    T(l, s) = Σ_{j=1..l} r(j, s) = r l - β(s+1, r-1),     r = r(l, s).

Why: the split cost is Σ_{j<=m} (1 + r(j, s)) + Σ_{j<=l-m} r(j, s-1), a choice of l terms from
two nondecreasing sequences, least when they are the l smallest of both. Values <= k occur
β(s, k-1) + β(s-1, k) = β(s, k) times (Pascal's rule), exactly as often as r(j, s) <= k, so the
l smallest sum to Σ r(j, s). An optimal split takes every term below r, that is β(s, r-2) from
the left sequence, and then fills with terms equal to r; taking left ones first gives

    m = β(s, r-2) + min(l - β(s, r-1), β(s-1, r-1)),       1 <= m <= l-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

__all__ = [
    "ADVANCE",
    "TAKESHOT",
    "RESTORE",
    "FIRSTTURN",
    "YOUTURN",
    "Action",
    "beta",
    "repetition_number",
    "minimal_forward_steps",
    "revolve_schedule",
    "schedule_cost",
    "validate_schedule",
]

ADVANCE = "advance"
TAKESHOT = "takeshot"
RESTORE = "restore"
FIRSTTURN = "firstturn"
YOUTURN = "youturn"
_TURNS = (FIRSTTURN, YOUTURN)


@dataclass(frozen=True)
class Action:
    """One instruction to the driver; see the module docstring for the exact semantics.

    Attributes:
        kind: ``advance``, ``takeshot``, ``restore``, ``firstturn`` or ``youturn``.
        state: index of the state the action starts from (for a turn, the step t it reverses).
        target: index of the state held afterwards for ``advance``; ``state + 1`` for a turn
            (the step's output); ``state`` for ``takeshot`` and ``restore``.
        slot: the snapshot slot (0 .. snapshots-1) of ``takeshot`` and ``restore``, else None.
    """

    kind: str
    state: int
    target: int
    slot: int | None = None

    @property
    def cost(self) -> int:
        """Step evaluations this action performs: ``target - state`` to advance, 1 to turn."""
        if self.kind == ADVANCE:
            return self.target - self.state
        return 1 if self.kind in _TURNS else 0


def beta(s: int, r: int) -> int:
    """β(s, r) = C(s+r, s): steps reversible with s slots and no step advanced more than r times."""
    return comb(s + r, s) if r >= 0 else 0


def repetition_number(n_steps: int, snapshots: int) -> int:
    """The least r with β(snapshots, r) >= n_steps (0 for a single step)."""
    _check(n_steps, snapshots)
    if snapshots == 1:
        return max(n_steps - 1, 0)
    r = 0
    while beta(snapshots, r) < n_steps:
        r += 1
    return r


def minimal_forward_steps(n_steps: int, snapshots: int) -> int:
    """Least cost of reversing ``n_steps`` with ``snapshots`` slots: r n - β(s+1, r-1) + n.

    The last ``+ n`` counts the recorded step of each turn (see the module's cost convention).
    """
    if n_steps == 0:
        _check(n_steps, snapshots)
        return 0
    r = repetition_number(n_steps, snapshots)
    return r * n_steps - beta(snapshots + 1, r - 1) + n_steps


def revolve_schedule(n_steps: int, snapshots: int) -> list[Action]:
    """The actions reversing steps n-1 .. 0 at the least cost, ``minimal_forward_steps``.

    Uses slots 0 .. snapshots-1, slot 0 for ``state_0``. ``n_steps == 0`` gives ``[]``.
    """
    _check(n_steps, snapshots)
    actions: list[Action] = []
    if n_steps > 1:
        actions.append(Action(TAKESHOT, 0, 0, 0))
    stack = [(0, n_steps, snapshots, 0)] if n_steps > 0 else []
    while stack:  # parts (start, end, slots, first slot) still to reverse, last one first
        start, end, s, slot = stack.pop()
        if actions and actions[-1].kind in _TURNS:  # the driver holds no state after a turn
            actions.append(Action(RESTORE, start, start, slot))
        while end - start > 1 and s > 1:  # split; the right part goes first, one slot fewer
            r = repetition_number(end - start, s)
            mid = start + beta(s, r - 2) + min(end - start - beta(s, r - 1), beta(s - 1, r - 1))
            actions.append(Action(ADVANCE, start, mid))
            stack.append((start, mid, s, slot))
            start, s, slot = mid, s - 1, slot + 1
            if end - start > 1:
                actions.append(Action(TAKESHOT, start, start, slot))
        for t in range(end - 1, start - 1, -1):  # one slot (or one step): recompute each step
            if t < end - 1:
                actions.append(Action(RESTORE, start, start, slot))
            if t > start:
                actions.append(Action(ADVANCE, start, t))
            actions.append(Action(FIRSTTURN if t == n_steps - 1 else YOUTURN, t, t + 1))
    return actions


def schedule_cost(actions: list[Action]) -> int:
    """Total step evaluations of a schedule: steps advanced plus one per turn."""
    return sum(action.cost for action in actions)


def validate_schedule(actions: list[Action], n_steps: int, snapshots: int) -> None:
    """Simulate ``actions`` on state indices; raise ValueError at the first illegal one.

    Checks: slots lie in 0 .. snapshots-1; a restore reads a slot that holds the named state;
    advances, takeshots and turns start from the state the driver holds; advances move forward
    within 0 .. n; steps are turned exactly once, in the order n-1, ..., 0, first by firstturn.
    """
    _check(n_steps, snapshots)
    held: int | None = 0
    slots: dict[int, int] = {}
    next_turn = n_steps - 1
    for i, a in enumerate(actions):
        where = f"action {i} ({a})"
        if a.kind in (TAKESHOT, RESTORE):
            if a.slot is None or not 0 <= a.slot < snapshots:
                raise ValueError(f"{where}: slot outside 0..{snapshots - 1} (snapshots)")
            if a.kind == RESTORE:
                if slots.get(a.slot) != a.state:
                    raise ValueError(f"{where}: slot holds {slots.get(a.slot)}, not {a.state}")
                held = a.state
                continue
        elif a.kind not in (ADVANCE, *_TURNS):
            raise ValueError(f"{where}: unknown kind {a.kind!r}")
        if held != a.state:
            raise ValueError(f"{where}: driver holds state {held}, not {a.state}")
        if a.kind == TAKESHOT:
            slots[a.slot] = a.state
        elif a.kind == ADVANCE:
            if not a.state < a.target <= n_steps:
                raise ValueError(f"{where}: advance must go forward within 0..{n_steps}")
            held = a.target
        else:
            if a.state != next_turn or a.target != a.state + 1:
                raise ValueError(f"{where}: expected to reverse step {next_turn}")
            if (a.kind == FIRSTTURN) != (a.state == n_steps - 1):
                raise ValueError(f"{where}: firstturn must be exactly the turn of step n-1")
            next_turn -= 1
            held = None
    if next_turn != -1:
        raise ValueError(f"schedule ends before step {next_turn} is reversed")


def _check(n_steps: int, snapshots: int) -> None:
    if snapshots < 1:
        raise ValueError(f"snapshots must be >= 1 (slot 0 holds state_0), got {snapshots}")
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
