# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Differentiable agent-based models
#
# Now we build differentiable programs that are models: a random walk, then an agent-based
# SIR epidemic fitted to data by gradient descent. This rebuilds the tutorial's third notebook
# on minidiff, and adds stochastic triples, which give the *unbiased* derivative of the
# random walk at every step, and the SIR model's derivatives by triples checked against
# finite differences with common random numbers.
#
# Check cells assert each result within a tolerance set by its Monte Carlo error: a mean
# within 4 standard errors of its expectation, unless the cell says otherwise.

# %%
import json
import math
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import integrate
from scipy.special import expit

import minidiff as md
from minidiff.models import random_walk, sir
from minidiff.random import default_rng
from minidiff.stochastic import compare_estimators, derivative_estimate, finite_difference
from minidiff.stochastic.harness import per_seed

QUICK = os.environ.get("MINIDIFF_TUTORIAL_QUICK", "") not in ("", "0")
FIGURES = os.environ.get("MINIDIFF_TUTORIAL_FIGURES")  # docs/build.py saves figures there


def size(full, quick):
    """`full` in the full run, `quick` when MINIDIFF_TUTORIAL_QUICK=1."""
    return quick if QUICK else full


def save(fig, name):
    """Keep a figure for the README (only when docs/build.py asks)."""
    if FIGURES:
        fig.savefig(os.path.join(FIGURES, f"{name}.png"), dpi=90, bbox_inches="tight")


def host(x):
    return np.asarray(md.to_host(x))


print("quick mode" if QUICK else "full run")

# %% [markdown]
# ## 1. The random walk
#
# $x_0 = 0$ and $x_{t+1} = x_t + 1$ if $\xi_t = 1$, else $x_t - 1$, with $\xi_t \sim
# \mathrm{Bern}(\theta)$. So $\mathbb E[x_t] = t(2\theta - 1)$ and
# $\frac{d}{d\theta}\mathbb E[x_t] = 2t$. The tutorial's first attempt, a plain Bernoulli
# draw and a Python `if`, has a Jacobian that is exactly zero: a plain sample has derivative
# zero, and a branch on it carries no derivative either.

# %%
theta = 0.4
n_steps = 49  # the path x_0 ... x_49, as in the tutorial


def naive_walk(t, rng):
    x = md.asarray(0.0)
    path = [x]
    for step in range(n_steps):
        xi = rng.stream(("step", step)).bernoulli(t, estimator="none")
        x = x + 1.0 if float(xi) == 1.0 else x - 1.0
        path.append(x)
    return md.stack(path)


naive = host(md.jacfwd(lambda t: naive_walk(t, default_rng(0)))(theta))
print("naive Jacobian dx_t/dθ:", np.unique(naive))

# %% [markdown]
# Two changes fix it. Write the branch as a *mask*, $x_{t+1} = \xi(x_t + 1) + (1 - \xi)(x_t -
# 1)$, so the derivative flows through $\xi$; and give $\xi$ a derivative: hard
# Gumbel-softmax (the true sample forward, the relaxed sample's derivative back). We run many
# walkers at once, one per column, so `md.jacfwd` gives every walker's derivative in one pass.
#
# Gumbel-softmax is biased; its expected derivative per step is a one-dimensional integral
# (notebook 2), so $\mathbb E[dx_t/d\theta] = 2t \cdot \mathbb E[dy/dp]_{p = 0.4}$. The
# tutorial found means of about 97, 85 and 67 at $t = 49$ for $\tau = 0.1, 0.5, 1$ (50
# samples each), against the exact 98.

# %%
def masked_walk(t, rng, n_walkers, estimator="gumbel_softmax", **options):
    x = md.zeros((n_walkers,))
    path = [x]
    for step in range(n_steps):
        xi = rng.stream(("step", step)).bernoulli(t * md.ones((n_walkers,)),
                                                  estimator=estimator, **options)
        x = xi * (x + 1.0) + (1.0 - xi) * (x - 1.0)
        path.append(x)
    return md.stack(path)  # shape (T + 1, n_walkers)


