"""Surrogate gradients: hard values forward, a smooth stand-in's derivative in both modes."""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff.stochastic import soft_step, straight_through
from minidiff.testing import check_grads

X = [-2.0, -0.3, 0.0, 0.4, 1.5]


def test_soft_step_value_is_the_exact_step(backend, to_array):
    x = to_array(X)
    assert np.array_equal(md.to_host(soft_step(x, 5.0)), [0.0, 0.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("k", [0.5, 5.0])
def test_soft_step_derivative_is_the_sigmoid_slope_in_both_modes(backend, to_array, k):
    x = to_array(X)
    slope = md.to_host(md.grad(lambda v: md.sum(md.sigmoid(k * v)))(x))
    rev = md.to_host(md.grad(lambda v: md.sum(soft_step(v, k)))(x))
    fwd = np.diag(md.to_host(md.jacfwd(lambda v: soft_step(v, k))(x)))
    np.testing.assert_allclose(rev, slope, rtol=1e-12)
    np.testing.assert_allclose(fwd, slope, rtol=1e-12)


def test_soft_step_second_derivative_is_the_sigmoids(backend, to_array):
    x = to_array([-0.7, 0.2, 1.1])
    h_soft = md.to_host(md.hessian(lambda v: md.sum(soft_step(v, 3.0)))(x))
    h_sigmoid = md.to_host(md.hessian(lambda v: md.sum(md.sigmoid(3.0 * v)))(x))
    np.testing.assert_allclose(h_soft, h_sigmoid, rtol=1e-10, atol=1e-14)


def test_soft_step_jvp_and_vjp_are_transposes(backend, to_array):
    # finite differences of a step are useless, so compare the two modes with each other
    # (modes=("fwd", "rev") with a huge eps that never crosses 0 only checks the identity)
    x = to_array([-0.7, 0.2, 1.1])
    check_grads(lambda v: soft_step(v, 2.0) * v, (x,), order=1, eps=1e-9, rtol=1.0, atol=10.0)


def test_straight_through_value_is_hard_exactly_and_derivative_is_softs(backend, to_array):
    x = to_array([0.3, -1.2, 2.0])
    hard = to_array([1.0, 0.0, 1.0])
    value = md.to_host(straight_through(hard, md.sigmoid(x)))
    assert np.array_equal(value, [1.0, 0.0, 1.0])
    g = md.to_host(md.grad(lambda v: md.sum(straight_through(hard, md.sigmoid(v) * v)))(x))
    expected = md.to_host(md.grad(lambda v: md.sum(md.sigmoid(v) * v))(x))
    np.testing.assert_allclose(g, expected, rtol=1e-14)
    t = md.to_host(md.jvp(lambda v: straight_through(hard, md.sin(v)), (x,), (md.ones_like(x),))[1])
    np.testing.assert_allclose(t, np.cos(md.to_host(x)), rtol=1e-14)


def test_bad_surrogate_input_gets_clear_errors():
    with pytest.raises(ValueError, match="soft_step: steepness k"):
        soft_step(np.ones(2), 0.0)
    with pytest.raises(ValueError, match="soft_step: steepness k"):
        soft_step(np.ones(2), float("inf"))
    with pytest.raises(md.ShapeError, match=r"straight_through: hard has shape \(3,\)"):
        straight_through(np.ones(3), np.ones(2))
