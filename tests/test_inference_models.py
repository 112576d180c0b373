"""GVI on the tutorial's simulators (quick versions; ``bench/gvi.py`` runs the full ones).

Random walk: ℓ is the energy distance between the simulated and observed increments ±1, which
equals 4(p̂ − q̂)² (p̂, q̂ the fractions of up-steps), so its expectation over the simulator is
known exactly, L̄(θ) = 4[(θ − q̂)² + θ(1 − θ)/T]. The generalised posterior
q*(x) ∝ π(x)·exp(−L̄(σ(x))/w) on x = logit θ, and the Gaussian closest to it in KL(q‖q*), then
follow by quadrature (Gauss–Hermite, 80 nodes) from the same data. The fitted Gaussian must match
that best Gaussian: mean within 0.1 of its sd, sd within 10% (the tolerance of the exact-posterior
tests). w = 0.1 rather than the tutorial's 1, because the energy distance of ±1 steps is at most
4, so at w = 1 the data hardly move q from the prior and the check would say little.

Cont: the tutorial's setup (N = 1000, T = 100, s = 0.1, k = 5, MMD, prior N(0, I₄) on log₁₀
parameters, w = 0.001, AdamW with clipping) fitted with a full-rank Gaussian for 100 steps of 5
samples, started away from the truth in σ and η. The model sees σ and η mostly through their
product, so q lies along a ridge (σ–η correlation ≈ 0.8), and the truth must be within one
posterior sd of q's mean in both (seeds 0-3 give |z| ≤ 0.6; this runs seed 0), with σ and η
far narrower than the prior and μ, σ_ν still prior-like. The flow of the tutorial and more
steps are in ``bench/gvi.py --parts cont``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import expit, logit

import minidiff as md
from minidiff import inference as inf
from minidiff.models import cont

T_STEPS, W = 50, 0.1
PRIOR = (float(logit(0.9)), 1.0)  # the tutorial's prior on logit θ


def observed_increments():
    return 2.0 * md.random.default_rng(7).bernoulli(0.75, size=T_STEPS) - 1.0


def walk_loss():
    """ℓ(x, rng): the increments x_{t+1} − x_t = 2ξ_t − 1, ξ_t ~ Bernoulli(σ(x)), drawn in one
    call (as the model's walk does)."""
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
    result = inf.calibrate(walk_loss(), inf.Normal(*PRIOR), inf.DiagonalGaussian(1), n_samples=10,
                           n_steps=steps, optimizer=inf.adam(inf.cosine(0.05, steps)),
                           options=inf.RunOptions(w=W, gradient=gradient, mode=mode))
    fit_mean = float(result.params["loc"][0])
    fit_sd = math.exp(float(result.params["log_scale"][0]))
    assert abs(fit_mean - mean) < 0.1 * sd, (fit_mean, mean, sd)
    assert abs(fit_sd / sd - 1) < 0.1, (fit_sd, sd)


# ---------------------------------------------------------------------------------------------
# Cont
# ---------------------------------------------------------------------------------------------

TRUE_CONT = np.log10([1.0, 0.5, 1.0, 0.7])  # (μ, σ_ν, σ, η), the tutorial's truth


@pytest.mark.filterwarnings("ignore:calibrate:RuntimeWarning", "ignore:overflow")
def test_cont_identifies_sigma_and_eta():
    def simulate(theta, rng):
        return cont.simulate(md.power(10.0, theta), n_timesteps=100, n_agents=1000, rng=rng,
                             s=0.1, k=5.0)

    mmd = inf.mmd(simulate(md.asarray(TRUE_CONT), md.random.default_rng(0)))
    start = md.asarray([0.0, 0.0, 0.5, 0.5])  # σ and η ≈ 3× too large
    steps = 100
    result = inf.calibrate(lambda th, rng: mmd(simulate(th, rng)), inf.Normal(md.zeros((4,)), 1.0),
                           inf.FullRankGaussian(4, loc=start, scale=0.3), n_samples=5,
                           n_steps=steps,
                           optimizer=inf.chain(inf.clip_by_global_norm(1.0),
                                               inf.adamw(inf.cosine(0.05, steps))),
                           options=inf.RunOptions(w=0.001, on_nan="skip"))
    theta = np.asarray(md.to_host(result.sample(20_000, seed=1)))
    mean, sd = theta.mean(axis=0), theta.std(axis=0)
    z = (mean - TRUE_CONT) / sd
    assert np.all(np.abs(z[2:]) < 1.0), (mean, sd, z)       # σ, η: the truth within one sd
    assert np.all(sd[2:] < 0.3), sd                          # ... and sharply identified
    assert np.all(sd[:2] > 0.6), sd                          # μ, σ_ν: prior-like (sd 1)
    assert np.corrcoef(theta[:, 2], theta[:, 3])[0, 1] > 0.5  # along the σ–η ridge
    assert np.mean(result.history.loss[-10:]) < 0.2 * np.mean(result.history.loss[:10])
