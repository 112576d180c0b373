"""What ``minidiff calibrate`` calibrates: the model, the observations, the loss and the prior.

* :func:`load_model`: a model of the registry (:mod:`minidiff.models.registry`, where each
  model declares its prior, its map to natural units and its run defaults) or a user's
  ``module:function`` declaring the same, as a :class:`~minidiff.models.registry.ModelSpec`;
* :func:`read_csv`: observations from a CSV file (UTF-8, a byte-order mark allowed, a
  non-numeric header allowed), checked cell by cell: an empty or non-numeric cell is refused
  naming its line and column, never dropped, so no column shifts; two rows at least;
* :func:`build_problem`: the observations (read, or simulated at the true parameters), the map
  x ↦ params from the model's ``NATURAL``, and the loss ℓ(x, rng) = distance(simulate(
  params(x), rng)) on the unconstrained x, as a :class:`Problem`. With ``--simulations m``
  the model's own loss compares an ensemble: ℓ(x, rng) = loss(stack of m runs at params(x),
  observed), the m runs on fresh children of ``rng`` (a synthetic likelihood, say, which
  needs the runs' spread at each θ).

Losses: ``model`` (the model's own ``loss(simulated, observed)``), ``mmd``, ``energy``
(distances between the distributions of the observed points: each time step is a point; for
the random walk its increments are, since a path's positions are not exchangeable) and
``mse``. Bad input raises :class:`UsageError`, which the command reports as one line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import io
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import inference as inf
from ..backend import get_backend
from ..models import datasets
from ..models.registry import LOSSES, MODELS, ModelSpec, model_spec, spec_from_module
from ..ops import asarray, getitem, mean, stack, stop_gradient
from ..random import default_rng

__all__ = ["MODELS", "LOSSES", "Model", "Problem", "UsageError", "load_model", "read_csv",
           "parse_csv", "build_problem", "prior_centre"]

Model = ModelSpec  # what ``minidiff calibrate`` calibrates: a model of the registry


class UsageError(ValueError):
    """A bad flag or bad data: reported as one argparse-style line."""


def load_model(spec: str) -> ModelSpec:
    """A built-in model by name (:data:`minidiff.models.registry.MODELS`), or
    ``module:function``, whose module may declare what a built-in model does (``PARAM_NAMES``,
    ``DEFAULT_PARAMS``, ``NATURAL``, ``prior()``, ``loss``, ``CALIBRATION``; see
    :mod:`minidiff.models.registry`); without ``PARAM_NAMES`` the parameters are named p0,
    p1, ... by ``--true-params``, the prior is N(0, 1) on each and the map the identity."""
    if spec in MODELS:
        return model_spec(spec)
    if ":" not in spec:
        raise UsageError(f"--model: unknown model {spec!r}; choose one of "
                         f"{', '.join(MODELS)}, or give module:function")
    module_name, function = spec.split(":", 1)
    module = _import_user_module(spec, module_name)
    simulate = getattr(module, function, None)
    if not callable(simulate):
        raise UsageError(f"--model {spec}: module {module_name!r} has no function "
                         f"{function!r}")
    try:
        return spec_from_module(spec, module, simulate)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--model {spec}: {exc}") from None


def _import_user_module(spec: str, module_name: str) -> Any:
    """Import the user's module: importing runs its code. The current folder joins the import
    path only while this import runs, and after the installed packages, so a stray file there
    (a ``matplotlib.py``, say) never stands in for a package that minidiff or the module
    imports later, and an installed module of the same name wins over a local file."""
    folder = os.getcwd()
    added = folder not in sys.path and "" not in sys.path
    if added:
        sys.path.append(folder)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--model {spec}: cannot import module {module_name!r} ({exc})") \
            from exc
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


# ---------------------------------------------------------------------------------------------
# The problem: data, loss, prior, map to natural parameters
# ---------------------------------------------------------------------------------------------


def _features(kind: str) -> Callable[[Any], Any]:
    if kind == "increments":
        return lambda s: getitem(s, slice(1, None)) - getitem(s, slice(0, -1))
    return lambda s: s


@dataclass
class Problem:
    """Everything ``calibrate`` needs, plus what the report shows."""

    model: ModelSpec
    observed: Any
    truth: list[float] | None
    natural: Callable[[Any], Any]
    prior: Any
    loss: Callable[[Any, Any], Any]
    simulate: Callable[[Any, Any], Any]
    config: dict
    distance_for: Callable[[Any], Callable[[Any], Any]] | None = None  # y ↦ (x ↦ ℓ(x, y))
    runs: Callable[[Any, Any], Any] | None = None  # what the loss compares: 1 run or (m, ...)

    def compared(self, params: Any, rng: Any) -> Any:
        """What the loss compares with the data at ``params``: one simulated series, or, with
        ``--simulations m``, m runs stacked as (m, *shape) (each call of the simulator on
        ``rng`` takes a fresh child: independent runs)."""
        return (self.runs or self.simulate)(params, rng)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _is_number(cell: str) -> bool:
    """A plain decimal number (digits, one point, an exponent): not ``nan``, ``inf``, ``1_000``
    or ``0x1f``, which Python's float() would also take."""
    return _NUMBER.fullmatch(cell.strip()) is not None


