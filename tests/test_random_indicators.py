"""``Generator.indicators``: Bernoulli(p) trials drawn as geometric gaps between successes.

Statistical checks are seeded z-tests with a bound of 4.5 (a false alarm about once in 150 000
runs of one check), on the mean and on the lag-1 product of the flattened trials (independent
trials have E[x_m x_{m+1}] = p²), and on the mean gap between successes, (1 − p)/p for a
Geometric(p) number of failures."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidiff as md
from minidiff.random import default_rng
from minidiff.random import indicators as indicators_module

Z_BOUND = 4.5


def host(x):
    return np.asarray(md.get_backend().to_host(x))


def z_of(mean, expected, variance, n):
    return (mean - expected) / math.sqrt(variance / n)


@pytest.mark.parametrize(("p", "shape"), [(0.05, (64, 1000)), (0.3, (40, 50)),
                                          (0.001, (2000, 500)), (0.9, (3000,)),
                                          (0.5, (7, 3, 5))])
def test_trials_are_independent_bernoulli(p, shape):
    x = np.stack([host(default_rng(seed).indicators(p, shape)) for seed in range(30)])
    assert x.dtype == np.bool_ and x.shape == (30, *shape)
    flat = x.reshape(30, -1).astype(float)
    assert abs(z_of(flat.mean(), p, p * (1 - p), flat.size)) < Z_BOUND
    pairs = flat[:, 1:] * flat[:, :-1]  # neighbours overlap: the variance is bounded, not exact
    assert abs(z_of(pairs.mean(), p * p, 3 * p * p * (1 - p * p), pairs.size)) < Z_BOUND
    positions = [np.flatnonzero(row) for row in flat]
    gaps = np.concatenate([np.diff(pos) - 1 for pos in positions if len(pos) > 1])
    if len(gaps) > 30:
        assert abs(z_of(gaps.mean(), (1 - p) / p, (1 - p) / p**2, len(gaps))) < Z_BOUND


def test_the_same_stream_gives_the_same_trials_and_other_streams_others():
    a = host(default_rng(4).stream("x").indicators(0.1, (100, 100)))
    np.testing.assert_array_equal(a, host(default_rng(4).stream("x").indicators(0.1, (100, 100))))
    assert not np.array_equal(a, host(default_rng(4).stream("y").indicators(0.1, (100, 100))))


def test_more_rounds_of_gaps_give_the_same_law(monkeypatch):
    """Rounds of one gap each (instead of about p·M plus six sds) exercise the loop that a
    long run of failures would need: same law, drawn from the same stream."""
    monkeypatch.setattr(indicators_module, "round_size", lambda m, p: 1)
    p, shape = 0.2, (50, 40)
    x = np.stack([host(default_rng(seed).indicators(p, shape)) for seed in range(20)])
    assert abs(z_of(x.mean(), p, p * (1 - p), x.size)) < Z_BOUND
    np.testing.assert_array_equal(x[3], host(default_rng(3).indicators(p, shape)))


def test_edge_probabilities_and_sizes():
    g = default_rng(0)
    assert not host(g.indicators(0.0, (5, 4))).any()
    assert host(g.indicators(1.0, (5, 4))).all()
    assert host(g.indicators(0.5, 0)).shape == (0,)
    assert host(g.indicators(0.5)).shape == ()
    assert host(g.indicators(1e-290, 1000)).sum() == 0  # huge gaps, exact as floats
    assert host(g.indicators(5e-324, 1000)).sum() == 0  # below 1e-300: none, as 1[U < p]


def test_numpy_and_array_api_strict_draw_the_same_trials():
    with md.use_backend("numpy"):
        a = host(default_rng(8).indicators(0.07, (30, 200)))
    with md.use_backend("array_api_strict"):
        b = host(default_rng(8).indicators(0.07, (30, 200)))
    np.testing.assert_array_equal(a, b)


def test_under_vmap_each_element_draws_what_the_loop_draws():
    batched = md.vmap(lambda g: g.indicators(0.1, (20, 30)))(default_rng(1).spawn(4))
    loop = [host(g.indicators(0.1, (20, 30))) for g in default_rng(1).spawn(4)]
    np.testing.assert_array_equal(host(batched), np.stack(loop))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5", None])
def test_a_probability_outside_zero_one_is_refused(p):
    with pytest.raises((ValueError, TypeError), match="indicators"):
        default_rng(0).indicators(p, 3)


def test_a_traced_probability_is_refused_with_the_sampler_to_use():
    with pytest.raises(TypeError, match="bernoulli"):
        md.grad(lambda p: md.sum(default_rng(0).indicators(p, 3)))(0.3)
