"""The figure of ``minidiff memory --plot`` (and of tutorial 1): cost against T and against the
number of parameters.

Three panels, log-log:

* peak memory against the number of time steps T, one line per mode, each labelled with its
  measured slope (peak ∝ T^slope, least squares over the sweep), with grey guide lines of
  slope 1 (∝ T) and 1/2 (∝ √T) for the eye;
* wall time against T;
* peak memory and wall time against the number of parameters P at one T: forward mode carries
  one tangent per parameter, so its cost grows like P; reverse mode's one backward pass does
  not depend on P. The P parameters enter the workload's own ``d`` through a fixed linear map
  (:func:`widen`), so the simulation is the same at every P and only the derivative's width
  changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import shape_of
from ..memory import measure
from ..ops import add, asarray, matmul, multiply, zeros
from ..transforms import grad, jacfwd

__all__ = ["ParamRow", "widen", "run_parameter_sweep", "slope", "draw"]


@dataclass
class ParamRow:
    """What one number of parameters P measured: peak bytes and seconds per mode."""

    n_params: int
    n_steps: int
    peak: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def widen(problem: Any, n_params: int) -> tuple[Any, Any]:
    """The problem's loss as a function of φ of shape (P,): θ = θ₀ ⊙ (1 + W φ), with W the
    (d, P) matrix whose column j is e_{j mod d} / ⌈P/d⌉. At φ = 0 it is the original loss at
    θ₀. Returns (loss of φ, φ = zeros(P))."""
    theta0 = problem.theta
    d = math.prod(shape_of(theta0))
    per = math.ceil(n_params / d)
    w = asarray([[1.0 / per if j % d == i else 0.0 for j in range(n_params)] for i in range(d)])

    def loss(phi: Any) -> Any:
        return problem.loss(multiply(theta0, add(1.0, matmul(w, phi))), False, None)

    return loss, zeros((n_params,))


def run_parameter_sweep(workload: Any, n_agents: int, n_steps: int, counts: Sequence[int], *,
                        seed: int = 0) -> list[ParamRow]:
    """Peak memory and time of ``jacfwd`` (forward) and ``grad`` (reverse) for each P."""
    problem = workload.build(n_agents, n_steps, seed)
    warm, phi = widen(problem, counts[0])
    jacfwd(warm)(phi)  # fill the interpreter's caches before anything is measured
    grad(warm)(phi)
    rows = []
    for p in counts:
        loss, phi = widen(problem, p)
        row = ParamRow(p, n_steps)
        for mode, fn in (("forward", jacfwd(loss)), ("reverse", grad(loss))):
            m = measure(fn, phi)
            row.peak[mode], row.seconds[mode] = m.peak_bytes, m.seconds
        rows.append(row)
    return rows


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of log y against log x."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-300)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def _guides(ax: Any, xs: Sequence[float], y0: float) -> None:
    """Grey lines ∝ T and ∝ √T through (xs[0], y0)."""
    for power, style, label in ((1.0, "--", "guide ∝ T"), (0.5, ":", "guide ∝ √T")):
        ax.plot([xs[0], xs[-1]], [y0, y0 * (xs[-1] / xs[0]) ** power], style, color="grey",
                lw=1, label=label)


def draw(fig: Any, rows: Sequence[Any], param_rows: Sequence[ParamRow], labels: dict[str, str],
         title: str = "") -> None:
    """Draw the three panels on ``fig`` (a matplotlib Figure). ``rows``: the T sweep's
    :class:`~minidiff.cli.memory.Row` s (two or more T); ``labels``: mode → legend name."""
    memory_ax, time_ax, param_ax = fig.subplots(1, 3)
    ts = [r.n_steps for r in rows]
    for mode, label in labels.items():
        peaks = [r.peak[mode] / 2**20 for r in rows]
        memory_ax.plot(ts, peaks, "o-", label=f"{label}: slope {slope(ts, peaks):.2f}")
        secs = [r.seconds[mode] for r in rows]
        time_ax.plot(ts, secs, "o-", label=f"{label}: slope {slope(ts, secs):.2f}")
    tape = [r.tape_peak / 2**20 for r in rows]
    memory_ax.plot(ts, tape, "k.-", lw=0.8,
                   label=f"the tape (reverse): slope {slope(ts, tape):.2f}")
    _guides(memory_ax, ts, rows[0].peak["reverse"] / 2**20)
    _guides(time_ax, ts, rows[0].seconds["reverse"])
    memory_ax.set_ylabel("peak memory (MiB)")
    time_ax.set_ylabel("wall time, memory traced (s)")
    memory_ax.set_title("memory against T (slope: peak ∝ T^slope)")
    time_ax.set_title("time against T")
    for ax in (memory_ax, time_ax):
        ax.set_xlabel("time steps T")
    ps = [r.n_params for r in param_rows]
    for mode, color in (("forward", "C1"), ("reverse", "C2")):
        peaks = [r.peak[mode] / 2**20 for r in param_rows]
        secs = [r.seconds[mode] for r in param_rows]
        param_ax.plot(ps, peaks, "o-", color=color,
                      label=f"{labels[mode]}, memory (MiB): slope {slope(ps, peaks):.2f}")
        param_ax.plot(ps, secs, "s--", color=color,
                      label=f"{labels[mode]}, time (s): slope {slope(ps, secs):.2f}")
    y0 = param_rows[0].peak["forward"] / 2**20
    param_ax.plot([ps[0], ps[-1]], [y0, y0 * ps[-1] / ps[0]], "--", color="grey", lw=1,
                  label="guide ∝ P")
    param_ax.set_xlabel("number of parameters P")
    param_ax.set_ylabel("peak memory (MiB) or wall time (s)")
    param_ax.set_title(f"cost against P at T = {param_rows[0].n_steps}")
    for ax in (memory_ax, time_ax, param_ax):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    if title:
        fig.suptitle(title)