def parse_csv(text: str, name: str) -> tuple[list[str] | None, list[list[float]]]:
    """(header or None, rows of numbers) of CSV ``text`` (commas, ``"``-quoting).

    The first non-blank line is a header when none of its cells is a number, data when all
    its non-empty cells are, and refused when it mixes numbers and text. Every later cell must
    be a finite decimal number, every row as long as the first; an empty or non-numeric cell
    is refused naming its line and column (and the column's header), so no value is ever
    dropped or shifted. Blank lines are allowed only at the end."""
    where = f"--data {name}"
    header: list[str] | None = None
    rows: list[list[float]] = []
    blank_at: int | None = None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                blank_at = blank_at or line
                continue
            if blank_at is not None:
                raise UsageError(f"{where}: line {blank_at} is blank but data follow it (a "
                                 f"missing time step?); remove it or fill it in")
            if header is None and not rows:
                filled = [j for j, c in enumerate(row) if c.strip()]
                numeric = {j: _is_number(row[j]) for j in filled}
                if not any(numeric.values()):
                    header = [c.strip() for c in row]
                    continue
                if not all(numeric.values()):
                    j = min(j for j, is_number in numeric.items() if not is_number)
                    raise UsageError(f"{where}: line {line} mixes numbers and text (column "
                                     f"{j + 1} is {row[j]!r}): a header line must hold only "
                                     f"names, a data line only numbers")
            width = len(header) if header is not None else (len(rows[0]) if rows else len(row))
            if len(row) != width:
                raise UsageError(f"{where}: line {line} has {len(row)} cells, the "
                                 f"{'header' if header is not None else 'first line'} "
                                 f"{width}; every line needs one value per column")
            values = []
            for j, cell in enumerate(row):
                column = f"column {j + 1}" + (f" ({header[j]!r})" if header and header[j]
                                              else "")
                if not cell.strip():
                    raise UsageError(f"{where}: line {line}, {column} is empty; every "
                                     f"observation must be a number (missing values are not "
                                     f"supported: fill them in or cut the series)")
                if not _is_number(cell):
                    raise UsageError(f"{where}: line {line}, {column} holds {cell.strip()!r}, "
                                     f"not a finite decimal number")
                values.append(float(cell))
            if not all(math.isfinite(v) for v in values):  # 1e999 overflows to inf
                j = [math.isfinite(v) for v in values].index(False)
                raise UsageError(f"{where}: line {line}, column {j + 1} holds {row[j].strip()!r},"
                                 f" which overflows a float64")
            rows.append(values)
    except csv.Error as exc:
        raise UsageError(f"{where}: line {reader.line_num} is not valid CSV ({exc})") from None
    return header, rows


def read_csv(path: str) -> Any:
    """The numbers of a CSV file: (T,) for one column, (T, k) for k; UTF-8 (a byte-order mark
    allowed), a header line allowed when it is not numeric (see :func:`parse_csv`)."""
    return _observations(_read_data_file(path), path)


