"""The Bernoulli random walk: the smallest model with a discrete random choice.

Equations
---------
Each of ``n_agents`` independent walkers starts at x_0 = 0 and moves

    x_{t+1} = x_t + 2 ξ_t − 1,    ξ_t ~ Bernoulli(θ),   t = 0, ..., T − 1,

so E[x_t] = t (2θ − 1) and dE[x_t]/dθ = 2t exactly.

Parameters (natural scale)
--------------------------
θ (``theta``): the probability of a step up, in [0, 1]; default 0.5 (a symmetric walk).
``params`` is θ as a number or 0-d array, a 1-element vector ``(θ,)``, or a tuple ``(θ,)``.

Observed
--------
The whole path x_0, ..., x_T: shape (T + 1,) for one walker, (T + 1, n_agents) otherwise.

Loss
----
``loss(simulated, observed)`` = (1/(T + 1)) Σ_t (x̄_sim(t) − x̄_obs(t))², the mean squared
difference of the walkers' mean positions x̄(t) (the walkers are exchangeable, so only their
mean path is compared; the two runs may have different numbers of walkers).
``mean_final_position(path)`` is the scalar summary x̄(T), whose expectation is T (2θ − 1).

Estimators
----------
The one random choice, ξ_t for every t and walker at once (shape (T, n_agents)), is drawn by
one ``bernoulli(θ, size=(T, n_agents), estimator=...)`` on the keyed stream ``"steps"`` of the
run's own child generator ``rng.child()``, and the path is its running sum along time (so
within a run the draws never depend on θ; runs with the same seed, or the same stream, share
their uniforms: common random numbers; a reused Generator gives each run fresh ones). The
draws are independent, so one draw of T·n_agents has the law of T draws of n_agents, and
under stochastic triples all T·n_agents candidate jumps compete in one pruning choice, which
keeps each with probability proportional to its rate, as T choices in sequence would.
``estimator="smoothed"`` (the default) is unbiased here because x_t is linear in the draws;
under :func:`minidiff.stochastic.derivative_estimate` the sampler ignores ``estimator`` and
emits stochastic-triple jumps (unbiased for any function of the path).
"""

from __future__ import annotations

import math
from typing import Any

import minidiff as md
from minidiff.core import shape_of
from minidiff.distributions import Coordinatewise, Independent, Normal, Sigmoid

from ._checks import check_count, check_estimator, check_number, generator, unpack
from .registry import Calibration

__all__ = ["simulate", "loss", "mean_final_position", "DEFAULT_PARAMS", "PARAM_NAMES"]

PARAM_NAMES = ("theta",)
DEFAULT_PARAMS = (0.5,)
_WHERE = "random_walk.simulate"


def simulate(params: Any, *, n_timesteps: int, n_agents: int = 1, rng: Any,
             estimator: str = "smoothed") -> Any:
    """The walkers' paths x_0..x_T (see the module notes): shape (T + 1,) or (T + 1, n_agents).

    Args:
        params: θ, or ``(θ,)``.
        n_timesteps: T ≥ 1.
        n_agents: independent walkers, ≥ 1.
        rng: an int seed (the same run each time), a :class:`minidiff.random.Generator` (the
            run takes its next child: reusing it gives fresh paths), or None (fresh entropy).
        estimator: the Bernoulli sampler's estimator (``"smoothed"``, ``"straight_through"``,
            ``"gumbel_softmax"``, ``"score"``, ``"none"``).
    """
    (theta,) = unpack(_WHERE, params, PARAM_NAMES)
    check_number(_WHERE, "theta (probability of a step up)", theta, 0.0, 1.0)
    n_timesteps = check_count(_WHERE, "n_timesteps", n_timesteps, 1)
    n_agents = check_count(_WHERE, "n_agents", n_agents, 1)
    check_estimator(_WHERE, estimator)
    rng = generator(_WHERE, rng)  # this run's child: its one draw below is keyed under it
    # ξ (T, n_agents) in one draw; x_t = Σ_{s<t} (2ξ_s − 1) is a running sum along time
    xi = rng.stream("steps").bernoulli(theta, size=(n_timesteps, n_agents), estimator=estimator)
    out = md.concatenate([md.zeros((1, n_agents)), md.cumsum(2.0 * xi - 1.0, axis=0)])
    return md.reshape(out, (n_timesteps + 1,)) if n_agents == 1 else out


def _mean_path(path: Any, what: str) -> Any:
    path = md.asarray(path)
    if len(shape_of(path)) not in (1, 2):
        raise ValueError(f"random_walk.loss: {what} must be a path of shape (T + 1,) or "
                         f"(T + 1, n_agents), got shape {shape_of(path)}")
    return path if len(shape_of(path)) == 1 else md.mean(path, axis=1)


def loss(simulated: Any, observed: Any) -> Any:
    """Mean squared difference of the mean paths: (1/(T + 1)) Σ_t (x̄_sim(t) − x̄_obs(t))²."""
    sim, obs = _mean_path(simulated, "simulated"), _mean_path(observed, "observed")
    if shape_of(sim) != shape_of(obs):
        raise ValueError(f"random_walk.loss: simulated and observed paths must have the same "
                         f"length T + 1, got {shape_of(sim)[0]} and {shape_of(obs)[0]}")
    return md.mean(md.square(md.subtract(sim, obs)))


def mean_final_position(path: Any) -> Any:
    """x̄(T), the walkers' mean final position (expectation T (2θ − 1))."""
    return md.mean(md.getitem(_mean_path(path, "path"), -1))


# ---------------------------------------------------------------------------------------------
# Calibration (``minidiff calibrate``): the prior, the map to natural parameters, the defaults
# ---------------------------------------------------------------------------------------------

__all__ += ["NATURAL", "prior", "CALIBRATION"]

NATURAL = Coordinatewise(Sigmoid())
"""How each coordinate x_j of the unconstrained space (where inference runs) maps to the
natural parameter: theta = sigmoid(x) (x = logit theta)."""


def prior() -> Independent:
    """The default prior x_j ~ N(loc_j, scale_j²) on the unconstrained x:
    the tutorial's N(logit 0.9, 1): a prior that leans towards walks that mostly go up, so a fit
    to a symmetric walk has to move away from it."""
    loc, scale = (math.log(9.0),), (1.0,)
    return Independent(Normal(list(loc), list(scale)))


# the embedded default of ``minidiff calibrate``: 100 steps of one walker, the energy distance
# of the increments, w = 0.05, stochastic triples (unbiased through the Bernoulli draws)
CALIBRATION = Calibration({"n_timesteps": 100}, "energy", 0.05, 5, 150, 0.1, "triples",
                          "increments", 0)
