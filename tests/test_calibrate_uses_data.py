"""A posterior that ignores its data is a silent wrong answer: for every built-in model,
``minidiff calibrate`` on data simulated at two different parameter sets (same seeds, so with
common random numbers a data-blind fit would give the same q to the last bit) must give
posteriors that differ."""

from __future__ import annotations

import json
import math

import pytest

from minidiff.cli import main
from minidiff.models.registry import MODELS, model_spec
from minidiff.ops import asarray, to_host

# short runs: the point is whether q depends on the data, not how well it fits
SHORT = {"random_walk": ["--timesteps", "40"], "sir": ["--timesteps", "20", "--agents", "300"],
         "cont": ["--timesteps", "40", "--agents", "200"], "brock_hommes": ["--timesteps", "40"],
         "lob": ["--timesteps", "10", "--agents", "10"],
         "housing": ["--timesteps", "8", "--agents", "100"]}


def second_truth(spec) -> list[float]:
    """A parameter set one prior sd from the prior's centre, on the side away from
    DEFAULT_PARAMS (in the unconstrained space), mapped to natural units."""
    prior = spec.prior()
    loc, scale = to_host(prior.mean), to_host(prior.std)
    centre, up, down = (to_host(spec.natural.forward(asarray(x)))
                        for x in (loc, loc + scale, loc - scale))
    return [float(up[j] if centre[j] > default else down[j])
            for j, default in enumerate(spec.default_params)]


def fit(tmp_path, capsys, name: str, truth: list[float], tag: str) -> dict:
    path = tmp_path / f"{name}-{tag}.json"
    argv = ["calibrate", "--model", name, "--true-params=" + ",".join(f"{v!r}" for v in truth),
            "--steps", "20", "--samples", "3", "--screen", "10", "--quiet", "--no-plot",
            "--json", str(path), *SHORT[name]]
    assert main(argv) == 0
    capsys.readouterr()
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", list(MODELS))
def test_posteriors_at_two_parameter_sets_differ(tmp_path, capsys, name):
    """Some parameter's posterior mean moves by more than 0.5 of the larger of its two
    posterior sds between the data sets (a data-blind q moves by exactly 0)."""
    spec = model_spec(name)
    a = fit(tmp_path, capsys, name, [float(v) for v in spec.default_params], "a")
    b = fit(tmp_path, capsys, name, second_truth(spec), "b")
    moves = [abs(p["mean"] - q["mean"]) / max(p["sd"], q["sd"])
             for p, q in zip(a["parameters"], b["parameters"])]
    assert all(math.isfinite(m) for m in moves)
    assert max(moves) > 0.5, moves