def _read_data_file(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data: no such file {path!r}")
    return p.read_bytes()


def _observations(raw: bytes, path: str) -> Any:
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is not part of the data
    except UnicodeDecodeError as exc:
        raise UsageError(f"--data {path}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                         f"save it as UTF-8 CSV") from None
    _, rows = parse_csv(text, path)
    if len(rows) < 2:
        raise UsageError(f"--data {path}: needs at least two rows of numbers, found "
                         f"{len(rows)}")
    data = asarray(rows)
    return getitem(data, (slice(None), 0)) if len(rows[0]) == 1 else data


def _distance(kind: str, model: ModelSpec, observed: Any, features: Callable) -> Callable:
    if kind == "model":
        if model.loss is None:
            raise UsageError(f"--loss model: {model.name} has no loss; use --loss mmd, "
                             f"energy or mse")
        return lambda simulated: model.loss(simulated, observed)
    target = features(observed)
    make = {"mmd": inf.mmd, "energy": inf.energy_distance, "mse": inf.mse}[kind]
    distance = make(target)
    return lambda simulated: distance(features(simulated))


def build_problem(model: ModelSpec, args: argparse.Namespace) -> Problem:
    """The observations, the loss ℓ(θ, rng) on the unconstrained θ, and the configuration."""
    if not model.param_names:  # a user's model that does not say how many parameters it has
        if args.true_params is None:
            raise UsageError(f"--model {model.name}: the module defines no PARAM_NAMES, so "
                             f"give --true-params (their number sets the dimension)")
        model = model.with_dimension(len(args.true_params.split(",")))
    prior = model.prior()
    settings = dict(model.calibration.settings)
    if args.timesteps is not None:
        settings["n_timesteps"] = args.timesteps
    if args.agents is not None:
        settings["n_agents"] = args.agents
    natural = model.natural.forward
    simulate = model.simulate

    def run(params: Any, rng: Any) -> Any:
        return simulate(params, rng=rng, **settings)

    truth = None
    if args.data is not None:
        if args.data == datasets.SP500:
            observed = _sp500(settings)
            raw = get_backend().to_host(observed).tobytes()
        else:
            raw = _read_data_file(args.data)  # read once: the hash is of the bytes parsed
            observed = _observations(raw, args.data)
        probe = run(natural(prior_centre(prior)), default_rng(0))
        if tuple(observed.shape) != tuple(probe.shape):
            raise UsageError(f"--data {args.data}: the data have shape "
                             f"{tuple(observed.shape)} but {model.name} simulates "
                             f"{tuple(probe.shape)} with {settings}; set --timesteps (and "
                             f"--agents) so that they match")
        source = {"data_sha256": hashlib.sha256(raw).hexdigest()}
    else:
        truth = _true_params(model, args.true_params)
        observed = stop_gradient(run(asarray(truth), default_rng(args.data_seed)))
        source = {"true_params": truth, "data_seed": args.data_seed}
    if prior.dim != model.dim:
        raise UsageError(f"{model.name}: prior() has dimension {prior.dim} for "
                         f"{model.dim} parameters")
    features = _features(model.calibration.features)
    distance = _distance(args.loss, model, observed, features)

    n_runs = getattr(args, "simulations", 1)
    if n_runs > 1 and args.loss != "model":
        raise UsageError(f"--simulations {n_runs}: an ensemble of runs per θ goes to the "
                         f"model's own loss, which must take it as (m, *shape); --loss "
                         f"{args.loss} compares one run, so drop --simulations or use --loss "
                         f"model")

    def runs(params: Any, rng: Any) -> Any:
        if n_runs == 1:
            return run(params, rng)
        return stack([run(params, rng) for _ in range(n_runs)])

    if n_runs > 1:
        _check_takes_ensembles(model, distance, run, natural(prior_centre(prior)), n_runs)

    def loss(theta: Any, rng: Any) -> Any:
        return distance(runs(natural(theta), rng))

    config = {"model": model.name, "settings": settings, **source, "loss": args.loss,
              **({"simulations": n_runs} if n_runs > 1 else {}),
              "features": model.calibration.features, "family": args.family, "lr": args.lr,
              "prior": _describe_prior(prior), "natural": repr(model.natural)}
    return Problem(model, observed, truth, natural, prior, loss, run, config,
                   lambda y: _distance(args.loss, model, y, features), runs)


def _check_takes_ensembles(model: ModelSpec, distance: Callable, run: Callable, params: Any,
                           n_runs: int) -> None:
    """Refuse ``--simulations n_runs`` unless the model's loss scores ensembles (m, *shape):
    it must give one number for m = n_runs and for m = n_runs + 1 runs at ``params``. A loss
    that reads the stack as one larger series (a path of several walkers, say) fits only the
    m that makes its shape the data's, and would otherwise score the wrong thing silently."""
    ensemble = [run(params, rng) for rng in default_rng(0).spawn(n_runs + 1)]
    for m in (n_runs, n_runs + 1):
        try:
            value = distance(stack(ensemble[:m]))
            ok = tuple(getattr(value, "shape", ())) == ()
        except (ValueError, TypeError) as exc:
            ok, why = False, f"given {m} runs stacked as ({m}, ...) it raised: {exc}"
        else:
            shape = tuple(getattr(value, "shape", ()))
            why = f"given {m} runs stacked as ({m}, ...) it returned shape {shape}"
        if not ok:
            raise UsageError(f"--simulations {n_runs}: {model.name}'s loss does not score an "
                             f"ensemble (m, *shape) of runs ({why}); drop --simulations, or "
                             f"give the model a loss that takes an ensemble")


def prior_centre(prior: Any) -> Any:
    """The prior's mean (d,), or, where it has no closed form, the mean of 1,000 draws."""
    try:
        return prior.mean
    except NotImplementedError:
        draws = prior.sample(default_rng(0), 1000)
        return stop_gradient(mean(draws, axis=0))


def _describe_prior(prior: Any) -> Any:
    """The prior for the run's configuration (JSON): [loc, scale] for independent Normals, the
    distribution's repr otherwise."""
    gaussian = prior.gaussian() if hasattr(prior, "gaussian") else None
    if gaussian is None:
        return repr(prior)
    host = get_backend().to_host
    return [[float(v) for v in host(part).reshape(-1)] for part in gaussian]


def _sp500(settings: dict) -> Any:
    """``--data sp500``: the last n_timesteps daily S&P 500 returns (``models/datasets.py``)."""
    if "n_timesteps" not in settings:
        raise UsageError("--data sp500: the model takes no n_timesteps, so the length of the "
                         "series is unknown; give a model of returns such as --model cont")
    try:
        return datasets.sp500_returns(settings["n_timesteps"])
    except (ImportError, ValueError) as exc:
        raise UsageError(f"--data sp500: {exc} (set the length with --timesteps)") from None


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
    d = model.dim
    if len(values) != d:
        names = ", ".join(model.param_names) or f"{d} values"
        raise UsageError(f"--true-params: {model.name} has {d} parameter(s) ({names}), got "
                         f"{len(values)} value(s)")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--true-params: values must be finite, got {text!r}")
    return values
