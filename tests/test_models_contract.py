"""The model contract, checked on every model in ``minidiff.models``:

* ``simulate(params, *, n_timesteps, n_agents, rng, ...)`` with ``rng`` an int seed, a
  ``minidiff.random.Generator`` or None (fresh entropy); the same seed gives the same path, a
  reused Generator fresh paths (one child per run), a keyed stream common random numbers;
* ``DEFAULT_PARAMS``, ``PARAM_NAMES`` (of the same length) and ``loss(simulated, observed)``,
  a differentiable scalar that is 0 when the two series are equal;
* wrong counts, parameters and generators raise errors that name the model, the argument and
  what is allowed, before anything runs;
* the models compute through minidiff and its backend only (no NumPy, SciPy or CuPy imports).
"""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import numpy as np
import pytest

import minidiff as md
from minidiff.models import brock_hommes, cont, housing, lob, random_walk, sir
from minidiff.random import Generator, default_rng

ROOT = Path(__file__).resolve().parent.parent

# module, small run settings, a bad value per parameter (index, value, what the error says)
MODELS = {
    "random_walk": (random_walk, {"n_timesteps": 6, "n_agents": 4},
                    [(0, 1.5, r"\[0, 1\]")]),
    "sir": (sir, {"n_timesteps": 10, "n_agents": 400},
            [(0, -0.1, r"\[0, inf\)"), (1, -1.0, r"\[0, inf\)"), (2, 1.2, r"\[0, 1\]")]),
    "cont": (cont, {"n_timesteps": 8, "n_agents": 60},
             [(1, -0.5, r"\[0, inf\)"), (2, -0.01, r"\[0, inf\)"), (3, 0.0, r"\(0, inf\)")]),
    "brock_hommes": (brock_hommes, {"n_timesteps": 7}, []),
    "lob": (lob, {"n_timesteps": 5, "n_agents": 3, "n_levels": 4},
            [(0, -1.0, r"\[0, inf\)"), (1, -0.5, r"\[0, inf\)"), (2, 0.0, r"\(0, inf\)"),
             (3, -1.0, r"\[0, inf\)")]),
    "housing": (housing, {"n_timesteps": 4, "n_agents": 60},
                [(0, 1.0, r"\(0, 1\)"), (1, 0.0, r"\(0, inf\)"), (2, 1.5, r"\[0, 1\]"),
                 (3, -0.1, r"\(0, inf\)"), (5, -0.5, r"\[0, inf\)")]),
}
NAMES = list(MODELS)


def run(name, rng, params=None, **overrides):
    module, settings, _ = MODELS[name]
    params = module.DEFAULT_PARAMS if params is None else params
    return module.simulate(params, **{**settings, **overrides}, rng=rng)


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# the call signature and rng
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_simulate_has_the_contract_signature(name):
    signature = inspect.signature(MODELS[name][0].simulate)
    first, *rest = signature.parameters.values()
    assert first.name == "params" and first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    keywords = {p.name: p for p in rest}
    for required in ("n_timesteps", "n_agents", "rng"):
        assert keywords[required].kind is inspect.Parameter.KEYWORD_ONLY, required
    assert keywords["n_timesteps"].default is inspect.Parameter.empty
    assert keywords["rng"].default is inspect.Parameter.empty  # say rng=None to mean fresh


@pytest.mark.parametrize("name", NAMES)
def test_rng_may_be_a_seed_a_generator_or_none(name):
    by_seed = host(run(name, 3))
    by_generator = host(run(name, default_rng(3)))
    assert isinstance(default_rng(3), Generator)
    np.testing.assert_array_equal(by_seed, by_generator)
    fresh = [host(run(name, None)) for _ in range(2)]
    for path in fresh:
        assert path.shape == by_seed.shape and np.all(np.isfinite(path))
    assert not np.array_equal(fresh[0], fresh[1])  # None is fresh entropy, not a fixed seed


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_path_and_another_seed_another(name):
    np.testing.assert_array_equal(host(run(name, 11)), host(run(name, 11)))
    assert not np.array_equal(host(run(name, 11)), host(run(name, 12)))


