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

Estimators
----------
The one random choice, ξ_t, is drawn by ``rng.bernoulli(θ, estimator=...)`` on the keyed stream
``rng.stream(("step", t))`` (so runs at θ and θ + h share their uniforms: common random
numbers). ``estimator="smoothed"`` (the default) is unbiased here because x_t is linear in the
draws; under :func:`minidiff.stochastic.derivative_estimate` the sampler ignores ``estimator``
and emits stochastic-triple jumps (unbiased for any function of the path).
"""

from __future__ import annotations

from typing import Any

import minidiff as md

from ._params import check_count, check_range, unpack

__all__ = ["simulate", "DEFAULT_PARAMS", "PARAM_NAMES", "loss"]

PARAM_NAMES = ("theta",)
DEFAULT_PARAMS = (0.5,)


def simulate(params: Any, *, n_timesteps: int = 100, n_agents: int = 1, rng: Any,
             estimator: str = "smoothed") -> Any:
    """The walkers' paths x_0..x_T (see the module notes): shape (T + 1,) or (T + 1, n_agents).

    Args:
        params: θ, or ``(θ,)``.
        n_timesteps: T ≥ 1.
        n_agents: independent walkers, ≥ 1.
        rng: a :class:`minidiff.random.Generator` (its keyed streams are used).
        estimator: the Bernoulli sampler's estimator (``"smoothed"``, ``"straight_through"``,
            ``"gumbel_softmax"``, ``"score"``, ``"none"``).
    """
    name = "random_walk"
    (theta,) = unpack(params, PARAM_NAMES, name)
    check_range(name, "theta", theta, 0.0, 1.0)
    n_timesteps = check_count(name, "n_timesteps", n_timesteps, 1)
    n_agents = check_count(name, "n_agents", n_agents, 1)
    x = md.zeros((n_agents,))
    path = [x]
    for t in range(n_timesteps):
        xi = rng.stream(("step", t)).bernoulli(theta, size=(n_agents,), estimator=estimator)
        x = md.add(x, 2.0 * xi - 1.0)  # md.add: x starts raw (array_api_strict)
        path.append(x)
    out = md.stack(path)
    return md.reshape(out, (n_timesteps + 1,)) if n_agents == 1 else out


def loss(series: Any) -> Any:
    """A scalar summary for gradient benchmarks: the mean final position."""
    return md.mean(md.getitem(series, -1))
