"""A GVI step's samples as one batched simulation (``md.vmap``) against the loop over samples.

The batched path runs every sample on its own keyed stream (step, i), as the loop does, so the
two agree draw for draw: the per-sample losses and Jacobians, a run's history and a resumed
run are compared at 1e-12 (the arithmetic is the same per element; the tolerance leaves room
only for a reduction whose order could differ between a stacked array and one row)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf
from minidiff.inference import objective
from minidiff.inference.sample_chunks import evaluate_chunk
from minidiff.models import cont, random_walk

T_STEPS = 15
TOL = 1e-12


def walk_loss():
    observed = random_walk.simulate(0.3, n_timesteps=T_STEPS, rng=1)
    distance = inf.energy_distance(md.getitem(observed, slice(1, None))
                                   - md.getitem(observed, slice(0, -1)))

    def loss(theta, rng):
        path = random_walk.simulate(md.sigmoid(md.getitem(theta, 0)), n_timesteps=T_STEPS,
                                    rng=rng)
        return distance(md.getitem(path, slice(1, None)) - md.getitem(path, slice(0, -1)))

    return loss


def cont_loss():
    def simulate(theta, rng):
        return cont.simulate(md.power(10.0, theta), n_timesteps=12, n_agents=30, rng=rng,
                             s=0.1, k=5.0)

    distance = inf.mmd(simulate(md.asarray([0.0, -0.3, 0.0, -0.15]), md.random.default_rng(0)))
    return lambda theta, rng: distance(simulate(theta, rng))


def host(x):
    return np.asarray(md.to_host(x))


@pytest.mark.parametrize("how", ["value", "forward"])
@pytest.mark.parametrize("make_loss,dim", [(walk_loss, 1), (cont_loss, 4)])
def test_a_batched_chunk_equals_the_loop_over_its_samples(make_loss, dim, how):
    loss = make_loss()
    theta = md.asarray(np.random.default_rng(0).normal(0.0, 0.3, size=(5, dim)))
    indices = [3, 4, 5, 6, 7]  # a worker's chunk: the streams are keyed by the sample number
    batched = evaluate_chunk(loss, theta, 2, indices, 11, how)
    loop = evaluate_chunk(loss, theta, 2, indices, 11, how, batched=False)
    assert batched.fallback is None
    np.testing.assert_allclose(host(batched.values), host(loop.values), rtol=TOL, atol=TOL)
    if how == "forward":
        assert host(batched.jacobians).shape == (5, dim)
        np.testing.assert_allclose(host(batched.jacobians), host(loop.jacobians), rtol=TOL,
                                   atol=TOL)
        # and the loop is the per-sample work evaluate_sample does, sample by sample
        one = inf.evaluate_sample(loss, md.getitem(theta, 1), 2, 4, 11, how)[1]
        np.testing.assert_array_equal(host(one), host(loop.jacobians)[1])


def run(monkeypatch, batched, **kwargs):
    monkeypatch.setattr(objective.Objective, "batched", batched)
    options = inf.RunOptions(**{"w": 0.1, **kwargs})
    with warnings.catch_warnings():
        warnings.simplefilter("error", objective.BatchFallbackWarning)  # batched means batched
        return inf.calibrate(walk_loss(), inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1),
                             n_samples=4, n_steps=4, seed=5, optimizer=inf.adam(0.1),
                             options=options)


def assert_same_history(a, b):
    for name in ("total", "loss", "kl", "grad_norm"):
        np.testing.assert_allclose(getattr(a.history, name), getattr(b.history, name),
                                   rtol=TOL, atol=TOL)
    for x, y in zip(inf.tree_leaves(a.params), inf.tree_leaves(b.params)):
        np.testing.assert_allclose(host(x), host(y), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("gradient,mode", [("pathwise", "forward"), ("score", "auto")])
def test_a_batched_run_has_the_loops_history(monkeypatch, gradient, mode):
    loop = run(monkeypatch, False, gradient=gradient, mode=mode)
    batched = run(monkeypatch, True, gradient=gradient, mode=mode)
    assert_same_history(batched, loop)


class CrashError(Exception):
    pass


def crash_at(k):
    def callback(step, estimate, params):
        if step == k:
            raise CrashError

    return callback


def test_a_checkpoint_written_by_the_loop_resumes_on_the_batched_path(monkeypatch, tmp_path):
    expected = run(monkeypatch, True, mode="forward")
    with pytest.raises(CrashError):  # the loop writes the checkpoint at step 2, crashes at 3
        run(monkeypatch, False, mode="forward", checkpoint=tmp_path, checkpoint_every=2,
            callback=crash_at(3))
    resumed = run(monkeypatch, True, mode="forward", checkpoint=tmp_path, checkpoint_every=2,
                  resume=True)
    assert resumed.resumed_from == 2
    assert_same_history(resumed, expected)


def test_a_loss_that_cannot_be_batched_falls_back_to_the_loop_saying_so_once():
    def branching(theta, rng):  # Python control flow on a traced value: one answer per sample
        x = md.getitem(theta, 0)
        return x * x if float(md.stop_gradient(x)) > 0 else -x

    family = inf.DiagonalGaussian(1)
    est = inf.Objective(branching, inf.Normal(0.0, 1.0), family, n_samples=4, mode="forward",
                        seed=1)
    with pytest.warns(objective.BatchFallbackWarning,
                      match=r"step 0: the loss cannot run under minidiff\.vmap .*one after "
                            r"another"):
        first = est.estimate(family.init(), 0)
    assert est.batched is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the later steps loop directly
        est.estimate(family.init(), 1)
    theta, _ = family.sample(family.init(), 4, est._q_rng(0))
    want = [float(branching(md.getitem(theta, i), None)) for i in range(4)]
    np.testing.assert_allclose(first.losses, want, rtol=TOL)


def two_parameter_walk_loss():
    """Two parameters moving the same Bernoulli draws and a continuous noise: K = 2 directions
    per sample, so each direction's jumps must stay within its own sample."""
    base = walk_loss()

    def loss(theta, rng):
        shift = md.getitem(theta, 1) * rng.stream("noise").normal()
        return base(md.stack([md.getitem(theta, 0) + 0.3 * md.getitem(theta, 1)]), rng) + shift

    return loss


