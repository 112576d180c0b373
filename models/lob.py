"""A zero-intelligence limit-order book, vectorised over B independent books.

The family of Smith, Farmer, Gillemot & Krishnamurthy (2003), "Statistical theory of the
continuous double auction", *Quantitative Finance* 3, 481–514, with the power-law placement
profile of Cont, Stoikov & Talreja (2010), "A stochastic model for order book dynamics",
*Operations Research* 58, 549–563. Orders arrive at random, independently of everything else
(zero intelligence); the book's shape, spread and price changes are what that order flow and
the matching rule produce. JAX-LOB (Frey, Li, Nagy et al. 2023) runs thousands of such books in
parallel on a GPU; here they are a batch axis B, and the book is also differentiable.

State
-----
Each book holds resting orders of unit size on a grid of price levels (ticks): ``bids`` and
``asks``, shape (B, W), counts of orders at each of W levels of a window that follows the
mid-price. The best bid b = max{p : bids_p > 0} and best ask a = min{p : asks_p > 0} are
computed from the counts (a book with an empty side in the window takes b = −1 or a = W). All
bids lie below all asks: buy orders are placed below the best ask and sell orders above the
best bid, so no limit order is ever marketable.

Equations: one step of length Δt (``dt``), in this order
---------------------------------------------------------
1. Cancellations. Each resting order survives the step with probability e^{−θΔt}:
   bids_p ← Binomial(bids_p, e^{−θΔt}), and the same for asks (each order cancels at rate θ).
2. Limit orders. Buy orders arrive at each distance i = 1..L below the best ask (price a − i),
   sell orders at each distance j = 1..L above the best bid (price b + j):
   bids_{a−i} += Poisson(λ(i) τ),   asks_{b+j} += Poisson(λ(j) τ),
   λ(i) = λ₀ i^{−α},   τ = (1 − e^{−θΔt}) / θ.
   Orders arrive at rate λ(i), and one arriving at time u in the step still rests at its end
   with probability e^{−θ(Δt−u)}; the count of those survivors is Poisson(λ(i)τ) (a thinned
   Poisson process), so orders that come and go within one step are not drawn at all. An
   order inside the spread becomes the new best quote.
3. Which side places first is a fair coin per book and step, and the second side places
   relative to the quote the first side left. (So a buy and a sell order never cross, and the
   book's law is symmetric under buy ↔ sell; always placing one side first would make the
   price drift.)
4. Market orders: Poisson(μΔt) buy and Poisson(μΔt) sell orders, each of ``market_order_size``
   units, consume the best queues in price order: with V the buy volume and
   C_p = Σ_{q<p} asks_q the depth in front of level p, asks_p ← asks_p − clip(V − C_p, 0, asks_p)
   (and the mirror image for sells against the bids). A queue that empties moves the best
   quote to the next non-empty level; volume beyond the whole window's depth is lost.
5. Orders more than L + ⌊pad/2⌋ ticks from the mid-price (further than any order is placed) are
   removed, and the window is moved so that the mid-price sits at its centre.

Deep levels are M/M/∞ queues
----------------------------
A level i ticks from the opposite quote that market orders do not reach receives orders at
rate λ(i) and loses each at rate θ: an M/M/∞ queue, whose stationary law is Poisson(λ(i)/θ).
Steps 1–2 are the exact transition of that queue over Δt: from n orders, Binomial(n, e^{−θΔt})
+ Poisson(λτ), whose stationary mean m solves m = m e^{−θΔt} + λτ, i.e. m = λ/θ for every Δt,
with dm/dλ = 1/θ. The books start there: bids_{a−i}, asks_{b+i} ~ Poisson(λ(i)/θ) around b =
W/2 − 1, a = W/2, so there is no transient at deep levels. With a flat profile (α = 0) every
deep level is such a queue whatever the quotes do; with α > 0 a level's arrival rate changes
when the opposite quote moves, so λ(i)/θ holds only approximately.

Parameters ``params = (λ₀, α, θ, μ)``, rates per unit time
----------------------------------------------------------
* λ₀ (``lam0``, ≥ 0): limit orders per unit time at one tick from the opposite best quote
  (default 1.0).
* α (``alpha``, ≥ 0): decay of the placement profile λ(i) = λ₀ i^{−α}; 0 is SFGK's flat
  profile (default 0.5; Cont, Stoikov and Talreja fit α ≈ 0.5 on Tokyo Stock Exchange data).
* θ (``theta``, > 0): cancellation rate of each resting order (default 0.2).
* μ (``mu``, ≥ 0): market orders per unit time on each side (default 1.0).

Settings (keywords, not differentiated): ``n_levels`` L ≥ 1 (10), the placement range and the
length of the observed profile; ``dt`` Δt > 0 (1.0); ``market_order_size`` (an integer ≥ 1, 1):
the units each market order takes (the depths count unit orders, and must stay integers for
the cancellation draws, so the size is a fixed integer rather than a parameter); ``estimator``;
``n_agents`` is the number of books B. The window has W = 2(L + pad) levels, pad = max(2, L/2).

Observed
--------
Shape (T, B, 2 + 2L): for each step and book, after the step,

* column 0: the mid-price return, (a + b)/2 minus its value a step before, in ticks;
* column 1: the spread a − b, in ticks;
* columns 2..L+1: the bid depth at distances 1..L below the best ask (bids_{a−i});
* columns L+2..2L+1: the ask depth at distances 1..L above the best bid (asks_{b+i}).

Loss
----
``loss(simulated, observed)`` compares summary statistics, averaged over books and steps (books
are exchangeable, so the two runs may hold different numbers of books, but the same number of
steps and levels): m = (½ log(r₀² + mean r²), log mean spread, log(1 + mean depth at distance i)
for i = 1..L, both sides pooled); loss = Σ_j (m_j(sim) − m_j(obs))². ``summary_statistics`` gives
m. The volatility term has a floor r₀ = ½ tick, the price grid's resolution (the mid-price moves
in half ticks, so a non-zero r² is at least ¼): a deep book with few market orders (large λ₀/θ,
small μ) can keep its mid-price still for the whole run, and ½ log mean r² would be −∞ there,
an infinite loss with a NaN gradient. With the floor every statistic is finite (the spread is at
least one tick), and the loss is finite for every valid parameter.

Estimators, and who sees what
-----------------------------
Every random number is a discrete draw by inversion from the keyed stream
``rng.stream(("step", t))`` (the initial book from ``rng.stream("initial")``), and the draws'
shapes never depend on θ, so runs at nearby parameters share their uniforms (common random
numbers). The quotes, the spread and the returns are functions of *which* levels are empty,
piecewise constant in θ:

* under :func:`minidiff.stochastic.derivative_estimate` (stochastic triples) every draw proposes
  its jumps and every comparison is evaluated in the alternative world, so the derivatives of
  returns, spread and depth are all unbiased;
* under ``jacfwd`` and ``grad`` the samplers' ``estimator`` (default ``"smoothed"``) carries the
  derivative of each count; the quotes carry none (their moves are finite jumps), so only the
  depths have derivatives there. That is unbiased where the book is linear in the draws (the
  deep M/M/∞ levels) and biased near the quotes.

The cancellation draw Binomial(n, e^{−θΔt}) has a traced n; the library's smoothed binomial
carries the derivative in p only, so this module adds the part in n, p·δn, itself (see
``_survivors``). Depths are integers, so clip in step 4 meets exact ties; where no market
order came nothing is taken, derivative included (a tie would otherwise share a derivative).
The window follows the primal world's mid-price, the same shift in every world (a relabelling
of the price grid), and each world removes far orders around its own mid.

Simplified from SFGK and CST, and why: time is discrete (the order of the sub-steps within Δt
matters only near the quotes; smaller Δt approaches continuous time); all orders have unit size
and market orders an integer size, so depths are counts; market orders come in at a fixed rate
on each side; orders far outside the placement range are dropped (a finite window, which the
GPU needs); there are no hidden orders, no agents' strategies, no tick-size choice.
"""

