"""Cont's threshold model of volatility clustering (Cont 2007; Ghoulmie, Cont & Nadal 2005).

R. Cont (2007), "Volatility clustering in financial markets: empirical facts and agent-based
models", in *Long Memory in Economics*, Springer. N agents trade one asset. Each agent i holds an
inaction threshold ν_i: every step a common public signal ε_t arrives, agent i buys one unit if
the signal exceeds its threshold, sells one if it is below minus its threshold, and otherwise
does nothing. The price moves with the net order flow, and each agent, at random times, resets
its threshold to the size of the latest price move: agents become less reactive after large
moves and more reactive after quiet spells, which is what makes volatility cluster.

Equations (t = 0, ..., T − 1; agents i = 1, ..., N)
---------------------------------------------------

    ν_i(0) = exp(μ + σ_ν z_i),          z_i ~ N(0, 1)   ν(0) ~ LogNormal(μ, σ_ν), reparameterised
    ε_t    = σ ζ_t,                     ζ_t ~ N(0, 1)   the common signal, reparameterised
    ρ_i(t) = 1[ε_t ≥ ν_i] − 1[−ε_t ≥ ν_i]               order of agent i: +1 buy, −1 sell, 0 wait
    r_t    = Σ_i ρ_i(t) / (N η)                         the return (linear price impact)
    u_i(t) = 1[U_i(t) < s],             U_i(t) ~ U(0, 1)  does agent i update its threshold?
    ν_i    ← |r_t| where u_i(t), else ν_i

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
  sigmoid's width 1/k trades the derivative's bias, small when 1/k is small against the signal
  scale σ, against its growth over the time loop, which a large k makes explode; see the
  defaults below and "Estimators").
* ``n_agents`` N ≥ 1, ``n_timesteps`` T ≥ 0, ``rng`` (an int seed, a
  :class:`minidiff.random.Generator`, None, or a :class:`Noise` drawn from one), ``estimator``.

Random numbers: keyed by what they are for
------------------------------------------
Each run takes its own child generator c = ``rng.child()`` (a reused Generator therefore gives
fresh runs). The z_i come from ``c.stream("thresholds")``; step t's ζ_t and its update mask from
the stream of the block of steps it falls in (:class:`Noise`). A draw therefore depends only on
the seed and on what it is for, never on θ or on what was drawn before it. So runs at different
θ with the same seed (or the same :class:`Noise`) use common random numbers, a shorter run's
draws are those of a longer one's first steps, and a step run again by
:func:`minidiff.checkpointed_loop` during the backward pass sees the same draws it saw in the
forward pass (which is what makes checkpointed gradients exact here). A :class:`Noise` holds
these draws: made on demand (memory flat in T) or all at once with :meth:`Noise.predraw` (for
benchmarks that time the model and not the random numbers); the values are the same.

Estimators: who handles which random choice
-------------------------------------------
* ν(0) and ε_t are continuous and reparameterised: exact pathwise derivatives in μ, σ_ν, σ.
* The buy/sell decisions 1[x ≥ 0] are deterministic given ε and ν but have zero derivative
  almost everywhere; each is a :func:`minidiff.stochastic.soft_step` with steepness ``k``: the
  hard value forward, the derivative of the sigmoid σ(kx) backward (straight-through sigmoid
  surrogate). This is a *biased* estimator: a kernel estimate, with bandwidth 1/k, of how many
  agents' decisions flip as θ moves. Under stochastic triples the decisions are still surrogates
  (no alternative worlds are opened for them).
* The updates u_i(t) are Bernoulli(s) draws, and s is a fixed setting (a traced s is refused),
  not a parameter: they carry no derivative with respect to θ whatever estimator is chosen, and
  under stochastic triples no alternative world opens for them, so triples reduce to the
  pathwise (surrogate) part. ``estimator`` is therefore checked (so every model shares one call
  signature) and changes nothing, the default ``"smoothed"`` included. The update is
  ``where(u, |r|, ν)``: with u carrying no derivative, that has the value and the derivative in
  θ of the blend u|r| + (1 − u)ν, and the tape keeps one boolean per agent instead of two floats.

The parameter regime, and why
-----------------------------
Cont's volatility clustering needs (i) a small updating probability s, so the threshold
distribution changes slowly and remembers the recent volatility, (ii) thresholds comparable to
the signal, so that only a *fraction* of the agents trade on a typical step (their number then
moves with the thresholds), and (iii) many agents. If σ·η is large every agent's threshold sits
far below the signal and everyone trades every step (r_t = ±1/η, negative excess kurtosis): the
tutorial setting σ = 1, η = 0.7 is of that kind. Scanning σ·η and s, the facts (excess kurtosis
of r_t, slowly decaying autocorrelation of |r_t|, returns themselves uncorrelated) appear for
small σ·η, a few thousandths, with s of a few percent, and disappear once σ·η reaches a few
hundredths.

Defaults: σ = 0.01 (a 1% signal), η = 0.5, so σ·η = 0.005; s = 0.05 (an agent updates every 20
steps on average); N = 1000. The thresholds then settle at a few σ, and a minority of the agents
trade on an average step. μ = −2.8 and σ_ν = 0.8 start the thresholds close to that stationary
spread, so there is no long transient. The surrogate's default is ``k`` = 50 (width 0.02 =
2σ), chosen for long runs rather than for one step. Through the time loop, the derivative of
r_t reaches the thresholds that updated to |r_{t−1}|, so each step multiplies the pathwise
derivative by about k/(Nη) times the number of agents whose threshold lies within 1/k of the
signal. A steep surrogate (k = 500, width σ/5) makes that factor exceed one, and a run's
gradient then grows geometrically with T: already useless after 100 steps (its seed-to-seed
spread dwarfs its mean). At k = 50 it stays of the size of a finite-difference estimate over
thousands of steps, at the price of a kernel bias of about a tenth (the width is now wider than
σ). ``tests/test_models_cont.py`` measures the stylised facts at the defaults, documents how
the surrogate's bias behaves, and checks that the default gradient does not grow with T.

``BENCHMARK_PARAMS`` and ``BENCHMARK_SETTINGS`` are a busier market for the benchmarks and
``minidiff memory``: σ·η = 0.5, s = 0.1, k = 5, where a large and varying fraction of the agents
trades each step, so both sides of every threshold are visited.

Loss and the long-horizon workload
----------------------------------
``loss(simulated, observed)`` compares three summary statistics of two return series (their
order in time is noise, so the series are not compared point by point):
m(r) = (½ log mean r², log kurtosis, autocorrelation of |r| at lag 1), the log-volatility,
fat tails and volatility clustering, each of order 1; loss = Σ_j (m_j(sim) − m_j(obs))².

``realised_variance`` is Σ_t r_t², computed with the running sum in the loop state, so that
``checkpointed=True`` can run the time loop in :func:`minidiff.checkpointed_loop` (the state is
(ν, Σ r²): N + 1 numbers per snapshot). The benchmarks and ``minidiff memory`` differentiate it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import minidiff as md
from minidiff.core import is_traced, shape_of
from minidiff.distributions import Coordinatewise, Identity, Independent, Normal, Pow10
from minidiff.stochastic import soft_step

from ._checks import check_count, check_estimator, check_number, generator, unpack
from .registry import Calibration

__all__ = ["simulate", "loss", "summary_statistics", "realised_variance", "Noise",
           "DEFAULT_PARAMS", "PARAM_NAMES", "DEFAULT_S", "DEFAULT_K", "DEFAULT_N_AGENTS",
           "BENCHMARK_PARAMS", "BENCHMARK_SETTINGS"]

PARAM_NAMES = ("mu", "sigma_nu", "sigma", "eta")
DEFAULT_PARAMS = (-2.8, 0.8, 0.01, 0.5)
"""(μ, σ_ν, σ, η): the volatility-clustering regime (σ·η = 0.005); see the module notes."""
DEFAULT_S = 0.05
DEFAULT_K = 50.0
DEFAULT_N_AGENTS = 1000

BENCHMARK_PARAMS = (-1.0, 0.5, 0.5, 1.0)
"""(μ, σ_ν, σ, η) of the busy market the benchmarks and ``minidiff memory`` differentiate."""
BENCHMARK_SETTINGS = MappingProxyType({"s": 0.1, "k": 5.0})

_LABELS = {"mu": "mu (log-scale of the initial thresholds)",
           "sigma_nu": "sigma_nu (log-sd of the initial thresholds)",
           "sigma": "sigma (signal standard deviation)",
           "eta": "eta (market depth)"}


class Noise:
    """The random numbers of runs with N agents and update probability s, from one generator.

    A Noise takes one child of ``rng`` (an int seed, a Generator, or None) and keys every draw
    under it, so runs given the same Noise share their random numbers draw for draw.
    ``z`` (N,) are the initial thresholds' standard normals (stream ``"thresholds"``);
    ``step(t)`` gives step t's (ζ_t, u_t): a 0-d standard normal and a boolean (N,) mask of the
    agents that update, each with probability s, the same values every time it is asked.

    The steps are drawn in blocks of L = max(16, 2¹⁶ // N) (the time loop's scan segments): the
    block that starts at step b·L reads the stream ``("steps", b·L)``, L normals then the (L, N)
    masks as Bernoulli(s) indicators (:meth:`minidiff.random.Generator.indicators`, about s·L·N
    uniforms). Step t's numbers therefore depend on t and the stream alone, never on how many
    steps a run has, and a step asked again (a checkpointed loop recomputing it) reads the same
    block. The Noise keeps the block it drew last; ``predraw(T)`` draws steps 0..T−1 now and
    keeps them all (memory ∝ T N).
    """

    def __init__(self, rng: Any, n_agents: int, *, s: float = DEFAULT_S,
                 _where: str = "cont.Noise") -> None:
        self.n_agents = check_count(_where, "n_agents", n_agents, 1)
        self.s = check_number(_where, "s (update probability)", s, 0.0, 1.0, traced=False)
        self.rng = generator(_where, rng)  # a new child of rng: its draws are this Noise's
        self.z = self.rng.stream("thresholds").normal(size=(self.n_agents,))
        self.block_length = _block_length(self.n_agents)
        self._blocks: dict[int, tuple[Any, Any]] = {}
        self._keep_all = False

    def __repr__(self) -> str:
        return (f"cont.Noise({self.rng!r}, n_agents={self.n_agents}, s={self.s:g}; "
                f"{len(self._blocks) * self.block_length if self._keep_all else 0} steps "
                f"drawn ahead)")

    def block(self, start: int) -> tuple[Any, Any]:
        """The draws of steps start..start+L−1, ((L,) normals, (L, N) masks); ``start`` is a
        multiple of the block length L."""
        kept = self._blocks.get(start)
        if kept is None:
            stream = self.rng.stream(("steps", start))
            length = self.block_length
            kept = (stream.normal(size=(length,)),
                    stream.indicators(self.s, (length, self.n_agents)))
            if not self._keep_all:
                self._blocks.clear()
            self._blocks[start] = kept
        return kept

    def predraw(self, n_steps: int) -> Noise:
        """Draw steps 0..n_steps−1 now and keep them; returns this Noise."""
        n_steps = check_count("cont.Noise.predraw", "n_steps", n_steps, 0)
        self._keep_all = True
        for start in range(0, n_steps, self.block_length):
            self.block(start)
        return self

    def step(self, t: int) -> tuple[Any, Any]:
        """(ζ_t, the boolean update mask u_t of shape (N,))."""
        if type(t) is not int or t < 0:
            t = check_count("cont.Noise.step", "t", t, 0)
        offset = t % self.block_length
        zetas, masks = self.block(t - offset)
        if is_traced(zetas) or is_traced(masks):  # batched draws: index through the engine
            return md.getitem(zetas, offset), md.getitem(masks, offset)
        return zetas[offset], masks[offset, ...]  # plain arrays: a view each, as fast as a list


def _block_length(n_agents: int) -> int:
    """L = max(16, 2¹⁶ // N) steps: a block's masks take about 64 KiB (16 steps at least)."""
    return max(16, _SEGMENT_BYTES // n_agents)


def simulate(params: Any, *, n_timesteps: int, n_agents: int = DEFAULT_N_AGENTS, rng: Any,
             estimator: str = "smoothed", s: float = DEFAULT_S, k: float = DEFAULT_K) -> Any:
    """The returns r_0, ..., r_{T−1} of Cont's threshold model, shape (T,).

    Args:
        params: (μ, σ_ν, σ, η), a sequence or array of 4 numbers, possibly traced (grad,
            jacfwd, stochastic triples).
        n_timesteps: T ≥ 0.
        n_agents: N ≥ 1.
        rng: an int seed (the same run each time), a :class:`minidiff.random.Generator` (the
            run takes its next child: reusing it gives fresh runs), None (fresh entropy), or a
            :class:`Noise` made with the same ``n_agents`` and ``s`` (its draws, every time).
        estimator: checked and otherwise unused (the update draws have no derivative; see the
            module notes).
        s: probability in [0, 1] that an agent updates its threshold in a step.
        k: steepness (> 0) of the sigmoid surrogate of the buy/sell decisions.

    Returns:
        r, a backend array of shape (T,) (traced when ``params`` is).
    """
    where = "cont.simulate"
    theta, n_timesteps, noise, k = _arguments(where, params, n_timesteps, n_agents, rng,
                                              estimator, s, k)
    if not n_timesteps:
        return md.zeros((0,))
    step = _scan_step(theta, noise, k)
    nu, returns = _initial_thresholds(theta, noise), []
    for start, stop in _segments(n_timesteps, noise.n_agents):
        nu, rs = md.scan(step, nu, _draws(noise, start, stop))
        returns.append(rs)
    return returns[0] if len(returns) == 1 else md.concatenate(returns)


def realised_variance(params: Any, *, n_timesteps: int, n_agents: int = DEFAULT_N_AGENTS,
                      rng: Any, estimator: str = "smoothed", s: float = DEFAULT_S,
                      k: float = DEFAULT_K, checkpointed: bool = False,
                      snapshots: int | None = None) -> Any:
    """Σ_t r_t² of one run (arguments as :func:`simulate`), a scalar.

    The time loop carries the state (ν, Σ r²). With ``checkpointed=True`` it runs in
    :func:`minidiff.checkpointed_loop` with ``snapshots`` stored states (default ⌈√T⌉): under
    reverse mode the tape then keeps those snapshots instead of every step's residuals, and
    the recomputed steps see the same draws (keyed streams), so the gradient is the same.
    Without it the loop is a Python loop drawing each step's noise when the step runs (not a
    scan, as in :func:`simulate`): this is the workload ``minidiff memory`` and the tutorials
    measure, whose tape grows by one step's residuals per step and whose forward pass keeps
    nothing of the past (``docs/scan.md`` measures the scan's memory beside it).
    """
    where = "cont.realised_variance"
    theta, n_timesteps, noise, k = _arguments(where, params, n_timesteps, n_agents, rng,
                                              estimator, s, k)
    if not isinstance(checkpointed, bool):
        raise TypeError(f"{where}: checkpointed must be True or False, got {checkpointed!r}")
    advance = _step(theta, noise, k)

    def step(state: tuple[Any, Any], t: int) -> tuple[Any, Any]:
        nu, total = state
        nu, r = advance(nu, t)
        return nu, md.add(total, md.multiply(r, r))

    state = (_initial_thresholds(theta, noise), md.zeros(()))
    if checkpointed:
        return md.checkpointed_loop(step, state, n_timesteps, snapshots)[1]
    for t in range(n_timesteps):
        state = step(state, t)
    return state[1]


def summary_statistics(returns: Any) -> Any:
    """m(r) = (½ log mean r², log kurtosis, acf of |r| at lag 1), shape (3,).

    With z = r − mean(r) and a = |r| − mean|r|: kurtosis mean(z⁴)/mean(z²)² (3 for normal
    returns; its log tames the sampling noise of fat tails), acf mean(a_t a_{t+1}) / mean(a²).
    Needs T ≥ 2 returns that are not all equal."""
    r = md.asarray(returns)
    if len(shape_of(r)) != 1 or shape_of(r)[0] < 2:
        raise ValueError(f"cont.summary_statistics: returns must be a series of shape (T,) "
                         f"with T ≥ 2, got shape {shape_of(r)}")
    log_volatility = md.multiply(0.5, md.log(md.mean(md.square(r))))
    z = md.subtract(r, md.mean(r))
    z2 = md.mean(md.square(z))
    log_kurtosis = md.log(md.divide(md.mean(md.square(md.square(z))), md.square(z2)))
    a = md.abs(r)
    a = md.subtract(a, md.mean(a))
    lag1 = md.mean(md.multiply(md.getitem(a, slice(None, -1)), md.getitem(a, slice(1, None))))
    acf = md.divide(lag1, md.mean(md.square(a)))
    return md.stack([log_volatility, log_kurtosis, acf])


def loss(simulated: Any, observed: Any) -> Any:
    """Σ_j (m_j(simulated) − m_j(observed))² over the three :func:`summary_statistics`."""
    difference = md.subtract(summary_statistics(simulated), summary_statistics(observed))
    return md.sum(md.square(difference))


# ---------------------------------------------------------------------------------------------
# the step, and the checks shared by simulate and realised_variance
# ---------------------------------------------------------------------------------------------


def _initial_thresholds(theta: tuple[Any, ...], noise: Noise) -> Any:
    mu, sigma_nu = theta[0], theta[1]
    return md.exp(md.add(mu, md.multiply(sigma_nu, noise.z)))


def _scan_step(theta: tuple[Any, ...], noise: Noise, k: float) -> Any:
    """move(ν, (ζ_t, u_t)) = (ν after step t, r_t): one step given its draws (the body of the
    time loop's ``md.scan``)."""
    sigma, eta = theta[2], theta[3]
    depth = md.multiply(eta, float(noise.n_agents))  # N η

    def move(nu: Any, x: tuple[Any, Any]) -> tuple[Any, Any]:
        zeta, update = x
        eps = md.multiply(sigma, zeta)
        # The operator, not md.subtract: both steps are traced or neither (each reads ε and ν),
        # and on plain arrays NumPy then reuses the temporary's buffer for the difference.
        orders = (soft_step(md.subtract(eps, nu), k)
                  - soft_step(md.subtract(md.negative(eps), nu), k))
        r = md.divide(md.sum(orders), depth)
        return md.where(update, md.abs(r), nu), r

    return move


def _step(theta: tuple[Any, ...], noise: Noise, k: float) -> Any:
    """advance(ν, t) = (ν after step t, r_t), drawing step t's noise from its own stream (the
    step of the checkpointed loop, which draws again when it recomputes a step)."""
    move = _scan_step(theta, noise, k)

    def advance(nu: Any, t: int) -> tuple[Any, Any]:
        return move(nu, noise.step(t))

    return advance


_SEGMENT_BYTES = 2**16  # about the update masks one scan of the time loop reads at most


def _segments(n_timesteps: int, n_agents: int) -> list[tuple[int, int]]:
    """The time loop as scans of the Noise's blocks, L = max(16, 2¹⁶ // N) steps: each reads
    its block's draws as xs, (L, N) masks of about 64 KiB, drawn when the scan starts, so that
    what a run keeps besides its state stays small and flat in T and N (mixed-mode calibration
    holds nothing that grows with N) while a scan still runs many steps per call."""
    length = _block_length(n_agents)
    return [(t, min(t + length, n_timesteps)) for t in range(0, n_timesteps, length)]


def _draws(noise: Noise, start: int, stop: int) -> tuple[Any, Any]:
    """(ζ_t, u_t) for t in [start, stop): the block's draws as its scan's xs, (L,), (L, N),
    cut to the run's last step."""
    zetas, masks = noise.block(start)
    if stop - start == noise.block_length:
        return zetas, masks
    return md.getitem(zetas, slice(0, stop - start)), md.getitem(masks, slice(0, stop - start))


def _arguments(where: str, params: Any, n_timesteps: Any, n_agents: Any, rng: Any,
               estimator: Any, s: Any, k: Any) -> tuple[tuple[Any, ...], int, Noise, float]:
    theta = unpack(where, params, PARAM_NAMES)
    check_number(where, _LABELS["mu"], theta[0])
    check_number(where, _LABELS["sigma_nu"], theta[1], 0.0)
    check_number(where, _LABELS["sigma"], theta[2], 0.0)
    check_number(where, _LABELS["eta"], theta[3], 0.0, open_low=True)
    n_timesteps = check_count(where, "n_timesteps", n_timesteps, 0)
    n_agents = check_count(where, "n_agents", n_agents, 1)
    s = check_number(where, "s (update probability)", s, 0.0, 1.0, traced=False)
    k = check_number(where, "k (surrogate steepness)", k, 0.0, open_low=True, traced=False)
    check_estimator(where, estimator)
    if isinstance(rng, Noise):
        if (rng.n_agents, rng.s) != (n_agents, s):
            raise ValueError(f"{where}: the Noise given as rng was made for n_agents="
                             f"{rng.n_agents}, s={rng.s:g}, but this run has n_agents="
                             f"{n_agents}, s={s:g}; make a Noise with the run's own")
        return theta, n_timesteps, rng, k
    return theta, n_timesteps, Noise(rng, n_agents, s=s, _where=where), k


# ---------------------------------------------------------------------------------------------
# Calibration (``minidiff calibrate``): the prior, the map to natural parameters, the defaults
# ---------------------------------------------------------------------------------------------

__all__ += ["NATURAL", "prior", "CALIBRATION"]

NATURAL = Coordinatewise(Identity(), Pow10(), Pow10(), Pow10())
"""How each coordinate x_j of the unconstrained space (where inference runs) maps to the
natural parameter: mu = x_0 (real), and sigma_nu, sigma, eta = 10**x_j (their log10)."""


def prior() -> Independent:
    """The default prior x_j ~ N(loc_j, scale_j²) on the unconstrained x:
    mu ~ N(-3, 1); log10 sigma_nu ~ N(0, 0.5²); log10 sigma ~ N(-2, 0.5²) (a signal of about
    1%); log10 eta ~ N(0, 0.5²)."""
    loc, scale = (-3.0, 0.0, -2.0, 0.0), (1.0, 0.5, 0.5, 0.5)
    return Independent(Normal(list(loc), list(scale)))


CALIBRATION = Calibration({"n_timesteps": 100, "n_agents": 1000}, "mmd", 0.001, 10, 100, 0.05)