def gumbel_softmax_slope(p, tau):
    """E[dy/dp] for the Bernoulli Gumbel-softmax relaxation, by quadrature (notebook 2)."""
    a = math.log(p) - math.log1p(-p)

    def integrand(noise):  # noise: L = g₁ − g₀, standard logistic
        y = expit((a + noise) / tau)
        return y * (1 - y) / (tau * p * (1 - p)) * expit(noise) * expit(-noise)

    return sum(integrate.quad(integrand, lo, hi, limit=200)[0]
               for lo, hi in ((-np.inf, -a), (-a, np.inf)))


n_walkers = size(2000, 300)
taus = [0.1, 0.5, 1.0]
jac = {tau: host(md.jacfwd(lambda t: masked_walk(t, default_rng(1), n_walkers, tau=tau))(theta))
       for tau in taus}  # each (T + 1, n_walkers)
steps = np.arange(n_steps + 1)

fig, ax = plt.subplots(figsize=(7.5, 4.5))
for i, tau in enumerate(taus):
    for w in range(10):
        ax.plot(steps, jac[tau][:, w], color=f"C{i}", alpha=0.15, lw=0.8)
    mean = jac[tau].mean(axis=1)
    se = jac[tau].std(axis=1, ddof=1) / math.sqrt(n_walkers)
    ax.plot(steps, mean, color=f"C{i}", lw=2.5, label=f"τ = {tau}: mean of {n_walkers} walkers")
    ax.fill_between(steps, mean - 4 * se, mean + 4 * se, color=f"C{i}", alpha=0.3)
    ax.plot(steps, 2 * steps * gumbel_softmax_slope(theta, tau), ":", color=f"C{i}")
ax.plot(steps, 2 * steps, "k--", label="exact: 2t")
ax.set_xlabel("time step t")
ax.set_ylabel("dx_t/dθ (steps per unit θ)")
ax.set_title("hard Gumbel-softmax through the masked walk (dotted: quadrature, faint: walkers)")
ax.legend(fontsize="small")
plt.show()
for tau in taus:
    g = jac[tau][-1]
    se = g.std(ddof=1) / math.sqrt(g.size)
    expected = 2 * n_steps * gumbel_softmax_slope(theta, tau)
    print(f"τ = {tau}: at t = {n_steps} mean {g.mean():.2f} ± {se:.2f} (quadrature "
          f"{expected:.2f}, exact {2 * n_steps})")

# %%
# Check. The naive Jacobian is exactly zero. At t = 49: the mean within 4 standard errors of
# the quadrature value; the tutorial's numbers within 4 standard errors of a 50-sample mean
# (4·sd/√50, sd from our samples).
assert np.all(naive == 0.0)
for tau, tutorial in zip(taus, [97, 85, 67]):
    g = jac[tau][-1]
    se = g.std(ddof=1) / math.sqrt(g.size)
    expected = 2 * n_steps * gumbel_softmax_slope(theta, tau)
    assert abs(g.mean() - expected) < 4 * se, (tau, g.mean(), expected, se)
    assert abs(g.mean() - tutorial) < 4 * g.std(ddof=1) / math.sqrt(50)
    assert expected < 2 * n_steps  # biased low, more so as τ grows
print("Gumbel-softmax random walk: checks passed")

# %% [markdown]
# ### The forward pass stays exact
#
# Hard Gumbel-softmax is *straight-through*: its value is the discrete sample itself and only
# its derivative comes from the relaxation. minidiff draws the relaxation's noise given the
# sample (from the sample's own uniform), so the traced walk must follow exactly the path of
# the plain discrete simulation with the same random numbers. We check it bit for bit: the
# primal of `md.jvp` through the masked walk against a walk built in NumPy from plain draws
# (`estimator="none"`) of the same streams, with a Python `+1`/`−1` per step.

# %%
def discrete_walk(t, rng, n_walkers):
    """The plain simulation: NumPy arrays, plain Bernoulli draws, ±1 steps."""
    x = np.zeros(n_walkers)
    path = [x]
    for step in range(n_steps):
        xi = host(rng.stream(("step", step)).bernoulli(t * np.ones(n_walkers), estimator="none"))
        x = np.where(xi == 1.0, x + 1.0, x - 1.0)
        path.append(x)
    return np.stack(path)


