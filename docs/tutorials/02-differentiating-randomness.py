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
# # 2. Differentiating randomness
#
# Agent-based models are *stochastic programs*: run one twice at the same parameters and it
# gives two answers. What we want is the derivative of the *average* run,
# $\frac{d}{d\theta}\mathbb E[f(\theta)]$, estimated from samples. This notebook rebuilds the
# tutorial's second notebook on minidiff: finite differences against AD with fixed noise,
# the reparameterisation trick, the score function, and discrete randomness (Gumbel-softmax,
# the sigmoid surrogate). Then it adds what the tutorial could not show: stochastic triples,
# the score function with baselines, finite differences with common random numbers, and one
# honest table of every estimator's bias and variance against the exact derivative.
#
# Every random number comes from `minidiff.random.default_rng(seed)`, so every figure is
# reproducible. A *check cell* after each experiment asserts the result within a tolerance
# set by its Monte Carlo error: a mean is within 4 standard errors $s/\sqrt n$ of its
# expectation (a false alarm once in 16,000 runs for a normal mean), and a standard deviation
# within $4 s/\sqrt{2n}$ (its standard error for normal samples).

# %%
import json
import math
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import integrate
from scipy.special import expit

import minidiff as md
from minidiff.random import default_rng
from minidiff.stochastic import (
    compare_estimators,
    finite_difference,
    score_function,
    soft_step,
)
from minidiff.stochastic.harness import pathwise_samples, triple_samples

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


def mean_se(samples):
    """Sample mean and its standard error s/√n."""
    s = np.asarray(samples, dtype=float)
    return s.mean(), s.std(ddof=1) / math.sqrt(s.size)


def assert_mean(samples, expected, what):
    """|mean − expected| < 4 standard errors."""
    m, se = mean_se(samples)
    z = (m - expected) / se if se > 0 else (0.0 if math.isclose(m, expected) else math.inf)
    assert abs(z) < 4, f"{what}: mean {m:.4g} is {z:+.1f} standard errors from {expected:.4g}"
    return z


def assert_sd(samples, expected, what):
    """|sd − expected| < 4 sd/√(2n) (the standard error of a normal sample's sd)."""
    s = np.asarray(samples, dtype=float)
    sd, tol = s.std(ddof=1), 4 * expected / math.sqrt(2 * s.size)
    assert abs(sd - expected) < tol, f"{what}: sd {sd:.4g}, expected {expected:.4g} ± {tol:.2g}"


print("quick mode" if QUICK else "full run")

# %% [markdown]
# ## 1. Fixed noise: finite differences against AD
#
# $z \sim \mathcal N(1, 2^2)$ and $y = \theta^2 (z + 4)$ at $\theta = 2$. The noise does not
# depend on $\theta$, so the derivative of the expectation is the expectation of the
# derivative: $\frac{d}{d\theta}\mathbb E[y] = \mathbb E[2\theta(z + 4)] = 10\theta = 20$.
#
# **Finite differences with independent noise**, $\hat g = (y(\theta + \epsilon; z_1) -
# y(\theta; z_2))/\epsilon$, run the program twice with different draws. Their mean is
# $5(2\theta + \epsilon) = 20 + 5\epsilon$ (a forward difference is biased by $O(\epsilon)$),
# and their standard deviation is
# $2\sqrt{(\theta + \epsilon)^4 + \theta^4}/\epsilon$: it explodes as $\epsilon \to 0$.
# **AD with fixed noise** differentiates one run, $\hat g = 2\theta(z + 4)$: mean 20 and
# standard deviation $2\theta \cdot 2 = 8$ whatever we do.
#
# We draw all samples at once (one array of $n$ draws) and differentiate the vector of $n$
# outputs with `md.jacfwd`: one forward pass gives the $n$ per-sample derivatives.

# %%
theta = 2.0
n = size(10_000, 2_000)
epsilons = [1.0, 0.5, 0.1]
rng = default_rng(2024)


def y(t, z):
    return t**2 * (z + 4)


