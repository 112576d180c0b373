"""sir.simulate's time loop as md.scan against its Python loop (each step drawing from its keyed
streams): the same values bit for bit, the same derivatives to 1e-12 (scan_reference.RTOL: the
reverse scan sums θ's cotangent over the steps in its own order), in every mode calibration
uses; and bernoulli_from_uniform, which lets a scan body draw from uniforms in xs."""

from __future__ import annotations

import numpy as np
import pytest
from scan_reference import close, host, same_bits

import minidiff as md
from minidiff.models import sir
from minidiff.random import bernoulli_from_uniform, default_rng, poisson_from_uniform
from minidiff.stochastic import derivative_estimate

T, N = 20, 200
THETA = {None: np.array([0.6, 0.15, 0.05]), "erdos_renyi": np.array([0.08, 0.15, 0.05])}


def _series(network, loop, estimator="smoothed"):
    simulate = sir._python_loop if loop else sir.simulate
    return lambda theta, rng=4: simulate(theta, n_timesteps=T, n_agents=N, rng=rng,
                                         estimator=estimator, network=network, mean_degree=6)


def _loss(network, loop, estimator="smoothed"):
    series = _series(network, loop, estimator)
    return lambda theta, rng=4: md.sum(md.square(series(theta, rng)))


@pytest.mark.parametrize("network", [None, "erdos_renyi"])
def test_scan_equals_loop_values_and_derivatives(network):
    theta = THETA[network]
    run = {loop: _loss(network, loop) for loop in (True, False)}
    # the traced path is the scan; jvp gives its values as well as its derivative
    values = {loop: md.jvp(_series(network, loop), (theta,), (np.ones(3),))
              for loop in (True, False)}
    same_bits(values[True][0], values[False][0])
    close(values[False][1], values[True][1])
    assert np.any(host(values[True][0]) > 0)  # an epidemic happened
    for transform in (md.grad, md.jacfwd):
        expected = host(transform(run[True])(theta))
        assert np.all(np.isfinite(expected)) and np.any(expected != 0)
        close(transform(run[False])(theta), expected)


@pytest.mark.parametrize("estimator", ["straight_through", "gumbel_softmax", "none"])
def test_scan_equals_loop_for_each_estimator(estimator):
    theta = THETA[None]
    close(md.grad(_loss(None, False, estimator))(theta),
          md.grad(_loss(None, True, estimator))(theta))


def test_score_estimator_keeps_the_loop():
    theta = THETA[None]
    rng = default_rng(2)
    series = sir.simulate(theta, n_timesteps=T, n_agents=N, rng=rng, estimator="score")
    assert host(series).shape == (T, 2)


def test_batched_mixed_mode_equals_the_loop():
    """jacfwd of the vmapped loss at a shared shift δ, one generator per row (the calibration's
    mixed mode), against the Python loop per row."""
    rows = np.stack([THETA[None] * (1.0 + 0.1 * j) for j in range(3)])
    root = default_rng(9)

    def batched(loop):
        loss = _loss(None, loop)
        return md.jacfwd(lambda d: md.vmap(loss)(md.add(rows, d),
                                                 [root.stream(j) for j in range(3)]))

    close(batched(False)(np.zeros(3)), batched(True)(np.zeros(3)))


def test_stochastic_triples_equal_the_loop():
    theta = THETA[None]
    close(derivative_estimate(_loss(None, False), theta, seed=3),
          derivative_estimate(_loss(None, True), theta, seed=3))


def test_bernoulli_from_uniform_is_the_samplers_draw():
    """Given the uniforms the stream would invert, the sample and its smoothed derivative are
    rng.bernoulli's."""
    p = np.array([0.1, 0.5, 0.9, 0.3])
    stream = default_rng(5).stream("x")
    u = stream.open_uniform(p.shape)

    def ref(q):
        return default_rng(5).stream("x").bernoulli(q)

    same_bits(bernoulli_from_uniform(u, p), ref(p))
    close(md.jacfwd(lambda q: bernoulli_from_uniform(u, q))(p), md.jacfwd(ref)(p))


def test_bernoulli_from_uniform_refuses_score_and_bad_probabilities():
    u = default_rng(1).open_uniform((3,))
    with pytest.raises(ValueError, match="score"):
        bernoulli_from_uniform(u, 0.5, estimator="score")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bernoulli_from_uniform(u, 1.5)


def test_from_uniform_refuses_a_parameter_larger_than_its_uniforms():
    """One uniform per sample: p of shape (2, 3) with u of shape (3,) would reuse each uniform
    for both rows (two perfectly correlated samples), so it is refused."""
    u = default_rng(1).open_uniform((3,))
    with pytest.raises(ValueError, match=r"bernoulli_from_uniform.*\(2, 3\).*\(3,\)"):
        bernoulli_from_uniform(u, np.full((2, 3), 0.4))
    with pytest.raises(ValueError, match="poisson_from_uniform"):
        poisson_from_uniform(u, np.full((2, 3), 2.0))
    assert host(bernoulli_from_uniform(default_rng(1).open_uniform((2, 3)), 0.4)).shape == (2, 3)
