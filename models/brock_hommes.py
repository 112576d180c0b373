"""Brock & Hommes (1998): an asset market with heterogeneous, adaptively chosen beliefs.

Traders choose among H = 4 forecasting rules of the price's deviation x from its fundamental
value, switching towards the rules that earned most in the last period. The version here is the
one used in the calibration literature (Brock & Hommes 1998, eqs. 39–40 of Quera-Bofarull et al.
2022, arXiv:2202.00625), with two beliefs held fixed and four coefficients to infer.

Equations (t = 1, ..., T; x_{−2} = x_{−1} = x_0 = 0)
----------------------------------------------------
::

    forecast of type h        f_{h,t} = g_h x_{t−1} + b_h
    realised fitness          U_{h,t−1} = (x_{t−1} − R x_{t−2}) (g_h x_{t−3} + b_h − R x_{t−2})
    fractions (discrete       n_{h,t} = exp(β U_{h,t−1}) / Σ_k exp(β U_{k,t−1})
      choice, a softmax)
    market clearing           R x_t = Σ_h n_{h,t} f_{h,t} + ε_t,     ε_t = σ z_t,  z_t ~ N(0, 1)

U_{h,t−1} is the profit, per unit of risk, that type h made on the last realised excess return
x_{t−1} − R x_{t−2}, when its forecast of x_{t−1} (made at t − 2, from x_{t−3}) was
g_h x_{t−3} + b_h. So x_t needs x_{t−1}, x_{t−2} and x_{t−3}: the state is the last three prices.

Parameters
----------
``params = (g2, g3, b2, b3)``, the trend and bias of types 2 and 3 (``DEFAULT_PARAMS`` =
(0.9, 0.9, 0.2, −0.2): two opposite-biased, mildly mean-reverting types). Type 1 is the
fundamentalist (g1 = b1 = 0) and type 4 the pure trend follower (g4 = 1.01, b4 = 0); both are
fixed. Coefficients g are O(1) (|g| < R keeps a single type's dynamics stable), biases b are of
the order of the observed deviations (≈ 0.1–1).

Settings (keywords): ``R`` = 1 + r, the gross risk-free return (1.01; must be > 1, since the
risk-free rate r is positive: the fundamental price ȳ/r exists only for r > 0, and with R ≤ 1
even the fundamentalists' x_t = (Σ_h n_h f_h)/R amplifies every deviation, so a tiny R
overflows within a few steps), ``beta``, the
intensity of choice (120; ≥ 0; β = 0 splits traders evenly, large β sends nearly all to the best
rule), ``sigma``, the noise scale of the price (0.04; ≥ 0). They may be traced too (the noise is
reparameterised as σ·z, so d/dσ is pathwise).

Observed: the series x_1, ..., x_T, shape ``(T,)``.

Loss: ``loss(simulated, observed)`` = ½ Σ_j ((m_j(u_sim) − m_j(u_obs)) / (√2·se_j))², a
method-of-simulated-moments loss on the summary statistics m = ``summary_statistics(u)`` (the
mean, the sd and the autocorrelations at lags 1–3) of the series squashed at ``SQUASH``
observed sds, u = c·tanh(x/c) with c = ``SQUASH``·sd(x_obs), each scaled by its standard error
se_j estimated from the observed series alone (``_scales.moment_se``: the mean's from an AR(1)
long-run variance, the sd's s/√(2T), Bartlett's 1/√T for each autocorrelation), √2 counting the
simulated statistics' own noise as well. It does not compare two chaotic paths point by point:
under different shocks two paths at the same θ diverge, while their statistics agree to within
their standard errors. The squashing leaves the observed scale almost unchanged (tanh(z) ≈ z
for |z| ≪ 1) but caps an exploding simulation: it still counts as far from the data, yet its
derivative fades instead of growing with the explosion, so a few exploding draws cannot drown
the data's pull on the gradient. With this loss, w = 1 in ``minidiff calibrate`` is Bayes' rule
for the Gaussian (synthetic) likelihood of the five statistics with those standard errors
(taken as independent): a longer series gives smaller standard errors and so a narrower
posterior.

Randomness and derivatives
--------------------------
The only randomness is z_1..z_T, drawn in one call from the stream ``"shock"`` of the run's own
child generator ``rng.child()``: the draws depend only on the seed, never on the parameters, so
two runs at different θ with the same seed share them (common random numbers), a shorter run's
shocks are a prefix of a longer one's, and a reused Generator gives each run fresh ones.
Every operation is smooth in θ (the softmax is shifted by its maximum, so β = 120 cannot
overflow), so derivatives are plain pathwise derivatives in every mode, with no surrogate and no
discrete-sample estimator. The model has no agent array (the four types are fractions, not
agents): ``n_agents`` and ``estimator`` are accepted so every model shares one call signature,
are validated, and change nothing.

Numerical behaviour: with the defaults the series stays of order 0.1–1 (checked to T = 5000 in
the tests); the fitness grows like x², so for parameters far from the defaults (|g| ≫ R) the
series can grow geometrically and overflow in long runs — the model, not the code, diverges.

Derivatives are exact but stiff. With β = 120 the fractions switch almost like a step when two
fitnesses cross, so one path is smooth with very large higher derivatives: central finite
differences with common random numbers reach the pathwise value only for h ≲ 1e-6 (error ∝ h²;
at h = 1e-3 a per-sample difference can have the wrong sign). The pathwise gradient of a loss is
unbiased for ∇E[loss] but heavy-tailed, and the tails grow with T (for mean(x²) + mean(x):
99th percentile of |∂/∂b2| ≈ 80 at T = 10, ≈ 300 at T = 20, maximum ≈ 5000 in 2000 paths);
average many paths, or smooth (smaller β) before calibrating long horizons.

Differences from the blackbirds example: it draws all 11 quantities (log β, g1..g4, b1..b4,
log σ, log r) as parameters and squashes g into (1e-3, 1) with soft bounds; here four
coefficients are free, unconstrained, and β, σ, R are plain settings.
"""

