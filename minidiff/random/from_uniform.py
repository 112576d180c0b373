"""Discrete samples from uniforms drawn beforehand, and which engine samples a discrete draw.

A loop body that must not draw (a :func:`minidiff.scan` step, whose body is a traced program)
takes its uniforms as a row of ``xs`` (drawn by :meth:`Generator.open_uniform` before the loop)
and samples from them with :func:`bernoulli_from_uniform`, :func:`poisson_from_uniform` or
:func:`binomial_from_uniform`: the value and derivative that ``rng.bernoulli`` (and the others)
give when their uniforms are those. :func:`engine_sampler` is shared with the generator's own
samplers: under stochastic triples the engine samples a draw itself, to track its jumps.
"""

from __future__ import annotations

from typing import Any

from .. import backend as _backend
from ..batching import BatchingError, is_batch_level
from ..core import Box, deepest_level, raw, shape_of
from ..ops.linear import broadcasts_to
from .arguments import as_parameter, check_nonnegative
from .discrete_gradients import attach, check_estimator
from .distributions import Bernoulli, Binomial, Poisson, check_probability, on_values

__all__ = ["bernoulli_from_uniform", "binomial_from_uniform", "poisson_from_uniform",
           "engine_sampler"]


def bernoulli_from_uniform(u: Any, p: Any, estimator: str = "smoothed", tau: float = 1.0,
                           hard: bool = True) -> Any:
    """X = 1[U < p] from uniforms ``u`` drawn beforehand (by :meth:`Generator.open_uniform`),
    with ``estimator``'s derivative in p: what ``rng.bernoulli(p, estimator=...)`` returns
    when its uniforms are ``u``, under every transform (stochastic triples' engine samples it
    as it would there).

    For a loop body that must not draw, such as a :func:`minidiff.scan` step: the step's
    uniforms come in as a row of ``xs``. ``u`` has the sample's shape (p broadcast to it).
    ``"score"`` needs a generator's log-probability ledger and is refused: draw with
    ``rng.bernoulli`` in a Python loop for it. p is checked to lie in [0, 1] where its value
    is known; inside a body being traced (``md.jit``, ``md.scan``) it has none yet, and the
    caller must keep it in [0, 1] (as a probability built from checked parameters is)."""
    check_estimator("bernoulli", estimator, tau)
    p = as_parameter(p)
    _check_known(lambda: check_probability(p, "bernoulli_from_uniform"), p)
    return _from_uniform(Bernoulli, u, (p,), estimator, tau, hard)


def poisson_from_uniform(u: Any, lam: Any, estimator: str = "smoothed") -> Any:
    """Poisson(λ) counts by inversion of uniforms ``u`` drawn beforehand: what
    ``rng.poisson(lam, estimator=...)`` returns when its uniforms are ``u`` (see
    :func:`bernoulli_from_uniform`; λ ≥ 0 is checked where its value is known)."""
    check_estimator("poisson", estimator)
    lam = as_parameter(lam)
    _check_known(lambda: check_nonnegative("poisson_from_uniform", "lam", lam, finite=True),
                 lam)
    return _from_uniform(Poisson, u, (lam,), estimator)


def binomial_from_uniform(u: Any, n: Any, p: Any, estimator: str = "smoothed") -> Any:
    """Binomial(n, p) successes by inversion of uniforms ``u`` drawn beforehand: what
    ``rng.binomial(n, p, estimator=...)`` returns when its uniforms are ``u`` (see
    :func:`bernoulli_from_uniform`; n a non-negative integer and p in [0, 1], checked where
    their values are known)."""
    check_estimator("binomial", estimator)
    n, p = as_parameter(n), as_parameter(p)

    def check() -> None:
        xp, nr = _backend.get_backend().xp, raw(n)
        if not bool(xp.all(xp.logical_and(xp.isfinite(nr), xp.logical_and(
                nr >= 0, xp.floor(nr) == nr)))):
            raise ValueError(f"binomial_from_uniform: n must be a finite non-negative "
                             f"integer, got {nr!r}")
        check_probability(p, "binomial_from_uniform")

    _check_known(check, n, p)
    return _from_uniform(Binomial, u, (n, p), estimator)


def _check_known(check: Any, *values: Any) -> None:
    """Run ``check`` of ``values``, unless one is being traced into a program (by ``md.jit``
    or ``md.scan``: it has no numbers yet)."""
    for v in values:
        while isinstance(v, Box):
            if v.level.stages:  # an engine is its level
                return
            v = v.value
    check()


def _from_uniform(dist: Any, u: Any, params: tuple, estimator: str, tau: float = 1.0,
                  hard: bool = True) -> Any:
    """``Generator._discrete`` given its uniforms (every estimator but the score's)."""
    if estimator == "score":
        raise ValueError(f"{dist.name}_from_uniform: estimator 'score' adds log p(x) to a "
                         f"generator's ledger, and this function has no generator; draw with "
                         f"rng.{dist.name}(..., estimator='score') instead")
    shape = shape_of(u)
    for param in params:
        if not broadcasts_to(shape_of(param), shape):
            raise ValueError(f"{dist.name}_from_uniform: a parameter of shape "
                             f"{shape_of(param)} does not broadcast to the uniforms' shape "
                             f"{shape}: each sample inverts its own uniform, so draw u with "
                             f"the sample's full shape (open_uniform(shape))")
    sampler = engine_sampler(params)
    if sampler is not None:
        return sampler(dist, u, params)
    x = on_values(dist.sample, u, *params)
    return attach(dist, x, u, params, shape_of(u), estimator, tau, hard)


# ---------------------------------------------------------------------------------------------
# which engine samples a discrete draw
# ---------------------------------------------------------------------------------------------


def engine_sampler(params: tuple) -> Any:
    """``sample_discrete`` of the engine of the parameters' deepest level, when it has one
    (stochastic triples do: a sample's jumps are theirs to track), else None."""
    level = deepest_level(*params)
    if level is None:
        return None
    sampler = getattr(level.engine, "sample_discrete", None)
    if sampler is None and is_batch_level(level):
        for p in params:  # a sampling engine (triples) inside vmap's boxes
            while isinstance(p, Box):
                inner = p.level.engine
                if p.level.active and getattr(inner, "members", None) is not None:
                    # batched triples: the engine draws for every element, batch axis first
                    return lambda dist, u, ps: inner.sample_discrete_batched(dist, u, ps,
                                                                             level)
                if p.level.active and hasattr(inner, "sample_discrete"):
                    raise BatchingError(
                        "a discrete sampler under minidiff.vmap inside stochastic triples "
                        "(derivative_estimate of a vmapped function) is not supported: the "
                        "triples' pruning would let the jumps of different batch elements "
                        "compete; loop over the batch, or use estimator='smoothed'")
                p = p.value
    return sampler
