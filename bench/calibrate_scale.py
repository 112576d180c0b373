"""``minidiff calibrate`` end to end, and how the per-sample work scales out.

Parts (``--parts``, comma separated; all by default):

* ``default``: the wall-clock time of ``minidiff calibrate`` with no options (the README's main
  job: the embedded random-walk default, including Python's start-up, the fit, the table and the
  figure), run as a subprocess, and whether every true value lies inside its 90% interval.
  Target: under 60 s on two cores.
* ``scale``: samples per second of GVI steps on the tutorial's Cont setup (N = ``--agents``
  agents, T = 100, s = 0.1, k = 5, MMD loss on the returns, log₁₀ parameters, a diagonal
  Gaussian q, mixed mode: one ``jacfwd`` pass per sample) with the serial executor, a process
  pool of 2, and Dask ``LocalCluster``s of 1 and 2 single-threaded workers, side by side in
  one run; each executor's start-up is printed apart and excluded (one warm-up step), then
  ``--repeat`` steps of ``--samples`` samples are timed. Also Dask's own per-task overhead:
  the time per task of mapping a function that does nothing over ``--tasks`` tasks and
  gathering the results, on the 1-worker cluster, against the work of one task (a chunk: the
  step's samples cut into one batched simulation per worker), and what that means for a
  cluster.

Run: ``python bench/calibrate_scale.py`` (a few minutes), ``--parts scale --agents 100000``.
On a CuPy machine add ``--backend cupy --agents 1000000`` (the workers use the driver's backend).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import add_malloc_option, malloc_from, print_header

import minidiff as md
from minidiff import inference as inf
from minidiff.models import cont

TRUE_LOG10 = [math.log10(v) for v in (1.0, 0.5, 1.0, 0.7)]  # the tutorial's (μ, σ_ν, σ, η)


def part_default() -> None:
    print("\n== default: `minidiff calibrate` with no options, as a subprocess ==")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [sys.executable, "-m", "minidiff", "calibrate", "--quiet", "--json", str(out)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(f"failed ({done.returncode}): {done.stderr.strip()}")
            return
        figure = (Path(tmp) / "calibrate.png").exists()
        params = json.loads(out.read_text())["parameters"]
    inside = all(p["q05"] <= p["true"] <= p["q95"] for p in params)
    print(f"wall clock {seconds:.1f} s (target < 60 s); figure drawn: {figure}; every true "
          f"value inside its 90% interval: {inside}")
    for p in params:
        print(f"  {p['name']}: true {p['true']:g}, mean {p['mean']:.4g} ± {p['sd']:.2g}, "
              f"90% [{p['q05']:.4g}, {p['q95']:.4g}]")


def cont_loss(n_agents: int) -> Any:
    """ℓ(θ, rng) on log₁₀ parameters: MMD² between simulated and observed returns."""

    def simulate(theta: Any, rng: Any) -> Any:
        return cont.simulate(md.power(10.0, theta), n_timesteps=100, n_agents=n_agents,
                             rng=rng, s=0.1, k=5.0)

    distance = inf.mmd(simulate(md.asarray(TRUE_LOG10), md.random.default_rng(0)))

    def loss(theta: Any, rng: Any) -> Any:
        return distance(simulate(theta, rng))

    return loss


def time_steps(executor: Any, loss: Any, samples: int, repeat: int) -> tuple[float, float]:
    """(seconds of the warm-up step, the executor's start included; samples per second over
    ``repeat`` further steps)."""
    family = inf.DiagonalGaussian(4, loc=md.asarray(TRUE_LOG10), scale=0.05)
    objective = inf.Objective(loss, inf.Normal(md.zeros((4,)), 1.0), family, w=0.001,
                              n_samples=samples, mode="forward", seed=0, on_nan="skip",
                              executor=executor)
    params = family.init()
    start = time.perf_counter()
    objective.estimate(params, 0)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for step in range(1, repeat + 1):
        objective.estimate(params, step)
    return warm, samples * repeat / (time.perf_counter() - start)


def _nothing(x: int) -> int:
    return x


def _worker_malloc() -> None:
    """The driver's malloc tuning (``_common.tune_malloc``) in a worker process, so that the
    workers allocate as the serial run does (defined here: pickled by value)."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if hasattr(libc, "mallopt"):
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
        libc.mallopt(-2, 64 << 20)  # M_TOP_PAD


def part_scale(n_agents: int, samples: int, repeat: int, tasks: int, tune: bool) -> None:
    print(f"\n== scale: GVI steps on Cont (N = {n_agents}, T = 100, MMD, mixed mode), "
          f"{samples} samples per step, {repeat} timed steps ==")
    loss = cont_loss(n_agents)
    rows = []
    serial_warm, serial_rate = time_steps(None, loss, samples, repeat)
    rows.append(("serial", serial_warm, serial_rate))
    tuned = tune  # the workers allocate as the driver does (--tune-malloc, on by default)
    with inf.ProcessExecutor(workers=2, initializer=_worker_malloc if tuned else None) as pool:
        warm, rate = time_steps(pool, loss, samples, repeat)
        rows.append(("processes, 2 workers", warm, rate))
    overhead = None
    for workers in (1, 2):
        with inf.DaskExecutor(workers=workers) as dask:
            if tuned:
                dask.client.run(_worker_malloc)
            warm, rate = time_steps(dask, loss, samples, repeat)
            rows.append((f"dask LocalCluster, {workers} worker{'s' * (workers > 1)}", warm,
                         rate))
            if workers == 1:
                client = dask.client
                client.gather(client.map(_nothing, range(tasks), pure=False))  # warm
                start = time.perf_counter()
                client.gather(client.map(_nothing, range(tasks), pure=False))
                overhead = (time.perf_counter() - start) / tasks
    print(f"{'executor':30s} {'start + 1st step s':>19s} {'samples/s':>10s} {'/ serial':>9s}")
    for name, warm, rate in rows:
        print(f"{name:30s} {warm:19.2f} {rate:10.2f} {rate / serial_rate:9.2f}")
    per_sample = 1.0 / serial_rate
    chunk = samples / 2 * per_sample  # one worker's share of a step, on 2 workers
    print(f"Dask per-task overhead (map + gather of a no-op, {tasks} tasks, 1 worker): "
          f"{1e3 * overhead:.2f} ms per task; a task is a chunk of the step's samples (one per "
          f"worker), here {samples // 2} samples = {1e3 * chunk:.0f} ms of work on 2 workers: "
          f"overhead {overhead / chunk:.1%} of a chunk")
    print(f"on a cluster of W workers each task is {samples} / W samples: the overhead stays "
          f"below 10% of a chunk while a chunk has at least "
          f"{max(1, math.ceil(10 * overhead / per_sample))} samples (W ≤ "
          f"{max(1, samples * per_sample // (10 * overhead)):.0f} for {samples} samples per "
          f"step); beyond that, more samples per step keep the workers busy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="default,scale")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--backend", default=None, help="array backend (default: current)")
    add_malloc_option(parser)
    args = parser.parse_args()
    if args.backend:
        md.set_backend(args.backend)
    malloc_note = malloc_from(args)
    print_header(malloc_note)
    print("note: timings are wall-clock on whatever else the machine is running")
    parts = args.parts.split(",")
    if "default" in parts:
        part_default()
    if "scale" in parts:
        part_scale(args.agents, args.samples, args.repeat, args.tasks,
                   malloc_note.startswith("tuned"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
