"""The catalogue of bad or tricky inputs for randomness and threads (keyed streams, discrete
samplers, threads, and the related unclear errors): each case asserts the right value, or an
error whose message names the op and what was wrong.

Statistical cases are seeded z-tests, |mean − exact| < 4 standard errors."""

from __future__ import annotations

import importlib.util
import math
import re
import time

import numpy as np
import pytest

import minidiff as md
from minidiff import random as mr
from minidiff.checkpointing import ReplayError
from minidiff.cli import main
from minidiff.models import random_walk, sir
from minidiff.stochastic import derivative_estimate


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def assert_z(samples, exact, se=None, limit=4.0):
    x = np.asarray(samples, dtype=np.float64).ravel()
    if se is None:
        se = x.std(ddof=1) / math.sqrt(x.size)
    assert abs(x.mean() - exact) < limit * se, f"mean {x.mean():.6g} vs {exact:.6g}, se {se:.3g}"


# ---------------------------------------------------------------------------------------------
# samplers at large parameters (class 3): right values, in bounded time
# ---------------------------------------------------------------------------------------------


def test_poisson_1000_is_not_its_old_loop_cap():
    # exp(-1000) underflows: the old inversion returned its loop cap, 2305, on every draw
    x = host(mr.default_rng(0).poisson(1000.0, size=5000))
    assert x.max() < 1200 and np.unique(x).size > 50
    assert_z(x, 1000.0, se=math.sqrt(1000.0 / x.size))


def test_binomial_1100_half_is_not_n():
    # (1 − p)ⁿ underflows at n = 1100, p = ½: the old inversion returned n on every draw
    x = host(mr.default_rng(1).binomial(1100, 0.5, size=5000))
    assert x.max() < 650 and x.min() > 450
    assert_z(x, 550.0, se=math.sqrt(275.0 / x.size))


@pytest.mark.parametrize("draw, mean, sd", [
    (lambda r: r.poisson(1e10, size=2000), 1e10, 1e5),
    (lambda r: r.binomial(10**9, 0.5, size=2000), 5e8, math.sqrt(2.5e8)),
], ids=["poisson(1e10)", "binomial(10**9, .5)"])
def test_huge_parameters_that_used_to_hang_return_in_milliseconds(draw, mean, sd):
    start = time.perf_counter()
    x = host(draw(mr.default_rng(2)))
    assert time.perf_counter() - start < 5.0
    assert_z(x, mean, se=sd / math.sqrt(x.size))
    assert abs(x.std() / sd - 1) < 0.1


def test_degenerate_parameters_give_their_one_value():
    rng = mr.default_rng(3)
    np.testing.assert_array_equal(host(rng.poisson(0.0, size=4)), 0.0)
    np.testing.assert_array_equal(host(rng.binomial(5, 1.0, size=4)), 5.0)
    np.testing.assert_array_equal(host(rng.binomial(5, 0.0, size=4)), 0.0)
    np.testing.assert_array_equal(host(rng.binomial(0, 0.3, size=4)), 0.0)
    np.testing.assert_array_equal(host(rng.geometric(1.0, size=4)), 0.0)


def test_geometric_with_a_tiny_p_has_mean_one_over_p_and_beyond_floats_is_inf():
    x = host(mr.default_rng(4).geometric(1e-300, size=4000))
    assert np.all(np.isfinite(x))
    assert_z(x / 1e300, 1.0)  # mean (1 − p)/p = 1e300, sd the same (scaled: x² overflows)
    # p = 5e-324 (the smallest float): X > 1.8e308 with probability exp(−8.9e-16) ≈ 1, so the
    # sample is beyond the largest float and rounds to inf, as exp(1000) does
    with pytest.warns(RuntimeWarning, match="overflow"):  # NumPy says so, as for exp(1000)
        assert np.all(np.isinf(host(mr.default_rng(4).geometric(5e-324, size=10))))


