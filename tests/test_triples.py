"""Stochastic triples: unbiased derivatives through discrete randomness, checked statistically.

Every estimate is averaged over many seeded runs and z-tested against the exact derivative
(|mean − exact| < 4 standard errors). Draws come straight from the distributions table, by
inversion of seeded uniforms, so these tests exercise the triple engine alone.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy import stats

import minidiff as md
from minidiff.core import raw
from minidiff.random.distributions import (
    Bernoulli,
    Binomial,
    Categorical,
    Geometric,
    Poisson,
    uniform_like,
)
from minidiff.stochastic import derivative_estimate
from minidiff.stochastic.triples import perturbed, sample_perturbed

Z_LIMIT = 4.0


class Draws:
    """A sampler by inversion that produces triples when its parameters are perturbed."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, dist, *params, shape=()):
        batch = np.broadcast_shapes(shape, *(np.shape(raw(p)) for p in params[-1:]))
        if dist is Categorical:
            batch = np.broadcast_shapes(shape, np.shape(raw(params[-1]))[:-1])
        u = uniform_like(self.rng, batch)
        if perturbed(*params):
            return sample_perturbed(dist, u, params)
        return dist.sample(u, *(raw(p) for p in params))


def estimates(f, theta, n, seed=0):
    draws = Draws(seed)
    return np.array([derivative_estimate(lambda t: f(t, draws), theta, seed=seed * 100_003 + i)
                     for i in range(n)])


def assert_unbiased(samples, exact):
    samples = np.asarray(samples, dtype=float)
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    # a zero-variance estimator (Poisson with a linear f) must match to rounding
    z = np.abs(mean - exact) / np.maximum(se, 1e-8 * np.maximum(1.0, np.abs(exact)))
    assert np.all(z < Z_LIMIT), f"mean {mean} vs exact {exact} (standard error {se}, z {z})"


def test_seed_example_two_bernoullis_is_unbiased():
    # 2·Bern(3θ) + Bern(θ): d/dθ E = 2·3 + 1 = 7
    samples = estimates(lambda t, d: 2.0 * d(Bernoulli, 3.0 * t) + d(Bernoulli, t), 0.1, 3000)
    assert_unbiased(samples, 7.0)


def walk(theta, draws, n_steps, squared=False):
    x = 0.0
    for _ in range(n_steps):
        x = x + 2.0 * draws(Bernoulli, theta) - 1.0
    return x * x if squared else x


def test_random_walk_mean_is_2T_and_std_matches_theory():
    # both formulas hold at every T, so a short walk checks them as well as a long one
    n_steps, theta = 25, 0.5
    samples = estimates(lambda t, d: walk(t, d, n_steps), theta, 600)
    assert_unbiased(samples, 2.0 * n_steps)
    expected_std = math.sqrt(4 * n_steps * theta / (1 - theta))  # = 10
    assert abs(samples.std(ddof=1) / expected_std - 1.0) < 0.10


def test_random_walk_square_is_unbiased():
    n_steps, theta = 20, 0.3
    samples = estimates(lambda t, d: walk(t, d, n_steps, squared=True), theta, 3000)
    assert_unbiased(samples, 4 * n_steps * (n_steps - 1) * (2 * theta - 1))


FUNCTIONS = {
    "7x-3": (lambda x: 7.0 * x - 3.0, lambda x: 7 * x - 3),
    "(x+1)^2": (lambda x: (x + 1.0) ** 2, lambda x: (x + 1) ** 2),
    "sqrt(x+1)": (lambda x: md.sqrt(x + 1.0), lambda x: np.sqrt(x + 1)),
}


def exact_mean(dist_name, p, g):
    """E[g(X)] summed over the support (numerically exact)."""
    if dist_name == "bernoulli":
        return (1 - p) * g(0) + p * g(1)
    if dist_name == "binomial":
        k = np.arange(11)
        return float(np.sum(stats.binom.pmf(k, 10, p) * g(k)))
    if dist_name == "poisson":
        k = np.arange(200)
        return float(np.sum(stats.poisson.pmf(k, 4 * p) * g(k)))
    if dist_name == "geometric":
        k = np.arange(2000)
        return float(np.sum((1 - p) ** k * p * g(k)))
    raise ValueError(dist_name)


DISTS = {
    "bernoulli": lambda d, p: d(Bernoulli, p),
    "binomial": lambda d, p: d(Binomial, 10.0, p),
    "poisson": lambda d, p: d(Poisson, 4.0 * p),
    "geometric": lambda d, p: d(Geometric, p),
}


@pytest.mark.parametrize("dist_name", list(DISTS))
@pytest.mark.parametrize("f_name", list(FUNCTIONS))
@pytest.mark.parametrize("side", ["p rising", "p falling"])
def test_each_distribution_is_unbiased_for_each_function_and_side(dist_name, f_name, side):
    f_md, f_np = FUNCTIONS[f_name]
    theta = 0.35
    sign = 1.0 if side == "p rising" else -1.0

    def prob(t):
        return t if sign > 0 else 1.0 - t   # mirror p -> 1 - p: the derivative changes side

    h = 1e-6
    exact = (exact_mean(dist_name, prob(theta + h), f_np)
             - exact_mean(dist_name, prob(theta - h), f_np)) / (2 * h)
    # a seed of its own for each case, the same in every process (str hashes are salted)
    samples = estimates(lambda t, d: f_md(DISTS[dist_name](d, prob(t))), theta, 1500,
                        seed=zlib.crc32(f"{dist_name} {f_name} {side}".encode()) % 1000)
    assert_unbiased(samples, exact)