forward = {tau: host(md.jvp(lambda t: masked_walk(t, default_rng(1), n_walkers, tau=tau),
                            (theta,), (1.0,))[0]) for tau in taus}
plain_paths = discrete_walk(theta, default_rng(1), n_walkers)
fig, ax = plt.subplots(figsize=(7.5, 4.5))
for w in range(20):
    ax.plot(steps, forward[0.5][:, w], color="C0", alpha=0.3, lw=0.8)
ax.plot(steps, forward[0.5].mean(axis=1), color="C0", lw=2.5,
        label=f"mean of {n_walkers} walkers (hard Gumbel-softmax, τ = 0.5)")
ax.plot(steps, steps * (2 * theta - 1), "k--", label="exact: E[x_t] = t(2θ − 1)")
ax.set_xlabel("time step t")
ax.set_ylabel("position x_t (steps)")
ax.set_title("forward trajectories of the masked walk (faint: 20 walkers)")
ax.legend(fontsize="small")
plt.show()
mismatches = {tau: int(np.sum(forward[tau] != plain_paths)) for tau in taus}
print(f"entries of the {plain_paths.shape} paths that differ from the plain simulation:",
      mismatches)

# %%
# Check (exact). For every τ the straight-through forward pass equals the plain discrete
# simulation bit for bit, and the mean path is within 4 standard errors of t(2θ − 1) at
# t = 49.
for tau in taus:
    assert np.array_equal(forward[tau], plain_paths), tau
final = plain_paths[-1]
assert abs(final.mean() - n_steps * (2 * theta - 1)) < 4 * final.std(ddof=1) / math.sqrt(final.size)
print("exact forward pass: checks passed")

# %% [markdown]
# ### Unbiased: stochastic triples
#
# `derivative_estimate` runs the walk once on *stochastic triples*: every value carries its
# tangent and, for the one discrete draw whose flip was kept (chosen among all candidate flips
# with probability proportional to their rates), the alternative path and its weight. Each
# estimate is unbiased for $d\mathbb E[x_t]/d\theta$ at every $t$ at once. It needs no mask
# and no temperature; `minidiff.models.random_walk` (which draws all its steps in one call and
# sums them) is the model as is.

# %%
n_triples = size(2000, 400)


def walk_path(t, seed):
    return random_walk.simulate(t, n_timesteps=n_steps, rng=seed)  # shape (T + 1,)


triples = np.stack([host(derivative_estimate(lambda t: walk_path(t, s), theta, seed=s))
                    for s in range(n_triples)])  # (n, T + 1)
smoothed = np.stack([host(md.jacfwd(lambda t: walk_path(t, s))(theta))
                     for s in range(n_triples)])

fig, ax = plt.subplots(figsize=(7.5, 4.5))
for name, g, color in (("stochastic triples", triples, "C3"), ("smoothed", smoothed, "C2")):
    mean = g.mean(axis=0)
    se = g.std(axis=0, ddof=1) / math.sqrt(g.shape[0])
    ax.plot(steps, mean, color=color, lw=2, label=f"{name}: mean of {g.shape[0]} runs")
    ax.fill_between(steps, mean - 4 * se, mean + 4 * se, color=color, alpha=0.3)
ax.plot(steps, 2 * steps, "k--", label="exact: 2t")
ax.set_xlabel("time step t")
ax.set_ylabel("dE[x_t]/dθ (steps per unit θ)")
ax.set_title("unbiased at every t (bands: ± 4 standard errors)")
ax.legend()
save(fig, "03-random-walk")
plt.show()
def z_scores(g):
    """(mean − 2t)/se at t = 1..T (x_0 = 0 has no spread)."""
    g = g[:, 1:]
    return (g.mean(0) - 2 * steps[1:]) / (g.std(0, ddof=1) / math.sqrt(g.shape[0]))


z_triples = z_scores(triples)
print(f"stochastic triples: largest |z| over t = 1..{n_steps}: {np.abs(z_triples).max():.2f}")

