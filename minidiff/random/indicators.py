"""Many Bernoulli(p) trials with a small p: drawn as the gaps between successes.

M independent trials, each a success with probability p, are usually drawn as 1[U_m < p] with
one uniform per trial. Read in order, the same trials form a Bernoulli process, and the numbers
of failures between consecutive successes are independent Geometric(p) variables:
P(G ≥ k) = (1 − p)^k. By inversion of one uniform U in (0, 1),

    G = ⌊log U / log(1 − p)⌋,

and the successes sit at P_1 = G_1, P_{j+1} = P_j + G_{j+1} + 1. The trials at P_1, P_2, ... < M
are the successes and every other trial is a failure: the same joint law as M separate draws,
with about p·M uniforms instead of M. For the update masks of an agent-based model (thousands of
agents, a few per cent of them acting each step) that is the difference between the draws
dominating a step and costing little.

The gaps are drawn in rounds of about p·M + 6 standard deviations + 16 (almost always one round);
another round is drawn only while the last success found is still inside the M trials, so the
numbers drawn depend on the generator's stream alone. A gap is capped at M before it is added
(any gap ≥ M already leaves the array), so the positions stay exact integers in float64.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend
from .distributions import uniform_like

__all__ = ["bernoulli_indicators", "round_size"]


def round_size(m: int, p: float) -> int:
    """Gaps drawn per round: the mean number of successes p·M, six standard deviations more,
    and 16 (so that a second round is about as rare as a six-sigma event)."""
    mean = m * p
    return int(math.ceil(mean + 6.0 * math.sqrt(mean * (1.0 - p)) + 16.0))


def bernoulli_indicators(rng: Any, shape: tuple[int, ...], p: float) -> Any:
    """Booleans of ``shape``, each True with probability ``p`` independently, from the backend
    generator ``rng``: the M = prod(shape) trials in C order, successes at the positions given
    by geometric gaps (see the module notes). ``p`` is a plain float in [0, 1]."""
    b = get_backend()
    xp = b.xp
    m = math.prod(shape)
    if m == 0 or p <= 0.0:
        return xp.zeros(shape, dtype=xp.bool)
    if p >= 1.0:
        return xp.ones(shape, dtype=xp.bool)
    log_q, size = math.log1p(-p), round_size(m, p)
    rounds, last = [], -1.0
    while last < m:  # a success at or beyond M ends the search: every later one is beyond too
        gaps = xp.minimum(xp.floor(xp.log(uniform_like(rng, (size,))) / log_q), float(m))
        positions = last + xp.cumulative_sum(gaps + 1.0)
        rounds.append(positions)
        last = float(positions[-1])
    positions = rounds[0] if len(rounds) == 1 else xp.concat(rounds)
    inside = int(xp.sum(xp.astype(positions < m, xp.int64)))  # the positions increase, so the first `inside` are in
    return xp.reshape(b.kernels.mark(m, xp.astype(positions[:inside], xp.int64)), shape)
