"""A small differentiable housing market with macroprudential policy, after the Bank of
England's agent-based model of the UK housing market.

A. Carro, M. Hinterschweiger, A. Uluc & J. D. Farmer (2022), "Heterogeneous effects and
spillovers of macroprudential policy in an agent-based model of the UK housing market", Bank of
England Staff Working Paper 976 (Industrial and Corporate Change 32, 2023), which builds on R.
Baptista et al. (2016), Staff Working Paper 619. Households with heterogeneous incomes and
savings decide each month whether to try to buy; a bank lends subject to loan-to-value (LTV),
loan-to-income (LTI) and affordability limits, with a share of new loans allowed above the LTI
limit (the Financial Policy Committee's flow limit: at most 15% of new mortgages at LTI ≥ 4.5);
sellers list at a markup over the house price index (HPI) and cut their price while unsold.
The policy limits are parameters, so ``jacfwd`` gives the response of the HPI, transactions,
approvals and arrears to every limit in one pass.

Households i = 1..N (months t = 1..T; logs of prices in £ thousands)
--------------------------------------------------------------------
Incomes y_i = ȳ e^{σ_y z_i} (annual, log-normal), savings w_i = y_i κ_w e^{σ_w z'_i} growing by
s·y_i/12 a month, a taste η_i ~ N(0, 1), and o_i ∈ [0, 1], the probability that household i owns
its home (o_i(0) = σ(logit o₀ + 1.5 log(y_i/ȳ))). The status enters only through o_i: each
household's discrete choices (to buy, to sell) are replaced by their probabilities, their
expectation over its own choice noise, so the market sees expected demand. With many
households that is what the realised demand is close to, and it makes the model a smooth
function of θ given the households (see "Estimators").

Each month t, with x_{t−1} = log HPI_{t−1} and g_e the expected annual HPI growth (trend
following, h = ``trend``): g_e = h·(x_{t−1} − x_{t−1−ℓ})·12/ℓ over the last ℓ = min(12, t − 1)
months (0 at the start).

1. Sellers. A share ψ of owners list their homes and leave (each is replaced by a renter with
   the same income and savings): o_i ← (1 − ψ)o_i, and ψ Σ_i o_i new listings ask
   a₀ = x_{t−1} + m (m = ``markup``). A listing unsold for a months asks a_a = a_{a−1} − c (the
   monthly cut); after A months it stays at the last age, still cutting.
2. Buyers. A renter tries to buy with probability π_i = π̄ σ(log(y_i/ȳ) + 20(R/HPI_{t−1} −
   r + g_e)): richer households, a high rent-to-price ratio (R, the rent of a typical home,
   fixed) and expected gains against the mortgage rate r make buying likelier. Demand
   d_i = (1 − o_i)π_i.
3. The bank. A buyer's bid is the smooth minimum of the desired price and three limits,
   log b_i = −s log Σ_k e^{−c_ik/s} over
   c_i1 = log(4.5 y_i) + σ_D η_i + g_e         (desired price),
   c_i2 = log(w_i / (1 − LTV_cap))              (loan ≤ LTV_cap·price, deposit w_i),
   c_i3 = log(w_i + LTI_cap·y_i)                (loan ≤ LTI_cap·income),
   c_i4 = log(w_i + aff·y_i / α(r, 25 years))   (annual payment α·loan ≤ aff·income),
   α the annuity factor r/(1 − (1 + r)^{−25}). The weights softmax(−c_i/s) say how much each
   term sets the bid. Flow limit: a share g_t of the buyers is exempt from the LTI term,
   g_t = min(1, ω·L_{t−1}/C_{t−1}), L the new loans and C the loans at the LTI limit last
   month (g_1 = ω), so that about ω of the new loans exceed it. Approvals (in principle):
   the applicants whose desired price passes all limits, Σ_i d_i σ((min_k≥2 c_ik − c_i1)/s).
4. Matching: a double auction, smooth. Bids and asks carry logistic noise of scale s, so a
   buyer bidding b succeeds at a clearing log price x with probability σ((log b − x)/s) and a
   listing asking a sells with probability σ((x − a)/s): those are the expected counts of the
   sorted auction, a soft rank in place of the sort. The clearing price solves
   D(x) = Σ_i d_i[(1 − g)σ((log b_i − x)/s) + g σ((log b_i^exempt − x)/s)] = Σ_a v_a σ((x − a_a)/s)
   = S(x) (D falls and S rises in x: one root, found by bisection on the values and one Newton
   step on the traced ones, so derivatives follow the implicit function theorem,
   dx/dθ = −∂_θ(log D − log S)/∂_x(log D − log S)).
5. Trades. Buyer i buys q_i (its two parts), pays its bid (pay-as-bid) with loan b_i − w_i;
   HPI_t = Σ q_i b_i / Σ q_i; o_i += q_i; unsold listings age.
6. Stress test (arrears under an income shock). A share u of households (fixed by uniforms)
   would lose a fraction φ of income; a mortgage taken in the run is in arrears under the
   shock when its payment exceeds a share κ of the shocked income. The arrears rate is
   Σ_i O_i σ((log(α ℓ_i / ((1 − φχ_i) y_i)) − log κ)/s) / Σ_i O_i, with O_i the home share
   bought in the run, ℓ_i its mean loan, χ_i = 1 for the hit households. (Owners who leave
   repay: O_i and their loans shrink by (1 − ψ).)

Parameters ``params = (LTV_cap, LTI_cap, ω, aff, m, h)``
--------------------------------------------------------
* ``ltv_cap`` in (0, 1): the LTV limit (default 0.9);
* ``lti_cap`` > 0: the LTI limit (4.5);
* ``lti_share`` ω in [0, 1]: the share of new loans allowed above ``lti_cap`` (0.15);
* ``affordability`` > 0: the largest share of income for mortgage payments (0.33);
* ``markup`` m: the log markup of new listings over the HPI (0.04);
* ``trend`` h ≥ 0: trend following of expected HPI growth (0.5).

Settings (keywords, not differentiated): ``n_agents`` N households (1000), ``n_timesteps`` T
months, and those of :data:`DEFAULT_SETTINGS` (income, savings, rates, the smoothing scale s,
the stress). ``estimator`` is checked and unused: there are no discrete draws.

Observed
--------
Shape (T, 5), month by month: the HPI growth x_t − x_{t−1} (x_0 = log ``hpi0``); transactions
and mortgage approvals (in principle), each per household; the share of new loans at or above
the LTI limit; the stressed arrears rate. :func:`outcomes` summarises a run: annualised HPI
growth, transactions and approvals per household per year, and the final arrears rate.

Loss
----
``loss(simulated, observed)`` = Σ_c mean_t (y_sim − y_obs)² / (mean_t y_obs² + 10⁻¹²): the mean
squared difference of each column relative to the observed column's mean square, summed over
the five columns (runs of one length T; the model is smooth, so months compare one to one).

Estimators
----------
All randomness is the household population: z, z', η and the shock uniforms, drawn once from
``rng.stream("households")`` and reparameterised. Given them the model is smooth in θ (the only
kinks are the minimum in g_t and the cash-buyer floor of a loan at 0), so ``jacfwd``, ``grad``
and finite differences with the same seed (common random numbers) agree path by path, and
their mean over seeds is d E[·]/dθ. Stochastic triples reduce to forward mode.

Simplified from SWP 976, and why: houses are of one quality (one HPI, no quality ladder); there
are no buy-to-let investors, no rental market, no life cycle, no inheritance, no construction;
sellers leave and are replaced by renters (a fixed population); the bank has one mortgage rate
and a 25-year annuity; the matching is the smooth call auction above rather than SWP 976's
sequential bidding on individual houses; the flow limit is met pro rata with last month's
flows; choices are probabilities, not draws. Each of these keeps the model small, vectorised
over households and smooth, which is what makes exact gradients of policy outcomes possible.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, NamedTuple

import minidiff as md
from minidiff.core import raw, shape_of

from ._checks import check_count, check_estimator, check_number, generator, unpack

__all__ = ["simulate", "loss", "outcomes", "DEFAULT_PARAMS", "PARAM_NAMES", "DEFAULT_SETTINGS",
           "COLUMNS", "POLICY_NAMES"]

PARAM_NAMES = ("ltv_cap", "lti_cap", "lti_share", "affordability", "markup", "trend")
DEFAULT_PARAMS = (0.9, 4.5, 0.15, 0.33, 0.04, 0.2)
POLICY_NAMES = PARAM_NAMES[:4]
COLUMNS = ("hpi_growth", "transactions", "approvals", "lti_at_cap_share", "arrears")
DEFAULT_SETTINGS = MappingProxyType({
    "income": 30.0,          # ȳ, median annual income (£k)
    "income_sd": 0.5,        # σ_y
    "savings": 0.5,          # κ_w: median savings per unit of income
    "savings_sd": 1.0,       # σ_w
    "taste_sd": 0.3,         # σ_D: spread of desired prices
    "owners": 0.65,          # o₀: initial home-ownership rate at the median income
    "hpi0": 150.0,           # HPI_0 (£k)
    "rent": 7.5,             # R: annual rent of a typical home (£k)
    "mortgage_rate": 0.04,   # r
    "buy_rate": 0.1,         # π̄: the most a renter tries to buy in a month
    "appeal": 10.0,          # weight of the user-cost gap in the buy decision
    "sell_rate": 0.004,      # ψ: owners listing in a month
    "price_cut": 0.02,       # c: monthly log price cut of an unsold listing
    "listing_ages": 12,      # A
    "smoothing": 0.05,       # s: logistic scale of bids and asks (log price)
    "shock_share": 0.2,      # u
    "shock_size": 0.3,       # φ
    "arrears_dsr": 0.45,     # κ
})
_TERM_YEARS = 25
_WHERE = "housing.simulate"
_LABELS = {"ltv_cap": "ltv_cap (loan-to-value limit)",
           "lti_cap": "lti_cap (loan-to-income limit)",
           "lti_share": "lti_share (share of new loans allowed above lti_cap)",
           "affordability": "affordability (largest share of income for payments)",
           "markup": "markup (log markup of new listings)",
           "trend": "trend (trend following of expected growth)"}


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
    """
    theta = unpack(_WHERE, params, PARAM_NAMES)
    ltv, lti, share, aff, markup, trend = theta
    check_number(_WHERE, _LABELS["ltv_cap"], ltv, 0.0, 1.0, open_low=True, open_high=True)
    check_number(_WHERE, _LABELS["lti_cap"], lti, 0.0, open_low=True)
    check_number(_WHERE, _LABELS["lti_share"], share, 0.0, 1.0)
    check_number(_WHERE, _LABELS["affordability"], aff, 0.0, open_low=True)
    check_number(_WHERE, _LABELS["markup"], markup)
    check_number(_WHERE, _LABELS["trend"], trend, 0.0)
    n_months = check_count(_WHERE, "n_timesteps", n_timesteps, 1)
    n = check_count(_WHERE, "n_agents", n_agents, 1)
    check_estimator(_WHERE, estimator)
    s = _settings(settings)
    rng = generator(_WHERE, rng)

    h = _households(rng.stream("households"), n, s)
    r, scale, keep = s["mortgage_rate"], s["smoothing"], 1.0 - s["sell_rate"]
    annuity = r / (1.0 - (1.0 + r) ** -_TERM_YEARS)
    # log of annuity / (κ × shocked income): add log(loan) for the log of (payment / κ income)
    stress = md.log(annuity / (s["arrears_dsr"] * (1.0 - s["shock_size"] * h.hit) * h.income))
    # the limits that do not move with the market, as log prices: LTV, LTI, affordability
    by_ltv = md.log(md.divide(h.savings, md.subtract(1.0, ltv)))
    by_lti = md.log(md.add(h.savings, md.multiply(lti, h.income)))
    by_aff = md.log(md.add(h.savings, md.multiply(aff, h.income / annuity)))
    limit = _soft_min([by_ltv, by_lti, by_aff], scale)       # a buyer within the LTI limit
    limit_exempt = _soft_min([by_ltv, by_aff], scale)        # an exempt buyer

    owned, bought, loans = h.owned, md.zeros((n,)), md.zeros((n,))   # o_i, O_i, Σ loans
    b = md.get_backend()
    age = b.xp.arange(s["listing_ages"], dtype=b.float_dtype)
    x_hist = [md.log(md.asarray(s["hpi0"]))]
    volume = md.multiply(s["sell_rate"] * md.sum(owned), 0.5 ** age)
    asks = md.add(md.add(markup, x_hist[0]), -s["price_cut"] * age)
    exempt = share
    rows = []
    for _ in range(n_months):
        x_prev = x_hist[-1]
        lag = min(12, len(x_hist) - 1)
        growth = (md.multiply(trend, md.subtract(x_prev, x_hist[-1 - lag])) * (12.0 / lag)
                  if lag else md.zeros(()))
        # 1. sellers list and leave; renters with their incomes and savings take their place
        owned, bought, loans = (md.multiply(v, keep) for v in (owned, bought, loans))
        listed = md.sum(owned) * (s["sell_rate"] / keep)
        volume, asks = _age_listings(volume, asks, listed, md.add(x_prev, markup),
                                     s["price_cut"])
        # 2. buyers
        gap = md.add(s["rent"] / md.exp(x_prev), growth) - r
        demand = md.multiply(md.subtract(1.0, owned),
                             md.sigmoid(md.add(h.rel_income, s["appeal"] * gap)) * s["buy_rate"])
        # 3. the bank: bids within the limits, approvals of the desired price
        desired = md.add(h.desired, growth)
        fits = [md.sigmoid((md.subtract(lim, desired)) / scale) for lim in (limit, limit_exempt)]
        approvals = md.sum(md.multiply(demand, md.add(md.multiply(1.0 - exempt, fits[0]),
                                                       md.multiply(exempt, fits[1]))))
        bids = md.stack([_soft_min([desired, limit], scale),
                         _soft_min([desired, limit_exempt], scale)], axis=-1)      # (N, 2)
        parts = md.stack([md.multiply(demand, 1.0 - exempt), md.multiply(demand, exempt)],
                         axis=-1)
        # 4. matching, 5. trades at the clearing price e^x
        x = _clearing_price(parts, bids, volume, asks, scale)
        won = md.multiply(parts, md.sigmoid((bids - x) / scale))                   # (N, 2)
        trades = md.sum(won)
        loan = md.maximum(md.subtract(md.exp(x), h.savings), 0.0)
        over = md.sigmoid((md.log(loan / h.income + 1e-12) - md.log(lti)) / scale)
        new_owned = md.sum(won, axis=-1)
        capped_loans = md.sum(md.getitem(won, (slice(None), 0)) * over)
        exempt = md.minimum(1.0, share * trades / (capped_loans + 1e-12))
        owned, bought = md.add(owned, new_owned), md.add(bought, new_owned)
        loans = md.add(loans, new_owned * loan)
        volume = md.multiply(volume, 1.0 - md.sigmoid((x - asks) / scale))
        x_hist.append(x)
        # 6. the stress test of the loans made in the run
        in_arrears = md.sigmoid((md.log(loans / (bought + 1e-12) + 1e-12) + stress) / scale)
        arrears = md.sum(md.multiply(bought, in_arrears)) / (md.sum(bought) + 1e-12)
        rows.append(md.stack([x - x_prev, trades / n, approvals / n,
                              md.sum(new_owned * over) / trades, arrears]))
    return md.stack(rows)


