"""``minidiff calibrate``: fit a posterior over an agent-based model's parameters by GVI.

    minidiff calibrate                                   # the embedded default (random walk)
    minidiff calibrate --model sir --steps 300 --plot sir.png
    minidiff calibrate --model mypackage.abm:simulate --true-params 0.2,1.5 --data obs.csv
    minidiff calibrate --model cont --data sp500 --timesteps 500    # real returns (arch)

The pieces: the model (a built-in one, or ``module:function`` with the models' contract
``simulate(params, *, rng, ...)``; naming a module imports it, which runs its code, so name
only modules you trust: it is looked up among the installed packages first, then in the
current folder, which is on the import path only while that module is imported), the
observations (simulated at ``--true-params`` with ``--data-seed``, or read from ``--data
FILE.csv``: one row per time step, one column per observed variable, a header line allowed
when it is not numeric; or ``--data sp500``: the last ``--timesteps`` daily S&P 500
returns of the ``arch`` package's bundled data, see ``minidiff.models.datasets``), the
model's prior on the unconstrained space and its map ``NATURAL`` to natural parameters
(both declared by the model, :mod:`minidiff.models.registry`), a loss between the simulated
and observed series, and ``minidiff.inference.calibrate`` (executors, checkpoints, progress).
At the end it prints, per parameter in natural units, the true value where known, the
posterior mean ± sd, the 90% interval, and the posterior sd over the prior's (small where the
data identify the parameter); ``--plot`` draws the objective, the posterior-predictive bands and
q against the prior, ``--json`` writes all of it.

Losses (``--loss``): ``model`` (the model's own ``loss(simulated, observed)``), ``mmd``,
``energy`` (distances between the distributions of the observed points: each time step is a
point; for the random walk its increments are, since a path's positions are not exchangeable)
and ``mse``. The model, data and loss are set up in :mod:`.calibrate_setup`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from .. import inference as inf
from ..backend import get_backend
from ..inference import executors, objective, plots
from ..ops import asarray, getitem, mean, sqrt, stack
from ..random import default_rng
from .calibrate_checks import diagnostics, run_coverage, screen_start
from .calibrate_setup import LOSSES, MODELS, Model, Problem, UsageError, build_problem, load_model
from .options import integer_option

__all__ = ["DESCRIPTION", "configure_parser", "command"]

DESCRIPTION = __doc__.split("\n\n", 1)[1]
FAMILIES = ("gaussian", "fullrank", "flow")
N_POSTERIOR, N_PREDICTIVE = 10_000, 40
FLOW_LR = 1e-3  # the flow's default learning rate (the tutorial's): a coupling MLP's many
#                 weights each move by about lr per Adam step, so its scale moves by far more
# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


_positive_int = integer_option("an integer", 1)
_seed = integer_option("an integer seed", 0)


def _number(low: float, strict: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected a finite number {'>' if strict else '≥'}"
                                             f" {low:g}, got {text}")
        return value

    return parse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The options of ``minidiff calibrate`` (defaults per model: each model's
    ``CALIBRATION``, :mod:`minidiff.models.registry`)."""
    g = parser.add_argument_group("model and data")
    g.add_argument("--model", default="random_walk", metavar="NAME|module:function",
                   help=f"{', '.join(MODELS)} (default random_walk), or module:function "
                        f"(imports that module, which runs its code; looked up in the "
                        f"installed packages, then the current folder)")
    g.add_argument("--true-params", metavar="V,V,...",
                   help="natural parameters of the synthetic data (default DEFAULT_PARAMS)")
    g.add_argument("--data-seed", type=_seed, default=0, help="seed of the synthetic data (0)")
    g.add_argument("--data", metavar="FILE.csv|sp500", help="observed series instead (rows: "
                   "time), or sp500: the last T daily S&P 500 returns shipped by arch (the "
                   "'data' extra)")
    g.add_argument("--timesteps", type=_positive_int, metavar="T", help="n_timesteps of the "
                   "model (default per model)")
    g.add_argument("--agents", type=_positive_int, metavar="N", help="n_agents of the model")
    g = parser.add_argument_group("method")
    g.add_argument("--loss", choices=LOSSES, help="model, mmd, energy or mse (default per "
                   "model: energy for random_walk)")
    g.add_argument("--family", choices=FAMILIES, default="gaussian",
                   help="variational family (default gaussian)")
    g.add_argument("--samples", type=_positive_int, help="θ draws per step")
    g.add_argument("--steps", type=_positive_int, help="optimisation steps")
    g.add_argument("--simulations", type=_positive_int, default=1, metavar="M",
                   help="runs per θ draw that the model's own loss compares with the data, "
                        "as an ensemble (M, ...) (default 1; sir: a synthetic likelihood)")
    g.add_argument("--lr", type=_number(0.0, True), help="Adam learning rate (cosine decay; "
                   "default per model, at most 1e-3 for the flow)")
    g.add_argument("--w", type=_number(0.0, True), help="weight of the KL term")
    g.add_argument("--mode", choices=objective.MODES, help="auto, forward, reverse, "
                   "triples (default per model)")
    g.add_argument("--gradient", choices=objective.GRADIENTS, default="pathwise")
    g.add_argument("--seed", type=_seed, default=0, help="the run's seed (default 0)")
    g.add_argument("--screen", type=int, metavar="M", help="prior draws screened before the "
                   "gradient steps; q starts at the best tenth (default 200; 0: start at the "
                   "prior; random_walk: 0)")
    g.add_argument("--coverage", type=int, metavar="R", help="instead of one fit: simulation-"
                   "based calibration over R ≥ 2 data sets simulated at prior draws (coverage "
                   "of the 50%%/90%% intervals, rank histograms with --plot)")
    g = parser.add_argument_group("scale-out")
    g.add_argument("--executor", choices=executors.EXECUTORS, default="serial")
    g.add_argument("--workers", type=_positive_int, help="processes or Dask workers")
    g.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler's address")
    g.add_argument("--connect-timeout", type=_number(0.0, True), metavar="SECONDS",
                   help=f"how long to wait for the scheduler at --scheduler (default "
                        f"{executors.CONNECT_TIMEOUT:g})")
    g = parser.add_argument_group("run state and output")
    g.add_argument("--checkpoint", metavar="DIR", help="write the run state to DIR")
    g.add_argument("--checkpoint-every", type=_positive_int, default=10, metavar="K")
    g.add_argument("--resume", action="store_true", help="continue the run in --checkpoint")
    g.add_argument("--plot", metavar="FILE.png", default=None,
                   help="the figure (default calibrate.png; --no-plot for none)")
    g.add_argument("--no-plot", action="store_true", help="draw no figure")
    g.add_argument("--json", metavar="FILE", help="write the results as JSON")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _validate(args: argparse.Namespace, model: Model) -> argparse.Namespace:
    s = model.calibration
    args = argparse.Namespace(**vars(args))
    flow_lr = min(s.lr, FLOW_LR) if args.family == "flow" else s.lr
    for name, default in (("loss", s.loss), ("samples", s.samples), ("steps", s.steps),
                          ("lr", flow_lr), ("w", s.w), ("mode", s.mode),
                          ("screen", s.screen)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.gradient == "score":
        args.mode = "auto"
    if args.data is not None and args.true_params is not None:
        raise UsageError("--data and --true-params are alternatives; give one")
    if args.resume and args.checkpoint is None:
        raise UsageError("--resume needs --checkpoint DIR, the folder to resume from")
    if args.scheduler is not None and args.executor != "dask":
        raise UsageError("--scheduler is the address of a Dask scheduler: add --executor dask")
    if args.connect_timeout is not None and args.scheduler is None:
        raise UsageError("--connect-timeout is how long to wait for the scheduler at "
                         "--scheduler ADDRESS: add --executor dask --scheduler ADDRESS")
    if args.connect_timeout is None:
        args.connect_timeout = executors.CONNECT_TIMEOUT
    if args.workers is not None and args.executor == "serial":
        raise UsageError("--workers needs --executor processes or dask")
    if args.executor != "serial" and args.mode == "reverse":
        raise UsageError("--mode reverse keeps one tape on the driver; use --mode forward "
                         "with --executor")
    if args.screen < 0 or args.screen == 1:
        raise UsageError(f"--screen M: M must be 0 (no screening) or ≥ 2 prior draws, got "
                         f"{args.screen}")
    if args.coverage is not None:
        if args.coverage < 2:
            raise UsageError(f"--coverage R: coverage is a share over data sets, so R must be "
                             f"≥ 2 (100 or more for a figure within a few percent), got "
                             f"{args.coverage}")
        if args.data is not None or args.checkpoint is not None:
            raise UsageError("--coverage simulates its own data sets and runs R fits: it takes "
                             "neither --data nor --checkpoint")
    if args.plot is None and not args.no_plot:
        args.plot = "calibrate.png"
    for flag, path in (("--plot", args.plot), ("--json", args.json)):
        if path is not None:  # written at the end: refuse a bad path before the run
            _check_output_path(flag, path)
    run_options(args)  # the run's options, checked before the data are simulated
    return args


def run_options(args: argparse.Namespace, config: dict | None = None) -> inf.RunOptions:
    """The :class:`~minidiff.inference.RunOptions` the flags ask for (checked when built):
    non-finite samples are dropped and counted (``on_nan="skip"``), since a simulator
    overflows at some draws of a wide q; ``--quiet`` turns the progress bar off."""
    return inf.RunOptions(w=args.w, gradient=args.gradient, mode=args.mode, on_nan="skip",
                          executor=args.executor, workers=args.workers,
                          scheduler=args.scheduler, connect_timeout=args.connect_timeout,
                          checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                          resume=args.resume, config=config,
                          progress=False if args.quiet else None)


def _check_output_path(flag: str, path: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if not p.parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {str(p.parent)!r} does not exist; create "
                         f"it first (the file is written at the end of the run)")


def _family(kind: str, loc: Any, scale: Any) -> Any:
    d = int(loc.shape[0])
    if kind == "gaussian":
        return inf.DiagonalGaussian(d, loc=loc, scale=scale)
    if kind == "fullrank":
        return inf.FullRankGaussian(d, loc=loc, scale=scale)
    return inf.RealNVP(d, n_layers=5, hidden=(50, 50),
                       base="gaussian" if d >= 2 else "sinh_arcsinh", loc=loc, scale=scale)


def _moments(prior: Any) -> tuple[Any, Any]:
    """(mean (d,), sd (d,)) of the prior, where q starts: closed form where there is one,
    else from 10,000 draws."""
    try:
        return prior.mean, prior.std
    except NotImplementedError:
        draws = prior.sample(default_rng(0), 10_000)
        m = mean(draws, axis=0)
        return m, sqrt(mean((draws - m) * (draws - m), axis=0))


def _summary(x: Any) -> tuple[float, float, float, float]:
    m = mean(x)
    sd = sqrt(mean((x - m) * (x - m)))
    lo, hi = plots.quantiles(x, (0.05, 0.95))
    return float(m), float(sd), float(lo), float(hi)


def _table(names: list[str], truth: list[float] | None, rows: list[tuple]) -> str:
    header = f"{'parameter':<18s} {'true':>10s} {'posterior mean ± sd':>24s} " \
             f"{'90% interval':>24s} {'sd/prior sd':>11s}"
    lines = [header, "-" * len(header)]
    for j, (name, (m, sd, lo, hi, ratio)) in enumerate(zip(names, rows)):
        true = "" if truth is None else f"{truth[j]:.4g}"
        lines.append(f"{name:<18s} {true:>10s} {f'{m:.4g} ± {sd:.2g}':>24s} "
                     f"{f'[{lo:.4g}, {hi:.4g}]':>24s} {ratio:>11.2f}")
    return "\n".join(lines)


def _plot_available(explicit: bool) -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if explicit:
            raise UsageError("--plot needs matplotlib, the 'plot' extra: pip install "
                             "'minidiff[plot]'") from None
        return False
    return True


def command(args: argparse.Namespace, parser: argparse.ArgumentParser,
            emit: Callable[[str], None] = print) -> int:
    """Run ``minidiff calibrate``: set up, fit, report (table, plot, JSON)."""
    explicit_plot = args.plot is not None
    try:
        model = load_model(args.model)
        args = _validate(args, model)
        can_plot = args.plot is not None and _plot_available(explicit_plot)
        problem = build_problem(model, args)
        return _run(problem, args, can_plot, emit)
    except KeyboardInterrupt:
        emit("interrupted" + (f"; continue with --resume --checkpoint {args.checkpoint}"
                              if args.checkpoint else ""))
        return 130
    except (UsageError, ValueError, TypeError, OSError, ImportError, inf.CheckpointError,
            inf.NonFiniteError) as exc:
        notes = " ".join(getattr(exc, "__notes__", []))
        parser.error(" ".join(f"{exc} {notes}".split()))
    return 2  # pragma: no cover (parser.error exits)


def _run(problem: Problem, args: argparse.Namespace, can_plot: bool,
         emit: Callable[[str], None]) -> int:
    model = problem.model
    names = list(model.param_names)
    prior = problem.prior
    family = _family(args.family, *_moments(prior))
    if args.coverage is not None:
        emit(f"minidiff calibrate --coverage {args.coverage}: {model.name} "
             f"{problem.config['settings']}, loss {args.loss}, w = {args.w:g}; "
             f"{args.family} q, {args.samples} samples x {args.steps} steps, Adam lr "
             f"{args.lr:g}; seed {args.seed}")
        start = time.perf_counter()
        result = run_coverage(problem, args, prior, family, can_plot, emit)
        emit(f"{args.coverage} fits in {time.perf_counter() - start:.1f} s")
        if args.json:
            Path(args.json).write_text(json.dumps({"minidiff": __version__, "config":
                                                   problem.config, "coverage":
                                                   result.to_json()}, indent=1),
                                       encoding="utf-8")
            emit(f"results written to {args.json}")
        return 0
    if args.data:
        data = f"data {args.data}"
    else:
        at = ", ".join(f"{n} = {v:g}" for n, v in zip(names, problem.truth))
        data = f"data simulated at {at} (data seed {args.data_seed})"
    emit(f"minidiff calibrate: {model.name} {problem.config['settings']}, {data}")
    increments = model.calibration.features == "increments"
    ensemble = f" of {args.simulations} runs per θ" if args.simulations > 1 else ""
    emit(f"  loss {args.loss}{' of the increments' if increments else ''}{ensemble}"
         f", w = {args.w:g}; {args.family} q, {args.samples} samples x {args.steps} steps, "
         f"Adam lr {args.lr:g} (cosine); {args.gradient}"
         f"{'' if args.gradient == 'score' else f' ({args.mode})'}; seed {args.seed}; "
         f"executor {args.executor}{f' x {args.workers}' if args.workers else ''}")
    start = time.perf_counter()
    screened = screening = None
    if args.screen:  # on --resume too: the same start, which the checkpoint fingerprints
        screening, screened = screen_start(problem, prior, args.screen, args.seed)
        family = _family(args.family, asarray(screening.loc), asarray(screening.scale))
        emit(f"  screened {args.screen} prior draws: best loss {screening.best:.4g}; q starts "
             f"at the best {len(screening.elite)}")
    result = inf.calibrate(problem.loss, prior, family, n_samples=args.samples,
                           n_steps=args.steps, optimizer=inf.adam(inf.cosine(args.lr, args.steps)),
                           seed=args.seed, options=run_options(args, problem.config))
    seconds = time.perf_counter() - start
    theta = result.sample(N_POSTERIOR, seed=args.seed + 1)
    q = problem.natural(theta)
    prior_draws = problem.natural(prior.sample(default_rng(args.seed + 2), N_POSTERIOR))
    rows = []
    for j in range(len(names)):
        m, sd, lo, hi = _summary(getitem(q, (slice(None), j)))
        prior_sd = _summary(getitem(prior_draws, (slice(None), j)))[1]
        rows.append((m, sd, lo, hi, sd / prior_sd if prior_sd > 0 else math.nan))
    if result.resumed_from is not None:
        emit(f"resumed from the checkpoint at step {result.resumed_from}")
    emit(f"{len(result.history)} steps in {seconds:.1f} s; last step: loss "
         f"{result.history.loss[-1]:.4g}, KL {result.history.kl[-1]:.4g}, total "
         f"{result.history.total[-1]:.4g}; {result.nan_summary()}")
    emit("")
    emit(_table(names, problem.truth, rows))
    predictive = stack([problem.simulate(getitem(q, k), default_rng(args.seed).stream(
        ("predictive", k))) for k in range(N_PREDICTIVE)])
    replicates = [problem.simulate(getitem(q, k), default_rng(args.seed).stream(
        ("replicate", k))) for k in range(N_PREDICTIVE)]
    centre = asarray([r[0] for r in rows])  # the posterior means of the table
    at_mean = tuple([problem.simulate(centre, default_rng(args.seed).stream((kind, k)))
                     for k in range(N_PREDICTIVE)] for kind in ("at-mean", "at-mean-rerun"))
    checks = diagnostics(problem, rows, predictive, screened, args.w, result.history,
                         screening, replicates, at_mean)
    emit("")
    for line in checks.lines():
        emit(line)
    if args.plot is not None and can_plot:
        labels = (["new infections (fraction)", "new recoveries (fraction)"]
                  if model.name == "sir" else None)
        plots.calibration_figure(
            args.plot, history=result.history, w=args.w, q=q, prior=prior_draws, names=names,
            truth=problem.truth, observed=problem.observed, simulated=predictive,
            title=f"minidiff calibrate --model {model.name}", column_labels=labels)
        emit(f"\nfigure written to {args.plot}")
    elif args.plot is not None:
        emit("\nno figure: matplotlib is not installed (pip install 'minidiff[plot]')")
    if args.json:
        _write_json(args.json, problem, args, result, names, rows, seconds, checks)
        emit(f"results written to {args.json}")
    return 0


def _write_json(path: str, problem: Problem, args: argparse.Namespace, result: Any,
                names: list[str], rows: list[tuple], seconds: float, checks: Any) -> None:
    h = result.history

    def clean(values: list[float]) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in values]

    out = {"minidiff": __version__, "backend": get_backend().name, "config": problem.config,
           "method": {k: getattr(args, k) for k in ("samples", "simulations", "steps", "lr",
                                                     "w", "mode", "gradient", "seed",
                                                     "executor", "screen")},
           "seconds": seconds, "resumed_from": result.resumed_from,
           "parameters": [{"name": n, "true": None if problem.truth is None
                           else problem.truth[j], "mean": r[0], "sd": r[1], "q05": r[2],
                           "q95": r[3], "sd_over_prior_sd": r[4]}
                          for j, (n, r) in enumerate(zip(names, rows))],
           "history": {"total": clean(h.total), "loss": clean(h.loss), "kl": clean(h.kl),
                       "dropped": h.dropped, "skipped": h.skipped},
           "nan_summary": result.nan_summary(), "diagnostics": checks.to_json()}
    Path(path).write_text(json.dumps(out, indent=1), encoding="utf-8")
