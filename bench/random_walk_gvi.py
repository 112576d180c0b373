"""The random walk's GVI at speed: the main job, and a long fit against the exact answer.

The random walk's increments are ±1, and the energy distance between two samples of ±1 points
is 4(p̂ − q̂)² (p̂, q̂ their fractions of up-steps), so its expectation over the simulator is
known, L̄(θ) = 4[(θ − q̂)² + θ(1 − θ)/T]. The generalised posterior q*(x) ∝ π(x) exp(−L̄/w) on
x = logit θ, and the Gaussian closest to it in KL(q‖q*), follow by Gauss–Hermite quadrature
(``bench/gvi.py``'s ``best_gaussian``). Every fit below is printed against that Gaussian.

Parts (``--parts``, comma separated; both by default):

* ``main``: ``minidiff calibrate --quiet --no-plot`` (the README's first command: T = 100,
  5 samples × 150 steps, stochastic triples), run in this process, with its samples batched
  (the default) and as a loop, alternated ``--repeat`` times; the best CPU and wall seconds
  of each, their ratio, and the posterior of the last run against the exact one for its data
  (natural θ: mean and sd of σ(x) under each Gaussian, by quadrature).
* ``long``: a fit of 1500 steps × 30 samples (T = 99, triples, the main job's prior, w and
  learning rate): its CPU and wall seconds, and its mean and sd on logit θ against the exact
  Gaussian's (Δmean in units of the exact sd, sd ratio).

CPU seconds (``time.process_time``) are what a quiet machine's wall clock would show for this
single-threaded run; on a loaded machine the wall clock is longer.

Run: ``python bench/random_walk_gvi.py`` (``--parts main`` for the quick part).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_malloc_option, malloc_from, print_header
from gvi import best_gaussian
from scipy.special import expit, logit

import minidiff as md
from minidiff import inference as inf
from minidiff.cli import main as cli_main
from minidiff.models import random_walk

PRIOR = (float(logit(0.9)), 1.0)  # the main job's prior on logit θ
W, LR = 0.05, 0.1                 # the main job's KL weight and learning rate


def increments(path: object) -> object:
    return md.getitem(path, slice(1, None)) - md.getitem(path, slice(0, -1))


def up_fraction(path: object) -> float:
    return float(np.mean((np.asarray(md.to_host(increments(path))) + 1.0) / 2.0))


def natural(mean: float, sd: float) -> tuple[float, float]:
    """Mean and sd of θ = σ(x) for x ~ N(mean, sd²), by Gauss–Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    theta = expit(mean + sd * nodes)
    m = float(np.sum(weights * theta))
    return m, math.sqrt(float(np.sum(weights * (theta - m) ** 2)))


def run_main_job(batched: bool) -> tuple[float, float, dict]:
    """(CPU s, wall s, the JSON report) of the README's first command, in this process."""
    original = inf.Objective.batched
    inf.Objective.batched = batched
    try:
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "run.json"
            cpu, wall = time.process_time(), time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(["calibrate", "--quiet", "--no-plot", "--json", str(report)])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if code != 0:
                raise SystemExit(f"minidiff calibrate exited with {code}")
            return cpu, wall, json.loads(report.read_text(encoding="utf-8"))
    finally:
        inf.Objective.batched = original


def part_main(repeat: int) -> None:
    print("\n== main: minidiff calibrate --quiet --no-plot (random walk T = 100, 5 samples x "
          "150 steps, triples), batched samples vs the loop, alternated ==")
    best = {True: [math.inf, math.inf], False: [math.inf, math.inf]}
    report = None
    for _ in range(repeat):
        for batched in (True, False):
            cpu, wall, report = run_main_job(batched)
            best[batched] = [min(best[batched][0], cpu), min(best[batched][1], wall)]
    for batched in (True, False):
        label = "batched" if batched else "loop"
        print(f"  {label:8s} best of {repeat}: CPU {best[batched][0]:.2f} s, "
              f"wall {best[batched][1]:.2f} s (whole command, imports excluded)")
    print(f"  loop / batched: CPU {best[False][0] / best[True][0]:.2f}x, "
          f"wall {best[False][1] / best[True][1]:.2f}x")
    data = random_walk.simulate(md.asarray([0.5]), n_timesteps=100, rng=md.random.default_rng(0))
    exact = natural(*best_gaussian(up_fraction(data), 100, W, PRIOR))
    fit = report["parameters"][0]
    print(f"  posterior θ: fitted {fit['mean']:.4f} ± {fit['sd']:.4f}; exact (best Gaussian on "
          f"logit θ, quadrature) {exact[0]:.4f} ± {exact[1]:.4f}; "
          f"Δmean/sd {(fit['mean'] - exact[0]) / exact[1]:+.2f}, sd ratio "
          f"{fit['sd'] / exact[1]:.3f}")


def part_long(n_steps: int, n_samples: int, t_steps: int) -> None:
    print(f"\n== long: {n_steps} steps x {n_samples} samples, T = {t_steps}, triples, prior "
          f"N(logit 0.9, 1), w = {W}, Adam lr {LR} (cosine) ==")
    observed = random_walk.simulate(0.5, n_timesteps=t_steps, rng=md.random.default_rng(0))
    distance = inf.energy_distance(increments(observed))

    def loss(theta: object, rng: object) -> object:
        path = random_walk.simulate(md.sigmoid(md.getitem(theta, 0)), n_timesteps=t_steps,
                                    rng=rng)
        return distance(increments(path))

    cpu, wall = time.process_time(), time.perf_counter()
    result = inf.calibrate(loss, inf.Normal(*PRIOR), inf.DiagonalGaussian(1),
                           n_samples=n_samples, n_steps=n_steps,
                           optimizer=inf.adam(inf.cosine(LR, n_steps)),
                           options=inf.RunOptions(w=W, gradient="pathwise", mode="triples"))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    mean = float(result.params["loc"][0])
    sd = math.exp(float(result.params["log_scale"][0]))
    best_mean, best_sd = best_gaussian(up_fraction(observed), t_steps, W, PRIOR)
    print(f"  CPU {cpu:.1f} s, wall {wall:.1f} s")
    print(f"  logit θ: fitted {mean:.4f} ± {sd:.4f}; exact {best_mean:.4f} ± {best_sd:.4f}; "
          f"Δmean/sd {(mean - best_mean) / best_sd:+.3f}, sd ratio {sd / best_sd:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="main,long")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long-steps", type=int, default=1500)
    parser.add_argument("--long-samples", type=int, default=30)
    parser.add_argument("--long-T", type=int, default=99)
    add_malloc_option(parser)
    args = parser.parse_args()
    print_header(malloc_from(args))
    parts = args.parts.split(",")
    if "main" in parts:
        part_main(args.repeat)
    if "long" in parts:
        part_long(args.long_steps, args.long_samples, args.long_T)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
