"""minidiff.inference.calibrate on problems whose answer is known exactly.

Tolerances (the issue's): Normal–Normal, the fitted mean within 0.1 posterior sd of the exact
posterior mean and the sd within 10%; Beta–Bernoulli, the mean within 5% and the sd within 10%.
The fits are stochastic optimisations with fixed seeds and a cosine learning rate decaying to
0, so the last iterate sits at the optimum up to a small residual noise (seen at a few per cent
of the tolerance across seeds 0-3). Equalities of two computations of one number (mixed against
reverse mode) are to 1e-10, the rounding of float64 sums taken in a different order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

import minidiff as md
from minidiff import inference as inf

# ---------------------------------------------------------------------------------------------
# Normal–Normal: y_1..y_20 ~ N(θ, 1), prior N(0, 2²)
# ---------------------------------------------------------------------------------------------

Y = np.random.default_rng(2024).normal(1.0, 1.0, size=20)
PRIOR_SD = 2.0


def normal_posterior(w):
    """The exact (tempered) posterior of θ: precision 1/s₀² + n/(w σ²), σ = 1."""
    precision = 1 / PRIOR_SD**2 + len(Y) / w
    return (Y.sum() / w) / precision, precision**-0.5


def fit_normal(w=1.0, gradient="pathwise", mode="auto", steps=400, seed=0):
    nll = inf.gaussian_nll(md.asarray(Y))
    return inf.calibrate(lambda theta, rng: nll(theta[0]), inf.Normal(0.0, PRIOR_SD),
                         inf.DiagonalGaussian(1), n_samples=10, n_steps=steps,
                         optimizer=inf.adam(inf.cosine(0.05, steps)), seed=seed,
                         options=inf.RunOptions(w=w, gradient=gradient, mode=mode))


def fitted_gaussian(result):
    return float(result.params["loc"][0]), math.exp(float(result.params["log_scale"][0]))


# (reverse mode gives the forward-mode gradient to 1e-10, tested below, so it runs once)
@pytest.mark.parametrize("w,gradient,mode", [
    (1.0, "pathwise", "forward"), (1.0, "pathwise", "reverse"), (1.0, "score", "auto"),
    (2.0, "pathwise", "forward"), (2.0, "score", "auto")])
def test_normal_normal_recovers_the_exact_posterior(w, gradient, mode):
    mean, sd = normal_posterior(w)
    fit_mean, fit_sd = fitted_gaussian(fit_normal(w, gradient, mode))
    assert abs(fit_mean - mean) < 0.1 * sd, (fit_mean, mean, sd)
    assert abs(fit_sd / sd - 1) < 0.1, (fit_sd, sd)


def test_tempering_widens_the_posterior_by_the_predicted_factor():
    # the two exact answers differ by far more than the tolerance, so the test above tells them
    # apart: sd(w = 2)/sd(w = 1) = √((1/4 + 20)/(1/4 + 10)) ≈ 1.41
    (_, sd1), (_, sd2) = normal_posterior(1.0), normal_posterior(2.0)
    assert sd2 / sd1 > 1.3


def test_history_records_total_loss_and_kl_and_the_run_is_a_function_of_its_seed():
    a, b, c = fit_normal(steps=30), fit_normal(steps=30), fit_normal(steps=30, seed=1)
    assert a.history.total == b.history.total and a.history.total != c.history.total
    h = a.history
    assert len(h.total) == len(h.loss) == len(h.kl) == 30
    np.testing.assert_allclose(h.total, np.array(h.loss) + np.array(h.kl), rtol=1e-12)
    assert h.n_dropped == 0 and h.n_skipped == 0
    theta = a.sample(5, seed=3)
    assert tuple(theta.shape) == (5, 1)
    np.testing.assert_array_equal(np.asarray(md.to_host(theta)),
                                  np.asarray(md.to_host(a.sample(5, seed=3))))


# ---------------------------------------------------------------------------------------------
# Beta–Bernoulli: the tutorial's check, prior Beta(2, 2)
# ---------------------------------------------------------------------------------------------

FLIPS = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], float)  # 5 of 20
POSTERIOR = (2 + FLIPS.sum(), 2 + len(FLIPS) - FLIPS.sum())  # Beta(7, 17)


def bernoulli_nll(p):
    y = md.asarray(FLIPS)
    return -md.sum(y * md.log(p) + (1 - y) * md.log1p(-p))


def test_beta_family_converges_to_the_exact_beta_posterior():
    steps = 400
    result = inf.calibrate(lambda th, rng: bernoulli_nll(th[0]), inf.Beta(2.0, 2.0),
                           inf.BetaFamily(1), n_samples=10, n_steps=steps,
                           optimizer=inf.adam(inf.cosine(0.1, steps)))
    a, b = (math.exp(float(result.params[k][0])) for k in ("log_alpha", "log_beta"))
    exact = st.beta(*POSTERIOR)
    fit = st.beta(a, b)
    assert abs(fit.mean() / exact.mean() - 1) < 0.05, (fit.mean(), exact.mean())
    assert abs(fit.std() / exact.std() - 1) < 0.10, (fit.std(), exact.std())


def test_flow_on_logit_theta_gets_closer_in_kl_than_the_gaussian():
    """On logit θ the posterior is skewed (a logistic-beta), so the best Gaussian misses it by
    KL ≈ 0.003 nats; a sinh-arcsinh flow can do better. KL(q‖p) is estimated by 50,000 draws
    of q against the exact posterior density (its standard error ≈ 4e-4)."""
    logit = inf.Sigmoid().inverted()
    prior = inf.Transformed(inf.Beta(2.0, 2.0), logit)
    exact = inf.Transformed(inf.Beta(*POSTERIOR), logit)

    def loss(theta, rng):
        return bernoulli_nll(md.sigmoid(theta[0]))

    def kl_to_exact(result):
        theta, log_q = result.family.sample(result.params, 50_000, md.random.default_rng(9))
        return float(md.mean(log_q - exact.log_prob(theta)))

    steps = 300
    kls = {}
    for name, family in [("gaussian", inf.DiagonalGaussian(1)),
                         ("flow", inf.RealNVP(1, base="sinh_arcsinh"))]:
        result = inf.calibrate(loss, prior, family, n_samples=20, n_steps=steps,
                               optimizer=inf.adam(inf.cosine(0.02, steps), b2=0.9))
        kls[name] = kl_to_exact(result)
    assert kls["flow"] < kls["gaussian"], kls
    assert kls["gaussian"] < 0.01 and kls["flow"] < 0.002, kls


# ---------------------------------------------------------------------------------------------
# Mixed mode against reverse mode, and triples
# ---------------------------------------------------------------------------------------------


def noisy_walk_loss(observed_increments, n_steps=30):
    """A random walk with a Bernoulli step and a Gaussian jitter, θ = (logit p, log s):
    discrete and continuous randomness, both differentiable (the Bernoulli by its default
    smoothed estimator). The loss is the MMD of the increments to the observed ones."""
    mmd = inf.mmd(observed_increments)

    def loss(theta, rng):
        p, s = md.sigmoid(md.getitem(theta, 0)), md.exp(md.getitem(theta, 1))
        xi = rng.bernoulli(p, size=n_steps)
        jitter = rng.normal(0.0, s, size=n_steps)
        return mmd(2.0 * xi - 1.0 + jitter)

    return loss


def observed_increments():
    rng = md.random.default_rng(99)
    return 2.0 * rng.bernoulli(0.7, size=30) - 1.0 + rng.normal(0.0, 0.2, size=30)


MIXED_CASES = {  # family, prior (made in the test)
    "diagonal": (lambda: inf.DiagonalGaussian(2), None),
    "full_rank": (lambda: inf.FullRankGaussian(2), None),
    "flow": (lambda: inf.RealNVP(2, n_layers=2, hidden=(8,)), None),
    "beta": (lambda: inf.BetaFamily(2),
             lambda: inf.Independent(inf.Beta(md.asarray([2.0, 2.0]), 3.0))),
}


@pytest.mark.parametrize("name", MIXED_CASES)
def test_mixed_mode_gives_the_reverse_mode_gradient(name):
    make_family, make_prior = MIXED_CASES[name]
    family = make_family()
    prior = (make_prior() if make_prior else
             inf.Independent(inf.Normal(md.asarray([0.5, -1.5]), 1.0)))
    loss = noisy_walk_loss(observed_increments())
    params = inf.tree_map(lambda p: p + 0.2, family.init(0))  # off the symmetric start
    estimates = {}
    for mode in ("forward", "reverse"):
        objective = inf.Objective(loss, prior, family, w=0.3, n_samples=6, mode=mode, seed=5,
                                  kl="mc", kl_samples=16)
        estimates[mode] = objective.estimate(params, step=3)
    fwd, rev = estimates["forward"], estimates["reverse"]
    assert fwd.losses == pytest.approx(rev.losses, rel=1e-12)
    assert fwd.total == pytest.approx(rev.total, rel=1e-12)
    for a, b in zip(inf.tree_leaves(fwd.grad), inf.tree_leaves(rev.grad)):
        np.testing.assert_allclose(np.asarray(md.to_host(a)), np.asarray(md.to_host(b)),
                                   rtol=1e-10, atol=1e-12)
    assert any(np.any(np.asarray(md.to_host(g)) != 0) for g in inf.tree_leaves(fwd.grad))


def test_auto_mode_is_forward_for_few_parameters_and_reverse_for_many():
    assert inf.Objective(lambda t, r: 0.0, inf.Normal(md.zeros((3,))), inf.DiagonalGaussian(3)
                         ).resolved_mode == "forward"
    assert inf.Objective(lambda t, r: 0.0, inf.Normal(md.zeros((40,))),
                         inf.DiagonalGaussian(40)).resolved_mode == "reverse"


def test_triples_give_an_unbiased_gradient_where_the_smoothed_estimator_is_biased():
    """ℓ = energy distance between ±1 increments of a walk and the observed ones equals
    4(p̂ − q̂)² (p̂, q̂ the fractions of up-steps), so E[ℓ] = 4[(θ − q̂)² + θ(1 − θ)/T] and
    dE[ℓ]/dθ = 8(θ − q̂) + 4(1 − 2θ)/T exactly. Triples are unbiased (z-test, 4 se); the
    smoothed Bernoulli derivative is not (its mean misses the 4(1 − 2θ)/T term)."""
    t_steps, q_hat, theta = 10, 0.7, 0.2
    observed = md.asarray(np.where(np.arange(t_steps) < 7, 1.0, -1.0))
    ed = inf.energy_distance(observed)

    def loss(th, rng):
        return ed(2.0 * rng.bernoulli(md.getitem(th, 0), size=t_steps) - 1.0)

    exact = 8 * (theta - q_hat) + 4 * (1 - 2 * theta) / t_steps
    th = md.asarray([theta])
    for how, unbiased in [("triples", True), ("forward", False)]:
        g = np.array([float(inf.evaluate_sample(loss, th, 0, i, 1, how)[1][0])
                      for i in range(600)])
        z = (g.mean() - exact) / (g.std(ddof=1) / math.sqrt(g.size))
        assert (abs(z) < 4) == unbiased, (how, g.mean(), exact, z)


def test_triples_mode_runs_calibrate():
    loss = noisy_walk_loss(observed_increments(), n_steps=10)
    result = inf.calibrate(loss, inf.Normal(md.zeros((2,)), 1.0), inf.DiagonalGaussian(2),
                           n_samples=3, n_steps=3, optimizer=inf.adam(0.01),
                           options=inf.RunOptions(mode="triples"))
    assert len(result.history.total) == 3 and np.all(np.isfinite(result.history.total))


# ---------------------------------------------------------------------------------------------
# NaN and inf
# ---------------------------------------------------------------------------------------------


def nan_when_positive(theta, rng):
    """Finite for θ < 0, NaN for θ > 0: half the samples of a N(0, 1) q."""
    x = md.getitem(theta, 0)
    return md.where(md.stop_gradient(x) > 0, math.nan, 0.0) + x * x


def test_a_non_finite_loss_raises_naming_the_step_sample_and_theta():
    for mode in ("forward", "reverse", "triples"):
        with pytest.raises(inf.NonFiniteError, match=r"step 0, sample \d+: the loss is not "
                           r"finite \(nan\) at θ = \[[0-9.e-]+\]") as info:
            inf.calibrate(nan_when_positive, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1),
                          n_samples=8, n_steps=2, optimizer=inf.adam(0.01),
                          options=inf.RunOptions(mode=mode))
        assert info.value.step == 0 and info.value.theta[0] > 0


def test_skip_drops_and_counts_non_finite_samples():
    with pytest.warns(RuntimeWarning, match=r"\d+ sample\(s\) dropped and 0 step\(s\) skipped"):
        result = inf.calibrate(nan_when_positive, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1),
                               n_samples=8, n_steps=5, optimizer=inf.adam(0.01),
                               options=inf.RunOptions(on_nan="skip"))
    assert result.history.n_dropped > 0 and result.history.n_skipped == 0
    assert all(np.isfinite(result.history.total))
    assert sum(result.history.dropped) == result.history.n_dropped


def test_skip_still_raises_when_every_sample_of_a_step_is_dropped():
    with pytest.raises(inf.NonFiniteError, match="every one of the 4 samples"):
        inf.calibrate(lambda th, rng: md.sum(th) * math.inf, inf.Normal(0.0, 1.0),
                      inf.DiagonalGaussian(1), n_samples=4, n_steps=2, optimizer=inf.adam(0.01),
                      options=inf.RunOptions(on_nan="skip"))


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
def test_a_non_finite_jacobian_is_caught_in_mixed_mode():
    def loss(theta, rng):  # finite value, infinite derivative at 0: √|x| at x = 0
        return md.sqrt(md.abs(md.getitem(theta, 0)) * 0.0)

    with pytest.raises(inf.NonFiniteError, match="loss gradient is not finite"):
        inf.calibrate(loss, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_samples=2, n_steps=1,
                      optimizer=inf.adam(0.01), options=inf.RunOptions(mode="forward"))
    # reverse mode sees only the total gradient: the step is named, not the sample
    with pytest.raises(inf.NonFiniteError, match="step 0: the gradient is not finite"):
        inf.calibrate(loss, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_samples=2, n_steps=1,
                      optimizer=inf.adam(0.01), options=inf.RunOptions(mode="reverse"))


def test_a_prior_narrower_than_the_family_is_refused_at_the_call():
    # KL(q‖π) = ∞ for a Gaussian q against a prior on [−1, 1]: refused before any step runs
    args = dict(n_samples=2, n_steps=3, optimizer=inf.adam(0.01),
                options=inf.RunOptions(on_nan="skip"))
    with pytest.raises(ValueError, match=r"calibrate: the prior's coordinate 0 \(Uniform\) "
                       r"has support \(-1, 1\).*Transformed"):
        inf.calibrate(lambda th, rng: md.sum(th * th), inf.Uniform(-1.0, 1.0),
                      inf.DiagonalGaussian(1), **args)


def flaky_gradient(theta, rng):
    """x² with a NaN derivative (√|0·x| at 0) when the sample's own uniform is below 0.3."""
    x = md.getitem(theta, 0)
    if float(md.to_host(rng.random())) < 0.3:
        return x * x + md.sqrt(md.abs(x) * 0.0)
    return x * x


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
def test_skip_skips_steps_with_a_non_finite_gradient_and_refuses_a_run_that_skips_all():
    args = dict(n_samples=2, optimizer=inf.adam(0.01),
                options=inf.RunOptions(mode="reverse", on_nan="skip"))
    with pytest.warns(RuntimeWarning, match=r"step\(s\) skipped"):
        result = inf.calibrate(flaky_gradient, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1),
                               n_steps=8, **args)
    assert 0 < result.history.n_skipped < 8  # seed 0: some steps skipped, not all
    assert all("gradient" in s for s in result.history.skipped if s is not None)
    with pytest.raises(inf.NonFiniteError, match="every one of the 3 steps was skipped"):
        inf.calibrate(lambda th, rng: md.sqrt(md.abs(md.getitem(th, 0)) * 0.0),
                      inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=3, **args)


