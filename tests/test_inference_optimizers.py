"""minidiff.inference optimisers: the first steps against hand computations of the published
update rules (to 1e-12: the same arithmetic), convergence on a quadratic, pytrees, clipping,
schedules, and state that is plain data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


A = np.array([3.0, 0.5])  # f(p) = ½ Σ A_j p_j², gradient A ⊙ p


def quadratic_grad(p):
    return md.asarray(A) * p


def run(opt, p0, steps):
    p = md.asarray(p0)
    state = opt.init(p)
    trace = [host(p)]
    for _ in range(steps):
        updates, state = opt.update(quadratic_grad(p), state, p)
        p = inf.apply_updates(p, updates)
        trace.append(host(p))
    return trace, state


def test_adam_first_steps_match_a_hand_computation():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    trace, state = run(inf.adam(lr, b1, b2, eps), [1.0, -2.0], 3)
    p, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t in range(1, 4):
        g = A * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(trace[t], p, rtol=1e-12)
    # the first step is −lr·sign(g) (bias correction makes m̂/√v̂ = g/|g|)
    np.testing.assert_allclose(trace[1], [1.0 - lr, -2.0 + lr], rtol=1e-7)
    assert state["count"] == 3


def test_adamw_decays_weights_decoupled_from_the_moments():
    lr, wd = 0.1, 0.5
    trace, _ = run(inf.adamw(lr, weight_decay=wd), [1.0, -2.0], 2)
    adam_trace, _ = run(inf.adam(lr), [1.0, -2.0], 1)
    # step 1: Adam's step, minus lr·λ·p
    np.testing.assert_allclose(trace[1], adam_trace[1] - lr * wd * np.array([1.0, -2.0]),
                               rtol=1e-12)


def test_sgd_with_momentum_matches_the_heavy_ball_recursion():
    lr, mu = 0.1, 0.8
    trace, _ = run(inf.sgd(lr, momentum=mu), [1.0, -2.0], 4)
    p, b = np.array([1.0, -2.0]), np.zeros(2)
    for t in range(1, 5):
        b = mu * b + A * p
        p = p - lr * b
        np.testing.assert_allclose(trace[t], p, rtol=1e-12)


@pytest.mark.parametrize("opt", [inf.sgd(0.2), inf.sgd(0.05, momentum=0.9), inf.adam(0.05),
                                 inf.adamw(0.05, weight_decay=0.01)],
                         ids=["sgd", "momentum", "adam", "adamw"])
def test_every_optimiser_minimises_a_quadratic(opt):
    trace, _ = run(opt, [1.0, -2.0], 400)
    assert np.linalg.norm(trace[-1]) < 1e-2


def test_optimisers_act_on_pytrees_and_their_state_is_plain_data():
    params = {"w": [md.asarray([1.0, 2.0]), md.asarray(3.0)], "b": md.asarray([[0.5]])}
    grads = inf.tree_map(lambda p: 2.0 * p, params)
    opt = inf.chain(inf.clip_by_global_norm(1.0), inf.adamw(inf.cosine(0.1, 10)))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    new = inf.apply_updates(params, updates)
    assert inf.tree_map(lambda x: tuple(x.shape), new) == inf.tree_map(
        lambda x: tuple(x.shape), params)
    # the state is data, not objects: its leaves (arrays and ints) round-trip through JSON
    leaves = inf.tree_leaves(state)
    assert all(isinstance(x, int) or hasattr(x, "shape") for x in leaves)
    as_json = json.dumps([x if isinstance(x, int) else host(x).tolist() for x in leaves])
    restored = inf.pytree.tree_unflatten(inf.pytree.tree_structure(state), [
        x if isinstance(x, int) else md.asarray(x) for x in json.loads(as_json)])
    u1, _ = opt.update(grads, state, new)
    u2, _ = opt.update(grads, restored, new)
    for a, b in zip(inf.tree_leaves(u1), inf.tree_leaves(u2)):
        np.testing.assert_array_equal(host(a), host(b))


def test_clip_by_global_norm_scales_all_leaves_together():
    grads = {"a": md.asarray([3.0]), "b": md.asarray([4.0])}  # global norm 5
    clipped, _ = inf.clip_by_global_norm(1.0).update(grads, {}, None)
    np.testing.assert_allclose([float(clipped["a"][0]), float(clipped["b"][0])], [0.6, 0.8])
    same, _ = inf.clip_by_global_norm(10.0).update(grads, {}, None)
    assert float(same["a"][0]) == 3.0


def test_schedules():
    cos = inf.cosine(0.1, 100, final=0.01)
    assert cos(0) == pytest.approx(0.1) and cos(100) == pytest.approx(0.01)
    assert cos(50) == pytest.approx(0.055)
    assert cos(25) == pytest.approx(0.01 + 0.045 * (1 + math.cos(math.pi / 4)))
    assert inf.constant(0.3)(7) == 0.3
    # a schedule drives the step size: SGD's first step is −η₀ g, its second −η₁ g
    opt = inf.sgd(lambda t: [0.1, 0.01][t])
    trace, _ = run(opt, [1.0, 1.0], 2)
    np.testing.assert_allclose(trace[1], [1.0 - 0.3, 1.0 - 0.05], rtol=1e-12)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        inf.adam(-1.0)
    with pytest.raises(ValueError, match="momentum"):
        inf.sgd(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="b2"):
        inf.adam(0.1, b2=1.0)
    with pytest.raises(ValueError, match="max_norm"):
        inf.clip_by_global_norm(0.0)
