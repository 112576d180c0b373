"""Stochastic triples: unbiased derivatives of programs with discrete randomness.

After Arya, Schauer, Schäfer & Rackauckas (2022), "Automatic Differentiation of Programs with
Discrete Randomness". A *stochastic triple* carries, for each of K parameter directions,

* the value x (the primal world),
* the tangent δ (the infinitesimal part, as in forward mode), and
* an *alternative world*: the value x̃ the program would have had if one discrete draw had come
  out differently, with a weight W (a rate per unit of the parameter).

A discrete sampler whose parameter moves proposes jumps of its sample at some rates
(:mod:`.distributions`); d/dθ E[f] = E[δf + Σ_jumps w · (f(x̃) − f(x))]. Keeping every jump
would cost a world each, so they are *pruned*: each sampler's new jumps compete with the world
already kept, one survives with probability proportional to its rate, and the survivor's weight
is the sum of all of them. The estimate stays unbiased (E[W Δf] sums every candidate's w Δf)
and the program carries one alternative world per direction. Whole arrays of agents are pruned
at once.

Every primitive runs in both worlds: its value and tangent as in forward mode, and its
alternative value by evaluating it on the alternative inputs (one batched call for elementwise
ops). Piecewise-constant primitives (comparisons, ``sign``, ``floor``) have no tangent, but the
engine tracks jumps (``tracks_jumps``), so it sees them too and evaluates them in both worlds:
``x > c`` is a perturbed boolean, and ``where`` on it selects per world, so masked control flow
works; a Python ``if`` on a perturbed value is an error, because it could take only one branch.
When a new jump wins, the world changes and every alternative computed before becomes stale: in
the new world those values are unchanged, which the world counter records.

Discrete samplers of :mod:`minidiff.random` ask the engine of their parameters' level to draw
(``TripleEngine.sample_discrete``), so the random package never needs to know about triples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import backend as _backend
from ..batching import BatchingError, batch_levels
from ..core import (
    Box,
    Engine,
    Level,
    ModeError,
    Primitive,
    active_levels,
    bind,
    deepest_level,
    raw,
    shape_of,
)
from ..ops import reshape, transpose
from ..ops.linear import align_tangent, batch_aligned
from ..pytree import _describe_value, tree_flatten
from ..reverse import ReverseEngine
from .pruning import prune

__all__ = ["StochasticTriple", "batched_derivative_estimate", "derivative_estimate",
           "perturbed", "sample_perturbed"]


class StochasticTriple(Box):
    """(value, tangent, alternative world) at one triple level.

    Attributes:
        value: the primal (a raw array).
        tangent: shape (K, *value.shape), or None where it is zero: a discrete sample, the
            output of a piecewise-constant primitive (a perturbed boolean, a floor), and what
            is computed from those alone (their change is all in the jumps).
        alt: the alternative values, shape (K, *value.shape), or None if no world differs.
        worlds: for each direction, the id of the world ``alt`` belongs to.
    """

    __slots__ = ("tangent", "alt", "worlds")

    def __init__(self, value: Any, tangent: Any, alt: Any, worlds: tuple, level: Level) -> None:
        self.value = value
        self.tangent = tangent
        self.alt = alt
        self.worlds = worlds
        self.level = level

    def __repr__(self) -> str:
        return f"StochasticTriple(value={self.value!r}, tangent={self.tangent!r}, alt={self.alt!r})"

    def __bool__(self) -> bool:
        raise TypeError(
            "a Python `if` (or bool()) on a value carrying a stochastic-triple perturbation "
            "can take only one branch, but the alternative world may take the other, so the "
            "derivative would be wrong; compute both branches and select with "
            "minidiff.where(condition, if_true, if_false) (masking) instead"
        )


def _primal(x: Any, level: Level) -> Any:
    return x.value if isinstance(x, StochasticTriple) and x.level is level else raw(x)


class TripleEngine(Engine):
    """Processes primitives at one triple level with K directions, and owns the worlds.

    Batched (``member_seeds`` given, under the ``vmap`` of :func:`batched_derivative_estimate`):
    every value carries the batch axis of m members first, and each direction keeps one world
    *per member*: world (k, b) differs from the primal only in member b's draws, and member b's
    output depends on member b's draws alone, so one alternative array (K, m, ...) holds all m
    members' worlds at once. The world ids and weights are then indexed k·m + b."""

    tracks_jumps = True  # piecewise-constant primitives jump between worlds: see them too

    def __init__(self, k: int, seed: Any, *,
                 member_seeds: Sequence[Any] | None = None) -> None:
        self.k = k
        make_rng = _backend.get_backend().make_rng
        self.members = None if member_seeds is None else len(member_seeds)  # m, if batched
        worlds = k * (self.members or 1)
        self.current = [0] * worlds      # id of the alternative world kept, per world
        self.weight = [0.0] * worlds     # its weight W (the total rate of all candidates)
        if member_seeds is None:         # the pruning decisions' generator, per direction
            self.rngs = [make_rng(seed)] * k
        else:                            # ... per member, shared by its K directions
            self.rngs = [make_rng(s) for s in member_seeds]

    def snapshot(self) -> tuple:
        return tuple(self.current)

    def live_alt(self, x: Any) -> Any:
        """``x``'s alternative values in the worlds kept now (None if it has none)."""
        if not (isinstance(x, StochasticTriple) and x.level is self) or x.alt is None:
            return None
        live = [w == c for w, c in zip(x.worlds, self.current)]
        if all(live):
            return x.alt
        if not any(live):
            return None
        xp = _backend.get_backend().xp
        shape = shape_of(x.value)
        lead = (self.k,)
        if self.members is not None:  # a value from before a draw: the batch axis leads
            if not shape or shape[0] != self.members:
                raise BatchingError(f"batched stochastic triples: a value of shape {shape} "
                                    f"from before a draw has no leading batch axis of "
                                    f"{self.members} members; run the samples one at a time")
            lead, shape = (self.k, self.members), shape[1:]
        mask = xp.reshape(xp.asarray(live), lead + (1,) * len(shape))
        return xp.where(mask, x.alt, x.value)

    def process(self, primitive: Primitive, args: tuple, params: dict) -> StochasticTriple:
        level = self
        if primitive.differentiable and primitive.jvp is None:
            raise ModeError(f"{primitive.name} has no JVP rule, so stochastic triples "
                            f"(forward mode) cannot differentiate it")
        primals, tangents, alts = [], [], []
        for a in args:
            if isinstance(a, StochasticTriple) and a.level is level:
                primals.append(a.value)
                tangents.append(a.tangent)
                alts.append(self.live_alt(a))
            else:
                primals.append(a)
                tangents.append(None)
                alts.append(None)
        out = bind(primitive, *primals, **params)
        tangent = None  # zero: piecewise constant, or no argument with a tangent (jumps only)
        if primitive.differentiable and any(t is not None for t in tangents):
            tangent = primitive.jvp(tangents, primals, out, **params)
        alt = None
        if any(a is not None for a in alts):
            alt = self._alternative(primitive, primals, alts, out, params)
        return StochasticTriple(out, tangent, alt, self.snapshot(), level)

    def _alternative(self, primitive: Primitive, primals: list, alts: list, out: Any,
                     params: dict) -> Any:
        """The primitive evaluated on the alternative inputs, shape (K, *out.shape)."""
        xp = _backend.get_backend().xp
        target = (self.k, *shape_of(out))
        if primitive.elementwise:
            rank = len(shape_of(out))
            batched = [p if a is None else align_tangent(a, len(shape_of(p)), rank)
                       for p, a in zip(primals, alts)]
            result = raw(bind(primitive, *batched, **params))
            return result if shape_of(result) == target else xp.broadcast_to(result, target)
        pieces = []
        for k in range(self.k):
            args_k = [p if a is None else a[k, ...] for p, a in zip(primals, alts)]
            pieces.append(raw(bind(primitive, *args_k, **params)))
        return xp.stack(pieces)

    def sample_discrete_batched(self, dist: Any, u: Any, params: Sequence[Any],
                                batch: Level) -> Any:
        """:meth:`sample_discrete` for a draw under the ``vmap`` of :func:`
        batched_derivative_estimate` (level ``batch``): the batch axis leads every value, and
        each member's jumps compete only for that member's world."""
        if dist.name == "categorical" or not (isinstance(u, Box) and u.level is batch):
            raise BatchingError(f"{dist.name}: this draw cannot run as batched stochastic "
                                f"triples; run the samples one at a time")
        args = [u, *params]
        batched = [isinstance(a, Box) and a.level is batch for a in args]
        aligned = batch_aligned([a.value if b else a for a, b in zip(args, batched)], batched)
        out = self.sample_discrete(dist, aligned[0], aligned[1:], batch_axis=True)
        return type(u)(out, batch)

    def sample_discrete(self, dist: Any, u: Any, params: Sequence[Any],
                        batch_axis: bool = False) -> StochasticTriple:
        """Draw from ``dist`` by inversion of the uniforms ``u`` with perturbed ``params``.

        The sample's alternative world comes from the same ``u`` at the parameters'
        alternative values (a coupled draw: this is also how a finite change of a Binomial's n
        is handled); its parameters' tangents propose new jumps, which compete with the world
        kept (pruning).
        """
        level = self
        xp = _backend.get_backend().xp
        if (self.members is not None) != batch_axis:
            raise BatchingError(f"{dist.name}: a draw of batched stochastic triples must run "
                                f"under their vmap (and only there)")
        values = [_primal(p, level) for p in params]
        x = dist.sample(u, *values)
        batch_rank = len(shape_of(x))
        alts = [self.live_alt(p) for p in params]
        alt = None
        if any(a is not None for a in alts):
            batched = [v if a is None else _align_param(a, v, batch_rank, dist) for v, a in
                       zip(values, alts)]
            alt = dist.sample(u, *batched)  # u broadcasts against (K, ...) from the right
            alt = xp.broadcast_to(alt, (self.k, *shape_of(x)))
        continuous = params[-1]  # the continuous parameter (p, λ or probs) comes last
        if isinstance(continuous, StochasticTriple) and continuous.level is level and \
                continuous.tangent is not None:
            for other in params[:-1]:  # integer parameters (a Binomial's n) move only in jumps
                if isinstance(other, StochasticTriple) and other.level is level and \
                        other.tangent is not None and bool(xp.any(other.tangent != 0)):
                    raise ValueError(f"{dist.name}: the integer parameter n has a continuous "
                                     f"derivative; n may change only by finite jumps")
            tangent = _align_param(continuous.tangent, values[-1], batch_rank, dist)
            events = dist.events(x, *values, tangent)
            alt = prune(self, x, alt, events, batch_axis)
        return StochasticTriple(x, None, alt, self.snapshot(), level)  # tangent 0: jumps only


