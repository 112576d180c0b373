"""Gradient estimators on the random walk: bias, spread and cost of each, side by side.

The random walk x_T = Σ_{t=1}^{T} (2ξ_t − 1) with ξ_t ~ Bernoulli(θ) has E[x_T] = T(2θ − 1), so
the exact derivative is dE[x_T]/dθ = 2T (200 at the default T = 100). Each estimator gives n
per-sample estimates (sample i draws from stream i of ``default_rng(seed)``); the table, from
:func:`minidiff.stochastic.compare_estimators`, shows their mean, standard deviation, standard
error, bias z-score (mean − 2T)/se and wall-clock cost per sample:

* ``triples``: stochastic triples (``derivative_estimate``), unbiased, forward mode;
* ``smoothed``: ``md.grad`` through ``rng.bernoulli(..., estimator="smoothed")``; unbiased for a
  program linear in its draws, as this one is;
* ``score``, ``score (LOO)``: the score-function estimator without a baseline and with the
  leave-one-out baseline (at θ = 0.5, E[x_T] = 0, so no baseline can help; try ``--theta 0.7``);
* ``FD CRN``, ``FD independent``: central differences with step h with common random numbers
  (variance O(1/h): only draws with U within h of θ flip) and with independent streams (O(1/h²));
* ``straight-through``: the hard sample forward, derivative dξ/dp = 1;
* ``Gumbel-softmax τ``: the relaxed sample σ((logit p + L)/τ), L logistic, biased for τ > 0 (the
  ``hard=True`` variant has the same derivative here, since x_T is linear in the draws).

Run: ``python bench/estimators.py`` (θ = 0.5, T = 100, 10 000 samples); ``--quick`` for a short run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from _common import add_malloc_option, malloc_from, print_header

import minidiff as md
from minidiff.stochastic import compare_estimators, finite_difference, score_function
from minidiff.stochastic.harness import pathwise_samples, triple_samples


def random_walk(n_steps: int, **draw: Any) -> Callable[[Any, Any], Any]:
    """``f(θ, rng) = x_T``, the T steps drawn at once with ``rng.bernoulli(θ·1, **draw)``."""

    def f(theta: Any, rng: Any) -> Any:
        xi = rng.bernoulli(theta * md.ones((n_steps,)), **draw)
        return md.sum(2.0 * xi - 1.0)

    return f


def estimators(theta: float, n_steps: int, h: float, seed: int) -> dict[str, Callable]:
    walk = random_walk
    table: dict[str, Callable] = {}
    try:
        table["triples"] = triple_samples(walk(n_steps), theta, seed=seed)
    except ImportError as e:
        print(f"note: skipping triples ({e})")
    table["smoothed"] = pathwise_samples(walk(n_steps, estimator="smoothed"), theta, seed=seed)
    table["score"] = lambda n: score_function(walk(n_steps, estimator="score"), theta, n,
                                              seed=seed)
    table["score (LOO)"] = lambda n: score_function(walk(n_steps, estimator="score"), theta, n,
                                                    "leave_one_out", seed=seed)
    table[f"FD CRN h={h:g}"] = lambda n: finite_difference(
        walk(n_steps, estimator="none"), theta, h, n, seed=seed)
    table[f"FD independent h={h:g}"] = lambda n: finite_difference(
        walk(n_steps, estimator="none"), theta, h, n, common_random_numbers=False, seed=seed)
    table["straight-through"] = pathwise_samples(walk(n_steps, estimator="straight_through"),
                                                 theta, seed=seed)
    for tau in (0.1, 0.5, 1.0):
        table[f"Gumbel-softmax τ={tau:g}"] = pathwise_samples(
            walk(n_steps, estimator="gumbel_softmax", tau=tau, hard=False), theta, seed=seed)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--theta", type=float, default=0.5, help="Bernoulli probability θ")
    parser.add_argument("--steps", type=int, default=100, help="walk length T")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per estimator")
    parser.add_argument("--h", type=float, default=0.05, help="finite-difference step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="T = 20, 200 samples")
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.samples = 20, 200
    malloc_note = malloc_from(args)
    print_header(malloc_note)
    exact = 2.0 * args.steps
    print(f"random walk: θ = {args.theta:g}, T = {args.steps}, {args.samples} samples per "
          f"estimator, seed {args.seed}; exact dE[x_T]/dθ = 2T = {exact:g}")
    started = time.perf_counter()
    rows = {}
    for name, estimator in estimators(args.theta, args.steps, args.h, args.seed).items():
        try:
            rows[name] = estimator
            compare_estimators({name: estimator}, 2)  # fail early, before the long run
        except Exception as e:  # an estimator that is not available yet gets a note
            del rows[name]
            print(f"note: skipping {name}: {type(e).__name__}: {e}")
    print()
    print(compare_estimators(rows, args.samples, exact=exact))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