# ---------------------------------------------------------------------------------------------
# early stopping, settings
# ---------------------------------------------------------------------------------------------


def test_early_stopping_with_patience_keeps_the_best_state():
    result = inf.calibrate(lambda th, rng: md.sum(th * th), inf.Normal(0.0, 1.0),
                           inf.DiagonalGaussian(1), n_samples=4, n_steps=2000,
                           optimizer=inf.adam(0.05), options=inf.RunOptions(patience=20))
    assert result.stopped_early and result.n_steps < 2000
    h = result.history
    assert result.best_step == int(np.argmin(h.total))
    assert all(t >= h.total[result.best_step] for t in h.total[result.best_step + 1:])
    assert len(h.total) - 1 - result.best_step == 20


def test_settings_are_checked():
    args = (lambda th, rng: 0.0, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1))
    with pytest.raises(ValueError, match="mode must be one of"):
        inf.calibrate(*args, n_steps=1, optimizer=inf.adam(0.1),
                      options=inf.RunOptions(mode="sideways"))
    with pytest.raises(ValueError, match="gradient must be one of"):
        inf.calibrate(*args, n_steps=1, optimizer=inf.adam(0.1),
                      options=inf.RunOptions(gradient="magic"))
    with pytest.raises(ValueError, match="on_nan"):
        inf.calibrate(*args, n_steps=1, optimizer=inf.adam(0.1),
                      options=inf.RunOptions(on_nan="ignore"))
    with pytest.raises(ValueError, match="dimension 2"):
        inf.calibrate(args[0], inf.Independent(inf.Normal(md.zeros((2,)))), args[2],
                      n_steps=1, optimizer=inf.adam(0.1))
    with pytest.raises(TypeError, match="must return a scalar"):
        inf.calibrate(lambda th, rng: th, *args[1:], n_steps=1, optimizer=inf.adam(0.1))


