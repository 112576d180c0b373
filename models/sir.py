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

On a network (``network="erdos_renyi"``, ``"watts_strogatz"``, or a scipy.sparse adjacency
matrix), with k_a(t) = Σ_b A_ab i_b(t) the number of infected neighbours of agent a:

    p_inf,a(t) = 1 − (1 − β)^{k_a(t)},

i.e. each infected neighbour transmits independently with probability β per step (``dt`` is not
used there). The graph is built once, on the host, from the stream ``rng.stream("graph")``:
Erdős–Rényi as G(N, M) with M = round(N·``mean_degree``/2) uniformly drawn pairs (self-loops and
repeated pairs dropped, so the mean degree is slightly below ``mean_degree``); Watts–Strogatz as
a ring lattice with ``mean_degree``/2 neighbours on each side whose edges are each rewired to a
uniform random endpoint with probability ``rewire_prob``. The neighbour count runs through
minidiff ops and adds nothing to the engine: with the adjacency in CSR form (row pointers
``indptr``, column indices ``indices``), ``g = md.getitem(i, indices)`` gathers each edge's
infected indicator, ``c = md.cumsum(g)`` (with a 0 in front) is the running edge count, and
k = c[indptr[1:]] − c[indptr[:-1]] is the per-row (segment) sum. The sums are of 0/1 values,
exact in float64. Cost O(N + edges) per step, and both modes differentiate it (getitem's VJP
scatter-adds).

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

Estimators
----------
Three kinds of random choice, all drawn with ``rng.bernoulli(..., estimator=estimator)`` on keyed
streams (``"initial"``, ``("infect", t)``, ``("recover", t)``), so runs at nearby parameters
share uniforms (common random numbers): the initial infections (derivative in i₀), the
infections (in β, and through I(t) in everything), the recoveries (in γ). The default
``"smoothed"`` works in both modes but is biased, since the observed series is not linear in the
draws (infections feed back through I(t)); under
:func:`minidiff.stochastic.derivative_estimate` every sampler emits stochastic-triple jumps
instead (unbiased). The graph's draws carry no parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import minidiff as md

from ._params import check_count, check_range, unpack

__all__ = ["simulate", "DEFAULT_PARAMS", "PARAM_NAMES", "NETWORKS", "build_graph", "loss"]

PARAM_NAMES = ("beta", "gamma", "initial_infected")
DEFAULT_PARAMS = (0.3, 0.1, 0.01)
NETWORKS = ("erdos_renyi", "watts_strogatz")


def simulate(params: Any, *, n_timesteps: int = 100, n_agents: int = 1000, rng: Any,
             estimator: str = "smoothed", dt: float = 1.0, network: Any = None,
             mean_degree: int = 10, rewire_prob: float = 0.1) -> Any:
    """Daily new-infection and new-recovery fractions, shape (T, 2) (see the module notes).

    Args:
        params: (β, γ, i₀) as a tuple or a vector of 3.
        n_timesteps: T ≥ 1 steps.
        n_agents: N ≥ 1 agents.
        rng: a :class:`minidiff.random.Generator`.
        estimator: the Bernoulli samplers' estimator.
        dt: step length Δt > 0 (well mixed only).
        network: None (well mixed), ``"erdos_renyi"``, ``"watts_strogatz"``, or a square
            scipy.sparse (or anything with ``tocsr()``) adjacency matrix of size N.
        mean_degree: the generated graph's mean degree (even for Watts–Strogatz).
        rewire_prob: Watts–Strogatz rewiring probability, in [0, 1].
    """
    name = "sir"
    beta, gamma, i0 = unpack(params, PARAM_NAMES, name)
    n_timesteps = check_count(name, "n_timesteps", n_timesteps, 1)
    n_agents = check_count(name, "n_agents", n_agents, 1)
    check_range(name, "beta", beta, 0.0, None if network is None else 1.0)
    check_range(name, "gamma", gamma, 0.0)
    check_range(name, "initial_infected", i0, 0.0, 1.0)
    if isinstance(dt, bool) or not isinstance(dt, int | float) or not dt > 0:
        raise ValueError(f"{name}: dt must be a number > 0, got {dt!r}")
    graph = None if network is None else _graph_arrays(
        build_graph(network, n_agents, rng.stream("graph"), mean_degree, rewire_prob))

    shape = (n_agents,)
    infected = rng.stream("initial").bernoulli(md.multiply(i0, md.ones(shape)),
                                               estimator=estimator)
    s = 1.0 - infected
    i = infected
    p_rec = -md.expm1(-(gamma * dt))
    rows = []
    for t in range(n_timesteps):
        if graph is None:
            p_inf = -md.expm1(-(beta * md.mean(i) * dt))
        else:
            p_inf = 1.0 - md.power(1.0 - beta, _infected_neighbours(i, *graph))
        new_inf = rng.stream(("infect", t)).bernoulli(p_inf * s, estimator=estimator)
        new_rec = rng.stream(("recover", t)).bernoulli(p_rec * i, estimator=estimator)
        s = s - new_inf
        i = i + new_inf - new_rec
        rows.append(md.stack([md.mean(new_inf), md.mean(new_rec)]))
    return md.stack(rows)


