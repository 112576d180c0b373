"""The agent-based models: primal time against N, and gradient time as a ratio to the primal.

For each registered model and each N (default 1e3, 1e5, 1e6 agents; T = 100 steps) one run
times, on the same seed:

* ``primal``: ``simulate(params, ...)`` on plain arrays (seconds), and N·T per second of it
  (agent-steps; for the limit-order book, books × steps per second);
* ``jacfwd``: the Jacobian of the observed series in all K parameters, one forward pass with K
  tangents, as a ratio to the primal;
* ``grad``: ``md.grad`` of the model's ``loss(simulated, observed)`` (one tape, one backward
  sweep), as a ratio; the observed series is the model's own run at the same parameters with
  the next seed.

The primal is the faster of two runs (the first at a new N pays page faults); the gradients
are single runs, so read the ratios, not the last digit.

Registry
--------
``MODELS`` maps a name to ``(simulate, default_params, loss)``: the model contract,
``simulate(params, *, n_timesteps, n_agents, rng)`` returns the observed series and
``loss(simulated, observed)`` a scalar. Every model of the library's registry
(``minidiff.models.registry.MODELS``) is a row, plus the variants in ``_VARIANTS`` (a model
with other keywords); another file can also add a row with :func:`register`.

Run: ``python bench/models.py`` (``--quick``: N ∈ {1e3, 1e4}, T = 20; ``--models sir``,
``--sizes 1000 100000``, ``--steps 50``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from _common import add_malloc_option, malloc_from, print_header

import minidiff as md
from minidiff.models.registry import MODELS as REGISTRY
from minidiff.models.registry import model_spec
from minidiff.random import default_rng

ModelRow = tuple[Callable[..., Any], Any, Callable[[Any, Any], Any]]
MODELS: dict[str, ModelRow] = {}

# (bench name, registry name, extra keyword arguments for simulate); for lob N is the number
# of books, for housing of households
_VARIANTS: list[tuple[str, str, dict]] = [
    ("sir_erdos_renyi", "sir", {"network": "erdos_renyi", "mean_degree": 10}),
]

_PARAMS_OVERRIDE = {"sir_erdos_renyi": (0.05, 0.1, 0.01)}  # β is a per-contact probability
_MAX_AGENTS = {"lob": 10_000, "housing": 100_000}  # larger N take minutes per pass: skipped


def register(name: str, simulate: Callable[..., Any], default_params: Any,
             loss: Callable[[Any, Any], Any]) -> None:
    """Add (or replace) a row of ``MODELS``."""
    MODELS[name] = (simulate, default_params, loss)


def load_models() -> list[str]:
    """Register every model of the library's registry and the variants; return notes on those
    skipped (a module that cannot be imported)."""
    notes = []
    rows = [(name, name, {}) for name in REGISTRY]
    for variant in _VARIANTS:
        rows.insert([r[0] for r in rows].index(variant[1]) + 1, variant)
    for name, model, extra in rows:
        try:
            spec = model_spec(model)
        except ModuleNotFoundError as exc:
            notes.append(f"note: skipping {name}: {exc}")
            continue
        simulate = spec.simulate
        if extra:
            def simulate(params, _f=spec.simulate, _extra=extra, **kw):
                return _f(params, **_extra, **kw)
        register(name, simulate, _PARAMS_OVERRIDE.get(name, spec.default_params), spec.loss)
    return notes


def _time(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_model(name: str, sizes: list[int], steps: int, seed: int) -> list[str]:
    simulate, params, loss = MODELS[name]
    b = md.get_backend()
    theta = b.asarray([float(p) for p in (params if isinstance(params, tuple | list)
                                          else (params,))])

    def run(p: Any, n: int, seed: int = seed) -> Any:
        return simulate(p, n_timesteps=steps, n_agents=n, rng=default_rng(seed))

    run(theta, 10)  # warm-up (imports, caches)
    lines = []
    for n in sizes:
        if n > _MAX_AGENTS.get(name, n):
            print(f"{name:<18}{n:>10,d}  skipped (above {_MAX_AGENTS[name]:,d} for this model)")
            continue
        observed = run(theta, n, seed + 1)
        primal = min(_time(lambda: b.to_host(run(theta, n))) for _ in range(2))  # 1st: pages
        forward = _time(lambda: b.to_host(md.jacfwd(lambda p: run(p, n))(theta)))
        reverse = _time(lambda: b.to_host(md.grad(lambda p: loss(run(p, n), observed))(theta)))
        lines.append(f"{name:<18}{n:>10,d}{int(theta.shape[0]):>4d}{primal:>12.4f}"
                     f"{n * steps / primal:>12.3g}{forward / primal:>10.2f}"
                     f"{reverse / primal:>10.2f}")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000],
                        help="numbers of agents N")
    parser.add_argument("--steps", type=int, default=100, help="time steps T")
    parser.add_argument("--models", nargs="+", default=None, help="registry names to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="N ∈ {1e3, 1e4}, T = 20")
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps = [1_000, 10_000], 20
    malloc_note = malloc_from(args)
    print_header(malloc_note)
    for note in load_models():
        print(note)
    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {list(MODELS)}")
    print(f"T = {args.steps}, seed {args.seed}; primal in seconds, jacfwd and grad as ratios "
          f"to the primal (single run each)\n")
    print(f"{'model':<18}{'N':>10}{'K':>4}{'primal s':>12}{'N·T/s':>12}{'jacfwd×':>10}"
          f"{'grad×':>10}")
    for name in names:
        bench_model(name, args.sizes, args.steps, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