from __future__ import annotations

import math
from typing import Any

import minidiff as md
from minidiff.batching import batch_levels, unbatched_raw
from minidiff.core import Box, shape_of
from minidiff.distributions import Coordinatewise, Exp, Independent, Normal
from minidiff.random import binomial_from_uniform, poisson_from_uniform
from minidiff.stochastic.triples import perturbed

from ._checks import check_count, check_estimator, check_number, generator, unpack
from ._reference_loop import python_loop
from .registry import Calibration

__all__ = ["simulate", "loss", "summary_statistics", "window_size", "DEFAULT_PARAMS",
           "PARAM_NAMES", "DEFAULT_N_LEVELS", "DEFAULT_N_BOOKS", "RETURN_FLOOR"]

PARAM_NAMES = ("lam0", "alpha", "theta", "mu")
DEFAULT_PARAMS = (1.0, 0.5, 0.2, 1.0)
DEFAULT_N_LEVELS = 10
DEFAULT_N_BOOKS = 100
RETURN_FLOOR = 0.5  # r₀: the smallest move of the mid-price, in ticks (the volatility's floor)
_WHERE = "lob.simulate"
_LABELS = {"lam0": "lam0 (limit-order rate at one tick)",
           "alpha": "alpha (decay of the placement profile)",
           "theta": "theta (cancellation rate)",
           "mu": "mu (market-order rate per side)"}