def _infected_neighbours(i: Any, indices: Any, starts: Any, ends: Any) -> Any:
    """k_a = Σ_b A_ab i_b by gather + cumsum differences over the CSR row pointers."""
    gathered = md.getitem(i, indices)
    running = md.concatenate([md.zeros((1,)), md.cumsum(gathered)])
    return md.getitem(running, ends) - md.getitem(running, starts)


def _graph_arrays(adjacency: Any) -> tuple[Any, Any, Any]:
    """(indices, indptr[:-1], indptr[1:]) of a CSR matrix, as backend integer arrays."""
    b = md.get_backend()
    indptr = np.asarray(adjacency.indptr, dtype=np.int64)
    indices = np.asarray(adjacency.indices, dtype=np.int64)
    return b.from_host(indices), b.from_host(indptr[:-1]), b.from_host(indptr[1:])


def build_graph(network: Any, n_agents: int, rng: Any, mean_degree: int = 10,
                rewire_prob: float = 0.1) -> Any:
    """A symmetric 0/1 adjacency matrix (scipy.sparse CSR, no self-loops) on the host.

    ``network`` is ``"erdos_renyi"``, ``"watts_strogatz"`` or a ready adjacency matrix (checked
    for shape). Random choices come from ``rng`` (a minidiff Generator), so a seed fixes the
    graph."""
    import scipy.sparse as sp

    name = "sir"
    if hasattr(network, "tocsr"):
        adjacency = network.tocsr()
        if adjacency.shape != (n_agents, n_agents):
            raise ValueError(f"{name}: the adjacency matrix must be {n_agents}×{n_agents} "
                             f"(n_agents), got {adjacency.shape}")
        return adjacency
    if network not in NETWORKS:
        raise ValueError(f"{name}: network must be None, one of {NETWORKS} or a sparse "
                         f"adjacency matrix, got {network!r}")
    degree = check_count(name, "mean_degree", mean_degree, 0)
    if network == "erdos_renyi":
        n_edges = round(n_agents * degree / 2)
        ends = np.floor(md.to_host(rng.random((n_edges, 2))) * n_agents).astype(np.int64)
        rows, cols = ends[:, 0], ends[:, 1]
    else:
        if degree % 2 or degree >= n_agents:
            raise ValueError(f"{name}: watts_strogatz needs an even mean_degree < n_agents, "
                             f"got {degree} with n_agents={n_agents}")
        check_range(name, "rewire_prob", rewire_prob, 0.0, 1.0)
        half = degree // 2
        rows = np.repeat(np.arange(n_agents, dtype=np.int64), half)
        cols = (rows + np.tile(np.arange(1, half + 1, dtype=np.int64), n_agents)) % n_agents
        rewire = md.to_host(rng.random((rows.size,))) < rewire_prob
        targets = np.floor(md.to_host(rng.random((rows.size,))) * n_agents).astype(np.int64)
        cols = np.where(rewire, targets, cols)
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    data = np.ones(2 * rows.size)
    adjacency = sp.coo_matrix((data, (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
                              shape=(n_agents, n_agents)).tocsr()
    adjacency.data[:] = 1.0  # repeated pairs were summed: one contact each
    return adjacency


def loss(series: Any) -> Any:
    """A scalar summary for gradient benchmarks: the attack rate (total new infections)."""
    return md.sum(md.getitem(series, (slice(None), 0)))
