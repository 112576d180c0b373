"""``minidiff calibrate``: fit a posterior over an agent-based model's parameters by GVI.

    minidiff calibrate                                   # the embedded default (random walk)
    minidiff calibrate --model sir --steps 300 --plot sir.png
    minidiff calibrate --model mypackage.abm:simulate --true-params 0.2,1.5 --data obs.csv

The pieces: the model (a built-in one, or ``module:function`` with the models' contract
``simulate(params, *, rng, ...)``), the observations (simulated at ``--true-params`` with
``--data-seed``, or read from ``--data FILE.csv``: one row per time step, one column per
observed variable, a header line allowed), the model's default prior on the unconstrained
space and its map ``TO_NATURAL`` to natural parameters, a loss between the simulated and
observed series, and ``minidiff.inference.calibrate`` (executors, checkpoints, progress).
At the end it prints, per parameter in natural units, the true value where known, the
posterior mean ± sd, the 90% interval, and the posterior sd over the prior's (small where the
data identify the parameter); ``--plot`` draws the objective, the posterior-predictive bands and
q against the prior, ``--json`` writes all of it.

Losses (``--loss``): ``model`` (the model's own ``loss(simulated, observed)``), ``mmd``,
``energy`` (distances between the distributions of the observed points: each time step is a
point; for the random walk its increments are, since a path's positions are not exchangeable)
and ``mse``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from .. import inference as inf
from ..backend import get_backend
from ..inference import distributions, executors, objective, plots
from ..models import brock_hommes, cont, random_walk, sir
from ..ops import asarray, exp, getitem, mean, power, sigmoid, sqrt, stack, stop_gradient
from ..random import default_rng

__all__ = ["DESCRIPTION", "configure_parser", "command", "Model", "Setup", "SETUPS",
           "load_model", "build_problem", "Problem"]

DESCRIPTION = __doc__.split("\n\n", 1)[1]
MODELS = {"random_walk": random_walk, "sir": sir, "cont": cont, "brock_hommes": brock_hommes}
LOSSES = ("model", "mmd", "energy", "mse")
FAMILIES = ("gaussian", "fullrank", "flow")
NATURAL = {"identity": lambda x: x, "exp": exp, "sigmoid": sigmoid,
           "pow10": lambda x: power(10.0, x)}
N_POSTERIOR, N_PREDICTIVE = 10_000, 40


@dataclass(frozen=True)
class Setup:
    """The run's defaults for one model (each is a flag)."""

    settings: dict = field(default_factory=dict)   # keywords of simulate
    loss: str = "model"
    w: float = 1.0
    samples: int = 10
    steps: int = 200
    lr: float = 0.05
    mode: str = "auto"
    features: str = "series"                        # or "increments"


SETUPS = {
    # the embedded default: 100 steps of one walker, the energy distance of the increments,
    # w = 0.05, stochastic triples (unbiased through the Bernoulli draws); about 10 s
    "random_walk": Setup({"n_timesteps": 100}, "energy", 0.05, 5, 150, 0.1, "triples",
                         "increments"),
    "sir": Setup({"n_timesteps": 50, "n_agents": 1000}, "model", 1e-5, 8, 200, 0.05),
    "cont": Setup({"n_timesteps": 100, "n_agents": 1000}, "mmd", 0.001, 10, 100, 0.05),
    "brock_hommes": Setup({"n_timesteps": 50}, "model", 0.01, 10, 200, 0.05),
}


@dataclass(frozen=True)
class Model:
    """A simulator with what calibration needs to know about it."""

    name: str
    simulate: Callable[..., Any]
    param_names: tuple[str, ...]
    default_params: tuple[float, ...] | None
    to_natural: tuple[str, ...]
    prior: tuple[tuple[float, ...], tuple[float, ...]]
    loss: Callable[[Any, Any], Any] | None
    setup: Setup


class UsageError(ValueError):
    """A bad flag or bad data: reported as one argparse-style line."""