from __future__ import annotations

from typing import Any

import minidiff as md
from minidiff.core import shape_of
from minidiff.distributions import Coordinatewise, Identity, Independent, Normal

from ._checks import check_count, check_estimator, check_number, generator, unpack
from ._scales import moment_se
from .registry import Calibration

__all__ = ["simulate", "loss", "summary_statistics", "N_LAGS", "SQUASH", "DEFAULT_PARAMS",
           "PARAM_NAMES",
           "DEFAULT_R", "DEFAULT_BETA", "DEFAULT_SIGMA", "FIXED_TYPES", "SHOCK_KEY"]

PARAM_NAMES = ("g2", "g3", "b2", "b3")
DEFAULT_PARAMS = (0.9, 0.9, 0.2, -0.2)
DEFAULT_R = 1.01
DEFAULT_BETA = 120.0
DEFAULT_SIGMA = 0.04
FIXED_TYPES = {"g1": 0.0, "b1": 0.0, "g4": 1.01, "b4": 0.0}
SHOCK_KEY = "shock"
N_LAGS = 3  # autocorrelations in the summary statistics
SQUASH = 5.0  # the loss caps series at this many observed sds (c·tanh(x/c))

_WHERE = "brock_hommes.simulate"


def simulate(params: Any, *, n_timesteps: int, n_agents: int | None = None, rng: Any,
             estimator: str | None = None, R: Any = DEFAULT_R,  # noqa: N803 (the paper's R)
             beta: Any = DEFAULT_BETA, sigma: Any = DEFAULT_SIGMA) -> Any:
    """The price deviations x_1..x_T of the Brock–Hommes model (equations in the module notes).

    Args:
        params: (g2, g3, b2, b3): four numbers, a shape-(4,) array, or a sequence of four
            (possibly traced) scalars.
        n_timesteps: T ≥ 1, the length of the observed series.
        n_agents: ignored (the model has no agents); None or an integer ≥ 1.
        rng: an int seed (the same run each time), a ``minidiff.random`` Generator (the run
            takes its next child, so reusing it gives fresh shocks), or None (fresh entropy);
            the shocks come from the child's ``stream("shock")``.
        estimator: ignored (no discrete randomness); None or one of ``minidiff.random.ESTIMATORS``.
        R: gross risk-free return 1 + r, > 1 (a positive risk-free rate r).
        beta: intensity of choice, ≥ 0.
        sigma: noise scale of the price, ≥ 0.

    Returns:
        x, shape ``(n_timesteps,)``: traced when any input is.
    """
    g2, g3, b2, b3 = unpack(_WHERE, params, PARAM_NAMES)
    for name, value in zip(PARAM_NAMES, (g2, g3, b2, b3)):
        check_number(_WHERE, name, value)
    n_timesteps = check_count(_WHERE, "n_timesteps", n_timesteps, 1)
    if n_agents is not None:
        check_count(_WHERE, "n_agents", n_agents, 1)
    check_estimator(_WHERE, estimator, optional=True)
    check_number(_WHERE, "R (gross risk-free return 1 + r, with the rate r > 0)", R, 1.0,
                 open_low=True)
    check_number(_WHERE, "beta (intensity of choice)", beta, 0.0)
    check_number(_WHERE, "sigma (noise scale)", sigma, 0.0)
    rng = generator(_WHERE, rng)  # this run's child: the shocks are keyed under it

    g = md.stack([md.asarray(FIXED_TYPES["g1"]), g2, g3, md.asarray(FIXED_TYPES["g4"])])
    b = md.stack([md.asarray(FIXED_TYPES["b1"]), b2, b3, md.asarray(FIXED_TYPES["b4"])])

    z = rng.stream(SHOCK_KEY).normal(0.0, 1.0, size=(n_timesteps,))
    # ops, not operators, throughout: a raw array on the left of a traced value is refused by
    # array_api_strict
    def step(lags: tuple[Any, Any, Any], z_t: Any) -> tuple[tuple[Any, Any, Any], Any]:
        x3, x2, x1 = lags  # x_{t−3}, x_{t−2}, x_{t−1}
        excess = md.subtract(x1, md.multiply(R, x2))                    # x_{t−1} − R x_{t−2}
        error = md.subtract(md.add(md.multiply(g, x3), b), md.multiply(R, x2))
        fractions = md.softmax(md.multiply(md.multiply(beta, excess), error))
        forecasts = md.add(md.multiply(g, x1), b)                       # f_{h,t}
        mean = md.sum(md.multiply(fractions, forecasts))
        x = md.divide(md.add(mean, md.multiply(sigma, z_t)), R)
        return (x2, x1, x), x

    # the time loop as one md.scan over the shocks (a loop of T steps bound once)
    start = md.zeros(())
    return md.scan(step, (start, start, start), z)[1]


