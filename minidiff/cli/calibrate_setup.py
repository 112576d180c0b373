"""What ``minidiff calibrate`` calibrates: the model, the observations, the loss and the prior.

* :func:`load_model`: a built-in model (``SETUPS`` holds each one's run defaults) or a user's
  ``module:function``, as a :class:`Model`;
* :func:`read_csv`: observations from a CSV file (UTF-8, a byte-order mark allowed, a
  non-numeric header allowed), checked cell by cell: an empty or non-numeric cell is refused
  naming its line and column, never dropped, so no column shifts; two rows at least;
* :func:`build_problem`: the observations (read, or simulated at the true parameters), the map
  x ↦ params from the model's ``TO_NATURAL``, and the loss ℓ(x, rng) = distance(simulate(
  params(x), rng)) on the unconstrained x, as a :class:`Problem`.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import inference as inf
from ..backend import get_backend
from ..models import brock_hommes, cont, datasets, housing, lob, random_walk, sir
from ..ops import asarray, exp, getitem, power, sigmoid, stack, stop_gradient
from ..random import default_rng

__all__ = ["MODELS", "LOSSES", "NATURAL", "SETUPS", "Setup", "Model", "Problem", "UsageError",
           "load_model", "natural_map", "read_csv", "parse_csv", "build_problem"]

MODELS = {"random_walk": random_walk, "sir": sir, "cont": cont, "brock_hommes": brock_hommes,
          "lob": lob, "housing": housing}
LOSSES = ("model", "mmd", "energy", "mse")
NATURAL = {"identity": lambda x: x, "exp": exp, "sigmoid": sigmoid,
           "pow10": lambda x: power(10.0, x)}


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
    screen: int = 200                               # prior draws screened before the steps


SETUPS = {
    # the embedded default: 100 steps of one walker, the energy distance of the increments,
    # w = 0.05, stochastic triples (unbiased through the Bernoulli draws); a few seconds
    "random_walk": Setup({"n_timesteps": 100}, "energy", 0.05, 5, 150, 0.1, "triples",
                         "increments", 0),
    # sir's loss is a Gaussian log-likelihood with its noise scale from the data: w = 1
    "sir": Setup({"n_timesteps": 50, "n_agents": 1000}, "model", 1.0, 8, 200, 0.05),
    "cont": Setup({"n_timesteps": 100, "n_agents": 1000}, "mmd", 0.001, 10, 100, 0.05),
    # brock_hommes: a moment loss scaled by its standard errors from the data: w = 1
    "brock_hommes": Setup({"n_timesteps": 50}, "model", 1.0, 10, 200, 0.05),
    "lob": Setup({"n_timesteps": 50, "n_agents": 20}, "model", 0.01, 8, 100, 0.05),
    "housing": Setup({"n_timesteps": 24, "n_agents": 500}, "model", 0.01, 8, 100, 0.05),
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
    module = _import_user_module(spec, module_name)
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
    distance_for: Callable[[Any], Callable[[Any], Any]] | None = None  # y ↦ (x ↦ ℓ(x, y))


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
        if args.data == datasets.SP500:
            observed = _sp500(settings)
            raw = get_backend().to_host(observed).tobytes()
        else:
            raw = _read_data_file(args.data)  # read once: the hash is of the bytes parsed
            observed = _observations(raw, args.data)
        probe = run(natural(asarray(list(model.prior[0]))), default_rng(0))
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
    return Problem(model, observed, truth, natural, loss, run, config,
                   lambda y: _distance(args.loss, model, y, features))


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
    d = len(model.to_natural)
    if len(values) != d:
        names = ", ".join(model.param_names) or f"{d} values"
        raise UsageError(f"--true-params: {model.name} has {d} parameter(s) ({names}), got "
                         f"{len(values)} value(s)")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--true-params: values must be finite, got {text!r}")
    return values
