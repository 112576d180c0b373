"""The model registry: every built-in model by name, and what calibration needs to know of it.

A model is one module (the contract of :mod:`minidiff.models`) plus one line of :data:`MODELS`.
The module declares, besides ``simulate``:

==================  ===========================================================================
name                what
==================  ===========================================================================
``PARAM_NAMES``     the parameters' names, d of them
``DEFAULT_PARAMS``  d natural values (the synthetic data's truth by default)
``loss``            ``loss(simulated, observed)``, the model's own discrepancy (optional)
``NATURAL``         a :class:`~minidiff.distributions.Bijection` from the unconstrained x ∈ ℝ^d
                    that inference runs in to the natural parameters, one map per coordinate
                    (``Coordinatewise(Identity(), Pow10(), Sigmoid())``)
``prior()``         the default prior on x, a vector distribution of dimension d
                    (``Independent(Normal(loc, scale))``); a function, so its arrays are made
                    on the backend current when it is called
``CALIBRATION``     a :class:`Calibration`: the run's defaults (the keywords of ``simulate``,
                    the loss, w, samples, steps, learning rate, mode, features, screening)
==================  ===========================================================================

:func:`model_spec` reads a built-in model by name; :func:`spec_from_module` reads the same
declarations from any module, which is how ``minidiff calibrate --model module:function`` takes
a user's model (there every declaration is optional: without ``PARAM_NAMES`` the dimension
comes from ``--true-params``, the prior is N(0, 1) per coordinate and the map the identity).
The command, the benchmarks and the docs read this registry; nothing else lists the models.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from minidiff.distributions import Bijection, Coordinatewise, Identity, Independent, Normal
from minidiff.validation import check_choice, check_int, check_positive, check_positive_int

__all__ = ["MODELS", "LOSSES", "FEATURES", "Calibration", "ModelSpec", "model_spec",
           "spec_from_module"]

MODELS: dict[str, str] = {  # name -> module: one line per model
    "random_walk": "minidiff.models.random_walk",
    "sir": "minidiff.models.sir",
    "cont": "minidiff.models.cont",
    "brock_hommes": "minidiff.models.brock_hommes",
    "lob": "minidiff.models.lob",
    "housing": "minidiff.models.housing",
}
LOSSES = ("model", "mmd", "energy", "mse")
FEATURES = ("series", "increments")
MODES = ("auto", "forward", "reverse", "triples")


@dataclass(frozen=True)
class Calibration:
    """A model's defaults for ``minidiff calibrate`` (each is also a flag of the command).

    ``settings`` are keywords of ``simulate``; ``loss`` one of :data:`LOSSES`; ``w`` the weight
    of the KL term; ``samples`` θ draws per step; ``steps`` optimisation steps; ``lr`` Adam's
    learning rate; ``mode`` the derivative's mode; ``features`` what the distances compare
    (``"increments"`` for a path whose positions are not exchangeable); ``screen`` prior draws
    screened before the steps (0: start at the prior)."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "model"
    w: float = 1.0
    samples: int = 10
    steps: int = 200
    lr: float = 0.05
    mode: str = "auto"
    features: str = "series"
    screen: int = 200

    def __post_init__(self) -> None:
        where = "Calibration"
        check_choice(where, "loss", self.loss, LOSSES)
        check_positive(where, "w", self.w)
        check_positive_int(where, "samples", self.samples)
        check_positive_int(where, "steps", self.steps)
        check_positive(where, "lr", self.lr)
        check_choice(where, "mode", self.mode, MODES)
        check_choice(where, "features", self.features, FEATURES)
        check_int(where, "screen", self.screen, 0)


@dataclass(frozen=True)
class ModelSpec:
    """A simulator with what calibration needs to know about it (see the module notes).

    ``prior`` is a function (called once per run) returning the prior on x; ``natural`` maps x
    to the natural parameters. A user's model that does not say how many parameters it has is
    held with ``param_names == ()`` until :meth:`with_dimension` sets d."""

    name: str
    simulate: Callable[..., Any]
    param_names: tuple[str, ...]
    default_params: tuple[float, ...] | None
    prior: Callable[[], Any] | None
    natural: Bijection | None
    loss: Callable[[Any, Any], Any] | None
    calibration: Calibration

    @property
    def dim(self) -> int:
        return len(self.param_names)

    def with_dimension(self, d: int, names: tuple[str, ...] | None = None) -> ModelSpec:
        """This model with d parameters (named ``names``, default p0, ..., p(d−1)), a N(0, 1)
        prior on each and the identity map (for a user's model that declares neither)."""
        d = check_positive_int(self.name, "the number of parameters", d)
        return ModelSpec(self.name, self.simulate, names or tuple(f"p{j}" for j in range(d)),
                         self.default_params, lambda: Independent(Normal([0.0] * d, 1.0)),
                         Coordinatewise(*[Identity()] * d), self.loss, self.calibration)


