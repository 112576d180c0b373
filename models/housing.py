"""A small differentiable housing market with macroprudential policy, after the Bank of
England's agent-based model of the UK housing market.

A. Carro, M. Hinterschweiger, A. Uluc & J. D. Farmer (2022), "Heterogeneous effects and
spillovers of macroprudential policy in an agent-based model of the UK housing market", Bank of
England Staff Working Paper 976, building on R. Baptista et al. (2016), Staff Working Paper 619.
Households decide each month whether to try to buy; a bank lends within loan-to-value (LTV),
loan-to-income (LTI) and affordability limits, with a share of new loans allowed above the LTI
limit (the Financial Policy Committee's flow limit: at most 15% of new mortgages at LTI ≥ 4.5);
sellers list at a markup over the house price index (HPI) and cut their price while unsold.
The limits are parameters, so one ``jacfwd`` pass gives the response of the HPI, transactions,
approvals and arrears to each of them.

Households i = 1..N (monthly steps; prices in £ thousands, x = log price)
-------------------------------------------------------------------------
Incomes y_i = ȳ e^{σ_y z_i} (annual, log-normal), savings w_i = κ_w y_i e^{σ_w z'_i} (the deposit
they can put down), a taste η_i ~ N(0, 1), and o_i ∈ [0, 1], the probability that household i
owns its home (o_i(0) = σ(logit o₀ + 1.5 log(y_i/ȳ))). Each household's discrete choices (to buy,
to sell) enter through their probabilities, their expectation over its own choice noise: the
market sees expected demand, which with many households is close to the realised one, and the
model is a smooth function of θ given the households.

The economy first runs ``burn_in`` months under :data:`BASELINE_POLICY` (from a stylised start
at HPI ``hpi0``), then the observed months under the limits in ``params``: the series is the
response to a policy change at month 0. Each month, with x_{t−1} = log HPI_{t−1} and the
expected annual growth g_e = h·(x_{t−1} − x_{t−1−ℓ})·12/ℓ, ℓ = min(12, months so far):

1. Sellers. A share ψ of owners list and leave, replaced by renters with their incomes and
   savings: o_i ← (1 − ψ)o_i. New listings ask a₀ = x_{t−1} + m; a listing unsold for a months
   asks a_{a−1} − c (the monthly cut), up to age A − 1.
2. Buyers. A renter tries to buy with probability π_i = π̄ σ(log(y_i/ȳ) + k(R/HPI_{t−1} − r +
   g_e)) (R the rent of a typical home, r the mortgage rate); demand d_i = (1 − o_i)π_i.
3. The bank. A buyer bids the smooth minimum m_s(c) = −s log Σ_k e^{−c_k/s} of
   c_1 = log(M y_i) + σ_D η_i + g_e   (the desired price, M = ``desired_multiple``),
   c_2 = log(w_i / (1 − LTV_cap)),  c_3 = log(w_i + LTI_cap·y_i),  c_4 = log(w_i + aff·y_i/α)
   (loan ≤ LTV_cap·price, loan ≤ LTI_cap·income, annual payment α·loan ≤ aff·income; α the
   25-year annuity factor at r). Flow limit: a share g_t = min(1, ω L_{t−1}/C_{t−1}) of the
   buyers is exempt from c_3 (g = ω at first), with L the new loans and C those whose bid c_3
   set (its weight e^{(m_s(c) − c_3)/s}) last month: exemptions go pro rata to those who need
   them, at most ω of the loans. Approvals (in principle) are the demand whose desired price
   passes the limits: Σ_i d_i[(1 − g) σ((m_s(c_2, c_3, c_4) − c_1)/s) + g σ((m_s(c_2, c_4) −
   c_1)/s)].
4. Matching, a smooth double auction. Bids and asks carry logistic noise of scale s, so a bid b
   succeeds at the clearing log price x with probability σ((log b − x)/s) and a listing asking
   a sells with probability σ((x − a)/s): the expected counts of the sorted auction, a soft
   rank in place of the sort. x solves D(x) = S(x) (D the sum of the buyers' success
   probabilities times demand, S that of the listings' times volume). F = log D − log S falls
   in x: one root, found by bracketed Newton iterations on the values, then one Newton step
   on the traced F, so the derivative is the implicit function theorem's, −∂_θF/∂_xF.
5. Trades, all at the clearing price: HPI_t = e^x; buyer i buys q_i with a loan
   max(e^x − w_i, 0); o_i += q_i; unsold listings age.
6. Stress test. A share u of households (fixed by uniforms) would lose a fraction φ of income;
   a loan is in arrears under that shock when its payment exceeds a share κ of the shocked
   income. Over the loans of the observed months: Σ_i O_i σ((log(α ℓ_i / ((1 − φχ_i) y_i)) −
   log κ)/s) / Σ_i O_i, O_i the home share bought, ℓ_i its mean loan, χ_i = 1 if hit.

Parameters ``params = (LTV_cap, LTI_cap, ω, aff, m, h)``
--------------------------------------------------------
``ltv_cap`` in (0, 1) (default 0.9); ``lti_cap`` > 0 (4.5); ``lti_share`` ω in [0, 1], the
share of new loans allowed above ``lti_cap`` (0.15); ``affordability`` > 0, the largest share
of income for payments (0.33); ``markup`` m, the log markup of new listings (0.04); ``trend``
h ≥ 0, trend following (0.2; larger values give boom-bust cycles). Settings (keywords, not
differentiated): ``n_agents`` N households, ``n_timesteps`` T months, and the names in
:data:`DEFAULT_SETTINGS`. ``estimator`` is checked and unused: there are no discrete draws.

Observed
--------
Shape (T, 5), month by month (:data:`COLUMNS`): HPI growth x_t − x_{t−1}; transactions and
approvals per household; the share of new loans at or above the LTI limit (each counts
σ((log LTI − log LTI_cap)/s), ½ at the limit); the stressed arrears rate. :func:`outcomes`:
annualised HPI growth, transactions and approvals per household per year, last arrears rate.
A tighter limit lowers approvals and HPI growth most in the first year after the change; the
growth effect fades as prices settle at their new level.

Loss
----
``loss(simulated, observed)`` = Σ_c mean_t (y_sim − y_obs)² / (mean_t y_obs² + 10⁻¹²) over the
five columns (runs of one length: the model is smooth, so months compare one to one).

Estimators
----------
All randomness is the household population (z, z', η, the shock uniforms), drawn once from
``rng.stream("households")``. Given it the model is smooth in θ (kinks only in g_t's minimum
and a cash buyer's loan floor), so ``jacfwd``, ``grad`` and finite differences at one seed
(common random numbers) agree path by path; their mean over seeds is dE[·]/dθ. Stochastic
triples reduce to forward mode.

Simplified from SWP 976, and why: one house quality (one HPI); no buy-to-let investors, rental
market, life cycle, inheritance or construction; sellers leave and are replaced by renters (a
fixed population); one mortgage rate and term; a monthly call auction instead of sequential
bids on individual houses; savings neither grow nor get spent; the flow limit met pro rata on
last month's flows; choices as probabilities. Each keeps the model small, vectorised over
households and smooth, which is what makes exact gradients of policy outcomes possible.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, NamedTuple

import minidiff as md
from minidiff.batching import batch_levels, unbatched_raw
from minidiff.core import Primitive, shape_of, without_derivatives
from minidiff.distributions import Coordinatewise, Exp, Identity, Independent, Normal, Sigmoid
from minidiff.random.distributions import traced_beyond_batching
from minidiff.stochastic.triples import perturbed

from ._checks import check_count, check_estimator, check_number, generator, unpack
from ._reference_loop import python_loop
from .registry import Calibration

__all__ = ["simulate", "loss", "outcomes", "DEFAULT_PARAMS", "PARAM_NAMES", "DEFAULT_SETTINGS",
           "COLUMNS", "POLICY_NAMES", "BASELINE_POLICY"]

PARAM_NAMES = ("ltv_cap", "lti_cap", "lti_share", "affordability", "markup", "trend")
DEFAULT_PARAMS = (0.9, 4.5, 0.15, 0.33, 0.04, 0.2)
POLICY_NAMES = PARAM_NAMES[:4]
BASELINE_POLICY = DEFAULT_PARAMS[:4]
"""The limits in force during the burn-in: the policy ``params`` takes effect after it."""
COLUMNS = ("hpi_growth", "transactions", "approvals", "lti_at_limit_share", "arrears")
DEFAULT_SETTINGS = MappingProxyType({
    "income": 30.0,          # ȳ, median annual income (£k)
    "income_sd": 0.5,        # σ_y
    "savings": 0.5,          # κ_w: median savings per unit of income
    "savings_sd": 1.0,       # σ_w
    "desired_multiple": 6.0,  # median desired price per unit of income
    "taste_sd": 0.3,         # σ_D: spread of desired prices
    "owners": 0.65,          # o₀: initial home-ownership rate at the median income
    "hpi0": 150.0,           # HPI_0 (£k)
    "rent": 7.5,             # R: annual rent of a typical home (£k)
    "mortgage_rate": 0.04,   # r
    "buy_rate": 0.1,         # π̄: the most a renter tries to buy in a month
    "appeal": 10.0,          # k: weight of the user-cost gap in the buy decision
    "sell_rate": 0.004,      # ψ: owners listing in a month
    "price_cut": 0.02,       # c: monthly log price cut of an unsold listing
    "listing_ages": 12,      # A
    "burn_in": 36,           # months under BASELINE_POLICY before the observed ones
    "smoothing": 0.05,       # s: logistic scale of bids and asks (log price)
    "shock_share": 0.2,      # u
    "shock_size": 0.3,       # φ
    "arrears_dsr": 0.45,     # κ
})
_TERM_YEARS = 25
_WHERE = "housing.simulate"


def simulate(params: Any, *, n_timesteps: int, n_agents: int = 1000, rng: Any,
             estimator: str = "smoothed", **settings: Any) -> Any:
    """The monthly series of the housing market, shape (T, 5) (columns :data:`COLUMNS`).

    Args:
        params: (ltv_cap, lti_cap, lti_share, affordability, markup, trend), possibly traced.
        n_timesteps: T ≥ 1 months.
        n_agents: N ≥ 1 households.
        rng: an int seed, a :class:`minidiff.random.Generator`, or None (fresh entropy).
        estimator: checked and unused (no discrete draws).
        settings: any of :data:`DEFAULT_SETTINGS`, by name.

    Under ``grad`` and ``jacfwd`` the months with a full year of price history run as one
    :func:`minidiff.scan` (the clearing price's Newton solve one operation of its body): the
    same values and derivatives as the Python loop, and faster. The primal, ``vmap`` and
    stochastic triples keep the Python loop.
    """
    return _run(params, n_timesteps, n_agents, rng, estimator, settings, loop=False)


def _run(params: Any, n_timesteps: int, n_agents: int, rng: Any, estimator: str,
         settings: dict, loop: bool) -> Any:
    """:func:`simulate`; ``loop`` keeps the Python loop wherever it runs."""
    ltv, lti, share, aff, markup, trend = unpack(_WHERE, params, PARAM_NAMES)
    check_number(_WHERE, "ltv_cap (loan-to-value limit)", ltv, 0.0, 1.0, open_low=True,
                 open_high=True)
    check_number(_WHERE, "lti_cap (loan-to-income limit)", lti, 0.0, open_low=True)
    check_number(_WHERE, "lti_share (share of loans allowed above lti_cap)", share, 0.0, 1.0)
    check_number(_WHERE, "affordability (share of income for payments)", aff, 0.0,
                 open_low=True)
    check_number(_WHERE, "markup (log markup of new listings)", markup)
    check_number(_WHERE, "trend (trend following)", trend, 0.0)
    n_months = check_count(_WHERE, "n_timesteps", n_timesteps, 1)
    n = check_count(_WHERE, "n_agents", n_agents, 1)
    check_estimator(_WHERE, estimator)
    s = _settings(settings)
    rng = generator(_WHERE, rng)

    market = _Market(rng.stream("households"), n, s)
    state, baseline = market.initial(markup), market.limits(*BASELINE_POLICY)
    scan = loop is False and _scans((ltv, lti, share, aff, markup, trend))
    if s["burn_in"]:
        state, _ = _months(market, state, baseline, markup, trend, s["burn_in"], scan)
    state = state._replace(bought=md.zeros((n,)), loans=md.zeros((n,)))  # new lending only
    return _months(market, state, market.limits(ltv, lti, share, aff), markup, trend,
                   n_months, scan)[1]


_python_loop = python_loop(simulate, _run)


def _scans(params: tuple) -> bool:
    """Whether the months run as :func:`minidiff.scan`: under ``grad`` and ``jacfwd``. The
    primal, ``vmap`` and stochastic triples keep the Python loop."""
    return (not batch_levels() and not perturbed(*params)
            and any(traced_beyond_batching(p) for p in params))


_HISTORY = 13  # the log HPIs a month reads: x_{t−1} and x_{t−13} (ℓ = 12)


def _months(market: _Market, state: _State, limits: _Limits, markup: Any, trend: Any,
            n_months: int, scan: bool) -> tuple[_State, Any]:
    """``n_months`` months from ``state``: (the last state, the rows (n_months, 5)).

    With ``scan``, the months that see a full year of history (ℓ = 12) run as one
    :func:`minidiff.scan` whose carry holds the last 13 log HPIs instead of the growing list;
    the first months (ℓ < 12) run in Python, as all of them do without it."""
    rows = []
    while len(rows) < n_months and not (scan and len(state.x_hist) >= _HISTORY):
        state, row = market.month(state, limits, markup, trend)
        rows.append(row)
    if len(rows) == n_months:
        return state, md.stack(rows)

    def month(carry: tuple, _: Any) -> tuple[tuple, Any]:
        history = carry[-1]
        now = _State(*carry[:-1], [md.getitem(history, k) for k in range(_HISTORY)])
        now, row = market.month(now, limits, markup, trend, staged=True)
        return (*now[:-1], md.stack(now.x_hist[-_HISTORY:])), row

    carry = (*state[:-1], md.stack(state.x_hist[-_HISTORY:]))
    carry, scanned = md.scan(month, carry, length=n_months - len(rows))
    state = _State(*carry[:-1], [md.getitem(carry[-1], k) for k in range(_HISTORY)])
    return state, md.concatenate([md.stack(rows), scanned]) if rows else scanned


class _State(NamedTuple):
    """o_i, O_i, the loans of O_i (N,); listing volumes and log asks by age (A,); L/C of last
    month (new loans per loan the LTI limit set); the log HPIs so far (a list)."""

    owned: Any
    bought: Any
    loans: Any
    volume: Any
    asks: Any
    ratio: Any
    x_hist: list


class _Limits(NamedTuple):
    """A policy's limits as log prices (N,): within the LTI limit, exempt from it, the LTI
    term alone (for its weight); ω; the LTI limit."""

    capped: Any
    exempt: Any
    by_lti: Any
    share: Any
    lti: Any


class _Market:
    """The households (raw arrays (N,): income, log(y/ȳ), savings, the log desired price
    before expectations, the initial o_i) and one month of the market (steps 1–6)."""

    def __init__(self, draws: Any, n: int, s: dict) -> None:
        self.s, self.n = s, n
        z_income, z_savings, taste = (draws.normal(size=(n,)) for _ in range(3))
        hit = md.where(draws.random((n,)) < s["shock_share"], 1.0, 0.0)
        self.income = s["income"] * md.exp(s["income_sd"] * z_income)
        self.rel_income = md.log(self.income / s["income"])
        self.savings = self.income * s["savings"] * md.exp(s["savings_sd"] * z_savings)
        self.desired = md.log(s["desired_multiple"] * self.income) + s["taste_sd"] * taste
        self.owned = md.sigmoid(math.log(s["owners"] / (1.0 - s["owners"]))
                                + 1.5 * self.rel_income)
        r = s["mortgage_rate"]
        self.rate, self.scale, self.keep = r, s["smoothing"], 1.0 - s["sell_rate"]
        self.annuity = r / (1.0 - (1.0 + r) ** -_TERM_YEARS)
        # log(α / (κ × shocked income)): plus log(loan), the log of payment / (κ income)
        self.stress = md.log(self.annuity / (s["arrears_dsr"] * (1.0 - s["shock_size"] * hit)
                                             * self.income))

    def limits(self, ltv: Any, lti: Any, share: Any, aff: Any) -> _Limits:
        h, scale = self, self.scale
        by_ltv = md.log(md.divide(h.savings, md.subtract(1.0, ltv)))
        by_lti = md.log(md.add(h.savings, md.multiply(lti, h.income)))
        by_aff = md.log(md.add(h.savings, md.multiply(aff, h.income / self.annuity)))
        return _Limits(_soft_min([by_ltv, by_lti, by_aff], scale),
                       _soft_min([by_ltv, by_aff], scale), by_lti, share, lti)

    def initial(self, markup: Any) -> _State:
        s, n = self.s, self.n
        b = md.get_backend()
        age = b.xp.arange(s["listing_ages"], dtype=b.float_dtype)
        x0 = md.log(md.asarray(s["hpi0"]))
        volume = md.multiply(s["sell_rate"] * md.sum(self.owned), 0.5 ** age)
        asks = md.add(md.add(markup, x0), -s["price_cut"] * age)
        zeros = md.zeros((n,))
        return _State(self.owned, zeros, zeros, volume, asks, md.asarray(1.0), [x0])

    def month(self, state: _State, limits: _Limits, markup: Any, trend: Any,
              staged: bool = False) -> tuple[_State, Any]:
        """One month (steps 1–6): the next state and the observed row (5,). ``staged``: the
        clearing price's Newton solve is one primitive of the program (in a scan's body)."""
        h, s, scale, keep, n = self, self.s, self.scale, self.keep, self.n
        x_hist = state.x_hist
        x_prev = x_hist[-1]
        lag = min(12, len(x_hist) - 1)
        growth = (md.multiply(trend, md.subtract(x_prev, x_hist[-1 - lag])) * (12.0 / lag)
                  if lag else md.zeros(()))
        # 1. sellers list and leave; renters with their incomes and savings take their place
        owned, bought, loans = (md.multiply(v, keep) for v in state[:3])
        listed = md.sum(owned) * (s["sell_rate"] / keep)
        volume, asks = _age_listings(state.volume, state.asks, listed, md.add(x_prev, markup),
                                     s["price_cut"])
        # 2. buyers
        gap = md.add(s["rent"] / md.exp(x_prev), growth) - self.rate
        demand = md.multiply(md.subtract(1.0, owned),
                             md.sigmoid(md.add(h.rel_income, s["appeal"] * gap)) * s["buy_rate"])
        # 3. the bank: bids within the limits, approvals of the desired price
        desired = md.add(h.desired, growth)
        g = md.minimum(1.0, md.multiply(limits.share, state.ratio))     # the exempt share
        fits = [md.sigmoid(md.subtract(lim, desired) / scale)
                for lim in (limits.capped, limits.exempt)]
        approvals = md.sum(md.multiply(demand, md.add(md.multiply(1.0 - g, fits[0]),
                                                       md.multiply(g, fits[1]))))
        bid_capped = _soft_min([desired, limits.capped], scale)
        bids = md.stack([bid_capped, _soft_min([desired, limits.exempt], scale)], axis=-1)
        parts = md.stack([md.multiply(demand, 1.0 - g), md.multiply(demand, g)], axis=-1)
        # 4. matching, 5. trades at the clearing price e^x
        x = (_staged_clearing_price(parts, bids, volume, asks, scale, x_prev) if staged else
             _clearing_price(parts, bids, volume, asks, scale,
                             float(md.to_host(_values(x_prev)))))
        won = md.multiply(parts, md.sigmoid(md.subtract(bids, x) / scale))         # (N, 2)
        new_owned = md.sum(won, axis=-1)
        trades = md.sum(new_owned)
        loan = md.maximum(md.subtract(md.exp(x), h.savings), 0.0)
        above = md.sigmoid(md.subtract(md.log(loan / h.income + 1e-12), md.log(limits.lti))
                           / scale)
        # the winners whose bid the LTI limit sets (would set): its weight in the smooth min
        by_lti = md.exp(md.subtract(bid_capped, limits.by_lti) / scale)
        needing = md.sum(md.multiply(new_owned, by_lti))
        ratio = md.divide(trades, needing + 1e-12)
        owned, bought = md.add(owned, new_owned), md.add(bought, new_owned)
        loans = md.add(loans, md.multiply(new_owned, loan))
        volume = md.multiply(volume, 1.0 - md.sigmoid(md.subtract(x, asks) / scale))
        # 6. the stress test of the new loans
        in_arrears = md.sigmoid((md.log(md.divide(loans, bought + 1e-12) + 1e-12) + self.stress)
                                / scale)
        arrears = md.sum(md.multiply(bought, in_arrears)) / (md.sum(bought) + 1e-12)
        row = md.stack([md.subtract(x, x_prev), trades / n, approvals / n,
                        md.divide(md.sum(md.multiply(new_owned, above)), trades), arrears])
        return _State(owned, bought, loans, volume, asks, ratio, x_hist + [x]), row


# ---------------------------------------------------------------------------------------------
# pieces of a month
# ---------------------------------------------------------------------------------------------


def _soft_min(terms: list, scale: float) -> Any:
    """−s log Σ_k e^{−c_k/s}: a smooth minimum of the arrays c_k, below min_k c_k by at most
    s log K (and associative: a smooth minimum of smooth minima is that of all the terms)."""
    c = md.stack(terms, axis=-1)
    return -scale * md.logsumexp(-c / scale, axis=-1)


def _age_listings(volume: Any, asks: Any, new: Any, new_ask: Any, cut: float) -> tuple[Any, Any]:
    """Listings one month older: new ones at age 0, each older one cut by c, the last age
    absorbing the one before (log asks averaged by volume)."""
    older_v, older_a = md.getitem(volume, slice(0, -1)), md.getitem(asks, slice(0, -1)) - cut
    last_v, last_a = md.getitem(volume, -1), md.getitem(asks, -1)
    tail_v = md.add(md.getitem(older_v, -1), last_v)
    tail_a = md.divide(md.add(md.multiply(md.getitem(older_v, -1), md.getitem(older_a, -1)),
                              md.multiply(last_v, last_a)), md.add(tail_v, 1e-300))
    v = md.concatenate([md.reshape(new, (1,)), md.getitem(older_v, slice(0, -1)),
                        md.reshape(tail_v, (1,))])
    a = md.concatenate([md.reshape(new_ask, (1,)), md.getitem(older_a, slice(0, -1)),
                        md.reshape(tail_a, (1,))])
    return v, a


def _excess(x: Any, parts: Any, bids: Any, volume: Any, asks: Any, scale: float) -> Any:
    """F(x) = log D(x) − log S(x)."""
    demand = md.sum(md.multiply(parts, md.sigmoid(md.subtract(bids, x) / scale)))
    supply = md.sum(md.multiply(volume, md.sigmoid(md.subtract(x, asks) / scale)))
    return md.subtract(md.log(demand), md.log(supply))


def _excess_and_slope(x: float, parts: Any, bids: Any, volume: Any, asks: Any,
                      scale: float) -> tuple[float, float]:
    """F(x) and F'(x) on raw arrays: F' = −Σ parts σ'/s / D − Σ v σ'/s / S, σ' = σ(1 − σ)."""
    xp = md.get_backend().xp
    buy, sell = md.sigmoid((bids - x) / scale), md.sigmoid((x - asks) / scale)
    demand, supply = float(xp.sum(parts * buy)), float(xp.sum(volume * sell))
    d_demand = float(xp.sum(parts * buy * (1.0 - buy))) / scale
    d_supply = float(xp.sum(volume * sell * (1.0 - sell))) / scale
    return math.log(demand) - math.log(supply), -d_demand / demand - d_supply / supply


