"""The random-walk and SIR models: they run under every transform and on every backend, their
derivatives are right in expectation, mean-field SIR follows the SIR ODE, and bad parameters
are refused.

Statistical tests use fixed seeds and z-scores: two independent estimates with standard errors
se₁, se₂ agree when |m₁ − m₂| / √(se₁² + se₂²) < Z_MAX. Z_MAX = 4 keeps the false-alarm rate per
comparison near 6e-5, so a fixed-seed failure is a real discrepancy, not bad luck.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

import minidiff as md
from minidiff.models import random_walk, sir
from minidiff.random import default_rng
from minidiff.stochastic import derivative_estimate, finite_difference

Z_MAX = 4.0

NETWORKS = [None, "erdos_renyi", "watts_strogatz"]


def _z(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z-scores of the difference of the means of two independent samples (axis 0)."""
    se2 = a.var(axis=0, ddof=1) / a.shape[0] + b.var(axis=0, ddof=1) / b.shape[0]
    return (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(se2)


def _sir_params(network):
    return (0.3, 0.1, 0.05) if network is None else (0.05, 0.1, 0.05)


# ---------------------------------------------------------------------------------------------
# Runs unchanged under plain arrays, jacfwd, grad and triples (NumPy and array_api_strict)
# ---------------------------------------------------------------------------------------------


def _check_all_transforms(backend, simulate, summary, params):
    """``summary`` maps the observed series to a scalar (the models' summary statistics)."""
    p = backend.from_host(np.asarray(params, dtype=np.float64))
    k = len(params)
    plain = simulate(p)
    shape = tuple(plain.shape)
    assert np.all(np.isfinite(backend.to_host(plain)))
    jac = md.jacfwd(simulate)(p)
    assert tuple(jac.shape) == shape + (k,)
    assert np.allclose(backend.to_host(md.jvp(simulate, (p,), (p,))[0]),
                       backend.to_host(plain))  # the same draws in every mode
    g = md.grad(lambda q: summary(simulate(q)))(p)
    assert tuple(g.shape) == (k,) and np.all(np.isfinite(backend.to_host(g)))
    # componentwise, so that errors in two partials cannot cancel; the two modes compute the
    # same partials in other orders, so they agree to rounding (rtol 1e-10 leaves room for
    # the sums over time steps and agents)
    np.testing.assert_allclose(backend.to_host(g),
                               backend.to_host(md.jacfwd(lambda q: summary(simulate(q)))(p)),
                               rtol=1e-10, atol=1e-12)
    est = derivative_estimate(simulate, p, seed=3)
    assert tuple(est.shape) == shape + (k,) and np.all(np.isfinite(backend.to_host(est)))


def test_random_walk_runs_under_plain_jacfwd_grad_and_triples(backend):
    def simulate(p):
        return random_walk.simulate(p, n_timesteps=8, n_agents=5, rng=default_rng(0))

    _check_all_transforms(backend, simulate, random_walk.mean_final_position,
                          random_walk.DEFAULT_PARAMS)


@pytest.mark.parametrize("network", NETWORKS)
def test_sir_runs_under_plain_jacfwd_grad_and_triples(backend, network):
    def simulate(p):
        return sir.simulate(p, n_timesteps=6, n_agents=60, rng=default_rng(1), network=network,
                            mean_degree=4)

    _check_all_transforms(backend, simulate, sir.attack_rate, _sir_params(network))


def test_observed_shapes_and_walk_values():
    one = random_walk.simulate(0.3, n_timesteps=10, rng=default_rng(0))
    many = random_walk.simulate((0.3,), n_timesteps=10, n_agents=4, rng=default_rng(0))
    assert one.shape == (11,) and many.shape == (11, 4)
    steps = np.diff(md.to_host(many), axis=0)
    assert np.all(np.abs(steps) == 1.0) and np.all(md.to_host(many)[0] == 0.0)
    obs = md.to_host(sir.simulate(sir.DEFAULT_PARAMS, n_timesteps=12, n_agents=300,
                                  rng=default_rng(0)))
    assert obs.shape == (12, 2) and np.all(obs >= 0) and obs.sum() <= 1.0 + 0.01 + 1e-12


def test_estimator_choice_never_changes_the_simulated_path():
    runs = [md.to_host(sir.simulate(sir.DEFAULT_PARAMS, n_timesteps=10, n_agents=200,
                                    rng=default_rng(4), estimator=e))
            for e in ("smoothed", "straight_through", "none")]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


def _as_scipy(graph):
    n = graph.n_agents
    indices = md.to_host(graph.indices)
    return sp.csr_matrix((np.ones(indices.size), indices, md.to_host(graph.indptr)),
                         shape=(n, n))


@pytest.mark.parametrize("network", ["erdos_renyi", "watts_strogatz"])
def test_network_neighbour_count_matches_the_sparse_product(backend, network):
    graph = sir.build_graph(network, 50, default_rng(0), 6, 0.3)
    adjacency = _as_scipy(graph)
    assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    assert adjacency.max() == 1.0  # no repeated entries
    assert adjacency.nnz > 0.9 * 50 * 6 if network == "watts_strogatz" else adjacency.nnz > 200
    i = (np.arange(50) % 3 == 0).astype(np.float64)
    counts = sir._infected_neighbours(backend.from_host(i), graph.indices, graph.indptr[:-1],
                                      graph.indptr[1:])
    assert np.array_equal(md.to_host(counts), adjacency @ i)


def test_a_given_sparse_adjacency_is_used():
    nxt = (np.arange(20) + 1) % 20
    ring = sp.coo_matrix((np.ones(40), (np.r_[np.arange(20), nxt], np.r_[nxt, np.arange(20)])),
                         shape=(20, 20))
    obs = sir.simulate((0.5, 0.1, 0.1), n_timesteps=5, n_agents=20, rng=default_rng(0),
                       network=ring)
    assert obs.shape == (5, 2)


# ---------------------------------------------------------------------------------------------
# Derivatives in expectation
# ---------------------------------------------------------------------------------------------


def test_random_walk_triples_give_dE_xt_dtheta_equal_2t():
    n, steps, walkers = 150, 12, 20

    def mean_path(theta, seed):
        return md.mean(random_walk.simulate(theta, n_timesteps=steps, n_agents=walkers,
                                            rng=default_rng(seed)), axis=1)

    samples = np.stack([md.to_host(derivative_estimate(lambda th: mean_path(th, 100 + i),
                                                       np.asarray(0.4), seed=i))
                        for i in range(n)])
    exact = 2.0 * np.arange(steps + 1)
    se = samples.std(axis=0, ddof=1) / np.sqrt(n)
    assert samples[:, 0].tolist() == [0.0] * n  # x_0 does not move
    z = (samples[:, 1:].mean(axis=0) - exact[1:]) / se[1:]
    assert np.all(np.abs(z) < Z_MAX), z


def test_random_walk_triples_and_smoothed_agree_with_finite_differences():
    n, steps, theta = 200, 20, 0.4

    def final(th, rng, estimator="none"):
        return random_walk.mean_final_position(random_walk.simulate(th, n_timesteps=steps,
                                                                   n_agents=10,
                                                     rng=rng, estimator=estimator))

    fd = md.to_host(finite_difference(final, np.asarray(theta), 0.05, n, seed=1))
    triples = np.array([float(md.to_host(derivative_estimate(
        lambda th: final(th, default_rng(500 + i)), np.asarray(theta), seed=i)))
        for i in range(n)])
    smoothed = np.array([float(md.to_host(md.grad(
        lambda th: final(th, default_rng(900 + i), "smoothed"))(np.asarray(theta))))
        for i in range(n)])
    for est in (triples, smoothed):
        assert abs(_z(est, fd)) < Z_MAX
        assert abs(_z(est, np.full(2, 2.0 * steps))) < Z_MAX  # and with the exact 2T


def test_random_walk_triples_of_a_nonlinear_loss_match_its_exact_derivative():
    """The walk draws its T steps in one call, so all T candidate jumps compete in one pruning
    choice. The energy distance between ±1 increments is 4(p̂ − q̂)², nonlinear in the path,
    with E = 4[(θ − q̂)² + θ(1 − θ)/T]: the triples' mean must be its θ-derivative
    4[2(θ − q̂) + (1 − 2θ)/T] (z-test against the exact value, Z_MAX as above)."""
    from minidiff import inference as inf

    n, steps, theta = 400, 30, 0.35
    observed = 2.0 * default_rng(3).bernoulli(0.6, size=steps) - 1.0
    q_hat = float(np.mean((md.to_host(observed) + 1.0) / 2.0))
    distance = inf.energy_distance(observed)

    def loss(th, seed):
        path = random_walk.simulate(th, n_timesteps=steps, rng=default_rng(seed))
        return distance(md.getitem(path, slice(1, None)) - md.getitem(path, slice(0, -1)))

    samples = np.array([float(md.to_host(derivative_estimate(lambda th: loss(th, 40 + i),
                                                             np.asarray(theta), seed=i)))
                        for i in range(n)])
    exact = 4.0 * (2.0 * (theta - q_hat) + (1.0 - 2.0 * theta) / steps)
    z = (samples.mean() - exact) / (samples.std(ddof=1) / np.sqrt(n))
    assert np.count_nonzero(samples) > n // 2  # the jumps are seen
    assert abs(z) < Z_MAX, (samples.mean(), exact, z)


def test_sir_triples_agree_with_finite_differences_for_every_parameter():
    """Derivatives in u of the attack rate at θ = u ⊙ θ₀, u = 1 (so one relative step h = 0.2
    suits every parameter). Central differences with common random numbers; the O(h²) bias is
    below the standard error here (h = 0.1 and 0.2 agree)."""
    theta0 = np.array([0.3, 0.1, 0.05])
    n, steps, agents = 250, 25, 100

    def attack(u, rng):
        return sir.attack_rate(sir.simulate(md.multiply(u, theta0), n_timesteps=steps,
                                     n_agents=agents, rng=rng, estimator="none"))

    u = np.ones(3)
    fd = md.to_host(finite_difference(attack, u, 0.2, n, seed=7))
    triples = np.stack([md.to_host(derivative_estimate(
        lambda v: attack(v, default_rng(10_000 + i)), u, seed=i)) for i in range(n)])
    z = _z(triples, fd)
    assert np.all(np.abs(z) < Z_MAX), (triples.mean(0), fd.mean(0), z)
    assert fd.mean(0)[0] > 0 > fd.mean(0)[1]  # meaningful: β spreads, γ curbs the epidemic


# ---------------------------------------------------------------------------------------------
# Mean field: the SIR ODE
# ---------------------------------------------------------------------------------------------


def test_mean_field_sir_follows_the_sir_ode_at_large_n():
    """N = 1e5, Δt = 0.2 day, 80 days, the mean of 4 runs, against the ODE from the runs' mean
    initial state (so the Bernoulli spread of the initial count is not charged to the model).

    Tolerance, as a fraction of the ODE's peak infected fraction (≈ 0.3):
    * against the discrete-time mean-field map (the chain's own law of large numbers), 2%:
      the remaining error is sampling noise (early-phase timing, ~1/√(N·i₀) per run, which
      the epidemic's growth amplifies). i₀ = 0.1 keeps it well inside: the mean of 4 runs
      deviated by at most 1.4% over 8 groups of 4 seeds (with i₀ = 0.02, 3 of 8 groups went
      past 2%, under the old draws as under the new);
    * against the ODE, 5%: the map's O(Δt) time-discretisation error (≈ 2.7% at Δt = 0.2,
      computed below) plus that noise."""
    beta, gamma, i0 = 0.3, 0.1, 0.1
    n, dt, steps = 100_000, 0.2, 400
    runs = []
    for seed in range(4):
        y = md.to_host(sir.simulate((beta, gamma, i0), n_timesteps=steps, n_agents=n,
                                    rng=default_rng(seed), dt=dt, estimator="none"))
        start = float(np.mean(md.to_host(default_rng(seed).child().stream(
            "initial").bernoulli(i0 * np.ones(n)))))  # the run's own initial draw: the same
        # keyed stream of the child that simulate takes from default_rng(seed)
        infected = start + np.concatenate([[0.0], np.cumsum(y[:, 0] - y[:, 1])])
        recovered = np.concatenate([[0.0], np.cumsum(y[:, 1])])
        runs.append(np.stack([1.0 - infected - recovered, infected, recovered]))
    mean = np.mean(runs, axis=0)
    times = dt * np.arange(steps + 1)
    ode = solve_ivp(lambda t, z: [-beta * z[0] * z[1], beta * z[0] * z[1] - gamma * z[1],
                                  gamma * z[1]], (0.0, times[-1]), mean[:, 0], t_eval=times,
                    rtol=1e-10, atol=1e-12).y
    s, i, r = mean[:, 0]
    chain = [(s, i, r)]
    for _ in range(steps):
        new_inf, new_rec = s * -np.expm1(-beta * i * dt), i * -np.expm1(-gamma * dt)
        s, i, r = s - new_inf, i + new_inf - new_rec, r + new_rec
        chain.append((s, i, r))
    chain = np.array(chain).T
    peak = ode[1].max()
    assert peak > 0.25  # a real epidemic, so the tolerances mean something
    assert np.max(np.abs(mean - chain)) < 0.02 * peak
    assert np.max(np.abs(mean - ode)) < 0.05 * peak
    assert np.max(np.abs(chain - ode)) < 0.03 * peak  # the discretisation error quoted


# ---------------------------------------------------------------------------------------------
# CuPy
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_random_walk_runs_unchanged_on_cupy(cupy_backend):
    def simulate(p):
        return random_walk.simulate(p, n_timesteps=8, n_agents=5, rng=default_rng(0))

    _check_all_transforms(cupy_backend, simulate, random_walk.mean_final_position,
                          random_walk.DEFAULT_PARAMS)
    assert cupy_backend.is_array(simulate(cupy_backend.from_host(np.array([0.5]))))


@pytest.mark.gpu
@pytest.mark.parametrize("network", NETWORKS)
def test_sir_runs_unchanged_on_cupy(cupy_backend, network):
    def simulate(p):
        return sir.simulate(p, n_timesteps=6, n_agents=60, rng=default_rng(1), network=network,
                            mean_degree=4)

    _check_all_transforms(cupy_backend, simulate, sir.attack_rate, _sir_params(network))
    assert cupy_backend.is_array(simulate(cupy_backend.from_host(np.array(_sir_params(network)))))


# ---------------------------------------------------------------------------------------------
# Bad parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, kwargs, error, message", [
    (1.2, {}, ValueError, "theta .*must lie in \\[0, 1\\]"),
    (-0.1, {}, ValueError, "theta .*must lie in \\[0, 1\\]"),
    (float("nan"), {}, ValueError, "theta .*must be finite"),
    ((0.2, 0.3), {}, ValueError, "must hold 1 value"),
    (np.array([0.2, 0.3]), {}, ValueError, "must hold 1 value"),
    (0.5, {"n_agents": 0}, ValueError, "n_agents must be an integer ≥ 1"),
    (0.5, {"n_timesteps": 0}, ValueError, "n_timesteps must be an integer ≥ 1"),
    (0.5, {"n_agents": 2.0}, TypeError, "n_agents must be an integer"),
])
def test_random_walk_refuses_bad_parameters(params, kwargs, error, message):
    with pytest.raises(error, match=message):
        random_walk.simulate(params, **{"n_timesteps": 5, "rng": default_rng(0), **kwargs})


