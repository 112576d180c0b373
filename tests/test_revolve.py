"""minidiff.revolve: binomial (Revolve) schedules are valid and optimal."""

from __future__ import annotations

import heapq
import math
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff.revolve import (
    ADVANCE,
    FIRSTTURN,
    RESTORE,
    TAKESHOT,
    YOUTURN,
    Action,
    beta,
    minimal_forward_steps,
    repetition_number,
    revolve_schedule,
    schedule_cost,
    validate_schedule,
)


@cache
def brute_force_cost(n: int, s: int) -> int:
    """F(n, s): least step evaluations reversing n steps, s slots (one holding the first state).

    Advance m steps, store state_m, reverse the last n-m with s-1 slots, restore, reverse the
    first m with s slots. Turns count 1 each, so F(1, s) = 1 and F(n, 1) = n(n+1)/2.
    """
    if n == 0:
        return 0
    if n == 1:
        return 1
    if s == 1:
        return n * (n + 1) // 2
    return min(m + brute_force_cost(n - m, s - 1) + brute_force_cost(m, s) for m in range(1, n))


def exhaustive_cost(n: int, s: int) -> int:
    """Least cost over *every* schedule (any advance, any slot), by Dijkstra on driver states.

    A driver state is (held state or -1, contents of each slot or -1, next step to reverse).
    Unlike ``brute_force_cost`` it assumes nothing about the shape of an optimal schedule.
    """
    start = (0, (-1,) * s, n - 1)
    best = {start: 0}
    queue = [(0, start)]
    while queue:
        cost, (held, slots, turn) = heapq.heappop(queue)
        if turn == -1:
            return cost
        if cost > best[(held, slots, turn)]:
            continue
        moves = [(cost, (slot, slots, turn)) for slot in slots if slot >= 0]  # restores
        if held >= 0:
            moves += [(cost + t - held, (t, slots, turn)) for t in range(held + 1, turn + 1)]
            moves += [(cost, (held, slots[:k] + (held,) + slots[k + 1 :], turn)) for k in range(s)]
            if held == turn:
                moves.append((cost + 1, (-1, slots, turn - 1)))
        for new_cost, state in moves:
            if new_cost < best.get(state, new_cost + 1):
                best[state] = new_cost
                heapq.heappush(queue, (new_cost, state))
    raise AssertionError("unreachable")


def run_driver(actions: list[Action], x0: float, n: int) -> tuple[float, float, int]:
    """Execute a schedule on x_{t+1} = sin(x_t) + 0.1 t: (x_n, dx_n/dx_0, steps evaluated)."""
    held: float | None = x0
    slots: dict[int, float] = {}
    adjoint = 1.0
    x_n = math.nan
    evaluations = 0
    for a in actions:
        if a.kind == ADVANCE:
            assert held is not None
            for t in range(a.state, a.target):
                held = math.sin(held) + 0.1 * t
                evaluations += 1
        elif a.kind == TAKESHOT:
            assert held is not None
            slots[a.slot] = held
        elif a.kind == RESTORE:
            held = slots[a.slot]
        else:
            assert held is not None
            t = a.state
            out = math.sin(held) + 0.1 * t  # the recorded step
            evaluations += 1
            if a.kind == FIRSTTURN:
                x_n, adjoint = out, 1.0
            adjoint *= math.cos(held)  # pull back through step t
            held = None
    return x_n, adjoint, evaluations


def reference(x0: float, n: int) -> tuple[float, float]:
    x, derivative = x0, 1.0
    for t in range(n):
        derivative *= math.cos(x)
        x = math.sin(x) + 0.1 * t
    return x, derivative


@pytest.mark.parametrize("snapshots", range(1, 6))
def test_schedule_is_valid_and_optimal_for_all_small_chains(snapshots):
    for n in range(31):
        actions = revolve_schedule(n, snapshots)
        validate_schedule(actions, n, snapshots)
        cost = schedule_cost(actions)
        assert cost == brute_force_cost(n, snapshots), (n, snapshots)
        assert cost == minimal_forward_steps(n, snapshots), (n, snapshots)


@pytest.mark.parametrize("snapshots", range(1, 4))
def test_no_schedule_at_all_beats_the_closed_form(snapshots):
    for n in range(1, 8):
        assert exhaustive_cost(n, snapshots) == minimal_forward_steps(n, snapshots), n


def test_closed_form_matches_brute_force_on_a_larger_table():
    for s in range(1, 8):
        for n in range(120):
            assert minimal_forward_steps(n, s) == brute_force_cost(n, s), (n, s)