def _values(x: Any) -> Any:
    """The numbers of ``x`` for the clearing-price search, which reads them as one market's;
    a value batched by ``md.vmap`` is refused (the search would mix the markets)."""
    return unbatched_raw(x, "housing.simulate", "the clearing price is searched for on the "
                         "bids and asks read as numbers (a Newton search with Python branches)")


def _clearing_price(parts: Any, bids: Any, volume: Any, asks: Any, scale: float,
                    start: float) -> Any:
    """The root of the decreasing F: Newton's method from ``start`` kept inside a bracket
    (bisecting when a step would leave it) on the values, then one Newton step with F's traced
    value and its plain slope, x = x₀ − F(x₀; θ)/F'(x₀): the root, with derivative
    −∂_θF/∂_xF."""
    x, slope = _newton(start, *(_values(a) for a in (parts, bids, volume, asks)), scale)
    return x - _excess(x, parts, bids, volume, asks, scale) / slope


def _newton(start: float, parts: Any, bids: Any, volume: Any, asks: Any, scale: float
            ) -> tuple[float, float]:
    """(the root x₀ of F on raw arrays, F'(x₀)): Newton's method from ``start`` kept inside
    a bracket, bisecting when a step would leave it."""
    xp = md.get_backend().xp
    low = min(float(xp.min(bids)), float(xp.min(asks))) - 40.0 * scale
    high = max(float(xp.max(bids)), float(xp.max(asks))) + 40.0 * scale
    x = start if low < start < high else 0.5 * (low + high)
    for _ in range(200):
        f, slope = _excess_and_slope(x, parts, bids, volume, asks, scale)
        if abs(f) < 1e-12:
            break
        if f > 0.0:
            low = x
        else:
            high = x
        step = x - f / slope if slope < 0.0 else 0.5 * (low + high)
        x = step if low < step < high else 0.5 * (low + high)
        if high - low < 1e-13:
            break
    _, slope = _excess_and_slope(x, parts, bids, volume, asks, scale)
    return x, slope


