"""``minidiff memory``: how the memory of each mode of AD grows with the length of a simulation.

For each T of a sweep it measures (:func:`minidiff.memory.measure`: tracemalloc on NumPy, the
memory pool on CuPy) the primal, ``jacfwd``, ``grad`` and ``grad`` with the time loop in
``checkpointed_loop``, and reads both tapes with :func:`minidiff.memory.tape_memory`. What to
expect: forward mode's peak does not depend on T, reverse mode's grows like T, checkpointed
reverse mode's like √T, for a constant factor more time (see ``DESCRIPTION``).

Workloads live in :data:`WORKLOADS`; a model adds itself with :func:`register_workload`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import backend as _backend
from ..checkpointing import default_snapshots
from ..core import shape_of
from ..memory import measure, tape_memory
from ..models import cont
from ..ops import asarray, to_host
from ..transforms import grad, jacfwd
from .memory_figure import draw, run_parameter_sweep
from .options import integer_list_option, integer_option

__all__ = ["MODES", "Workload", "Problem", "WORKLOADS", "register_workload", "Row",
           "run_sweep", "format_table", "explain", "plot", "configure_parser", "command"]

MODES = ("primal", "forward", "reverse", "checkpointed")
LABELS = {
    "primal": "primal",
    "forward": "forward (jacfwd)",
    "reverse": "reverse (grad)",
    "checkpointed": "checkpointed grad",
}
WHY = {
    "forward": "each step's tangents are dropped with its values, so nothing accumulates",
    "reverse": "the tape keeps every step's residuals until the backward pass reads them",
    "checkpointed": "it keeps only its snapshots of the state (about √T of them: slope 0.5) "
                    "and one step's tape at a time, a fixed cost that flattens the slope",
}


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One simulation, ready to differentiate: its parameters and its loss.

    ``loss(theta, checkpointed, snapshots)`` runs the time loop plainly or, with
    ``checkpointed=True``, through ``checkpointed_loop`` with that many snapshots.
    """

    theta: Any
    loss: Callable[[Any, bool, int | None], Any]
    param_names: tuple[str, ...]


@dataclass(frozen=True)
class Workload:
    """A family of simulations: ``build(n_agents, n_steps, seed)`` makes one ``Problem``.

    Its random numbers must not grow with T (draw each step's from a keyed stream), or the
    sweep measures the noise rather than the mode of AD.
    """

    name: str
    title: str
    build: Callable[[int, int, int], Problem]


WORKLOADS: dict[str, Workload] = {}

DESCRIPTION = """\
Sweep the number of time steps T of a simulation at a fixed number of agents N and measure, for
each T, the peak memory (tracemalloc on NumPy, the memory pool on CuPy) and wall time of:

  primal             the loss on plain arrays
  forward (jacfwd)   forward mode, one tangent per parameter, all in one pass
  reverse (grad)     reverse mode, one tape for the whole simulation
  checkpointed grad  reverse mode with the time loop in checkpointed_loop (S snapshots)

and the tape's bytes per agent per step. Forward mode stays flat in T, reverse mode grows like
T, checkpointed reverse mode like sqrt(T); a short explanation with the measured growth follows
the table."""


def register_workload(workload: Workload) -> Workload:
    """Make ``workload`` available as ``minidiff memory --workload NAME``."""
    WORKLOADS[workload.name] = workload
    return workload


def _build_cont(n_agents: int, n_steps: int, seed: int) -> Problem:
    """The realised variance of models/cont.py's busy market, each step's noise drawn from its
    own keyed stream when the step runs."""
    noise = cont.Noise(seed, n_agents, s=cont.BENCHMARK_SETTINGS["s"])

    def loss(theta: Any, checkpointed: bool, snapshots: int | None) -> Any:
        return cont.realised_variance(theta, n_timesteps=n_steps, n_agents=n_agents, rng=noise,
                                      checkpointed=checkpointed, snapshots=snapshots,
                                      **cont.BENCHMARK_SETTINGS)

    return Problem(asarray(list(cont.BENCHMARK_PARAMS)), loss, cont.PARAM_NAMES)