fd_independent = {}
for eps in epsilons:
    z1 = rng.stream(("fd", str(eps), 1)).normal(1.0, 2.0, size=n)
    z2 = rng.stream(("fd", str(eps), 2)).normal(1.0, 2.0, size=n)
    fd_independent[eps] = host((y(theta + eps, z1) - y(theta, z2)) / eps)
z = rng.stream("ad").normal(1.0, 2.0, size=n)
ad_fixed = host(md.jacfwd(lambda t: y(t, z))(theta))
fd_common = {eps: host((y(theta + eps, z) - y(theta, z)) / eps) for eps in epsilons}

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
bins = np.linspace(-300, 340, 120)
for i, (eps, g) in enumerate(fd_independent.items()):
    ax0.hist(g, bins=bins, density=True, alpha=0.5, color=f"C{i}",
             label=f"finite difference, ε = {eps}")
ax0.hist(ad_fixed, bins=bins, density=True, alpha=0.8, color="k", histtype="step", lw=1.5,
         label="AD (md.jacfwd), fixed noise")
ax0.axvline(20, color="k", ls="--", lw=1, label="exact: 20")
ax0.set_xlabel("derivative estimate dy/dθ (units of y per unit θ)")
ax0.set_ylabel("probability density (per unit of the estimate)")
ax0.set_title("independent noise: the variance explodes as ε → 0")
ax0.legend(fontsize="small")
sd_fd = [fd_independent[e].std(ddof=1) for e in epsilons]
sd_theory = [2 * math.sqrt((theta + e) ** 4 + theta**4) / e for e in epsilons]
ax1.loglog(epsilons, sd_fd, "o", color="C0", label="finite differences, independent noise")
ax1.loglog(epsilons, sd_theory, "-", color="C0", alpha=0.5, label="2√((θ+ε)⁴ + θ⁴)/ε")
ax1.loglog(epsilons, [fd_common[e].std(ddof=1) for e in epsilons], "s", color="C2",
           label="finite differences, common random numbers")
ax1.axhline(ad_fixed.std(ddof=1), color="k", ls="--", label="AD with fixed noise: 8")
ax1.set_xlabel("step ε (units of θ)")
ax1.set_ylabel("standard deviation of the estimate")
ax1.set_title("spread of one estimate")
ax1.legend(fontsize="small")
save(fig, "02-finite-differences")
plt.show()
for eps in epsilons:
    m, se = mean_se(fd_independent[eps])
    print(f"ε = {eps}: finite differences mean {m:.2f} ± {se:.2f} (expected {20 + 5 * eps:g}), "
          f"sd {fd_independent[eps].std(ddof=1):.1f}; with common random numbers sd "
          f"{fd_common[eps].std(ddof=1):.2f}")
m, se = mean_se(ad_fixed)
print(f"AD: mean {m:.3f} ± {se:.3f}, sd {ad_fixed.std(ddof=1):.3f}")

# %%
# Check: means within 4 standard errors, sds within 4 sd/√(2n) (all samples are normal).
for eps in epsilons:
    assert_mean(fd_independent[eps], 20 + 5 * eps, f"finite difference ε={eps}")
    assert_sd(fd_independent[eps], 2 * math.sqrt((theta + eps) ** 4 + theta**4) / eps, "fd sd")
    assert_sd(fd_common[eps], 2 * (2 * theta + eps), "fd sd with common random numbers")
assert_mean(ad_fixed, 20.0, "AD with fixed noise")
assert_sd(ad_fixed, 8.0, "AD with fixed noise")
print("fixed noise: checks passed")

