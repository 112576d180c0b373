"""The agent-based SIR epidemic, well mixed (mean field) or on a contact network.

State
-----
N agents, each in one of three compartments, held as float indicator arrays s, i, r of shape
(N,) with s + i + r = 1 per agent (a mask, not Python objects). Updates multiply by the masks,
so one vectorised step moves every agent, and the code runs unchanged on plain arrays, under
``jacfwd``/``grad`` and under stochastic triples.

Equations (one step of length Δt = ``dt``, default 1 day)
---------------------------------------------------------
Initial state: each agent is infected with probability i₀, independently:
i_a(0) ~ Bernoulli(i₀), s_a(0) = 1 − i_a(0), r_a(0) = 0.

Well mixed (``network=None``), with I(t) = (1/N) Σ_a i_a(t) the infected fraction:

    p_inf(t) = 1 − exp(−β I(t) Δt),        p_rec = 1 − exp(−γ Δt),
    ΔI_a ~ Bernoulli(p_inf · s_a),          ΔR_a ~ Bernoulli(p_rec · i_a),
    s ← s − ΔI,   i ← i + ΔI − ΔR,   r ← r + ΔR.

Bernoulli(p · s_a) equals Bernoulli(p) · s_a draw for draw (same uniform U > 0), but proposes no
stochastic-triple jumps for agents that cannot move. An agent infected in a step recovers at
the earliest in the next step. As N → ∞ the fractions follow the SIR equations
dS/dt = −βSI, dI/dt = βSI − γI, dR/dt = γI (up to the O(Δt) difference between this
discrete-time chain and the ODE).

On a network (``network="erdos_renyi"``, ``"watts_strogatz"``, a :class:`ContactGraph`, or a
scipy.sparse adjacency matrix), with k_a(t) = Σ_b A_ab i_b(t) the number of infected neighbours
of agent a:

    p_inf,a(t) = 1 − (1 − β)^{k_a(t)},

i.e. each infected neighbour transmits independently with probability β per step (``dt`` is not
used there). The graph is built once, from the stream ``"graph"``, with the backend's
array-API integer operations (no NumPy or SciPy here; on a GPU it is built there):
Erdős–Rényi as G(N, M) with M = round(N·``mean_degree``/2) uniformly drawn pairs (self-loops and
repeated pairs dropped, so the mean degree is slightly below ``mean_degree``); Watts–Strogatz as
a ring lattice with ``mean_degree``/2 neighbours on each side whose edges are each rewired to a
uniform random endpoint with probability ``rewire_prob``. The edges of both directions are
encoded as keys a·N + b, sorted and stripped of repeats, so agent a's neighbours are a run of
consecutive entries; the row pointers come from ``searchsorted``. That is the
compressed sparse row (CSR) form: row pointers ``indptr`` (N + 1,), column indices ``indices``.
The neighbour count runs through minidiff ops and adds nothing to the engine:
``g = md.getitem(i, indices)`` gathers each edge's infected indicator, ``c = md.cumsum(g)`` (with
a 0 in front) is the running edge count, and k = c[indptr[1:]] − c[indptr[:-1]] is the per-row
(segment) sum. The sums are of 0/1 values, exact in float64. Cost O(N + edges) per step, and
both modes differentiate it (getitem's VJP scatter-adds).

Parameters (natural scale), ``params = (β, γ, i₀)``
---------------------------------------------------
β (``beta``): well mixed, the infection rate per day per unit infected fraction, ≥ 0 (default
0.3); on a network, the per-contact transmission probability per step, in [0, 1].
γ (``gamma``): the recovery rate per day, ≥ 0 (default 0.1; mean infectious period 1/γ days).
i₀ (``initial_infected``): the probability that an agent starts infected, in [0, 1] (default
0.01).

Observed
--------
Shape (T, 2): for each step t = 1..T, the fraction of the N agents newly infected and the
fraction newly recovered during that step.

Loss
----
``loss(simulated, observed)`` compares six summary statistics m = ``summary_statistics(series)``
of (T, 2) series: for each column c (new infections, new recoveries), the total
A_c = Σ_t y(t, c) (the attack rate, for infections), the mean step τ_c = Σ_t t·y(t, c)/A_c and
the spread S_c = √(Σ_t (t − τ_c)² y(t, c)/A_c): how much, when and over how long. τ and S are
taken with a pseudo-mass ε_c (the observed column's noise sd σ̂_c) spread evenly over the T
steps, so a run that dies out has τ near the middle of the window and bounded derivatives
(0/0 had none). Each standard error se_j is the observed statistic's, propagated from σ̂_c
(``_scales.noise_sd``: from the column's second differences, floored at 5% of its root mean
square), treating the T points as independent: se(A_c) = σ̂_c√T, se(τ_c) =
σ̂_c √(Σ_t (t − τ_c)²)/A_c, se(S_c) = σ̂_c √(Σ_t ((t − τ_c)² − S_c²)²)/(2 S_c A_c).

* One simulated series (the default of ``minidiff calibrate``): ½ Σ_j ((m_j(sim) −
  m_j(obs)) / (√2·se_j))², where √2 counts the simulated statistics' noise as equal to the
  data's. With w = 1, Bayes' rule for a Gaussian likelihood of the six statistics with those
  standard errors (taken as independent). When the model's runs are far noisier than the data
  (1000 agents against a large population's counts), its expectation over the runs' noise is
  mostly their variance, Σ_j Var m_j/(4 se_j²), which the fit then trades against the misfit.
* An ensemble (m, T, 2) of m ≥ 2 runs at the same θ (``minidiff calibrate --simulations m``):
  the Gaussian synthetic likelihood (Wood 2010) of the statistics, ½ Σ_j [(m̄_j − m_j(obs))²/v_j
  + log v_j] with m̄_j and s_j² the ensemble's mean and variance and v_j = (1 + 1/m) s_j² +
  se_j² (the runs' own spread, the ensemble mean's error, the data's noise; the covariance is
  taken as diagonal, which m of a few runs can estimate). The runs' spread enters as ½ log v,
  so a θ whose runs vary little is not preferred for that alone. With w = 1, Bayes' rule for
  that likelihood. It costs m runs per θ draw; ``bench/epidemic_fit.py`` compares the two
  forms through ``minidiff calibrate`` and ``bench/epidemic_objective.py`` their exact
  posteriors.

Why statistics and not the series point by point: at R₀ near 1 two runs at the same θ differ
mostly in *when* the epidemic takes off, and a pointwise loss charges that timing noise to every
point, so E_q[ℓ] is smallest where nothing happens (β < γ, a flat series: no timing noise). The
statistics charge timing once, in τ, and the attack rate pins the size. Less noisy or longer
data give a narrower posterior. ``attack_rate(series)`` is A_0, the fraction of agents infected
during the run, and ``peak_step(series)`` the step with the most new infections.

Estimators
----------
Three kinds of random choice, all drawn with ``bernoulli(..., estimator=estimator)`` on keyed
streams (``"initial"``, ``("infect", t)``, ``("recover", t)``) of the run's own child generator
``rng.child()``, so runs with the same seed (or stream) at nearby parameters share uniforms
(common random numbers) and a reused Generator gives each run fresh ones: the initial infections
(derivative in i₀), the infections (in β, and through I(t) in everything), the recoveries (in
γ). The default ``"smoothed"`` works in both modes but is biased, since the observed series is
not linear in the draws (infections feed back through I(t)); under
:func:`minidiff.stochastic.derivative_estimate` every sampler emits stochastic-triple jumps
instead (unbiased). The graph's draws carry no parameter.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import minidiff as md
from minidiff.core import shape_of
from minidiff.distributions import Coordinatewise, Exp, Independent, Normal, Sigmoid
from minidiff.random import bernoulli_from_uniform
from minidiff.random.distributions import traced_beyond_batching

from ._checks import check_count, check_estimator, check_number, generator, unpack
from ._reference_loop import python_loop
from ._scales import noise_sd
from .registry import Calibration

__all__ = ["simulate", "loss", "summary_statistics", "attack_rate", "peak_step",
           "DEFAULT_PARAMS", "PARAM_NAMES",
           "NETWORKS", "ContactGraph", "build_graph"]

PARAM_NAMES = ("beta", "gamma", "initial_infected")
DEFAULT_PARAMS = (0.3, 0.1, 0.01)
NETWORKS = ("erdos_renyi", "watts_strogatz")
_WHERE = "sir.simulate"


class ContactGraph(NamedTuple):
    """A contact network in compressed sparse row form, as backend int64 arrays: agent a's
    neighbours are ``indices[indptr[a]:indptr[a + 1]]``.

    ``indptr`` has shape (N + 1,), ``indices`` shape (E,), E the number of (directed) entries;
    the generated graphs are symmetric, without self-loops or repeated entries."""

    indptr: Any
    indices: Any

    @property
    def n_agents(self) -> int:
        return int(self.indptr.shape[0]) - 1


def simulate(params: Any, *, n_timesteps: int, n_agents: int = 1000, rng: Any,
             estimator: str = "smoothed", dt: float = 1.0, network: Any = None,
             mean_degree: int = 10, rewire_prob: float = 0.1) -> Any:
    """Daily new-infection and new-recovery fractions, shape (T, 2) (see the module notes).

    Args:
        params: (β, γ, i₀) as a tuple or a vector of 3.
        n_timesteps: T ≥ 1 steps.
        n_agents: N ≥ 1 agents.
        rng: an int seed (the same run each time), a :class:`minidiff.random.Generator` (the
            run takes its next child: reusing it gives fresh runs), or None (fresh entropy).
        estimator: the Bernoulli samplers' estimator.
        dt: step length Δt > 0 (well mixed only).
        network: None (well mixed), ``"erdos_renyi"``, ``"watts_strogatz"``, a
            :class:`ContactGraph`, or a square scipy.sparse (anything with ``tocsr()``)
            adjacency matrix of size N.
        mean_degree: the generated graph's mean degree (even for Watts–Strogatz).
        rewire_prob: Watts–Strogatz rewiring probability, in [0, 1].

    When a parameter is differentiated (``grad``, ``jacfwd``, under ``vmap`` or not, and
    stochastic triples) the time loop is :func:`minidiff.scan` over segments of steps, each
    reading its steps' uniforms as ``xs``: the same draws, values and derivatives as the
    Python loop that draws each step from its keyed streams, and faster under ``grad`` and
    ``jacfwd`` (stochastic triples run a scan step by step, as fast as the loop). The primal,
    batched by ``vmap`` or not, and ``estimator="score"`` (whose draws add to the generator's
    log-probability ledger) run that Python loop, which is the faster there.
    """
    return _run(params, n_timesteps, n_agents, rng, estimator, dt, network, mean_degree,
                rewire_prob, loop=estimator == "score")


def _run(params: Any, n_timesteps: int, n_agents: int, rng: Any, estimator: str, dt: float,
         network: Any, mean_degree: int, rewire_prob: float, loop: bool) -> Any:
    """:func:`simulate`, its time loop a scan or (``loop``) the Python loop."""
    beta, gamma, i0 = unpack(_WHERE, params, PARAM_NAMES)
    n_timesteps = check_count(_WHERE, "n_timesteps", n_timesteps, 1)
    n_agents = check_count(_WHERE, "n_agents", n_agents, 1)
    if network is None:
        check_number(_WHERE, "beta (infection rate per day)", beta, 0.0)
    else:
        check_number(_WHERE, "beta (per-contact transmission probability)", beta, 0.0, 1.0)
    check_number(_WHERE, "gamma (recovery rate per day)", gamma, 0.0)
    check_number(_WHERE, "initial_infected (probability)", i0, 0.0, 1.0)
    check_number(_WHERE, "dt (step length)", dt, 0.0, open_low=True, traced=False)
    check_estimator(_WHERE, estimator)
    rng = generator(_WHERE, rng)  # this run's child: every draw below is keyed under it
    graph = None if network is None else build_graph(network, n_agents, rng.stream("graph"),
                                                     mean_degree, rewire_prob)
    shape = (n_agents,)
    infected = rng.stream("initial").bernoulli(md.multiply(i0, md.ones(shape)),
                                               estimator=estimator)
    carry = (1.0 - infected, infected)
    p_rec = -md.expm1(-(gamma * dt))
    if loop or not any(traced_beyond_batching(v) for v in (beta, gamma, i0)):
        return _loop(_step(beta, p_rec, dt, graph, _drawer(estimator, per_step=True)), carry,
                     rng, n_timesteps)
    step = _step(beta, p_rec, dt, graph, _drawer(estimator, per_step=False))
    parts = []
    for start, stop in _segments(n_timesteps, n_agents):
        carry, rows = md.scan(step, carry, _uniforms(rng, start, stop, n_agents))
        parts.append(rows)
    return parts[0] if len(parts) == 1 else md.concatenate(parts)


_python_loop = python_loop(simulate, _run)


def _drawer(estimator: str, per_step: bool) -> Any:
    """draw(x, p): a Bernoulli(p) sample, from step x's keyed stream (``per_step``, the Python
    loop) or from its uniforms (the scan)."""
    if per_step:
        return lambda stream, p: stream.bernoulli(p, estimator=estimator)
    return lambda u, p: bernoulli_from_uniform(u, p, estimator=estimator)


def _loop(step: Any, carry: tuple[Any, Any], rng: Any, n_timesteps: int) -> Any:
    """The time loop in Python, each step drawing from its keyed streams as it runs."""
    rows = []
    for t in range(n_timesteps):
        carry, row = step(carry, (rng.stream(("infect", t)), rng.stream(("recover", t))))
        rows.append(row)
    return md.stack(rows)


def _step(beta: Any, p_rec: Any, dt: float, graph: ContactGraph | None, draw: Any) -> Any:
    """step((s, i), x) = ((s, i) after the step, (new infected, new recovered fractions)):
    one step, whose Bernoulli draws are ``draw(x[0], p_inf·s)`` and ``draw(x[1], p_rec·i)``
    (x holds the step's uniforms, or its keyed streams)."""
    if graph is not None:
        starts, ends = graph.indptr[:-1], graph.indptr[1:]

    def step(carry: tuple[Any, Any], x: tuple[Any, Any]) -> tuple[tuple[Any, Any], Any]:
        s, i = carry
        if graph is None:
            p_inf = -md.expm1(-(beta * md.mean(i) * dt))
        else:
            k = _infected_neighbours(i, graph.indices, starts, ends)
            p_inf = 1.0 - md.power(1.0 - beta, k)
        new_inf = draw(x[0], p_inf * s)
        new_rec = draw(x[1], p_rec * i)
        return (s - new_inf, i + new_inf - new_rec), md.stack([md.mean(new_inf),
                                                               md.mean(new_rec)])

    return step


_SEGMENT_VALUES = 2**16  # about the uniforms one scan of the time loop reads at most


def _segments(n_timesteps: int, n_agents: int) -> list[tuple[int, int]]:
    """The time loop as scans of L = max(16, 2¹⁶ // N) steps, each reading its steps'
    uniforms, two (L, N) arrays drawn when the scan starts, so that what a run holds besides
    its state stays flat in T."""
    length = max(16, _SEGMENT_VALUES // n_agents)
    return [(t, min(t + length, n_timesteps)) for t in range(0, n_timesteps, length)]


def _uniforms(rng: Any, start: int, stop: int, n_agents: int) -> tuple[Any, Any]:
    """Steps [start, stop)'s uniforms for the infections and the recoveries, (L, N) each:
    those that ``rng.stream(("infect", t)).bernoulli`` and ``("recover", t)`` would invert."""
    shape = (n_agents,)
    return tuple(md.stack([rng.stream((what, t)).open_uniform(shape) for t in range(start, stop)])
                 for what in ("infect", "recover"))


def _infected_neighbours(i: Any, indices: Any, starts: Any, ends: Any) -> Any:
    """k_a = Σ_b A_ab i_b by gather + cumsum differences over the CSR row pointers."""
    gathered = md.getitem(i, indices)
    running = md.concatenate([md.zeros((1,)), md.cumsum(gathered)])
    return md.getitem(running, ends) - md.getitem(running, starts)


def build_graph(network: Any, n_agents: int, rng: Any, mean_degree: int = 10,
                rewire_prob: float = 0.1) -> ContactGraph:
    """A symmetric contact network without self-loops, as a :class:`ContactGraph`.

    ``network`` is ``"erdos_renyi"``, ``"watts_strogatz"``, a ContactGraph, or a ready adjacency
    matrix with ``tocsr()`` (scipy.sparse; its stored entries are the contacts). Both are
    checked for size. Random choices come from ``rng`` (a minidiff Generator), so a seed fixes
    the graph."""
    b = md.get_backend()
    xp = b.xp
    where = "sir.build_graph"
    if isinstance(network, ContactGraph) or hasattr(network, "tocsr"):
        if isinstance(network, ContactGraph):
            graph = network
        else:
            csr = network.tocsr()
            graph = ContactGraph(xp.astype(b.from_host(csr.indptr), xp.int64),
                                 xp.astype(b.from_host(csr.indices), xp.int64))
        if graph.n_agents != n_agents:
            raise ValueError(f"{where}: the adjacency matrix must be {n_agents}×{n_agents} "
                             f"(n_agents), got {graph.n_agents}×{graph.n_agents}")
        return graph
    if not isinstance(network, str) or network not in NETWORKS:
        raise ValueError(f"{where}: network must be None, one of {NETWORKS}, a ContactGraph "
                         f"or a sparse adjacency matrix, got {network!r}")
    n_agents = check_count(where, "n_agents", n_agents, 1)
    degree = check_count(where, "mean_degree", mean_degree, 0)
    n = n_agents
    if network == "erdos_renyi":
        n_edges = round(n * degree / 2)
        ends = xp.astype(xp.floor(rng.random((n_edges, 2)) * n), xp.int64)
        rows, cols = ends[:, 0], ends[:, 1]
    else:
        if degree % 2 or degree >= n:
            raise ValueError(f"{where}: watts_strogatz needs an even mean_degree < n_agents, "
                             f"got {degree} with n_agents={n}")
        check_number(where, "rewire_prob", rewire_prob, 0.0, 1.0, traced=False)
        half = degree // 2
        rows = xp.repeat(xp.arange(n, dtype=xp.int64), half)
        cols = (rows + xp.tile(xp.arange(1, half + 1, dtype=xp.int64), (n,))) % n
        rewire = rng.random((rows.shape[0],)) < rewire_prob
        targets = xp.astype(xp.floor(rng.random((rows.shape[0],)) * n), xp.int64)
        cols = xp.where(rewire, targets, cols)
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    # both directions, as keys a·N + b: sorted distinct keys are the CSR entries, row by row
    # (sort, then drop repeats: NumPy's unique_values hashes, which is far slower here)
    keys = xp.sort(xp.concat([rows * n + cols, cols * n + rows]))
    if keys.shape[0] > 1:
        keys = keys[xp.concat([xp.ones((1,), dtype=xp.bool), keys[1:] != keys[:-1]])]
    indptr = xp.searchsorted(keys // n, xp.arange(n + 1, dtype=xp.int64))
    return ContactGraph(xp.astype(indptr, xp.int64), keys % n)


_TINY = 1e-12  # keeps τ and S finite for a series with no events


def _steps(n: int) -> Any:
    b = md.get_backend()
    return md.reshape(b.xp.arange(n, dtype=b.float_dtype), (n, 1))


def summary_statistics(series: Any, pseudo: Any = _TINY) -> Any:
    """(A_0, A_1, τ_0, τ_1, S_0, S_1) of a (T, 2) series: per column its total, mean step and
    spread in steps (see the module notes), shape (6,); of an ensemble (m, T, 2), shape
    (m, 6).

    ``pseudo`` (a number, or one per column) is a mass ε spread evenly over the T steps and
    added to each column before τ and S are taken: τ = (Σ_t t·y_t + ε·t̄)/(A + ε) and
    S² = (Σ_t (t − τ)² y_t + ε·s̄²)/(A + ε) with t̄ = (T − 1)/2 and s̄² = (T² − 1)/12 the
    mean and variance of an even spread (to first order in ε). A series with (almost) no
    events then has τ ≈ t̄ and S ≈ s̄ with derivatives of order T/ε, where 0/0 had none: a
    run that dies out under a smoothed sampler still carries tangents, which the ratio
    Σ t·ẏ/A would blow up without bound. The loss sets ε to the data's noise sd per column,
    far below the data's own totals, so it changes their statistics by a share ε/A."""
    y = md.asarray(series)
    n = shape_of(y)[-2]
    t = _steps(n)
    total = md.sum(y, axis=-2)
    mass = total + pseudo
    mean_step = (md.sum(md.multiply(t, y), axis=-2) + pseudo * (n - 1) / 2.0) / mass
    centred = md.subtract(t, md.expand_dims(mean_step, -2))
    spread = md.sqrt((md.sum(md.multiply(md.square(centred), y), axis=-2)
                      + pseudo * (n * n - 1) / 12.0) / mass + _TINY)
    return md.concatenate([total, mean_step, spread], axis=-1)


def _standard_errors(observed: Any) -> Any:
    """se of the six statistics of the observed series, from its columns' noise sds."""
    xp = md.get_backend().xp
    y = md.stop_gradient(md.asarray(observed))
    n = y.shape[0]
    t = md.stop_gradient(_steps(n))
    sd = noise_sd(y)
    total = xp.sum(y, axis=0)
    size = xp.maximum(total, sd)  # a column with no events: se as if it held one noise sd
    tau = xp.sum(t * y, axis=0) / size
    d2 = (t - tau) ** 2
    spread = xp.sqrt(xp.maximum(xp.sum(d2 * y, axis=0) / size, 1.0 / 12.0))
    return xp.concat([sd * math.sqrt(n), sd * xp.sqrt(xp.sum(d2, axis=0)) / size,
                      sd * xp.sqrt(xp.sum((d2 - spread ** 2) ** 2, axis=0)) /
                      (2.0 * spread * size)])


def loss(simulated: Any, observed: Any) -> Any:
    """The discrepancy of simulated series from the observed (T, 2) series, on the six
    :func:`summary_statistics` m_j with standard errors se_j from the observed series' noise
    (see the module notes).

    ``simulated`` is an ensemble (m, T, 2) of m ≥ 2 runs at the same θ (what ``minidiff
    calibrate --simulations m`` passes): the Gaussian synthetic negative
    log-likelihood ½ Σ_j [(m̄_j − m_j(obs))²/v_j + log v_j] with v_j = (1 + 1/m)·s_j² + se_j²,
    m̄ and s² the ensemble's mean and variance of each statistic. Or one series (T, 2): the
    fixed-scale form ½ Σ_j ((m_j(sim) − m_j(obs)) / (√2·se_j))², which takes the run's own
    noise to be the data's (the diagnostics compare single series with it)."""
    sim, obs = md.asarray(simulated), md.asarray(observed)
    rank = len(shape_of(sim))
    if (shape_of(obs)[1:] != (2,) or len(shape_of(obs)) != 2 or rank not in (2, 3)
            or shape_of(sim)[-2:] != shape_of(obs)):
        raise ValueError(f"sir.loss: observed must be a series of shape (T, 2) and simulated "
                         f"one of the same shape or an ensemble (m, T, 2) of them, got "
                         f"{shape_of(sim)} and {shape_of(obs)}")
    if shape_of(obs)[0] < 3:
        raise ValueError(f"sir.loss: the noise scale is estimated from the observed series' "
                         f"second differences, which needs T ≥ 3 steps, got {shape_of(obs)[0]}")
    se = _standard_errors(obs)
    pseudo = noise_sd(obs)  # (2,): the data's noise scale, per column
    target = md.stop_gradient(summary_statistics(obs, pseudo))
    if rank == 2:
        z = md.divide(md.subtract(summary_statistics(sim, pseudo), target), se)
        return 0.25 * md.sum(md.square(z))
    m = shape_of(sim)[0]
    if m < 2:
        raise ValueError("sir.loss: an ensemble needs m ≥ 2 runs to estimate the statistics' "
                         "spread, got 1; pass the single series as shape (T, 2)")
    stats = summary_statistics(sim, pseudo)
    centre = md.mean(stats, axis=0)
    spread = md.sum(md.square(md.subtract(stats, centre)), axis=0) / (m - 1)
    variance = (1.0 + 1.0 / m) * spread + se ** 2
    return 0.5 * md.sum(md.square(md.subtract(centre, target)) / variance + md.log(variance))


def attack_rate(series: Any) -> Any:
    """A_0 = Σ_t y(t, 0): the fraction of agents newly infected over the run."""
    return md.sum(md.getitem(series, (slice(None), 0)))


def peak_step(series: Any) -> int:
    """The step (0-based) with the most new infections (the first of equal maxima)."""
    column = md.stop_gradient(md.getitem(md.asarray(series), (slice(None), 0)))
    return int(md.get_backend().xp.argmax(column))


# ---------------------------------------------------------------------------------------------
# Calibration (``minidiff calibrate``): the prior, the map to natural parameters, the defaults
# ---------------------------------------------------------------------------------------------

__all__ += ["NATURAL", "prior", "CALIBRATION"]

NATURAL = Coordinatewise(Exp(), Exp(), Sigmoid())
"""How each coordinate x_j of the unconstrained space (where inference runs) maps to the
natural parameter: beta = exp(x_0), gamma = exp(x_1), initial_infected = sigmoid(x_2)."""


def prior() -> Independent:
    """The default prior x_j ~ N(loc_j, scale_j²) on the unconstrained x:
    log beta ~ N(log 0.25, 0.75²), log gamma ~ N(log 0.125, 0.75²) (a mean infectious period
    of about a week, within a factor of two or so) and logit i0 ~ N(logit 0.02, 1)."""
    loc, scale = (math.log(0.25), math.log(0.125), math.log(0.02 / 0.98)), (0.75, 0.75, 1.0)
    return Independent(Normal(list(loc), list(scale)))


# the loss is a Gaussian log-likelihood with its noise scale from the data: w = 1
CALIBRATION = Calibration({"n_timesteps": 50, "n_agents": 1000}, "model", 1.0, 8, 200, 0.05)
