"""The Brock–Hommes model: its equations, its derivatives in every mode, its errors.

The reference is a NumPy transcription of the equations in ``models/brock_hommes.py``, written
here independently and fed the same standard-normal shocks (drawn from the same keyed stream).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidiff as md
from minidiff.models import brock_hommes as bh
from minidiff.random import default_rng
from minidiff.stochastic import finite_difference
from minidiff.testing import check_grads

THETA = np.array(bh.DEFAULT_PARAMS)


def shocks(seed, n_timesteps):
    """z_1..z_T as the model draws them: ``stream("shock")`` of the run's child generator."""
    return md.to_host(default_rng(seed).child().stream("shock").normal(0.0, 1.0,
                                                                       size=(n_timesteps,)))


def transcription(theta, z, R=1.01, beta=120.0, sigma=0.04):  # noqa: N803 (the paper's names)
    """The model's equations, one line each, on NumPy floats."""
    g2, g3, b2, b3 = (float(v) for v in theta)
    g = np.array([0.0, g2, g3, 1.01])
    b = np.array([0.0, b2, b3, 0.0])
    x = [0.0, 0.0, 0.0]  # x_{-2}, x_{-1}, x_0
    for z_t in z:
        fitness = (x[-1] - R * x[-2]) * (g * x[-3] + b - R * x[-2])  # U_{h,t-1}
        e = np.exp(beta * fitness - np.max(beta * fitness))
        n = e / e.sum()                                              # n_{h,t}
        f = g * x[-1] + b                                            # f_{h,t}
        x.append((np.sum(n * f) + sigma * z_t) / R)
    return np.array(x[3:])


def loss(x):
    """A smooth scalar summary: mean(x²) + mean(x)."""
    return md.add(md.mean(md.square(x)), md.mean(x))


def run(theta, seed=0, n_timesteps=40, **settings):
    return bh.simulate(theta, n_timesteps=n_timesteps, rng=default_rng(seed), **settings)


# ---------------------------------------------------------------------------------------------
# the equations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("theta, settings", [
    (bh.DEFAULT_PARAMS, {}),
    ((0.5, 1.2, -0.3, 0.4), {}),
    (bh.DEFAULT_PARAMS, {"beta": 0.0}),
    (bh.DEFAULT_PARAMS, {"R": 1.05, "beta": 10.0, "sigma": 0.1}),
    (bh.DEFAULT_PARAMS, {"sigma": 0.0}),
])
@pytest.mark.parametrize("seed", [0, 7])
def test_simulate_matches_the_numpy_transcription_at_every_step(backend, to_array, theta,
                                                                settings, seed):
    x = run(to_array(theta), seed=seed, n_timesteps=60, **settings)
    assert backend.is_array(x) and x.shape == (60,)
    expected = transcription(theta, shocks(seed, 60), **settings)
    np.testing.assert_allclose(md.to_host(x), expected, rtol=1e-12, atol=1e-14)


def test_first_step_is_the_even_split_of_the_biases_plus_noise():
    # x_{-2} = x_{-1} = x_0 = 0: every fitness is 0, so n_h = 1/4 and f_h = b_h
    x1 = md.to_host(run(THETA, seed=3, n_timesteps=1))[0]
    z1 = shocks(3, 1)[0]
    assert x1 == pytest.approx((0.25 * (0.2 - 0.2) + 0.04 * z1) / 1.01, rel=1e-14)


def test_params_as_tuple_list_and_array_give_the_same_series():
    ref = md.to_host(run(THETA))
    for form in (bh.DEFAULT_PARAMS, list(bh.DEFAULT_PARAMS), md.asarray(THETA)):
        np.testing.assert_array_equal(md.to_host(run(form)), ref)


def test_shocks_depend_only_on_the_seed_so_runs_share_them():
    short, long = run(THETA, n_timesteps=20), run(THETA, n_timesteps=50)
    np.testing.assert_array_equal(md.to_host(short), md.to_host(long)[:20])
    # an integer seed and the generator it makes are the same randomness
    np.testing.assert_array_equal(
        md.to_host(bh.simulate(THETA, n_timesteps=20, rng=0)), md.to_host(short))
    assert not np.array_equal(md.to_host(run(THETA, seed=1)), md.to_host(run(THETA, seed=2)))


