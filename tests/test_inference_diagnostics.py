"""The global first stage (prior-predictive screening) and the diagnostics printed after a fit:
the predictive-band share, the data's share of the loss, and the warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf
from minidiff.inference import diagnostics as diag


def test_predictive_share_counts_points_inside_the_pointwise_band():
    """Simulations 0..100 at every point: the 90% band is [5, 95]; observed points at 0, 5,
    50, 95 and 99 put 3 of 5 inside (the ends count as inside)."""
    sims = md.asarray(np.repeat(np.arange(101.0)[:, None], 5, axis=1))
    assert diag.predictive_share(md.asarray([0.0, 5.0, 50.0, 95.0, 99.0]), sims) == 0.6
    with pytest.raises(ValueError, match="simulated series have shape"):
        diag.predictive_share(md.asarray([1.0, 2.0]), sims)


def test_data_share_is_zero_for_a_loss_that_ignores_the_data():
    rng = np.random.default_rng(0)
    sims = [md.asarray(rng.normal(size=10) * s) for s in np.linspace(0.5, 3, 40)]
    observed = md.asarray(rng.normal(size=10))
    ignores = diag.data_share(sims, lambda y: (lambda x: md.sum(x * x)), observed)
    assert ignores == 0.0
    # a squared distance to the data: ℓ(x, y) − ℓ(x, y′) = −2 x·(y − y′) + const varies with x
    # by a good part of ℓ's own variation (0.43 here), far above the warning's threshold
    uses = diag.data_share(sims, lambda y: (lambda x: md.sum((x - y) ** 2)), observed)
    assert uses > 4 * diag.NEGLIGIBLE


def test_data_share_needs_enough_finite_series():
    sims = [md.asarray([math.nan, 1.0])] * 20 + [md.asarray([1.0, 2.0])] * 3
    assert diag.data_share(sims, lambda y: (lambda x: md.sum(x)), md.asarray([0.0, 0.0])) \
        is None


def test_each_warning_fires_where_it_should_and_only_there():
    good = diag.diagnose([0.3, 0.5], inside_90=0.85, share=0.6, w=1.0)
    assert good.warnings == []
    stayed = diag.diagnose([0.95, 1.0, 0.9], inside_90=0.9, share=0.6, w=1.0)
    assert len(stayed.warnings) == 1 and "q stayed at the prior" in stayed.warnings[0]
    assert "--w (now 1)" in stayed.warnings[0]
    poor = diag.diagnose([0.3], inside_90=0.2, share=0.6)
    assert len(poor.warnings) == 1 and "poor fit: only 20%" in poor.warnings[0]
    deaf = diag.diagnose([0.3], inside_90=0.9, share=0.001)
    assert len(deaf.warnings) == 1 and "the data barely steer the loss" in deaf.warnings[0]
    lines = deaf.lines()
    assert lines[0].startswith("observed points inside q's 90% posterior-predictive band: 90%")
    assert lines[-1].startswith("warning: the data barely steer")
    assert deaf.to_json()["warnings"] == deaf.warnings


def test_screening_starts_q_at_the_elite_of_prior_draws():
    """ℓ(θ) = ½‖θ − c‖²/0.1² with c two prior sds out: the elite is exactly the 40 of 400
    prior draws with the smallest loss, q starts at their mean (nearer c than the prior's
    centre) with their sd, clipped to [0.05, 1] × the prior's sd."""
    c = md.asarray([2.0, -2.0])
    prior = inf.Normal(md.zeros(2), md.ones(2))
    s = inf.screen(lambda th, rng: 0.5 * md.sum((th - c) ** 2) / 0.01, prior, n_draws=400)
    theta = md.to_host(s.theta)
    distance = np.sum((theta - [2.0, -2.0]) ** 2, axis=1)
    assert sorted(s.elite) == sorted(np.argsort(distance)[:40].tolist())
    assert s.best == min(s.losses)
    elite = theta[s.elite]
    np.testing.assert_allclose(md.to_host(s.loc), elite.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(md.to_host(s.scale), np.clip(elite.std(axis=0), 0.05, 1.0),
                               rtol=1e-12)
    loc = md.to_host(s.loc)
    assert np.linalg.norm(loc - [2.0, -2.0]) < np.linalg.norm(loc)


def test_screening_refuses_what_it_cannot_use():
    prior = inf.Normal(0.0, 1.0)
    with pytest.raises(ValueError, match="n_draws must be an integer ≥ 2"):
        inf.screen(lambda th, rng: md.sum(th), prior, n_draws=1)
    with pytest.raises(ValueError, match="non-finite at 10 of 10 prior draws"):
        inf.screen(lambda th, rng: md.sum(th) * math.nan, prior, n_draws=10)


def test_steps_that_end_worse_than_the_screened_start_are_a_warning():
    worse = diag.diagnose([0.3], inside_90=0.9, share=0.6, fit_loss=30.0, start_loss=10.0)
    assert len(worse.warnings) == 1 and "made the fit worse" in worse.warnings[0]
    assert diag.diagnose([0.3], fit_loss=15.0, start_loss=10.0).warnings == []


def test_loss_check_flags_data_unlike_the_simulations():
    """ℓ(x, y) = ½‖x − y‖² in 10 dimensions, 40 series x_i ~ N(0, I). Between two of them ℓ is
    χ²₁₀ (mean 10, sd 4.5); data drawn the same way are one more such draw, so their share
    is about ½ (asserted in [0.2, 0.8]: with 200 correlated pairs its sd is below 0.15, a
    3-sd band if they were independent); data shifted by 3 in every coordinate sit at
    ℓ ≈ ½·10·(9 + 2) = 55, ten sds out, so no pair is as far: the share is 0 and it warns."""
    rng = np.random.default_rng(1)
    sims = md.asarray(rng.normal(size=(40, 10)))

    def distance_for(y):
        return lambda x: 0.5 * md.sum((x - y) ** 2)

    alike = diag.loss_check(sims, distance_for, md.asarray(rng.normal(size=10)))
    assert 0.2 <= alike <= 0.8
    unlike = diag.loss_check(sims, distance_for, md.asarray(3.0 + rng.normal(size=10)))
    assert unlike == 0.0
    assert diag.diagnose([0.3], inside_90=0.9, share=0.6, loss_p=alike).warnings == []
    poor = diag.diagnose([0.3], inside_90=0.9, share=0.6, loss_p=unlike)
    assert len(poor.warnings) == 1 and "poor fit: by the loss" in poor.warnings[0]
    # a fit the band already calls poor gets one warning, not two
    assert len(diag.diagnose([0.3], inside_90=0.2, loss_p=unlike).warnings) == 1
    assert diag.loss_check(sims[:2], distance_for, md.asarray(np.zeros(10))) is None


def test_loss_check_with_replicates_compares_reruns_at_the_same_parameters():
    """Series x_i = μ_i + e_i with μ_i spread over q (sd 2) and noise e of sd 1 in 10
    dimensions; a replicate x′_i = μ_i + e′_i. ℓ(x_i, x′_i) = ½‖e_i − e′_i‖² ~ χ²₁₀ (mean 10).
    Data at a μ of the same spread plus noise: ℓ(x_i, y) = ½‖μ_i − μ + e_i − e‖², mean 50,
    so a q as wide as this one, which proposes μ's that do not reproduce y, gets a share near
    0 (asserted < MISFIT); pairs across θ (no replicates) carry the same spread on both sides
    and do not see it (share near ½, asserted > 0.2). Data equal to a rerun at μ with q
    narrowed to μ_0 give about ½ (asserted in [0.2, 0.8]; 40 pairs, sd 0.08)."""
    rng = np.random.default_rng(2)
    mu = 2.0 * rng.normal(size=(40, 10))
    sims = md.asarray(mu + rng.normal(size=(40, 10)))
    reps = md.asarray(mu + rng.normal(size=(40, 10)))

    def distance_for(y):
        return lambda x: 0.5 * md.sum((x - y) ** 2)

    y = md.asarray(2.0 * rng.normal(size=10) + rng.normal(size=10))  # a μ of its own
    assert diag.loss_check(sims, distance_for, y, reps) < diag.MISFIT
    assert diag.loss_check(sims, distance_for, y) > 0.2
    narrow = np.repeat(np.asarray(y)[None, :] - rng.normal(size=(1, 10)), 40, axis=0)
    share = diag.loss_check(md.asarray(narrow + rng.normal(size=(40, 10))), distance_for, y,
                            md.asarray(narrow + rng.normal(size=(40, 10))))
    assert 0.2 <= share <= 0.8


def test_the_band_at_q_mean_warns_when_the_posterior_means_miss_the_data():
    """Below POOR_FIT (half the observed points) inside the band of simulations at q's mean,
    the posterior means are no point estimate and the user hears it; at 90% nothing is said."""
    low = diag.diagnose([0.5, 0.5], inside_at_mean=0.2)
    assert any(w.startswith("the simulations at q's mean") and "20%" in w
               for w in low.warnings)
    assert low.to_json()["inside_at_mean"] == 0.2
    assert not diag.diagnose([0.5, 0.5], inside_at_mean=0.9).warnings
