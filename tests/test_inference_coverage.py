"""Simulation-based calibration (``minidiff.inference.coverage``) on a conjugate Normal problem,
where GVI with the exact likelihood and w = 1 recovers the exact posterior, so coverage must be
nominal; and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

import minidiff as md
from minidiff import inference as inf
from minidiff.inference.coverage import coverage

N_OBS = 5       # y_i ~ N(θ, 1), i = 1..5; θ ~ N(0, 1); posterior N(Σy/6, 1/6)
R = 200         # data sets
STEPS = 200


def simulate(theta, rng):
    return theta[0] + rng.normal(size=(N_OBS,))


def loss_for(y):
    nll = inf.gaussian_nll(y)
    return lambda theta, rng: nll(theta[0])


def batch_loss_for(ys):  # Σ_r ½ Σ_i (y_ri − θ_r)², the same NLL (up to a constant) for all r
    def loss(theta, rng):
        z = ys - md.reshape(theta, (-1, 1))
        return md.sum(0.5 * z * z)

    return loss


def run(n_datasets=R, w=1.0, **kw):
    return coverage(simulate, loss_for, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1),
                    n_datasets=n_datasets, n_draws=1000, seed=3, n_steps=STEPS, n_samples=4,
                    optimizer=inf.adam(inf.cosine(0.05, STEPS)),
                    options=inf.RunOptions(w=w, progress=False), **kw)


def test_coverage_of_the_exact_posterior_is_nominal():
    """90% intervals hold the truth in [0.85, 0.95] of R = 200 data sets: the binomial sd of
    the coverage of an exact posterior is √(0.9·0.1/200) = 0.021, so the band is ±2.4 sd
    (the issue's band). The 50% intervals: sd √(0.25/200) = 0.035, band [0.40, 0.60] (±2.8
    sd). Each q's sd is the exact 1/√6 up to the stochastic optimiser's noise (4 samples per
    step; measured within 12% over these 200 fits, asserted within 20%), and their average to
    3% (the sample sd of 1000 draws alone is within 1/√2000 = 2.2% per fit)."""
    result = run(batch=True, batch_loss_for=batch_loss_for)
    assert result.n_datasets == R
    assert 0.85 <= result.coverage(0.9)[0] <= 0.95
    assert 0.40 <= result.coverage(0.5)[0] <= 0.60
    sds = np.array(result.sds)[:, 0]
    np.testing.assert_allclose(sds, (1 / 6) ** 0.5, rtol=0.2)
    assert abs(sds.mean() / (1 / 6) ** 0.5 - 1) < 0.03
    ranks = np.array(result.ranks)[:, 0]
    assert ranks.min() >= 0 and ranks.max() <= 1000
    # the ranks of an exact posterior are uniform: mean L/2, sd of the mean L/√(12R) ≈ 20
    assert abs(ranks.mean() - 500) < 3 * 1000 / np.sqrt(12 * R)


def test_coverage_detects_an_overconfident_posterior():
    """w = 1/4 sharpens the likelihood (q* ∝ π·exp(−4ℓ)): posterior precision 1 + 4·5 = 21
    against the exact 6, so its 90% intervals are about half as wide as they should be. Their
    exact coverage is 0.60 (from θ ~ N(0, 1), ȳ ~ N(θ, 1/5), interval m ± 1.645/√21 with
    m = 20ȳ/21); asserted below 0.75, 4 binomial sds (0.035 at R = 200) above it: the check
    can fail."""
    result = run(w=0.25, batch=True, batch_loss_for=batch_loss_for)
    assert result.coverage(0.9)[0] < 0.75


def test_batched_fits_match_the_looped_loss_exactly():
    """batch_loss_for is the sum of the per-data-set losses, so the two batched runs see the
    same objective and the same draws: identical ranks and means."""
    a = run(n_datasets=4, batch=True, batch_loss_for=batch_loss_for)
    b = run(n_datasets=4, batch=True)
    assert a.ranks == b.ranks
    np.testing.assert_allclose(a.means, b.means, rtol=1e-12)


def test_unbatched_coverage_fits_each_data_set():
    seen = []
    result = run(n_datasets=2, on_dataset=lambda r, total: seen.append((r, total)))
    assert seen == [(1, 2), (2, 2)]
    assert len(result.ranks) == 2 and "90% coverage" in result.summary()
    assert set(result.to_json()) >= {"coverage", "ranks", "truths", "n_draws"}


@pytest.mark.parametrize("n", [0, 1, 1.5, True])
def test_coverage_refuses_fewer_than_two_data_sets(n):
    with pytest.raises(ValueError, match="n_datasets must be an integer ≥ 2"):
        run(n_datasets=n)


def test_batching_refuses_a_family_it_would_couple():
    with pytest.raises(ValueError, match="batch=True .* DiagonalGaussian"):
        coverage(simulate, loss_for, inf.Normal(0.0, 1.0), inf.FullRankGaussian(1),
                 n_datasets=2, batch=True, n_steps=1, optimizer=inf.adam(0.1))
