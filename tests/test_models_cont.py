"""Cont's threshold model (models/cont.py): stylised facts, every transform, keyed draws and
checkpointing, the loss, errors.

Stylised facts at the defaults (N = 1000, T = 5000, NumPy, every step kept), measured with the
block-drawn noise (acf: sample autocorrelation):

    seed 0: excess kurtosis 2.33, acf |r| lags 1-10 in [0.26, 0.34], max |acf r| 0.026
    seed 1: excess kurtosis 1.80, acf |r| lags 1-10 in [0.23, 0.31], max |acf r| 0.035
    seed 2: excess kurtosis 1.84, acf |r| lags 1-10 in [0.23, 0.29], max |acf r| 0.031
    seed 3: excess kurtosis 1.61, acf |r| lags 1-10 in [0.24, 0.34], max |acf r| 0.057
    seed 4: excess kurtosis 1.70, acf |r| lags 1-10 in [0.24, 0.30], max |acf r| 0.030

With T = 2000 the same seeds give kurtosis 1.6-3.4 and acf |r| 0.20-0.35, max |acf r| up to
0.077 (its sampling error is larger under clustered volatility). The tests below check seeds 0-2
against thresholds well inside these (kurtosis > 0.5, acf |r| > 0.1, |acf r| < 0.1).

What the surrogate gradient agrees with (measured with 200 seeds, N = 2000, loss 10⁴·mean(r²)):

* T = 1 (no threshold has been updated yet): the η-derivative is exact (r = Σρ/(Nη) and the
  orders do not depend on η), and the surrogate derivatives in μ, σ_ν, σ approach the
  common-random-numbers finite difference as k grows: paired relative bias 0.5%, 8%, 10% at
  k = 300 and 1.5%, 0.3%, 1.8% at k = 3000 (a kernel estimate with bandwidth 1/k, whose bias
  shrinks with 1/k while N is large enough to keep its variance small).
* T = 20: the paired differences surrogate − finite difference are 6-24% of the
  finite-difference mean in every parameter, the η derivative included (k = 300 or 1000), but
  within about 2 standard errors (paired z from −0.2 to −2.0), so 200 seeds neither confirm nor
  rule out a bias of that size. A bias is expected: after the first updates the thresholds are
  past values of |r|, each update moves many thresholds to the *same* value, so decisions flip
  in blocks, which the pathwise part does not see. Raising k there makes the variance explode
  (k = 3000: standard errors ×3 to ×8) instead of shrinking a bias. So only the T = 1 agreement
  is tested.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.models import cont
from minidiff.models.cont import DEFAULT_PARAMS, simulate
from minidiff.random import default_rng
from minidiff.stochastic import derivative_estimate

THETA = np.array(DEFAULT_PARAMS)


def host(x):
    return np.asarray(md.get_backend().to_host(x), dtype=np.float64)


def loss(theta, seed, *, n_timesteps=30, n_agents=200, k=300.0, estimator="smoothed"):
    r = simulate(theta, n_timesteps=n_timesteps, n_agents=n_agents, rng=seed, k=k,
                 estimator=estimator)
    return md.mean(md.multiply(r, r)) * 1e4


def acf(x, lags):
    x = x - x.mean()
    return np.array([np.mean(x[:-lag] * x[lag:]) for lag in lags]) / np.mean(x * x)


# ---------------------------------------------------------------------------------------------
# the model and its stylised facts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_reproduce_fat_tails_and_volatility_clustering(seed):
    with md.use_backend("numpy"):
        r = host(simulate(DEFAULT_PARAMS, n_timesteps=5000, rng=seed))
    z = r - r.mean()
    excess_kurtosis = np.mean(z**4) / np.mean(z**2) ** 2 - 3.0
    lags = range(1, 11)
    assert excess_kurtosis > 0.5
    assert np.all(acf(np.abs(r), lags) > 0.1)  # volatility clustering
    assert np.all(np.abs(acf(r, lags)) < 0.1)  # returns themselves nearly uncorrelated


def test_everyone_trading_every_step_shows_no_clustering():
    """The tutorial's σ = 1, η = 0.7 lies outside the regime: r_t = ±1/η almost always."""
    with md.use_backend("numpy"):
        r = host(simulate((0.0, 0.5, 1.0, 0.7), n_timesteps=2000, rng=0))
    z = r - r.mean()
    assert np.mean(z**4) / np.mean(z**2) ** 2 - 3.0 < 0
    assert np.max(np.abs(acf(np.abs(r), range(1, 11)))) < 0.1