register_workload(Workload(
    "cont", "Cont (2007) volatility-clustering market (models/cont.py), streamed noise",
    _build_cont))


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """What one T measured: peak bytes and seconds per mode, and both tapes' peak bytes."""

    n_agents: int
    n_steps: int
    snapshots: int
    peak: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    tape_peak: int = 0
    checkpointed_tape_peak: int = 0
    gradient_difference: float = 0.0
    n_params: int = 0

    def per_agent_step(self, nbytes: int) -> float:
        return nbytes / (self.n_agents * max(self.n_steps, 1))


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool | None) -> Any:
    """A tqdm bar on stderr (``enabled=None``: only when stderr is a terminal), or nothing
    when tqdm is not installed or the bar is off."""
    if enabled is False:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, file=sys.stderr, unit="step", disable=None if enabled is None
                else False, leave=False, dynamic_ncols=True)


def _relative_difference(a: Any, b: Any) -> float:
    a, b = to_host(a).tolist(), to_host(b).tolist()
    scale = max(max(abs(v) for v in b), 1e-300)
    return max(abs(x - y) for x, y in zip(a, b)) / scale


def run_sweep(workload: Workload, n_agents: int, steps: Sequence[int], *,
              snapshots: int | None = None, seed: int = 0,
              progress: bool | None = None) -> list[Row]:
    """Measure every mode at each T in ``steps`` (one run each). ``snapshots=None``: ⌈√T⌉."""
    def calls_for(problem: Problem, s: int) -> tuple[Callable, Callable, dict[str, Callable]]:
        def plain(theta: Any) -> Any:
            return problem.loss(theta, False, None)

        def checkpointed(theta: Any) -> Any:
            return problem.loss(theta, True, s)

        return plain, checkpointed, {"primal": plain, "forward": jacfwd(plain),
                                     "reverse": grad(plain), "checkpointed": grad(checkpointed)}

    # Warm up: a first call fills the interpreter's caches and free lists (a few hundred kB
    # that tracemalloc would charge to whichever mode ran first).
    warm = workload.build(n_agents, min(steps[0], 10), seed)
    for fn in calls_for(warm, 2)[2].values():
        fn(warm.theta)
    bar = _progress_bar((len(MODES) + 2) * sum(steps), progress)
    rows = []
    try:
        for n_steps in steps:
            problem = workload.build(n_agents, n_steps, seed)
            s = default_snapshots(n_steps) if snapshots is None else snapshots
            plain, checkpointed, calls = calls_for(problem, s)
            row = Row(n_agents, n_steps, s, n_params=math.prod(shape_of(problem.theta)))
            results = {}
            for mode, fn in calls.items():
                bar.set_description(f"T={n_steps} {mode}")
                m = measure(fn, problem.theta)
                row.peak[mode], row.seconds[mode], results[mode] = m.peak_bytes, m.seconds, m.result
                bar.update(n_steps)
            bar.set_description(f"T={n_steps} tapes")
            row.tape_peak = tape_memory(plain, problem.theta)["bytes_peak"]
            bar.update(n_steps)
            row.checkpointed_tape_peak = tape_memory(checkpointed, problem.theta)["bytes_peak"]
            bar.update(n_steps)
            row.gradient_difference = max(
                _relative_difference(results["reverse"], results["forward"]),
                _relative_difference(results["checkpointed"], results["reverse"]))
            rows.append(row)
    finally:
        bar.close()
    return rows


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """One line per T: peak MiB and seconds per mode, tape bytes per agent per step."""
    short = {"primal": "primal", "forward": "forward", "reverse": "reverse",
             "checkpointed": "checkpt"}
    head1 = (f"{'':>7} {'':>6}  {'peak memory (MiB)':^39}  {'wall time (s)':^39}  "
             f"{'tape bytes / agent / step':>25}")
    head2 = (f"{'T':>7} {'snaps':>6}  " + " ".join(f"{short[m]:>9}" for m in MODES) + "  "
             + " ".join(f"{short[m]:>9}" for m in MODES) + f"  {'reverse':>12} {'checkpt':>12}")
    lines = [head1, head2]
    for r in rows:
        lines.append(
            f"{r.n_steps:>7} {r.snapshots:>6}  "
            + " ".join(f"{_mib(r.peak[m]):>9}" for m in MODES) + "  "
            + " ".join(f"{r.seconds[m]:>9.3f}" for m in MODES) + "  "
            + f"{r.per_agent_step(r.tape_peak):>12.2f} "
            + f"{r.per_agent_step(r.checkpointed_tape_peak):>12.3f}")
    return "\n".join(lines)