def model_spec(name: str) -> ModelSpec:
    """The built-in model ``name`` (a key of :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"model_spec: unknown model {name!r}; choose one of "
                         f"{', '.join(MODELS)}")
    module = importlib.import_module(MODELS[name])
    return spec_from_module(name, module, module.simulate, builtin=True)


def spec_from_module(name: str, module: ModuleType, simulate: Callable[..., Any], *,
                     builtin: bool = False) -> ModelSpec:
    """The declarations of ``module`` (see the module notes) as a :class:`ModelSpec`.

    A built-in model must declare them all; a user's module may leave any out. Each present
    declaration is checked: d names, d defaults, a prior of dimension d, a map with d
    coordinates, a :class:`Calibration`."""
    required = ("PARAM_NAMES", "DEFAULT_PARAMS", "loss", "NATURAL", "prior", "CALIBRATION")
    missing = [n for n in required if not hasattr(module, n)]
    if builtin and missing:
        raise ValueError(f"model {name!r} ({module.__name__}) does not declare {missing}; "
                         f"see minidiff.models.registry for what a model module declares")
    renamed = {"TO_NATURAL": "NATURAL", "default_prior": "prior"}
    stale = [f"{old} (now {new})" for old, new in renamed.items()
             if hasattr(module, old) and not hasattr(module, new)]
    if stale:  # an older module's declarations: silently ignoring them would change the fit
        raise ValueError(f"model {name!r} ({module.__name__}) declares {', '.join(stale)}; "
                         f"rename them: NATURAL is a minidiff.distributions.Bijection and "
                         f"prior() returns the prior distribution (see minidiff.models.registry)")
    names = tuple(getattr(module, "PARAM_NAMES", ()))
    d = len(names)
    defaults = getattr(module, "DEFAULT_PARAMS", None)
    if defaults is not None and d and len(defaults) != d:
        raise ValueError(f"model {name!r}: DEFAULT_PARAMS has {len(defaults)} values for the "
                         f"{d} PARAM_NAMES {names}")
    loss = getattr(module, "loss", None)
    calibration = getattr(module, "CALIBRATION", None)
    if calibration is None:
        calibration = Calibration(loss="model" if loss is not None else "mse")
    if not isinstance(calibration, Calibration):
        raise TypeError(f"model {name!r}: CALIBRATION must be a "
                        f"minidiff.models.registry.Calibration, got "
                        f"{type(calibration).__name__}")
    natural = getattr(module, "NATURAL", None)
    if natural is not None and not isinstance(natural, Bijection):
        raise TypeError(f"model {name!r}: NATURAL must be a minidiff.distributions.Bijection "
                        f"(e.g. Coordinatewise(Identity(), Exp())), got {type(natural).__name__}")
    if isinstance(natural, Coordinatewise) and d and len(natural) != d:
        raise ValueError(f"model {name!r}: NATURAL maps {len(natural)} coordinates but the "
                         f"model has {d} parameters {names}")
    prior = getattr(module, "prior", None)
    if prior is not None and not callable(prior):
        raise TypeError(f"model {name!r}: prior must be a function returning the prior "
                        f"distribution, got {type(prior).__name__}")
    spec = ModelSpec(name, simulate, names, None if defaults is None else tuple(defaults),
                     prior, natural, loss, calibration)
    if d and (prior is None or natural is None):  # names given, the rest defaulted
        standard = spec.with_dimension(d, names)
        spec = ModelSpec(name, simulate, names, spec.default_params, prior or standard.prior,
                         natural or standard.natural, loss, calibration)
    if d and spec.prior().dim != d:
        raise ValueError(f"model {name!r}: prior() has dimension {spec.prior().dim} but the "
                         f"model has {d} parameters {names}")
    return spec