# %% [markdown]
# With common random numbers (the same $z$ in both runs) the noise cancels and finite
# differences have standard deviation $2(2\theta + \epsilon)$, close to AD's 8. That is easy
# here, where there is one draw, and hard in a simulation whose runs draw different numbers
# of values; minidiff's keyed streams (`rng.stream(key)`) make it possible, see section 4.
#
# ## 2. Parameterised noise and the reparameterisation trick
#
# Now the noise depends on the parameter: $z \sim \mathcal N(\theta, 2^2)$, $y = \theta^2 (z +
# 4)$. Then $\mathbb E[y] = \theta^2(\theta + 4)$ and the derivative is $3\theta^2 + 8\theta =
# 28$ at $\theta = 2$. Differentiating a sample *as a constant* misses the term
# $\int y \, \nabla_\theta p$ and gives $\mathbb E[2\theta(z + 4)] = 2\theta(\theta + 4) = 24$:
# the gradient of the expectation is no longer the expectation of the gradient.
#
# * **Reparameterised**: $z = \theta + 2\varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$;
#   minidiff's `rng.normal(loc, scale)` samples this way, so the derivative is right by
#   construction: $8\theta + 3\theta^2 + 4\theta\varepsilon$, mean 28, sd $4\theta = 8$.
# * **Not reparameterised**: `md.stop_gradient(rng.normal(theta, 2.0))`, what PyTorch's
#   `.sample()` does silently: mean 24.
# * **Score function** (REINFORCE): $\nabla\mathbb E[y] = \mathbb E[\nabla_\theta y +
#   y\,\nabla_\theta \log p(z; \theta)]$ with $\nabla_\theta \log p = (z - \theta)/4$. We
#   write it as the derivative of a *surrogate* $y + \mathrm{sg}(y)(\log p -
#   \mathrm{sg}(\log p))$ (sg is `md.stop_gradient`): value $y$, derivative the estimator.
#   Unbiased, but noisier.

# %%
n = size(20_000, 4_000)
eps_draws = default_rng(7).normal(0.0, 1.0, size=n)


def y_reparameterised(t):
    return t**2 * (t + 2.0 * eps_draws + 4)


def y_not_reparameterised(t):
    return t**2 * (md.stop_gradient(t + 2.0 * eps_draws) + 4)


def y_score(t):
    zs = md.stop_gradient(t + 2.0 * eps_draws)  # the sample, as a constant
    value = t**2 * (zs + 4)
    log_p = -((zs - t) ** 2) / 8.0             # log N(z; θ, 2²) up to a constant
    return value + md.stop_gradient(value) * (log_p - md.stop_gradient(log_p))


grads = {"reparameterised": host(md.jacfwd(y_reparameterised)(theta)),
         "not reparameterised (stop_gradient)": host(md.jacfwd(y_not_reparameterised)(theta)),
         "score function": host(md.jacfwd(y_score)(theta))}
with_rng = host(md.jacfwd(lambda t: t**2 * (default_rng(7).normal(t, 2.0, size=n) + 4))(theta))

fig, ax = plt.subplots(figsize=(7.5, 4))
bins = np.linspace(-40, 100, 140)
for i, (name, g) in enumerate(grads.items()):
    ax.hist(g, bins=bins, density=True, alpha=0.45, color=f"C{i}", label=name)
ax.axvline(28, color="k", ls="--", lw=1, label="exact: 8θ + 3θ² = 28")
ax.axvline(24, color="C1", ls=":", lw=1, label="2θ(θ + 4) = 24")
ax.set_xlabel("derivative estimate dy/dθ (units of y per unit θ)")
ax.set_ylabel("probability density (per unit of the estimate)")
ax.set_title("z ~ N(θ, 2²): differentiate the sampler, not the sample")
ax.legend(fontsize="small")
plt.show()
for name, g in grads.items():
    m, se = mean_se(g)
    print(f"{name:>36}: mean {m:6.2f} ± {se:.2f}, sd {g.std(ddof=1):6.2f}")

# %%
# Check (4 standard errors; reparameterised sd within 4 sd/√(2n) of 4θ = 8). rng.normal(θ, 2)
# is the reparameterised sampler itself: same draws, same derivatives (to rounding).
assert_mean(grads["reparameterised"], 28.0, "reparameterised")
assert_sd(grads["reparameterised"], 4 * theta, "reparameterised")
assert_mean(grads["not reparameterised (stop_gradient)"], 24.0, "not reparameterised")
assert_mean(grads["score function"], 28.0, "score function")
assert grads["score function"].std() > 2 * grads["reparameterised"].std()
assert np.allclose(with_rng, grads["reparameterised"], rtol=1e-12)
print("parameterised noise: checks passed")