def _zeros(shape: tuple) -> Any:
    b = _backend.get_backend()
    return b.xp.zeros(shape, dtype=b.float_dtype)


# ---------------------------------------------------------------------------------------------
# Discrete samplers under triples
# ---------------------------------------------------------------------------------------------


def _triple_level(params: Sequence[Any]) -> Level | None:
    level = deepest_level(*params)
    return level if level is not None and isinstance(level, TripleEngine) else None


def perturbed(*params: Any) -> bool:
    """True when a sampler's parameters carry a stochastic-triple perturbation (their deepest
    level is a triple level)."""
    return _triple_level(params) is not None


def sample_perturbed(dist: Any, u: Any, params: Sequence[Any]) -> StochasticTriple:
    """Draw from ``dist`` by inversion of ``u`` at perturbed ``params``: the triple engine of
    their level draws (:meth:`TripleEngine.sample_discrete`)."""
    return _triple_level(params).sample_discrete(dist, u, params)


def _align_param(alt: Any, value: Any, batch_rank: int, dist: Any) -> Any:
    extra = 1 if dist.name == "categorical" else 0  # probs carry the category axis last
    return align_tangent(alt, len(shape_of(value)), batch_rank + extra)


# ---------------------------------------------------------------------------------------------
# The transform
# ---------------------------------------------------------------------------------------------


