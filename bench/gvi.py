"""GVI on the tutorial's simulators: speed and memory of a step, and the full calibrations.

Parts (``--parts``, comma separated; all by default):

* ``speed``: seconds per GVI step on the tutorial's Cont setup (N = 1000 agents, T = 100 steps,
  s = 0.1, k = 5, 10 samples per step, MMD loss, the RealNVP flow of 5 couplings with MLP
  2 → 50 → 50 → 4, prior N(0, I₄) on log₁₀ parameters, w = 0.001) in mixed mode
  (``mode="forward"``) and reverse mode, best of ``--repeat`` steps each; the time of one
  primal simulation of the same 10 samples; their ratios; and the ratio to blackbirds 1.3's
  5.3 s per epoch on that setup (reverse mode, torch 2.13 on CPU, measured by the issue's
  author on a 2-core machine, not in this run: a reference, not a side-by-side figure).
* ``memory``: peak bytes (``minidiff.memory.measure``, tracemalloc) of one GVI step on Cont with
  N = 1e4 at T = 100 and T = 1000, in mixed and reverse mode, with ``--memory-samples`` samples
  (default 2: reverse mode keeps every sample's tape at once). Target: mixed mode's peak at
  T = 1000 within 50 MiB of its peak at T = 100; reverse mode grows with T.
* ``rw``: the random walk of ``minidiff.models.random_walk`` with the energy distance between
  increments as ℓ, a Gaussian q on logit θ, prior N(logit 0.9, 1), w = 1 (the tutorial's
  setting) and ``--rw-w`` (default 0.1, where the data matter more), by pathwise gradients
  (stochastic triples, and the smoothed Bernoulli derivative in mixed mode) and by the score
  function; each fit against the Gaussian closest to the generalised posterior, by quadrature.
* ``cont``: the tutorial's Cont calibration (the flow, AdamW, clip 1.0, w = 0.001, 10 samples)
  for ``--cont-steps`` steps (default 100, the tutorial's epochs; learning rate ``--cont-lr``
  1e-3 decayed by a cosine): the fitted mean and sd of each parameter, the truth's z-score, the
  σ–η correlation and the samples dropped as non-finite (θ far in the prior's tails overflows
  the model: μ = 10^θ₀ enters as exp(μ)). A run in which every sample of a step is non-finite
  stops with the error, which is printed.

Run: ``python bench/gvi.py`` (several minutes), or e.g. ``--parts speed,memory``.
Exit status 1 if the memory target is missed or the two modes' gradients disagree (> 1e-8).
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_malloc_option, best_of, malloc_from, print_header
from scipy import optimize, stats
from scipy.special import expit, logit

import minidiff as md
from minidiff import inference as inf
from minidiff.memory import measure
from minidiff.models import cont, random_walk

MiB = 2**20
BLACKBIRDS_SECONDS_PER_EPOCH = 5.3
TRUE_CONT = [math.log10(v) for v in (1.0, 0.5, 1.0, 0.7)]  # log10 (μ, σ_ν, σ, η)


# ---------------------------------------------------------------------------------------------
# Cont
# ---------------------------------------------------------------------------------------------


def cont_problem(n_agents: int, n_steps: int) -> tuple[Any, Any]:
    """(simulate(θ, rng) on log₁₀ parameters, the MMD loss(θ, rng)) with observed data from the
    tutorial's true parameters (seed 0)."""

    def simulate(theta: Any, rng: Any) -> Any:
        return cont.simulate(md.power(10.0, theta), n_timesteps=n_steps, n_agents=n_agents,
                             rng=rng, s=0.1, k=5.0)

    mmd = inf.mmd(simulate(md.asarray(TRUE_CONT), md.random.default_rng(0)))

    def loss(theta: Any, rng: Any) -> Any:
        return mmd(simulate(theta, rng))

    return simulate, loss


def tutorial_flow() -> inf.RealNVP:
    return inf.RealNVP(4, n_layers=5, hidden=(50, 50))


def cont_objective(loss: Any, mode: str, n_samples: int) -> inf.Objective:
    return inf.Objective(loss, inf.Normal(md.zeros((4,)), 1.0), tutorial_flow(), w=0.001,
                         n_samples=n_samples, mode=mode, seed=0, on_nan="skip")


