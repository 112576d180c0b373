"""housing.simulate's months as md.scan (under grad and jacfwd) against its Python loop: the
same values bit for bit and the same derivatives to 1e-12 (scan_reference.RTOL: the reverse
scan sums θ's cotangent over the months in its own order), with and without burn-in months
before the scan starts (the scan holds the last 13 log prices instead of the growing list)."""

from __future__ import annotations

import numpy as np
import pytest
from scan_reference import close, host, same_bits

import minidiff as md
from minidiff.models import housing

THETA = np.asarray(housing.DEFAULT_PARAMS, dtype=float)


def _series(loop, burn_in):
    simulate = housing._python_loop if loop else housing.simulate
    return lambda th: simulate(th, n_timesteps=16, n_agents=200, rng=3, burn_in=burn_in)


def _loss(loop, burn_in):
    return lambda th: md.sum(md.square(_series(loop, burn_in)(th)))


@pytest.mark.parametrize("burn_in", [36, 5])
def test_scan_equals_loop_values_and_derivatives(burn_in):
    values = {loop: md.jvp(_series(loop, burn_in), (THETA,), (np.ones(6),))
              for loop in (True, False)}
    same_bits(values[True][0], values[False][0])
    close(values[False][1], values[True][1])
    for transform in (md.grad, md.jacfwd):
        expected = host(transform(_loss(True, burn_in))(THETA))
        assert np.all(np.isfinite(expected)) and np.any(expected != 0)
        close(transform(_loss(False, burn_in))(THETA), expected)