@pytest.mark.parametrize("make_loss,dim", [(walk_loss, 1), (two_parameter_walk_loss, 2)])
def test_batched_triples_equal_the_loop_of_triples(make_loss, dim):
    loss = make_loss()
    theta = md.asarray(np.random.default_rng(3).normal(0.0, 0.5, size=(6, dim)))
    indices = list(range(2, 8))
    batched = evaluate_chunk(loss, theta, 4, indices, 9, "triples")
    loop = evaluate_chunk(loss, theta, 4, indices, 9, "triples", batched=False)
    assert batched.fallback is None
    np.testing.assert_allclose(host(batched.values), host(loop.values), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(host(batched.jacobians), host(loop.jacobians), rtol=TOL,
                               atol=TOL)


def feedback_walk_loss(theta, rng):
    """Four draws in sequence, each Bernoulli's p depending on the walkers so far, and a
    nonlinear output: later draws are coupled to earlier jumps, and a jump that wins makes the
    values before it stale, per sample."""
    x = md.zeros((3,))
    for t in range(4):
        p = md.sigmoid(md.getitem(theta, 0) + 0.4 * x)
        x = md.add(x, rng.stream(("step", t)).bernoulli(p, size=(3,)))  # x starts raw
    return md.sum(md.square(x - 1.5))


def test_batched_triples_equal_the_loop_through_draws_that_feed_back():
    theta = md.asarray(np.random.default_rng(5).normal(0.0, 0.8, size=(7, 1)))
    batched = evaluate_chunk(feedback_walk_loss, theta, 1, list(range(7)), 3, "triples")
    loop = evaluate_chunk(feedback_walk_loss, theta, 1, list(range(7)), 3, "triples",
                          batched=False)
    assert batched.fallback is None
    assert np.any(host(loop.jacobians) != 0.0)
    np.testing.assert_allclose(host(batched.jacobians), host(loop.jacobians), rtol=TOL,
                               atol=TOL)