def jax_peer_seconds(python: str, epochs: int = 5) -> float | None:
    """Seconds per epoch of the JAX-jit GVI (``shared/peers/jax_cont_gvi.py``) on this setup,
    run by ``python`` (an environment with jax); None when it cannot run."""
    repo = Path(__file__).resolve().parents[1]
    peers = [p / "shared" / "peers" / "jax_cont_gvi.py" for p in (repo.parent, repo.parents[1])]
    peer = next((p for p in peers if p.exists()), None)
    if peer is None or not Path(python).exists():
        return None
    done = subprocess.run([python, str(peer), str(epochs)], capture_output=True, text=True)
    found = re.search(r": ([0-9.]+) s/epoch", done.stdout)
    if done.returncode != 0 or found is None:
        print(f"JAX peer did not run: {(done.stderr or done.stdout).strip()[-300:]}")
        return None
    return float(found.group(1))


def part_speed(repeat: int, jax_python: str) -> bool:
    print("\n== speed: one GVI step on the tutorial's Cont (N = 1000, T = 100, 10 samples, "
          "MMD, RealNVP 5 x (2-50-50-4)) ==")
    simulate, loss = cont_problem(1000, 100)
    params = tutorial_flow().init(0)
    theta, _ = tutorial_flow().sample(params, 10, md.random.default_rng(1))
    rows, grads = {}, {}
    for mode, batched in (("forward", True), ("forward", False), ("reverse", False)):
        objective = cont_objective(loss, mode, 10)
        objective.batched = batched
        step = iter(range(10**6))
        rows[mode, batched], _ = best_of(lambda: objective.estimate(params, next(step)),
                                         repeat)
        check = cont_objective(loss, mode, 10)
        check.batched = batched
        grads[mode, batched] = np.concatenate([np.ravel(md.to_host(g)) for g in
                                               inf.tree_leaves(check.estimate(params, 0).grad)])
    primal, _ = best_of(lambda: [simulate(md.getitem(theta, i), md.random.default_rng(i))
                                 for i in range(10)], repeat)
    batched_primal = md.vmap(simulate)
    primal_vmap, _ = best_of(lambda: batched_primal(theta, md.random.default_rng(0).spawn(10)),
                             repeat)
    ref = grads["reverse", False]
    diff = max(float(np.max(np.abs(g - ref)) / np.max(np.abs(ref))) for g in grads.values())
    jax_seconds = jax_peer_seconds(jax_python)
    print(f"{'':34s} {'seconds':>9s} {'/ primal':>9s} {'blackbirds 5.3 s / this':>24s}")
    print(f"{'primal, 10 simulations (loop)':34s} {primal:9.3f} {1.0:9.2f}")
    print(f"{'primal, 10 simulations (vmap)':34s} {primal_vmap:9.3f} {primal_vmap / primal:9.2f}")
    for key, label in ((("forward", True), "GVI step, mixed mode (batched)"),
                       (("forward", False), "GVI step, mixed mode (loop)"),
                       (("reverse", False), "GVI step, reverse mode")):
        print(f"{label:34s} {rows[key]:9.3f} {rows[key] / primal:9.2f} "
              f"{BLACKBIRDS_SECONDS_PER_EPOCH / rows[key]:24.1f}")
    mixed = rows["forward", True]
    print(f"mixed mode loop / batched: {rows['forward', False] / mixed:.2f}; reverse / mixed: "
          f"{rows['reverse', False] / mixed:.2f}; gradients agree to {diff:.1e} (relative, max "
          f"over the flow's parameters)")
    if jax_seconds is None:
        print(f"JAX-jit peer: not run (no jax at {jax_python}; make a bench-only environment, "
              f"e.g. python3 -m venv --system-site-packages /work/venv-jax && "
              f"/work/venv-jax/bin/pip install jax jaxlib, and pass --jax-python)")
    else:
        print(f"JAX-jit peer (reverse mode through jit + lax.scan, same setup, this run): "
              f"{jax_seconds:.4f} s per epoch; minidiff mixed mode (batched) / JAX = "
              f"{mixed / jax_seconds:.2f} (target ≤ 1)")
    return diff < 1e-8


