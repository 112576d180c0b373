"""The generator: NumPy-style draws on the current backend, children and keyed streams, and
the samplers (the package notes, :mod:`minidiff.random`, explain the rules and each kind)."""

from __future__ import annotations

import itertools
import operator
import secrets
from typing import Any

from .. import backend as _backend
from ..batching import BatchingError, batch_levels, check_batched_draw
from ..checkpointing import birth_mark, check_draw, check_entropy
from ..core import Box, raw, shape_of, strip_inactive
from ..ops import (
    add,
    equal,
    exp,
    getitem,
    log,
    log1p,
    multiply,
    negative,
    stop_gradient,
    subtract,
    where,
)
from ..ops import sum as _sum
from .arguments import (
    as_parameter,
    check_nonnegative,
    check_probs,
    out_shape,
    plain_probability,
    size_shape,
)
from .discrete_gradients import attach, attach_categorical, check_estimator, gumbel_noise
from .distributions import (
    Bernoulli,
    Binomial,
    Categorical,
    Geometric,
    Poisson,
    categorical_sample,
    check_probability,
    on_values,
    traced_beyond_batching,
    uniform_like,
)
from .from_uniform import engine_sampler
from .indicators import bernoulli_indicators
from .keys import Child, canonical_key, derived_seed

__all__ = ["Generator", "default_rng"]


def default_rng(seed: Any = None) -> Generator:
    """A generator seeded by a non-negative integer (fresh entropy for ``None``); a Generator
    is returned unchanged."""
    if isinstance(seed, Generator):
        return seed
    return Generator(seed)