def _root_impl(parts: Any, bids: Any, volume: Any, asks: Any, start: Any, *,
               scale: float) -> Any:
    b = md.get_backend()
    return b.xp.asarray(_newton(float(start), parts, bids, volume, asks, scale),
                        dtype=b.float_dtype)


# (x₀, F'(x₀)), shape (2,), as one op of no derivative on the values: what a traced scan body
# records and runs again at every step (the Python loop calls _newton directly)
_root_p = Primitive("housing_clearing_root", _root_impl, differentiable=False)


def _staged_clearing_price(parts: Any, bids: Any, volume: Any, asks: Any, scale: float,
                           x_prev: Any) -> Any:
    """:func:`_clearing_price` with the Newton solve as the primitive ``_root_p``."""
    root = _root_p(*(without_derivatives(a) for a in (parts, bids, volume, asks, x_prev)),
                   scale=scale)
    x, slope = md.getitem(root, 0), md.getitem(root, 1)
    return x - _excess(x, parts, bids, volume, asks, scale) / slope


def _settings(given: dict) -> dict:
    unknown = sorted(set(given) - set(DEFAULT_SETTINGS))
    if unknown:
        raise TypeError(f"{_WHERE}: unknown setting(s) {unknown}; the settings are "
                        f"{sorted(DEFAULT_SETTINGS)}")
    s = {**DEFAULT_SETTINGS, **given}
    for name, value in s.items():
        if name in ("listing_ages", "burn_in"):
            s[name] = check_count(_WHERE, name, value, 2 if name == "listing_ages" else 0)
            continue
        low = -float("inf") if name == "mortgage_rate" else 0.0
        s[name] = check_number(_WHERE, name, value, low, traced=False)
    for name in ("owners", "buy_rate", "sell_rate", "shock_share", "shock_size"):
        check_number(_WHERE, name, s[name], 0.0, 1.0, open_low=name in ("owners", "buy_rate",
                                                                         "sell_rate"),
                     open_high=name in ("owners", "shock_size", "sell_rate"))
    for name in ("income", "hpi0", "smoothing", "arrears_dsr"):
        check_number(_WHERE, name, s[name], 0.0, open_low=True)
    return s