def test_large_schedule_is_valid_and_matches_closed_form():
    n, s = 1000, 10
    actions = revolve_schedule(n, s)
    validate_schedule(actions, n, s)
    r = repetition_number(n, s)
    assert r == 4  # beta(10, 3) = C(13, 3) = 286 < 1000 <= beta(10, 4) = C(14, 4) = 1001
    assert schedule_cost(actions) == minimal_forward_steps(n, s) == r * n - beta(s + 1, r - 1) + n


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1500), st.integers(1, 12))
def test_random_schedules_are_valid_and_optimal(n, s):
    actions = revolve_schedule(n, s)
    validate_schedule(actions, n, s)
    assert schedule_cost(actions) == minimal_forward_steps(n, s)


@pytest.mark.parametrize(("n", "s"), [(1, 1), (7, 1), (30, 2), (200, 3), (1000, 10), (40, 60)])
def test_no_step_is_advanced_more_than_the_repetition_number(n, s):
    counts = [0] * n
    for a in revolve_schedule(n, s):
        if a.kind == ADVANCE:
            for t in range(a.state, a.target):
                counts[t] += 1
    assert max(counts) == repetition_number(n, s)


@pytest.mark.parametrize(("n", "s"), [(1, 1), (2, 1), (9, 1), (9, 2), (25, 3), (64, 4), (50, 80)])
def test_driver_executing_the_schedule_gets_the_true_derivative(n, s):
    actions = revolve_schedule(n, s)
    value, derivative, evaluations = run_driver(actions, 0.3, n)
    assert evaluations == schedule_cost(actions)
    expected_value, expected_derivative = reference(0.3, n)
    assert value == pytest.approx(expected_value, rel=1e-12, abs=1e-15)
    assert derivative == pytest.approx(expected_derivative, rel=1e-12, abs=1e-300)


def test_small_schedules_by_hand():
    assert revolve_schedule(0, 3) == []
    assert revolve_schedule(1, 1) == [Action(FIRSTTURN, 0, 1)]
    assert revolve_schedule(3, 1) == [
        Action(TAKESHOT, 0, 0, 0),
        Action(ADVANCE, 0, 2),
        Action(FIRSTTURN, 2, 3),
        Action(RESTORE, 0, 0, 0),
        Action(ADVANCE, 0, 1),
        Action(YOUTURN, 1, 2),
        Action(RESTORE, 0, 0, 0),
        Action(YOUTURN, 0, 1),
    ]
    assert revolve_schedule(3, 2) == [
        Action(TAKESHOT, 0, 0, 0),
        Action(ADVANCE, 0, 1),
        Action(TAKESHOT, 1, 1, 1),
        Action(ADVANCE, 1, 2),
        Action(FIRSTTURN, 2, 3),
        Action(RESTORE, 1, 1, 1),
        Action(YOUTURN, 1, 2),
        Action(RESTORE, 0, 0, 0),
        Action(YOUTURN, 0, 1),
    ]


def test_one_snapshot_costs_the_triangular_number():
    for n in range(1, 40):
        assert schedule_cost(revolve_schedule(n, 1)) == n * (n + 1) // 2


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="snapshots"):
        revolve_schedule(5, 0)
    with pytest.raises(ValueError, match="n_steps"):
        revolve_schedule(-1, 2)
    with pytest.raises(ValueError, match="snapshots"):
        minimal_forward_steps(0, 0)


GOOD = [
    Action(TAKESHOT, 0, 0, 0),
    Action(ADVANCE, 0, 1),
    Action(FIRSTTURN, 1, 2),
    Action(RESTORE, 0, 0, 0),
    Action(YOUTURN, 0, 1),
]


@pytest.mark.parametrize(
    ("actions", "snapshots", "message"),
    [
        (GOOD[1:3] + [Action(RESTORE, 0, 0, 0)] + GOOD[4:], 1, "slot holds None"),
        ([Action(TAKESHOT, 0, 0, 1)] + GOOD[1:], 1, "snapshots"),
        (GOOD[:1] + [Action(ADVANCE, 1, 2)] + GOOD[2:], 1, "holds state 0"),
        (GOOD[:2] + [Action(YOUTURN, 1, 2)] + GOOD[3:], 1, "firstturn"),
        (GOOD[:4] + [Action(YOUTURN, 0, 1), Action(YOUTURN, 0, 1)], 1, "holds state None"),
        (GOOD[:3], 1, "before step 0"),
        ([Action(FIRSTTURN, 0, 1)] + GOOD, 1, "expected to reverse step 1"),
        (GOOD[:1] + [Action(ADVANCE, 0, 3)] + GOOD[2:], 1, "forward"),
        (GOOD[:1] + [Action("jump", 0, 1)] + GOOD[2:], 1, "unknown kind"),
    ],
)
def test_validate_schedule_rejects_illegal_schedules(actions, snapshots, message):
    validate_schedule(GOOD, 2, 1)
    with pytest.raises(ValueError, match=message):
        validate_schedule(actions, 2, snapshots)
