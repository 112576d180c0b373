"""minidiff.inference: pytrees, bijections, distributions and implicit Beta/Gamma gradients.

Densities, means and sds are checked against SciPy to 1e-12 (float64 rounding of the same
formulas). Sample moments are z-tests with fixed seeds: |mean − exact| < 4 standard errors
(a false alarm about once in 16,000 runs). Derivatives are checked against central finite
differences with step h = 1e-5 and common random numbers (the same uniforms at θ ± h), whose
truncation error is O(h²) ≈ 1e-10 relative, so 1e-6 leaves room for the quantiles' rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sps
import scipy.stats as st

import minidiff as md
from minidiff import inference as inf

N = 20_000
beta_quantile, gamma_quantile = md.distributions.beta_quantile, md.distributions.gamma_quantile


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def assert_z(samples, exact, limit=4.0):
    g = host(samples).ravel()
    se = g.std(ddof=1) / math.sqrt(g.size)
    z = (g.mean() - exact) / se
    assert abs(z) < limit, f"mean {g.mean():.6g} vs exact {exact:.6g}: z = {z:.2f}"


# ---------------------------------------------------------------------------------------------
# pytrees
# ---------------------------------------------------------------------------------------------


def test_ravel_round_trips_nested_dicts_lists_and_tuples(backend):
    tree = {"b": [md.asarray([1.0, 2.0]), (md.asarray(3.0),)],
            "a": md.asarray([[4.0, 5.0], [6.0, 7.0]])}
    flat, unravel = inf.ravel(tree)
    # dict keys sorted: "a" first
    np.testing.assert_array_equal(host(flat), [4, 5, 6, 7, 1, 2, 3])
    back = unravel(flat)
    assert set(back) == {"a", "b"} and isinstance(back["b"], list)
    assert isinstance(back["b"][1], tuple) and tuple(back["b"][1][0].shape) == ()
    np.testing.assert_array_equal(host(back["a"]), host(tree["a"]))
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        unravel(md.zeros((6,)))


def test_ravel_is_differentiable_through_unravel():
    tree = {"w": md.asarray([[1.0, 2.0], [3.0, 4.0]]), "b": md.asarray([0.5, -1.0])}
    flat, unravel = inf.ravel(tree)

    def f(v):
        p = unravel(v)
        return md.sum(md.matmul(p["w"], p["b"]) ** 2)

    g = unravel(md.grad(f)(flat))
    w, b = host(tree["w"]), host(tree["b"])
    r = w @ b
    np.testing.assert_allclose(host(g["w"]), 2 * np.outer(r, b), rtol=1e-12)
    np.testing.assert_allclose(host(g["b"]), 2 * w.T @ r, rtol=1e-12)
    # forward mode agrees
    np.testing.assert_allclose(host(md.jacfwd(f)(flat)), host(md.grad(f)(flat)), rtol=1e-12)


def test_tree_map_refuses_mismatched_structures():
    with pytest.raises(ValueError, match="has structure .* but the first has"):
        inf.tree_map(lambda a, b: a + b, {"x": 1.0}, {"y": 1.0})


# ---------------------------------------------------------------------------------------------
# bijections
# ---------------------------------------------------------------------------------------------

BIJECTIONS = {  # made inside the test, on its backend
    "exp": lambda: inf.Exp(), "sigmoid": lambda: inf.Sigmoid(),
    "affine": lambda: inf.Affine(0.5, -2.0),
    "power10": lambda: inf.Compose(inf.Affine(0.0, math.log(10.0)), inf.Exp()),
    "logit": lambda: inf.Sigmoid().inverted(),
    "identity": lambda: md.distributions.Identity(), "pow10": lambda: md.distributions.Pow10(),
    "coordinatewise": lambda: md.distributions.Coordinatewise(  # one map per coordinate of x
        md.distributions.Identity(), md.distributions.Pow10(), inf.Sigmoid(), inf.Exp()),
}


@pytest.mark.parametrize("name", BIJECTIONS)
def test_bijection_inverts_and_log_det_matches_the_derivative(name, backend):
    bij = BIJECTIONS[name]()
    x = md.asarray([-1.3, -0.2, 0.4, 1.7])
    if isinstance(bij, inf.Inverse):  # logit: its domain is (0, 1)
        x = md.asarray([0.1, 0.35, 0.6, 0.9])
    y = bij.forward(x)
    np.testing.assert_allclose(host(bij.inverse(y)), host(x), rtol=1e-12, atol=1e-14)
    derivative = np.array([host(md.grad(lambda v: md.sum(bij.forward(v)))(x))])[0]
    np.testing.assert_allclose(host(bij.log_det_jacobian(x)), np.log(np.abs(derivative)),
                               rtol=1e-10, atol=1e-12)


def test_affine_refuses_a_zero_scale():
    with pytest.raises(ValueError, match="non-zero"):
        inf.Affine(1.0, 0.0)


# ---------------------------------------------------------------------------------------------
# scalar distributions against SciPy
# ---------------------------------------------------------------------------------------------

CASES = [
    (inf.Normal(0.5, 2.0), st.norm(0.5, 2.0), [-3.0, 0.1, 4.0]),
    (inf.LogNormal(-0.3, 0.7), st.lognorm(0.7, scale=math.exp(-0.3)), [0.2, 0.9, 3.0]),
    (inf.Uniform(-1.0, 3.0), st.uniform(-1.0, 4.0), [-0.5, 1.0, 2.9]),
    (inf.Beta(2.5, 0.7), st.beta(2.5, 0.7), [0.05, 0.5, 0.97]),
    (inf.Gamma(3.0, 2.0), st.gamma(3.0, scale=0.5), [0.1, 1.5, 6.0]),
]


@pytest.mark.parametrize("dist,ref,xs", CASES, ids=lambda c: type(c).__name__)
def test_log_prob_mean_and_std_match_scipy(dist, ref, xs):
    np.testing.assert_allclose(host(dist.log_prob(md.asarray(xs))), ref.logpdf(xs), rtol=1e-12)
    np.testing.assert_allclose(float(dist.mean), ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(float(dist.std), ref.std(), rtol=1e-12)


@pytest.mark.parametrize("dist,ref,xs", CASES, ids=lambda c: type(c).__name__)
def test_samples_have_the_right_mean_and_variance(dist, ref, xs):
    x = dist.sample(md.random.default_rng(3), (N,))
    assert tuple(x.shape) == (N,)
    assert_z(x, ref.mean())
    # the variance by a z-test on the squared deviations from the exact mean
    assert_z((host(x) - ref.mean()) ** 2, ref.var())


def test_log_prob_is_minus_infinity_outside_the_support_with_finite_derivatives():
    for dist, outside in [(inf.Beta(2.0, 3.0), [-0.1, 1.2]), (inf.Gamma(2.0), [-1.0]),
                          (inf.LogNormal(), [-2.0]), (inf.Uniform(0.0, 1.0), [1.5])]:
        x = md.asarray(outside)
        assert np.all(host(dist.log_prob(x)) == -np.inf)
        g = md.grad(lambda v: md.sum(md.where(md.stop_gradient(v) > -100, 0.0, v)
                                     + 0.0 * md.exp(dist.log_prob(v))))(x)
        assert np.all(np.isfinite(host(g)))


def test_distribution_parameters_are_checked():
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        inf.Normal(0.0, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        inf.Beta(0.0, 1.0)
    with pytest.raises(ValueError, match="high − low"):
        inf.Uniform(1.0, 1.0)


def test_reparameterised_lognormal_samples_carry_pathwise_derivatives():
    # x = exp(μ + σε): dx/dμ = x, dx/dσ = x ε; E of these is e^(μ+σ²/2)·(1, σ)
    mu, sigma = 0.2, 0.5

    def mean_of(p):
        return md.mean(inf.LogNormal(p[0], p[1]).sample(md.random.default_rng(5), (N,)))

    g = host(md.grad(mean_of)(md.asarray([mu, sigma])))
    eps = host(md.random.default_rng(5).normal(size=(N,)))
    x = np.exp(mu + sigma * eps)
    per_draw = np.stack([x, x * eps], axis=1)
    np.testing.assert_allclose(g, per_draw.mean(axis=0), rtol=1e-12)  # the same draws
    exact = math.exp(mu + sigma**2 / 2) * np.array([1.0, sigma])
    for k in range(2):
        assert_z(per_draw[:, k], exact[k])


# ---------------------------------------------------------------------------------------------
# vector distributions
# ---------------------------------------------------------------------------------------------


def test_independent_sums_component_log_probs_and_stacks_samples(backend):
    prior = inf.Independent(inf.Normal(md.asarray([0.0, 1.0]), 2.0), inf.Beta(2.0, 3.0))
    assert prior.dim == 3
    theta = md.asarray([[0.3, -1.0, 0.4], [1.0, 2.0, 0.9]])
    t = host(theta)
    exact = (st.norm(0.0, 2.0).logpdf(t[:, 0]) + st.norm(1.0, 2.0).logpdf(t[:, 1])
             + st.beta(2.0, 3.0).logpdf(t[:, 2]))
    np.testing.assert_allclose(host(prior.log_prob(theta)), exact, rtol=1e-12)
    np.testing.assert_allclose(host(prior.mean), [0.0, 1.0, 0.4], rtol=1e-12)
    draws = prior.sample(md.random.default_rng(0), 7)
    assert tuple(draws.shape) == (7, 3)
    assert prior.gaussian() is None
    assert inf.Independent(inf.Normal(md.zeros((2,)), 1.0)).gaussian() is not None


def test_transformed_density_is_the_change_of_variables():
    # a Beta(2, 2) prior on θ, written in logit space: p(x) = Beta(σ(x)) σ(x)(1 − σ(x))
    prior = inf.Transformed(inf.Beta(2.0, 2.0), inf.Sigmoid().inverted())
    x = np.array([-2.0, 0.0, 0.7])
    s = sps.expit(x)
    exact = st.beta(2.0, 2.0).logpdf(s) + np.log(s * (1 - s))
    np.testing.assert_allclose(host(prior.log_prob(md.asarray(x[:, None]))), exact, rtol=1e-12)
    # it integrates to one (quadrature on a wide grid)
    grid = np.linspace(-30, 30, 200_001)
    dens = np.exp(host(prior.log_prob(md.asarray(grid[:, None]))))
    assert abs(np.trapezoid(dens, grid) - 1.0) < 1e-8
    with pytest.raises(NotImplementedError, match="estimate it from sample"):
        _ = prior.mean


# ---------------------------------------------------------------------------------------------
# implicit reparameterisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a,b,x", [(2.0, 3.0, 0.1), (2.0, 3.0, 0.8), (0.5, 0.7, 0.01),
                                   (0.5, 0.7, 0.99), (30.0, 50.0, 0.35), (300.0, 200.0, 0.61)])
def test_incomplete_beta_derivatives_match_finite_differences(a, b, x):
    d_a, d_b = md.get_backend().betainc_grad(a, b, x)
    h = 1e-6 * max(1.0, a, b)
    fd_a = (sps.betainc(a + h, b, x) - sps.betainc(a - h, b, x)) / (2 * h)
    fd_b = (sps.betainc(a, b + h, x) - sps.betainc(a, b - h, x)) / (2 * h)
    # FD of a function of size ≤ 1 with step h: error ~ 1e-16/h + h²; 2e-8 absolute suffices
    np.testing.assert_allclose(float(d_a), fd_a, rtol=1e-6, atol=2e-8)
    np.testing.assert_allclose(float(d_b), fd_b, rtol=1e-6, atol=2e-8)


@pytest.mark.parametrize("a,x", [(2.0, 0.5), (2.0, 5.0), (0.3, 0.001), (0.3, 3.0), (50.0, 45.0),
                                 (50.0, 70.0)])
def test_incomplete_gamma_derivative_matches_finite_differences(a, x):
    h = 1e-6 * max(1.0, a)
    fd = (sps.gammainc(a + h, x) - sps.gammainc(a - h, x)) / (2 * h)
    np.testing.assert_allclose(float(md.get_backend().gammainc_grad(a, x)), fd, rtol=1e-6,
                               atol=2e-8)


def test_beta_quantile_gradient_matches_finite_differences_with_common_random_numbers():
    u = host(md.random.default_rng(11).random(8)) + 2.0**-54
    ab = np.array([1.7, 4.2])
    jac = host(md.jacfwd(lambda p: beta_quantile(p[0], p[1], md.asarray(u)))(md.asarray(ab)))
    np.testing.assert_allclose(jac, host(md.jacrev(lambda p: beta_quantile(
        p[0], p[1], md.asarray(u)))(md.asarray(ab))), rtol=1e-12)
    h = 1e-5
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        fd = (sps.betaincinv(*(ab + e), u) - sps.betaincinv(*(ab - e), u)) / (2 * h)
        np.testing.assert_allclose(jac[:, k], fd, rtol=1e-6, atol=1e-9)


def test_gamma_quantile_gradient_matches_finite_differences_with_common_random_numbers():
    u = host(md.random.default_rng(12).random(8)) + 2.0**-54
    a, h = 2.3, 1e-5
    jac = host(md.jacfwd(lambda p: gamma_quantile(p, md.asarray(u)))(md.asarray(a)))
    fd = (sps.gammaincinv(a + h, u) - sps.gammaincinv(a - h, u)) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-9)


def test_gradient_of_a_beta_expectation_is_unbiased():
    # d/dα E[z] for z ~ Beta(α, β) is β/(α+β)²; the implicit pathwise estimate averages to it
    def mean_of(p):
        return md.mean(inf.Beta(p[0], p[1]).sample(md.random.default_rng(2), (4000,)))

    a, b = 2.0, 3.0
    g = host(md.grad(mean_of)(md.asarray([a, b])))
    # standard error of the pathwise estimate from the per-draw derivatives
    u = host(md.random.default_rng(2).random((4000,))) + 2.0**-54
    per_draw = host(md.jacfwd(lambda p: beta_quantile(p[0], p[1], md.asarray(u)))(
        md.asarray([a, b])))
    np.testing.assert_allclose(g, per_draw.mean(axis=0), rtol=1e-10)
    se = per_draw.std(axis=0, ddof=1) / math.sqrt(4000)
    exact = np.array([b, -a]) / (a + b) ** 2
    assert np.all(np.abs(g - exact) < 4 * se), (g, exact, se)


def test_second_derivatives_through_a_quantile_raise_rather_than_mislead():
    u = md.asarray([0.3, 0.6])
    with pytest.raises(md.ModeError):
        md.hessian(lambda p: md.sum(beta_quantile(p[0], p[1], u)))(md.asarray([2.0, 3.0]))