def test_binomial_of_a_binomial_changes_n_by_finite_jumps():
    # E[Bin(Bin(10, p), p)] = 10 p², derivative 20 p
    samples = estimates(lambda t, d: d(Binomial, d(Binomial, 10.0, t), t), 0.3, 6000)
    assert_unbiased(samples, 20 * 0.3)


def test_categorical_index_derivative_is_minus_4_05():
    values = (3.5, 5.2, 8.4)

    def f(p, d):
        c = d(Categorical, md.stack([p / 2, p / 2, 1.0 - p]))
        return md.where(c == 0.0, values[0], md.where(c == 1.0, values[1], values[2]))

    samples = estimates(f, 0.3, 3000)
    assert_unbiased(samples, -4.05)


# --- piecewise-constant ops see both worlds (they are primitives the triple engine evaluates) ---


def test_floor_of_a_perturbed_sample_jumps_with_it():
    # floor(X + 0.5) = X for X in {0, 1}: E = θ, derivative 1 (a floor that dropped the
    # alternative world would give 0)
    samples = estimates(lambda t, d: md.floor(d(Bernoulli, t) + 0.5), 0.3, 2000)
    assert_unbiased(samples, 1.0)


def test_clip_of_a_perturbed_sample_clips_the_alternative_world_too():
    # clip(X, 0, 0.5) = X/2 for X in {0, 1}: E = θ/2, derivative 1/2 (an unclipped alternative
    # world would give 1)
    samples = estimates(lambda t, d: md.clip(d(Bernoulli, t), 0.0, 0.5), 0.3, 2000)
    assert_unbiased(samples, 0.5)


def test_logical_operators_combine_perturbed_conditions_in_every_world():
    # both of two independent Bernoulli(θ) draws: E = θ², derivative 2θ; either of them:
    # E = 1 − (1 − θ)², derivative 2(1 − θ); neither: E = (1 − θ)², derivative −2(1 − θ)
    theta = 0.4

    def f(t, d):
        x, y = d(Bernoulli, t) > 0.5, d(Bernoulli, t) > 0.5
        return md.stack([md.where(x & y, 1.0, 0.0), md.where(x | y, 1.0, 0.0),
                         md.where(~x & ~y, 1.0, 0.0)])

    samples = estimates(f, theta, 3000)
    assert_unbiased(samples, np.array([2 * theta, 2 * (1 - theta), -2 * (1 - theta)]))


def test_all_K_partials_come_back_from_one_pass():
    def f(theta, d):
        return 3.0 * d(Bernoulli, theta[0]) + md.sum(d(Bernoulli, theta[1], shape=(50,)))

    samples = estimates(f, np.array([0.2, 0.6]), 1500)
    assert samples.shape == (1500, 2)
    assert_unbiased(samples, np.array([3.0, 50.0]))


def test_arrays_of_agents_are_pruned_in_one_vectorised_step():
    def f(theta, d):
        flips = d(Bernoulli, theta, shape=(1000,))
        return md.mean(md.where(flips > 0.5, 2.0, -1.0))  # masked control flow

    samples = estimates(f, 0.4, 1500)
    assert_unbiased(samples, 3.0)


def test_array_output_gives_a_jacobian_shaped_estimate():
    def f(theta, d):
        return md.stack([d(Bernoulli, theta), 2.0 * d(Bernoulli, theta)])

    samples = estimates(f, 0.5, 2000)
    assert samples.shape == (2000, 2)
    assert_unbiased(samples, np.array([1.0, 2.0]))


def test_triples_mix_continuous_reparameterised_noise_with_discrete_draws():
    # z = θ + N(0,1) (pathwise tangent) times a Bernoulli(θ) (jumps): E = θ², derivative 2θ
    rng = np.random.default_rng(5)

    def f(theta, d):
        z = theta + float(rng.standard_normal())
        return z * d(Bernoulli, theta)

    samples = estimates(f, 0.4, 4000)
    assert_unbiased(samples, 0.8)


def test_events_whose_change_is_zero_do_not_compete():
    # p = 1 exactly: no Bernoulli can flip up, so no world is ever created
    def f(theta, d):
        return d(Bernoulli, md.minimum(theta * 0.0 + 1.0, 1.0)) * theta

    assert np.all(estimates(f, 0.5, 20) == 1.0)


def test_a_python_if_on_a_perturbed_value_explains_masking():
    def f(theta, d):
        if d(Bernoulli, theta) > 0.5:
            return theta
        return 2.0 * theta

    with pytest.raises(TypeError, match="where"):
        estimates(f, 0.5, 1)


def test_triples_refuse_reverse_mode():
    with pytest.raises(TypeError, match="reverse mode"):
        md.grad(lambda t: derivative_estimate(lambda s: s * 2.0, t))(0.5)


# --- the same engine driven by minidiff.random's samplers --------------------------------------


def test_random_walk_through_minidiff_random_is_unbiased_at_every_t():
    from minidiff.random import default_rng

    n_steps, theta = 10, 0.4

    def path(t, i):
        rng = default_rng(7).stream(i)
        steps = 2.0 * rng.bernoulli(t, size=(n_steps,)) - 1.0
        return md.cumsum(steps)

    samples = np.array([derivative_estimate(lambda t: path(t, i), theta, seed=i)
                        for i in range(3000)])
    assert_unbiased(samples, 2.0 * np.arange(1, n_steps + 1))   # dE[x_t]/dθ = 2t


def test_reparameterised_normal_and_bernoulli_mix_under_triples():
    from minidiff.random import default_rng

    def f(t, i):
        rng = default_rng(11).stream(i)
        return rng.normal(t, 1.0) * rng.bernoulli(t)   # E = θ·θ, derivative 2θ

    samples = np.array([derivative_estimate(lambda t: f(t, i), 0.4, seed=i)
                        for i in range(4000)])
    assert_unbiased(samples, 0.8)