class _Ledger:
    """The running, traced sum of log p(x; θ) over score-estimator draws."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total: Any = None


class Generator:
    """NumPy-style random numbers on the current backend, with children and keyed streams.

    Made by :func:`default_rng`. Every draw advances the generator, as NumPy's does: reusing
    it gives fresh numbers. ``child()`` (or NumPy's ``spawn(n)``) hands out independent
    children and advances this generator; ``stream(key)`` gives the child keyed by ``key``,
    the same one every time, without advancing anything (common random numbers, replayable
    steps). Methods take NumPy's names and defaults; discrete samplers add ``estimator=``
    (see :mod:`minidiff.random`).
    """

    def __init__(self, seed: Any = None, *, _path: tuple | None = None,
                 _ledger: _Ledger | None = None) -> None:
        if _path is None:
            if seed is None:
                check_entropy("default_rng")
                if batch_levels():
                    raise BatchingError(
                        "default_rng: a generator from fresh entropy (seed None) made inside "
                        "minidiff.vmap would give every batch element the same numbers, where "
                        "a loop would give each its own; pass one generator per element as a "
                        "batched argument (rng.spawn(n)), or a seed")
                seed = secrets.randbits(63)
            if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(
                    seed, "__index__"):
                raise TypeError(f"default_rng: seed must be a non-negative integer or None, "
                                f"got {seed!r}")
            seed = operator.index(seed)
            if seed < 0:
                raise ValueError(f"default_rng: seed must be non-negative, got {seed}")
            _path = (seed,)
        self._path = _path
        self._backend = _backend.get_backend()
        self._rng = self._backend.make_rng(_path[0] if len(_path) == 1 else derived_seed(_path))
        self._ledger = _ledger if _ledger is not None else _Ledger()
        self._children = itertools.count()  # next() is atomic: two threads never share a child
        self._born = birth_mark()  # see checkpointing.check_draw
        self._batch_born = batch_levels()  # see batching.check_batched_draw

    def __repr__(self) -> str:
        keys = "".join(f".spawn()[{k.index}]" if isinstance(k, Child) else f".stream({k!r})"
                       for k in self._path[1:])
        return f"default_rng({self._path[0]}){keys}"

    @property
    def seed(self) -> int:
        """The root seed (an integer, drawn from the OS when ``default_rng(None)``)."""
        return self._path[0]

    @classmethod
    def _keyed(cls, path: tuple, ledger: _Ledger, born: tuple, batch_born: tuple,
               backend: Any) -> Generator:
        """The generator at ``path`` (what ``Generator(_path=path, _ledger=ledger)`` makes),
        with its stamps given: a batched generator makes one per element per stream, and
        stamps them all at once."""
        g = cls.__new__(cls)
        g._path, g._backend, g._ledger = path, backend, ledger
        g._rng = backend.make_rng(derived_seed(path))
        g._children = itertools.count()
        g._born, g._batch_born = born, batch_born
        return g

    def stream(self, key: Any) -> Generator:
        """A child generator whose draws depend only on (seed, path of keys, ``key``).

        ``key`` is a str, an int or a tuple of them. This generator's own state is untouched
        (asking twice gives two generators with the same draws), and the child shares its score
        ledger (``log_prob``)."""
        return Generator(_path=self._path + (canonical_key(key),), _ledger=self._ledger)

    def child(self) -> Generator:
        """A new, independent child generator; this generator advances, so the next call
        gives another one. The i-th child of a generator depends only on its path and i:
        generators made from the same seed hand out the same children in the same order.
        The child shares the score ledger (``log_prob``)."""
        check_batched_draw(self._batch_born, "Generator.child")
        return self._next_child()

    def _next_child(self) -> Generator:
        check_draw(self._born, "Generator.child")
        index = next(self._children)
        return Generator(_path=self._path + (Child(index),), _ledger=self._ledger)

    def spawn(self, n_children: int) -> list[Generator]:
        """``n_children`` new children (NumPy's ``Generator.spawn``): ``child()`` n times."""
        try:
            n = None if isinstance(n_children, bool) else operator.index(n_children)
        except TypeError:
            n = None
        if n is None or n < 0:
            raise ValueError(f"spawn: n_children must be an integer ≥ 0, got {n_children!r}")
        return [self.child() for _ in range(n)]

    def _state(self, what: str) -> Any:
        """The backend generator, about to advance for the sampler ``what``."""
        check_batched_draw(self._batch_born, what)
        return self._member_state(what)

    def _member_state(self, what: str) -> Any:
        """The backend generator, for a draw that the caller has cleared with vmap (one
        member of a batched generator draws for its own element)."""
        check_draw(self._born, what)
        return self._rng

    # -- score-function bookkeeping ---------------------------------------------------------

    @property
    def log_prob(self) -> Any:
        """Σ log p(x; θ) over every ``estimator="score"`` draw since the last reset, by this
        generator and the streams sharing its ledger: a traced scalar when θ is traced."""
        total = self._ledger.total
        if total is None:
            return self._backend.asarray(0.0)
        return strip_inactive(total)

    def reset_log_prob(self) -> None:
        """Forget the score draws so far (do this at the start of each objective evaluation)."""
        self._ledger.total = None

    def score_surrogate(self, f: Any, baseline: Any = 0.0) -> Any:
        """f + stop_gradient(f − b)·(log p − stop_gradient(log p)): value f, derivative
        ∇f + (f − b)∇log p, an unbiased score-function estimate when b does not depend on the
        sample."""
        lp = self.log_prob
        return add(f, multiply(stop_gradient(subtract(f, baseline)),
                               subtract(lp, stop_gradient(lp))))

    def _add_log_prob(self, term: Any) -> None:
        total = self._ledger.total
        self._ledger.total = term if total is None else add(strip_inactive(total), term)

    # -- plain draws --------------------------------------------------------------------------

    def random(self, size: Any = None) -> Any:
        """Uniforms in [0, 1) (no parameters, so no derivative)."""
        shape = size_shape("random", size) or ()
        return self._backend.asarray(self._state("random").random(shape))

    def indicators(self, p: float, size: Any = None) -> Any:
        """Booleans, each True with probability ``p`` independently: Bernoulli(p) trials with
        no derivative (``p`` is a plain number; for a ``p`` that carries one, use
        :meth:`bernoulli`). They are drawn as the gaps between successes
        (:mod:`minidiff.random.indicators`), so a small ``p`` costs about p·size uniforms
        rather than one per trial. Shape ``size``."""
        shape = size_shape("indicators", size) or ()
        return self._indicators(shape, plain_probability("indicators", p))

    def _indicators(self, shape: tuple, p: float) -> Any:
        return self._backend.asarray(bernoulli_indicators(self._state("indicators"), shape, p))

    def _standard_normal(self, what: str, shape: tuple) -> Any:
        return self._backend.asarray(self._state(what).standard_normal(shape))

    def _open_uniform(self, what: str, shape: tuple) -> Any:
        return uniform_like(self._state(what), shape)  # strictly inside (0, 1)

    # -- reparameterised samplers --------------------------------------------------------------

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        """loc + scale·z, z ~ N(0, 1)."""
        loc, scale = as_parameter(loc), as_parameter(scale)
        shape = out_shape("normal", size, loc, scale)
        check_nonnegative("normal", "scale", scale)
        return add(loc, multiply(scale, self._standard_normal("normal", shape)))

    def lognormal(self, mean: Any = 0.0, sigma: Any = 1.0, size: Any = None) -> Any:
        """exp(mean + sigma·z), z ~ N(0, 1)."""
        mean, sigma = as_parameter(mean), as_parameter(sigma)
        shape = out_shape("lognormal", size, mean, sigma)
        check_nonnegative("lognormal", "sigma", sigma)
        return exp(add(mean, multiply(sigma, self._standard_normal("lognormal", shape))))

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> Any:
        """low + (high − low)·U, U ~ U[0, 1)."""
        low, high = as_parameter(low), as_parameter(high)
        shape = out_shape("uniform", size, low, high)
        return add(low, multiply(subtract(high, low), self._uniform01("uniform", shape)))

    def _uniform01(self, what: str, shape: tuple) -> Any:
        return self._backend.asarray(self._state(what).random(shape))

    def exponential(self, scale: Any = 1.0, size: Any = None) -> Any:
        """scale·(−log U), U strictly inside (0, 1)."""
        scale = as_parameter(scale)
        shape = out_shape("exponential", size, scale)
        check_nonnegative("exponential", "scale", scale)
        u = self._open_uniform("exponential", shape)
        return multiply(scale, negative(log(u)) if isinstance(u, Box) else -self._backend.xp.log(u))

    def gumbel(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        """loc − scale·log(−log U), U strictly inside (0, 1), so never infinite or NaN."""
        loc, scale = as_parameter(loc), as_parameter(scale)
        shape = out_shape("gumbel", size, loc, scale)
        check_nonnegative("gumbel", "scale", scale)
        u = self._open_uniform("gumbel", shape)
        noise = negative(log(negative(log(u)))) if isinstance(u, Box) else gumbel_noise(u)
        return add(loc, multiply(scale, noise))

    def logistic(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        """loc + scale·log(U / (1 − U)), U strictly inside (0, 1)."""
        loc, scale = as_parameter(loc), as_parameter(scale)
        shape = out_shape("logistic", size, loc, scale)
        check_nonnegative("logistic", "scale", scale)
        xp = self._backend.xp
        u = self._open_uniform("logistic", shape)
        logit = subtract(log(u), log1p(negative(u))) if isinstance(u, Box) else \
            xp.log(u) - xp.log1p(-u)
        return add(loc, multiply(scale, logit))

    # -- discrete samplers ------------------------------------------------------------------

    def bernoulli(self, p: Any, size: Any = None, estimator: str = "smoothed",
                  tau: float = 1.0, hard: bool = True) -> Any:
        """1 with probability p, else 0 (as floats): X = 1[U < p]."""
        check_estimator("bernoulli", estimator, tau)
        p = as_parameter(p)
        check_probability(p, "bernoulli")
        return self._discrete(Bernoulli, (p,), out_shape("bernoulli", size, p), estimator,
                              tau, hard)

    def binomial(self, n: Any, p: Any, size: Any = None, estimator: str = "smoothed") -> Any:
        """Successes in n trials of probability p, by inversion; derivatives are in p (n is
        an integer: it moves only by finite jumps, which only stochastic triples see)."""
        check_estimator("binomial", estimator)
        n, p = as_parameter(n), as_parameter(p)
        check_probability(p, "binomial")
        xp, nr = _backend.get_backend().xp, raw(n)
        if not bool(xp.all(xp.logical_and(xp.isfinite(nr), xp.logical_and(
                nr >= 0, xp.floor(nr) == nr)))):
            raise ValueError(f"binomial: n must be a finite non-negative integer, got {nr!r}")
        return self._discrete(Binomial, (n, p), out_shape("binomial", size, n, p), estimator)

    def poisson(self, lam: Any = 1.0, size: Any = None, estimator: str = "smoothed") -> Any:
        """Poisson(λ) counts, by inversion."""
        check_estimator("poisson", estimator)
        check_nonnegative("poisson", "lam", lam, finite=True)
        lam = as_parameter(lam)
        return self._discrete(Poisson, (lam,), out_shape("poisson", size, lam), estimator)

    def geometric(self, p: Any, size: Any = None, estimator: str = "smoothed") -> Any:
        """Failures before the first success (support 0, 1, 2, ...), P(X = k) = (1 − p)^k p.

        (NumPy's ``geometric`` counts trials, support 1, 2, ...: this is that minus one.)"""
        check_estimator("geometric", estimator)
        p = as_parameter(p)
        check_probability(p, "geometric")
        if not bool(_backend.get_backend().xp.all(raw(p) > 0)):
            raise ValueError(f"geometric: probability p must lie in (0, 1], got {raw(p)!r}")
        return self._discrete(Geometric, (p,), out_shape("geometric", size, p), estimator)

    def categorical(self, probs: Any, size: Any = None, estimator: str | None = None,
                    one_hot: bool = False, tau: float = 1.0, hard: bool = True) -> Any:
        """A class index in {0, ..., C−1} (as float) with P(c) = probs[..., c], or its one-hot
        vector (shape ``(*batch, C)``) with ``one_hot=True``. ``estimator=None`` means
        ``"straight_through"`` for one-hot samples and ``"none"`` for indices."""
        name = "categorical"
        default = estimator is None
        if default:
            estimator = "straight_through" if one_hot else "none"
        check_estimator(name, estimator, tau, one_hot=one_hot)
        probs = as_parameter(probs)
        check_probs(probs)
        n_cat = shape_of(probs)[-1]
        batch = out_shape(name, size, shape_of(probs)[:-1])
        u = self._open_uniform(name, batch)
        sampler = engine_sampler((probs,))
        if sampler is not None:
            if one_hot:
                raise ValueError("categorical: under stochastic triples the sample is an "
                                 "index; one_hot=True is not supported there")
            return sampler(Categorical, u, (probs,))
        if default and not one_hot and traced_beyond_batching(probs):
            raise ValueError("categorical: an index sample has no derivative in probs; pass "
                             "one_hot=True (straight-through by default), estimator='score', "
                             "or estimator='none' to accept a zero derivative")
        b = _backend.get_backend()
        x = categorical_sample(u, probs)
        if isinstance(x, Box):  # batched by vmap: the one-hot with ops
            classes = b.xp.astype(b.xp.arange(n_cat), b.float_dtype)
            vec = where(equal(classes, getitem(x, (Ellipsis, None))), 1.0, 0.0)
        else:
            vec = b.xp.astype(b.xp.arange(n_cat) == b.xp.astype(x, b.xp.int64)[..., None],
                              b.float_dtype)
        value = vec if one_hot else x
        if estimator == "score":
            self._add_log_prob(_sum(Categorical.log_prob(x, probs)))
            return value
        if not one_hot:
            return x
        v = self._open_uniform(name, (*batch, n_cat)) if estimator == "gumbel_softmax" \
            else None
        return attach_categorical(vec, probs, v, estimator, tau, hard)

    def open_uniform(self, size: Any = None) -> Any:
        """Uniforms strictly inside (0, 1): the U that a discrete sampler of this generator
        would invert next, drawn now (see :func:`bernoulli_from_uniform`)."""
        return self._open_uniform("open_uniform", size_shape("open_uniform", size) or ())

    def _discrete(self, dist: Any, params: tuple, shape: tuple, estimator: str,
                  tau: float = 1.0, hard: bool = True) -> Any:
        """Invert one uniform per sample, then apply ``estimator`` (unless the parameters'
        engine samples by itself)."""
        u = self._open_uniform(dist.name, shape)
        sampler = engine_sampler(params)
        if sampler is not None:
            return sampler(dist, u, params)
        x = on_values(dist.sample, u, *params)
        if estimator == "score":
            if dist.name == "binomial" and traced_beyond_batching(params[0]):
                raise ValueError(
                    "binomial(estimator='score'): the number of trials n is traced, but the "
                    "score function has no derivative in an integer parameter; use "
                    "estimator='smoothed' (d E[X]/dn = p) or stochastic triples, or pass "
                    "minidiff.stop_gradient(n)")
            self._add_log_prob(_sum(dist.log_prob(x, *params)))
            return x
        return attach(dist, x, u, params, shape, estimator, tau, hard)