@pytest.mark.parametrize("name", NAMES)
def test_a_reused_generator_gives_fresh_paths_and_the_same_seed_the_same_sequence(name):
    # [simulate(θ, rng=rng) for _ in range(5)] used to give five identical paths: every draw
    # came from rng.stream(key), which restarts from (seed, key). Now each run takes the next
    # child, as numpy.random.Generator advances.
    rng = default_rng(21)
    paths = [host(run(name, rng)) for _ in range(5)]
    assert len({p.tobytes() for p in paths}) == 5
    again = default_rng(21)  # a second generator from the same seed: the same five runs
    for path in paths:
        np.testing.assert_array_equal(host(run(name, again)), path)
    # the first run of a reused generator is the run of its seed
    np.testing.assert_array_equal(paths[0], host(run(name, 21)))


@pytest.mark.parametrize("name", NAMES)
def test_common_random_numbers_on_request_with_a_keyed_stream(name):
    # the same stream, asked for twice, hands out the same first child: runs at two
    # parameter values share their random numbers (their difference is then the effect of
    # θ alone); two different streams do not
    module = MODELS[name][0]
    rng = default_rng(22)
    theta = np.asarray(module.DEFAULT_PARAMS, dtype=np.float64)
    moved = theta * 1.01 if name != "sir" else theta * np.array([1.01, 1.0, 1.0])
    a = host(run(name, rng.stream("crn"), params=moved))
    b = host(run(name, rng.stream("crn"), params=moved))
    np.testing.assert_array_equal(a, b)
    at_theta = host(run(name, rng.stream("crn"), params=theta))
    other_stream = host(run(name, rng.stream("other"), params=theta))
    assert not np.array_equal(at_theta, other_stream)
    # making streams never advanced rng: its first child is still the seed's
    np.testing.assert_array_equal(host(run(name, rng)), host(run(name, 22)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rng, error, says", [
    ("0", TypeError, "an integer seed ≥ 0, a minidiff.random.Generator, or None"),
    (1.5, TypeError, "got 1.5"),
    (True, TypeError, "got True"),
    (-1, ValueError, "negative seed -1"),
    (np.random.default_rng(0), TypeError, "Generator"),
])
def test_a_bad_rng_is_refused_naming_the_model(name, rng, error, says):
    with pytest.raises(error, match=f"{name}.simulate: rng must be") as info:
        run(name, rng)
    assert says in str(info.value)