def derivative_estimate(f: Callable[[Any], Any], theta: Any, *, seed: Any = None) -> Any:
    """One unbiased sample of d E[f(θ)] / dθ, by stochastic triples (forward mode).

    Args:
        f: a function of θ that draws its randomness from ``minidiff.random`` samplers (or uses
            triples-aware ops) and returns a scalar, an array, or tuples, lists and dicts of
            them.
        theta: a scalar or an array of K parameters; all K partials come back from one pass.
        seed: seed of the pruning decisions (the program's own draws come from its own
            generator).

    Returns an array of shape ``out.shape + theta.shape`` (like ``jacfwd``); for a pytree
    output, the same structure holding one such array per leaf, all from the one pass (so
    they share its draws and pruning decisions).
    """
    if any(isinstance(lv, ReverseEngine) for lv in active_levels()):
        raise TypeError(
            "stochastic triples are a forward-mode estimator and cannot run under grad/vjp "
            "(reverse mode); call derivative_estimate outside the reverse-mode transform, or "
            "use estimator='smoothed', which works in reverse mode"
        )
    if batch_levels():
        raise BatchingError(
            "derivative_estimate under minidiff.vmap is not supported: the triples' pruning "
            "lets the jumps of a whole array compete for one alternative world, which would mix "
            "the batch elements; loop over the batch for stochastic triples, or use "
            "estimator='smoothed' (or 'score'), which vmap batches")
    b = _backend.get_backend()
    theta = b.asarray(theta) if not isinstance(theta, Box) else theta
    if not b.xp.isdtype(raw(theta).dtype, "real floating"):
        raise TypeError(f"derivative_estimate: theta must be floating point, got "
                        f"{raw(theta).dtype}")
    in_shape = shape_of(theta)
    k = 1
    for d in in_shape:
        k *= d
    with TripleEngine(k, seed) as engine:
        seed_tangent = b.xp.reshape(b.xp.eye(k, dtype=b.float_dtype), (k, *in_shape))
        out = f(StochasticTriple(theta, seed_tangent, None, engine.snapshot(), engine))
        leaves, tree = tree_flatten(out)
        worlds = [_worlds(leaf, engine, k) for leaf in leaves]
    return tree.unflatten([_estimate(value, tangent, alt, engine, k, in_shape)
                           for value, tangent, alt in worlds])