# %%
# Check. x_0 = 0 has derivative 0 exactly. For t = 1..49, 49 z-scores: the largest |z| below
# 4.5 (for 49 independent normal z's, P(max |z| > 4.5) ≈ 49 · 6.8e-6 ≈ 3e-4). Each triple
# run keeps one flip, at a step spread over 1..49, so x_t's estimate is non-zero in about a
# fraction t/49 of the runs: at small t the z-score is rougher than normal, which is why the
# bound is 4.5 and the run has 400 samples even in quick mode (8 flips at t = 1 on average).
# The smoothed estimator (minidiff's default) is unbiased too, because x_t is linear in the
# draws.
assert np.all(triples[:, 0] == 0.0)
assert np.abs(z_triples).max() < 4.5
assert np.abs(z_scores(smoothed)).max() < 4.5
print("stochastic triples on the random walk: checks passed")

# %% [markdown]
# ## 2. The agent-based SIR model
#
# $N$ agents are susceptible, infected or recovered (indicator arrays). Each day a
# susceptible agent is infected with probability $1 - e^{-\beta I \Delta t}$, $I$ the infected
# fraction, and an infected one recovers with probability $1 - e^{-\gamma\Delta t}$
# (`minidiff.models.sir`, whose module notes give the equations). The tutorial's setting:
# $\beta = 0.2$ per day, $\gamma = 0.05$ per day (a mean infectious period of 20 days),
# 1% initially infected, $N = 1000$ agents, 60 days.

# %%
beta, gamma, i0 = 0.2, 0.05, 0.01
N, T = 1000, 60
days = np.arange(1, T + 1)


def series(params, seed):
    """Daily fractions newly infected and newly recovered, shape (T, 2)."""
    return sir.simulate(params, n_timesteps=T, n_agents=N, rng=seed)


run = host(series((beta, gamma, i0), seed=0))
jacobian = host(md.jacfwd(lambda p: series(p, seed=0))(md.asarray([beta, gamma, i0])))

fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 4))
ax0.plot(days, run[:, 0], label="new infections")
ax0.plot(days, run[:, 1], label="new recoveries")
ax0.set_xlabel("time (days)")
ax0.set_ylabel("fraction of the population per day")
ax0.set_title(f"one run, N = {N}")
ax0.legend()
for ax, k, name in ((ax1, 0, "β"), (ax2, 1, "γ")):
    ax.plot(days, jacobian[:, 0, k], label="new infections")
    ax.plot(days, jacobian[:, 1, k], label="new recoveries")
    ax.set_xlabel("time (days)")
    ax.set_ylabel(f"∂(fraction per day)/∂{name} (per unit {name})")
    ax.set_title(f"derivatives in {name} (md.jacfwd, smoothed)")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Fitting β and γ by gradient descent
#
# Synthetic data: one run at the true parameters, with 5% multiplicative observation noise.
# We minimise the squared error $\ell(\beta, \gamma) = \sum_t (x_t - y_t)^2$ over both
# series, parameterised by $\log_{10}\beta$ and $\log_{10}\gamma$ (so they stay positive),
# from $\beta = \gamma = 1$, with Adam (learning rate 0.05) and gradient-norm clipping at 1,
# as in the tutorial. Each epoch draws fresh randomness (stream `100 + epoch`), so each
# gradient is a stochastic gradient, by `md.value_and_grad` through the whole simulation
# (reverse mode, smoothed Bernoulli estimators). The estimate is the average of the last
# quarter of the iterates.
#
# The tutorial's 400 epochs at a constant learning rate leave $\gamma$'s trace still drifting:
# a stochastic gradient with a constant step keeps the iterate moving by about the step size.
# We take 600 epochs and decay the learning rate to zero by a cosine, so the trace levels off,
# and we judge convergence by the expected loss's gradient at the estimate (below), not by eye.

# %%
observed = run * (1 + 0.05 * host(default_rng(1).normal(size=run.shape)))
observed_md = md.asarray(observed)


def loss(log_params, seed):
    b, g = 10.0 ** log_params[0], 10.0 ** log_params[1]
    simulated = series(md.stack([b, g, md.asarray(i0)]), seed)
    return md.sum((simulated - observed_md) ** 2)


