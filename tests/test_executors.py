"""Executors for the per-sample work of a GVI step: serial, processes and Dask give the same
run, bit for bit (exact equality: every sample sees the same θ_i, stream and backend, and the
driver sums in sample order, so there is no rounding to tolerate)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf
from minidiff.inference import executors
from minidiff.models import random_walk

T_STEPS = 20


def walk_problem():
    """ℓ(θ, rng): energy distance of a random walk's increments at p = σ(θ₀) (a discrete
    simulator, so forward, triples and score all apply), and its prior."""
    observed = random_walk.simulate(0.3, n_timesteps=T_STEPS, rng=1)
    distance = inf.energy_distance(md.getitem(observed, slice(1, None))
                                   - md.getitem(observed, slice(0, -1)))

    def loss(theta, rng):
        path = random_walk.simulate(md.sigmoid(md.getitem(theta, 0)), n_timesteps=T_STEPS,
                                    rng=rng)
        return distance(md.getitem(path, slice(1, None)) - md.getitem(path, slice(0, -1)))

    return loss, inf.Normal(0.0, 1.0)


def run(executor, gradient="pathwise", mode="forward", steps=3):
    loss, prior = walk_problem()
    return inf.calibrate(loss, prior, inf.DiagonalGaussian(1), n_samples=4, n_steps=steps, seed=5,
                         optimizer=inf.adam(0.1),
                         options=inf.RunOptions(w=0.1, gradient=gradient, mode=mode,
                                                executor=executor))


def fingerprint(result):
    params = [np.asarray(md.to_host(x)) for x in inf.tree_leaves(result.params)]
    h = result.history
    return params, (h.total, h.loss, h.kl, h.grad_norm)


def assert_identical(a, b):
    (pa, ha), (pb, hb) = fingerprint(a), fingerprint(b)
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)
    assert ha == hb


CASES = [("pathwise", "forward"), ("pathwise", "triples"), ("score", "auto")]


def test_serial_processes_and_dask_local_cluster_give_bit_identical_runs():
    pytest.importorskip("dask.distributed")  # the dist extra; installed in CI (.ci/run)
    serial = [run("serial", g, m) for g, m in CASES]
    with inf.ProcessExecutor(workers=2) as pool, inf.DaskExecutor(workers=2) as dask:
        for runner in (pool, dask):
            for (g, m), expected in zip(CASES, serial):
                assert_identical(run(runner, g, m), expected)
        assert len(dask.client.scheduler_info()["workers"]) == 2
        # the same cluster reached by its scheduler's address, as a remote one would be
        with inf.make_executor("dask", scheduler=dask.client.scheduler.address) as remote:
            assert_identical(run(remote), serial[0])


def test_the_serial_executor_is_the_objective_without_one():
    loss, prior = walk_problem()
    family = inf.DiagonalGaussian(1)
    params = family.init()
    kwargs = dict(w=0.1, n_samples=4, mode="forward", seed=3)
    plain = inf.Objective(loss, prior, family, **kwargs).estimate(params, 2)
    served = inf.Objective(loss, prior, family, executor=inf.SerialExecutor(),
                           **kwargs).estimate(params, 2)
    assert plain.losses == served.losses and plain.total == served.total
    np.testing.assert_array_equal(md.to_host(plain.grad["loc"]), md.to_host(served.grad["loc"]))


def test_dask_without_the_dist_extra_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import now raises
    with pytest.raises(ImportError, match=r"'dist' extra.*minidiff\[dist\]"):
        inf.make_executor("dask")
    with pytest.raises(ImportError, match="dist"):
        run("dask")


def test_processes_refuse_an_unpicklable_loss_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as without the dist extra
    with pytest.raises(TypeError, match=r"cannot be pickled.*module level.*'dist' extra"):
        executors._pickled(lambda theta, rng: theta, "processes")


def test_reverse_mode_keeps_its_tape_on_the_driver():
    loss, prior = walk_problem()
    with pytest.raises(ValueError, match="mode='reverse'.*one tape on the driver"):
        inf.Objective(loss, prior, inf.DiagonalGaussian(1), mode="reverse",
                      executor=inf.ProcessExecutor(2))


@pytest.mark.parametrize("kwargs,message", [
    (dict(executor="threads"), "executor must be one of"),
    (dict(executor="serial", scheduler="tcp://127.0.0.1:8786"), "scheduler address is for"),
    (dict(executor="serial", workers=4), "in this process, with no workers"),
    (dict(executor="processes", workers=0), "workers must be"),
])
def test_bad_executor_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inf.make_executor(**kwargs)
