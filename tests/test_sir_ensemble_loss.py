"""The SIR model's loss on an ensemble of runs at one θ (a Gaussian synthetic likelihood of
the six summary statistics), and ``minidiff calibrate --simulations m`` that feeds it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidiff as md
from minidiff.cli import main
from minidiff.inference.sample_chunks import evaluate_chunk
from minidiff.models import sir
from minidiff.models._scales import noise_sd


def _observed() -> np.ndarray:
    y = np.asarray(sir.simulate(md.asarray([0.3, 0.1, 0.02]), rng=5, n_timesteps=15,
                                n_agents=2000))
    return y * np.random.default_rng(5).lognormal(0.0, 0.05, size=y.shape)


def _ensemble(m: int, seed: int) -> np.ndarray:
    return np.stack([np.asarray(sir.simulate(md.asarray([0.28, 0.1, 0.02]), rng=seed + k,
                                             n_timesteps=15, n_agents=500))
                     for k in range(m)])


def _statistics(y: np.ndarray, eps: np.ndarray) -> np.ndarray:  # NumPy, from the notes
    n = y.shape[-2]
    t = np.arange(n)[:, None]
    total = y.sum(-2)
    tau = ((t * y).sum(-2) + eps * (n - 1) / 2) / (total + eps)
    spread = np.sqrt(((((t - tau[..., None, :]) ** 2) * y).sum(-2) + eps * (n * n - 1) / 12)
                     / (total + eps) + 1e-12)
    return np.concatenate([total, tau, spread], -1)


def test_ensemble_loss_is_the_gaussian_synthetic_likelihood_of_the_statistics():
    obs, sims = _observed(), _ensemble(6, 0)
    se = np.asarray(sir._standard_errors(md.asarray(obs)))
    eps = np.asarray(noise_sd(md.asarray(obs)))
    stats = _statistics(sims, eps)
    variance = (1 + 1 / 6) * stats.var(0, ddof=1) + se ** 2
    expected = 0.5 * np.sum((stats.mean(0) - _statistics(obs, eps)) ** 2 / variance
                            + np.log(variance))
    got = float(sir.loss(md.asarray(sims), md.asarray(obs)))
    assert got == pytest.approx(expected, rel=1e-12)
    # one series keeps the fixed-scale form
    single = 0.25 * np.sum(((_statistics(sims[0], eps) - _statistics(obs, eps)) / se) ** 2)
    assert float(sir.loss(md.asarray(sims[0]), md.asarray(obs))) == pytest.approx(single,
                                                                               rel=1e-12)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), m=st.integers(2, 5))
def test_ensemble_loss_derivative_matches_central_differences(seed, m):
    """Forward and reverse derivatives along a random direction of the ensemble agree with a
    central difference (h = 1e-6 on values of order 1e-2: truncation and rounding both near
    1e-8 relative, so 1e-5 relative is a safe bound), and with each other (<u, J v> for a
    scalar loss)."""
    obs = md.asarray(_observed())
    sims = _ensemble(m, seed)
    v = np.random.default_rng(seed).normal(size=sims.shape) * 1e-3

    def f(x):
        return sir.loss(x, obs)

    h = 1e-6
    fd = (float(f(md.asarray(sims + h * v))) - float(f(md.asarray(sims - h * v)))) / (2 * h)
    _, forward = md.jvp(f, (md.asarray(sims),), (md.asarray(v),))
    reverse = float(np.sum(np.asarray(md.grad(f)(md.asarray(sims))) * v))
    assert float(forward) == pytest.approx(fd, rel=1e-5, abs=1e-9)
    assert reverse == pytest.approx(float(forward), rel=1e-10, abs=1e-12)


def test_a_run_without_events_has_bounded_statistics_and_derivatives():
    """A series with no events has τ = (T − 1)/2 and S = √((T² − 1)/12) (the pseudo-mass ε
    spread evenly), and a tangent ẏ moves τ by at most T·Σ|ẏ|/ε: finite, where 0/0 gave
    derivatives of order 1e12 that sent gradient steps anywhere."""
    eps = 1e-3
    zeros = md.zeros((20, 2))
    stats = np.asarray(sir.summary_statistics(zeros, eps))
    np.testing.assert_allclose(stats[2:4], 9.5, rtol=1e-12)
    np.testing.assert_allclose(stats[4:6], math.sqrt(399 / 12), rtol=1e-9)
    direction = md.asarray(np.full((20, 2), 1e-4))
    _, tangent = md.jvp(lambda y: sir.summary_statistics(y, eps), (zeros,), (direction,))
    assert np.all(np.isfinite(np.asarray(tangent)))
    assert np.max(np.abs(np.asarray(tangent)[2:4])) <= 20 * 20 * 1e-4 / eps


def test_ensemble_loss_refuses_what_it_cannot_score():
    obs = md.asarray(_observed())
    with pytest.raises(ValueError, match="m ≥ 2 runs"):
        sir.loss(md.asarray(_ensemble(1, 0)), obs)
    with pytest.raises(ValueError, match=r"ensemble \(m, T, 2\)"):
        sir.loss(md.asarray(_ensemble(2, 0)[:, :5]), obs)


def test_batched_samples_with_an_ensemble_equal_the_loop():
    """Each sample's loss runs m simulations on fresh children of its own stream: the batched
    chunk (md.vmap over samples) draws and computes what the loop does, Jacobians included."""
    obs = md.asarray(_observed())

    def loss(theta, rng):
        runs = [sir.simulate(sir.NATURAL.forward(theta), rng=rng, n_timesteps=15,
                             n_agents=200) for _ in range(3)]
        return sir.loss(md.stack(runs), obs)

    theta = sir.prior().sample(md.random.default_rng(1), 3)
    batched = evaluate_chunk(loss, theta, 0, [0, 1, 2], 7, "forward", batched=True)
    looped = evaluate_chunk(loss, theta, 0, [0, 1, 2], 7, "forward", batched=False)
    assert batched.fallback is None
    np.testing.assert_allclose(np.asarray(batched.values), np.asarray(looped.values),
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(batched.jacobians), np.asarray(looped.jacobians),
                               rtol=1e-9, atol=1e-9)
    assert len({float(v) for v in np.asarray(looped.values)}) == 3  # not one run copied
    assert all(math.isfinite(float(v)) for v in np.asarray(looped.values))


def test_cli_simulations_feeds_the_ensemble_and_refuses_other_losses(tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["calibrate", "--model", "sir", "--timesteps", "12", "--agents", "200", "--steps",
            "2", "--samples", "2", "--screen", "4", "--simulations", "3", "--quiet",
            "--no-plot", "--json", str(out)]
    assert main(argv) == 0
    assert "loss model of 3 runs per θ" in capsys.readouterr().out
    assert '"simulations": 3' in out.read_text()
    with pytest.raises(SystemExit):
        main([*argv, "--loss", "mse"])
    assert "--simulations 3" in capsys.readouterr().err


@pytest.mark.parametrize("model,timesteps", [("random_walk", "3"), ("cont", "20")])
def test_cli_simulations_refuses_a_loss_that_does_not_take_an_ensemble(model, timesteps, capsys):
    """random_walk's loss reads a (4, 4) stack of 4 paths of 4 points as one path of 4 walkers
    (same shape as the data: no error, a wrong loss); cont's raises mid-run. Both are refused
    before any step, naming --simulations."""
    argv = ["calibrate", "--model", model, "--loss", "model", "--timesteps", timesteps,
            "--agents", "1" if model == "random_walk" else "50", "--steps", "1", "--samples",
            "2", "--screen", "0", "--simulations", "4", "--quiet", "--no-plot"]
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err
    assert "--simulations 4" in err and "ensemble" in err