# %% [markdown]
# ## 3. Discrete randomness
#
# $x = 2\,\mathrm{Bern}(3\theta) + \mathrm{Bern}(\theta)$ at $\theta = 0.1$, so $\mathbb E[x]
# = 7\theta$ and the exact derivative is **7**. A Bernoulli sample $1[U < p]$ is piecewise
# constant in $p$: its derivative is 0 almost everywhere, which is what a plain sample gives
# (`estimator="none"`).
#
# ### Gumbel-softmax
#
# The Gumbel-max trick draws $\mathrm{Bern}(p)$ as $1[\log p + g_1 > \log(1-p) + g_0]$ with
# Gumbel noise $g$. Gumbel-softmax relaxes the comparison: $y = \sigma((\mathrm{logit}\,p + L)/
# \tau)$, $L = g_1 - g_0 \sim \mathrm{Logistic}$. The *hard* variant (the tutorial's, and
# minidiff's default) keeps the true sample in the forward pass and uses $dy/dp$ as the
# derivative. That derivative is biased, and its expectation is a one-dimensional integral we
# can compute by quadrature:
#
# $$\mathbb E\left[\frac{dy}{dp}\right] = \int \frac{y(1 - y)}{\tau\,p(1 - p)}\,
# \mathrm{logistic}(L)\,dL, \qquad \mathbb E[\hat g] = 6\,\mathbb E\left[\tfrac{dy}{dp}
# \right]_{p = 0.3} + \mathbb E\left[\tfrac{dy}{dp}\right]_{p = 0.1}.$$
#
# As $\tau \to 0$ the bias goes to 0 and the variance grows without bound. The tutorial found
# means of about 7.0, 6.56 and 5.80 at $\tau = 0.1, 0.5, 0.9$ from 1000 samples each.

# %%
def x_program(t, rng, n, estimator, **options):
    """n independent draws of x = 2·Bern(3θ) + Bern(θ)."""
    ones = md.ones((n,))
    return (2.0 * rng.bernoulli(3 * t * ones, estimator=estimator, **options)
            + rng.bernoulli(t * ones, estimator=estimator, **options))


def gumbel_softmax_slope(p, tau):
    """E[dy/dp] for the Bernoulli Gumbel-softmax relaxation, by quadrature."""
    a = math.log(p) - math.log1p(-p)

    def integrand(noise):  # noise: L = g₁ − g₀, standard logistic
        yl = expit((a + noise) / tau)
        return yl * (1 - yl) / (tau * p * (1 - p)) * expit(noise) * expit(-noise)

    return sum(integrate.quad(integrand, lo, hi, limit=200)[0]
               for lo, hi in ((-np.inf, -a), (-a, np.inf)))  # split at the peak, L = −logit p


def gumbel_softmax_mean(tau, t=0.1):
    return 6 * gumbel_softmax_slope(3 * t, tau) + gumbel_softmax_slope(t, tau)


theta = 0.1
n = size(20_000, 5_000)
plain = host(md.jacfwd(lambda t: x_program(t, default_rng(0), n, "none"))(theta))
taus = [0.1, 0.5, 0.9]
gs = {tau: host(md.jacfwd(lambda t: x_program(t, default_rng(1), n, "gumbel_softmax",
                                               tau=tau))(theta)) for tau in taus}
sweep_taus = np.geomspace(0.03, 3, 13)
sweep = [host(md.jacfwd(lambda t: x_program(t, default_rng(2), n, "gumbel_softmax",
                                             tau=float(tau)))(theta)) for tau in sweep_taus]
print(f"plain Bernoulli samples: every derivative is {np.unique(plain)}")
for tau in taus:
    m, se = mean_se(gs[tau])
    print(f"τ = {tau}: mean {m:.3f} ± {se:.3f} (quadrature {gumbel_softmax_mean(tau):.3f}), "
          f"sd {gs[tau].std(ddof=1):.2f}")

# %%
fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(16, 4))
ax0.boxplot([gs[tau] for tau in taus], showmeans=True, showfliers=False)
ax0.set_xticks(range(1, len(taus) + 1), [f"τ = {tau}" for tau in taus])
ax0.axhline(7, color="k", ls="--", lw=1, label="exact: 7")
ax0.set_xlabel("Gumbel-softmax temperature τ (dimensionless)")
ax0.set_ylabel("derivative estimate dx/dθ (per unit θ)")
ax0.set_title("hard Gumbel-softmax estimates (boxes: quartiles, ▲: mean)")
ax0.legend()
means = [mean_se(g) for g in sweep]
ax1.errorbar(sweep_taus, [m for m, _ in means], yerr=[4 * se for _, se in means], fmt="o",
             label="mean ± 4 se (samples)")
