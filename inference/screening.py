"""A global first stage before the gradient steps: prior-predictive screening.

Gradient descent on L(φ) from the prior's centre follows the local slope of the loss, and on a
multimodal loss it can settle in a mode far from the data's (an SIR fit sliding into the
no-epidemic mode, β < γ, where the loss is flat). Screening looks at the whole prior first:

1. draw M parameter sets θ_1..θ_M ~ π and evaluate ℓ(θ_m) once each (the stream ("screen", m)
   of the run's seed);
2. keep the elite, the ⌈ρM⌉ draws with the smallest loss (ρ = ``elite``, 0.1 by default);
3. start q at the elite's mean, with each coordinate's sd the elite's sd, clipped to
   [``min_scale``, 1] × the prior's sd: a start as wide as the elite's spread keeps the search
   honest about what M draws cannot resolve, and never wider than the prior.

The elite (rather than the single best draw) is the start because one loss evaluation of a
stochastic simulator is noisy: the best of M noisy values is partly the luckiest, while the
elite's centre averages over ⌈ρM⌉ of them. Non-finite losses count as worst; if every draw
is non-finite the screening raises, naming M and what to try.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import minidiff as md
from minidiff.distributions import as_vector
from minidiff.random import default_rng
from minidiff.validation import check_int

__all__ = ["screen", "Screening"]


@dataclass
class Screening:
    """M prior draws ``theta`` (M, d) with their ``losses`` (non-finite as inf), the indices of
    the ``elite`` (best first), and the start it gives: ``loc`` (d,) and ``scale`` (d,)."""

    theta: Any
    losses: list[float]
    elite: list[int]
    loc: Any
    scale: Any

    @property
    def best(self) -> float:
        return self.losses[self.elite[0]]


def screen(loss: Callable[[Any, Any], Any], prior: Any, *, n_draws: int, seed: int = 0,
           elite: float = 0.1, min_scale: float = 0.05) -> Screening:
    """Prior-predictive screening (see the module notes): M = ``n_draws`` draws of ``prior``,
    ``loss(theta, rng)`` at each, and q's start from the elite."""
    check_int("screen", "n_draws", n_draws, 2,
              why="the elite's spread needs two draws at least")
    if not 0 < elite <= 1:
        raise ValueError(f"screen: elite must be a share in (0, 1], got {elite!r}")
    prior = as_vector(prior)
    xp = md.get_backend().xp
    theta = md.stop_gradient(prior.sample(default_rng(seed).stream("screen-draws"), n_draws))
    losses = []
    for m in range(n_draws):
        value = float(md.stop_gradient(md.asarray(
            loss(theta[m], default_rng(seed).stream(("screen", m))))))
        losses.append(value if math.isfinite(value) else math.inf)
    order = sorted(range(n_draws), key=lambda m: losses[m])
    k = max(2, math.ceil(elite * n_draws))
    kept = [m for m in order[:k] if math.isfinite(losses[m])]
    if len(kept) < 2:
        raise ValueError(f"screen: the loss was non-finite at {sum(map(math.isinf, losses))} "
                         f"of {n_draws} prior draws, leaving fewer than 2 to start from; check "
                         f"the prior (does it put the simulator where it overflows?) or "
                         f"screen more draws")
    chosen = theta[xp.asarray(kept)]
    prior_sd = md.stop_gradient(prior.std) if _has_std(prior) else xp.std(theta, axis=0)
    loc = xp.mean(chosen, axis=0)
    scale = xp.clip(xp.std(chosen, axis=0), min_scale * prior_sd, prior_sd)
    return Screening(theta, losses, order[:k], loc, scale)


def _has_std(prior: Any) -> bool:
    try:
        return prior.std is not None
    except (AttributeError, NotImplementedError):
        return False