# ---------------------------------------------------------------------------------------------
# DEFAULT_PARAMS, PARAM_NAMES, loss
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_default_params_and_param_names_agree(name):
    module = MODELS[name][0]
    assert len(module.DEFAULT_PARAMS) == len(module.PARAM_NAMES) >= 1
    assert all(isinstance(n, str) and n.isidentifier() for n in module.PARAM_NAMES)
    assert len(set(module.PARAM_NAMES)) == len(module.PARAM_NAMES)
    assert all(math.isfinite(float(v)) for v in module.DEFAULT_PARAMS)
    for item in ("simulate", "loss", "DEFAULT_PARAMS", "PARAM_NAMES"):
        assert item in module.__all__
    assert "Loss" in module.__doc__ and module.loss.__doc__  # the loss says what it is


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_a_scalar_zero_on_equal_series_and_differentiable(name):
    module = MODELS[name][0]
    settings = {**MODELS[name][1], "n_timesteps": 30}
    observed = run(name, 1, **settings)
    assert float(host(module.loss(observed, observed))) == 0.0
    theta = md.asarray([float(v) for v in module.DEFAULT_PARAMS])

    def objective(p):
        return module.loss(module.simulate(p, **settings, rng=2), observed)

    value = host(objective(theta))
    assert value.shape == () and value > 0
    g = host(md.grad(objective)(theta))
    assert g.shape == (len(module.PARAM_NAMES),) and np.all(np.isfinite(g))
    np.testing.assert_allclose(host(md.jacfwd(objective)(theta)), g, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_loss_refuses_series_it_cannot_compare(name):
    """Of different lengths (cont compares summary statistics, so there: too short)."""
    module = MODELS[name][0]
    with pytest.raises(ValueError, match=f"{name}.loss|{name}.summary_statistics"):
        module.loss(run(name, 1, n_timesteps=5), run(name, 1, n_timesteps=1))


# ---------------------------------------------------------------------------------------------
# bad counts and parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("count", ["n_timesteps", "n_agents"])
@pytest.mark.parametrize("value, error", [(-1, ValueError), (2.5, TypeError), (True, TypeError),
                                          ("10", TypeError)])
def test_bad_counts_are_refused_naming_the_model_and_the_count(name, count, value, error):
    with pytest.raises(error, match=f"{name}.simulate: {count} must be an integer ≥ "):
        run(name, 0, **{count: value})


@pytest.mark.parametrize("name", [n for n in NAMES if n != "cont"])  # cont runs T = 0 steps
def test_zero_steps_are_refused_where_a_series_needs_one(name):
    with pytest.raises(ValueError, match=f"{name}.simulate: n_timesteps must be an integer ≥ 1"):
        run(name, 0, n_timesteps=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_number_of_params_is_refused(name):
    module = MODELS[name][0]
    k = len(module.PARAM_NAMES)
    for params in (tuple(module.DEFAULT_PARAMS) + (0.1,), np.zeros(k + 1)):
        with pytest.raises(ValueError, match=f"{name}.simulate: params must hold {k} value"):
            run(name, 0, params=params)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_params_are_refused_by_name(name, bad):
    module = MODELS[name][0]
    for i, param in enumerate(module.PARAM_NAMES):
        params = list(module.DEFAULT_PARAMS)
        params[i] = bad
        with pytest.raises(ValueError, match=f"{name}.simulate: {param}\\b.* must be finite"):
            run(name, 0, params=tuple(params))


@pytest.mark.parametrize("name", NAMES)
def test_params_out_of_range_are_refused_saying_what_is_allowed(name):
    module, _, bad_values = MODELS[name]
    for i, value, allowed in bad_values:
        params = list(module.DEFAULT_PARAMS)
        params[i] = value
        with pytest.raises(ValueError, match=f"{name}.simulate: {module.PARAM_NAMES[i]}\\b.* "
                                             f"must lie in {allowed}, got {value!r}"):
            run(name, 0, params=tuple(params))


def test_sir_with_an_infinite_infection_rate_says_so_before_sampling():
    with pytest.raises(ValueError, match=r"sir.simulate: beta .*must be finite and lie in "
                                         r"\[0, inf\), got inf"):
        sir.simulate((math.inf, 0.1, 0.01), n_timesteps=3, n_agents=10, rng=0)


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_estimator_is_refused(name):
    with pytest.raises(ValueError, match=f"{name}.simulate: unknown estimator 'magic'"):
        run(name, 0, estimator="magic")


# ---------------------------------------------------------------------------------------------
# what the models import
# ---------------------------------------------------------------------------------------------


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_models_and_inference_import_no_array_library():
    """Only the minidiff/backend/ package imports numpy, scipy or cupy: the models compute
    with minidiff ops and the backend's namespace (sir builds its contact graphs that way)."""
    sources = sorted((ROOT / "models").rglob("*.py")) + sorted((ROOT / "inference").rglob("*.py"))
    assert ROOT / "models" / "sir.py" in sources
    offenders = {str(p.relative_to(ROOT)): [m for m in _imports(p)
                                            if m.split(".")[0] in {"numpy", "scipy", "cupy",
                                                                   "cupyx"}]
                 for p in sources}
    assert {k: v for k, v in offenders.items() if v} == {}