def adam_fit(epochs, lr, clip=1.0, b1=0.9, b2=0.999, eps=1e-8):
    """Adam with the gradient clipped to norm `clip` and the learning rate decayed by a
    cosine, lr·(1 + cos(πk/epochs))/2 at epoch k; returns the iterates and losses."""
    p, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    history, losses = [], []
    for k in range(epochs):
        value, g = md.value_and_grad(loss)(md.asarray(p), 100 + k)
        g = host(g)
        norm = np.linalg.norm(g)
        if norm > clip:
            g = g * (clip / norm)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        rate = lr * 0.5 * (1 + math.cos(math.pi * k / epochs))
        p = p - rate * (m / (1 - b1 ** (k + 1))) / (np.sqrt(v / (1 - b2 ** (k + 1))) + eps)
        history.append(p.copy())
        losses.append(float(value))
    return np.array(history), np.array(losses)


epochs, lr = size((600, 0.05), (150, 0.1))
history, losses = adam_fit(epochs, lr)
estimate = 10 ** history[-epochs // 4:].mean(axis=0)
print(f"fitted β = {estimate[0]:.4f} (true {beta}), γ = {estimate[1]:.4f} (true {gamma})")

fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 4))
ax0.semilogy(losses)
ax0.set_xlabel("epoch")
ax0.set_ylabel("squared error (fraction per day)²")
ax0.set_title("loss")
ax1.plot(10 ** history[:, 0], color="C0", label="β (fitted)")
ax1.plot(10 ** history[:, 1], color="C1", label="γ (fitted)")
ax1.axhline(beta, color="C0", ls="--", label="β (true)")
ax1.axhline(gamma, color="C1", ls="--", label="γ (true)")
ax1.set_yscale("log")
ax1.set_xlabel("epoch")
ax1.set_ylabel("rate (per day)")
ax1.set_title("parameters")
ax1.legend(fontsize="small")
fitted = host(series(md.asarray([*estimate, i0]), seed=0))
ax2.plot(days, observed[:, 0], "o", ms=3, color="C0", label="observed infections")
ax2.plot(days, observed[:, 1], "o", ms=3, color="C1", label="observed recoveries")
ax2.plot(days, fitted[:, 0], color="C0", label="fitted model")
ax2.plot(days, fitted[:, 1], color="C1")
ax2.set_xlabel("time (days)")
ax2.set_ylabel("fraction of the population per day")
ax2.set_title("data and the fitted model (one run)")
ax2.legend(fontsize="small")
fig.tight_layout()
save(fig, "03-sir-fit")
plt.show()

# %% [markdown]
# **Has it converged, and how far from the truth should it be?** At a minimum of the expected
# loss its gradient is zero. We average `md.grad` of the loss at the estimate over $M$ fresh
# seeds (the smoothed derivatives the optimiser followed) and compare the mean with its
# standard error. The estimate need not be the truth: the data are one noisy realisation.
# How far it may be is the spread of the estimate across data sets, which we measure by the
# delta method: $M$ simulated data sets at the estimate (5% noise as in the data) give the
# data's covariance $\Sigma_y$; central differences with common random numbers give the
# Jacobian $J$ of the expected series in $(\log_{10}\beta, \log_{10}\gamma)$; a least-squares
# estimate moves by $A\,\delta y$ with $A = (J^\top J)^{-1}J^\top$, so its covariance is
# $A\Sigma_y A^\top$.

# %%
M = size(40, 10)
log_estimate = np.log10(estimate)
stationarity = np.array([host(md.grad(loss)(md.asarray(log_estimate), 5000 + s))
                         for s in range(M)])
