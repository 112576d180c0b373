"""The Cont model (realised variance of ``minidiff.models.cont`` in its benchmark setting) on
whichever backend is current: primal, grad and jacfwd times.

Unlike ``cont_gradient.py`` (which compares with a plain-NumPy simulation) this runs only
minidiff code, so it works on every backend; the ratios are to minidiff's own primal. On a GPU
(``MINIDIFF_BACKEND=cupy``) each timing ends with a device synchronisation.

Run: ``MINIDIFF_BACKEND=cupy python bench/backend_cont.py --agents 100000,1000000 --steps 100``
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import best_of, print_header

import minidiff as md
from minidiff.memory import measure
from minidiff.models import cont

SETTINGS = dict(cont.BENCHMARK_SETTINGS)


def _sync() -> None:
    xp = md.get_backend().xp
    if md.get_backend().name == "cupy":
        xp.cuda.Device().synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="100000,1000000", help="comma-separated N values")
    parser.add_argument("--steps", type=int, default=100, help="T")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print_header("default")
    theta = md.asarray(list(cont.BENCHMARK_PARAMS))
    print(f"{'N':>9} {'T':>5} {'primal s':>9} {'grad s':>8} {'jacfwd s':>9} {'grad/primal':>12} "
          f"{'jacfwd/primal':>14} {'grad peak MiB':>14} {'jacfwd peak MiB':>16}")
    for n in (int(v) for v in args.agents.split(",")):
        noise = cont.Noise(0, n, s=SETTINGS["s"]).predraw(args.steps)  # drawn before timing

        def loss(th: Any, noise: cont.Noise = noise, n: int = n) -> Any:
            return cont.realised_variance(th, n_timesteps=args.steps, n_agents=n, rng=noise,
                                          **SETTINGS)

        loss(theta)  # warm-up (kernel compilation on a GPU)
        md.grad(loss)(theta)
        md.jacfwd(loss)(theta)
        t_primal = best_of(lambda: loss(theta), args.repeat, _sync)[0]
        t_grad = best_of(lambda: md.grad(loss)(theta), args.repeat, _sync)[0]
        t_fwd = best_of(lambda: md.jacfwd(loss)(theta), args.repeat, _sync)[0]
        peak_grad = measure(md.grad(loss), theta).peak_mib
        peak_fwd = measure(md.jacfwd(loss), theta).peak_mib
        print(f"{n:>9} {args.steps:>5} {t_primal:>9.4f} {t_grad:>8.4f} {t_fwd:>9.4f} "
              f"{t_grad / t_primal:>12.2f} {t_fwd / t_primal:>14.2f} {peak_grad:>14.1f} "
              f"{peak_fwd:>16.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