def window_size(n_levels: int) -> tuple[int, int]:
    """(W, pad): the window of W = 2(L + pad) levels, pad = max(2, L // 2)."""
    pad = max(2, n_levels // 2)
    return 2 * (n_levels + pad), pad


def simulate(params: Any, *, n_timesteps: int, n_agents: int = DEFAULT_N_BOOKS, rng: Any,
             estimator: str = "smoothed", n_levels: int = DEFAULT_N_LEVELS, dt: float = 1.0,
             market_order_size: int = 1) -> Any:
    """Returns, spread and depth profile of B books, shape (T, B, 2 + 2L) (module notes).

    Args:
        params: (λ₀, α, θ, μ), a sequence or array of 4 numbers, possibly traced.
        n_timesteps: T ≥ 1 steps.
        n_agents: the number of books B ≥ 1.
        rng: an int seed, a :class:`minidiff.random.Generator`, or None (fresh entropy).
        estimator: the discrete samplers' estimator under jacfwd/grad (``"smoothed"``, ...).
        n_levels: L ≥ 1, the placement range in ticks and the length of the observed profile.
        dt: the step length Δt > 0.
        market_order_size: units taken by each market order, an integer ≥ 1.

    Under ``grad`` and ``jacfwd`` the time loop is :func:`minidiff.scan` over segments of
    steps, each reading its steps' uniforms as ``xs``: the same draws, values and derivatives
    as the Python loop that draws each step from its keyed streams, and faster. The primal,
    stochastic triples, ``vmap`` (refused, see the module notes) and ``estimator="score"``
    keep that Python loop.
    """
    return _run(params, n_timesteps, n_agents, rng, estimator, n_levels, dt,
                market_order_size, loop=False)


def _run(params: Any, n_timesteps: int, n_agents: int, rng: Any, estimator: str,
         n_levels: int, dt: float, market_order_size: int, loop: bool) -> Any:
    """:func:`simulate`; ``loop`` keeps the Python loop wherever it runs."""
    lam0, alpha, theta, mu = unpack(_WHERE, params, PARAM_NAMES)
    check_number(_WHERE, _LABELS["lam0"], lam0, 0.0)
    check_number(_WHERE, _LABELS["alpha"], alpha, 0.0)
    check_number(_WHERE, _LABELS["theta"], theta, 0.0, open_low=True)
    check_number(_WHERE, _LABELS["mu"], mu, 0.0)
    n_timesteps = check_count(_WHERE, "n_timesteps", n_timesteps, 1)
    n_books = check_count(_WHERE, "n_agents", n_agents, 1)  # the number of books
    n_levels = check_count(_WHERE, "n_levels", n_levels, 1)
    size = check_count(_WHERE, "market_order_size", market_order_size, 1)
    dt = check_number(_WHERE, "dt (step length)", dt, 0.0, open_low=True, traced=False)
    check_estimator(_WHERE, estimator)
    rng = generator(_WHERE, rng)

    book = _Book(n_books, n_levels, alpha, estimator)
    keep = md.exp(-(theta * dt))                  # e^{−θΔt}, survival of a resting order
    tau = -md.expm1(-(theta * dt)) / theta        # τ = (1 − e^{−θΔt}) / θ
    rate_scale = lam0 * tau                       # λ₀τ: expected survivors at one tick
    initial = rng.stream("initial")
    bids, asks = book.initial(lambda rate: initial.poisson(rate, estimator=estimator),
                              lam0 / theta)
    bid, ask = book.quotes(bids, asks)
    mid = md.add(book.offset, 0.5 * (ask + bid))
    step = _step(book, keep, rate_scale, mu * dt, float(size), estimator)
    if loop or not _scans((lam0, alpha, theta, mu), estimator):
        rows = []
        for t in range(n_timesteps):
            (bids, asks, mid), row = step((bids, asks, mid), _Streams(rng.stream(("step", t)),
                                                                      estimator))
            rows.append(row)
        return md.stack(rows)
    parts, carry = [], (bids, asks, mid, book.offset)
    for start, stop in _segments(n_timesteps, n_books * book.width):
        carry, rows = md.scan(step, carry, _uniforms(rng, start, stop, book))
        parts.append(rows)
    return parts[0] if len(parts) == 1 else md.concatenate(parts)


_python_loop = python_loop(simulate, _run)


def _scans(params: tuple, estimator: str) -> bool:
    """Whether the time loop runs as :func:`minidiff.scan`: where it is differentiated by
    ``grad`` or ``jacfwd`` with an estimator a scan body can hold. The primal, ``vmap`` (whose
    window moves refuse, see :func:`_primal`), stochastic triples (each world's draws and the
    primal world's window move) and ``"score"`` keep the Python loop."""
    return (estimator != "score" and not batch_levels() and not perturbed(*params)
            and any(isinstance(p, Box) for p in params))


class _Streams:
    """A step's draws from its keyed stream, as the Python loop makes them."""

    def __init__(self, step: Any, estimator: str) -> None:
        self.step, self.estimator = step, estimator
        self.market = step.stream("market")

    def cancel(self, side: str, n: Any, p: Any) -> Any:
        return self.step.stream(f"cancel {side}").binomial(n, p, estimator=self.estimator)

    def buy_first(self, n_books: int) -> Any:
        return self.step.stream("order").random((n_books, 1)) < 0.5

    def place(self, side: str, rate: Any) -> Any:  # each pass asks afresh: the same uniforms
        return self.step.stream(side).poisson(rate, estimator=self.estimator)

    def market_orders(self, rate: Any, n_books: int) -> tuple[Any, Any]:
        return tuple(self.market.poisson(rate, size=(n_books, 1), estimator=self.estimator)
                     for _ in range(2))


class _Uniforms:
    """A step's draws from its uniforms (a row of the scan's ``xs``): the same numbers."""

    def __init__(self, x: dict, estimator: str) -> None:
        self.x, self.estimator = x, estimator

    def cancel(self, side: str, n: Any, p: Any) -> Any:
        return binomial_from_uniform(self.x[f"cancel {side}"], n, p, self.estimator)

    def buy_first(self, n_books: int) -> Any:
        return self.x["order"]

    def place(self, side: str, rate: Any) -> Any:
        return poisson_from_uniform(self.x[side], rate, self.estimator)

    def market_orders(self, rate: Any, n_books: int) -> tuple[Any, Any]:
        return tuple(poisson_from_uniform(self.x[f"market {k}"], rate, self.estimator)
                     for k in (0, 1))


def _uniforms(rng: Any, start: int, stop: int, book: _Book) -> dict:
    """Steps [start, stop)'s draws as xs: the uniforms each of :class:`_Streams`' draws
    inverts, and the coins of which side places first, stacked over the steps."""
    rows: dict[str, list] = {}
    shape, column = (book.n_books, book.width), (book.n_books, 1)
    for t in range(start, stop):
        step = rng.stream(("step", t))
        market = step.stream("market")
        for name, value in (("cancel bids", step.stream("cancel bids").open_uniform(shape)),
                            ("cancel asks", step.stream("cancel asks").open_uniform(shape)),
                            ("order", step.stream("order").random(column) < 0.5),
                            ("buys", step.stream("buys").open_uniform(shape)),
                            ("sells", step.stream("sells").open_uniform(shape)),
                            ("market 0", market.open_uniform(column)),
                            ("market 1", market.open_uniform(column))):
            rows.setdefault(name, []).append(value)
    xp = md.get_backend().xp
    return {name: xp.stack(values) for name, values in rows.items()}


_SEGMENT_VALUES = 2**16  # about the uniforms one scan of the time loop reads at most, per array


def _segments(n_timesteps: int, n_values: int) -> list[tuple[int, int]]:
    """The time loop as scans of L = max(16, 2¹⁶ // (B W)) steps, each reading its steps'
    uniforms when it starts, so that what a run holds besides its state stays flat in T."""
    length = max(16, _SEGMENT_VALUES // n_values)
    return [(t, min(t + length, n_timesteps)) for t in range(0, n_timesteps, length)]


def _step(book: _Book, keep: Any, rate_scale: Any, market_rate: Any, size: float,
          estimator: str) -> Any:
    """step(carry, draws) = (carry after the step, its observed row (B, 2 + 2L)): the Python
    loop's step (carry (bids, asks, mid), draws a :class:`_Streams`; the window's offset lives
    in ``book``) or the scan's (carry (bids, asks, mid, offset), draws a row of
    :func:`_uniforms`' xs)."""

    def step(carry: tuple, x: Any) -> tuple[tuple, Any]:
        scanned = not isinstance(x, _Streams)
        draws = _Uniforms(x, estimator) if scanned else x
        bids, asks, mid = carry[:3]
        offset = carry[3] if scanned else book.offset
        bids = _survivors(lambda n, p: draws.cancel("bids", n, p), bids, keep, estimator)
        asks = _survivors(lambda n, p: draws.cancel("asks", n, p), asks, keep, estimator)
        bid, ask = book.quotes(bids, asks)
        # which side of each book places its limit orders first (a fair coin: the book's
        # law is symmetric under buy ↔ sell); each side's two draws share their uniforms
        # and only one of them has a non-zero rate in any book
        first = draws.buy_first(book.n_books)
        for n_pass, buyers in enumerate((first, md.logical_not(first) if scanned else ~first)):
            bids = bids + book.arrivals(lambda rate: draws.place("buys", rate),
                                        book.distance(ask, below=True), rate_scale, buyers)
            asks = asks + book.arrivals(lambda rate: draws.place("sells", rate),
                                        book.distance(bid, below=False), rate_scale,
                                        md.logical_not(buyers) if scanned else ~buyers)
            if n_pass == 0:
                bid, ask = book.quotes(bids, asks)
        buy, sell = draws.market_orders(market_rate, book.n_books)
        if size != 1.0:
            buy, sell = buy * size, sell * size
        asks = asks - _consumed(asks, buy, from_low=True)
        bids = bids - _consumed(bids, sell, from_low=False)
        bid, ask = book.quotes(bids, asks)
        new_mid = md.add(offset, 0.5 * (ask + bid))
        row = book.observe(new_mid - mid, bids, asks, bid, ask)
        if scanned:
            bids, asks, offset = book.recentre_in_place(bids, asks, bid, ask, offset)
            return (bids, asks, new_mid, offset), row
        bids, asks = book.recentre(bids, asks, bid, ask)
        return (bids, asks, new_mid), row

    return step


# ---------------------------------------------------------------------------------------------
# the book's mechanics
# ---------------------------------------------------------------------------------------------


def _survivors(binomial: Any, n: Any, keep: Any, estimator: str) -> Any:
    """Binomial(n, keep) drawn by ``binomial(n, p)``, with the smoothed derivative in n as
    well as in keep.

    The smoothed binomial's slope is in p only; for a traced n this adds keep·(n − n̄) (value 0,
    derivative keep·δn, so E[δX] = n δp + p δn). Triples couple n's worlds themselves."""
    if estimator == "smoothed" and isinstance(n, Box) and not perturbed(n, keep):
        fixed = md.stop_gradient(n)
        return binomial(fixed, keep) + keep * (n - fixed)
    return binomial(n, keep)


def _consumed(depth: Any, volume: Any, *, from_low: bool) -> Any:
    """Units taken from each level by market volume (B, 1) walking the book from the best
    quote: clip(V − depth in front, 0, depth), the depth in front a running sum.

    Where no market order came (V = 0) nothing is taken, derivative included: clip's ties
    (an empty level with 0 in front) would otherwise share a derivative out of nothing."""
    running = md.cumsum(depth, axis=1)
    if from_low:   # asks: the best is the lowest level; in front = Σ_{q<p}
        in_front = running - depth
    else:          # bids: the best is the highest level; in front = Σ_{q>p}
        in_front = md.sum(depth, axis=1, keepdims=True) - running
    taken = md.minimum(md.maximum(volume - in_front, 0.0), depth)
    return md.where(volume > 0.5, taken, 0.0)


class _Book:
    """The window's geometry and the steps that need it (B books, L levels, W = 2(L + pad))."""

    def __init__(self, n_books: int, n_levels: int, alpha: Any, estimator: str) -> None:
        b = md.get_backend()
        self.xp, self.float = b.xp, b.float_dtype
        self.n_books, self.n_levels, self.estimator = n_books, n_levels, estimator
        self.decay = md.negative(alpha)    # −α
        self.width, self.pad = window_size(n_levels)
        self.centre = self.width // 2 - 1   # the best bid's level when the spread is 1 tick
        self.positions = self.xp.reshape(self.xp.arange(self.width, dtype=self.float),
                                         (1, self.width))
        self.distances = self.xp.reshape(self.xp.arange(1, n_levels + 1, dtype=self.float),
                                         (1, 1, n_levels))
        self.offset = self.xp.zeros((n_books, 1), dtype=self.float)  # price of level 0, ticks
        self.rows = self.xp.reshape(self.xp.arange(n_books), (n_books, 1))

    def initial(self, poisson: Any, scale: Any) -> tuple[Any, Any]:
        """Poisson(λ(i)/θ) orders i = 1..L ticks from a best bid at c and a best ask at
        c + 1 (scale = λ₀/θ: the deep levels' stationary law), drawn by ``poisson(rate)``."""
        grid = md.get_backend().xp.broadcast_to(self.positions, (self.n_books, self.width))
        bids = self.arrivals(poisson, self.centre + 1.0 - grid, scale, True)
        asks = self.arrivals(poisson, grid - float(self.centre), scale, True)
        return bids, asks

    def best_bid(self, bids: Any) -> Any:
        """max{p : bids_p > 0}, or −1: (the number of levels with a bid at or above) − 1."""
        at_or_above = md.sum(bids, axis=1, keepdims=True) - md.cumsum(bids, axis=1) + bids
        return md.sum(md.where(at_or_above > 0.5, 1.0, 0.0), axis=1, keepdims=True) - 1.0

    def best_ask(self, asks: Any) -> Any:
        """min{p : asks_p > 0}, or W: W − (the number of levels with an ask at or below)."""
        at_or_below = md.cumsum(asks, axis=1)
        return float(self.width) - md.sum(md.where(at_or_below > 0.5, 1.0, 0.0), axis=1,
                                          keepdims=True)

    def quotes(self, bids: Any, asks: Any) -> tuple[Any, Any]:
        """(best bid, best ask), each (B, 1)."""
        return self.best_bid(bids), self.best_ask(asks)

    def distance(self, quote: Any, *, below: bool) -> Any:
        """Ticks from the opposite quote to each level, (B, W): quote − p or p − quote."""
        return md.subtract(quote, self.positions) if below else md.subtract(self.positions,
                                                                               quote)

    def arrivals(self, poisson: Any, distance: Any, scale: Any, books: Any) -> Any:
        """Poisson(scale·d^{−α}) new orders at the levels d = 1..L ticks from the opposite
        quote, in the chosen ``books`` (a (B, 1) mask, or True); none elsewhere; drawn by
        ``poisson(rate)``."""
        inside = md.logical_and(distance > 0.5, distance < self.n_levels + 0.5)
        safe = md.where(inside, distance, 1.0)
        rate = md.where(md.logical_and(inside, books), md.power(safe, self.decay) * scale, 0.0)
        return poisson(rate)

    def observe(self, ret: Any, bids: Any, asks: Any, bid: Any, ask: Any) -> Any:
        """One row of the observed series, (B, 2 + 2L)."""
        bid_profile = self._profile_at(bids, self.distance(ask, below=True))
        ask_profile = self._profile_at(asks, self.distance(bid, below=False))
        return md.concatenate([ret, ask - bid, bid_profile,
                               ask_profile], axis=1)

    def _profile_at(self, depth: Any, distance: Any) -> Any:
        """depth at distances 1..L (each world reads its own quote), (B, L)."""
        onehot = md.expand_dims(distance, -1) == self.distances        # (B, W, L)
        return md.sum(md.where(onehot, md.expand_dims(depth, -1), 0.0), axis=1)

    def recentre(self, bids: Any, asks: Any, bid: Any, ask: Any) -> tuple[Any, Any]:
        """Remove far orders (each world around its own mid), then move the window so that
        the primal mid sits at the centre: the same relabelling in every world."""
        xp = self.xp
        mid = 0.5 * (ask + bid)
        near = md.abs(md.subtract(self.positions, mid)) <= self.n_levels + self.pad // 2
        bids, asks = md.where(near, bids, 0.0), md.where(near, asks, 0.0)
        shift = xp.floor(_primal(mid)) - self.centre                   # (B, 1), primal
        shift = xp.clip(shift, -float(self.width), float(self.width))
        if not bool(xp.any(shift != 0)):
            return bids, asks
        self.offset = self.offset + shift
        source = self.positions + shift                                 # new p reads old p + k
        valid = (source >= 0) & (source < self.width)
        columns = xp.astype(xp.where(valid, source, float(self.width)), xp.int64)
        pad = md.zeros((self.n_books, 1))
        moved = [md.getitem(md.concatenate([side, pad], axis=1), (self.rows, columns))
                 for side in (bids, asks)]
        return moved[0], moved[1]


    def recentre_in_place(self, bids: Any, asks: Any, bid: Any, ask: Any, offset: Any
                          ) -> tuple[Any, Any, Any]:
        """:meth:`recentre` with minidiff ops only, for a scan's body (the offset is carried,
        the shift is read from the primal mid by ``stop_gradient``): new level p reads old
        level p + k through a (B, W, W) matrix of zeros and ones (no derivative) times the
        old levels: one product x·1 plus zeros, exactly the value a gather reads."""
        mid = 0.5 * (ask + bid)
        near = md.abs(md.subtract(self.positions, mid)) <= self.n_levels + self.pad // 2
        bids, asks = md.where(near, bids, 0.0), md.where(near, asks, 0.0)
        shift = md.clip(md.floor(md.stop_gradient(mid)) - float(self.centre),
                        -float(self.width), float(self.width))                  # (B, 1)
        source = md.expand_dims(md.add(self.positions, shift), -1)            # (B, W, 1)
        reads = md.where(md.equal(source, md.reshape(self.positions, (1, 1, self.width))),
                         1.0, 0.0)                                            # (B, W, W)
        moved = [md.getitem(md.matmul(reads, md.expand_dims(side, -1)), (Ellipsis, 0))
                 for side in (bids, asks)]
        return moved[0], moved[1], md.add(offset, shift)


def _primal(x: Any) -> Any:
    """The primal values of ``x`` as a raw array, for the window's relabelling (the same in
    every world of a derivative). A value batched by ``minidiff.vmap`` is refused: stripping
    its batch axis would hand one book's code every batch element's prices at once."""
    return unbatched_raw(x, "lob.simulate", "the book's price window moves by the mid price "
                         "read as numbers")


# ---------------------------------------------------------------------------------------------
# summary statistics and the loss
# ---------------------------------------------------------------------------------------------


def _levels_of(series: Any, what: str) -> int:
    shape = shape_of(series)
    if len(shape) != 3 or shape[2] < 4 or shape[2] % 2:
        raise ValueError(f"lob.loss: {what} must be a series of shape (T, B, 2 + 2L), as "
                         f"lob.simulate returns, got shape {shape}")
    return (shape[2] - 2) // 2


def summary_statistics(series: Any) -> Any:
    """m = (½ log(r₀² + mean r²), log mean spread, log(1 + mean depth at i), i = 1..L), shape
    (L + 2,), with r₀ = ½ tick (``RETURN_FLOOR``; see the module notes: finite for a book whose
    mid-price never moves).

    Means over steps and books; the depth at distance i pools the bid and ask sides."""
    series = md.asarray(series)
    levels = _levels_of(series, "series")
    means = md.mean(md.reshape(series, (-1, shape_of(series)[2])), axis=0)
    r2 = md.mean(md.square(md.getitem(series, (slice(None), slice(None), 0))))
    depth = 0.5 * (md.getitem(means, slice(2, 2 + levels))
                   + md.getitem(means, slice(2 + levels, None)))
    head = md.stack([0.5 * md.log(RETURN_FLOOR**2 + r2), md.log(md.getitem(means, 1))])
    return md.concatenate([head, md.log1p(depth)])


def loss(simulated: Any, observed: Any) -> Any:
    """Σ_j (m_j(simulated) − m_j(observed))² over the :func:`summary_statistics` m."""
    sim, obs = md.asarray(simulated), md.asarray(observed)
    _levels_of(sim, "simulated"), _levels_of(obs, "observed")
    (ts, _, cs), (to, _, co) = shape_of(sim), shape_of(obs)
    if (ts, cs) != (to, co):
        raise ValueError(f"lob.loss: simulated and observed must have the same number of steps "
                         f"and levels (shape (T, B, 2 + 2L), B may differ), got shapes "
                         f"{shape_of(sim)} and {shape_of(obs)}")
    return md.sum(md.square(summary_statistics(sim) - summary_statistics(obs)))



# ---------------------------------------------------------------------------------------------
# Calibration (``minidiff calibrate``): the prior, the map to natural parameters, the defaults
# ---------------------------------------------------------------------------------------------

__all__ += ["NATURAL", "prior", "CALIBRATION"]

NATURAL = Coordinatewise(Exp(), Exp(), Exp(), Exp())
"""How each coordinate x_j of the unconstrained space (where inference runs) maps to the
natural parameter: every parameter is positive, so each is exp(x_j) (x_j its log)."""


def prior() -> Independent:
    """The default prior x_j ~ N(loc_j, scale_j²) on the logs: λ₀ and μ around
    one order per step (log-sd 1), α around 0.5 and θ around 0.2 (log-sd 0.5): broad,
    weakly informative priors near the book's usual regime."""
    loc, scale = (0.0, math.log(0.5), math.log(0.2), 0.0), (1.0, 0.5, 0.5, 1.0)
    return Independent(Normal(list(loc), list(scale)))


CALIBRATION = Calibration({"n_timesteps": 50, "n_agents": 20}, "model", 0.01, 8, 100, 0.05)