fine = np.geomspace(0.03, 3, 60)
ax1.plot(fine, [gumbel_softmax_mean(t) for t in fine], "-", label="mean by quadrature")
ax1.axhline(7, color="k", ls="--", lw=1, label="exact: 7")
ax1.set_xscale("log")
ax1.set_xlabel("temperature τ (dimensionless)")
ax1.set_ylabel("mean derivative estimate (per unit θ)")
ax1.set_title("the bias falls as τ → 0")
ax1.legend(fontsize="small")
ax2.loglog(sweep_taus, [g.std(ddof=1) for g in sweep], "s-", color="C2")
ax2.set_xlabel("temperature τ (dimensionless)")
ax2.set_ylabel("standard deviation of one estimate (per unit θ)")
ax2.set_title("and the variance grows")
save(fig, "02-gumbel-softmax")
plt.show()

# %%
# Check. A plain sample's derivative is exactly 0. Gumbel-softmax means within 4 standard
# errors of the quadrature value; the tutorial's numbers (read off its figure of 1000
# samples) within 4 standard errors of 1000 samples, i.e. 4·sd/√1000; the bias and the
# variance move in opposite directions with τ.
assert np.all(plain == 0.0)
for tau, tutorial in zip(taus, [7.0, 6.56, 5.80]):
    assert_mean(gs[tau], gumbel_softmax_mean(tau), f"Gumbel-softmax τ={tau}")
    assert abs(gs[tau].mean() - tutorial) < 4 * gs[tau].std() / math.sqrt(1000)
for tau, g in zip(sweep_taus, sweep):
    assert_mean(g, gumbel_softmax_mean(float(tau)), f"Gumbel-softmax sweep τ={tau:.3g}")