def growth_exponent(rows: Sequence[Row], mode: str) -> float:
    """The slope of log(peak) against log(T), by least squares: peak ∝ T^slope."""
    xs = [math.log(r.n_steps) for r in rows]
    ys = [math.log(max(r.peak[mode], 1)) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def _shape_of_growth(slope: float) -> str:
    if slope < 0.15:
        return "flat in T"
    if slope < 0.75:
        return "sublinear in T"
    return "about linear in T"


def _para(text: str, indent: str = "") -> str:
    return textwrap.fill(text, 96, initial_indent=indent, subsequent_indent=indent)


def explain(rows: Sequence[Row]) -> str:
    """The lesson, with the measured growth factors and exponents."""
    if len({r.n_steps for r in rows}) < 2:
        return "Give two or more --steps values to see how each mode's memory grows with T."
    first, last = rows[0], rows[-1]
    factor = last.n_steps / first.n_steps
    lines = [_para(f"From T = {first.n_steps} to T = {last.n_steps} ({factor:g}x the steps) "
                   f"peak memory grew by the factor shown; the exponent is the slope of log "
                   f"peak against log T, fitted over all rows (peak ∝ T^slope):")]
    for mode in MODES[1:]:
        growth = last.peak[mode] / max(first.peak[mode], 1)
        slope = round(growth_exponent(rows, mode), 2) + 0.0  # no "-0.00"
        head = f"  {LABELS[mode]:<18} x{growth:<7.3g} ~ T^{slope:<5.2f} "
        body = textwrap.fill(f"{_shape_of_growth(slope)}: {WHY[mode]}", 96,
                             initial_indent=head, subsequent_indent=" " * len(head))
        lines.append(body)
    plain, ckpt = last.tape_peak, last.checkpointed_tape_peak
    time_ratio = last.seconds["checkpointed"] / max(last.seconds["reverse"], 1e-12)
    memory_ratio = last.peak["checkpointed"] / max(last.peak["reverse"], 1)
    lines += [
        _para(f"At T = {last.n_steps} the tape keeps {last.per_agent_step(plain):.1f} bytes "
              f"per agent per step ({_mib(plain)} MiB). With {last.snapshots} snapshots (√T = "
              f"{math.sqrt(last.n_steps):.1f}) the checkpointed tape keeps {_mib(ckpt)} MiB, "
              f"{100 * ckpt / max(plain, 1):.1f}% of that, and the whole run peaks at "
              f"{100 * memory_ratio:.1f}% of plain reverse mode's, for {time_ratio:.2f}x its "
              f"time: the steps between snapshots run again during the backward pass."),
        _para(f"Forward mode carries one tangent per parameter ({first.n_params} here, all "
              f"in one pass), so its memory grows with the number of "
              f"parameters but not with T (and its time with both). Reverse mode's cost does "
              f"not grow with the number of parameters, but its memory grows with T; "
              f"checkpointing buys most of that memory back with recomputation."),
        _para(f"Check: the gradients agree (reverse vs forward, checkpointed vs reverse) to a "
              f"relative {max(r.gradient_difference for r in rows):.1e}. Times are taken while "
              f"memory is traced (tracemalloc slows NumPy code down): read them as upper "
              f"bounds."),
    ]
    return "\n".join(lines[:-3] + ["\n\n".join(lines[-3:])])


def plot(rows: Sequence[Row], param_rows: Sequence[Any], path: str, title: str) -> None:
    """The figure of :mod:`.memory_figure` (memory and time against T with their measured
    slopes, cost against the number of parameters), saved to ``path`` (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17, 5))
    FigureCanvasAgg(fig)
    draw(fig, rows, param_rows, {m: LABELS[m] for m in MODES}, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


_positive_int = integer_option("an integer", 1)
_seed = integer_option("an integer seed", 0)
_step_list = integer_list_option("a step count", 1, "10,100,1000")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The options of ``minidiff memory``."""
    parser.add_argument("--workload", choices=list(WORKLOADS), default="cont",
                        help="the simulation to differentiate (default cont)")
    parser.add_argument("--agents", type=_positive_int, default=10_000, metavar="N",
                        help="number of agents N (default 10000)")
    parser.add_argument("--steps", type=_step_list, default=[10, 100, 1000], metavar="T,T,...",
                        help="comma-separated numbers of time steps (default 10,100,1000)")
    parser.add_argument("--snapshots", type=_positive_int, default=None, metavar="S",
                        help="states checkpointed reverse mode keeps (default ⌈√T⌉ per T)")
    parser.add_argument("--seed", type=_seed, default=0, metavar="SEED",
                        help="random seed, an integer >= 0 (default 0)")
    parser.add_argument("--backend", choices=list(_backend.available_backends()),
                        help="array backend (default: the current one)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw memory and time against T, log-log (needs matplotlib)")
    parser.add_argument("--params", type=_step_list, default=[1, 4, 16, 64], metavar="P,P,...",
                        help="with --plot: numbers of parameters for the figure's cost-against-"
                             "parameters panel, measured at the smallest T (default 1,4,16,64)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (shown on a terminal when tqdm is installed)")


def _backend_context(name: str | None, parser: argparse.ArgumentParser
                     ) -> contextlib.AbstractContextManager[Any]:
    """The chosen backend as a ``with`` context; one that cannot start (CuPy without a GPU,
    say) is a usage error, reported in one line by ``parser.error``."""
    if name is None:
        return contextlib.nullcontext(_backend.get_backend())
    try:
        with _backend.use_backend(name) as backend:  # loads it, or says why it cannot
            pass
    except _backend.BackendError as exc:
        parser.error(f"argument --backend: {exc}")
    return _backend.use_backend(backend)


def command(args: argparse.Namespace, parser: argparse.ArgumentParser,
            emit: Callable[[str], None] = print) -> int:
    """Run ``minidiff memory``: the sweep, the table, the lesson, and the figure if asked."""
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib, which is not installed: "
                         "pip install matplotlib (or minidiff[plot])")
    workload = WORKLOADS[args.workload]
    with _backend_context(args.backend, parser) as b:
        emit(f"minidiff memory: {workload.title}; N = {args.agents} agents, T in "
              f"{', '.join(map(str, args.steps))}, seed {args.seed}, backend {b.name}; "
              f"snapshots {args.snapshots or '⌈√T⌉'}")
        rows = run_sweep(workload, args.agents, args.steps, snapshots=args.snapshots,
                         seed=args.seed, progress=False if args.no_progress else None)
    emit(format_table(rows) + "\n\n" + explain(rows))
    if args.plot is not None:
        with _backend_context(args.backend, parser):
            param_rows = run_parameter_sweep(workload, args.agents, args.steps[0], args.params,
                                             seed=args.seed)
        plot(rows, param_rows, args.plot,
             f"minidiff memory: {args.workload}, N = {args.agents} agents")
        emit(f"figure written to {args.plot}")
    return 0