class _Households(NamedTuple):
    """The population (raw arrays of shape (N,)): incomes, log(y/ȳ), savings, log desired
    price before expectations, the initial ownership, the stress-shock indicator."""

    income: Any
    rel_income: Any
    savings: Any
    desired: Any
    owned: Any
    hit: Any


def _households(draws: Any, n: int, s: dict) -> _Households:
    z_income, z_savings, taste = (draws.normal(size=(n,)) for _ in range(3))
    hit = md.where(draws.random((n,)) < s["shock_share"], 1.0, 0.0)
    income = s["income"] * md.exp(s["income_sd"] * z_income)
    rel_income = md.log(income / s["income"])
    savings = income * s["savings"] * md.exp(s["savings_sd"] * z_savings)
    desired = md.log(4.5 * income) + s["taste_sd"] * taste
    owned = md.sigmoid(math.log(s["owners"] / (1.0 - s["owners"])) + 1.5 * rel_income)
    return _Households(income, rel_income, savings, desired, owned, hit)


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
    return md.log(demand) - md.log(supply)


def _clearing_price(parts: Any, bids: Any, volume: Any, asks: Any, scale: float) -> Any:
    """The root of F: bisection on the values, then one Newton step with F's traced value and
    its plain slope (value: the root, derivative: −∂_θF/∂_xF)."""
    raw_args = [raw(a) for a in (parts, bids, volume, asks)]
    xp = md.get_backend().xp
    low = float(xp.min(raw_args[1])) - 20.0 * scale
    high = float(xp.max(raw_args[1])) + 20.0 * scale
    low, high = min(low, float(xp.min(raw_args[3])) - 20.0 * scale), max(
        high, float(xp.max(raw_args[3])) + 20.0 * scale)
    for _ in range(60):
        mid = 0.5 * (low + high)
        if float(_excess(mid, *raw_args, scale)) > 0.0:
            low = mid
        else:
            high = mid
    x0 = 0.5 * (low + high)
    h = 1e-6
    slope = (float(_excess(x0 + h, *raw_args, scale)) - float(_excess(x0 - h, *raw_args, scale))
             ) / (2.0 * h)
    return x0 - _excess(x0, parts, bids, volume, asks, scale) / slope


