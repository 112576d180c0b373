"""Memory of each mode of AD on a long simulation, against the project's memory targets.

The workload is the realised variance Σ r_t² of the Cont market of :mod:`minidiff.models.cont`
(``BENCHMARK_PARAMS``, ``BENCHMARK_SETTINGS``) with N agents over T steps, its noise streamed
(each step draws from its own keyed stream when it runs), so the random numbers take the same
memory at every T and what grows is what AD keeps. At each T it runs:

* ``tape_memory`` of ``grad(loss)`` and of the checkpointed loss: the residual bytes reverse
  mode keeps, at peak (per agent per step: what one step of the model costs on the tape);
* ``measure`` (tracemalloc) of ``jacfwd(loss)``, ``grad(loss)`` and ``grad`` of the loss with
  its time loop in ``checkpointed_loop`` (⌈√T⌉ snapshots unless ``--snapshots``): peak bytes;
* untraced wall times of both ``grad`` runs (best of ``--repeat``): the recomputation cost.

Then it compares with the targets: the tape keeps <= 40 bytes per agent per step; checkpointed
reverse mode peaks at <= 10% of plain reverse mode (at the largest T); forward mode's peak
grows by <= 50 MiB from the smallest to the largest T. The time ratio has no target; for
reference it prints how many step evaluations the revolve schedule does per step.

Run: ``python bench/memory.py`` (N = 1e5, T = 100 and 1000: plain reverse mode keeps about
1.7 GB at T = 1000), ``--agents N --steps 100,1000`` to override, ``--quick`` for N = 1e4.
Exit status 1 if a target is missed or the gradients disagree.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import add_malloc_option, best_of, malloc_from, print_header

import minidiff as md
from minidiff.checkpointing import default_snapshots
from minidiff.memory import measure, tape_memory
from minidiff.models import cont
from minidiff.revolve import revolve_schedule, schedule_cost

THETA = cont.BENCHMARK_PARAMS
SETTINGS = dict(cont.BENCHMARK_SETTINGS)

TAPE_BYTES_TARGET = 40.0          # bytes per agent per step
CHECKPOINT_RATIO_TARGET = 0.10    # checkpointed peak / plain peak
FORWARD_GROWTH_TARGET = 50 * 2**20  # bytes, smallest T to largest T

MiB = 2**20


def run_size(n_agents: int, n_steps: int, snapshots: int | None, seed: int,
             repeat: int) -> dict[str, Any]:
    """Every measurement at one T (each run separately, so no two are alive at once)."""
    noise = cont.Noise(seed, n_agents, s=SETTINGS["s"])  # each step drawn when it runs
    theta = md.asarray(list(THETA))
    s = default_snapshots(n_steps) if snapshots is None else snapshots

    def plain(th: Any) -> Any:
        return cont.realised_variance(th, n_timesteps=n_steps, n_agents=n_agents, rng=noise,
                                      **SETTINGS)

    def checkpointed(th: Any) -> Any:
        return cont.realised_variance(th, n_timesteps=n_steps, n_agents=n_agents, rng=noise,
                                      checkpointed=True, snapshots=s, **SETTINGS)

    r: dict[str, Any] = {"T": n_steps, "snapshots": s}
    r["tape"] = tape_memory(plain, theta)["bytes_peak"]
    r["tape_ckpt"] = tape_memory(checkpointed, theta)["bytes_peak"]
    fwd = measure(md.jacfwd(plain), theta)
    rev = measure(md.grad(plain), theta)
    ckpt = measure(md.grad(checkpointed), theta)
    r["peak_fwd"], r["peak_rev"], r["peak_ckpt"] = fwd.peak_bytes, rev.peak_bytes, ckpt.peak_bytes
    g_fwd, g_rev, g_ckpt = (np.asarray(md.to_host(m.result)) for m in (fwd, rev, ckpt))
    scale = np.max(np.abs(g_fwd))
    r["grad_diff"] = float(max(np.max(np.abs(g_rev - g_fwd)), np.max(np.abs(g_ckpt - g_rev)))
                           / scale)
    del fwd, rev, ckpt
    r["time_rev"] = best_of(lambda: md.grad(plain)(theta), repeat)[0]
    r["time_ckpt"] = best_of(lambda: md.grad(checkpointed)(theta), repeat)[0]
    # step evaluations: the schedule's advances and turns, plus the forward pass's extra
    # unrecorded last step (state T from state T-1); plain reverse mode runs each step once
    r["evaluations"] = (schedule_cost(revolve_schedule(n_steps, s)) + 1) / n_steps
    return r


def _status(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, help="N (default 100000; --quick: 10000)")
    parser.add_argument("--steps", default="100,1000",
                        help="comma-separated T values (default 100,1000)")
    parser.add_argument("--snapshots", type=int, help="checkpoint snapshots (default ⌈√T⌉)")
    parser.add_argument("--quick", action="store_true", help="a small run: N = 10000")
    parser.add_argument("--repeat", type=int, default=1,
                        help="untraced grad timings per variant, the best kept (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    add_malloc_option(parser)
    args = parser.parse_args(argv)
    try:
        steps = sorted({int(t) for t in args.steps.split(",")})
    except ValueError:
        parser.error(f"--steps: expected comma-separated integers, got {args.steps!r}")
    if steps[0] < 1:
        parser.error("--steps: every T must be >= 1")
    n_agents = args.agents or (10_000 if args.quick else 100_000)
    malloc_note = malloc_from(args)

    started = time.perf_counter()
    print_header(malloc_note)
    print(f"workload: Cont market (minidiff.models.cont, {SETTINGS}), N = {n_agents} agents, "
          f"T in {steps}, streamed noise, theta = {THETA}, seed {args.seed}; snapshots "
          f"{args.snapshots or 'ceil(sqrt(T))'}; peaks by tracemalloc, times untraced "
          f"(best of {args.repeat})\n")
    rows = [run_size(n_agents, t, args.snapshots, args.seed, args.repeat) for t in steps]

    print(f"{'T':>6} {'snaps':>5} {'tape B/agent/step':>18} {'ckpt tape':>10} "
          f"{'peak MiB: jacfwd':>17} {'grad':>9} {'ckpt grad':>10} {'ckpt/grad':>10} "
          f"{'grad s':>8} {'ckpt s':>8} {'ratio':>6} {'evals/step':>11}")
    for r in rows:
        print(f"{r['T']:>6} {r['snapshots']:>5} {r['tape'] / (n_agents * r['T']):>18.2f} "
              f"{r['tape_ckpt'] / (n_agents * r['T']):>10.3f} {r['peak_fwd'] / MiB:>17.1f} "
              f"{r['peak_rev'] / MiB:>9.1f} {r['peak_ckpt'] / MiB:>10.1f} "
              f"{100 * r['peak_ckpt'] / r['peak_rev']:>9.1f}% {r['time_rev']:>8.2f} "
              f"{r['time_ckpt']:>8.2f} {r['time_ckpt'] / r['time_rev']:>6.2f} "
              f"{r['evaluations']:>11.2f}")

    first, last = rows[0], rows[-1]
    per_step = max(r["tape"] / (n_agents * r["T"]) for r in rows)
    ratio = last["peak_ckpt"] / last["peak_rev"]
    tape_ratio = last["tape_ckpt"] / last["tape"]
    growth = last["peak_fwd"] - first["peak_fwd"]
    time_ratio = last["time_ckpt"] / last["time_rev"]
    grad_diff = max(r["grad_diff"] for r in rows)
    checks = [per_step <= TAPE_BYTES_TARGET, ratio <= CHECKPOINT_RATIO_TARGET,
              growth <= FORWARD_GROWTH_TARGET, grad_diff <= 1e-10]
    span, at = f"T = {first['T']} -> {last['T']}", f"T = {last['T']}"

    def line(label: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else _status(ok)
        print(f"{label:<60} {measured:>12}   {target:<10} {verdict}".rstrip())

    print()
    line("measure", "measured", "target")
    line("tape bytes per agent per step (largest over T)", f"{per_step:.2f}", "<= 40",
         checks[0])
    line(f"checkpointed / plain grad peak memory ({at})", f"{100 * ratio:.1f}%", "<= 10%",
         checks[1])
    line("  the same for the tapes alone", f"{100 * tape_ratio:.1f}%")
    line(f"forward-mode peak growth, {span}", f"{growth / MiB:+.2f} MiB", "<= 50 MiB",
         checks[2])
    line(f"recomputation: checkpointed grad time / grad time ({at})", f"{time_ratio:.2f}x",
         "(none)")
    line("  step evaluations per step (plain reverse mode: 1)", f"{last['evaluations']:.2f}")
    line("max relative gradient difference (grad, ckpt, jacfwd)", f"{grad_diff:.1e}",
         "<= 1e-10", checks[3])
    print(f"\n{'all targets met' if all(checks) else 'SOME TARGETS MISSED'}; "
          f"total {time.perf_counter() - started:.1f}s")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
