"""The discrete samplers at every scale: two-sample tests against NumPy's own samplers, moment
z-tests, exactness against a brute-force inversion, bounded work at huge parameters, and the
derivative machinery (smoothed, straight-through, triples) at large parameters.

Thresholds, stated once:

* two-sample tests: a chi-square test of homogeneity on the counts of both samples in about 30
  bins (edges at the pooled sample's quantiles, so every bin is well filled), refusing at
  p < 1e-4; with the ~30 parameter sets here a false alarm has probability below 0.3% (and the
  seeds are fixed, so the outcome is reproducible);
* z-tests: |mean − exact| < 4 standard errors, the standard error of a sample variance taken
  from the fourth central moment, (μ₄ − σ⁴)/n.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

import minidiff as md
from minidiff import random as mr
from minidiff.backend import binomial_quantile, poisson_quantile
from minidiff.stochastic import derivative_estimate

N = 20_000
P_REFUSE = 1e-4


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def chi_square_p_value(a, b, n_bins=30, least=20):
    """p-value of the chi-square test that samples ``a`` and ``b`` come from one law: bins
    (edges at pooled quantiles, value x in the bin whose upper edge is the first ≥ x) merged
    with their neighbour until each holds ``least`` draws of the two samples together."""
    pooled = np.concatenate([a, b])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, n_bins + 1)[1:-1],
                                  method="inverted_cdf"))
    table = np.array([np.bincount(np.searchsorted(edges, x, side="left"),
                                  minlength=edges.size + 1) for x in (a, b)])
    columns = []
    for column in table.T:
        if columns and columns[-1].sum() < least:
            columns[-1] = columns[-1] + column
        else:
            columns.append(column)
    if len(columns) > 1 and columns[-1].sum() < least:
        last = columns.pop()
        columns[-1] = columns[-1] + last
    if len(columns) < 2:  # both samples are one value
        return 1.0 if np.all(a == a[0]) and np.all(b == a[0]) else 0.0
    return stats.chi2_contingency(np.stack(columns, axis=1))[1]


def assert_moments(x, mean, var, mu4):
    n = x.size
    z_mean = (x.mean() - mean) / math.sqrt(var / n)
    z_var = (x.var(ddof=1) - var) / math.sqrt((mu4 - var * var) / n)
    assert abs(z_mean) < 4 and abs(z_var) < 4, (z_mean, z_var)


# λ: small, medium (exp(-λ) underflows from λ ≈ 745, where the old loop returned its cap),
# huge (the old loop's length grew with λ: 1e10 hung)
POISSON = [0.05, 0.5, 3.5, 30.0, 745.0, 1000.0, 1e5, 1e10, 1e15]
# (n, p): small, medium ((1 − p)ⁿ underflows at n = 1100, p = ½, where n came back every
# time), p near 1, huge (10⁹ hung)
BINOMIAL = [(1, 0.3), (10, 0.3), (50, 0.02), (1100, 0.5), (2000, 0.999), (5000, 0.1),
            (10**6, 0.4), (10**9, 0.5), (10**12, 0.3), (10**15, 1e-3), (10**18, 1e-16)]


def numpy_binomial(n, p, size, seed):
    """NumPy's binomial, or (at n = 10¹⁸, where its mean drifts by 12 standard errors from
    np = 100 in 20 000 draws) its Poisson(np), which is the same law to within n·p² = 1e-14."""
    rng = np.random.default_rng(seed)
    if n > 10**16:
        return rng.poisson(n * p, size=size).astype(np.float64)
    return rng.binomial(n, p, size=size).astype(np.float64)
GEOMETRIC = [1.0, 0.999, 0.5, 0.3, 1e-3, 1e-9]


@pytest.mark.parametrize("lam", POISSON)
def test_poisson_matches_numpy_and_its_moments(lam):
    ours = host(mr.default_rng(1).poisson(lam, size=N))
    theirs = np.random.default_rng(2).poisson(lam, size=N).astype(np.float64)
    assert np.all(ours == np.floor(ours)) and ours.min() >= 0
    assert chi_square_p_value(ours, theirs) > P_REFUSE
    assert_moments(ours, lam, lam, lam * (1 + 3 * lam))


@pytest.mark.parametrize("n, p", BINOMIAL)
def test_binomial_matches_numpy_and_its_moments(n, p):
    ours = host(mr.default_rng(3).binomial(n, p, size=N))
    theirs = numpy_binomial(n, p, N, seed=4)
    assert np.all(ours == np.floor(ours)) and ours.min() >= 0 and ours.max() <= n
    assert chi_square_p_value(ours, theirs) > P_REFUSE
    var = n * p * (1 - p)
    if var > 0.05:  # below that nearly every draw is the same value (moments say little)
        assert_moments(ours, n * p, var, var * (1 + 3 * p * (1 - p) * (n - 2)))
    if N * p ** n < 1e-6:  # e.g. binomial(1100, ½), which returned n every time
        assert ours.max() < n


@pytest.mark.parametrize("p", GEOMETRIC)
def test_geometric_matches_numpy_and_its_moments(p):
    ours = host(mr.default_rng(5).geometric(p, size=N))  # failures before the first success
    theirs = np.random.default_rng(6).geometric(p, size=N) - 1.0  # NumPy counts trials
    assert chi_square_p_value(ours, theirs) > P_REFUSE
    q = 1 - p
    var = q / p ** 2
    if var > 0:
        mu4 = q * (p ** 2 + 9 * q) / p ** 4  # the fourth central moment of the geometric law
        assert_moments(ours, q / p, var, mu4)
    else:
        assert np.all(ours == 0)


def brute_force_inverse(u, pmf):
    """min{k : F(k) ≥ u} from a pmf table (float64 cumulative sums)."""
    return np.searchsorted(np.cumsum(pmf), u, side="left").astype(np.float64)


@pytest.mark.parametrize("lam", [0.7, 12.0, 900.0])
def test_poisson_is_the_exact_inversion_of_its_uniform(lam):
    u = np.random.default_rng(7).random(5000)
    k = np.arange(int(lam + 60 * math.sqrt(lam) + 60))
    reference = brute_force_inverse(u, stats.poisson.pmf(k, lam))
    # a draw could differ only where u lies within rounding (1e-15) of a CDF value
    np.testing.assert_array_equal(poisson_quantile(u, lam), reference)


@pytest.mark.parametrize("n, p", [(7, 0.4), (1100, 0.5), (3000, 0.97)])
def test_binomial_is_the_exact_inversion_of_its_uniform(n, p):
    u = np.random.default_rng(8).random(5000)
    reference = brute_force_inverse(u, stats.binom.pmf(np.arange(n + 1), n, p))
    np.testing.assert_array_equal(binomial_quantile(u, n, p), reference)


def test_the_far_tails_are_exact():
    # u at the ends of its range: P(X ≤ 10) for Binomial(1100, ½) is about 5e-308, so the
    # smallest uniform the samplers use (the smallest normal float) inverts to 10; at
    # u = 1 − 2⁻⁵² the upper tail is read as P(X > k) ≤ 2⁻⁵², so it keeps its precision
    tiny, top = np.finfo(float).smallest_normal, 1.0 - np.finfo(float).eps
    x = binomial_quantile(np.array([tiny, top]), 1100.0, 0.5)
    assert x[0] == 10.0
    log_pmf = [math.lgamma(1101) - math.lgamma(j + 1) - math.lgamma(1101 - j)
               - 1100 * math.log(2) for j in range(11)]
    log_cdf = [np.logaddexp.reduce(log_pmf[:k + 1]) for k in (9, 10)]  # SciPy's underflows
    assert log_cdf[0] < math.log(tiny) <= log_cdf[1]
    assert stats.binom.sf(x[1], 1100, 0.5) <= 1 - top < stats.binom.sf(x[1] - 1, 1100, 0.5)
    y = poisson_quantile(np.array([tiny, top]), 1000.0)
    log_cdf = [np.logaddexp.reduce(stats.poisson.logpmf(np.arange(k + 1), 1000.0))
               for k in (y[0] - 1, y[0])]
    assert log_cdf[0] < math.log(tiny) <= log_cdf[1]
    assert stats.poisson.sf(y[1], 1000.0) <= 1 - top < stats.poisson.sf(y[1] - 1, 1000.0)


def test_the_saddle_point_and_the_incomplete_beta_agree_where_they_meet():
    # above n·p·q = 1e7 the binomial CDF comes from a saddle point; at that switch both
    # methods are within about 1e-13 of a 35-digit reference (measured with mpmath while
    # writing this), so they must agree to 1e-12 here
    from minidiff.backend.quantiles import _binomial_saddle

    for n, p in [(4e7, 0.5), (1.2e8, 0.1), (1.1e10, 1e-3)]:
        sd = math.sqrt(n * p * (1 - p))
        k = np.floor(n * p + sd * np.linspace(-8, 8, 41))
        lower = np.ones(k.shape, dtype=bool)
        saddle = _binomial_saddle(k, np.full(k.shape, n), np.full(k.shape, p), lower)
        beta = stats.binom.cdf(k, n, p)
        np.testing.assert_allclose(saddle, beta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler", [
    lambda r: r.poisson(1e300, size=1000),
    lambda r: r.poisson(1e15, size=1000),
    lambda r: r.binomial(1e300, 0.5, size=1000),
    lambda r: r.binomial(10**9, 0.5, size=1000),
    lambda r: r.binomial(1e300, 1e-290, size=1000),
    lambda r: r.geometric(1e-300, size=1000),
], ids=["poisson 1e300", "poisson 1e15", "binomial 1e300", "binomial 1e9",
        "binomial np = 1e10", "geometric 1e-300"])
def test_huge_parameters_take_bounded_time_and_give_finite_samples(sampler):
    start = time.perf_counter()
    x = host(sampler(mr.default_rng(9)))
    assert time.perf_counter() - start < 5.0  # milliseconds in practice; the old loops hung
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    assert np.unique(x).size > 1  # random, not a constant


def test_huge_means_are_right():
    # where the spread is below the spacing of floats, the draws are the floats next to the
    # mean; below that scale they are spread as the law says
    for lam in (1e300, 1e40):
        x = host(mr.default_rng(10).poisson(lam, size=2000))
        assert abs(x.mean() / lam - 1) < 1e-14
    x = host(mr.default_rng(11).binomial(1e300, 1e-290, size=2000))
    assert abs(x.mean() / 1e10 - 1) < 4 * 1e5 / 1e10 / math.sqrt(2000)


# -- the derivative machinery reads the same uniform at large parameters ---------------------


def test_smoothed_and_straight_through_derivatives_at_large_parameters(backend):
    # d/dλ E[X] = 1 and d/dp E[X] = n: the smoothed slope is unbiased for a linear f, and
    # straight-through gives it exactly
    def poisson(t):
        return md.sum(mr.default_rng(12).poisson(t, size=4000))

    g = host(md.grad(poisson)(md.asarray(1000.0)))
    assert abs(g / 4000 - 1) < 4 * math.sqrt(0.25 / 1000) / math.sqrt(4000) + 1e-12
    value, slope = md.jvp(poisson, (md.asarray(1000.0),), (md.asarray(1.0),))
    assert host(slope) == pytest.approx(g, rel=1e-12)
    assert host(value) == host(md.sum(mr.default_rng(12).poisson(1000.0, size=4000)))

    def binomial(t):
        return md.sum(mr.default_rng(13).binomial(1100, t, size=4000,
                                                  estimator="straight_through"))

    assert host(md.grad(binomial)(md.asarray(0.5))) == pytest.approx(1100 * 4000, rel=1e-12)


def test_stochastic_triples_at_large_parameters():
    # E[Σ X] = 50 λ: each of the 50 Poisson(1000) draws jumps up at rate 1, so one estimate
    # is 50 exactly; for Binomial(1100, p), E[X²] = n p (1 − p) + n² p², derivative at ½ is
    # n² = 1 210 000 (plus n(1 − 2p) = 0)
    rng = mr.default_rng(14)
    d = [float(host(derivative_estimate(lambda t: md.sum(rng.poisson(t, size=50)), 1000.0,
                                        seed=i))) for i in range(5)]
    assert d == [50.0] * 5

    def square(t):
        x = rng.binomial(1100, t)
        return x * x

    estimates = np.array([float(host(derivative_estimate(square, 0.5, seed=i)))
                          for i in range(300)])
    se = estimates.std(ddof=1) / math.sqrt(estimates.size)
    assert abs(estimates.mean() - 1100 ** 2) < 4 * se