def batched_derivative_estimate(f: Callable[[Any], Any], theta: Any,
                                seeds: Sequence[Any]) -> Any:
    """``derivative_estimate`` of every row at once: ``[derivative_estimate(f_b, θ_b,
    seed=seeds[b]) for b]`` as one pass, where ``f`` maps θ (m, d) to (m,) with element b a
    function of row b alone, run under ``minidiff.vmap`` (``f = vmap(f_b)``).

    The pass carries the d directions of one sample, direction j seeded with e_j in every row
    (tangents (d, m, ...), as a batched ``jacfwd``). Each direction keeps one alternative
    world per member b: member b's jumps compete only with each other, pruned by member b's
    own generator (``seeds[b]``) in the loop's order, and since element b of the output
    depends on member b's draws alone, one alternative array holds every member's world.
    Row b is then what sample b's own ``derivative_estimate`` gives: shape (m, d)."""
    if any(isinstance(lv, ReverseEngine) for lv in active_levels()) or batch_levels():
        raise BatchingError("batched_derivative_estimate runs outside grad and vmap")
    b = _backend.get_backend()
    theta = b.asarray(theta) if not isinstance(theta, Box) else theta
    m, d = shape_of(theta)
    if len(seeds) != m:
        raise ValueError(f"batched_derivative_estimate: {len(seeds)} seeds for {m} rows")
    with TripleEngine(d, None, member_seeds=list(seeds)) as engine:
        eye = b.xp.reshape(b.xp.eye(d, dtype=b.float_dtype), (d, 1, d))
        seed_tangent = b.xp.concat([eye] * m, axis=1)                  # e_j in every row
        out = f(StochasticTriple(theta, seed_tangent, None, engine.snapshot(), engine))
        value, tangent, alt = _worlds(out, engine, d)
    if shape_of(value) != (m,):
        raise ValueError(f"batched_derivative_estimate: f must return shape ({m},), got "
                         f"{shape_of(value)}")
    estimate = tangent                                               # (d, m)
    if alt is not None:
        weights = b.xp.reshape(b.xp.asarray(engine.weight, dtype=b.float_dtype), (d, m))
        estimate = tangent + weights * (alt - value)
    return b.xp.permute_dims(estimate, (1, 0))


def _worlds(out: Any, engine: TripleEngine, k: int) -> tuple[Any, Any, Any]:
    """The value, tangent and live alternative world of one output leaf."""
    if isinstance(out, StochasticTriple) and out.level is engine:
        value, tangent, alt = out.value, out.tangent, engine.live_alt(out)
        if tangent is None:  # a zero tangent: the output's change is all in jumps
            tangent = _zeros((k, *shape_of(value)))
        return value, tangent, alt
    if not (isinstance(out, Box | int | float) or hasattr(out, "shape")):
        raise TypeError(f"derivative_estimate: f returned {_describe_value(out)}; it must "
                        f"return arrays (or tuples, lists and dicts of them)")
    value = raw(out)
    return value, _zeros((k, *shape_of(value))), None


def _estimate(value: Any, tangent: Any, alt: Any, engine: TripleEngine, k: int,
              in_shape: tuple) -> Any:
    """tangent + W·(alt − value), laid out as ``value.shape + theta.shape``."""
    b = _backend.get_backend()
    estimate = tangent
    if alt is not None:
        weights = b.xp.reshape(b.xp.asarray(engine.weight, dtype=b.float_dtype),
                               (k,) + (1,) * len(shape_of(value)))
        estimate = tangent + weights * (alt - value)
    out_shape = shape_of(value)
    block = reshape(estimate, (k, -1))
    size = shape_of(block)[1]
    return raw(reshape(transpose(block), (*out_shape, *in_shape))) if size else raw(
        reshape(estimate, (*out_shape, *in_shape)))
