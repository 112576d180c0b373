"""A long-horizon workload: the Cont (2007) volatility-clustering market, as used by the
benchmarks (``bench/cont_gradient.py``, ``bench/memory.py``) and ``minidiff memory``.

N agents each hold a threshold ν_i. Every step a common signal ε_t arrives; an agent buys if
ε_t ≥ ν_i, sells if ε_t ≤ −ν_i, and otherwise waits. The return is the net order flow over the
market depth, and each agent, with probability p, resets its threshold to the size of the
latest return:

    ν_i(0) = exp(μ + σ_ν z_i),        z_i ~ N(0, 1)     (ν ~ LogNormal(μ, σ_ν), reparameterised)
    ε_t    = σ ζ_t,                   ζ_t ~ N(0, 1)     (reparameterised)
    o_it   = step(ε_t − ν_i) − step(−ν_i − ε_t)         (soft_step: straight-through σ(k x))
    r_t    = Σ_i o_it / (N η)
    ν_i    ← |r_t| where reset_it, else ν_i,   reset_it ~ Bernoulli(p)
    loss   = Σ_t r_t²

Parameters θ = (μ, σ_ν, σ, η); k = 5 and p = 0.1 are fixed. The reset is drawn as a hard
Gumbel-max sample, [log p − log(1 − p) + g_1 − g_2 > 0] with g = −log(−log U): with p fixed its
Gumbel-softmax relaxation has no derivative with respect to θ, so only the hard sample matters.

The noise comes from a :class:`ContNoise`: either drawn up front (fast steps, memory ∝ T N) or
streamed, each step drawing from its own keyed generator (memory flat in T, and the same draws
however often a step is recomputed, which checkpointing needs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import backend as _backend
from .checkpointing import checkpointed_loop
from .ops import abs as _abs
from .ops import asarray, exp, where
from .ops import sum as _sum
from .random.discrete_gradients import gumbel_noise
from .random.distributions import uniform_like
from .stochastic import soft_step

__all__ = ["THETA", "ContNoise", "cont_loss", "cont_step"]

THETA = (-1.0, 0.5, 0.5, 1.0)
"""Default (μ, σ_ν, σ, η): about 44% of agents trade on an average step, from about 7% to 87%
(10th to 90th percentile), so both sides of every threshold are visited."""

STEEPNESS = 5.0
RESET_PROBABILITY = 0.1


@dataclass
class ContNoise:
    """The random numbers of one simulation: ``z`` (N,) now, ``(ζ_t, reset_t)`` per step."""

    n_agents: int
    n_steps: int
    seed: int
    predrawn: bool = True

    def __post_init__(self) -> None:
        if self.n_agents < 1 or self.n_steps < 0:
            raise ValueError(f"ContNoise: need n_agents >= 1 and n_steps >= 0, got "
                             f"{self.n_agents} and {self.n_steps}")
        b = _backend.get_backend()
        self.z = b.asarray(b.make_rng(self._key(-1)).standard_normal(self.n_agents))
        self._zeta = self._reset = None
        if self.predrawn and self.n_steps:
            draws = [self._draw(t) for t in range(self.n_steps)]
            self._zeta = [d[0] for d in draws]
            self._reset = b.xp.stack([d[1] for d in draws])

    def _key(self, t: int) -> int:
        return self.seed * 1_000_003 + t + 1

    def _draw(self, t: int) -> tuple[float, Any]:
        rng = _backend.get_backend().make_rng(self._key(t))
        zeta = float(rng.standard_normal())
        gumbel = gumbel_noise(uniform_like(rng, (2, self.n_agents)))
        logit = math.log(RESET_PROBABILITY) - math.log(1.0 - RESET_PROBABILITY)
        return zeta, (logit + gumbel[0, ...] - gumbel[1, ...]) > 0

    def step(self, t: int) -> tuple[float, Any]:
        """(ζ_t, the boolean reset mask of step t); the same values every time it is asked."""
        if self._reset is not None:
            return self._zeta[t], self._reset[t, ...]
        return self._draw(t)


def cont_step(theta: Any, noise: ContNoise, k: float = STEEPNESS
              ) -> Callable[[tuple[Any, Any], int], tuple[Any, Any]]:
    """The step function (ν, Σ r²) ↦ (ν', Σ r² + r_t²) of the model at parameters θ."""
    sigma, eta = theta[2], theta[3]
    depth = noise.n_agents * eta

    def step(state: tuple[Any, Any], t: int) -> tuple[Any, Any]:
        nu, total = state
        zeta, reset = noise.step(t)
        eps = sigma * zeta
        orders = soft_step(eps - nu, k) - soft_step(-nu - eps, k)
        r = _sum(orders) / depth
        return where(reset, _abs(r), nu), total + r * r

    return step


def cont_loss(theta: Any, noise: ContNoise, *, k: float = STEEPNESS,
              snapshots: int | None = None, checkpointed: bool = False) -> Any:
    """Σ_t r_t² of one simulation at θ = (μ, σ_ν, σ, η), with minidiff ops.

    With ``checkpointed=True`` the time loop is :func:`minidiff.checkpointed_loop` (under
    reverse mode the tape keeps ``snapshots`` states instead of every step's residuals).
    """
    mu, sigma_nu = theta[0], theta[1]
    nu = exp(mu + sigma_nu * noise.z)
    state = (nu, asarray(0.0))
    step = cont_step(theta, noise, k)
    if checkpointed:
        return checkpointed_loop(step, state, noise.n_steps, snapshots)[1]
    for t in range(noise.n_steps):
        state = step(state, t)
    return state[1]
