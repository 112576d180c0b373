"""A model's time loop as a Python loop against the same loop as ``md.scan``, side by side.

For each model of the registry whose ``simulate`` runs its time loop as a scan (its module has
``_python_loop``), at its calibration defaults, and a few larger variants, this times, in one
process and alternating the two (best of ``--repeat`` each, so machine load hits both alike),
the loss Σ y² of one run through

* the primal,
* ``grad`` (reverse mode),
* ``jacfwd`` (forward mode, one tangent per parameter),
* ``vmap``: the loss batched over ``--batch`` parameter rows with one generator per row, and
  the calibration's mixed mode, ``jacfwd`` of that batched loss (``inference/sample_chunks.py``),
* stochastic triples (``derivative_estimate``),

and prints the seconds and the ratio loop / scan (above 1: the scan is faster; ``simulate``
chooses the loop where that is as fast, so those rows read 1.00x), and whether both give the
same values and derivatives (1e-12), or why a path does not run (``lob`` refuses ``vmap``).
The loop is the model's own Python loop (each step drawing from its keyed streams as it
runs), the module's private ``_python_loop``.

    python bench/model_scans.py [--repeat 5] [--batch 8] [--models sir,sir_network]
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import best_of, print_header

import minidiff as md
from minidiff.batching import BatchingError
from minidiff.models.registry import MODELS as REGISTRY
from minidiff.models.registry import model_spec
from minidiff.stochastic import derivative_estimate

# (bench name, registry name, keywords of simulate besides the model's calibration defaults,
# parameters if not the model's defaults); only models whose module has a scan are timed
_VARIANTS = (
    ("sir_long", "sir", {"n_timesteps": 300}, None),
    ("sir_network", "sir", {"network": "erdos_renyi"}, (0.05, 0.1, 0.01)),
    ("lob_books", "lob", {"n_agents": 100}, None),
    ("housing_large", "housing", {"n_agents": 2000, "n_timesteps": 120}, None),
)


def _rows() -> dict[str, tuple[Any, Any, dict, tuple]]:
    """name -> (simulate, the Python-loop reference, keywords, θ) for each registered model
    whose time loop can be a scan (its module has ``_python_loop``), and the variants."""
    rows = {}
    for name in REGISTRY:
        spec = model_spec(name)
        module = importlib.import_module(REGISTRY[name])
        if hasattr(module, "_python_loop"):
            rows[name] = (spec.simulate, module._python_loop, dict(spec.calibration.settings),
                          spec.default_params)
    for name, model, extra, params in _VARIANTS:
        if model in rows:
            simulate, loop, settings, default = rows[model]
            rows[name] = (simulate, loop, {**settings, **extra}, params or default)
    return rows


def _paths(simulate: Callable[..., Any], keywords: dict, theta: np.ndarray,
           batch: int) -> dict[str, Callable[[], Any]]:
    def loss(th: Any, rng: Any = 7) -> Any:
        return md.sum(md.square(simulate(th, rng=rng, **keywords)))

    paths = {
        "primal": lambda: loss(theta),
        "grad": lambda: md.grad(loss)(theta),
        "jacfwd": lambda: md.jacfwd(loss)(theta),
    }
    rows = np.stack([theta * (1.0 + 0.01 * j) for j in range(batch)])
    root = md.random.default_rng(3)

    def batched(delta: Any) -> Any:
        rngs = [root.stream((0, j)) for j in range(batch)]
        return md.vmap(loss)(md.add(rows, delta), rngs)

    paths[f"vmap primal (B={batch})"] = lambda: batched(np.zeros(theta.shape))
    paths[f"vmap jacfwd (B={batch})"] = lambda: md.jacfwd(batched)(np.zeros(theta.shape))
    paths["triples"] = lambda: derivative_estimate(loss, theta, seed=11)
    return paths


def _compare(loop: Callable[[], Any], scan: Callable[[], Any], repeat: int) -> str:
    """One line of the table: best seconds of each, alternating, their ratio, and whether the
    results agree (1e-12); or why the path does not run."""
    best, results = {"loop": math.inf, "scan": math.inf}, {}
    for _ in range(repeat):  # alternate, so load hits both alike
        for label, call in (("loop", loop), ("scan", scan)):
            try:
                seconds, results[label] = best_of(call, 1)
            except (BatchingError, TypeError, ValueError) as error:
                return f"does not run: {type(error).__name__}: {str(error)[:60]}"
            best[label] = min(best[label], seconds)
    a, b = (np.asarray(md.to_host(results[k])) for k in ("loop", "scan"))
    same = np.allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(a)))))
    return (f"{best['loop']:>10.4f}{best['scan']:>10.4f}{best['loop'] / best['scan']:>10.2f}x"
            f"  {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default=None, help="comma-separated names (default all)")
    args = parser.parse_args()
    print_header("default")
    rows = _rows()
    for name in args.models.split(",") if args.models else rows:
        simulate, python_loop, keywords, theta = rows[name]
        theta = np.asarray(theta, dtype=float)
        print(f"\n{name}: {keywords}")
        print(f"{'path':<22}{'loop s':>10}{'scan s':>10}{'loop/scan':>11}  same result")
        loop = _paths(python_loop, keywords, theta, args.batch)
        scan = _paths(simulate, keywords, theta, args.batch)
        for path in loop:
            print(f"{path:<22}{_compare(loop[path], scan[path], args.repeat)}")


if __name__ == "__main__":
    main()
