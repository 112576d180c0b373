"""A model's time loop as a Python loop against the same loop as ``md.scan``, side by side.

For each model whose ``simulate`` runs its time loop as a scan, this times, in one process and
alternating the two (best of ``--repeat`` each, so machine load hits both alike), the loss
Σ y² of one run through

* the primal,
* ``grad`` (reverse mode),
* ``jacfwd`` (forward mode, one tangent per parameter),
* ``vmap``: the loss batched over ``--batch`` parameter rows with one generator per row, and
  the calibration's mixed mode, ``jacfwd`` of that batched loss (``inference/sample_chunks.py``),
* stochastic triples (``derivative_estimate``),

and prints the seconds and the ratio loop / scan (above 1: the scan is faster). It also checks
that both give the same values and derivatives. The loop is the model's own Python loop
(the step drawing from its keyed streams as it runs), reached through the module's private
``_run(..., loop=True)``.

    python bench/model_scans.py [--repeat 5] [--batch 8] [--models sir,sir_network]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import print_header

import minidiff as md
from minidiff.models import housing, lob, sir
from minidiff.stochastic import derivative_estimate


def _sir(network: Any, n_timesteps: int, n_agents: int) -> Callable[[bool], Any]:
    def make(loop: bool) -> Any:
        def simulate(theta: Any, rng: Any) -> Any:
            return sir._run(theta, n_timesteps, n_agents, rng, "smoothed", 1.0, network, 10,
                            0.1, loop=loop)
        return simulate
    return make


def _lob(n_timesteps: int, n_books: int) -> Callable[[bool], Any]:
    def make(loop: bool) -> Any:
        def simulate(theta: Any, rng: Any) -> Any:
            return lob._run(theta, n_timesteps, n_books, rng, "smoothed", 10, 1.0, 1, loop=loop)
        return simulate
    return make


def _housing(n_timesteps: int, n_agents: int) -> Callable[[bool], Any]:
    def make(loop: bool) -> Any:
        def simulate(theta: Any, rng: Any) -> Any:
            return housing._run(theta, n_timesteps, n_agents, rng, "smoothed", {}, loop=loop)
        return simulate
    return make


# (name, simulate(loop) maker, θ, whether rows may batch under vmap, what the run is)
MODELS = {
    "sir": (_sir(None, 50, 1000), (0.3, 0.1, 0.01), True,
            "well mixed, the calibration default N = 1000, T = 50"),
    "sir_long": (_sir(None, 300, 1000), (0.3, 0.1, 0.01), True, "well mixed, N = 1000, T = 300"),
    "sir_network": (_sir("erdos_renyi", 50, 1000), (0.05, 0.1, 0.01), False,
                    "Erdős–Rényi, mean degree 10, N = 1000, T = 50"),
    "lob": (_lob(50, 20), lob.DEFAULT_PARAMS, False,
            "the calibration default B = 20 books, L = 10, T = 50 (vmap refuses it)"),
    "lob_books": (_lob(50, 100), lob.DEFAULT_PARAMS, False, "B = 100 books, L = 10, T = 50"),
    "housing": (_housing(24, 500), housing.DEFAULT_PARAMS, False,
                "the calibration default N = 500, T = 24 after 36 months of burn-in"),
    "housing_large": (_housing(120, 2000), housing.DEFAULT_PARAMS, False,
                      "N = 2000, T = 120 after 36 months of burn-in"),
}


def _paths(simulate: Callable[[Any, Any], Any], theta: np.ndarray, batch: int,
           batches: bool) -> dict[str, Callable[[], Any]]:
    def loss(th: Any, rng: Any = 7) -> Any:
        return md.sum(md.square(simulate(th, rng)))

    paths = {
        "primal": lambda: loss(theta),
        "grad": lambda: md.grad(loss)(theta),
        "jacfwd": lambda: md.jacfwd(loss)(theta),
    }
    if batches:
        rows = np.stack([theta * (1.0 + 0.05 * j) for j in range(batch)])
        root = md.random.default_rng(3)

        def mixed(delta: Any) -> Any:
            rngs = [root.stream((0, j)) for j in range(batch)]
            return md.vmap(loss)(md.add(rows, delta), rngs)

        paths[f"vmap primal (B={batch})"] = lambda: mixed(np.zeros(theta.shape))
        paths[f"vmap jacfwd (B={batch})"] = lambda: md.jacfwd(mixed)(np.zeros(theta.shape))
    paths["triples"] = lambda: derivative_estimate(loss, theta, seed=11)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    print_header("default")
    for name in args.models.split(","):
        make, theta, batches, what = MODELS[name]
        theta = np.asarray(theta)
        print(f"\n{name}: {what}")
        print(f"{'path':<22}{'loop s':>10}{'scan s':>10}{'loop/scan':>11}  same result")
        loop, scan = (_paths(make(flag), theta, args.batch, batches) for flag in (True, False))
        for path in loop:
            best = {"loop": np.inf, "scan": np.inf}
            results = {}
            for _ in range(args.repeat):  # alternate, so load hits both alike
                for label, paths in (("loop", loop), ("scan", scan)):
                    seconds, results[label] = _timed(paths[path])
                    best[label] = min(best[label], seconds)
            a, b = (np.asarray(md.to_host(results[k])) for k in ("loop", "scan"))
            same = np.allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(a)))))
            print(f"{path:<22}{best['loop']:>10.4f}{best['scan']:>10.4f}"
                  f"{best['loop'] / best['scan']:>10.2f}x  {same}")


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    import time
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


if __name__ == "__main__":
    main()