def test_n_agents_and_estimator_are_accepted_and_change_nothing():
    ref = md.to_host(run(THETA))
    for kwargs in ({"n_agents": 1}, {"n_agents": 1000}, {"estimator": "smoothed"},
                   {"estimator": "score", "n_agents": None}):
        np.testing.assert_array_equal(md.to_host(run(THETA, **kwargs)), ref)


def test_long_horizon_stays_finite_and_bounded_with_default_and_extreme_beta():
    for beta in (120.0, 1e5):
        x = md.to_host(run(THETA, seed=11, n_timesteps=5000, beta=beta))
        assert np.all(np.isfinite(x))
        assert np.max(np.abs(x)) < 10.0


# ---------------------------------------------------------------------------------------------
# derivatives
# ---------------------------------------------------------------------------------------------


def test_jacfwd_takes_all_four_partials_in_one_pass(backend, to_array, monkeypatch):
    calls = []
    simulate = bh.simulate
    monkeypatch.setattr(bh, "simulate", lambda *a, **k: calls.append(1) or simulate(*a, **k))
    jac = md.jacfwd(lambda p: run(p))(to_array(THETA))
    assert len(calls) == 1
    assert jac.shape == (40, 4)
    # x_1 depends on b2 and b3 only, through the even split: ∂x_1/∂b_h = 1 / (4R)
    np.testing.assert_allclose(md.to_host(jac[0, ...]), [0.0, 0.0, 0.25 / 1.01, 0.25 / 1.01],
                               atol=1e-15)
    jrev = md.jacrev(lambda p: run(p))(to_array(THETA))
    np.testing.assert_allclose(md.to_host(jac), md.to_host(jrev), rtol=1e-10, atol=1e-12)


def test_jacfwd_of_the_loss_equals_grad(backend, to_array):
    theta = to_array(THETA)
    g_rev = md.to_host(md.grad(lambda p: loss(run(p)))(theta))
    g_fwd = md.to_host(md.jacfwd(lambda p: loss(run(p)))(theta))
    assert np.all(np.isfinite(g_rev)) and np.any(g_rev != 0.0)
    np.testing.assert_allclose(g_fwd, g_rev, rtol=1e-10, atol=1e-12)


def test_check_grads_on_a_short_horizon_with_the_noise_held_fixed(backend, to_array):
    check_grads(lambda p: run(p, seed=5, n_timesteps=6), (to_array(THETA),), order=2)


def test_check_grads_through_the_settings_r_beta_and_sigma(backend, to_array):
    # the settings may be traced: d/dσ is pathwise through ε = σ z
    def f(p, s):
        return run(p, seed=2, n_timesteps=6, R=s[0], beta=s[1], sigma=s[2])

    check_grads(f, (to_array(THETA), to_array([1.01, 120.0, 0.04])), order=1)


def sample_loss(theta, rng, n_timesteps=30):
    return loss(bh.simulate(theta, n_timesteps=n_timesteps, rng=rng))


def pathwise(seed, n_samples, n_timesteps=30):
    root = default_rng(seed)
    return np.stack([md.to_host(md.grad(lambda p, i=i: sample_loss(p, root.stream(i),
                                                                   n_timesteps))(THETA))
                     for i in range(n_samples)])


def test_crn_finite_differences_match_the_pathwise_gradient_sample_by_sample():
    # β = 120 makes the switching between types sharp: each sample path is smooth but has
    # large third derivatives, so central differences reach the pathwise value only at small
    # h, and then with error ∝ h² (a check that the pathwise derivative is the limit)
    exact = pathwise(seed=4, n_samples=6)
    tol = 1e-6 * np.max(np.abs(exact))
    fd = md.to_host(finite_difference(sample_loss, THETA, h=1e-7, n_samples=6, seed=4))
    assert fd.shape == (6, 4)
    np.testing.assert_allclose(fd, exact, rtol=1e-5, atol=tol)
    errors = [np.max(np.abs(md.to_host(finite_difference(sample_loss, THETA, h=h, n_samples=6,
                                                          seed=4)) - exact))
              for h in (1e-5, 1e-6)]
    assert 30.0 < errors[0] / errors[1] < 300.0  # 100 for an O(h²) error


