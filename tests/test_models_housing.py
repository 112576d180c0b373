"""The housing market: policy gradients by jacfwd agree with finite differences on common random
numbers, tightening LTV or LTI lowers approvals and HPI growth, the stress test responds to the
income shock, the market is valid, and the model runs under every transform on NumPy and
array_api_strict.

Samples are independent household populations, ``root.stream(i)`` of one root generator; a
"z-test" compares a mean with its standard error over those samples, with the issue's
tolerance |z| < 3 (and z > 3 for a sign). Runs are kept small (N = 400 households, a 12-month
window after a 24-month burn-in) so the file stays fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf
from minidiff.models import housing
from minidiff.random import default_rng
from minidiff.stochastic import derivative_estimate

Z_MAX = 3.0
SMALL = {"n_timesteps": 12, "n_agents": 400, "burn_in": 24}
GROWTH, TRANSACTIONS, APPROVALS, ARREARS = range(4)   # rows of housing.outcomes
LTV, LTI = 0, 1                                       # columns of the policy Jacobian
N_SAMPLES = 8


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def outcomes(policy, rng):
    """housing.outcomes of one run with the four policy limits given, the rest at defaults."""
    params = md.concatenate([md.asarray(policy), md.asarray(housing.DEFAULT_PARAMS[4:])])
    return housing.outcomes(housing.simulate(params, rng=rng, **SMALL))


@pytest.fixture(scope="module")
def policy_derivatives():
    """Per sample: the Jacobian of the outcomes in the four limits by jacfwd (one pass), and
    by central differences at the same seed (common random numbers), h = 1e-4."""
    root = default_rng(0)
    policy = np.asarray(housing.BASELINE_POLICY, dtype=np.float64)
    h = 1e-4
    by_jacfwd, by_differences = [], []
    for i in range(N_SAMPLES):
        by_jacfwd.append(host(md.jacfwd(lambda p: outcomes(p, root.stream(i)))(
            md.asarray(policy))))
        columns = []
        for k in range(4):
            step = h * np.eye(4)[k]
            up, down = (host(outcomes(md.asarray(policy + sign * step), root.stream(i)))
                        for sign in (1.0, -1.0))
            columns.append((up - down) / (2 * h))
        by_differences.append(np.stack(columns, axis=1))
    return np.array(by_jacfwd), np.array(by_differences)           # (n, 4 outcomes, 4 limits)


def test_policy_gradients_agree_with_common_random_number_finite_differences(
        policy_derivatives):
    """HPI growth, transactions and arrears (and approvals) against each limit. Over samples
    the two means agree within their standard errors; and sample by sample, since the model
    is smooth given its households, to the differences' truncation error (rtol 1e-3)."""
    jac, fd = policy_derivatives
    se = np.sqrt(jac.var(axis=0, ddof=1) / len(jac) + fd.var(axis=0, ddof=1) / len(fd))
    assert np.all(np.abs(jac.mean(axis=0) - fd.mean(axis=0)) <= Z_MAX * se + 1e-12)
    np.testing.assert_allclose(jac, fd, rtol=1e-3, atol=1e-7)


def test_tightening_ltv_or_lti_lowers_approvals_and_hpi_growth(policy_derivatives):
    """The gradient's sign (its mean over samples is > 3 standard errors above 0, and every
    sample's difference quotient agrees), then a finite tightening: LTV 0.90 → 0.85 and
    LTI 4.5 → 4.0 lower approvals and HPI growth in every sample (same seeds)."""
    jac, fd = policy_derivatives
    for outcome in (APPROVALS, GROWTH):
        for limit in (LTV, LTI):
            g = jac[:, outcome, limit]
            assert g.mean() / (g.std(ddof=1) / np.sqrt(len(g))) > Z_MAX
            assert np.all(fd[:, outcome, limit] > 0)
    root = default_rng(1)
    baseline = np.asarray(housing.BASELINE_POLICY, dtype=np.float64)
    for limit, tighter in ((LTV, 0.85), (LTI, 4.0)):
        policy = baseline.copy()
        policy[limit] = tighter
        for i in range(3):
            before = host(outcomes(md.asarray(baseline), root.stream(i)))
            after = host(outcomes(md.asarray(policy), root.stream(i)))
            assert after[APPROVALS] < before[APPROVALS] and after[GROWTH] < before[GROWTH]


def test_looser_lending_means_more_arrears_under_the_income_shock(policy_derivatives):
    """Larger loans per income fail the stress test more often: arrears rise with the LTI
    limit, the flow limit's share and the affordability ratio (z > 3)."""
    jac, _ = policy_derivatives
    g = jac[:, ARREARS, 1:]
    assert np.all(g.mean(axis=0) / (g.std(axis=0, ddof=1) / np.sqrt(len(g))) > Z_MAX)


def test_the_stress_test_responds_to_the_size_of_the_shock():
    rates = [host(housing.simulate(housing.DEFAULT_PARAMS, rng=2, shock_size=phi, **SMALL))
             [-1, 4] for phi in (0.0, 0.2, 0.4)]
    assert 0.0 <= rates[0] < rates[1] < rates[2] <= 1.0


