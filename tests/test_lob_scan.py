"""lob.simulate's time loop as md.scan (under grad and jacfwd) against its Python loop (each
step drawing from its keyed streams): the same values bit for bit and the same derivatives to
1e-12 (scan_reference.RTOL: the reverse scan sums θ's cotangent over the steps in its own
order), with the window moving; and vmap still refused."""

from __future__ import annotations

import numpy as np
import pytest
from scan_reference import close, host, same_bits

import minidiff as md
from minidiff.batching import BatchingError
from minidiff.models import lob
from minidiff.random import binomial_from_uniform, default_rng, poisson_from_uniform

THETA = np.array([1.0, 0.5, 0.2, 1.0])
T, B = 20, 4


def _series(loop, estimator="smoothed", size=1):
    simulate = lob._python_loop if loop else lob.simulate
    return lambda th: simulate(th, n_timesteps=T, n_agents=B, rng=3, estimator=estimator,
                               n_levels=6, market_order_size=size)


def _loss(loop, estimator="smoothed", size=1):
    return lambda th: md.sum(md.square(_series(loop, estimator, size)(th)))


def test_scan_equals_loop_values_and_derivatives():
    values = {loop: md.jvp(_series(loop), (THETA,), (np.ones(4),)) for loop in (True, False)}
    same_bits(values[True][0], values[False][0])
    close(values[False][1], values[True][1])
    returns = host(values[True][0])[:, :, 0]
    assert np.any(returns != 0)  # the mid moved, so the window was recentred
    for transform in (md.grad, md.jacfwd):
        expected = host(transform(_loss(True))(THETA))
        assert np.all(np.isfinite(expected)) and np.any(expected != 0)
        close(transform(_loss(False))(THETA), expected)


@pytest.mark.parametrize("estimator,size", [("straight_through", 1), ("smoothed", 2)])
def test_scan_equals_loop_for_other_settings(estimator, size):
    close(md.grad(_loss(False, estimator, size))(THETA),
          md.grad(_loss(True, estimator, size))(THETA))


def test_vmap_is_still_refused():
    with pytest.raises(BatchingError, match="window"):
        md.vmap(_loss(False))(np.stack([THETA, THETA]))


def test_poisson_and_binomial_from_uniform_are_the_samplers_draws():
    lam, n, p = np.array([0.5, 2.0, 7.0]), np.array([0.0, 3.0, 10.0]), np.array([0.2, 0.5, 0.9])
    u = default_rng(5).stream("x").open_uniform((3,))

    def poisson(q):
        return default_rng(5).stream("x").poisson(q)

    def binomial(q):
        return default_rng(5).stream("x").binomial(n, q)

    same_bits(poisson_from_uniform(u, lam), poisson(lam))
    close(md.jacfwd(lambda q: poisson_from_uniform(u, q))(lam), md.jacfwd(poisson)(lam))
    same_bits(binomial_from_uniform(u, n, p), binomial(p))
    close(md.jacfwd(lambda q: binomial_from_uniform(u, n, q))(p), md.jacfwd(binomial)(p))
    with pytest.raises(ValueError, match="integer"):
        binomial_from_uniform(u, np.array([0.5, 1.0, 2.0]), p)
    with pytest.raises(ValueError, match="score"):
        poisson_from_uniform(u, lam, estimator="score")