# ---------------------------------------------------------------------------------------------
# every engine backend
# ---------------------------------------------------------------------------------------------

BACKEND_CASES = {  # family, prior, loss (each made on the test's backend)
    "diagonal": (lambda: inf.DiagonalGaussian(2), lambda: inf.Normal(md.zeros((2,)), 1.0)),
    "full_rank": (lambda: inf.FullRankGaussian(2), lambda: inf.Normal(md.zeros((2,)), 1.0)),
    "flow": (lambda: inf.RealNVP(2, n_layers=2, hidden=(4,), base="sinh_arcsinh"),
             lambda: inf.Normal(md.zeros((2,)), 1.0)),
    "beta": (lambda: inf.BetaFamily(2), lambda: inf.Beta(md.asarray([2.0, 3.0]), 2.0)),
}


def _short_run(name, gradient, mode):
    make_family, make_prior = BACKEND_CASES[name]
    loss = noisy_walk_loss(observed_increments(), n_steps=8)
    return inf.calibrate(loss, make_prior(), make_family(), n_samples=3, n_steps=3,
                         optimizer=inf.chain(inf.clip_by_global_norm(1.0), inf.adamw(0.05)),
                         options=inf.RunOptions(kl="mc", kl_samples=8, gradient=gradient,
                                                mode=mode))


@pytest.mark.parametrize("name", BACKEND_CASES)
@pytest.mark.parametrize("gradient,mode", [("pathwise", "forward"), ("pathwise", "reverse"),
                                           ("score", "auto")])
def test_calibrate_gives_the_same_run_on_every_engine_backend(name, gradient, mode, backend):
    """array_api_strict accepts only the standard's names and operators; its random numbers
    are NumPy's, so the run must match the NumPy run to rounding."""
    result = _short_run(name, gradient, mode)
    with md.use_backend("numpy"):
        reference = _short_run(name, gradient, mode)
    np.testing.assert_allclose(result.history.total, reference.history.total, rtol=1e-10)
