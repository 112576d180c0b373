"""The cost of differentiating the Cont volatility-clustering ABM, relative to plain NumPy.

The model is :mod:`minidiff.models.cont` (Cont 2007) in its benchmark setting
(``BENCHMARK_PARAMS``, ``BENCHMARK_SETTINGS``: s = 0.1, k = 5), with N agents over T steps:

    ν_i(0) = exp(μ + σ_ν z_i),   ε_t = σ ζ_t,   o_it = H(ε_t − ν_i) − H(−ε_t − ν_i),
    r_t = Σ_i o_it / (N η),      ν_i ← |r_t| where U_it < s,   loss = Σ_t r_t²

(``cont.realised_variance``). Each hard step H is ``minidiff.stochastic.soft_step(x, k=5)``: the
value of the step, the derivative of the sigmoid σ(5x) (a straight-through sigmoid surrogate, as
one primitive, so the forward pass computes no sigmoid). The update mask U < s has a fixed s, so
it carries no derivative.

All random numbers are drawn before any timing (``cont.Noise(seed, N).predraw(T)``: the model's
own keyed streams, drawn ahead), and every run reads the same draws. Timed, each divided by the
NumPy primal:

* ``numpy primal``: the model in raw NumPy (what one would write without AD);
* ``minidiff primal``: the minidiff model on plain arrays (no transform);
* ``grad``: ``md.grad(loss)(θ)``, reverse mode, one forward pass with a tape and one sweep back;
* ``jacfwd``: ``md.jacfwd(loss)(θ)``, forward mode, one pass carrying all 4 tangents.

It checks that minidiff's primal loss equals NumPy's and that the two gradients agree.

Run: ``python bench/cont_gradient.py`` (N = 1e5 and 1e3, T = 1000), ``--agents N --steps T`` for
one size, ``--quick`` for a small run. The glibc allocator is tuned by default (see
``bench/_common.py``; ``--default-malloc`` to compare): NumPy and minidiff get the same one.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import add_malloc_option, best_of, malloc_from, print_header

import minidiff as md
from minidiff.memory import tape_memory
from minidiff.models import cont

THETA = cont.BENCHMARK_PARAMS
SETTINGS = dict(cont.BENCHMARK_SETTINGS)


def loss_numpy(theta: Any, noise: cont.Noise, n_steps: int) -> float:
    """Σ_t r_t² in raw NumPy, reading the same draws: hard steps, no surrogate."""
    mu, sigma_nu, sigma, eta = (float(v) for v in theta)
    n = noise.n_agents
    nu = np.exp(mu + sigma_nu * noise.z)
    loss = 0.0
    for t in range(n_steps):
        zeta, update = noise.step(t)
        eps = sigma * float(zeta)
        orders = (eps - nu >= 0).astype(np.float64) - (-eps - nu >= 0).astype(np.float64)
        r = np.sum(orders) / (n * eta)
        loss = loss + r * r
        nu = np.where(update, abs(r), nu)
    return float(loss)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def run_size(n_agents: int, n_steps: int, *, repeat: int, seed: int, memory: bool) -> bool:
    """Time every variant at one size and print the ratios. True when the checks pass."""
    started = time.perf_counter()
    noise = cont.Noise(seed, n_agents, s=SETTINGS["s"]).predraw(n_steps)
    theta = md.asarray(list(THETA))

    def loss(th: Any) -> Any:
        return cont.realised_variance(th, n_timesteps=n_steps, n_agents=n_agents, rng=noise,
                                      **SETTINGS)

    heavy = max(1, min(repeat, 2)) if n_agents * n_steps >= 10**7 else repeat
    rows: list[tuple[str, float]] = []
    t_np, value_np = best_of(lambda: loss_numpy(THETA, noise, n_steps), repeat)
    rows.append(("numpy primal", t_np))
    t, value_md = best_of(lambda: loss(theta), repeat)
    rows.append(("minidiff primal", t))
    t, g_rev = best_of(lambda: md.grad(loss)(theta), heavy)
    rows.append(("grad (reverse)", t))
    t, g_fwd = best_of(lambda: md.jacfwd(loss)(theta), heavy)
    rows.append(("jacfwd (forward, K=4)", t))

    print(f"\n== N = {n_agents} agents, T = {n_steps} steps "
          f"(best of {repeat}; grad and jacfwd best of {heavy}) ==")
    print(f"{'run':<28} {'seconds':>10} {'/ numpy primal':>15}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:>10.4f} {seconds / t_np:>15.2f}")

    value_md = float(md.to_host(value_md))
    g_rev, g_fwd = np.asarray(md.to_host(g_rev)), np.asarray(md.to_host(g_fwd))
    loss_rel = abs(value_md - value_np) / abs(value_np)
    grad_rel = float(np.max(np.abs(g_rev - g_fwd)) / np.max(np.abs(g_fwd)))
    ok = loss_rel <= 1e-12 and grad_rel <= 1e-10
    print(f"loss: numpy {value_np:.15g}, minidiff {value_md:.15g} (relative difference "
          f"{loss_rel:.1e})")
    print(f"gradient d loss / d(mu, sigma_nu, sigma, eta):\n  grad   {_fmt(g_rev)}\n"
          f"  jacfwd {_fmt(g_fwd)}\n  max |grad - jacfwd| / max |jacfwd| = {grad_rel:.1e}")
    if memory:
        peak = tape_memory(loss, theta)["bytes_peak"]
        print(f"reverse-mode tape: peak {peak / 2**20:.1f} MiB of residuals "
              f"({peak / (n_steps * n_agents):.1f} bytes per agent per step)")
    print(f"checks {'passed' if ok else 'FAILED'}; size took {time.perf_counter() - started:.1f}s")
    return ok


def _fmt(v: Any) -> str:
    return "[" + ", ".join(f"{x: .12e}" for x in v) + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, help="N (default: both 100000 and 1000)")
    parser.add_argument("--steps", type=int, default=1000, help="T (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a small run: N = 1000, T = 100")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per variant, the best kept (grad and jacfwd at most 2 "
                             "when N T >= 1e7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the extra reverse pass that reads the tape's peak bytes")
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    malloc_note = malloc_from(args)

    if args.quick:
        sizes = [(args.agents or 1000, 100 if args.steps == 1000 else args.steps)]
    elif args.agents is not None:
        sizes = [(args.agents, args.steps)]
    else:
        sizes = [(100_000, args.steps), (1000, args.steps)]

    started = time.perf_counter()
    print_header(malloc_note)
    print(f"model: minidiff.models.cont, theta = (mu, sigma_nu, sigma, eta) = {THETA}, "
          f"k = {SETTINGS['k']}, s = {SETTINGS['s']}, seed {args.seed}")
    print("targets at N = 1e5 (the issue): grad <= 5x and jacfwd <= 6x the numpy primal "
          "(PyTorch eager 7.9x and 37x, JAX jit 8.8x and 6.4x)")
    ok = all([run_size(n, t, repeat=args.repeat, seed=args.seed, memory=not args.no_memory)
              for n, t in sizes])
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
