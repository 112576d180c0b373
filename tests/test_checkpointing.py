"""Checkpointing is exact: ``checkpointed_loop`` and ``checkpoint`` give plain reverse mode's
derivatives, run the revolve schedule's recomputations and no more, keep at most
``snapshots + 1`` states on the tape, and refuse bad input with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import minidiff as md
from minidiff.checkpointing import Recomputation, default_snapshots
from minidiff.core import close_level, open_level
from minidiff.memory import tape_memory
from minidiff.reverse import ReverseEngine
from minidiff.revolve import FIRSTTURN, revolve_schedule, schedule_cost

RTOL = 1e-12
STEPS = [0, 1, 2, 17]
SNAPSHOTS = [1, 2, 3, "sqrt", "many"]


def host(x: Any) -> np.ndarray:
    return np.asarray(md.to_host(x), dtype=np.float64)


def assert_close(got: Any, want: Any, rtol: float = RTOL) -> None:
    got, want = host(got), host(want)
    assert got.shape == want.shape
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    assert float(np.max(np.abs(got - want), initial=0.0)) <= rtol * scale, (got, want)


def snapshot_count(choice: int | str, n_steps: int) -> int | None:
    if choice == "sqrt":
        return None                      # checkpointed_loop's default, ⌈√n⌉
    if choice == "many":
        return n_steps + 3               # more slots than states
    return choice


# ---------------------------------------------------------------------------------------------
# Step functions: each model has an initial state from parameters p (3,), a step closing over
# p, and a scalar readout of the final state
# ---------------------------------------------------------------------------------------------


@dataclass
class Model:
    name: str
    init: Callable[[Any, Callable], Any]                   # (p, to_array) -> state
    make_step: Callable[[Any, Callable], Callable]          # (p, to_array) -> step(state, t)
    readout: Callable[[Any], Any]


def _scalar_step(p, to_array):
    return lambda x, t: md.sin(x) * p[1] + 0.1 * t * p[2]


def _array_step(p, to_array):
    return lambda x, t: x * md.cos(p[1]) + 0.3 * md.tanh(x) * p[2]


def _tuple_step(p, to_array):
    def step(state, t):
        x, v = state
        return x + 0.1 * v, v - 0.1 * md.sin(x) * p[2]
    return step


def _list_step(p, to_array):
    marks = [to_array(np.full(2, float(t))) for t in range(32)]

    def step(state, t):
        x, m = state                      # m is replaced, never read: its adjoint is None
        return [x * md.cos(p[1]) + 0.1 * p[2], marks[t]]
    return step


def _indexing_step(p, to_array):
    def step(x, t):
        y = md.where(x > 0, x * p[0], x * 0.5) + md.sum(x[1:]) * 0.01 * p[1]
        return y + 0.1 * x[::-1] * p[2]
    return step


C = np.array([0.3, -0.7, 1.1, 0.2, -0.4])

MODELS = [
    Model("scalar", lambda p, a: p[0] * 0.5, _scalar_step, lambda x: x * x),
    Model("array", lambda p, a: p[0] * a(C), _array_step, lambda x: md.sum(x * x)),
    Model("tuple", lambda p, a: (p[0] * a(C), p[1] * a(C[::-1].copy())), _tuple_step,
          lambda s: md.sum(s[0]) + md.sum(s[1] * s[1])),
    Model("list", lambda p, a: [p[0] * a(C[:2]), a(np.zeros(2))], _list_step,
          lambda s: md.sum(s[0] * s[0]) + md.sum(s[1])),
    Model("indexing", lambda p, a: p[0] * a(C), _indexing_step, lambda x: md.sum(x * x)),
]

P = np.array([0.8, 0.6, -0.9])


def losses(model: Model, n_steps: int, snapshots: int | None, to_array: Callable,
           counter: list[int] | None = None) -> tuple[Callable, Callable]:
    """(plain loss, checkpointed loss) of parameters p, counting step calls in ``counter``."""

    def counted(step):
        def run(state, t):
            if counter is not None:
                counter[0] += 1
            return step(state, t)
        return run

    def plain(p):
        state, step = model.init(p, to_array), counted(model.make_step(p, to_array))
        for t in range(n_steps):
            state = step(state, t)
        return model.readout(state)

    def checkpointed(p):
        state, step = model.init(p, to_array), counted(model.make_step(p, to_array))
        return model.readout(md.checkpointed_loop(step, state, n_steps, snapshots))

    return plain, checkpointed


# ---------------------------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", SNAPSHOTS)
@pytest.mark.parametrize("n_steps", STEPS)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_checkpointed_loop_gradient_equals_plain_reverse_mode(model, n_steps, choice, to_array):
    plain, checkpointed = losses(model, n_steps, snapshot_count(choice, n_steps), to_array)
    p = to_array(P)
    assert_close(md.grad(checkpointed)(p), md.grad(plain)(p))
    assert_close(checkpointed(p), plain(p))


@pytest.mark.parametrize("n_steps", [1, 17])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_checkpointed_loop_under_vjp_pulls_back_after_the_transform_returned(model, n_steps,
                                                                             to_array):
    plain, checkpointed = losses(model, n_steps, 3, to_array)
    p = to_array(P)
    out, pull = md.vjp(checkpointed, p)
    out_plain, pull_plain = md.vjp(plain, p)
    assert_close(out, out_plain)
    seed = to_array(np.array(1.7))
    want = pull_plain(seed)[0]
    assert_close(pull(seed)[0], want)
    assert_close(pull(seed)[0], want)             # the tape is kept: a second pull-back works


@pytest.mark.parametrize("choice", [1, 2, "sqrt"])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_checkpointed_loop_hessian_equals_plain_hessian(model, choice, to_array):
    n_steps = 6
    plain, checkpointed = losses(model, n_steps, snapshot_count(choice, n_steps), to_array)
    p = to_array(P)
    assert_close(md.hessian(checkpointed)(p), md.hessian(plain)(p))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_checkpointed_loop_is_a_plain_loop_under_forward_mode_and_plain_arrays(model, to_array):
    counter = [0]
    plain, checkpointed = losses(model, 9, 2, to_array, counter)
    p = to_array(P)
    assert_close(md.jacfwd(checkpointed)(p), md.jacfwd(plain)(p))
    counter[0] = 0
    md.jacfwd(checkpointed)(p)
    assert counter[0] == 9
    counter[0] = 0
    value = checkpointed(p)
    assert counter[0] == 9
    assert_close(value, plain(p))


def test_checkpointed_loop_returns_the_structure_it_was_given(to_array):
    x = to_array(np.ones(2))
    step = _tuple_step(to_array(P), to_array)
    assert isinstance(md.checkpointed_loop(step, (x, x), 3, 2), tuple)
    assert isinstance(md.checkpointed_loop(lambda s, t: list(step(tuple(s), t)), [x, x], 3, 2),
                      list)
    out = md.grad(lambda v: md.sum(md.checkpointed_loop(
        lambda s, t: [s[0] * 2.0, s[1]], [v, v], 3, 2)[0]))(x)
    assert_close(out, np.full(2, 8.0))


def test_checkpoint_inside_a_checkpointed_loop_step(to_array):
    p = to_array(P)

    def loss(q, loop):
        def block(y):
            return md.sin(y) * q[1] + y * q[2]

        def step(x, t):
            return md.checkpoint(block)(x) + 0.01 * t

        x = q[0] * to_array(C)
        if loop:
            return md.sum(md.checkpointed_loop(step, x, 7, 2) ** 2)
        for t in range(7):
            x = block(x) + 0.01 * t
        return md.sum(x ** 2)

    assert_close(md.grad(lambda q: loss(q, True))(p), md.grad(lambda q: loss(q, False))(p))
    assert_close(md.hessian(lambda q: loss(q, True))(p),
                 md.hessian(lambda q: loss(q, False))(p))


# ---------------------------------------------------------------------------------------------
# checkpoint(f)
# ---------------------------------------------------------------------------------------------


def _checkpoint_losses(to_array, counter):
    c = to_array(C)

    def block(x, p):
        counter[0] += 1
        y = md.sin(x) * p[1] + md.where(x > 0, x, x * x) * p[2]
        return y + md.sum(y[1:]) * 0.1

    def plain(p):
        x = p[0] * c
        return md.sum(block(block(x, p), p) ** 2)

    def checkpointed(p):
        x = p[0] * c
        f = md.checkpoint(lambda v: block(v, p))           # p is closed over
        return md.sum(f(f(x)) ** 2)

    return plain, checkpointed


def test_checkpoint_gradient_vjp_and_hessian_equal_plain_reverse_mode(to_array):
    counter = [0]
    plain, checkpointed = _checkpoint_losses(to_array, counter)
    p = to_array(P)
    assert_close(md.grad(checkpointed)(p), md.grad(plain)(p))
    out, pull = md.vjp(checkpointed, p)
    _, pull_plain = md.vjp(plain, p)
    seed = to_array(np.array(0.5))
    assert_close(pull(seed)[0], pull_plain(seed)[0])
    assert_close(pull(seed)[0], pull_plain(seed)[0])
    assert_close(md.hessian(checkpointed)(p), md.hessian(plain)(p))
    assert_close(md.jacfwd(checkpointed)(p), md.jacfwd(plain)(p))
    assert_close(checkpointed(p), plain(p))


def test_checkpoint_runs_its_function_once_forward_and_once_more_backward(to_array):
    counter = [0]
    _, checkpointed = _checkpoint_losses(to_array, counter)
    p = to_array(P)
    checkpointed(p)
    assert counter[0] == 2                       # plain arrays: two blocks, once each
    counter[0] = 0
    md.grad(checkpointed)(p)
    assert counter[0] == 4                       # each block again in the backward pass
    counter[0] = 0
    md.jacfwd(checkpointed)(p)
    assert counter[0] == 2


# ---------------------------------------------------------------------------------------------
# Recomputation: exactly what the schedule says
# ---------------------------------------------------------------------------------------------


def _schedule_parts(n_steps: int, snapshots: int) -> tuple[int, int]:
    """Step evaluations before the first turn (advances) and from it on (the reverse sweep)."""
    schedule = revolve_schedule(n_steps, snapshots)
    first = next(i for i, a in enumerate(schedule) if a.kind == FIRSTTURN)
    return schedule_cost(schedule[:first]), schedule_cost(schedule[first:])


@pytest.mark.parametrize("choice", SNAPSHOTS)
@pytest.mark.parametrize("n_steps", [1, 2, 17, 30])
def test_checkpointed_grad_runs_the_schedule_and_one_extra_forward_step(n_steps, choice):
    snapshots = snapshot_count(choice, n_steps)
    s = default_snapshots(n_steps) if snapshots is None else snapshots
    forward, backward = _schedule_parts(n_steps, s)
    counter = [0]
    to_array = md.get_backend().asarray
    _, checkpointed = losses(MODELS[1], n_steps, snapshots, to_array, counter)
    p = md.asarray(P.tolist())

    md.grad(checkpointed)(p)
    # forward pass: the advances before the first turn, then the unrecorded step n-1 -> n
    # that gives the loop's output; backward pass: the rest of the schedule (turns included)
    assert counter[0] == forward + 1 + backward == schedule_cost(revolve_schedule(n_steps, s)) + 1

    counter[0] = 0
    _, pull = md.vjp(checkpointed, p)
    assert counter[0] == forward + 1
    pull(md.asarray(1.0))
    assert counter[0] == forward + 1 + backward
    pull(md.asarray(1.0))
    assert counter[0] == forward + 1 + 2 * backward


def test_checkpointed_grad_with_no_steps_runs_no_step():
    counter = [0]
    _, checkpointed = losses(MODELS[1], 0, None, md.get_backend().asarray, counter)
    md.grad(checkpointed)(md.asarray(P.tolist()))
    assert counter[0] == 0


# ---------------------------------------------------------------------------------------------
# Memory: the tape keeps at most snapshots + 1 states
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("snapshots", [1, 3, 7])
def test_checkpointed_tape_keeps_at_most_snapshots_plus_one_states(snapshots):
    n, n_steps = 1000, 40
    p = md.asarray([0.7, 0.3])

    def step(x, t):
        return x * md.cos(p[0]) + 0.1 * md.sin(x) * p[1]

    def plain(x):
        for t in range(n_steps):
            x = step(x, t)
        return md.sum(x)

    def checkpointed(x):
        return md.sum(md.checkpointed_loop(step, x, n_steps, snapshots))

    x0 = md.asarray(np.linspace(-1.0, 1.0, n).tolist())
    state_bytes = 8 * n
    kept = tape_memory(checkpointed, x0)["bytes_peak"]
    full = tape_memory(plain, x0)["bytes_peak"]
    assert snapshots * state_bytes <= kept <= (snapshots + 1) * state_bytes + 64
    assert full >= n_steps * state_bytes
    assert kept <= full / 4
    assert tape_memory(checkpointed, x0)["bytes_now"] == 0


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _identity(x, t):
    return x * 1.0


@pytest.mark.parametrize("snapshots", [0, -2, 1.5, "3"])
def test_bad_snapshots_are_refused(snapshots):
    with pytest.raises(ValueError, match="snapshots must be None or an integer ≥ 1"):
        md.checkpointed_loop(_identity, md.asarray([1.0]), 3, snapshots)
    with pytest.raises(ValueError, match="snapshots must be None or an integer ≥ 1"):
        md.grad(lambda x: md.sum(md.checkpointed_loop(_identity, x, 3, snapshots)))(
            md.asarray([1.0]))


@pytest.mark.parametrize("n_steps", [-1, 2.0, None, "4"])
def test_bad_step_counts_are_refused(n_steps):
    with pytest.raises(ValueError, match="n_steps must be an integer ≥ 0"):
        md.checkpointed_loop(_identity, md.asarray([1.0]), n_steps)
    with pytest.raises(ValueError, match="n_steps must be an integer ≥ 0"):
        md.grad(lambda x: md.sum(md.checkpointed_loop(_identity, x, n_steps)))(
            md.asarray([1.0]))


BAD_STEPS = {
    "shape": lambda x, t: md.concatenate([x, x]),
    "dtype": lambda x, t: x > 0.0,
    "structure": lambda x, t: md.reshape(x, (1, 2)),
}


@pytest.mark.parametrize("kind", list(BAD_STEPS))
@pytest.mark.parametrize("mode", ["plain", "grad", "jacfwd"])
def test_a_step_that_changes_the_state_is_refused(kind, mode, backend):
    step = BAD_STEPS[kind]
    x = backend.from_host(np.array([1.0, -2.0]))

    def loss(v):
        return md.sum(md.checkpointed_loop(step, v, 4, 2) * 1.0)

    call = {"plain": loss, "grad": md.grad(loss), "jacfwd": md.jacfwd(loss)}[mode]
    with pytest.raises(ValueError, match="changed the state"):
        call(x)


def test_a_tuple_step_that_changes_one_entry_is_refused():
    x = md.asarray([1.0, 2.0])
    with pytest.raises(ValueError, match=r"step 0 changed the state"):
        md.grad(lambda v: md.sum(md.checkpointed_loop(
            lambda s, t: (s[0], md.concatenate([s[1], s[1]])), (v, v), 3)[0]))(x)


# ---------------------------------------------------------------------------------------------
# A checkpoint is a node of its own kind
# ---------------------------------------------------------------------------------------------


def test_checkpoint_nodes_carry_a_recomputation_rule_not_a_primitive(to_array):
    p = to_array(P)
    engine = ReverseEngine()
    level = open_level(engine)
    try:
        q = engine.tape.add_input(p, level)
        y = md.checkpoint(lambda v: md.sin(v) * q[1])(q * 2.0)
        md.checkpointed_loop(lambda s, t: md.sin(s) * q[2], y, 4, 2)
    finally:
        close_level(level)
    rules = {node.name: node.rule for node in engine.tape.nodes}
    for name in ("checkpoint(<lambda>)", "checkpointed_loop"):
        assert isinstance(rules[name], Recomputation) and not isinstance(rules[name], md.Primitive)
    assert isinstance(rules["multiply"], md.Primitive)      # q * 2.0, outside both
    assert list(rules) == ["input", "multiply", "checkpoint(<lambda>)", "checkpointed_loop"]