def test_the_market_is_valid():
    series = host(housing.simulate(housing.DEFAULT_PARAMS, n_timesteps=36, n_agents=500, rng=3))
    assert series.shape == (36, 5) and np.all(np.isfinite(series))
    growth, transactions, approvals, at_limit, arrears = series.T
    assert np.all(np.abs(growth) < 0.2)                     # a month moves the HPI < 20%
    assert np.all(transactions > 0) and np.all(approvals > 0)
    assert np.all((at_limit >= 0) & (at_limit <= 1) & (arrears >= 0) & (arrears <= 1))
    # annual transactions near the listing rate: ψ of owners list each month, and sell
    assert 0.01 < transactions.mean() * 12 < 0.1


def test_a_tighter_flow_limit_lowers_the_share_of_loans_above_the_lti_limit():
    shares = [host(housing.simulate((0.9, 4.5, omega, 0.33, 0.04, 0.2), rng=4, **SMALL))[:, 3]
              .mean() for omega in (0.0, 0.15)]
    assert shares[0] < shares[1]


def test_calibration_recovers_two_parameters_of_a_synthetic_economy():
    """GVI (``minidiff.inference.calibrate``) recovers the sellers' markup and the trend
    following of a synthetic economy from its 24 monthly series, under the baseline policy.

    The economy's households are known (one population, seed 100, as survey micro-data would
    give them) and its behaviour is not: θ = (10·markup, log trend), prior N((0.4, log 0.2),
    diag(0.3², 0.5²)), truth (0.6, log 0.3). ℓ is ``housing.loss`` against the synthetic series,
    w = 0.02, a diagonal Gaussian q from the prior mean, 30 steps of 2 samples (pathwise,
    forward-mode gradients). The truth must lie within one posterior sd of q's mean in both
    (calibrate seeds 0-3 give |z| ≤ 0.52; this runs seed 0), with q far narrower than the
    prior, and the loss must fall."""
    truth = np.array([0.6, math.log(0.3)])
    start = md.asarray([0.4, math.log(0.2)])

    def simulate(theta):
        markup, trend = md.getitem(theta, 0) / 10.0, md.exp(md.getitem(theta, 1))
        params = md.stack([md.asarray(v) for v in housing.BASELINE_POLICY] + [markup, trend])
        return housing.simulate(params, n_timesteps=24, n_agents=300, burn_in=24, rng=100)

    observed = simulate(md.asarray(truth))
    steps = 30
    result = inf.calibrate(lambda theta, rng: housing.loss(simulate(theta), observed),
                           inf.Normal(start, md.asarray([0.3, 0.5])),
                           inf.DiagonalGaussian(2, loc=start, scale=0.1), n_samples=2,
                           n_steps=steps, seed=0, optimizer=inf.adam(inf.cosine(0.05, steps)),
                           options=inf.RunOptions(w=0.02))
    mean = host(result.params["loc"])
    sd = np.exp(host(result.params["log_scale"]))
    assert np.all(np.abs(mean - truth) < sd), (mean, sd, truth)
    assert np.all(sd < [0.1, 0.2]), sd
    assert np.mean(result.history.loss[-5:]) < 0.5 * np.mean(result.history.loss[:5])


# ---------------------------------------------------------------------------------------------
# every transform, every backend; settings
# ---------------------------------------------------------------------------------------------


def test_runs_under_plain_jacfwd_grad_and_triples(backend):
    p = backend.from_host(np.asarray(housing.DEFAULT_PARAMS, dtype=np.float64))

    def simulate(q):
        return housing.simulate(q, n_timesteps=4, n_agents=40, burn_in=3, rng=default_rng(0))

    plain = host(simulate(p))
    assert plain.shape == (4, 5) and np.all(np.isfinite(plain))
    jac = host(md.jacfwd(simulate)(p))
    assert jac.shape == (4, 5, 6) and np.all(np.isfinite(jac))
    summary = lambda q: housing.outcomes(simulate(q))[0]  # noqa: E731
    np.testing.assert_allclose(host(md.grad(summary)(p)), host(md.jacfwd(summary)(p)),
                               rtol=1e-9, atol=1e-12)
    # no discrete draws: triples are forward mode
    np.testing.assert_allclose(host(derivative_estimate(simulate, p, seed=1)), jac,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("settings, error, says", [
    ({"mortgage_rte": 0.05}, TypeError, r"unknown setting\(s\) \['mortgage_rte'\]"),
    ({"buy_rate": 0.0}, ValueError, r"buy_rate must lie in \(0, 1\]"),
    ({"burn_in": -1}, ValueError, "burn_in must be an integer ≥ 0"),
    ({"smoothing": 0.0}, ValueError, r"smoothing must lie in \(0, inf\)"),
])
def test_bad_settings_are_refused_naming_them(settings, error, says):
    with pytest.raises(error, match=f"housing.simulate: {says}"):
        housing.simulate(housing.DEFAULT_PARAMS, n_timesteps=2, n_agents=10, rng=0, **settings)