def test_returns_are_a_series_of_shape_t_on_the_backend(backend):
    r = simulate(DEFAULT_PARAMS, n_timesteps=25, n_agents=100, rng=3)
    assert backend.is_array(r) and r.shape == (25,)
    assert np.all(np.abs(host(r)) <= 1 / DEFAULT_PARAMS[3] + 1e-12)
    assert simulate(DEFAULT_PARAMS, n_timesteps=0, rng=3).shape == (0,)


def test_same_seed_same_series_and_params_as_sequence_or_array():
    a = simulate(DEFAULT_PARAMS, n_timesteps=40, n_agents=100, rng=7)
    b = simulate(md.asarray(THETA), n_timesteps=40, n_agents=100, rng=default_rng(7))
    np.testing.assert_array_equal(host(a), host(b))


def test_every_estimator_gives_the_same_series_and_gradient():
    """s is a fixed setting: the update draws are the same hard values, with no derivative."""
    values = {e: host(loss(THETA, 4, estimator=e)) for e in md.random.ESTIMATORS}
    grads = {e: host(md.grad(lambda th: loss(th, 4, estimator=e))(THETA))
             for e in md.random.ESTIMATORS}
    for e in md.random.ESTIMATORS:
        np.testing.assert_array_equal(values[e], values["smoothed"])
        np.testing.assert_allclose(grads[e], grads["smoothed"], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------


def test_jacfwd_over_all_four_params_matches_grad(backend, to_array):
    theta = to_array(THETA)
    g = host(md.grad(lambda th: loss(th, 1))(theta))
    jac = md.jacfwd(lambda th: simulate(th, n_timesteps=30, n_agents=200, rng=1, k=300.0))(theta)
    r = host(simulate(theta, n_timesteps=30, n_agents=200, rng=1, k=300.0))
    assert jac.shape == (30, 4)
    via_jacobian = 2e4 * (r @ host(jac)) / r.size  # d/dθ 10⁴ mean(r²) by the chain rule
    np.testing.assert_allclose(via_jacobian, g, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(md.jacfwd(lambda th: loss(th, 1))(theta)), g,
                               rtol=1e-10, atol=1e-10)
    assert np.all(np.isfinite(g)) and np.all(g != 0)


def test_stochastic_triples_reduce_to_the_pathwise_surrogate():
    """With s fixed no alternative world opens, so triples give exactly the surrogate grad."""
    g = host(md.grad(lambda th: loss(th, 2))(THETA))
    for estimator in ("smoothed", "score"):
        est = host(derivative_estimate(lambda th: loss(th, 2, estimator=estimator), THETA,
                                       seed=0))
        assert est.shape == (4,)
        np.testing.assert_allclose(est, g, rtol=1e-10, atol=1e-10)


def test_the_default_surrogate_gradient_does_not_grow_with_the_run_length():
    """log mean r² of a run, N = 300, defaults: at the default k the largest |gradient| over 10
    seeds at T = 500 stays within 5× that at T = 50 (measured: about 1× in σ and η, smaller in
    μ and σ_ν). At k = 500 the same check grows by twenty orders of magnitude (the module notes
    say why), which is what made the default change."""

    def largest(n_timesteps, k=cont.DEFAULT_K):
        def f(theta, seed):
            r = simulate(theta, n_timesteps=n_timesteps, n_agents=300, rng=seed, k=k)
            return md.log(md.mean(md.square(r)))
        return np.max([np.abs(host(md.grad(f)(md.asarray(THETA), seed))) for seed in range(10)],
                      axis=0)

    assert np.all(largest(500) <= 5 * largest(50))
    assert not np.all(largest(500, k=500.0) <= 5 * largest(50, k=500.0))


def test_eta_derivative_is_exact_before_any_update():
    """At T = 1, r = Σρ/(Nη) with orders independent of η: d mean(r²)/dη = −2 mean(r²)/η."""
    for seed in range(5):
        value = float(host(loss(THETA, seed, n_timesteps=1, n_agents=2000)))
        g = host(md.grad(lambda th: loss(th, seed, n_timesteps=1, n_agents=2000))(THETA))
        assert g[3] == pytest.approx(-2 * value / THETA[3], rel=1e-12)


def test_surrogate_approaches_crn_finite_differences_as_k_grows_before_any_update():
    """T = 1: the surrogate is a kernel estimate of E[d loss/dθ] with bandwidth 1/k."""
    n, t, n_agents = 200, 1, 2000
    scale = np.array([1.0, 1.0, 0.01, 0.5])  # each parameter's own scale

    def f(phi, rng):  # in scaled coordinates θ = scale·φ, so one step h suits all four
        return loss(md.multiply(phi, scale), rng, n_timesteps=t, n_agents=n_agents)

    fd = host(md.stochastic.finite_difference(f, THETA / scale, 0.02, n, seed=11))
    root = default_rng(11)  # the same streams finite_difference used: paired comparisons

    def surrogate(k):
        return np.stack([host(md.grad(lambda phi: loss(md.multiply(phi, scale), root.stream(i),
                                                       n_timesteps=t, n_agents=n_agents,
                                                       k=k))(THETA / scale))
                         for i in range(n)])

    rel_bias = {}
    for k in (300.0, 3000.0):
        diff = surrogate(k) - fd
        rel_bias[k] = np.abs(diff.mean(0)) / np.abs(fd.mean(0))
        z = diff.mean(0) / (diff.std(0, ddof=1) / np.sqrt(n))
        if k == 3000.0:
            assert np.all(rel_bias[k][:3] < 0.05), rel_bias[k]
            assert np.all(np.abs(z[:3]) < 3.5), z
    assert rel_bias[3000.0][:3].sum() < rel_bias[300.0][:3].sum()
    assert np.all(rel_bias[300.0][3] < 0.01)  # η: exact up to the O(h²) of the difference


# ---------------------------------------------------------------------------------------------
# keyed draws, the long-horizon workload and checkpointing
# ---------------------------------------------------------------------------------------------


def test_a_shorter_run_is_a_prefix_of_a_longer_one_and_theta_does_not_move_the_draws():
    """Each step draws from its own stream ("step", t), so draws depend on (seed, t) only."""
    short = host(simulate(DEFAULT_PARAMS, n_timesteps=20, n_agents=300, rng=5))
    long = host(simulate(DEFAULT_PARAMS, n_timesteps=60, n_agents=300, rng=5))
    np.testing.assert_array_equal(short, long[:20])
    noise = cont.Noise(5, 300, s=cont.DEFAULT_S)
    other = (-2.0, 0.5, 0.02, 1.0)
    for t in (0, 7, 59):
        zeta, update = noise.step(t)
        again = cont.Noise(default_rng(5), 300).step(t)
        assert float(host(zeta)) == float(host(again[0]))
        np.testing.assert_array_equal(host(update), host(again[1]))
    # common random numbers: a run at other params reads the same Noise, draw for draw
    np.testing.assert_array_equal(host(simulate(other, n_timesteps=30, n_agents=300, rng=noise)),
                                  host(simulate(other, n_timesteps=30, n_agents=300, rng=5)))


def test_a_reused_generator_gives_fresh_noise_and_checkpointed_gradients_stay_exact():
    rng = default_rng(31)
    first, second = cont.Noise(rng, 50), cont.Noise(rng, 50)  # one child each
    assert not np.array_equal(host(first.z), host(second.z))
    np.testing.assert_array_equal(host(first.z), host(cont.Noise(31, 50).z))
    # the Noise of a Generator is made before the time loop, so the checkpointed steps
    # replay their draws: two generators from one seed, plain and checkpointed, one gradient
    theta = md.asarray(list(cont.BENCHMARK_PARAMS))

    def variance(p, checkpointed):
        return cont.realised_variance(p, n_timesteps=30, n_agents=50, rng=default_rng(32),
                                      checkpointed=checkpointed, snapshots=3,
                                      **cont.BENCHMARK_SETTINGS)

    np.testing.assert_allclose(host(md.grad(lambda p: variance(p, True))(theta)),
                               host(md.grad(lambda p: variance(p, False))(theta)), rtol=1e-12)


def test_predrawn_noise_gives_the_same_run_as_noise_drawn_on_demand():
    kwargs = {"n_timesteps": 40, "n_agents": 200, **cont.BENCHMARK_SETTINGS}
    lazy = cont.Noise(9, 200, s=cont.BENCHMARK_SETTINGS["s"])
    ahead = cont.Noise(9, 200, s=cont.BENCHMARK_SETTINGS["s"]).predraw(25)  # the rest on demand
    for rng in (lazy, ahead):
        np.testing.assert_array_equal(host(simulate(cont.BENCHMARK_PARAMS, rng=rng, **kwargs)),
                                      host(simulate(cont.BENCHMARK_PARAMS, rng=9, **kwargs)))


def test_realised_variance_is_the_sum_of_the_squared_simulated_returns():
    kwargs = {"n_timesteps": 50, "n_agents": 400, "rng": 2}
    r = host(simulate(DEFAULT_PARAMS, **kwargs))
    assert float(host(cont.realised_variance(DEFAULT_PARAMS, **kwargs))) == pytest.approx(
        float(np.sum(r * r)), rel=1e-14)
    assert float(host(cont.realised_variance(DEFAULT_PARAMS, **{**kwargs, "n_timesteps": 0}))
                 ) == 0.0


@pytest.mark.parametrize("snapshots", [None, 1, 3])
def test_checkpointed_loop_over_the_cont_step_gives_the_plain_loops_gradient(backend, to_array,
                                                                             snapshots):
    """The steps that checkpointed_loop runs again in the backward pass draw from the same
    keyed streams, so the gradient is the plain loop's up to rounding (1e-12 relative)."""
    theta = to_array(cont.BENCHMARK_PARAMS)

    def loss(th, checkpointed):
        return cont.realised_variance(th, n_timesteps=40, n_agents=300, rng=4,
                                      checkpointed=checkpointed, snapshots=snapshots,
                                      **cont.BENCHMARK_SETTINGS)

    plain = host(md.grad(lambda th: loss(th, False))(theta))
    ckpt = host(md.grad(lambda th: loss(th, True))(theta))
    assert np.all(np.isfinite(plain)) and np.all(plain != 0)
    assert np.max(np.abs(ckpt - plain)) <= 1e-12 * np.max(np.abs(plain))
    forward = host(md.jacfwd(lambda th: loss(th, True))(theta))
    assert np.max(np.abs(forward - plain)) <= 1e-10 * np.max(np.abs(plain))


def test_a_noise_for_another_run_is_refused():
    noise = cont.Noise(0, 100)
    with pytest.raises(ValueError, match="made for n_agents=100"):
        simulate(DEFAULT_PARAMS, n_timesteps=3, n_agents=200, rng=noise)
    with pytest.raises(ValueError, match="s=0.05"):
        cont.realised_variance(DEFAULT_PARAMS, n_timesteps=3, n_agents=100, rng=noise, s=0.1)


# ---------------------------------------------------------------------------------------------
# the loss: summary statistics
# ---------------------------------------------------------------------------------------------


def test_summary_statistics_are_log_volatility_log_kurtosis_and_acf_of_abs_returns():
    r = host(simulate(DEFAULT_PARAMS, n_timesteps=500, n_agents=300, rng=1))
    z = r - r.mean()
    a = np.abs(r) - np.abs(r).mean()
    expected = [0.5 * np.log(np.mean(r * r)), np.log(np.mean(z**4) / np.mean(z**2) ** 2),
                np.mean(a[:-1] * a[1:]) / np.mean(a * a)]
    np.testing.assert_allclose(host(cont.summary_statistics(md.asarray(r))), expected,
                               rtol=1e-12)
    assert float(host(cont.loss(md.asarray(r), md.asarray(r)))) == 0.0


def test_the_loss_is_differentiable_and_smallest_near_the_observed_regime():
    """Observed at the defaults (seed 1, T = 400): runs at the defaults with other seeds score
    well below runs of the everyone-trades market, and the loss's gradient agrees in both
    modes. Measured for seeds 2-5: 0.02-0.43 (mean 0.14) against 1.8-1.9. The statistics of a
    400-step run have a long upper tail (over seeds 10-29: median 0.05, largest 0.35), so the
    mean of the four runs at the defaults is compared, against a fifth of the best run of the
    other market."""
    observed = simulate(DEFAULT_PARAMS, n_timesteps=400, rng=1)

    def at(theta, seed):
        return float(host(cont.loss(simulate(theta, n_timesteps=400, rng=seed), observed)))

    near = np.mean([at(DEFAULT_PARAMS, seed) for seed in range(2, 6)])
    far = min(at((0.0, 0.5, 1.0, 0.7), seed) for seed in range(2, 6))
    assert near < 0.2 * far
    short = md.asarray(THETA)
    g = host(md.grad(lambda th: cont.loss(simulate(th, n_timesteps=20, n_agents=200, rng=3,
                                                   k=300.0), observed))(short))
    f = host(md.jacfwd(lambda th: cont.loss(simulate(th, n_timesteps=20, n_agents=200, rng=3,
                                                     k=300.0), observed))(short))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(f, g, rtol=1e-10, atol=1e-12)


def test_the_loss_refuses_series_too_short_for_an_autocorrelation():
    with pytest.raises(ValueError, match="T ≥ 2"):
        cont.loss(md.asarray([0.1]), md.asarray([0.1, 0.2]))


# ---------------------------------------------------------------------------------------------
# CuPy
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cupy_runs_unchanged_and_jacfwd_matches_grad(cupy_backend):
    theta = cupy_backend.from_host(THETA)
    r = simulate(theta, n_timesteps=30, n_agents=500, rng=0)
    assert cupy_backend.is_array(r) and r.shape == (30,)
    g = md.grad(lambda th: loss(th, 0))(theta)
    jf = md.jacfwd(lambda th: loss(th, 0))(theta)
    assert cupy_backend.is_array(g)
    np.testing.assert_allclose(host(jf), host(g), rtol=1e-10, atol=1e-10)
    est = derivative_estimate(lambda th: loss(th, 0), theta, seed=0)
    np.testing.assert_allclose(host(est), host(g), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, match", [
    ((-2.8, 0.8, 0.01, 0.0), "eta"),
    ((-2.8, 0.8, 0.01, -1.0), "eta"),
    ((-2.8, 0.8, -0.01, 0.5), "sigma "),
    ((-2.8, -0.1, 0.01, 0.5), "sigma_nu"),
    ((-2.8, 0.8, 0.01), "4 values"),
    ((-2.8, 0.8, 0.01, 0.5, 1.0), "4 values"),
    (np.zeros(3), "shape \\(4,\\)"),
    ((float("nan"), 0.8, 0.01, 0.5), "mu \\(log-scale of the initial thresholds\\) must be "
                                     "finite"),
])
def test_bad_parameters_are_refused_by_name(params, match):
    with pytest.raises(ValueError, match=match):
        simulate(params, n_timesteps=5, rng=0)


@pytest.mark.parametrize("settings, match", [
    ({"s": -0.1}, "s \\(update probability\\)"),
    ({"s": 1.5}, "s \\(update probability\\)"),
    ({"k": 0.0}, "k \\(surrogate steepness\\)"),
    ({"k": -3.0}, "k \\(surrogate steepness\\)"),
    ({"n_agents": 0}, "n_agents must be an integer ≥ 1"),
    ({"n_timesteps": -1}, "n_timesteps must be an integer ≥ 0"),
    ({"estimator": "reinforce"}, "unknown estimator"),
])
def test_bad_settings_are_refused_by_name(settings, match):
    kwargs = {"n_timesteps": 5, "rng": 0, **settings}
    with pytest.raises(ValueError, match=match):
        simulate(DEFAULT_PARAMS, **kwargs)


def test_a_traced_setting_is_refused():
    with pytest.raises(TypeError, match="fixed setting"):
        md.grad(lambda s: md.sum(simulate(DEFAULT_PARAMS, n_timesteps=2, rng=0, s=s)))(0.05)


def test_module_documents_its_regime():
    doc = cont.__doc__
    for needle in ("Equations", "excess kurtosis", "autocorrelation", "σ·η", "smoothed"):
        assert needle in doc
