"""Pruning: how stochastic triples keep one alternative world per direction.

A discrete draw proposes candidate jumps, each a change of one element with a rate w_i per
unit of the parameter (:mod:`minidiff.random.distributions`). Keeping every candidate would
cost a world each, so each world keeps one: the new candidates, of total rate R, compete with
the jump the world already keeps, of weight W; a new one wins with probability R / (W + R),
and then candidate i with probability w_i / R; the world's weight becomes W + R. Over a whole
run, jump i is the one kept with probability w_i / W_total (as reservoir sampling keeps each
item with probability proportional to its weight), so E[W_total · Δf] = Σ_i w_i Δf_i: the
estimate stays unbiased whether the candidates come in one draw or in many.

When a new jump wins, the world changes: the alternative row becomes the primal with that one
element changed, and the world's id advances, which marks every alternative value computed
before as stale (the engine then reads the primal in its place).
"""

from __future__ import annotations

from typing import Any

from .. import backend as _backend
from ..core import shape_of

__all__ = ["prune"]


def prune(engine: Any, x: Any, alt: Any, events: list,
           batch_axis: bool = False) -> Any:
    """Let each world's new jumps compete with the jump it keeps; return the new alt.

    Batched triples (``batch_axis``: x's leading axis holds the m members): world (k, b)
    competes only among member b's jumps, pruned by member b's generator."""
    b = _backend.get_backend()
    xp = b.xp
    shape = shape_of(x)
    lead, members = (engine.k,), 1
    if batch_axis:
        members = shape[0]
        lead, shape = (engine.k, members), shape[1:]
    size = 1
    for d in shape:
        size *= d

    def per_world(a: Any) -> Any:  # (*lead, size): every world's candidates in a row
        return xp.reshape(xp.broadcast_to(a, (engine.k, *shape_of(x))), (*lead, size))

    all_rates = xp.concat([per_world(xp.where(e.change == 0, 0.0 * e.rate, e.rate))
                           for e in events], axis=-1)     # (*lead, n_events · size)
    all_changes = xp.concat([per_world(e.change) for e in events], axis=-1)
    totals = b.to_host(xp.sum(all_rates, axis=-1))
    flat_x = xp.reshape(x, (members, size))
    flat_alt = None if alt is None else xp.reshape(alt, (engine.k, members, size))
    wins: dict[tuple[int, int], Any] = {}
    for m in range(members):
        rng = engine.rngs[m] if batch_axis else None
        for k in range(engine.k):
            total = float(totals[k, m] if batch_axis else totals[k])
            if total <= 0:
                continue
            world = k * members + m
            kept = engine.weight[world]
            engine.weight[world] = kept + total
            gen = rng if batch_axis else engine.rngs[k]
            if float(gen.random()) * (kept + total) < total:  # a new jump wins
                target = float(gen.random()) * total
                rates = all_rates[k, m, ...] if batch_axis else all_rates[k, ...]
                cumulative = xp.cumulative_sum(rates)
                j = int(xp.searchsorted(cumulative, xp.asarray(target, dtype=b.float_dtype),
                                        side="right"))
                j = min(j, shape_of(rates)[0] - 1)
                change = all_changes[k, m, j] if batch_axis else all_changes[k, j]
                onehot = xp.astype(xp.arange(size) == j % size, b.float_dtype)
                wins[(k, m)] = flat_x[m, ...] + float(change) * onehot
                engine.current[world] += 1
    if not wins:
        return alt
    rows = [xp.stack([wins[(k, m)] if (k, m) in wins else
                      (flat_x[m, ...] if flat_alt is None else flat_alt[k, m, ...])
                      for m in range(members)]) for k in range(engine.k)]
    return xp.reshape(xp.stack(rows), (engine.k, *shape_of(x)))
