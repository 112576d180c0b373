"""minidiff.random: fresh draws, children and keyed streams, sampler moments, pathwise and
discrete-sample derivatives (large parameters: test_samplers_large.py).

Statistical checks are z-tests with fixed seeds: |mean − exact| < 4 standard errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import minidiff as md
from minidiff import random as mr
from minidiff.core import Box, Engine, close_level, open_level

N = 20_000
EULER_GAMMA = 0.5772156649015329


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def assert_z(samples, exact, limit=4.0):
    """The mean of ``samples`` is within ``limit`` standard errors of ``exact``."""
    g = host(samples).ravel()
    se = g.std(ddof=1) / math.sqrt(g.size)
    z = (g.mean() - exact) / se if se > 0 else (0.0 if np.isclose(g.mean(), exact) else np.inf)
    assert abs(z) < limit, f"mean {g.mean():.6g} vs exact {exact:.6g}: z = {z:.2f} (se {se:.3g})"
    return g.mean(), se


def full(value, n=N):
    return md.asarray(np.full(n, value))


# ---------------------------------------------------------------------------------------------
# keyed streams
# ---------------------------------------------------------------------------------------------


def test_keyed_stream_draws_depend_only_on_seed_and_key(backend):
    fresh = mr.default_rng(7).stream("shocks").normal(size=5)
    busy = mr.default_rng(7)
    busy.normal(size=123)
    busy.poisson(3.0, size=17)
    busy.stream("other").uniform(size=4)
    again = busy.stream("shocks").normal(size=5)
    np.testing.assert_array_equal(host(fresh), host(again))
    # the same for tuple keys, nested streams, and integer keys of any integer type
    a = mr.default_rng(7).stream(("agent", 3)).stream(4).bernoulli(0.5, size=50)
    b = mr.default_rng(7).stream(("agent", np.int64(3))).stream(np.int32(4)).bernoulli(0.5,
                                                                                       size=50)
    np.testing.assert_array_equal(host(a), host(b))


def test_streams_differ_across_keys_and_seeds(backend):
    draws = {
        "a": mr.default_rng(0).stream("a").random(8),
        "b": mr.default_rng(0).stream("b").random(8),
        "a seed 1": mr.default_rng(1).stream("a").random(8),
        "(a,)": mr.default_rng(0).stream(("a",)).random(8),
        "a.a": mr.default_rng(0).stream("a").stream("a").random(8),
        "1": mr.default_rng(0).stream(1).random(8),
        "'1'": mr.default_rng(0).stream("1").random(8),
        "root": mr.default_rng(0).random(8),
    }
    values = {k: tuple(host(v)) for k, v in draws.items()}
    assert len(set(values.values())) == len(values)


def test_making_a_stream_leaves_the_parent_and_numpy_seeding_unchanged(backend):
    plain = mr.default_rng(5).random(6)
    rng = mr.default_rng(5)
    rng.stream("x").random(100)
    np.testing.assert_array_equal(host(rng.random(6)), host(plain))
    # the root generator is the backend's own generator for that seed
    np.testing.assert_array_equal(host(plain), np.random.default_rng(5).random(6))
    # a fresh seed is recorded, so the run can be repeated
    unseeded = mr.default_rng()
    np.testing.assert_array_equal(host(unseeded.stream(1).random(3)),
                                  host(mr.default_rng(unseeded.seed).stream(1).random(3)))
    assert mr.default_rng(rng) is rng


def test_draws_advance_the_generator_as_numpy_does(backend):
    rng = mr.default_rng(4)
    first, second = host(rng.normal(size=3)), host(rng.normal(size=3))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, np.random.default_rng(4).normal(size=3))
    again = mr.default_rng(4)
    np.testing.assert_array_equal(host(again.normal(size=3)), first)
    np.testing.assert_array_equal(host(again.normal(size=3)), second)


def test_children_are_handed_out_in_order_and_advance_only_the_child_counter(backend):
    rng = mr.default_rng(6)
    plain = host(mr.default_rng(6).random(4))
    kids = [rng.child() for _ in range(3)]
    np.testing.assert_array_equal(host(rng.random(4)), plain)  # draws are untouched
    spawned = mr.default_rng(6).spawn(3)
    assert [repr(k) for k in kids] == [repr(k) for k in spawned] == [
        f"default_rng(6).spawn()[{i}]" for i in range(3)]
    values = [tuple(host(k.random(4))) for k in kids]
    assert values == [tuple(host(k.random(4))) for k in spawned]
    assert len(set(values)) == 3
    # children of streams and streams of children are paths like any other
    assert repr(rng.stream("a").child().stream(2)) == "default_rng(6).stream('a').spawn()[0]" \
        ".stream(2)"
    assert mr.default_rng(6).spawn(0) == []


def test_children_share_the_score_ledger(backend):
    rng = mr.default_rng(7)
    child = rng.child()
    child.bernoulli(0.25, size=3, estimator="score")
    assert float(host(rng.log_prob)) == float(host(child.log_prob)) != 0.0
    rng.reset_log_prob()
    assert float(host(child.log_prob)) == 0.0


# ---------------------------------------------------------------------------------------------
# moments and shapes
# ---------------------------------------------------------------------------------------------

# name, draw(rng, size), mean, variance
MOMENTS = [
    ("normal", lambda r, s: r.normal(1.0, 2.0, size=s), 1.0, 4.0),
    ("lognormal", lambda r, s: r.lognormal(0.2, 0.5, size=s), math.exp(0.325),
     (math.exp(0.25) - 1) * math.exp(0.65)),
    ("uniform", lambda r, s: r.uniform(-1.0, 3.0, size=s), 1.0, 16 / 12),
    ("exponential", lambda r, s: r.exponential(2.0, size=s), 2.0, 4.0),
    ("gumbel", lambda r, s: r.gumbel(1.0, 2.0, size=s), 1.0 + 2 * EULER_GAMMA,
     math.pi ** 2 / 6 * 4),
    ("logistic", lambda r, s: r.logistic(1.0, 2.0, size=s), 1.0, math.pi ** 2 / 3 * 4),
    ("bernoulli", lambda r, s: r.bernoulli(0.3, size=s), 0.3, 0.21),
    ("binomial", lambda r, s: r.binomial(7, 0.3, size=s), 2.1, 7 * 0.21),
    ("poisson", lambda r, s: r.poisson(3.5, size=s), 3.5, 3.5),
    ("geometric", lambda r, s: r.geometric(0.3, size=s), 0.7 / 0.3, 0.7 / 0.09),
    ("categorical", lambda r, s: r.categorical([0.2, 0.3, 0.5], size=s), 1.3,
     0.3 + 4 * 0.5 - 1.3 ** 2),
]


@pytest.mark.parametrize("name, draw, mean, var", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_sample_mean_and_variance_match_the_distribution(backend, name, draw, mean, var):
    x = host(draw(mr.default_rng(11).stream(name), N))
    assert x.shape == (N,)
    assert np.all(np.isfinite(x))
    assert_z(x, mean)
    assert_z((x - mean) ** 2, var)


def test_categorical_one_hot_mean_is_probs(backend):
    probs = [[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]
    x = host(mr.default_rng(3).categorical(probs, size=(N, 2), one_hot=True))
    assert x.shape == (N, 2, 3)
    np.testing.assert_array_equal(x.sum(axis=-1), 1.0)
    for b in range(2):
        for c in range(3):
            assert_z(x[:, b, c], probs[b][c])


def test_output_shape_broadcasts_parameters_and_size_like_numpy(backend, to_array):
    rng = mr.default_rng(0)
    loc = to_array(np.zeros((3, 1)))
    scale = to_array(np.ones(4))
    assert rng.normal(loc, scale).shape == (3, 4)
    assert rng.normal(loc, scale, size=(2, 3, 4)).shape == (2, 3, 4)
    assert rng.binomial(to_array([3.0, 4.0]), 0.5, size=(5, 2)).shape == (5, 2)
    assert rng.poisson(2.0).shape == ()
    assert rng.categorical(to_array(np.full((4, 3), 1 / 3)), size=(2, 4)).shape == (2, 4)
    assert rng.categorical([0.5, 0.5], size=3, one_hot=True).shape == (3, 2)
    with pytest.raises(ValueError, match=r"normal: parameters of shape \(3, 4\) do not "
                                         r"broadcast to size \(4,\)"):
        rng.normal(loc, scale, size=4)


# ---------------------------------------------------------------------------------------------
# reparameterised (pathwise) derivatives
# ---------------------------------------------------------------------------------------------


def test_pathwise_derivative_of_a_parameter_outside_the_sampler(backend):
    # E over z ~ N(1, 2²) of θ²(z + 4) = 5θ², derivative 10θ
    z = mr.default_rng(1).normal(1.0, 2.0, size=N)
    per_sample = md.grad(lambda t: md.sum(t * t * (z + 4.0)))(full(1.5))
    assert_z(per_sample, 15.0)


def test_pathwise_derivative_through_the_location_in_both_modes(backend):
    # z ~ N(θ, 2²), f = z³ + 4z² − 12z: E f = θ³ + 12θ + 4(θ² + 4) − 12θ, so d/dθ E f = 3θ² + 8θ
    def f(t):
        z = mr.default_rng(2).stream("z").normal(t, 2.0, size=N)
        return z ** 3 + 4.0 * z ** 2 - 12.0 * z

    theta = 2.0
    reverse = md.grad(lambda t: md.sum(f(t)))(full(theta))
    forward = md.jacfwd(f)(md.asarray(theta))  # one direction, N outputs
    np.testing.assert_allclose(host(forward), host(reverse), rtol=1e-12, atol=1e-10)
    assert_z(reverse, 3 * theta ** 2 + 8 * theta)  # 28


# name, a sampler with its parameter s traced (at s = 1.5), exact d/ds E[sample]
PATHWISE = [
    ("normal scale", lambda r, s: r.normal(1.0, s, size=N) ** 2, 2 * 1.5),
    ("lognormal sigma", lambda r, s: r.lognormal(0.1, s, size=N),
     1.5 * math.exp(0.1 + 1.5 ** 2 / 2)),
    ("uniform high", lambda r, s: r.uniform(-1.0, s, size=N), 0.5),
    ("exponential scale", lambda r, s: r.exponential(s, size=N), 1.0),
    ("gumbel scale", lambda r, s: r.gumbel(0.5, s, size=N), EULER_GAMMA),
    ("logistic scale", lambda r, s: r.logistic(0.0, s, size=N) ** 2, 2 * 1.5 * math.pi ** 2 / 3),
]


@pytest.mark.parametrize("name, draw, exact", PATHWISE, ids=[p[0] for p in PATHWISE])
def test_pathwise_derivative_of_each_reparameterised_sampler_is_unbiased(backend, name, draw,
                                                                        exact):
    rng = mr.default_rng(4).stream(name)
    g = md.jacfwd(lambda s: draw(rng, s))(md.asarray(1.5))
    assert_z(g, exact)


# ---------------------------------------------------------------------------------------------
# discrete samplers: smoothed, straight-through, Gumbel-softmax, score
# ---------------------------------------------------------------------------------------------

# name, sampler with the continuous parameter θ, θ, exact dE[X]/dθ
DISCRETE = [
    ("bernoulli", lambda r, t, **k: r.bernoulli(t, **k), 0.3, 1.0),
    ("binomial", lambda r, t, **k: r.binomial(5, t, **k), 0.3, 5.0),
    ("poisson", lambda r, t, **k: r.poisson(t, **k), 2.5, 1.0),
    ("geometric", lambda r, t, **k: r.geometric(t, **k), 0.3, -1 / 0.09),
]


@pytest.mark.parametrize("name, draw, theta, exact", DISCRETE, ids=[d[0] for d in DISCRETE])
def test_smoothed_estimator_is_unbiased_for_linear_f_in_both_modes(backend, name, draw, theta,
                                                                   exact):
    def sample(t):
        return draw(mr.default_rng(8).stream(name), t, size=N, estimator="smoothed")

    plain = host(draw(mr.default_rng(8).stream(name), theta, size=N, estimator="none"))
    forward = md.jacfwd(sample)(md.asarray(theta))
    value, tangent = md.jvp(sample, (md.asarray(theta),), (md.asarray(1.0),))
    reverse = md.grad(lambda t: md.sum(sample(t)))(full(theta))
    np.testing.assert_array_equal(host(value), plain)  # the value is the hard sample exactly
    np.testing.assert_allclose(host(forward), host(reverse), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(host(tangent), host(reverse), rtol=1e-12, atol=1e-10)
    assert_z(reverse, exact)


def test_straight_through_is_exact_for_linear_f_and_biased_for_nonlinear_f(backend):
    def sample(t, f):
        return f(mr.default_rng(9).binomial(5, t, size=N, estimator="straight_through"))

    theta = full(0.3)
    linear = host(md.grad(lambda t: md.sum(sample(t, lambda x: 2.0 * x)))(theta))
    np.testing.assert_allclose(linear, 10.0, rtol=1e-14)  # derivative of E[2X] = 2n·p
    # f = X²: d/dp E[X²] = n(1 − 2p) + 2n²p = 17, straight-through gives E[2X·n] = 2n²p = 15
    g = md.grad(lambda t: md.sum(sample(t, lambda x: x * x)))(theta)
    mean, se = assert_z(g, 15.0)
    assert abs(mean - 17.0) > 10 * se
    fwd = md.jacfwd(lambda t: sample(t, lambda x: x * x))(md.asarray(0.3))
    np.testing.assert_allclose(host(fwd), host(g), rtol=1e-12, atol=1e-10)


def test_categorical_straight_through_borrows_the_derivative_of_probs(backend, to_array):
    probs = to_array([0.2, 0.3, 0.5])
    weights = to_array([1.0, -2.0, 4.0])
    rng = mr.default_rng(10)
    g = md.grad(lambda p: md.sum(rng.categorical(p, size=50, one_hot=True) * weights))(probs)
    np.testing.assert_allclose(host(g), 50 * host(weights), rtol=1e-14)


def gumbel_softmax_gradients(tau, hard, theta=0.1):
    """Per-sample derivatives of 2·Bern(3θ) + Bern(θ) (exact: 7) under Gumbel-softmax."""
    rng = mr.default_rng(12)

    def f(t):
        a = rng.stream("a").bernoulli(3.0 * t, estimator="gumbel_softmax", tau=tau, hard=hard)
        b = rng.stream("b").bernoulli(t, estimator="gumbel_softmax", tau=tau, hard=hard)
        return 2.0 * a + b

    return f, md.grad(lambda t: md.sum(f(t)))(full(theta))


def test_gumbel_softmax_is_biased_and_the_bias_shrinks_with_temperature(backend):
    means = {}
    for tau in (1.0, 0.5):
        f, g = gumbel_softmax_gradients(tau, hard=True)
        values = host(f(full(0.1)))
        assert set(np.unique(values)) <= {0.0, 1.0, 2.0, 3.0}  # hard values forward
        g = host(g)
        means[tau] = (g.mean(), g.std(ddof=1) / math.sqrt(g.size))
    (m1, se1), (m05, se05) = means[1.0], means[0.5]
    assert (7.0 - m1) / se1 > 10  # about 5.6 at τ = 1
    assert (7.0 - m05) / se05 > 4  # about 6.5 at τ = 0.5
    assert (m05 - m1) / math.hypot(se1, se05) > 10


def test_gumbel_softmax_soft_values_are_relaxed_and_hard_values_are_the_inversion_sample(
        backend, to_array):
    f, _ = gumbel_softmax_gradients(0.5, hard=False)
    soft = host(f(full(0.1, 1000)))
    assert np.all((soft > 0) & (soft < 3)) and not np.all(np.isin(soft, [0, 1, 2, 3]))
    probs = to_array([0.2, 0.3, 0.5])

    def draw(**kw):
        return host(mr.default_rng(13).categorical(probs, size=2000, **kw))

    index = draw(estimator="none")
    hard = draw(estimator="gumbel_softmax", one_hot=True)
    relaxed = draw(estimator="gumbel_softmax", one_hot=True, hard=False, tau=0.3)
    np.testing.assert_array_equal(np.argmax(hard, axis=-1), index)
    np.testing.assert_array_equal(np.argmax(relaxed, axis=-1), index)
    np.testing.assert_allclose(relaxed.sum(axis=-1), 1.0, rtol=1e-12, atol=1e-10)


def plain_gumbel_softmax(logits, tau, n, seed):
    """Relaxed samples softmax((logits + g)/τ) with independent Gumbel noise, in NumPy."""
    z = (logits + np.random.default_rng(seed).gumbel(size=(n, logits.size))) / tau
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_gumbel_noise_given_the_sample_gives_the_usual_relaxation(backend, to_array):
    # the first two moments of y under our construction (noise drawn given the inversion
    # sample) against the plain Gumbel-softmax with independent noise
    p, tau = np.array([0.2, 0.3, 0.5]), 0.7
    ours = host(mr.default_rng(14).categorical(to_array(p), size=N, estimator="gumbel_softmax",
                                               one_hot=True, hard=False, tau=tau))
    plain = plain_gumbel_softmax(np.log(p), tau, N, 15)
    # Bernoulli: the class-1 component of the two classes (log p, log(1 − p))
    ours_b = host(mr.default_rng(14).bernoulli(0.3, size=N, estimator="gumbel_softmax",
                                               hard=False, tau=tau))
    plain_b = plain_gumbel_softmax(np.log([0.3, 0.7]), tau, N, 16)[:, 0]
    pairs = [(ours[:, c], plain[:, c]) for c in range(3)] + [(ours_b, plain_b)]
    for a, b in pairs:
        for k in (1, 2):
            diff = np.mean(a ** k) - np.mean(b ** k)
            se = math.hypot(np.std(a ** k), np.std(b ** k)) / math.sqrt(N)
            assert abs(diff) < 4 * se


class _Extremes:
    """A fake backend generator whose uniforms are exactly 0.0 and 1.0."""

    def __init__(self, backend):
        self.backend = backend

    def random(self, size=None):
        x = np.zeros(size)
        x.reshape(-1)[::2] = 1.0
        return self.backend.from_host(x)


def test_gumbel_noise_is_finite_even_for_uniforms_at_0_and_1(backend, to_array):
    rng = mr.default_rng(0)
    rng._rng = _Extremes(backend)
    for x in (rng.gumbel(size=6), rng.logistic(size=6), rng.exponential(size=6)):
        assert np.all(np.isfinite(host(x)))

    def relaxed(t):
        a = rng.bernoulli(t, size=6, estimator="gumbel_softmax", hard=False, tau=0.1)
        c = rng.categorical(md.stack([t, 1.0 - t]), size=6, estimator="gumbel_softmax",
                            one_hot=True, hard=False)
        return md.sum(a) + md.sum(c[:, 0])

    for theta in (0.0, 0.3, 1.0):
        value, g = md.value_and_grad(relaxed)(md.asarray(theta))
        assert math.isfinite(float(host(value))) and math.isfinite(float(host(g)))


def test_score_estimator_surrogate_is_unbiased_for_bernoulli(backend):
    # x ~ Bern(θ), f = (x + θ)²: E f = θ + 3θ², derivative 1 + 6θ = 2.8 at θ = 0.3
    root = mr.default_rng(16)

    def surrogate(t, i):
        rng = root.stream(i)
        rng.reset_log_prob()
        x = rng.bernoulli(t, size=20, estimator="score")
        f = md.mean((t + x) ** 2)  # (a raw strict array cannot be the left operand)
        s = rng.score_surrogate(f, baseline=1.0)
        np.testing.assert_allclose(host(s), host(f), rtol=1e-15)  # value f
        return s

    theta = md.asarray(0.3)
    g = np.array([float(host(md.grad(surrogate)(theta, i))) for i in range(400)])
    assert_z(g, 2.8)
    fwd = [float(host(md.jacfwd(surrogate)(theta, i))) for i in range(5)]
    np.testing.assert_allclose(fwd, g[:5], rtol=1e-12, atol=1e-10)


def test_score_ledger_is_shared_by_streams_and_reset(backend):
    rng = mr.default_rng(17)
    assert float(host(rng.log_prob)) == 0.0
    x = rng.stream("a").bernoulli(0.25, size=4, estimator="score")
    y = rng.stream("b").poisson(2.0, size=3, estimator="score")
    xs, ys = host(x), host(y)
    expected = np.sum(np.where(xs > 0, np.log(0.25), np.log(0.75))) + np.sum(
        ys * np.log(2.0) - 2.0 - np.array([math.lgamma(v + 1) for v in ys]))
    np.testing.assert_allclose(float(host(rng.log_prob)), expected, rtol=1e-12, atol=1e-10)
    rng.reset_log_prob()
    assert float(host(rng.stream("a").log_prob)) == 0.0


def test_an_engine_that_samples_receives_the_raw_uniforms_before_any_estimator():
    calls = []

    class SamplingEngine(Engine):  # what stochastic triples provide: a sampler of the level's own
        def sample_discrete(self, dist, u, params):
            calls.append((dist.name, tuple(u.shape), len(params)))
            return "triple"

    class Boxed(Box):
        __slots__ = ()

        def __init__(self, value, level):
            self.value, self.level = value, level

    level = open_level(SamplingEngine())
    try:
        rng = mr.default_rng(0)
        assert rng.bernoulli(Boxed(0.3, level), size=(2, 3),
                             estimator="straight_through") == "triple"
        assert rng.binomial(4, Boxed(0.3, level), size=5) == "triple"
        assert rng.poisson(Boxed(np.array([1.0, 2.0]), level), estimator="score") == "triple"
        assert rng.geometric(Boxed(0.5, level)) == "triple"
        assert rng.categorical(Boxed(np.full((4, 3), 1 / 3), level), size=(2, 4)) == "triple"
    finally:
        close_level(level)
    assert calls == [("bernoulli", (2, 3), 1), ("binomial", (5,), 2), ("poisson", (2,), 1),
                     ("geometric", (), 1), ("categorical", (2, 4), 1)]
    assert float(host(rng.log_prob)) == 0.0  # the estimator never ran


def test_stochastic_triples_run_through_the_samplers():
    from minidiff.stochastic import derivative_estimate

    rng = mr.default_rng(18)
    d = derivative_estimate(lambda p: md.sum(rng.binomial(5, p, size=N)), 0.3, seed=1)
    assert abs(float(host(d)) / N - 5.0) < 0.2


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

ERRORS = [
    (lambda r: r.normal(0.0, -1.0), ValueError, "normal: scale must be ≥ 0"),
    (lambda r: r.lognormal(0.0, -0.1), ValueError, "lognormal: sigma must be ≥ 0"),
    (lambda r: r.exponential(-2.0), ValueError, "exponential: scale must be ≥ 0"),
    (lambda r: r.gumbel(0.0, [1.0, -1.0]), ValueError, "gumbel: scale must be ≥ 0"),
    (lambda r: r.logistic(0.0, float("nan")), ValueError, "logistic: scale must be ≥ 0"),
    (lambda r: r.bernoulli(1.2), ValueError, "bernoulli: probability p must lie in [0, 1]"),
    (lambda r: r.bernoulli([0.5, -0.1]), ValueError, "bernoulli: probability p"),
    (lambda r: r.binomial(3, 1.5), ValueError, "binomial: probability p"),
    (lambda r: r.binomial(-1, 0.5), ValueError,
     "binomial: n must be a finite non-negative integer"),
    (lambda r: r.binomial(2.5, 0.5), ValueError,
     "binomial: n must be a finite non-negative integer"),
    (lambda r: r.poisson(-1.0), ValueError, "poisson: lam must be finite and ≥ 0"),
    (lambda r: r.geometric(0.0), ValueError, "geometric: probability p must lie in (0, 1]"),
    (lambda r: r.geometric(2.0), ValueError, "geometric: probability p"),
    (lambda r: r.bernoulli(0.5, estimator="reinforce"), ValueError,
     "bernoulli: unknown estimator 'reinforce'; choose one of 'smoothed', 'straight_through', "
     "'gumbel_softmax', 'score', 'none'"),
    (lambda r: r.poisson(1.0, estimator="gumbel_softmax"), ValueError,
     "poisson: estimator 'gumbel_softmax' exists only for bernoulli and categorical"),
    (lambda r: r.bernoulli(0.5, estimator="gumbel_softmax", tau=0.0), ValueError,
     "bernoulli: temperature tau must be a finite number > 0"),
    (lambda r: r.categorical([0.5, 0.5], one_hot=True, tau=-1.0), ValueError,
     "categorical: temperature tau"),
    (lambda r: r.categorical([0.5, 0.6]), ValueError, "categorical: probs must sum to 1"),
    (lambda r: r.categorical([0.5, 0.5 + 1e-8]), ValueError, "categorical: probs must sum"),
    (lambda r: r.categorical([1.5, -0.5]), ValueError, "categorical: probs must be finite and ≥ 0"),
    (lambda r: r.categorical(0.5), ValueError, "categorical: probs needs a last axis"),
    (lambda r: r.categorical([0.5, 0.5], estimator="smoothed"), ValueError,
     "categorical: estimator 'smoothed' needs one continuous parameter"),
    (lambda r: r.categorical([0.5, 0.5], estimator="straight_through"), ValueError,
     "categorical: estimator 'straight_through' needs one_hot=True"),
    (lambda r: r.categorical([0.5, 0.5], estimator="banana"), ValueError,
     "categorical: unknown estimator 'banana'"),
    (lambda r: r.normal(size=-1), ValueError, "normal: size must not be negative"),
    (lambda r: r.normal(size=2.5), TypeError, "normal: size must be an int"),
    (lambda r: r.stream(1.5), TypeError, "stream: a key must be a str, an int or a tuple"),
    (lambda r: mr.default_rng(-3), ValueError, "default_rng: seed must be non-negative"),
    (lambda r: mr.default_rng(1.5), TypeError, "default_rng: seed must be a non-negative"),
]


@pytest.mark.parametrize("call, kind, message", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_bad_input_gets_a_clear_error_naming_the_sampler(backend, call, kind, message):
    with pytest.raises(kind, match=re.escape(message)):
        call(mr.default_rng(0))


def test_categorical_index_with_traced_probs_needs_an_explicit_estimator(backend, to_array):
    rng = mr.default_rng(0)
    probs = to_array([0.2, 0.8])
    with pytest.raises(ValueError, match="categorical: an index sample has no derivative"):
        md.grad(lambda p: md.sum(rng.categorical(p, size=3)))(probs)
    g = md.grad(lambda p: md.sum(rng.categorical(p, size=3, estimator="none")))(probs)
    np.testing.assert_array_equal(host(g), 0.0)
