"""Real data: the S&P 500 series from arch, the CSV export, and the stylised facts of returns.

The sp500 tests need the ``data`` extra (arch) and skip without it; everything else runs on
series generated here, so CI without arch still tests the logic. Tolerances: the sampling sd of
an autocorrelation of independent data is about 1/√T and that of the excess kurtosis of
Gaussian data √(24/T); the statistical checks allow 5 of those sds (a false alarm about once in
a million runs, and each is seeded).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import minidiff as md
from minidiff.cli import main
from minidiff.cli.calibrate_setup import read_csv
from minidiff.models import datasets
from minidiff.models.stylised_facts import (
    FACTS,
    autocorrelation,
    excess_kurtosis,
    stylised_facts,
)

T = 20_000


def host(x):
    return np.asarray(md.get_backend().to_host(md.asarray(x)))


def reference_acf(x: np.ndarray, lag: int) -> float:
    """An independent implementation, with numpy.correlate."""
    a = x - x.mean()
    return float(np.correlate(a[:-lag], a[lag:])[0] / np.dot(a, a))


def test_facts_match_an_independent_implementation_on_random_data():
    x = np.random.default_rng(0).standard_t(5, size=500)
    facts = host(stylised_facts(x))
    z = x - x.mean()
    assert facts.shape == (len(FACTS),) == (12,)
    assert facts[0] == pytest.approx(np.mean(z ** 4) / np.mean(z ** 2) ** 2 - 3, rel=1e-12)
    for k in range(1, 11):
        assert facts[k] == pytest.approx(reference_acf(np.abs(x), k), abs=1e-12)
    assert facts[11] == pytest.approx(reference_acf(x, 1), abs=1e-12)


def test_an_alternating_series_has_acf_minus_one_at_lag_one_exactly():
    x = np.array([1.0, -1.0] * 50)  # mean 0: ρ(1) = −(T − 1)/T
    assert float(autocorrelation(x, 1)) == pytest.approx(-99 / 100, abs=1e-15)
    assert float(autocorrelation(x, 2)) == pytest.approx(98 / 100, abs=1e-15)


def test_gaussian_noise_has_none_of_the_facts():
    facts = host(stylised_facts(np.random.default_rng(1).normal(size=T)))
    assert abs(facts[0]) < 5 * math.sqrt(24 / T)
    assert np.all(np.abs(facts[1:]) < 5 / math.sqrt(T))


def test_clustered_volatility_shows_fat_tails_and_slowly_decaying_acf_of_abs_returns():
    # volatility in two regimes (sd 1 and 4) that persist: each day switches with prob 0.02
    rng = np.random.default_rng(2)
    switches = np.cumsum(rng.random(T) < 0.02) % 2
    r = np.where(switches == 1, 4.0, 1.0) * rng.normal(size=T)
    facts = host(stylised_facts(r))
    assert facts[0] > 1.0 + 5 * math.sqrt(24 / T)  # a scale mixture has excess kurtosis > 0
    assert np.all(facts[1:11] > 5 / math.sqrt(T))
    assert facts[10] < facts[1]  # decays over ten lags
    assert abs(facts[11]) < 5 / math.sqrt(T)  # the sign of r stays unpredictable


def test_bad_series_and_lags_are_refused():
    with pytest.raises(ValueError, match="lag must be an integer ≥ 1"):
        autocorrelation(np.ones(5), 0)
    with pytest.raises(ValueError, match=r"T ≥ 11"):
        stylised_facts(np.ones(10))
    with pytest.raises(ValueError, match=r"shape \(T,\)"):
        excess_kurtosis(np.ones((3, 2)))


@pytest.mark.parametrize("shape, header", [((50,), "return"), ((30, 2), ["a", "b"])])
def test_csv_export_reads_back_exactly(tmp_path, shape, header):
    series = np.random.default_rng(3).normal(scale=0.01, size=shape)
    path = datasets.write_csv(tmp_path / "series.csv", series, header)
    assert np.array_equal(host(read_csv(str(path))), series)


def test_sp500_without_arch_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "arch", None)
    monkeypatch.setitem(sys.modules, "arch.data", None)
    with pytest.raises(ImportError, match=r"minidiff\[data\]"):
        datasets.sp500_returns(10)
    with pytest.raises(SystemExit):
        main(["calibrate", "--model", "cont", "--data", "sp500", "--quiet", "--no-plot"])
    assert "minidiff[data]" in capsys.readouterr().err


def test_sp500_returns_are_the_log_returns_of_arch_adjusted_close():
    sp500 = pytest.importorskip("arch.data.sp500")
    prices = sp500.load()["Adj Close"].to_numpy(dtype=float)
    r = host(datasets.sp500_returns(250))
    assert r.shape == (250,)
    np.testing.assert_allclose(r, np.diff(np.log(prices))[-250:], rtol=0, atol=1e-15)
    assert len(host(datasets.sp500_returns())) == len(prices) - 1
    # daily returns: a sd of about 1%, fat tails and volatility clustering
    facts = host(stylised_facts(datasets.sp500_returns()))
    assert 0.005 < r.std() < 0.03 and facts[0] > 3 and np.all(facts[1:11] > 0.1)
    with pytest.raises(ValueError, match="n_days must be an integer from 2 to"):
        datasets.sp500_returns(10**6)


def test_calibrate_fits_cont_to_sp500(capsys):
    pytest.importorskip("arch")
    code = main(["calibrate", "--model", "cont", "--data", "sp500", "--timesteps", "30",
                 "--agents", "50", "--steps", "2", "--samples", "2", "--quiet", "--no-plot"])
    out = capsys.readouterr().out
    assert code == 0 and "data sp500" in out and "sigma" in out
    with pytest.raises(SystemExit):  # longer than the data set
        main(["calibrate", "--model", "cont", "--data", "sp500", "--timesteps", "9999999",
              "--quiet", "--no-plot"])
    assert "n_days must be an integer from 2 to 5030" in capsys.readouterr().err