def load_model(spec: str) -> Model:
    """A built-in model by name, or ``module:function`` (the module may define
    ``PARAM_NAMES``, ``DEFAULT_PARAMS``, ``TO_NATURAL``, ``default_prior()`` and ``loss`` as the
    built-in models do; without them, parameters are named p0, p1, ... by ``--true-params``,
    the prior is N(0, 1) on each and the map the identity)."""
    if spec in MODELS:
        m = MODELS[spec]
        return Model(spec, m.simulate, tuple(m.PARAM_NAMES), tuple(m.DEFAULT_PARAMS),
                     tuple(m.TO_NATURAL), m.default_prior(), m.loss, SETUPS[spec])
    if ":" not in spec:
        raise UsageError(f"--model: unknown model {spec!r}; choose one of "
                         f"{', '.join(MODELS)}, or give module:function")
    module_name, function = spec.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's module in the current folder
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--model {spec}: cannot import module {module_name!r} ({exc})") \
            from exc
    simulate = getattr(module, function, None)
    if not callable(simulate):
        raise UsageError(f"--model {spec}: module {module_name!r} has no function "
                         f"{function!r}")
    names = tuple(getattr(module, "PARAM_NAMES", ()))
    defaults = getattr(module, "DEFAULT_PARAMS", None)
    d = len(names)  # 0: set by --true-params (build_problem)
    prior = module.default_prior() if hasattr(module, "default_prior") else (
        (0.0,) * d, (1.0,) * d)
    return Model(spec, simulate, names, None if defaults is None else tuple(defaults),
                 tuple(getattr(module, "TO_NATURAL", ("identity",) * d)), prior,
                 getattr(module, "loss", None), Setup(loss="model" if hasattr(module, "loss")
                                                      else "mse"))


# ---------------------------------------------------------------------------------------------
# The problem: data, loss, prior, map to natural parameters
# ---------------------------------------------------------------------------------------------


def natural_map(to_natural: tuple[str, ...]) -> Callable[[Any], Any]:
    """x ↦ params along the last axis (x of shape (d,) or (n, d))."""
    unknown = [t for t in to_natural if t not in NATURAL]
    if unknown:
        raise UsageError(f"TO_NATURAL names {unknown}; allowed: {', '.join(NATURAL)}")
    maps = [NATURAL[t] for t in to_natural]

    def natural(x: Any) -> Any:
        return stack([f(getitem(x, (Ellipsis, j))) for j, f in enumerate(maps)], axis=-1)

    return natural


def _features(kind: str) -> Callable[[Any], Any]:
    if kind == "increments":
        return lambda s: getitem(s, slice(1, None)) - getitem(s, slice(0, -1))
    return lambda s: s


@dataclass
class Problem:
    """Everything ``calibrate`` needs, plus what the report shows."""

    model: Model
    observed: Any
    truth: list[float] | None
    natural: Callable[[Any], Any]
    loss: Callable[[Any, Any], Any]
    simulate: Callable[[Any, Any], Any]
    config: dict