quadrature = [gumbel_softmax_mean(t) for t in sweep_taus]
assert all(a > b for a, b in zip(quadrature, quadrature[1:]))       # bias grows with τ
assert all(gumbel_softmax_mean(t) < 7 for t in sweep_taus)           # always biased low
sds = [g.std(ddof=1) for g in sweep]
assert sds[0] > 2 * sds[len(sds) // 2] > 4 * sds[-1]                # variance grows as τ → 0
print("Gumbel-softmax: checks passed")

# %% [markdown]
# ### The sigmoid surrogate
#
# Write the sample as a step, $\mathrm{Bern}(p) = 1[p - U \ge 0]$ with $U \sim U(0, 1)$, and
# keep the step's value but borrow the derivative of the sigmoid $\sigma(k(p - U))$:
# minidiff's `soft_step(x, k)`. Its expected derivative has a closed form,
# $\mathbb E[k\sigma'(k(p - U))] = \sigma(kp) - \sigma(k(p - 1))$, so for our program
#
# $$\mathbb E[\hat g_k] = 6\,[\sigma(0.3k) - \sigma(-0.7k)] + [\sigma(0.1k) - \sigma(-0.9k)]
# \xrightarrow{k \to \infty} 7,$$
#
# while the variance grows like $k$: the steepness trades bias for variance, like $1/\tau$.

# %%
def x_sigmoid(t, rng, n, k):
    u1, u2 = rng.random(n), rng.random(n)
    return 2.0 * soft_step(3 * t - u1, k) + soft_step(t - u2, k)


def sigmoid_mean(k, t=0.1):
    return 6 * (expit(3 * t * k) - expit((3 * t - 1) * k)) + (expit(t * k) - expit((t - 1) * k))


steepness = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
surrogate = [host(md.jacfwd(lambda t: x_sigmoid(t, default_rng(3), n, k))(theta))
             for k in steepness]

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
ms = [mean_se(g) for g in surrogate]
ax0.errorbar(steepness, [7 - m for m, _ in ms], yerr=[4 * se for _, se in ms], fmt="o",
             label="7 − mean ± 4 se (samples)")
fine = np.geomspace(1, 1000, 100)
ax0.plot(fine, 7 - sigmoid_mean(fine), "-", label="closed form")
ax0.axhline(0, color="k", lw=0.8)
ax0.set_xscale("log")
ax0.set_xlabel("steepness k (per unit of p − U)")
ax0.set_ylabel("bias: 7 − E[estimate] (per unit θ)")
ax0.set_title("the sigmoid surrogate's bias falls with k")
ax0.legend()
ax1.loglog(steepness, [g.std(ddof=1) for g in surrogate], "s-", color="C2")
ax1.set_xlabel("steepness k (per unit of p − U)")
ax1.set_ylabel("standard deviation of the estimate")
ax1.set_title("... and its variance grows")
plt.show()
for k, g in zip(steepness, surrogate):
    m, se = mean_se(g)
    print(f"k = {k:>4}: mean {m:.3f} ± {se:.3f} (closed form {sigmoid_mean(k):.3f}), "
          f"sd {g.std(ddof=1):.2f}")

# %%
# Check: each mean within 4 standard errors of the closed form; the closed-form bias falls
# monotonically (until it is below 1e-9) and is below 1e-3 from k = 100 on; the spread grows
# by more than 5x from k = 10 to 1000.
for k, g in zip(steepness, surrogate):
    assert_mean(g, sigmoid_mean(k), f"sigmoid surrogate k={k}")
bias = [7 - sigmoid_mean(k) for k in steepness]
assert all(a > b or a < 1e-9 for a, b in zip(bias, bias[1:]))
assert all(b < 1e-3 for k, b in zip(steepness, bias) if k >= 100)
assert surrogate[-1].std() > 5 * surrogate[steepness.index(10)].std()
print("sigmoid surrogate: checks passed")

# %% [markdown]
# ## 4. Ours: every estimator against the exact derivative
#
# Gumbel-softmax and the sigmoid surrogate are biased. The unbiased alternatives:
#
# * **Stochastic triples** (`minidiff.stochastic.derivative_estimate`, after Arya et al.
#   2022): the program runs once, carrying for each discrete draw the alternative value it
#   would have taken had the parameter moved, with its rate. Unbiased for any program.
# * **The score function** (`score_function`), with baselines: none, a constant, the mean of
#   the *other* samples (leave-one-out), or a moving average of earlier samples.
# * **Finite differences with common random numbers** (`finite_difference`): the two runs
#   share every draw through keyed streams.
# * **Smoothed** (minidiff's default for discrete samplers) and **straight-through**: the
#   hard sample with a derivative whose *expectation* is right, so they are unbiased for any
#   $f$ linear in the samples, like our $x$, and biased otherwise.
#
# `compare_estimators` runs each for $n$ samples and prints mean, standard deviation,
# standard error, bias z-score $(\bar g - 7)/\mathrm{se}$ and cost per sample. A |z| above 4
# is strong evidence of bias.

# %%
def program(t, rng, estimator="smoothed", **options):
    """One draw of x = 2·Bern(3θ) + Bern(θ)."""
    return (2.0 * rng.bernoulli(3 * t, estimator=estimator, **options)
            + rng.bernoulli(t, estimator=estimator, **options))


def program_sigmoid(t, rng, k=10.0):
    return 2.0 * soft_step(3 * t - rng.random(), k) + soft_step(t - rng.random(), k)


def estimators_for(f, f_score, f_st, f_gs, f_sig):
    return {
        "stochastic triples": triple_samples(f, theta),
        "score, no baseline": lambda n: score_function(f_score, theta, n),
        "score, baseline 0.7": lambda n: score_function(f_score, theta, n, 0.7),
        "score, leave-one-out": lambda n: score_function(f_score, theta, n, "leave_one_out"),
        "score, moving average": lambda n: score_function(f_score, theta, n, "ema"),
        "FD h=0.01, common random numbers": lambda n: finite_difference(f, theta, 0.01, n),
        "FD h=0.01, independent": lambda n: finite_difference(
            f, theta, 0.01, n, common_random_numbers=False),
        "smoothed": pathwise_samples(f, theta),
        "straight-through": pathwise_samples(f_st, theta),
        "Gumbel-softmax τ=0.5": pathwise_samples(f_gs, theta),
        "sigmoid surrogate k=10": pathwise_samples(f_sig, theta),
    }


n = size(4_000, 400)
linear = compare_estimators(estimators_for(
    program, lambda t, r: program(t, r, "score"), lambda t, r: program(t, r, "straight_through"),
    lambda t, r: program(t, r, "gumbel_softmax", tau=0.5), program_sigmoid), n, exact=7.0)
print(linear)

# %% [markdown]
# Every unbiased estimator has |z| < 4 at 7; Gumbel-softmax and the sigmoid surrogate sit at
# their own expectations (6.55 and 6.44), below 7. Straight-through has zero variance here
# because $dx/d\theta$ is the derivative of the mean, 7, whatever the sample. The score
# function's variance falls by more than half with a baseline. Central finite differences
# are unbiased here ($\mathbb E[x]$ is linear in $\theta$), but noisy: with common random
# numbers an estimate is non-zero only when a uniform falls between $p - h$ and $p + h$, and
# then it is a jump of order $1/h$, so the variance is $O(1/h)$ ($26/(4h)$ here); with
# independent streams it is $\mathrm{Var}(x)/(2h^2) = O(1/h^2)$. At $h = 0.01$ that is a
# factor $\sqrt{0.93/(2h^2) \cdot 4h/26} \approx 2.7$ in standard deviation, growing like
# $1/\sqrt h$.
#
# **A non-linear program** separates the estimators that are unbiased only for linear $f$.
# The expectation of the smoothed and straight-through estimators can be computed exactly by
# enumerating the four outcomes $(A, B)$ of the two Bernoulli draws: straight-through gives
# $f'(x) \cdot 7$ and smoothed $f'(x)\,(6 s_A + s_B)$, with the smoothed slope
# $s = \frac12\left[\frac{1 - X}{1 - p} + \frac{X}{p}\right]$. For one Bernoulli draw the
# smoothed estimator's expectation is $\frac12[f'(0) + f'(1)]$, the trapezoid rule for
# $f(1) - f(0)$, which is exact for quadratics: smoothed is unbiased for $x^2$ as well (try
# it). So we take $f = x^3$: with $A^2 = A$ and $B^2 = B$, $x^3 = 8A + B + 18AB$, so
# $\mathbb E[x^3] = 25\theta + 54\theta^2$ and the exact derivative is
# $25 + 108\theta = 35.8$.

# %%
def cube(f):
    return lambda t, rng: f(t, rng) ** 3


cubic = compare_estimators(estimators_for(
    cube(program), cube(lambda t, r: program(t, r, "score")),
    cube(lambda t, r: program(t, r, "straight_through")),
    cube(lambda t, r: program(t, r, "gumbel_softmax", tau=0.5)),
    cube(program_sigmoid)), n, exact=35.8)
print(cubic)


def enumerate_expectation(estimate):
    """E[estimate(A, B)] over A ~ Bern(0.3), B ~ Bern(0.1) (the four outcomes)."""
    return sum(pa * pb * estimate(a, b)
               for a, pa in ((1, 0.3), (0, 0.7)) for b, pb in ((1, 0.1), (0, 0.9)))


def smoothed_slope(x, p):
    return 0.5 * ((1 - x) / (1 - p) + x / p)


expected_cubic = {  # f'(x) = 3x²
    "straight-through": enumerate_expectation(lambda a, b: 3 * (2 * a + b) ** 2 * 7),
    "smoothed": enumerate_expectation(
        lambda a, b: 3 * (2 * a + b) ** 2 * (6 * smoothed_slope(a, 0.3) + smoothed_slope(b, 0.1))),
}
print("expectations by enumeration:", {k: round(v, 4) for k, v in expected_cubic.items()},
      "exact: 35.8")

# %%
fig, ax = plt.subplots(figsize=(9, 5))
names = [row.name for row in linear]
positions = np.arange(len(names))
for offset, (table, exact, label) in enumerate([(linear, 7.0, "f = x (exact 7)"),
                                                (cubic, 35.8, "f = x³ (exact 35.8)")]):
    ax.errorbar([row.mean / exact for row in table], positions + 0.2 * offset - 0.1,
                xerr=[4 * row.se / exact for row in table], fmt="o", capsize=3, label=label)
ax.axvline(1, color="k", ls="--", lw=1)
ax.set_yticks(positions, names)
ax.invert_yaxis()
ax.set_xlim(0, 2)
ax.set_xlabel("mean estimate / exact derivative (dimensionless), bars: ± 4 standard errors")
ax.set_title(f"every estimator, {n} samples each, against the exact derivative")
ax.legend(loc="lower right")
save(fig, "02-estimators")
plt.show()

# %%
# Check. The unbiased estimators: |z| < 4 against the exact derivative, for both programs.
# The biased ones: within 4 standard errors of their own known expectation (quadrature, closed
# form or enumeration) — and for the non-linear program that expectation is far from 35.8.
unbiased = ["stochastic triples", "score, no baseline", "score, baseline 0.7",
            "score, leave-one-out", "score, moving average", "FD h=0.01, common random numbers",
            "FD h=0.01, independent"]
for table in (linear, cubic):
    for name in unbiased:
        assert abs(table[name].z) < 4, (name, table[name])
for name in ("smoothed", "straight-through"):
    assert abs(linear[name].z) < 4 or linear[name].se == 0, name
    row = cubic[name]
    assert abs(row.mean - expected_cubic[name]) < 4 * row.se + 1e-9, (name, row)
    assert abs(expected_cubic[name] - 35.8) > 3
assert abs(linear["Gumbel-softmax τ=0.5"].mean - gumbel_softmax_mean(0.5)) \
    < 4 * linear["Gumbel-softmax τ=0.5"].se
assert abs(linear["sigmoid surrogate k=10"].mean - sigmoid_mean(10)) \
    < 4 * linear["sigmoid surrogate k=10"].se
assert linear["score, leave-one-out"].sd < 0.8 * linear["score, no baseline"].sd
# theory: sd ratio 2.67 (the text above); the CRN samples are mostly 0, so their sd has a
# relative standard error near 10% at the quick size: 1.8 leaves more than 3 of them
assert linear["FD h=0.01, independent"].sd > 1.8 * linear["FD h=0.01, common random numbers"].sd
print("estimator tables: checks passed")

# %%
# Key numbers: computed alike in the quick and the full run (no sample sizes enter them), so
# tests/test_tutorials.py can check that the outputs stored in the .ipynb come from the
# current code: it compares this line from a fresh quick run with the stored one.
z_key = default_rng(2024).stream("ad").normal(1.0, 2.0, size=3)
key_numbers = {
    "fixed-noise AD derivatives, 3 draws": host(md.jacfwd(lambda t: y(t, z_key))(2.0)).tolist(),
    "Gumbel-softmax τ=0.5 derivatives, 3 draws": host(md.jacfwd(
        lambda t: x_program(t, default_rng(1), 3, "gumbel_softmax", tau=0.5))(0.1)).tolist(),
    "sigmoid k=10 derivatives, 3 draws": host(md.jacfwd(
        lambda t: x_sigmoid(t, default_rng(3), 3, 10))(0.1)).tolist(),
    "Gumbel-softmax mean τ=0.5 (quadrature)": gumbel_softmax_mean(0.5),
}
print("key numbers:", json.dumps(key_numbers))


# %% [markdown]
# ## Summary
#
# * With fixed noise, AD on one run is an unbiased, low-variance estimate of the derivative
#   of the expectation; finite differences with independent noise are not usable as
#   $\epsilon \to 0$.
# * When the noise depends on $\theta$, differentiate the sampler: reparameterised samplers
#   (minidiff's continuous samplers) give the right derivative; a sample treated as a constant
#   gives a wrong one silently.
# * Discrete samples need an estimator. Relaxations (Gumbel-softmax, the sigmoid surrogate)
#   trade bias against variance through one knob; smoothed and straight-through are unbiased
#   only for linear programs; stochastic triples, the score function (better with a baseline)
#   and finite differences with common random numbers are unbiased for any program.