def part_memory(n_agents: int, steps: list[int], n_samples: int) -> bool:
    print(f"\n== memory: peak of one GVI step on Cont, N = {n_agents}, {n_samples} samples, "
          f"tracemalloc ==")
    peaks: dict[tuple[str, int], int] = {}
    print(f"{'T':>6s} {'mixed MiB':>10s} {'reverse MiB':>12s} {'mixed s':>8s} {'reverse s':>10s}")
    for t_steps in steps:
        _, loss = cont_problem(n_agents, t_steps)
        params = tutorial_flow().init(0)
        times = {}
        for mode in ("forward", "reverse"):
            objective = cont_objective(loss, mode, n_samples)
            m = measure(objective.estimate, params, 0)
            peaks[mode, t_steps], times[mode] = m.peak_bytes, m.seconds
            del m
        print(f"{t_steps:6d} {peaks['forward', t_steps] / MiB:10.1f} "
              f"{peaks['reverse', t_steps] / MiB:12.1f} {times['forward']:8.2f} "
              f"{times['reverse']:10.2f}")
    lo, hi = min(steps), max(steps)
    growth = peaks["forward", hi] - peaks["forward", lo]
    ok = growth <= 50 * MiB
    reverse_growth = peaks["reverse", hi] / peaks["reverse", lo]
    print(f"mixed-mode growth T = {lo} -> {hi}: {growth / MiB:.1f} MiB (target <= 50 MiB: "
          f"{'ok' if ok else 'MISSED'}); reverse mode: x{reverse_growth:.1f}; "
          f"reverse / mixed at T = {hi}: x{peaks['reverse', hi] / peaks['forward', hi]:.1f}")
    return ok


def part_cont(n_steps: int, lr: float) -> None:
    print(f"\n== cont: the tutorial's calibration, {n_steps} steps, AdamW (cosine from {lr}), "
          f"clip 1.0, w = 0.001, 10 samples ==")
    _, loss = cont_problem(1000, 100)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow; counted below
            result = inf.calibrate(loss, inf.Normal(md.zeros((4,)), 1.0), tutorial_flow(),
                                   n_samples=10, n_steps=n_steps,
                                   optimizer=inf.chain(inf.clip_by_global_norm(1.0),
                                                       inf.adamw(inf.cosine(lr, n_steps))),
                                   options=inf.RunOptions(w=0.001, on_nan="skip"))
    except inf.NonFiniteError as exc:
        print(f"stopped: {exc}")
        return
    seconds = time.perf_counter() - start
    theta = np.asarray(md.to_host(result.sample(20_000, seed=1)))
    h = result.history
    print(f"{seconds:.1f} s ({seconds / n_steps:.3f} s per step); last 10 steps: MMD² "
          f"{np.mean(h.loss[-10:]):.4f}, KL {np.mean(h.kl[-10:]):.2f}; samples dropped as "
          f"non-finite: {h.n_dropped} of {10 * n_steps}")
    print(f"{'log10':10s} {'truth':>7s} {'q mean':>7s} {'q sd':>6s} {'z':>6s}")
    for j, name in enumerate(("mu", "sigma_nu", "sigma", "eta")):
        mean, sd = theta[:, j].mean(), theta[:, j].std()
        print(f"{name:10s} {TRUE_CONT[j]:7.3f} {mean:7.3f} {sd:6.3f} "
              f"{(mean - TRUE_CONT[j]) / sd:6.2f}")
    print(f"corr(sigma, eta) = {np.corrcoef(theta[:, 2], theta[:, 3])[0, 1]:.2f}")


# ---------------------------------------------------------------------------------------------
# random walk
# ---------------------------------------------------------------------------------------------