def summary_statistics(x: Any) -> Any:
    """(mean, sd, ρ_1, ..., ρ_K) of a series x (T,), K = ``N_LAGS``, shape (2 + K,), with
    ρ_k = Σ_{t≥k} (x_t − x̄)(x_{t−k} − x̄) / Σ_t (x_t − x̄)² (the standard estimator)."""
    x = md.asarray(x)
    if len(shape_of(x)) != 1 or shape_of(x)[0] < N_LAGS + 2:
        raise ValueError(f"brock_hommes.summary_statistics: needs a series of shape (T,) with "
                         f"T ≥ {N_LAGS + 2}, got shape {shape_of(x)}")
    centred = md.subtract(x, md.mean(x))
    c0 = md.mean(md.square(centred))
    n = shape_of(x)[0]
    rows = [md.mean(x), md.sqrt(c0)]
    for k in range(1, N_LAGS + 1):
        ck = md.sum(md.multiply(md.getitem(centred, slice(k, None)),
                                md.getitem(centred, slice(0, n - k)))) / n
        rows.append(md.divide(ck, c0))
    return md.stack(rows)


def loss(simulated: Any, observed: Any) -> Any:
    """½ Σ_j ((m_j(u_sim) − m_j(u_obs)) / (√2·se_j))² over the summary statistics of the
    series squashed at ``SQUASH`` observed sds, se_j from the observed series (see the module
    notes)."""
    sim, obs = md.asarray(simulated), md.asarray(observed)
    if shape_of(sim) != shape_of(obs) or len(shape_of(sim)) != 1:
        raise ValueError(f"brock_hommes.loss: simulated and observed must both be series of "
                         f"shape (T,), got {shape_of(sim)} and {shape_of(obs)}")
    xp = md.get_backend().xp
    raw_obs = md.stop_gradient(obs)
    c = SQUASH * float(xp.std(raw_obs)) + 1e-12
    u_obs = c * xp.tanh(raw_obs / c)
    u_sim = md.multiply(c, md.tanh(md.divide(sim, c)))
    se = moment_se(u_obs, N_LAGS)
    z = md.divide(md.subtract(summary_statistics(u_sim), summary_statistics(u_obs)), se)
    return 0.25 * md.sum(md.square(z))


# ---------------------------------------------------------------------------------------------
# Calibration (``minidiff calibrate``): the prior, the map to natural parameters, the defaults
# ---------------------------------------------------------------------------------------------

__all__ += ["NATURAL", "prior", "CALIBRATION"]

NATURAL = Coordinatewise(Identity(), Identity(), Identity(), Identity())
"""How each coordinate x_j of the unconstrained space (where inference runs) maps to the
natural parameter: (g2, g3, b2, b3) = x (all four are real)."""


def prior() -> Independent:
    """The default prior x_j ~ N(loc_j, scale_j²) on the unconstrained x:
    g2, g3 ~ N(0.5, 0.5²) (trends well inside |g| < R) and b2, b3 ~ N(0, 0.5²)."""
    loc, scale = (0.5, 0.5, 0.0, 0.0), (0.5, 0.5, 0.5, 0.5)
    return Independent(Normal(list(loc), list(scale)))


# a moment loss scaled by its standard errors from the data: w = 1
CALIBRATION = Calibration({"n_timesteps": 50}, "model", 1.0, 10, 200, 0.05)