def test_finite_difference_means_agree_with_the_pathwise_mean():
    # the mean of many samples estimates ∇E[loss]; E[loss] is smoother than one path, so
    # moderate steps do, with common random numbers and without (the latter much noisier)
    n, horizon = 200, 10
    exact = pathwise(seed=9, n_samples=n, n_timesteps=horizon)

    def f(p, r):
        return sample_loss(p, r, horizon)

    def z_scores(est):
        se2 = (est.var(axis=0, ddof=1) + exact.var(axis=0, ddof=1)) / n
        return (est.mean(axis=0) - exact.mean(axis=0)) / np.sqrt(se2)

    crn = md.to_host(finite_difference(f, THETA, h=1e-2, n_samples=n, seed=9))
    ind = md.to_host(finite_difference(f, THETA, h=1e-2, n_samples=n, seed=9,
                                       common_random_numbers=False))
    assert np.all(np.abs(z_scores(crn)) < 4.0)
    assert np.all(np.abs(z_scores(ind)) < 4.0)
    # common random numbers cut the spread by a factor measured (seeds 9..14, with the draws
    # before and after models drew under a child generator) at 7–12 for g2, 33–55 for g3,
    # 2.5–3.3 for b2 and 3.9–5.4 for b3: more than 2 for every parameter
    assert np.all(ind.std(axis=0) > 2.0 * crn.std(axis=0))


# ---------------------------------------------------------------------------------------------
# CuPy
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cupy_runs_unchanged_and_its_derivatives_agree(cupy_backend):
    theta = cupy_backend.from_host(THETA)
    x = run(theta, seed=1, n_timesteps=50)
    assert cupy_backend.is_array(x)
    # CuPy draws its own numbers: feed the transcription the same (CuPy) shocks
    np.testing.assert_allclose(md.to_host(x), transcription(THETA, shocks(1, 50)),
                               rtol=1e-12, atol=1e-14)
    g_rev = md.grad(lambda p: loss(run(p, seed=1, n_timesteps=50)))(theta)
    g_fwd = md.jacfwd(lambda p: loss(run(p, seed=1, n_timesteps=50)))(theta)
    assert cupy_backend.is_array(g_rev) and cupy_backend.is_array(g_fwd)
    np.testing.assert_allclose(md.to_host(g_fwd), md.to_host(g_rev), rtol=1e-10, atol=1e-12)
    check_grads(lambda p: run(p, seed=5, n_timesteps=6), (theta,), order=2)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, match", [
    ((0.9, 0.9, 0.2), "must hold 4 values"),
    ([0.9, 0.9, 0.2, -0.2, 1.0], "must hold 4 values"),
    (np.zeros(3), r"got shape \(3,\)"),
    (np.zeros((2, 2)), r"got shape \(2, 2\)"),
    (0.9, r"got shape \(\)"),
    ((0.9, 0.9, 0.2, np.zeros(2)), "must be a scalar"),
    ((0.9, math.nan, 0.2, -0.2), "must be finite"),
])
def test_bad_params_raise_a_clear_error(params, match):
    with pytest.raises(ValueError, match=match):
        run(params)


@pytest.mark.parametrize("settings, match", [
    ({"sigma": -0.01}, r"sigma \(noise scale\) must lie in \[0, inf\)"),
    ({"beta": -1.0}, r"beta \(intensity of choice\) must lie in \[0, inf\)"),
    ({"R": 0.0}, r"R \(gross risk-free return 1 \+ r, .*\) must lie in \(1, inf\)"),
    ({"R": -1.01}, r"R \(gross risk-free return.*\) must lie in \(1, inf\)"),
    ({"R": 1e-9}, r"R \(gross risk-free return.*\) must lie in \(1, inf\)"),
    ({"R": math.inf}, r"R \(gross risk-free return.*\) must be finite"),
    ({"beta": np.ones(2)}, r"beta \(intensity of choice\) must be a scalar"),
    ({"n_timesteps": 0}, "n_timesteps must be an integer ≥ 1"),
    ({"n_agents": 0}, "n_agents must be an integer ≥ 1"),
    ({"estimator": "magic"}, "unknown estimator 'magic'"),
])
def test_bad_settings_raise_a_clear_error(settings, match):
    with pytest.raises(ValueError, match=match):
        run(THETA, **settings)


@pytest.mark.parametrize("settings", [{"n_timesteps": 2.5}, {"n_agents": True},
                                      {"sigma": "0.04"}])
def test_settings_of_the_wrong_type_raise_type_errors(settings):
    with pytest.raises(TypeError, match="brock_hommes.simulate"):
        run(THETA, **settings)


def test_bad_settings_are_refused_under_a_transform_too():
    with pytest.raises(ValueError, match=r"sigma \(noise scale\) must lie in \[0, inf\)"):
        md.grad(lambda s: loss(run(THETA, sigma=s)))(-0.1)
