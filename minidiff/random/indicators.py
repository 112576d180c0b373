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
numbers drawn depend on the generator's stream alone. The positions are float64 sums of whole
numbers, exact below 2⁵³; a gap too large for that (p below about 1e-14) lies beyond any array.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend

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
    if p < 1e-300:  # 1/log(1 − p) overflows; 1[U < p] is never 1 for a 53-bit U either
        return xp.zeros(shape, dtype=xp.bool)
    scale, size = 1.0 / math.log1p(-p), round_size(m, p)
    rounds, last = [], -1.0
    while last < m:  # a success at or beyond M ends the search: every later one is beyond too
        # U in [0, 1), so log(1 − U) is finite and ≤ 0, and the gap ⌊log(1 − U)/log(1 − p)⌋
        # ≥ 0 (1 − U is uniform on (0, 1] as U is on [0, 1): the same law)
        u = b.asarray(rng.random((size,)))
        positions = last + xp.cumulative_sum(xp.floor(xp.log1p(-u) * scale) + 1.0)
        rounds.append(positions)
        last = float(positions[-1])
    positions = rounds[0] if len(rounds) == 1 else xp.concat(rounds)
    inside = int(xp.searchsorted(positions, xp.asarray([float(m)], dtype=positions.dtype))[0])
    return xp.reshape(b.kernels.mark(m, xp.astype(positions[:inside], xp.int64)), shape)