# ---------------------------------------------------------------------------------------------
# summaries and the loss
# ---------------------------------------------------------------------------------------------


def _series(series: Any, where: str, what: str) -> Any:
    series = md.asarray(series)
    if len(shape_of(series)) != 2 or shape_of(series)[1] != len(COLUMNS):
        raise ValueError(f"housing.{where}: {what} must be a series of shape (T, "
                         f"{len(COLUMNS)}), as housing.simulate returns, got {shape_of(series)}")
    return series


def outcomes(series: Any) -> Any:
    """(annualised HPI growth, transactions per household per year, approvals per household
    per year, final arrears rate), shape (4,)."""
    series = _series(series, "outcomes", "series")
    per_year = md.sum(md.getitem(series, (slice(None), slice(0, 3))), axis=0) * (
        12.0 / shape_of(series)[0])
    return md.concatenate([per_year, md.reshape(md.getitem(series, (-1, 4)), (1,))])


def loss(simulated: Any, observed: Any) -> Any:
    """Σ_c mean_t (sim − obs)² / (mean_t obs² + 1e-12), over the five columns."""
    sim, obs = _series(simulated, "loss", "simulated"), _series(observed, "loss", "observed")
    if shape_of(sim) != shape_of(obs):
        raise ValueError(f"housing.loss: simulated and observed must have the same number of "
                         f"months, got shapes {shape_of(sim)} and {shape_of(obs)}")
    scale = md.mean(md.square(obs), axis=0) + 1e-12
    return md.sum(md.mean(md.square(sim - obs), axis=0) / scale)