def read_csv(path: str) -> Any:
    """The numbers of a CSV file: (T,) for one column, (T, k) for k; a header line allowed."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data: no such file {path!r}")
    rows = []
    with p.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row if c.strip()]
            if not cells:
                continue
            try:
                values = [float(c) for c in cells]
            except ValueError:
                if n == 1 and not rows:
                    continue  # a header line
                raise UsageError(f"--data {path}: line {n} holds something that is not a "
                                 f"number: {row}") from None
            if rows and len(values) != len(rows[0]):
                raise UsageError(f"--data {path}: line {n} has {len(values)} values, the "
                                 f"first data line {len(rows[0])}")
            bad = [c for c, v in zip(cells, values) if not math.isfinite(v)]
            if bad:
                raise UsageError(f"--data {path}: line {n} holds a non-finite value "
                                 f"({bad[0]}); observations must be finite numbers")
            rows.append(values)
    if len(rows) < 2:
        raise UsageError(f"--data {path}: needs at least two rows of numbers, found "
                         f"{len(rows)}")
    data = asarray(rows)
    return getitem(data, (slice(None), 0)) if len(rows[0]) == 1 else data


def _distance(kind: str, model: Model, observed: Any, features: Callable) -> Callable:
    if kind == "model":
        if model.loss is None:
            raise UsageError(f"--loss model: {model.name} has no loss; use --loss mmd, "
                             f"energy or mse")
        return lambda simulated: model.loss(simulated, observed)
    target = features(observed)
    make = {"mmd": inf.mmd, "energy": inf.energy_distance, "mse": inf.mse}[kind]
    distance = make(target)
    return lambda simulated: distance(features(simulated))


def build_problem(model: Model, args: argparse.Namespace) -> Problem:
    """The observations, the loss ℓ(θ, rng) on the unconstrained θ, and the configuration."""
    if not model.to_natural:  # a user's model that does not say how many parameters it has
        if args.true_params is None:
            raise UsageError(f"--model {model.name}: the module defines no PARAM_NAMES, so "
                             f"give --true-params (their number sets the dimension)")
        d = len(args.true_params.split(","))
        model = replace(model, param_names=tuple(f"p{j}" for j in range(d)),
                        to_natural=("identity",) * d, prior=((0.0,) * d, (1.0,) * d))
    settings = dict(model.setup.settings)
    if args.timesteps is not None:
        settings["n_timesteps"] = args.timesteps
    if args.agents is not None:
        settings["n_agents"] = args.agents
    natural = natural_map(model.to_natural)
    simulate = model.simulate

    def run(params: Any, rng: Any) -> Any:
        return simulate(params, rng=rng, **settings)

    truth = None
    if args.data is not None:
        observed = read_csv(args.data)
        probe = run(natural(asarray(list(model.prior[0]))), default_rng(0))
        if tuple(observed.shape) != tuple(probe.shape):
            raise UsageError(f"--data {args.data}: the data have shape "
                             f"{tuple(observed.shape)} but {model.name} simulates "
                             f"{tuple(probe.shape)} with {settings}; set --timesteps (and "
                             f"--agents) so that they match")
        source = {"data_file": args.data, "data_sha256": hashlib.sha256(
            Path(args.data).read_bytes()).hexdigest()}
    else:
        truth = _true_params(model, args.true_params)
        observed = stop_gradient(run(asarray(truth), default_rng(args.data_seed)))
        source = {"true_params": truth, "data_seed": args.data_seed}
    d = len(model.to_natural)
    if len(model.prior[0]) != d or len(model.prior[1]) != d:
        raise UsageError(f"{model.name}: default_prior() gives {len(model.prior[0])} "
                         f"locations for {d} parameters")
    features = _features(model.setup.features)
    distance = _distance(args.loss, model, observed, features)

    def loss(theta: Any, rng: Any) -> Any:
        return distance(run(natural(theta), rng))

    config = {"model": model.name, "settings": settings, **source, "loss": args.loss,
              "features": model.setup.features, "family": args.family, "lr": args.lr,
              "prior": [list(model.prior[0]), list(model.prior[1])],
              "to_natural": list(model.to_natural)}
    return Problem(model, observed, truth, natural, loss, run, config)


def _true_params(model: Model, text: str | None) -> list[float]:
    if text is None:
        if model.default_params is None:
            raise UsageError(f"--model {model.name} has no DEFAULT_PARAMS; give "
                             f"--true-params or --data")
        return [float(v) for v in model.default_params]
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--true-params: expected comma-separated numbers, got "
                         f"{text!r}") from None
    d = len(model.to_natural)
    if len(values) != d:
        names = ", ".join(model.param_names) or f"{d} values"
        raise UsageError(f"--true-params: {model.name} has {d} parameter(s) ({names}), got "
                         f"{len(values)} value(s)")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--true-params: values must be finite, got {text!r}")
    return values


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {value}")
    return value


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
    """The options of ``minidiff calibrate`` (defaults per model: see ``SETUPS``)."""
    g = parser.add_argument_group("model and data")
    g.add_argument("--model", default="random_walk", metavar="NAME|module:function",
                   help=f"{', '.join(MODELS)} (default random_walk), or module:function")
    g.add_argument("--true-params", metavar="V,V,...",
                   help="natural parameters of the synthetic data (default DEFAULT_PARAMS)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data (0)")
    g.add_argument("--data", metavar="FILE.csv", help="observed series instead (rows: time)")
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
    g.add_argument("--lr", type=_number(0.0, True), help="Adam learning rate (cosine decay)")
    g.add_argument("--w", type=_number(0.0, True), help="weight of the KL term")
    g.add_argument("--mode", choices=objective.MODES, help="auto, forward, reverse, "
                   "triples (default per model)")
    g.add_argument("--gradient", choices=objective.GRADIENTS, default="pathwise")
    g.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    g = parser.add_argument_group("scale-out")
    g.add_argument("--executor", choices=executors.EXECUTORS, default="serial")
    g.add_argument("--workers", type=_positive_int, help="processes or Dask workers")
    g.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler's address")
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
    s = model.setup
    args = argparse.Namespace(**vars(args))
    for name, default in (("loss", s.loss), ("samples", s.samples), ("steps", s.steps),
                          ("lr", s.lr), ("w", s.w), ("mode", s.mode)):
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
    if args.workers is not None and args.executor == "serial":
        raise UsageError("--workers needs --executor processes or dask")
    if args.executor != "serial" and args.mode == "reverse":
        raise UsageError("--mode reverse keeps one tape on the driver; use --mode forward "
                         "with --executor")
    if args.plot is None and not args.no_plot:
        args.plot = "calibrate.png"
    return args


def _family(kind: str, loc: Any, scale: Any) -> Any:
    d = int(loc.shape[0])
    if kind == "gaussian":
        return inf.DiagonalGaussian(d, loc=loc, scale=scale)
    if kind == "fullrank":
        return inf.FullRankGaussian(d, loc=loc, scale=scale)
    return inf.RealNVP(d, n_layers=5, hidden=(50, 50),
                       base="gaussian" if d >= 2 else "sinh_arcsinh", loc=loc, scale=scale)


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
        parser.error(" ".join(str(exc).split()))
    return 2  # pragma: no cover (parser.error exits)


def _run(problem: Problem, args: argparse.Namespace, can_plot: bool,
         emit: Callable[[str], None]) -> int:
    model = problem.model
    names = list(model.param_names)
    loc, scale = asarray(list(model.prior[0])), asarray(list(model.prior[1]))
    prior = inf.Normal(loc, scale)
    family = _family(args.family, loc, scale)
    if args.data:
        data = f"data {args.data}"
    else:
        at = ", ".join(f"{n} = {v:g}" for n, v in zip(names, problem.truth))
        data = f"data simulated at {at} (data seed {args.data_seed})"
    emit(f"minidiff calibrate: {model.name} {problem.config['settings']}, {data}")
    emit(f"  loss {args.loss}{' of the increments' if model.setup.features == 'increments' else ''}"
         f", w = {args.w:g}; {args.family} q, {args.samples} samples x {args.steps} steps, "
         f"Adam lr {args.lr:g} (cosine); {args.gradient}"
         f"{'' if args.gradient == 'score' else f' ({args.mode})'}; seed {args.seed}; "
         f"executor {args.executor}{f' x {args.workers}' if args.workers else ''}")
    start = time.perf_counter()
    result = inf.calibrate(
        problem.loss, prior, family, w=args.w, n_samples=args.samples, n_steps=args.steps,
        optimizer=inf.adam(inf.cosine(args.lr, args.steps)), gradient=args.gradient,
        mode=args.mode, seed=args.seed, on_nan="skip", executor=args.executor,
        workers=args.workers, scheduler=args.scheduler, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume, config=problem.config,
        progress=False if args.quiet else None)
    seconds = time.perf_counter() - start
    theta = result.sample(N_POSTERIOR, seed=args.seed + 1)
    q = problem.natural(theta)
    prior_draws = problem.natural(distributions.as_vector(prior).sample(
        default_rng(args.seed + 2), N_POSTERIOR))
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
    if args.plot is not None and can_plot:
        predictive = stack([problem.simulate(getitem(q, k), default_rng(args.seed).stream(
            ("predictive", k))) for k in range(N_PREDICTIVE)])
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
        _write_json(args.json, problem, args, result, names, rows, seconds)
        emit(f"results written to {args.json}")
    return 0


def _write_json(path: str, problem: Problem, args: argparse.Namespace, result: Any,
                names: list[str], rows: list[tuple], seconds: float) -> None:
    h = result.history

    def clean(values: list[float]) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in values]

    out = {"minidiff": __version__, "backend": get_backend().name, "config": problem.config,
           "method": {k: getattr(args, k) for k in ("samples", "steps", "lr", "w", "mode",
                                                     "gradient", "seed", "executor")},
           "seconds": seconds, "resumed_from": result.resumed_from,
           "parameters": [{"name": n, "true": None if problem.truth is None
                           else problem.truth[j], "mean": r[0], "sd": r[1], "q05": r[2],
                           "q95": r[3], "sd_over_prior_sd": r[4]}
                          for j, (n, r) in enumerate(zip(names, rows))],
           "history": {"total": clean(h.total), "loss": clean(h.loss), "kl": clean(h.kl),
                       "dropped": h.dropped, "skipped": h.skipped},
           "nan_summary": result.nan_summary()}
    Path(path).write_text(json.dumps(out, indent=1), encoding="utf-8")
