"""minidiff.inference losses against direct NumPy/SciPy computations (to 1e-12: the same sums
in another order), and their derivatives against central finite differences (step 1e-6; the
truncation error is O(h²) and the rounding error O(1e-16/h), so 1e-7 relative suffices)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import scipy.stats as st

import minidiff as md
from minidiff import inference as inf


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


RNG = np.random.default_rng(0)
Y1 = RNG.normal(size=40)          # observed, (T,)
X1 = RNG.normal(0.3, 1.2, size=33)  # simulated, (T',)
Y2 = RNG.normal(size=(30, 2))     # observed, (T, d)
X2 = RNG.normal(0.2, 0.9, size=(25, 2))


def mmd_reference(x, y, h):
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    kxx = np.exp(-ssd.cdist(x, x, "sqeuclidean") / h)
    kyy = np.exp(-ssd.cdist(y, y, "sqeuclidean") / h)
    kxy = np.exp(-ssd.cdist(x, y, "sqeuclidean") / h)
    m, n = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy))
            / (n * (n - 1)) - 2 * kxy.mean())


@pytest.mark.parametrize("x,y", [(X1, Y1), (X2, Y2)], ids=["1d", "2d"])
def test_mmd_is_the_unbiased_statistic_with_the_median_heuristic(x, y, backend):
    loss = inf.mmd(md.asarray(y))
    h = np.median(ssd.pdist(y.reshape(len(y), -1), "sqeuclidean"))
    assert loss.bandwidth == pytest.approx(h, rel=1e-12)
    np.testing.assert_allclose(float(loss(md.asarray(x))), mmd_reference(x, y, h), rtol=1e-12)
    # a given bandwidth is used as given
    np.testing.assert_allclose(float(inf.mmd(md.asarray(y), bandwidth=0.7)(md.asarray(x))),
                               mmd_reference(x, y, 0.7), rtol=1e-12)


def test_mmd_blocks_give_the_same_sum_as_one_block(monkeypatch):
    x = RNG.normal(size=300)
    whole = float(inf.mmd(md.asarray(Y1))(md.asarray(x)))
    monkeypatch.setattr(inf.losses, "BLOCK_ROWS", 7)
    np.testing.assert_allclose(float(inf.mmd(md.asarray(Y1))(md.asarray(x))), whole,
                               rtol=1e-12)


def test_mmd_of_two_samples_of_one_law_averages_to_zero():
    # unbiasedness: E[MMD²_u] = 0 when x and y have one law (z-test, 4 se, 400 replicates;
    # a fixed bandwidth, since the median heuristic makes the kernel depend on y)
    rng = np.random.default_rng(1)
    values = np.array([float(inf.mmd(md.asarray(rng.normal(size=40)), bandwidth=1.0)(
        md.asarray(rng.normal(size=40)))) for _ in range(400)])
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(values.mean()) < 4 * se, (values.mean(), se)
    # while the biased V-statistic would be positive on average: the diagonal terms add
    # 1/m + 1/n = 0.05 (k = 1), far beyond 4 se
    assert 4 * se < 0.05


@pytest.mark.parametrize("x,y", [(X1, Y1), (X2, Y2)], ids=["1d", "2d"])
def test_energy_distance_matches_scipy_and_the_direct_sum(x, y, backend):
    value = float(inf.energy_distance(md.asarray(y))(md.asarray(x)))
    xx, yy = x.reshape(len(x), -1), y.reshape(len(y), -1)
    direct = (2 * ssd.cdist(xx, yy).mean() - ssd.cdist(xx, xx).mean()
              - ssd.cdist(yy, yy).mean())
    np.testing.assert_allclose(value, direct, rtol=1e-12)
    if x.ndim == 1:
        np.testing.assert_allclose(value, st.energy_distance(x, y) ** 2, rtol=1e-10)


def test_gaussian_nll_and_mse_match_scipy_and_numpy(backend):
    nll = inf.gaussian_nll(md.asarray(Y1), scale=0.8)
    np.testing.assert_allclose(float(nll(md.asarray(X1[:1]))),
                               -st.norm(X1[0], 0.8).logpdf(Y1).sum(), rtol=1e-12)
    x = RNG.normal(size=40)
    np.testing.assert_allclose(float(nll(md.asarray(x))),
                               -st.norm(x, 0.8).logpdf(Y1).sum(), rtol=1e-12)
    np.testing.assert_allclose(float(inf.mse(md.asarray(Y1))(md.asarray(x))),
                               np.mean((x - Y1) ** 2), rtol=1e-12)


LOSSES = {
    "mmd": lambda y: inf.mmd(y),
    "energy": lambda y: inf.energy_distance(y),
    "nll": lambda y: inf.gaussian_nll(y, scale=0.8),
    "mse": lambda y: inf.mse(y),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradients_match_finite_differences_in_both_modes(name):
    loss = LOSSES[name](md.asarray(Y1))
    x = X1[:20].copy() if name in ("mmd", "energy") else Y1 + 0.3 * RNG.normal(size=40)
    g_rev = host(md.grad(loss)(md.asarray(x)))
    g_fwd = host(md.jacfwd(loss)(md.asarray(x)))
    np.testing.assert_allclose(g_fwd, g_rev, rtol=1e-12, atol=1e-15)
    h = 1e-6
    fd = np.array([(float(loss(md.asarray(x + h * e))) - float(loss(md.asarray(x - h * e))))
                   / (2 * h) for e in np.eye(len(x))])
    np.testing.assert_allclose(g_rev, fd, rtol=1e-6, atol=1e-8)


def test_energy_distance_gradient_is_finite_at_coincident_points():
    # self-distances are 0 on the diagonal, where √ has no derivative: it must be 0, not NaN
    x = md.asarray(np.array([[0.0, 1.0], [0.0, 1.0], [2.0, -1.0]]))
    g = md.grad(inf.energy_distance(md.asarray(Y2)))(x)
    assert np.all(np.isfinite(host(g)))


def test_losses_refuse_bad_input():
    with pytest.raises(ValueError, match=r"\(T,\) or \(T, d\)"):
        inf.mmd(md.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="bandwidth explicitly"):
        inf.mmd(md.zeros((5,)))
    with pytest.raises(ValueError, match="scale must be > 0"):
        inf.gaussian_nll(md.zeros((5,)), scale=0.0)