def test_derivatives_at_large_parameters_read_the_same_uniform():
    # the smoothed value is the hard sample; triples at λ = 1e6 jump up at rate 1 per draw
    def f(t):
        return md.sum(mr.default_rng(5).poisson(t, size=100))

    value, slope = md.jvp(f, (md.asarray(1e6),), (md.asarray(1.0),))
    assert float(host(value)) == float(host(md.sum(mr.default_rng(5).poisson(1e6, size=100))))
    assert abs(float(host(slope)) / 100 - 1) < 4 * math.sqrt(0.25 / 1e6) / 10 + 1e-12
    assert float(host(derivative_estimate(f, 1e6, seed=0))) == 100.0
    # binomial with a huge n and traced p: the smoothed slope is finite, mean n
    g = md.grad(lambda p: md.sum(mr.default_rng(6).binomial(1e12, p, size=500)))(
        md.asarray(0.3))
    # slope ½[(n − X)/q + X/p] per draw: mean n, sd ½√(npq)·|1/p − 1/q|
    se = 0.5 * math.sqrt(1e12 * 0.21) * (1 / 0.3 - 1 / 0.7) / math.sqrt(500)
    assert_z([float(host(g)) / 500], 1e12, se=se)


# ---------------------------------------------------------------------------------------------
# invalid parameters: errors that name the sampler and the parameter
# ---------------------------------------------------------------------------------------------

INVALID = [
    (lambda r: r.poisson(float("nan")), ValueError, "poisson: lam must be finite and ≥ 0"),
    (lambda r: r.poisson(math.inf), ValueError, "poisson: lam must be finite and ≥ 0"),
    (lambda r: r.poisson([1.0, -1e-300]), ValueError, "poisson: lam must be finite and ≥ 0"),
    (lambda r: r.binomial(math.inf, 0.5), ValueError,
     "binomial: n must be a finite non-negative integer"),
    (lambda r: r.binomial(float("nan"), 0.5), ValueError,
     "binomial: n must be a finite non-negative integer"),
    (lambda r: r.binomial(10, float("nan")), ValueError,
     "binomial: probability p must lie in [0, 1]"),
    (lambda r: r.binomial(10, -1e-12), ValueError, "binomial: probability p must lie in [0, 1]"),
    (lambda r: r.bernoulli(float("nan")), ValueError,
     "bernoulli: probability p must lie in [0, 1]"),
    (lambda r: r.geometric(float("nan")), ValueError,
     "geometric: probability p must lie in [0, 1]"),
    (lambda r: r.categorical([0.5, float("nan")]), ValueError,
     "categorical: probs must be finite and ≥ 0"),
    (lambda r: r.normal(0.0, float("nan")), ValueError, "normal: scale must be ≥ 0"),
    (lambda r: r.spawn(-1), ValueError, "spawn: n_children must be an integer ≥ 0"),
    (lambda r: r.spawn(2.5), ValueError, "spawn: n_children must be an integer ≥ 0"),
    (lambda r: r.stream(0.5), TypeError, "stream: a key must be a str, an int or a tuple"),
]


@pytest.mark.parametrize("call, kind, message", INVALID, ids=[m for _, _, m in INVALID])
def test_invalid_parameters_are_refused_naming_the_sampler(backend, call, kind, message):
    with pytest.raises(kind, match=re.escape(message)):
        call(mr.default_rng(0))


def test_sir_with_an_infinite_beta_is_refused_before_it_runs():
    with pytest.raises(ValueError, match=r"sir\.simulate: beta \(infection rate per day\) "
                                         r"must be finite and lie in \[0, inf\), got inf"):
        sir.simulate((math.inf, 0.1, 0.01), n_timesteps=3, n_agents=10, rng=0)


# ---------------------------------------------------------------------------------------------
# reused generators (class 4): fresh draws by default, the same draws on request
# ---------------------------------------------------------------------------------------------


def test_a_reused_generator_gives_fresh_draws_and_a_fresh_generator_repeats_them():
    rng = mr.default_rng(7)
    draws = [float(host(rng.normal())) for _ in range(3)]
    assert len(set(draws)) == 3
    assert [float(host(mr.default_rng(7).normal())) for _ in range(1)] == draws[:1]
    again = mr.default_rng(7)
    assert [float(host(again.normal())) for _ in range(3)] == draws