@pytest.mark.parametrize("params, kwargs, message", [
    ((-0.3, 0.1, 0.01), {}, "beta .*must lie in \\[0, inf\\)"),
    ((float("inf"), 0.1, 0.01), {}, "beta .*must be finite and lie in \\[0, inf\\)"),
    ((0.3, -0.1, 0.01), {}, "gamma .*must lie in \\[0, inf\\)"),
    ((0.3, 0.1, 1.5), {}, "initial_infected .*must lie in \\[0, 1\\]"),
    ((0.3, 0.1, -0.01), {}, "initial_infected .*must lie in \\[0, 1\\]"),
    ((1.3, 0.1, 0.01), {"network": "erdos_renyi"}, "beta .*must lie in \\[0, 1\\]"),
    ((0.3, 0.1), {}, "must hold 3 values"),
    (np.array([0.3, 0.1, 0.01, 0.2]), {}, "must hold 3 values"),
    ((0.3, 0.1, 0.01), {"n_agents": 0}, "n_agents must be an integer ≥ 1"),
    ((0.3, 0.1, 0.01), {"dt": 0.0}, "dt \\(step length\\) must lie in \\(0, inf\\)"),
    ((0.3, 0.1, 0.01), {"network": "lattice"}, "network must be None"),
    ((0.3, 0.1, 0.01), {"network": "watts_strogatz", "mean_degree": 3}, "even mean_degree"),
    ((0.3, 0.1, 0.01), {"network": sp.eye(7).tocsr()}, "must be 10×10"),
])
def test_sir_refuses_bad_parameters(params, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sir.simulate(params, **{"n_timesteps": 5, "n_agents": 10, "rng": default_rng(0),
                                **kwargs})
