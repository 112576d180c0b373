"""The model registry: every registered model declares a consistent calibration block, a model
is one file plus one registry line (the toy model of docs/models.md, run through the command
both as ``module:function`` and as a registered name), and a module that declares something
inconsistent is refused naming the declaration."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import minidiff as md
from minidiff.cli import main
from minidiff.distributions import Coordinatewise, Exp, Identity, Independent, Normal
from minidiff.models import registry

DOCS = Path(__file__).resolve().parents[1] / "docs"
CHEAP = ["--steps", "4", "--samples", "2", "--timesteps", "20", "--agents", "50", "--quiet",
         "--no-plot"]


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_every_registered_model_declares_a_consistent_calibration_block(name):
    spec = registry.model_spec(name)
    d = len(spec.param_names)
    assert d >= 1 and len(spec.default_params) == d and len(spec.natural) == d
    prior = spec.prior()
    assert prior.dim == d and float(md.min(prior.std)) > 0
    assert isinstance(spec.calibration, registry.Calibration) and callable(spec.loss)
    # the map sends the prior's centre to finite natural parameters
    centre = md.to_host(spec.natural.forward(prior.mean))
    assert all(abs(float(v)) < 1e6 for v in centre)


def _toy_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(DOCS))
    monkeypatch.delitem(sys.modules, "toy_model", raising=False)


def test_the_toy_model_calibrates_as_module_function(tmp_path, monkeypatch, capsys):
    _toy_on_path(monkeypatch)
    out = tmp_path / "toy.json"
    assert main(["calibrate", "--model", "toy_model:simulate", "--json", str(out), *CHEAP]) == 0
    capsys.readouterr()
    result = json.loads(out.read_text())
    assert [p["name"] for p in result["parameters"]] == ["h", "s"]
    assert result["config"]["loss"] == "model"  # its CALIBRATION's default, not mse
    assert result["config"]["natural"] == "Coordinatewise(Sigmoid(), Exp())"
    assert all(0 < p["mean"] for p in result["parameters"])


def test_one_registry_line_makes_the_toy_model_a_built_in_one(monkeypatch, capsys):
    _toy_on_path(monkeypatch)
    monkeypatch.setitem(registry.MODELS, "toy", "toy_model")
    assert main(["calibrate", "--model", "toy", *CHEAP]) == 0
    out = capsys.readouterr().out
    assert "minidiff calibrate: toy" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith(("h ", "s "))] \
        == ["h", "s"]


def _module(**declarations) -> types.ModuleType:
    module = types.ModuleType("declared")
    module.simulate = lambda params, *, rng, n_timesteps=3: md.zeros((n_timesteps,))
    for name, value in declarations.items():
        setattr(module, name, value)
    return module


@pytest.mark.parametrize("declarations, message", [
    ({"PARAM_NAMES": ("a", "b"), "NATURAL": Coordinatewise(Exp())},
     r"NATURAL maps 1 coordinates but the model has 2 parameters"),
    ({"PARAM_NAMES": ("a",), "prior": lambda: Independent(Normal([0.0, 0.0], 1.0))},
     r"prior\(\) has dimension 2 but the model has 1 parameters"),
    ({"NATURAL": "exp"}, r"NATURAL must be a minidiff.distributions.Bijection"),
    ({"CALIBRATION": {"loss": "mmd"}}, r"CALIBRATION must be a"),
    ({"PARAM_NAMES": ("a", "b"), "DEFAULT_PARAMS": (1.0,)}, r"DEFAULT_PARAMS has 1 values"),
])
def test_inconsistent_declarations_are_refused_by_name(declarations, message):
    with pytest.raises((TypeError, ValueError), match=message):
        registry.spec_from_module("declared", _module(**declarations),
                                  lambda *a, **k: None)


def test_a_module_with_names_only_gets_a_standard_prior_and_the_identity():
    spec = registry.spec_from_module("declared", _module(PARAM_NAMES=("a", "b")),
                                     lambda *a, **k: None)
    assert repr(spec.natural) == repr(Coordinatewise(Identity(), Identity()))
    assert spec.prior().dim == 2 and spec.calibration.loss == "mse"
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        registry.model_spec("nope")
    with pytest.raises(ValueError, match="Calibration: loss must be one of"):
        registry.Calibration(loss="likelihood")


def test_a_module_with_the_older_names_is_refused_naming_the_new_ones():
    module = types.ModuleType("old_style")
    module.PARAM_NAMES = ("a",)
    module.TO_NATURAL = ("exp",)
    with pytest.raises(ValueError, match=r"TO_NATURAL \(now NATURAL\)"):
        registry.spec_from_module("old_style", module, lambda params, **kw: params)