def _settings(given: dict) -> dict:
    unknown = sorted(set(given) - set(DEFAULT_SETTINGS))
    if unknown:
        raise TypeError(f"{_WHERE}: unknown setting(s) {unknown}; the settings are "
                        f"{sorted(DEFAULT_SETTINGS)}")
    s = {**DEFAULT_SETTINGS, **given}
    for name, value in s.items():
        if name == "listing_ages":
            s[name] = check_count(_WHERE, name, value, 2)
            continue
        low = -float("inf") if name == "mortgage_rate" else 0.0
        s[name] = check_number(_WHERE, name, value, low, traced=False)
    for name in ("owners", "buy_rate", "sell_rate", "shock_share", "shock_size"):
        check_number(_WHERE, name, s[name], 0.0, 1.0, open_high=name in ("owners", "shock_size"))
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
    months = shape_of(series)[0]
    col = [md.getitem(series, (slice(None), c)) for c in range(len(COLUMNS))]
    per_year = 12.0 / months
    return md.stack([md.sum(col[0]) * per_year, md.sum(col[1]) * per_year,
                     md.sum(col[2]) * per_year, md.getitem(col[4], -1)])


def loss(simulated: Any, observed: Any) -> Any:
    """Σ_c mean_t (sim − obs)² / (mean_t obs² + 1e-12), over the five columns."""
    sim, obs = _series(simulated, "loss", "simulated"), _series(observed, "loss", "observed")
    if shape_of(sim) != shape_of(obs):
        raise ValueError(f"housing.loss: simulated and observed must have the same number of "
                         f"months, got shapes {shape_of(sim)} and {shape_of(obs)}")
    scale = md.mean(md.square(obs), axis=0) + 1e-12
    return md.sum(md.mean(md.square(sim - obs), axis=0) / scale)
