"""Cont's threshold model of volatility clustering (Cont 2007; Ghoulmie, Cont & Nadal 2005).

R. Cont (2007), "Volatility clustering in financial markets: empirical facts and agent-based
models", in *Long Memory in Economics*, Springer. N agents trade one asset. Each agent i holds an
inaction threshold ν_i: every step a common public signal ε_t arrives, agent i buys one unit if
the signal exceeds its threshold, sells one if it is below minus its threshold, and otherwise
does nothing. The price moves with the net order flow, and each agent, at random times, resets
its threshold to the size of the latest price move: agents become less reactive after large
moves and more reactive after quiet spells, which is what makes volatility cluster.

Equations (t = 1, ..., T; agents i = 1, ..., N)
-----------------------------------------------

    ν_i(0) = exp(μ + σ_ν z_i),          z_i ~ N(0, 1)   ν(0) ~ LogNormal(μ, σ_ν), reparameterised
    ε_t    = σ ζ_t,                     ζ_t ~ N(0, 1)   the common signal, reparameterised
    ρ_i(t) = 1[ε_t ≥ ν_i] − 1[−ε_t ≥ ν_i]               order of agent i: +1 buy, −1 sell, 0 wait
    r_t    = Σ_i ρ_i(t) / (N η)                         the return (linear price impact)
    u_i(t) ~ Bernoulli(s)                               does agent i update its threshold?
    ν_i    ← u_i(t) |r_t| + (1 − u_i(t)) ν_i            (the update, written as a blend)

(ε_t is continuous, so ≥ and > differ with probability zero.) The observed series is the return
r_t, shape (T,); the thresholds are not observed.

Parameters ``params = (μ, σ_ν, σ, η)``
--------------------------------------
* μ (real): log-scale of the initial thresholds; the median initial threshold is e^μ.
* σ_ν (≥ 0): log-standard deviation of the initial thresholds (their heterogeneity).
* σ (≥ 0): standard deviation of the signal ε_t, in return units (σ = 0.01 is a 1% signal).
* η (> 0): market depth: if every agent buys, the return is 1/η.

Only the ratio σ·η and the scale of ν relative to σ matter: (ν, σ, η) → (cν, cσ, η/c) scales
the returns by 1/c and changes nothing else. The initial thresholds matter only until the agents
have updated them (a few multiples of 1/s steps); after that the thresholds are all past values
of |r_t|, so μ and σ_ν shape the start of the series, σ and η the whole of it.

Settings (keywords, not differentiated)
---------------------------------------
* ``s`` in [0, 1]: the probability that an agent updates its threshold in a step.
* ``k`` > 0: steepness of the surrogate for the buy/sell decisions, in 1/return units (the
  sigmoid's width 1/k should be small against the signal scale σ; see "Estimators").
* ``n_agents`` N ≥ 1, ``n_timesteps`` T ≥ 0, ``rng`` a :func:`minidiff.random.default_rng`
  generator (or a seed), ``estimator`` for the update draws.

Estimators: who handles which random choice
-------------------------------------------
* ν(0) and ε_t are continuous and reparameterised: exact pathwise derivatives in μ, σ_ν, σ.
* The buy/sell decisions 1[x ≥ 0] are deterministic given ε and ν but have zero derivative
  almost everywhere; each is a :func:`minidiff.stochastic.soft_step` with steepness ``k``: the
  hard value forward, the derivative of the sigmoid σ(kx) backward (straight-through sigmoid
  surrogate). This is a *biased* estimator: a kernel estimate, with bandwidth 1/k, of how many
  agents' decisions flip as θ moves. Under stochastic triples the decisions are still surrogates
  (no alternative worlds are opened for them).
* The update draws u_i(t) are Bernoulli(s), drawn with ``rng.bernoulli(s, size=N,
  estimator=estimator)`` (default ``"smoothed"``). s is a fixed setting, not a parameter, so the
  draws carry no derivative with respect to θ whichever estimator is chosen, and under
  stochastic triples no alternative world opens for them: triples reduce to the pathwise
  (surrogate) part. The update is written as the blend u|r| + (1 − u)ν rather than
  ``where(u, |r|, ν)``: the two have the same value and the same derivative in θ for a hard
  u ∈ {0, 1}, but the blend also passes on the estimator's derivative in u, so the model stays
  correct if s is ever made a parameter.
* Random numbers: the initial thresholds, the signals and the update draws come from three keyed
  streams of ``rng`` (``"thresholds"``, ``"signal"``, ``"updates"``), each drawn in a fixed
  order and amount whatever θ is: runs at different θ with the same seed use common random
  numbers.

The parameter regime, and why
-----------------------------
Cont's volatility clustering needs (i) a small updating probability s, so the threshold
distribution changes slowly and remembers the recent volatility, (ii) thresholds comparable to
the signal, so that only a *fraction* of the agents trade on a typical step (their number then
moves with the thresholds), and (iii) many agents. If σ·η is large every agent's threshold sits
far below the signal and everyone trades every step (r_t = ±1/η, negative excess kurtosis): the
tutorial setting σ = 1, η = 0.7 is of that kind. Scanning σ·η from 0.005 to 10 with s in
{0.01, 0.05, 0.1} and N in {1000, 5000} (T = 3000), the facts appear for σ·η ≲ 0.02 and are
strongest at σ·η ≈ 0.005-0.01 with s ≈ 0.03-0.05; at σ·η ≥ 0.05 the kurtosis is ≈ 0 or negative
and |r_t| is uncorrelated.

Defaults: σ = 0.01 (a 1% signal), η = 0.5, so σ·η = 0.005; s = 0.05 (an agent updates every 20
steps on average); N = 1000. The thresholds then settle with median ≈ 0.06 (6σ) and about 9% of
the agents trade on an average step. μ = −2.8 and σ_ν = 0.8 start the thresholds close to that
stationary spread (its log has mean ≈ −2.9 and standard deviation ≈ 0.8), so there is no long
transient. Measured on NumPy with this module's ``simulate`` at the defaults, N = 1000,
T = 5000, every step kept (``tests/test_models_rama_cont.py`` checks seeds 0-2):

    (acf: sample autocorrelation)
    seed    excess kurtosis    acf |r_t|, lags 1-10    max |acf r_t|, lags 1-10
    0       1.69               0.20 - 0.30             0.052
    1       1.65               0.24 - 0.33             0.044
    2       2.09               0.25 - 0.32             0.027
    3       2.28               0.25 - 0.33             0.022
    4       1.85               0.25 - 0.34             0.038

With T = 2000 the same seeds give kurtosis 1.9-2.6 and acf |r| 0.22-0.37, but max |acf r| up
to 0.09 (its sampling error is larger under clustered volatility); with N = 5000, kurtosis
2.2-3.2. The surrogate's default is ``k`` = 500 (width 0.002 = σ/5); the tests document how its
bias behaves (it vanishes as k grows before the first updates; over longer horizons the
surrogate and finite differences differ by 6-24%, within about 2 standard errors at 200 seeds).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import minidiff as md
from minidiff.core import Box, raw, shape_of
from minidiff.random import ESTIMATORS, default_rng
from minidiff.stochastic import soft_step

__all__ = ["DEFAULT_PARAMS", "DEFAULT_S", "DEFAULT_K", "DEFAULT_N_AGENTS", "PARAM_NAMES",
           "simulate"]

PARAM_NAMES = ("mu", "sigma_nu", "sigma", "eta")
DEFAULT_PARAMS = (-2.8, 0.8, 0.01, 0.5)
"""(μ, σ_ν, σ, η): the volatility-clustering regime (σ·η = 0.005); see the module notes."""
DEFAULT_S = 0.05
DEFAULT_K = 500.0
DEFAULT_N_AGENTS = 1000


def simulate(params: Any, *, n_timesteps: int, n_agents: int = DEFAULT_N_AGENTS, rng: Any,
             estimator: str = "smoothed", s: float = DEFAULT_S, k: float = DEFAULT_K) -> Any:
    """The returns r_1, ..., r_T of Cont's threshold model, shape (T,).

    Args:
        params: (μ, σ_ν, σ, η), a sequence or array of 4 numbers, possibly traced (grad,
            jacfwd, stochastic triples).
        n_timesteps: T ≥ 0.
        n_agents: N ≥ 1.
        rng: a :class:`minidiff.random.Generator` (or an integer seed); its streams
            ``"thresholds"``, ``"signal"`` and ``"updates"`` are used.
        estimator: the Bernoulli estimator of the threshold-update draws (see
            :mod:`minidiff.random`).
        s: probability in [0, 1] that an agent updates its threshold in a step.
        k: steepness (> 0) of the sigmoid surrogate of the buy/sell decisions.

    Returns:
        r, a backend array of shape (T,) (traced when ``params`` is).
    """
    mu, sigma_nu, sigma, eta = _unpack(params)
    n_timesteps = _count("n_timesteps", n_timesteps, least=0)
    n_agents = _count("n_agents", n_agents, least=1)
    _check_settings(s, k, estimator)
    rng = default_rng(rng)

    nu = rng.stream("thresholds").lognormal(mu, sigma_nu, size=n_agents)
    zeta = rng.stream("signal").normal(size=n_timesteps)  # parameter-free: ε_t = σ ζ_t below
    updates = rng.stream("updates")
    depth = md.multiply(eta, float(n_agents))  # N η
    returns = []
    for t in range(n_timesteps):
        eps = md.multiply(sigma, zeta[t])
        orders = soft_step(eps - nu, k) - soft_step(-eps - nu, k)
        r = md.sum(orders) / depth
        u = updates.bernoulli(s, size=n_agents, estimator=estimator)
        nu = md.multiply(u, md.abs(r)) + md.multiply(1.0 - u, nu)
        returns.append(r)
    if not returns:
        return md.zeros((0,))
    return md.stack(returns)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------


def _unpack(params: Any) -> tuple[Any, Any, Any, Any]:
    """(μ, σ_ν, σ, η) from a sequence or an array of 4, checking their values."""
    if isinstance(params, list | tuple):
        if len(params) != 4:
            raise ValueError(f"rama_cont.simulate: params must be (mu, sigma_nu, sigma, eta), "
                             f"4 values, got {len(params)}")
        values = tuple(p if isinstance(p, Box) else md.asarray(float(p)) for p in params)
    else:
        if not isinstance(params, Box):
            params = md.asarray(params)
        if shape_of(params) != (4,):
            raise ValueError(f"rama_cont.simulate: params must be (mu, sigma_nu, sigma, eta), "
                             f"shape (4,), got shape {shape_of(params)}")
        values = tuple(params[i] for i in range(4))
    floats = [float(raw(v)) for v in values]
    for name, v in zip(PARAM_NAMES, floats):
        if not math.isfinite(v):
            raise ValueError(f"rama_cont.simulate: {name} must be finite, got {v}")
    mu, sigma_nu, sigma, eta = floats
    if sigma_nu < 0:
        raise ValueError(f"rama_cont.simulate: sigma_nu (log-sd of the initial thresholds) "
                         f"must be >= 0, got {sigma_nu}")
    if sigma < 0:
        raise ValueError(f"rama_cont.simulate: sigma (signal standard deviation) must be >= 0, "
                         f"got {sigma}")
    if eta <= 0:
        raise ValueError(f"rama_cont.simulate: eta (market depth) must be > 0, got {eta}")
    return values


def _count(name: str, n: Any, least: int) -> int:
    if isinstance(n, bool):
        raise TypeError(f"rama_cont.simulate: {name} must be an integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"rama_cont.simulate: {name} must be an integer, got {n!r}") from None
    if n < least:
        raise ValueError(f"rama_cont.simulate: {name} must be >= {least}, got {n}")
    return n


def _check_settings(s: Any, k: Any, estimator: Any) -> None:
    if isinstance(s, Box) or isinstance(k, Box):
        raise TypeError("rama_cont.simulate: s and k are fixed settings, not parameters; "
                        "they cannot be traced")
    if isinstance(s, bool) or not isinstance(s, int | float) or not 0.0 <= s <= 1.0:
        raise ValueError(f"rama_cont.simulate: s (update probability) must be a number in "
                         f"[0, 1], got {s!r}")
    if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k <= 0:
        raise ValueError(f"rama_cont.simulate: k (surrogate steepness) must be a finite number "
                         f"> 0, got {k!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"rama_cont.simulate: unknown estimator {estimator!r}; use one of "
                         f"{tuple(ESTIMATORS)}")