def test_monte_carlo_over_a_reused_generator_has_a_real_standard_error():
    # five runs with one Generator were five copies of one path: standard error 0
    rng = mr.default_rng(8)
    finals = [float(host(random_walk.mean_final_position(
        random_walk.simulate(0.5, n_timesteps=25, n_agents=20, rng=rng)))) for _ in range(200)]
    assert np.std(finals) > 0.5  # the sd of a mean of 20 walks of 25 steps is √(25/20) ≈ 1.1
    assert_z(finals, 0.0)


def test_triples_over_a_reused_generator_average_to_the_exact_derivative():
    # d/dθ E[x̄_T] = 2T: 400 calls with one frozen Generator averaged to z = −13
    rng = mr.default_rng(9)

    def final(t):
        return random_walk.mean_final_position(random_walk.simulate(
            t, n_timesteps=10, n_agents=5, rng=rng))

    estimates = [float(host(derivative_estimate(final, 0.5, seed=i))) for i in range(300)]
    assert len(set(estimates)) > 5
    assert_z(estimates, 20.0)


def test_children_are_independent_and_repeat_from_the_seed():
    rng = mr.default_rng(10)
    a, b = rng.child(), rng.child()
    assert not np.array_equal(host(a.random(5)), host(b.random(5)))
    first, second = mr.default_rng(10).spawn(2)
    np.testing.assert_array_equal(host(first.random(5)), host(mr.default_rng(10).child().random(
        5)))
    assert repr(second) == "default_rng(10).spawn()[1]"
    # a child is never a stream: the i-th child and stream(i) differ
    assert not np.array_equal(host(mr.default_rng(10).child().random(5)),
                              host(mr.default_rng(10).stream(0).random(5)))


# ---------------------------------------------------------------------------------------------
# draws that checkpointing would replay differently (class 4)
# ---------------------------------------------------------------------------------------------


def plain_and_checkpointed(step, n_steps=8):
    """The gradient at θ = 0.7 of Σ state² after n steps, plainly and checkpointed."""
    def run(theta, checkpointed):
        state = md.zeros((3,))
        if checkpointed:
            state = md.checkpointed_loop(lambda s, t: step(theta, s, t), state, n_steps, 2)
        else:
            for t in range(n_steps):
                state = step(theta, state, t)
        return md.sum(md.square(state))

    theta = md.asarray(0.7)
    return md.grad(lambda t: run(t, False))(theta), md.grad(lambda t: run(t, True))(theta)


def test_an_unkeyed_draw_in_a_checkpointed_step_raises_instead_of_a_wrong_gradient():
    # the recomputation in the backward pass advanced the generator: 5.994 against 5.841
    rng = mr.default_rng(11)
    with pytest.raises(ReplayError, match=r"normal: a checkpointed_loop step drew from a random "
                                          r"generator made outside the step.*rng\.stream"):
        plain_and_checkpointed(lambda th, s, t: s + th * rng.normal(size=(3,)))


def test_a_stream_made_outside_the_step_is_outside_too():
    stream = mr.default_rng(12).stream("noise")  # made once, advanced by every step
    with pytest.raises(ReplayError, match="uniform: a checkpointed_loop step"):
        plain_and_checkpointed(lambda th, s, t: s + th * stream.uniform(size=(3,)))


def test_asking_an_outer_generator_for_a_child_in_a_step_raises():
    rng = mr.default_rng(13)
    with pytest.raises(ReplayError, match="Generator.child: a checkpointed_loop step"):
        plain_and_checkpointed(lambda th, s, t: s + th * rng.child().normal(size=(3,)))
    # a model run inside a step takes a child of the generator it is given: the same error
    with pytest.raises(ReplayError, match="Generator.child"):
        plain_and_checkpointed(lambda th, s, t: s + random_walk.simulate(
            th, n_timesteps=2, n_agents=3, rng=rng)[-1])