# ---------------------------------------------------------------------------------------------
# Calibration (``minidiff calibrate``): the prior, the map to natural parameters, the defaults
# ---------------------------------------------------------------------------------------------

__all__ += ["NATURAL", "prior", "CALIBRATION"]

NATURAL = Coordinatewise(Sigmoid(), Exp(), Sigmoid(), Sigmoid(), Identity(), Exp())
"""How each coordinate x_j of the unconstrained space (where inference runs) maps to the
natural parameter: the LTV cap, the share of loans above the LTI threshold and the
affordability ratio lie in (0, 1) (sigmoid); the LTI cap and the trend-following weight are
positive (exp); the sellers' log markup is real."""


def prior() -> Independent:
    """The default prior x_j ~ N(loc_j, scale_j²) on the unconstrained x,
    centred on the UK's policy settings (LTV 0.9, LTI 4.5, a 15% flow limit, affordability
    one third) with modest spread, markup ~ N(0, 0.3²) and log trend ~ N(log 0.2, 0.5²)."""
    logit = lambda p: math.log(p / (1.0 - p))  # noqa: E731
    loc = (logit(0.9), math.log(4.5), logit(0.15), logit(1.0 / 3.0), 0.0, math.log(0.2))
    scale = (0.5, 0.25, 0.5, 0.5, 0.3, 0.5)
    return Independent(Normal(list(loc), list(scale)))


CALIBRATION = Calibration({"n_timesteps": 24, "n_agents": 500}, "model", 0.01, 8, 100, 0.05)
