"""``md.vmap`` of B Cont simulations against one simulation and against the loop of B.

Cont's model (``minidiff.models.cont.simulate``, its default parameters and settings) at N
agents for T steps, three ways, each element with its own generator (``rng.spawn(B)``):

* ``one``:  one simulation;
* ``loop``: B simulations one after another, ``[simulate(θ_b, g_b) for b]``;
* ``vmap``: ``md.vmap(simulate)(θ, gs)``, the B simulations as one batched run (the same
  draws, number for number, as the loop);

for the primal and for ``jacfwd`` (what a calibration step evaluates). Ratios are to ``one``
(the target is vmap ≤ 2× one) and loop/vmap. Where the time goes: ``draws`` is the cost of the
B elements' keyed streams and their draws alone (``cont.Noise``: one stream per block of
steps, its normals and its update masks as Bernoulli indicators), one generator seeded per
element per block, which vmap pays as the loop does.

Each time is the best of ``--repeat`` runs, the repeats going round the variants (a busy spell
hits one sample of each), after one warm-up call of each.

Run: ``python bench/vmap.py [--batch 10] [--agents 1000] [--steps 100] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import add_malloc_option, malloc_from, print_header

import minidiff as md
from minidiff.models import cont


def _noise_only(rng: Any, steps: int, n: int) -> Any:
    """What simulate draws, and nothing else: its Noise and every step's (ζ_t, u_t)."""
    noise = cont.Noise(rng, n)
    return [noise.step(t)[0] for t in range(steps)][-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=10, help="B, simulations per batch")
    parser.add_argument("--agents", type=int, default=1000, help="N")
    parser.add_argument("--steps", type=int, default=100, help="T")
    parser.add_argument("--repeat", type=int, default=5)
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    print_header(malloc_from(args))
    b, n, steps = args.batch, args.agents, args.steps
    base = np.asarray(cont.DEFAULT_PARAMS)
    thetas = md.asarray(np.stack([base * (1.0 + 0.01 * i) for i in range(b)]))
    theta0 = md.getitem(thetas, 0)

    def sim(theta: Any, rng: Any) -> Any:
        return cont.simulate(theta, n_timesteps=steps, n_agents=n, rng=rng)

    def spawn() -> list:
        return md.random.default_rng(0).spawn(b)

    batched, batched_jac = md.vmap(sim), md.vmap(md.jacfwd(sim))
    jac = md.jacfwd(sim)
    variants: dict[str, Callable[[], Any]] = {
        "primal one": lambda: sim(theta0, md.random.default_rng(0)),
        "primal loop": lambda: [sim(md.getitem(thetas, i), g) for i, g in enumerate(spawn())],
        "primal vmap": lambda: batched(thetas, spawn()),
        "jacfwd one": lambda: jac(theta0, md.random.default_rng(0)),
        "jacfwd loop": lambda: [jac(md.getitem(thetas, i), g) for i, g in enumerate(spawn())],
        "jacfwd vmap": lambda: batched_jac(thetas, spawn()),
        "draws one": lambda: _noise_only(md.random.default_rng(0), steps, n),
        "draws vmap": lambda: md.vmap(lambda g: _noise_only(g, steps, n))(spawn()),
    }
    best = dict.fromkeys(variants, math.inf)
    for call in variants.values():  # warm-up
        call()
    for _ in range(args.repeat):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    # the batched run equals the loop (checked here too, so the ratios compare like with like)
    got = md.to_host(batched(thetas, spawn()))
    want = np.stack([md.to_host(sim(md.getitem(thetas, i), g)) for i, g in enumerate(spawn())])
    same = np.array_equal(got, want)
    print(f"Cont, default parameters, N = {n}, T = {steps}, B = {b}; best of {args.repeat}; "
          f"vmap equals the loop exactly: {same}")
    print(f"{'variant':<12} {'seconds':>9} {'/ one':>7}")
    for name, seconds in best.items():
        kind = name.split()[0]
        print(f"{name:<12} {seconds:9.4f} {seconds / best[f'{kind} one']:7.2f}")
    for kind in ("primal", "jacfwd"):
        print(f"{kind}: vmap / one = {best[kind + ' vmap'] / best[kind + ' one']:.2f} "
              f"(target ≤ 2), loop / vmap = {best[kind + ' loop'] / best[kind + ' vmap']:.2f}")
    print(f"where vmap's primal time goes: the draws alone (B generators seeded per block) take "
          f"{best['draws vmap'] / best['primal vmap']:.0%} of it, "
          f"{best['draws vmap'] / best['primal one']:.2f}× one primal simulation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