def part_rw(w_values: list[float], n_steps: int, t_steps: int) -> None:
    print(f"\n== rw: random walk (models.random_walk, T = {t_steps}), energy distance of "
          f"increments, Gaussian q on logit θ, prior N(logit 0.9, 1), {n_steps} steps ==")
    observed = random_walk.simulate(0.75, n_timesteps=t_steps, rng=md.random.default_rng(7))
    increments = md.getitem(observed, slice(1, None)) - md.getitem(observed, slice(0, -1))
    ed = inf.energy_distance(increments)
    q_hat = float(np.mean((np.asarray(md.to_host(increments)) + 1) / 2))

    def loss(theta: Any, rng: Any) -> Any:
        path = random_walk.simulate(md.sigmoid(md.getitem(theta, 0)), n_timesteps=t_steps,
                                    rng=rng)
        return ed(md.getitem(path, slice(1, None)) - md.getitem(path, slice(0, -1)))

    prior = (float(logit(0.9)), 1.0)
    print(f"{'w':>5s} {'gradient':22s} {'seconds':>8s} {'mean':>7s} {'best':>7s} {'sd':>6s} "
          f"{'best':>6s} {'Δmean/sd':>9s} {'sd ratio':>8s}")
    for w in w_values:
        best_mean, best_sd = best_gaussian(q_hat, t_steps, w, prior)
        for gradient, mode, label in (("pathwise", "triples", "pathwise (triples)"),
                                      ("pathwise", "forward", "pathwise (smoothed)"),
                                      ("score", "auto", "score (leave-one-out)")):
            start = time.perf_counter()
            result = inf.calibrate(loss, inf.Normal(*prior), inf.DiagonalGaussian(1), n_samples=10,
                                   n_steps=n_steps, optimizer=inf.adam(inf.cosine(0.05, n_steps)),
                                   options=inf.RunOptions(w=w, gradient=gradient, mode=mode))
            seconds = time.perf_counter() - start
            mean = float(result.params["loc"][0])
            sd = math.exp(float(result.params["log_scale"][0]))
            print(f"{w:5.2f} {label:22s} {seconds:8.1f} {mean:7.3f} {best_mean:7.3f} "
                  f"{sd:6.3f} {best_sd:6.3f} {(mean - best_mean) / best_sd:9.2f} "
                  f"{sd / best_sd:8.3f}")


def best_gaussian(q_hat: float, t_steps: int, w: float,
                  prior: tuple[float, float]) -> tuple[float, float]:
    """The Gaussian closest in KL(q‖q*) to q* ∝ π exp(−E[ℓ]/w), E[ℓ] = 4[(θ−q̂)² + θ(1−θ)/T]
    on x = logit θ, by Gauss–Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()

    def objective(v: np.ndarray) -> float:
        m, s = v[0], math.exp(v[1])
        x = m + s * nodes
        t = expit(x)
        expected = 4 * ((t - q_hat) ** 2 + t * (1 - t) / t_steps)
        return float(np.sum(weights * (stats.norm(m, s).logpdf(x)
                                       - stats.norm(*prior).logpdf(x) + expected / w)))

    fit = optimize.minimize(objective, [prior[0], 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-13})
    return float(fit.x[0]), math.exp(float(fit.x[1]))


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="speed,memory,rw,cont")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jax-python", default="/work/venv-jax/bin/python",
                        help="a Python with jax, to run the JAX-jit peer (speed part)")
    parser.add_argument("--memory-agents", type=int, default=10_000)
    parser.add_argument("--memory-steps", default="100,1000")
    parser.add_argument("--memory-samples", type=int, default=2)
    parser.add_argument("--rw-w", type=float, default=0.1)
    parser.add_argument("--rw-steps", type=int, default=300)
    parser.add_argument("--rw-T", type=int, default=50)
    parser.add_argument("--cont-steps", type=int, default=100)
    parser.add_argument("--cont-lr", type=float, default=1e-3)
    add_malloc_option(parser)
    args = parser.parse_args()
    print_header(malloc_from(args))
    print("note: timings are wall-clock on whatever else the machine is running")
    parts = args.parts.split(",")
    ok = True
    if "speed" in parts:
        ok &= part_speed(args.repeat, args.jax_python)
    if "memory" in parts:
        ok &= part_memory(args.memory_agents, [int(t) for t in args.memory_steps.split(",")],
                          args.memory_samples)
    if "rw" in parts:
        part_rw([1.0, args.rw_w], args.rw_steps, args.rw_T)
    if "cont" in parts:
        part_cont(args.cont_steps, args.cont_lr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
