"""The estimator harness: its statistics on known samples, its table, its adapters, its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidiff as md
from minidiff.stochastic import compare_estimators
from minidiff.stochastic.harness import pathwise_samples, per_seed, summarise, triple_samples


def test_harness_statistics_are_computed_correctly_on_known_samples(backend, to_array):
    samples = to_array([1.0, 2.0, 3.0, 4.0])
    row = summarise("known", samples, exact=2.0, seconds=2.0)
    sd = math.sqrt(5.0 / 3.0)  # Σ (x − 2.5)² / (n − 1) = 5 / 3
    assert row.n_samples == 4
    assert row.mean == pytest.approx(2.5, rel=1e-15)
    assert row.sd == pytest.approx(sd, rel=1e-15)
    assert row.se == pytest.approx(sd / 2.0, rel=1e-15)
    assert row.z == pytest.approx(0.5 / (sd / 2.0), rel=1e-15)
    assert row.seconds_per_sample == 0.5
    assert summarise("no exact", samples).z is None


def test_harness_summarises_each_component_of_vector_estimates(backend, to_array):
    samples = to_array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    row = summarise("vector", samples, exact=[3.0, 9.0])
    assert row.mean == pytest.approx((3.0, 10.0))
    assert row.sd == pytest.approx((2.0, 0.0))
    assert row.z[0] == 0.0
    assert row.z[1] == math.inf  # no spread, but off the exact value: certainly biased
    assert summarise("exact", samples, exact=[3.0, 10.0]).z == (0.0, 0.0)


def test_harness_z_scores_of_an_unbiased_synthetic_estimator_look_standard_normal():
    rng = np.random.default_rng(0)
    zs = [summarise("normal", rng.normal(1.0, 3.0, size=200), exact=1.0).z for _ in range(400)]
    assert abs(np.mean(zs)) < 0.15
    assert np.std(zs) == pytest.approx(1.0, abs=0.1)
    biased = summarise("biased", rng.normal(1.3, 3.0, size=10_000), exact=1.0)
    assert biased.z > 5


def test_compare_estimators_runs_each_estimator_once_and_prints_an_aligned_table(capsys):
    calls = []

    def fixed(n):
        calls.append(n)
        return np.linspace(0.0, 2.0, n)

    table = compare_estimators({"linspace": fixed, "constant": lambda n: np.full(n, 1.0)}, 5,
                               exact=1.0, show=True)
    assert calls == [5]
    assert [row.name for row in table] == ["linspace", "constant"]
    assert table["linspace"].mean == pytest.approx(1.0) and table["linspace"].z == 0.0
    assert table[1].sd == 0.0
    printed = capsys.readouterr().out
    assert printed.strip() == str(table)
    lines = str(table).splitlines()
    assert lines[0] == "exact: 1"
    assert lines[1].split() == ["estimator", "n", "mean", "sd", "se", "z", "(bias)", "µs/sample"]
    assert len({len(line) for line in lines[1:]}) == 1  # columns aligned
    assert lines[2].startswith("linspace")


def test_adapters_feed_the_harness_per_seed_and_pathwise():
    # y = θ·(1 + ε) with ε ~ N(0, 1): dE/dθ = 1, pathwise sample 1 + ε
    def f(theta, rng):
        return theta * (1.0 + rng.normal(md.zeros(()), 1.0))

    table = compare_estimators({
        "per_seed": per_seed(lambda s: float(s)),
        "reverse": pathwise_samples(f, 2.0, seed=3),
        "forward": pathwise_samples(f, 2.0, seed=3, mode="forward"),
    }, 400, exact=1.0)
    assert table["per_seed"].mean == pytest.approx(199.5)
    assert table["reverse"].mean == table["forward"].mean
    assert abs(table["reverse"].z) < 4
    assert table["reverse"].sd == pytest.approx(1.0, rel=0.15)


def test_triples_adapter_runs_derivative_estimate_per_seed():
    # x = 2·Bern(3θ) + Bern(θ): dE[x]/dθ = 7 (the tutorial's example)
    def f(theta, rng):
        return (2.0 * md.sum(rng.bernoulli(3.0 * theta * md.ones((1,)), estimator="none"))
                + md.sum(rng.bernoulli(theta * md.ones((1,)), estimator="none")))

    table = compare_estimators({"triples": triple_samples(f, 0.1, seed=2)}, 2000, exact=7.0)
    assert abs(table["triples"].z) < 4
    assert table["triples"].sd > 0


def test_harness_errors_are_clear():
    with pytest.raises(ValueError, match="n_samples must be an integer ≥ 2"):
        compare_estimators({"a": lambda n: np.zeros(n)}, 1)
    with pytest.raises(ValueError, match="'short' returned 3 samples, asked for 4"):
        compare_estimators({"short": lambda n: np.zeros(3)}, 4)
    with pytest.raises(TypeError, match="'x' is not callable"):
        compare_estimators({"x": np.zeros(4)}, 4)
    with pytest.raises(ValueError, match="exact has 3 entries but 'v' estimates 2"):
        compare_estimators({"v": lambda n: np.zeros((n, 2))}, 4, exact=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="pathwise_samples: mode must be"):
        pathwise_samples(lambda t, rng: t, 1.0, mode="both")