g_mean, g_se = stationarity.mean(axis=0), stationarity.std(axis=0, ddof=1) / math.sqrt(M)
tail = history[-epochs // 4:, 1]
print("gradient of the expected loss at the estimate (per log₁₀ unit): "
      + ", ".join(f"{name} {g:+.2e} ± {e:.1e} (z {g / e:+.2f})"
                  for name, g, e in zip("βγ", g_mean, g_se)))
print(f"log₁₀ γ over the last quarter of the epochs: range {np.ptp(tail):.4f}, "
      f"last - first {tail[-1] - tail[0]:+.4f}")

h = 0.02
simulated = np.stack([host(series(md.asarray([*estimate, i0]), 6000 + s)).ravel()
                      for s in range(M)])
data_sets = simulated * (1 + 0.05 * host(default_rng(2).normal(size=simulated.shape)))
cov_y = np.cov(data_sets, rowvar=False)  # (2T, 2T)
jacobian_fd = np.zeros((2 * T, 2))
for k in range(2):
    step = np.zeros(2)
    step[k] = h
    for s in range(M):
        up = host(series(md.asarray([*10 ** (log_estimate + step), i0]), 6000 + s)).ravel()
        down = host(series(md.asarray([*10 ** (log_estimate - step), i0]), 6000 + s)).ravel()
        jacobian_fd[:, k] += (up - down) / (2 * h) / M
A = np.linalg.pinv(jacobian_fd)  # (2, 2T)
spread = np.sqrt(np.diag(A @ cov_y @ A.T))  # sd of log₁₀ β̂, log₁₀ γ̂ across data sets
offset = log_estimate - np.log10([beta, gamma])
print("spread across data sets (sd, log₁₀ units): "
      + ", ".join(f"{name} {sd:.4f} (×{10 ** sd:.3f}); the estimate is {o / sd:+.2f} sd from "
                  f"the truth" for name, sd, o in zip("βγ", spread, offset)))

differences = np.array([float(loss(md.asarray(log_estimate), 5000 + s)
                              - loss(md.asarray(np.log10([beta, gamma])), 5000 + s))
                        for s in range(M)])
d_mean, d_se = differences.mean(), differences.std(ddof=1) / math.sqrt(M)
print(f"expected loss at the estimate minus at the truth: {d_mean:.2e} ± {d_se:.1e}")

# %%
# Check. Converged: each component of the expected loss's gradient at the estimate is within
# 4 standard errors of zero. The fit explains the data at least as well as the truth does:
# the paired difference of the expected losses on M common seeds (the simulation noise
# cancels in the difference) is below 4 of its standard errors. The truth lies within 4
# measured spreads (the delta method's sd across data sets, above) of the estimate in each
# log₁₀ rate: a band from the data's own spread, not one chosen after a run (the tutorial-era
# band, 20% on β and 50% on γ, was widened after a rerun and is gone). All are Monte Carlo or
# sampling tolerances at 4 sd, one-in-15,000 to fail each under their normal approximations.
# The loss fell: its last quarter averages under a quarter of its first 5 epochs. Quick mode
# (150 epochs at twice the learning rate, M = 10) has not converged: it asserts only the last.
if not QUICK:
    assert np.all(np.abs(g_mean) < 4 * g_se), (g_mean, g_se)
    assert d_mean < 4 * d_se
    assert np.all(np.abs(offset) < 4 * spread), (offset, spread)
assert losses[-epochs // 4:].mean() < 0.25 * losses[:5].mean()
print("SIR fit: checks passed")

# %% [markdown]
# ### Ours: SIR's derivatives by stochastic triples and by finite differences
#
# How good are the gradients we just used? The quantity is the attack rate (the fraction of
# agents infected during the 60 days), and we differentiate with respect to the logarithms
# of $(\beta, \gamma, i_0)$, so one step size suits all three: $\partial A/\partial \log\beta
# = \beta\,\partial A/\partial\beta$.
#
# * **Stochastic triples**: unbiased, one run per sample.
# * **Central finite differences with common random numbers**, $h = 0.02$ in each log
#   parameter (2%): every run of sample $i$ uses the stream $i$, whose draws are keyed by what
#   they are for (`("infect", t)`, `("recover", t)`), so the runs at $\theta \pm h$ see the
#   same uniforms. Unbiased up to $O(h^2)$.
# * **Smoothed** (`md.jacfwd`, minidiff's default estimator): cheap and low-variance, but
#   biased here, since the infections feed back through $I(t)$ and the series is not linear
#   in the draws.

# %%
log_theta = np.log([beta, gamma, i0])


def attack_rate(log_params, rng):
    return sir.attack_rate(sir.simulate(md.exp(log_params), n_timesteps=T, n_agents=N, rng=rng))


n_samples = size(600, 50)
root = default_rng(11)
comparison = compare_estimators({
    "stochastic triples": per_seed(lambda s: derivative_estimate(
        lambda p: attack_rate(p, root.stream(s)), md.asarray(log_theta), seed=s)),
    "finite differences, common random numbers": lambda n: finite_difference(
        attack_rate, log_theta, 0.02, n, seed=root),
    "smoothed (md.jacfwd)": per_seed(lambda s: md.jacfwd(
        lambda p: attack_rate(p, root.stream(s)))(md.asarray(log_theta))),
}, n_samples)
print(comparison)

fig, ax = plt.subplots(figsize=(8, 4))
labels = ["log β", "log γ", "log i₀"]
for j, row in enumerate(comparison):
    ax.errorbar(np.arange(3) + 0.2 * (j - 1), row.mean, yerr=[4 * s for s in row.se], fmt="o",
                capsize=4, label=row.name)
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(range(3), labels)
ax.set_xlabel("parameter (differentiated on a log scale)")
ax.set_ylabel("∂(attack rate)/∂(log parameter) (fraction of agents)")
ax.set_title(f"SIR attack rate, N = {N}, T = {T} days: means ± 4 standard errors")
ax.legend(fontsize="small")
plt.show()

# %%
# Check. Triples and finite differences estimate the same derivative: for each parameter the
# difference of their means is within 4 standard errors of the difference
# (√(se_triples² + se_fd²); the two use different streams, so they are independent). The
# smoothed estimator is biased for ∂/∂log β: its mean is more than 4 such standard errors away.
# Quick mode's 50 samples per estimator keep the power of that test: the bias (about 0.8, see
# the full run's table) is then about 10 such standard errors.
triples_row = comparison["stochastic triples"]
fd_row = comparison["finite differences, common random numbers"]
smooth_row = comparison["smoothed (md.jacfwd)"]
for k in range(3):
    se = math.hypot(triples_row.se[k], fd_row.se[k])
    assert abs(triples_row.mean[k] - fd_row.mean[k]) < 4 * se, (labels[k], triples_row, fd_row)
se_beta = math.hypot(smooth_row.se[0], fd_row.se[0])
assert abs(smooth_row.mean[0] - fd_row.mean[0]) > 4 * se_beta
print("SIR derivatives: checks passed")

# %%
# Key numbers: computed alike in the quick and the full run (no sample sizes enter them), so
# tests/test_tutorials.py can check that the outputs stored in the .ipynb come from the
# current code: it compares this line from a fresh quick run with the stored one.
key_numbers = {
    "hard Gumbel-softmax dx_49/dθ, τ=0.5, 3 walkers": host(md.jacfwd(
        lambda t: masked_walk(t, default_rng(1), 3, tau=0.5))(theta))[-1].tolist(),
    "stochastic triples dx_49/dθ, seeds 0-2": triples[:3, -1].tolist(),
    "SIR run at seed 0, summed": float(run.sum()),
    "SIR dseries/dβ at the last day": jacobian[-1, :, 0].tolist(),
    "SIR fit: first epoch's loss": float(losses[0]),
    "SIR attack-rate derivative by triples, seed 0": host(derivative_estimate(
        lambda p: attack_rate(p, root.stream(0)), md.asarray(log_theta), seed=0)).tolist(),
}
print("key numbers:", json.dumps(key_numbers))


# %% [markdown]
# ## Summary
#
# * A plain discrete draw, or a branch on one, carries no derivative. Masks plus a relaxation
#   (Gumbel-softmax) give one, biased by an amount we can compute; stochastic triples give an
#   unbiased one at every time step, with no mask and no temperature.
# * The agent-based SIR model is fitted by Adam through `md.value_and_grad` of the whole
#   simulation, and the fit explains the data at least as well as the true parameters do.
# * Its derivatives by stochastic triples agree with finite differences under common random
#   numbers, while the cheap smoothed estimator used for the fit is measurably biased: good
#   enough to descend, not to report as a derivative.