def test_fresh_entropy_in_a_checkpointed_step_raises():
    # default_rng(None) in a step, or a model given rng=None there, would draw new numbers in
    # every recomputation
    with pytest.raises(ReplayError, match=r"default_rng: a checkpointed_loop step made a "
                                          r"generator from fresh entropy \(seed None\)"):
        plain_and_checkpointed(lambda th, s, t: s + th * mr.default_rng().normal(size=(3,)))
    with pytest.raises(ReplayError, match="fresh entropy"):
        plain_and_checkpointed(lambda th, s, t: s + random_walk.simulate(
            th, n_timesteps=2, n_agents=3, rng=None)[-1])


def test_an_unkeyed_draw_in_a_checkpointed_function_raises():
    rng = mr.default_rng(14)
    f = md.checkpoint(lambda x: md.sum(x * rng.normal(size=(3,))))
    with pytest.raises(ReplayError, match="normal: a checkpoint step"):
        md.grad(f)(md.ones((3,)))


def test_keyed_draws_inside_the_step_give_the_plain_gradient():
    rng = mr.default_rng(15)
    plain, checkpointed = plain_and_checkpointed(
        lambda th, s, t: s + th * rng.stream(("step", t)).normal(size=(3,)))
    np.testing.assert_allclose(host(checkpointed), host(plain), rtol=1e-14)
    # a seed made inside the step is made afresh by every run: allowed too
    plain, checkpointed = plain_and_checkpointed(
        lambda th, s, t: s + th * mr.default_rng(t).normal(size=(3,)))
    np.testing.assert_allclose(host(checkpointed), host(plain), rtol=1e-14)


def test_without_reverse_mode_a_checkpointed_loop_may_draw_from_anything():
    # no recomputation happens: plain arrays and forward mode run the ordinary loop
    rng = mr.default_rng(16)
    out = md.checkpointed_loop(lambda s, t: s + rng.normal(), md.zeros(()), 4)
    assert np.isfinite(float(host(out)))
    jac = md.jacfwd(lambda th: md.checkpointed_loop(lambda s, t: s + th * rng.normal(),
                                                    md.zeros(()), 4))(md.asarray(1.0))
    assert np.isfinite(float(host(jac)))


# ---------------------------------------------------------------------------------------------
# the command line (class 7): one-line usage errors, not tracebacks
# ---------------------------------------------------------------------------------------------


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_minidiff_memory_with_a_negative_seed_is_a_usage_error(capsys):
    assert usage_error(["memory", "--seed", "-1"], capsys) == (
        "minidiff memory: error: argument --seed: expected an integer seed ≥ 0, got -1")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                    reason="CuPy is installed (the backend may well start)")
def test_minidiff_memory_on_cupy_without_cupy_is_a_usage_error(capsys):
    line = usage_error(["memory", "--backend", "cupy", "--steps", "2", "--agents", "3"], capsys)
    assert line.startswith("minidiff memory: error: argument --backend: the 'cupy' backend "
                           "needs CuPy and a CUDA GPU")
    assert "pip install minidiff[gpu]" in line


def test_smoothed_binomial_keeps_the_derivative_in_a_traced_count():
    """Binomial(Poisson(λ), p): d E[X]/dλ = p. A traced n used to lose its derivative silently
    (0 instead of p). Each draw's smoothed derivative is p·(dn/dλ), and the Poisson's smoothed
    slopes average 1, so the mean over 20,000 draws is p ± a few 1e-3 (sd of the slopes ≈ 0.3)."""
    def f(lam):
        rng = mr.default_rng(0)
        n = rng.poisson(lam, size=20000)
        return md.mean(rng.binomial(n, 0.5, size=20000))

    assert abs(float(md.grad(f)(4.0)) - 0.5) < 0.01
    assert float(md.grad(lambda n: md.mean(mr.default_rng(1).binomial(n, 0.3, size=10)))(10.0)) \
        == pytest.approx(0.3)


def test_score_binomial_refuses_a_traced_count():
    with pytest.raises(ValueError, match="binomial.*number of trials n is traced"):
        md.grad(lambda n: md.sum(
            mr.default_rng(0).binomial(n, 0.3, size=5, estimator="score")))(10.0)
