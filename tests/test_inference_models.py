"""GVI on the tutorial's simulators (quick versions; ``bench/gvi.py`` runs the full ones).

Random walk: ℓ is the energy distance between the simulated and observed increments ±1, which
equals 4(p̂ − q̂)² (p̂, q̂ the fractions of up-steps), so its expectation over the simulator is
known exactly, L̄(θ) = 4[(θ − q̂)² + θ(1 − θ)/T]. The generalised posterior
q*(x) ∝ π(x)·exp(−L̄(σ(x))/w) on x = logit θ, and the Gaussian closest to it in KL(q‖q*), then
follow by quadrature (Gauss–Hermite, 80 nodes) from the same data. The fitted Gaussian must match
that best Gaussian: mean within 0.1 of its sd, sd within 10% (the tolerance of the exact-posterior
tests). w = 0.1 rather than the tutorial's 1, because the energy distance of ±1 steps is at most
4, so at w = 1 the data hardly move q from the prior and the check would say little.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import expit, logit

import minidiff as md
from minidiff import inference as inf

T_STEPS, W = 50, 0.1
PRIOR = (float(logit(0.9)), 1.0)  # the tutorial's prior on logit θ


def observed_increments():
    return 2.0 * md.random.default_rng(7).bernoulli(0.75, size=T_STEPS) - 1.0


def walk_loss():
    """ℓ(x, rng): the increments x_{t+1} − x_t = 2ξ_t − 1, ξ_t ~ Bernoulli(σ(x)), drawn in one
    call (the model's walk draws them one step at a time; the law is the same)."""
    ed = inf.energy_distance(observed_increments())

    def loss(theta, rng):
        p = md.sigmoid(md.getitem(theta, 0))
        return ed(2.0 * rng.bernoulli(p, size=T_STEPS) - 1.0)

    return loss


def best_gaussian_by_quadrature():
    q_hat = float(np.mean((np.asarray(md.to_host(observed_increments())) + 1) / 2))

    def expected_loss(x):
        t = expit(x)
        return 4 * ((t - q_hat) ** 2 + t * (1 - t) / T_STEPS)

    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    prior = stats.norm(*PRIOR)

    def kl_up_to_log_z(v):  # KL(N(m, s²) ‖ q*) + log Z
        m, s = v[0], math.exp(v[1])
        x = m + s * nodes
        return np.sum(weights * (stats.norm(m, s).logpdf(x) - prior.logpdf(x)
                                 + expected_loss(x) / W))

    fit = optimize.minimize(kl_up_to_log_z, [PRIOR[0], 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-13})
    return fit.x[0], math.exp(fit.x[1])


@pytest.mark.parametrize("gradient,mode", [("pathwise", "triples"), ("score", "auto")])
def test_random_walk_fit_matches_the_generalised_posterior_by_quadrature(gradient, mode):
    mean, sd = best_gaussian_by_quadrature()
    steps = 300
    result = inf.calibrate(walk_loss(), inf.Normal(*PRIOR), inf.DiagonalGaussian(1), w=W,
                           n_samples=10, n_steps=steps, gradient=gradient, mode=mode,
                           optimizer=inf.adam(inf.cosine(0.05, steps)))
    fit_mean = float(result.params["loc"][0])
    fit_sd = math.exp(float(result.params["log_scale"][0]))
    assert abs(fit_mean - mean) < 0.1 * sd, (fit_mean, mean, sd)
    assert abs(fit_sd / sd - 1) < 0.1, (fit_sd, sd)
