"""Generators under ``vmap``: one stream per batch element.

``vmap(f)(thetas, rng.spawn(n))`` hands ``f`` one :class:`BatchedGenerator` made of the n
generators. Every raw draw (uniforms, normals) is made by each member from its own state,
exactly as in the loop ``[f(t, g) for t, g in zip(thetas, gs)]``, and stacked along the batch
axis; everything a sampler computes from those draws then runs batched. Children and keyed
streams are batched too (member b's child or stream), so a model that keys its draws
(``rng.stream(("step", t))``) draws what the loop draws, number for number.

A plain generator made outside the ``vmap`` refuses to draw inside it
(:func:`minidiff.batching.check_batched_draw`): the loop would advance it between elements.
"""

from __future__ import annotations

import itertools
from typing import Any

from .. import backend as _backend
from ..batching import (
    BatchingError,
    BatchTracer,
    batch_levels,
    check_batched_draw,
    register_batched_type,
)
from ..checkpointing import birth_mark, check_draw
from ..core import Level
from .arguments import size_shape
from .distributions import uniform_like
from .generator import Generator, _Ledger
from .indicators import bernoulli_indicators
from .keys import canonical_key

__all__ = ["BatchedGenerator"]


class BatchedGenerator(Generator):
    """Generators ``members[b]``, one per element of the batch of the vmap ``level``."""

    def __init__(self, members: list[Generator], level: Level,
                 _ledger: _Ledger | None = None) -> None:
        if any(isinstance(g, BatchedGenerator) for g in members):
            raise BatchingError("vmap: a list of generators already batched by an outer vmap "
                                "cannot be batched again; flatten the two batch axes into one "
                                "and give one generator per element")
        self._members = list(members)
        self._level = level
        self._backend = _backend.get_backend()
        self._ledger = _ledger if _ledger is not None else _Ledger()
        self._children = itertools.count()
        self._born = birth_mark()
        self._batch_born = batch_levels()

    def __repr__(self) -> str:
        return f"BatchedGenerator({self._members!r})"

    @property
    def seed(self) -> Any:
        raise BatchingError("Generator.seed: a batched generator has one root seed per batch "
                            "element; read them outside vmap")

    def _same(self, members: list[Generator]) -> BatchedGenerator:
        return BatchedGenerator(members, self._level, self._ledger)

    def stream(self, key: Any) -> Generator:
        key = canonical_key(key)  # once for every member (g.stream(key) for each g)
        born, batch_born, backend = birth_mark(), batch_levels(), self._backend
        keyed = Generator._keyed
        return self._same([keyed(g._path + (key,), g._ledger, born, batch_born, backend)
                           for g in self._members])

    def _next_child(self) -> Generator:
        return self._same([g._next_child() for g in self._members])

    def _stacked(self, what: str, draw: Any) -> Any:
        if not self._level.active:
            raise BatchingError(f"{what}: a batched generator was used after its vmap "
                                f"finished; draw inside the vmapped function")
        check_batched_draw(self._batch_born, what)  # an inner vmap would share the draws
        members = self._members
        for born in {id(g._born): g._born for g in members}.values():  # once per stamp
            check_draw(born, what)
        b = self._backend
        return BatchTracer(b.xp.stack([b.asarray(draw(g._rng)) for g in members]),
                           self._level)

    def _state(self, what: str) -> Any:
        raise BatchingError(f"{what}: this sampler draws from the generator's state directly, "
                            f"which a batched generator does not have")

    def random(self, size: Any = None) -> Any:
        shape = size_shape("random", size) or ()
        return self._stacked("random", lambda rng: rng.random(shape))

    def _indicators(self, shape: tuple, p: float) -> Any:
        return self._stacked("indicators", lambda rng: bernoulli_indicators(rng, shape, p))

    def _uniform01(self, what: str, shape: tuple) -> Any:
        return self._stacked(what, lambda rng: rng.random(shape))

    def _standard_normal(self, what: str, shape: tuple) -> Any:
        return self._stacked(what, lambda rng: rng.standard_normal(shape))

    def _open_uniform(self, what: str, shape: tuple) -> Any:
        return self._stacked(what, lambda rng: uniform_like(rng, shape))


register_batched_type(Generator, BatchedGenerator)
