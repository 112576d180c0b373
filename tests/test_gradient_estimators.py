"""Score-function and finite-difference estimators: unbiased, their variance claims, errors.

The random walk x_T = Σ_t (2ξ_t − 1), ξ_t ~ Bern(θ), has E[x_T] = T(2θ − 1), so dE/dθ = 2T.
Statistical tests use fixed seeds and a z-test, |z| < 4 (a false alarm about once in 16 000).
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.random import default_rng
from minidiff.stochastic import finite_difference, score_function

T = 20


def walk(estimator):
    def f(theta, rng):
        xi = rng.bernoulli(theta * md.ones((T,)), estimator=estimator)
        return md.sum(2.0 * xi - 1.0)

    return f


def z_score(samples, exact):
    samples = np.asarray(md.to_host(samples))
    return (samples.mean(axis=0) - exact) / (samples.std(axis=0, ddof=1) / np.sqrt(len(samples)))


def variance(samples):
    return np.var(np.asarray(md.to_host(samples)), axis=0, ddof=1)


# ---------------------------------------------------------------------------------------------
# Score function
# ---------------------------------------------------------------------------------------------


def test_leave_one_out_baseline_lowers_the_score_estimators_variance_on_the_random_walk():
    # θ = 0.7: E[x_T] = 8, so the baseline has something to remove (at θ = 0.5, E[x_T] = 0 and
    # a baseline cannot help)
    theta, n = 0.7, 2000
    plain = score_function(walk("score"), theta, n, seed=1)
    loo = score_function(walk("score"), theta, n, "leave_one_out", seed=1)
    ema = score_function(walk("score"), theta, n, "ema", seed=1)
    for samples in (plain, loo, ema):
        assert md.to_host(samples).shape == (n,)
        assert abs(z_score(samples, 2 * T)) < 4
    # expected variances: about 8000 without a baseline, 3200 with one
    assert variance(loo) < 0.6 * variance(plain)
    assert variance(ema) < 0.6 * variance(plain)


def test_score_estimates_match_the_formula_on_the_same_draws(backend):
    # record the draws, then recompute g_i = x_i · Σ_t (ξ/θ − (1−ξ)/(1−θ)) − b_i · (same score)
    theta, n = 0.3, 6
    draws = []

    def f(t, rng):
        xi = rng.bernoulli(t * md.ones((T,)), estimator="score")
        draws.append(np.asarray(md.to_host(md.stop_gradient(xi))))
        return md.sum(2.0 * xi - 1.0)

    for mode in ("forward", "reverse"):
        draws.clear()
        plain = md.to_host(score_function(f, theta, n, seed=3, mode=mode))
        xi = np.array(draws)
        x = np.sum(2 * xi - 1, axis=1)
        score = np.sum(xi / theta - (1 - xi) / (1 - theta), axis=1)
        np.testing.assert_allclose(plain, x * score, rtol=1e-12)
        loo = md.to_host(score_function(f, theta, n, "leave_one_out", seed=3, mode=mode))
        b_loo = (x.sum() - x) / (n - 1)
        np.testing.assert_allclose(loo, (x - b_loo) * score, rtol=1e-12, atol=1e-12)
        ema = md.to_host(score_function(f, theta, n, "ema", seed=3, ema_decay=0.5, mode=mode))
        b_ema = [0.0, x[0], (0.25 * x[0] + 0.5 * x[1]) / 0.75]
        np.testing.assert_allclose(ema[:3], (x[:3] - b_ema) * score[:3], rtol=1e-12, atol=1e-12)
        const = md.to_host(score_function(f, theta, n, 2.5, seed=3, mode=mode))
        np.testing.assert_allclose(const, (x - 2.5) * score, rtol=1e-12, atol=1e-12)


def test_score_estimator_adds_the_pathwise_term_for_every_parameter():
    # f = θ₁ · ξ with ξ ~ Bern(θ₀): E f = θ₀ θ₁, gradient (θ₁, θ₀); θ₁ enters f directly
    def f(t, rng):
        xi = rng.bernoulli(t[0] * md.ones((1,)), estimator="score")
        return t[1] * md.sum(xi)

    theta = np.array([0.4, 3.0])
    for mode in ("forward", "reverse"):
        samples = score_function(f, theta, 2000, "leave_one_out", seed=5, mode=mode)
        assert md.to_host(samples).shape == (2000, 2)
        assert np.all(np.abs(z_score(samples, [3.0, 0.4])) < 4)


def test_score_samples_are_reproducible_from_the_seed():
    a = md.to_host(score_function(walk("score"), 0.6, 5, seed=9))
    b = md.to_host(score_function(walk("score"), 0.6, 5, seed=default_rng(9)))
    c = md.to_host(score_function(walk("score"), 0.6, 5, seed=10))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------------------------


def shifted_normal(theta, rng):
    """y = θ²(z + 4), z ~ N(θ, 2²) reparameterised: E y = θ²(θ + 4), dE/dθ = 3θ² + 8θ."""
    z = theta + 2.0 * rng.normal(md.zeros(()), 1.0)
    return theta ** 2 * (z + 4.0)


def test_finite_differences_with_common_random_numbers_have_lower_variance_on_smooth_noise():
    theta, h, n = 1.5, 0.01, 500
    exact = 3 * theta ** 2 + 8 * theta
    crn = finite_difference(shifted_normal, theta, h, n, seed=2)
    ind = finite_difference(shifted_normal, theta, h, n, common_random_numbers=False, seed=2)
    assert abs(z_score(crn, exact)) < 4 and abs(z_score(ind, exact)) < 4
    # CRN: about the variance of the pathwise derivative 3θ² + 8θ + 4θε, (4θ)² = 36;
    # independent: 2 Var(y) / (2h)² = 2 · 4θ⁴ / 4e-4 ≈ 1e5
    assert variance(crn) == pytest.approx(16 * theta ** 2, rel=0.2)
    assert variance(crn) < 1e-2 * variance(ind)


def test_common_random_numbers_help_less_on_the_random_walk_where_jumps_are_rare():
    # With inversion-coupled Bernoullis (ξ = 1[U < θ]) the two runs of a central difference
    # differ only where U falls in [θ − h, θ + h), a jump of 2/(2h) each: the variance is
    # T · 2h(1 − 2h) / h², O(1/h), against O(1/h²) with independent streams,
    # 2 · 4Tθ(1 − θ) / (2h)², a ratio of 4h(1 − 2h) (0.32 at h = 0.1).
    theta, h, n = 0.5, 0.1, 2000
    crn = finite_difference(walk("none"), theta, h, n, seed=4)
    ind = finite_difference(walk("none"), theta, h, n, common_random_numbers=False, seed=4)
    assert abs(z_score(crn, 2 * T)) < 4 and abs(z_score(ind, 2 * T)) < 4
    assert variance(crn) == pytest.approx(T * 2 * h * (1 - 2 * h) / h ** 2, rel=0.15)
    assert variance(ind) == pytest.approx(2 * 4 * T * theta * (1 - theta) / (2 * h) ** 2,
                                          rel=0.15)
    assert variance(crn) < 0.5 * variance(ind)


def test_finite_difference_schemes_on_a_deterministic_function(backend):
    # f ignores its random numbers: central differences of a quadratic are exact; forward ones
    # are off by h/2 · f''
    def f(t, rng):
        return md.sum(t * t * md.asarray([1.0, 2.0, 3.0]))

    theta = np.array([0.5, -1.0, 2.0])
    h = 1e-2
    central = md.to_host(finite_difference(f, theta, h, 2))
    forward = md.to_host(finite_difference(f, theta, h, 2, scheme="forward"))
    exact = 2 * theta * [1.0, 2.0, 3.0]
    assert central.shape == (2, 3)
    np.testing.assert_allclose(central, [exact, exact], rtol=1e-9)
    np.testing.assert_allclose(forward, [exact + h * np.array([1.0, 2.0, 3.0])] * 2, rtol=1e-9)


def test_common_random_numbers_give_every_evaluation_of_a_sample_the_same_draws():
    seen = []

    def f(t, rng):
        u = rng.normal(md.zeros(()), 1.0)
        seen.append(float(md.to_host(u)))
        return md.sum(t) * u

    finite_difference(f, np.array([1.0, 2.0]), 0.1, 3, seed=0)
    per_sample = np.array(seen).reshape(3, 4)
    assert np.all(per_sample == per_sample[:, :1])
    assert len(set(per_sample[:, 0])) == 3
    seen.clear()
    finite_difference(f, np.array([1.0, 2.0]), 0.1, 3, common_random_numbers=False, seed=0)
    assert len(set(seen)) == 12


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_bad_estimator_arguments_get_clear_errors():
    f = walk("none")
    with pytest.raises(ValueError, match="finite_difference: the step h must be .* > 0"):
        finite_difference(f, 0.5, 0.0, 10)
    with pytest.raises(ValueError, match="finite_difference: the step h"):
        finite_difference(f, 0.5, float("nan"), 10)
    with pytest.raises(ValueError, match="finite_difference: n_samples must be an integer ≥ 1"):
        finite_difference(f, 0.5, 0.1, 0)
    with pytest.raises(ValueError, match="finite_difference: unknown scheme 'backward'"):
        finite_difference(f, 0.5, 0.1, 10, scheme="backward")
    with pytest.raises(ValueError, match="score_function: unknown baseline 'mean'"):
        score_function(walk("score"), 0.5, 10, "mean")
    with pytest.raises(ValueError, match="score_function: n_samples must be an integer ≥ 2"):
        score_function(walk("score"), 0.5, 1, "leave_one_out")
    with pytest.raises(ValueError, match="score_function: ema_decay must lie in"):
        score_function(walk("score"), 0.5, 10, "ema", ema_decay=1.0)
    with pytest.raises(ValueError, match="score_function: mode must be"):
        score_function(walk("score"), 0.5, 10, mode="sideways")
    with pytest.raises(TypeError, match="must return a scalar, but returned shape"):
        finite_difference(lambda t, rng: t * md.ones((2,)), 0.5, 0.1, 2)
    with pytest.raises(TypeError, match="must return a scalar, but returned shape"):
        score_function(lambda t, rng: t * md.ones((2,)), 0.5, 2)
