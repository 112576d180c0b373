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
# # 4. Generalised variational inference
#
# Calibrating an agent-based model means finding the parameters $\theta$ that explain data
# $y$, with their uncertainty. *Generalised variational inference* (GVI) fits a distribution
# $q_\phi(\theta)$ by minimising
#
# $$L(\phi) = \mathbb E_{\theta \sim q_\phi}[\ell(\theta, y)] + w\,\mathrm{KL}(q_\phi \,\|\, \pi),$$
#
# the tutorial's $\mathbb E_q[\ell]/w + \mathrm{KL}$ multiplied by $w$. With $\ell$ the
# negative log-likelihood and $w = 1$ the minimiser over all distributions is the Bayesian
# posterior; with a simulator-based discrepancy (energy distance, MMD) it is a *generalised*
# posterior $q^* \propto \pi\, e^{-\mathbb E[\ell]/w}$. `minidiff.inference.calibrate` runs
# the optimisation: each step draws $\theta_i \sim q_\phi$, runs the simulator, and
# differentiates $L$, by forward mode through the simulator and reverse mode through $q$
# ("mixed mode"), by stochastic triples, or by the score function.
#
# This rebuilds the tutorial's fourth notebook (which used blackbirds and PyTorch) and checks
# each fit against an answer computed independently: a quadrature, or a posterior in closed
# form.

# %%
import json
import math
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy import optimize, stats
from scipy.special import expit, logit

import minidiff as md
from minidiff import inference as inf
from minidiff.memory import measure
from minidiff.models import cont, random_walk
from minidiff.random import default_rng

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
# ## 1. GVI on the random walk
#
# Data: $T = 50$ increments $\pm 1$ of a walk with $\theta = 0.75$. The loss is the energy
# distance between simulated and observed increments; $q$ is a Gaussian on $x =
# \mathrm{logit}\,\theta$ and the prior is $\mathcal N(\mathrm{logit}\,0.9, 1)$, as in the
# tutorial. For $\pm 1$ steps the energy distance is $4(\hat p - \hat q)^2$ ($\hat p, \hat q$
# the fractions of up-steps), so its expectation over the simulator is known exactly,
# $\bar L(\theta) = 4[(\theta - \hat q)^2 + \theta(1 - \theta)/T]$, and the generalised
# posterior $q^* \propto \pi\,e^{-\bar L/w}$ and the Gaussian closest to it in
# $\mathrm{KL}(q \| q^*)$ follow by quadrature from the same data. We use $w = 0.1$: the
# energy distance of $\pm 1$ steps is at most 4, so at the tutorial's $w = 1$ the data hardly
# move $q$ from the prior and the comparison would say little.
#
# Three gradient estimators: pathwise by **stochastic triples** (unbiased through the
# Bernoulli draws), pathwise with the **smoothed** Bernoulli derivative in mixed mode (cheap,
# but biased for this non-linear loss), and the **score function** with a leave-one-out
# baseline (unbiased, needs no derivative of the simulator).

# %%
T_WALK, W_WALK = 50, 0.1
PRIOR_WALK = (float(logit(0.9)), 1.0)
observed = random_walk.simulate(0.75, n_timesteps=T_WALK, rng=default_rng(7))
increments = md.getitem(observed, slice(1, None)) - md.getitem(observed, slice(0, -1))
energy = inf.energy_distance(increments)
q_hat = float(np.mean((host(increments) + 1) / 2))


def walk_loss(x, rng):
    path = random_walk.simulate(md.sigmoid(md.getitem(x, 0)), n_timesteps=T_WALK, rng=rng)
    return energy(md.getitem(path, slice(1, None)) - md.getitem(path, slice(0, -1)))


def expected_walk_loss(x):
    t = expit(x)
    return 4 * ((t - q_hat) ** 2 + t * (1 - t) / T_WALK)


def best_gaussian(w=W_WALK, prior=PRIOR_WALK):
    """argmin over Gaussians q of KL(q ‖ q*), by Gauss–Hermite quadrature (80 nodes)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()

    def objective(v):
        m, s = v[0], math.exp(v[1])
        x = m + s * nodes
        return float(np.sum(weights * (stats.norm(m, s).logpdf(x)
                                       - stats.norm(*prior).logpdf(x)
                                       + expected_walk_loss(x) / w)))

    fit = optimize.minimize(objective, [prior[0], 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-13})
    return float(fit.x[0]), math.exp(float(fit.x[1]))


n_walk_steps, walk_lr = size((300, 0.05), (80, 0.15))
walk_fits = {}
for label, gradient, mode in (("pathwise (stochastic triples)", "pathwise", "triples"),
                              ("pathwise (smoothed, mixed mode)", "pathwise", "forward"),
                              ("score (leave-one-out)", "score", "auto")):
    result = inf.calibrate(walk_loss, inf.Normal(*PRIOR_WALK), inf.DiagonalGaussian(1),
                           n_samples=10, n_steps=n_walk_steps,
                           optimizer=inf.adam(inf.cosine(walk_lr, n_walk_steps)),
                           options=inf.RunOptions(w=W_WALK, gradient=gradient, mode=mode))
    walk_fits[label] = (float(result.params["loc"][0]),
                        math.exp(float(result.params["log_scale"][0])), result.history)
best_mean, best_sd = best_gaussian()

grid = np.linspace(-1, 5, 600)
log_post = stats.norm(*PRIOR_WALK).logpdf(grid) - expected_walk_loss(grid) / W_WALK
posterior = np.exp(log_post - log_post.max())
posterior /= np.trapezoid(posterior, grid)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4))
ax0.plot(grid, stats.norm(*PRIOR_WALK).pdf(grid), "k:", label="prior N(logit 0.9, 1)")
ax0.plot(grid, posterior, "k-", lw=2, label="generalised posterior (quadrature)")
ax0.plot(grid, stats.norm(best_mean, best_sd).pdf(grid), "k--", label="best Gaussian")
for i, (label, (m, s, _)) in enumerate(walk_fits.items()):
    ax0.plot(grid, stats.norm(m, s).pdf(grid), color=f"C{i}", label=f"q: {label}")
ax0.axvline(logit(0.75), color="grey", lw=0.8)
ax0.set_xlabel("x = logit θ (dimensionless)")
ax0.set_ylabel("density (per unit x)")
ax0.set_title(f"random walk, T = {T_WALK}, w = {W_WALK}")
ax0.legend(fontsize="small")
for i, (label, (_, _, history)) in enumerate(walk_fits.items()):
    smooth = np.convolve(history.total, np.ones(10) / 10, mode="valid")
    ax1.plot(smooth, color=f"C{i}", label=label)
ax1.set_xlabel("step")
ax1.set_ylabel("L(φ) estimate, 10-step running mean (loss units)")
ax1.set_title("the GVI objective")
ax1.legend(fontsize="small")
save(fig, "04-random-walk")
plt.show()
print(f"best Gaussian by quadrature: mean {best_mean:.3f}, sd {best_sd:.3f}")
for label, (m, s, _) in walk_fits.items():
    print(f"{label:>32}: mean {m:.3f}, sd {s:.3f} (Δmean/sd {(m - best_mean) / best_sd:+.2f}, "
          f"sd ratio {s / best_sd:.3f})")

# %%
# Check. The unbiased estimators' fits match the best Gaussian: the mean within 0.25 of its sd
# and the sd within 20% (0.1 and 10% in the full run). These bands are the fluctuation of the
# last iterate of a stochastic-gradient run of 10 samples per step under a cosine-decayed
# learning rate (minidiff.inference's own exact-posterior tests use the full run's); the quick
# run takes 80 steps at 3x the learning rate. The smoothed estimator is biased here: its fit
# is reported, not asserted.
mean_tol, sd_tol = size((0.1, 0.1), (0.25, 0.2))
for label in ("pathwise (stochastic triples)", "score (leave-one-out)"):
    m, s, _ = walk_fits[label]
    assert abs(m - best_mean) < mean_tol * best_sd, (label, m, best_mean)
    assert abs(s / best_sd - 1) < sd_tol, (label, s, best_sd)
print("GVI on the random walk: checks passed")

# %% [markdown]
# ## 2. The Beta–Bernoulli check
#
# With $y_1, \dots, y_n \sim \mathrm{Bern}(\theta)$, a $\mathrm{Beta}(a, b)$ prior and $\ell$
# the negative log-likelihood, $w = 1$ gives Bayes' rule and the exact posterior is
# $\mathrm{Beta}(a + k, b + n - k)$, $k = \sum y_i$. The Beta family is in the variational
# family, so GVI must find it exactly, up to the noise of the stochastic gradient.
#
# The tutorial's run did not converge in 2500 epochs. The reason is the parameterisation:
# Adam's update is about the learning rate per step *whatever the gradient's size*, so raw
# concentrations starting at 1 need about $(\alpha^* - 1)/\mathrm{lr}$ steps to reach a
# posterior concentration $\alpha^*$. `BetaFamily` holds $\log\alpha$ and $\log\beta$, which
# need about $\log\alpha^*/\mathrm{lr}$ steps.

# %%
flips = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])  # 5 heads in 20
k, n = int(flips.sum()), flips.size
a0, b0 = 2.0, 2.0
alpha_exact, beta_exact = a0 + k, b0 + n - k


def neg_log_likelihood(theta, rng):
    t = md.getitem(theta, 0)
    return -(k * md.log(t) + (n - k) * md.log1p(-t))


n_beta_steps, lr = size((400, 0.1), (200, 0.15))
beta_fit = inf.calibrate(neg_log_likelihood, inf.Beta(a0, b0), inf.BetaFamily(1), n_samples=10,
                         n_steps=n_beta_steps, optimizer=inf.adam(inf.cosine(lr, n_beta_steps)),
                         options=inf.RunOptions(w=1.0))
alpha_fit = math.exp(float(beta_fit.params["log_alpha"][0]))
beta_fit_value = math.exp(float(beta_fit.params["log_beta"][0]))
exact = stats.beta(alpha_exact, beta_exact)
fitted = stats.beta(alpha_fit, beta_fit_value)
print(f"{k} heads in {n}: exact posterior Beta({alpha_exact:g}, {beta_exact:g}); GVI "
      f"Beta({alpha_fit:.2f}, {beta_fit_value:.2f})")
for rate in (1e-3, lr):  # Adam moves each parameter by about the learning rate per step
    raw_steps = max(alpha_exact - 1, beta_exact - 1) / rate
    log_steps = max(math.log(alpha_exact), math.log(beta_exact)) / rate
    print(f"at lr = {rate:g}, reaching Beta({alpha_exact:g}, {beta_exact:g}) from Beta(1, 1) "
          f"takes about {raw_steps:.0f} steps on raw concentrations, {log_steps:.0f} on logs")

grid01 = np.linspace(0.005, 0.8, 400)
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(grid01, stats.beta(a0, b0).pdf(grid01), "k:", label=f"prior Beta({a0:g}, {b0:g})")
ax.plot(grid01, exact.pdf(grid01), "k-", lw=3, alpha=0.4, label="exact posterior")
ax.plot(grid01, fitted.pdf(grid01), "C3--", label=f"GVI, {n_beta_steps} steps")
ax.set_xlabel("θ (probability of heads)")
ax.set_ylabel("density (per unit θ)")
ax.set_title("Beta–Bernoulli: GVI with w = 1 is Bayes' rule")
ax.legend()
plt.show()

# %%
# Check: the fitted Beta's mean within 0.1 posterior sd of the exact mean and its sd within
# 10% (quick: 0.25 sd and 20%), the fluctuation of the last iterate as in section 1.
mean_tol, sd_tol = size((0.1, 0.1), (0.25, 0.2))
assert abs(fitted.mean() - exact.mean()) < mean_tol * exact.std()
assert abs(fitted.std() / exact.std() - 1) < sd_tol
print("Beta–Bernoulli: checks passed")

# %% [markdown]
# ## 3. GVI on Cont's market
#
# Cont's model (`minidiff.models.cont`): $N$ agents trade one asset on a common signal
# $\varepsilon_t \sim \mathcal N(0, \sigma^2)$; agent $i$ buys when $\varepsilon_t > \nu_i$ and
# sells when $\varepsilon_t < -\nu_i$, the return is $r_t = \sum_i \rho_i/(N\eta)$, and each
# threshold resets to $|r_t|$ with probability $s$. Initial thresholds are
# $\mathrm{LogNormal}(\mu, \sigma_\nu)$. The tutorial's setting: $N = 1000$, $T = 100$,
# $s = 0.1$, true $(\mu, \sigma_\nu, \sigma, \eta) = (1, 0.5, 1, 0.7)$, parameters on a
# $\log_{10}$ scale with prior $\mathcal N(0, I_4)$, the MMD between simulated and observed
# returns as $\ell$, $w = 0.001$, a RealNVP flow (5 couplings, hidden layers 50, 50) as $q$,
# AdamW with gradient clipping and 10 samples per step. Orders use a straight-through
# sigmoid surrogate (steepness $k = 5$) and resets a hard Gumbel-softmax, as in the tutorial.
#
# The tutorial stopped after 100 steps at a learning rate of $10^{-3}$. That run has not
# converged: $q$ is still moving, and the truth explains the data better than $q$'s mean does.
# We take 300 steps at $3 \cdot 10^{-3}$ (cosine-decayed) and then *check* convergence below,
# rather than assume it.
#
# Returns are driven by $\sigma$ and $\eta$ (the signal's size and the market's depth) more
# than by the thresholds' initial law, which the resets soon forget, so we expect $\sigma$ and
# $\eta$ to be identified and $\mu$, $\sigma_\nu$ to stay near the prior.

# %%
TRUE_CONT = np.log10([1.0, 0.5, 1.0, 0.7])
NAMES = ["log₁₀ μ", "log₁₀ σ_ν", "log₁₀ σ", "log₁₀ η"]
N_CONT, T_CONT = size((1000, 100), (300, 50))
DATA_SEED = 0  # the market the data come from (bench/notebook4_seeds.py reruns 0-9)
W_CONT = 0.001


def simulate_cont(theta, rng):
    return cont.simulate(md.power(10.0, theta), n_timesteps=T_CONT, n_agents=N_CONT, rng=rng,
                         s=0.1, k=5.0)


observed_cont = host(simulate_cont(md.asarray(TRUE_CONT), default_rng(DATA_SEED)))
mmd = inf.mmd(observed_cont)


def cont_loss(theta, rng):
    return mmd(simulate_cont(theta, rng))


n_cont_steps = size(300, 25)
cont_lr = size(3e-3, 5e-3)
cont_prior = inf.Normal(md.zeros((4,)), 1.0)
cont_family = inf.RealNVP(4, n_layers=5, hidden=(50, 50))
# θ far in the prior's tails overflows the model (μ = 10^θ₀ enters as exp(μ)): NumPy's own
# overflow warnings are silenced; calibrate drops those samples and says how many.
with warnings.catch_warnings(record=True) as caught, \
        np.errstate(over="ignore", invalid="ignore"):
    warnings.simplefilter("always", RuntimeWarning)
    cont_fit = inf.calibrate(cont_loss, cont_prior, cont_family, n_samples=10,
                             n_steps=n_cont_steps,
                             optimizer=inf.chain(inf.clip_by_global_norm(1.0),
                                                 inf.adamw(inf.cosine(cont_lr, n_cont_steps))),
                             options=inf.RunOptions(w=W_CONT, on_nan="skip"))
samples = host(cont_fit.sample(size(20_000, 4_000), seed=1))
history = cont_fit.history
reports = [str(w.message) for w in caught if str(w.message).startswith("calibrate")]
print(f"{n_cont_steps} steps; samples dropped as non-finite: {history.n_dropped} of "
      f"{10 * n_cont_steps}; calibrate's warning: {reports}")
for j, name in enumerate(NAMES):
    m, s = samples[:, j].mean(), samples[:, j].std()
    print(f"{name:>10}: truth {TRUE_CONT[j]:+.3f}, q mean {m:+.3f}, sd {s:.3f}, "
          f"z {(m - TRUE_CONT[j]) / s:+.2f}")
print(f"corr(σ, η) under q: {np.corrcoef(samples[:, 2], samples[:, 3])[0, 1]:.2f}")

# %%
prior_samples = host(default_rng(5).normal(0.0, 1.0, size=(4_000, 4)))
fig, axes = plt.subplots(4, 4, figsize=(10, 10))
for i in range(4):
    for j in range(4):
        ax = axes[i, j]
        if i == j:
            bins = np.linspace(-3, 3, 60)
            ax.hist(prior_samples[:, i], bins=bins, density=True, color="grey", alpha=0.4,
                    label="prior")
            ax.hist(samples[:, i], bins=bins, density=True, color="C0", alpha=0.7, label="q")
            ax.axvline(TRUE_CONT[i], color="C3")
            ax.set_ylabel("density (per log₁₀ unit)")
        elif i > j:
            ax.scatter(samples[:2000, j], samples[:2000, i], s=1, alpha=0.3)
            ax.plot(TRUE_CONT[j], TRUE_CONT[i], "r*", ms=10)
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_ylabel(NAMES[i] + " (log₁₀ units)")
        else:
            ax.axis("off")
        if i == 3:
            ax.set_xlabel(NAMES[j] + " (log₁₀ units)")
axes[0, 0].legend(fontsize="small")
fig.suptitle("GVI on Cont: q (blue) against the prior (grey); truth in red")
fig.tight_layout()
save(fig, "04-cont-corner")
plt.show()

# %% [markdown]
# ### The fit, and has it converged?
#
# The left panels compare the data with a market simulated at $q$'s mean: the MMD compares the
# *distribution* of the returns (their order does not enter), so the histograms are what the
# loss sees. The right panel is the run's loss history: the estimates at each step of
# $\mathbb E_q[\ell]$, of $w\,\mathrm{KL}(q\|\pi)$ and of their sum $L$.
#
# We judge convergence by two signs, computed next.
#
# * **The trend of $L$ over the last quarter of the steps**: the slope of a least-squares line
#   through the per-step estimates, against its standard error (from the line's residuals).
# * **Stationarity under a shift.** If $q$ minimises $L$, moving it by a vector $\delta$ cannot
#   lower $L$. A shift leaves $q$'s entropy unchanged, so
#   $\partial L/\partial\delta = \mathbb E_q[\nabla\ell(\theta)] - w\,\mathbb E_q[\nabla\log
#   \pi(\theta)] = \mathbb E_q[\nabla\ell(\theta) + w\,\theta]$ for $\pi = \mathcal N(0, I)$.
#   We estimate it from $M$ draws of $q$, each with its own $\nabla\ell$ (reverse mode, with the
#   simulator's smoothed derivatives: the ones the optimiser follows). A flow of affine
#   couplings shifts its output through its biases, so at a minimum within the family this
#   derivative is zero up to its Monte Carlo error. To see what a non-zero one looks like we
#   also evaluate it with every draw moved by 3 of $q$'s sds in $\log_{10}\eta$.

# %%
def shift_gradient(params, n_draws, seed, offset=0.0):
    """E_q[∇ℓ(θ) + w θ] over draws θ of q moved by ``offset``: the derivative of L along a
    shift of q (at the shifted q); its standard error; how many draws overflowed (as in
    calibrate, those are dropped and counted)."""
    theta = host(cont_family.sample(params, n_draws, default_rng(seed))[0]) + offset
    per_draw = np.stack([host(md.grad(cont_loss)(md.asarray(t), default_rng(seed + 1 + i)))
                         for i, t in enumerate(theta)]) + W_CONT * theta
    finite = np.all(np.isfinite(per_draw), axis=1)
    per_draw = per_draw[finite]
    return (per_draw.mean(axis=0), per_draw.std(axis=0, ddof=1) / math.sqrt(finite.sum()),
            int((~finite).sum()))


M_SHIFT = size(40, 8)
with np.errstate(over="ignore", invalid="ignore"):
    g_end, g_end_se, overflow_end = shift_gradient(cont_fit.params, M_SHIFT, 3000)
    moved = np.array([0.0, 0.0, 0.0, 3 * samples[:, 3].std()])
    g_moved, g_moved_se, overflow_moved = shift_gradient(cont_fit.params, M_SHIFT, 3000, moved)
tail = np.arange(n_cont_steps - n_cont_steps // 4, n_cont_steps)
total_tail = np.asarray(history.total)[tail]
slope, intercept = np.polyfit(tail, total_tail, 1)
residual = total_tail - (slope * tail + intercept)
slope_se = residual.std(ddof=2) / math.sqrt(((tail - tail.mean()) ** 2).sum())
print(f"trend of L over the last {tail.size} steps: {slope:+.2e} ± {slope_se:.1e} per step "
      f"(z {slope / slope_se:+.2f}); L's mean there {total_tail.mean():.2e}")
print(f"∂L/∂δ from {M_SHIFT} draws of q (overflowed and dropped: {overflow_end}, and "
      f"{overflow_moved} with q moved by {moved[3]:.3f} in log₁₀ η)")
for j, name in enumerate(NAMES):
    print(f"∂L/∂δ in {name:>10}: {g_end[j]:+.2e} ± {g_end_se[j]:.1e} (z "
          f"{g_end[j] / g_end_se[j]:+.2f}); q moved: {g_moved[j]:+.2e} ± {g_moved_se[j]:.1e} "
          f"(z {g_moved[j] / g_moved_se[j]:+.2f})")

sim_at_q = host(simulate_cont(md.asarray(samples.mean(axis=0)), default_rng(1)))
fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4))
ax0.plot(observed_cont, color="k", lw=1, label="data (the truth, one market)")
ax0.plot(sim_at_q, color="C0", lw=1, alpha=0.8, label="simulated at q's mean")
ax0.set_xlabel("time step t")
ax0.set_ylabel("return r_t (log-price change)")
ax0.set_title(f"Cont returns, N = {N_CONT}, T = {T_CONT}")
ax0.legend(fontsize="small")
bins = np.linspace(min(observed_cont.min(), sim_at_q.min()),
                   max(observed_cont.max(), sim_at_q.max()), 25)
ax1.hist(observed_cont, bins=bins, density=True, color="k", alpha=0.4, label="data")
ax1.hist(sim_at_q, bins=bins, histtype="step", density=True, color="C0", lw=2,
         label="simulated at q's mean")
ax1.set_xlabel("return r_t (log-price change)")
ax1.set_ylabel("density (per unit return)")
ax1.set_title("what the MMD compares: the returns' distribution")
ax1.legend(fontsize="small")
window = 10
for name, values, color in (("L = E_q[ℓ] + w·KL", history.total, "k"),
                            ("E_q[ℓ] (MMD²)", history.loss, "C0"),
                            ("w·KL(q‖π)", W_CONT * np.asarray(history.kl), "C1")):
    values = np.asarray(values)
    ax2.plot(values, color=color, alpha=0.25, lw=0.8)
    ax2.plot(np.arange(window - 1, values.size),
             np.convolve(values, np.ones(window) / window, mode="valid"), color=color,
             label=f"{name} ({window}-step running mean)")
# the per-step MMD² estimate is unbiased, so it can be negative near the optimum: a symmetric
# log scale (linear within ± linthresh) shows it where a log scale would drop it
linthresh = float(np.median(np.abs(history.total))) / 10
ax2.set_yscale("symlog", linthresh=linthresh)
ax2.axhline(0.0, color="grey", lw=0.5)
ax2.set_xlabel("step")
ax2.set_ylabel(f"estimate (MMD² units; symlog, linear within ±{linthresh:.1g})")
ax2.set_title("loss history (faint: per step)")
ax2.legend(fontsize="small")
fig.tight_layout()
save(fig, "04-cont-fit")
plt.show()

# %%
# Check: converged. The trend of L over the last quarter is within 4 of its standard errors
# of zero, and the derivative along a shift of q is within 4 standard errors of zero in every
# parameter (both are Monte Carlo tolerances: a one-in-15,000 chance each of failing at an
# exact stationary point). The derivative at the moved q is printed, not asserted: it shows
# the size of a derivative that is not zero. (At the start of the run, q is about the prior,
# whose draws mostly land where ℓ is flat, and this derivative is not distinguishable from
# zero there either: stationarity alone cannot tell a flat start from a minimum, which is why
# the loss comparison below is also required.) Quick mode (25 steps) does not converge: it
# prints these numbers and asserts only that the estimates are finite.
if not QUICK:
    assert abs(slope) < 4 * slope_se, (slope, slope_se)
    assert np.all(np.abs(g_end) < 4 * g_end_se), (g_end, g_end_se)
assert np.all(np.isfinite(g_end)) and np.all(np.isfinite(g_end_se))
print("Cont convergence: checks passed")

# %% [markdown]
# ### Does $q$ explain the data as well as the truth?
#
# The data are one noisy market, so the best fit need not be the truth, but a fit that has
# converged must explain the data at least as well as the truth does. We compare the expected
# loss at $q$'s mean and at the truth on $M$ common seeds: both markets of seed $i$ see the
# same draws, so the simulation noise largely cancels in their difference.

# %%
M_CRN = size(40, 10)
q_mean = samples.mean(axis=0)
with np.errstate(over="ignore", invalid="ignore"):
    crn = np.array([float(cont_loss(md.asarray(q_mean), default_rng(4000 + i)))
                    - float(cont_loss(md.asarray(TRUE_CONT), default_rng(4000 + i)))
                    for i in range(M_CRN)])
crn_mean, crn_se = crn.mean(), crn.std(ddof=1) / math.sqrt(M_CRN)
print(f"E[ℓ] at q's mean minus at the truth: {crn_mean:+.2e} ± {crn_se:.1e} "
      f"(z {crn_mean / crn_se:+.2f}; negative: q's mean explains the data better)")

# %%
# Check. q's mean explains the data at least as well as the truth: the paired difference of
# the expected losses is below 4 of its standard errors (one-sided, a 3e-5 chance of failing
# if the two explained the data equally well). σ and η are identified: q's sd in each is
# under 0.5 (the prior's is 1) and the truth lies within 3 of q's sds of q's mean (q is a fit
# to one noisy data set, not a sampler of the truth). μ and σ_ν stay prior-like: q's sd above
# 0.5. These bands were stated before the convergence runs and are unchanged;
# bench/notebook4_seeds.py runs this section for data seeds 0-9 and reports how many pass.
# Quick mode (300 agents, 50 steps of the market, 25 GVI steps at a larger learning rate)
# asserts only that q has moved from its start in σ and η and that every sample was finite or
# reported.
sds = samples.std(axis=0)
means = samples.mean(axis=0)
if not QUICK:
    assert crn_mean < 4 * crn_se, (crn_mean, crn_se)
    for j in (2, 3):
        assert sds[j] < 0.5 and abs(means[j] - TRUE_CONT[j]) < 3 * sds[j], (NAMES[j], means, sds)
    for j in (0, 1):
        assert sds[j] > 0.5, (NAMES[j], sds)
else:
    assert min(sds[2], sds[3]) < max(sds[0], sds[1])
assert len(history.total) == n_cont_steps
assert (history.n_dropped > 0) == any(str(history.n_dropped) in r for r in reports)
print("GVI on Cont: checks passed")

# %% [markdown]
# ## 4. Point estimation by minimum MMD
#
# Without the KL term and with $q$ a point mass, GVI is gradient descent on the expected loss:
# $\hat\theta = \arg\min_\theta \mathbb E[\mathrm{MMD}^2(x(\theta), y)]$. We start at
# $\sigma = \eta = 2$ (the truth is 1 and 0.7) and run Adam on the $\log_{10}$ parameters of
# $(\sigma, \eta)$, with $\mu$ and $\sigma_\nu$ held at the truth, drawing fresh noise each step.

# %%
def point_loss(log_sigma_eta, rng):
    theta = md.concatenate([md.asarray(TRUE_CONT[:2]), log_sigma_eta])
    return cont_loss(theta, rng)


def adam(fun, x0, n_steps, lr, b1=0.9, b2=0.999, eps=1e-8):
    x, m, v = np.array(x0, dtype=float), 0.0, 0.0
    path = [x.copy()]
    for step in range(n_steps):
        g = host(md.grad(fun)(md.asarray(x), default_rng(1000 + step)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** (step + 1))) / (np.sqrt(v / (1 - b2 ** (step + 1))) + eps)
        path.append(x.copy())
    return np.array(path)


n_point_steps, point_lr = size((300, 0.01), (150, 0.03))
path = adam(point_loss, np.log10([2.0, 2.0]), n_point_steps, lr=point_lr)
estimate = 10 ** path[-n_point_steps // 4:].mean(axis=0)
print(f"σ̂ = {estimate[0]:.3f} (true 1.0), η̂ = {estimate[1]:.3f} (true 0.7), "
      f"σ̂/η̂ = {estimate[0] / estimate[1]:.3f} (true {1 / 0.7:.3f})")

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(10 ** path[:, 0], label="σ")
ax.plot(10 ** path[:, 1], label="η")
ax.axhline(1.0, color="C0", ls="--", label="σ (true)")
ax.axhline(0.7, color="C1", ls="--", label="η (true)")
ax.set_xlabel("step")
ax.set_ylabel("parameter value (model units)")
ax.set_title("minimum-MMD point estimate by Adam")
ax.legend()
plt.show()

# %%
# Check. The data are one simulated market, so the estimate spreads across data sets. The
# bands are 4 times that spread, measured by bench/notebook4_seeds.py over data seeds 0-7
# (full run; relative errors' sd across seeds: σ/η 0.130, σ 0.213, η 0.094), so 52% on σ/η,
# 85% on σ and 38% on η. A run that failed stays at the start, 2 and 2 (η 186% high: outside
# its band). Quick mode (a market of 300 agents and 50 steps, 150 steps of Adam at 3x the
# learning rate) keeps 25% on σ/η and 50% on each, not measured across seeds.
ratio_tol, sigma_tol, eta_tol = size((0.52, 0.85, 0.38), (0.25, 0.5, 0.5))
assert abs(estimate[0] / estimate[1] * 0.7 - 1) < ratio_tol
assert abs(estimate[0] - 1.0) < sigma_tol and abs(estimate[1] / 0.7 - 1) < eta_tol
print("minimum MMD: checks passed")

# %% [markdown]
# ## 5. Ours: mixed-mode memory against reverse mode
#
# A GVI step differentiates $n$ simulations. In *mixed mode* each simulation's Jacobian
# $\partial x/\partial\theta$ comes by forward mode (4 tangents, nothing kept) and only the
# map $\phi \mapsto \theta$ and the loss are taped; in reverse mode every simulation's tape
# (every agent, every step) is kept until the backward pass. We measure one step's peak memory
# (tracemalloc, 2 samples per step) as $T$ grows, for two numbers of agents $N$, after one
# unmeasured step per mode and $N$ (whose first call traces and compiles the model's scan). The MMD
# compares $T$ returns through $T \times T$ kernel matrices, so both modes grow with $T$
# through the loss; only reverse mode grows with $N$ as well. (A calibration step runs its
# samples as one batched simulation by default, which holds every sample's tangents at once;
# here they run one after another, `objective.batched = False`, so that each mode's memory
# per simulation shows.)

# %%
memory_steps = size([50, 100, 200, 400], [50, 100, 200])
memory_agents = size([200, 2000], [100, 1000])
flow = inf.RealNVP(4, n_layers=5, hidden=(50, 50))
flow_params = flow.init(0)
peaks = {(mode, n_agents): [] for mode in ("forward", "reverse") for n_agents in memory_agents}
for (mode, n_agents), row in peaks.items():
    for t_steps in memory_steps:
        observed_t = cont.simulate(10 ** TRUE_CONT, n_timesteps=t_steps, n_agents=n_agents,
                                   rng=0, s=0.1, k=5.0)
        mmd_t = inf.mmd(observed_t)

        def loss_t(theta, rng, t_steps=t_steps, mmd_t=mmd_t, n_agents=n_agents):
            return mmd_t(cont.simulate(md.power(10.0, theta), n_timesteps=t_steps,
                                       n_agents=n_agents, rng=rng, s=0.1, k=5.0))

        objective = inf.Objective(loss_t, inf.Normal(md.zeros((4,)), 1.0), flow, w=0.001,
                                  n_samples=2, mode=mode, seed=0, on_nan="skip")
        objective.batched = False  # one simulation at a time: each mode's own memory
        if not row:  # the first step at this N traces and compiles the model's scan: not measured
            objective.estimate(flow_params, 0)
        row.append(measure(objective.estimate, flow_params, 0).peak_bytes)

fig, ax = plt.subplots(figsize=(7, 4.5))
for (mode, n_agents), row in peaks.items():
    label = "mixed mode" if mode == "forward" else "reverse mode"
    ax.loglog(memory_steps, np.array(row) / 2**20, "o-" if mode == "forward" else "s--",
              color="C0" if mode == "forward" else "C3",
              alpha=0.5 if n_agents == memory_agents[0] else 1.0,
              label=f"{label}, N = {n_agents}")
ax.set_xlabel("time steps T")
ax.set_ylabel("peak memory of one GVI step (MiB)")
ax.set_title("Cont, 2 samples per step: mixed mode does not grow with N")
ax.legend(fontsize="small")
save(fig, "04-memory")
plt.show()
small, large = memory_agents
for t_steps, *values in zip(memory_steps, *(np.array(r) / 2**20 for r in peaks.values())):
    cells = ", ".join(f"{m} N={n}: {v:.2f}" for (m, n), v in zip(peaks, values))
    print(f"T = {t_steps}: {cells} MiB")

# %%
# Check (deterministic, as in notebook 1). Mixed mode's peak is the same for both N, to 10%
# (it holds the loss's T×T matrices, not the agents); what reverse mode adds on top of it,
# the simulations' tapes, grows with N: at the largest T more than twice as large for the
# larger N, and reverse mode's peak is then more than twice mixed mode's (the model's time
# loop is a scan, whose reverse pass keeps each step's residuals in a few stacked arrays).
for a, b in zip(peaks["forward", small], peaks["forward", large]):
    assert abs(b / a - 1) < 0.1
extra = {n: peaks["reverse", n][-1] - peaks["forward", n][-1] for n in memory_agents}
assert extra[large] > 2 * extra[small]
assert peaks["reverse", large][-1] > 2 * peaks["forward", large][-1]
print("mixed-mode memory: checks passed")

# %% [markdown]
# ## 6. The deliberate fixes
#
# **The entropy gradient.** $\mathrm{KL}(q\|\pi) = \mathbb E_q[\log q] - \mathbb E_q[\log\pi]$,
# and the first term, minus the entropy of $q$, has a gradient through $\log q$'s parameters
# as well as through the samples. An implementation that drops it (blackbirds' Gaussian family
# did) is left with $-\mathbb E_q[\log\pi]$ alone, which a point mass at the prior's mode
# minimises: $q$'s scale collapses. With $\ell = 0$ the right answer is $q = \pi$. minidiff's
# Gaussian family against a Gaussian prior uses the closed-form KL; we force the Monte Carlo
# KL (`kl="mc"`, 10 draws of $\log q - \log\pi$ per step) so the entropy's gradient has to
# come through the estimator.

# %%
zero_loss = lambda theta, rng: 0.0 * md.sum(theta)  # noqa: E731
n_entropy_steps = size(600, 200)
entropy_fit = inf.calibrate(zero_loss, inf.Normal(1.0, 2.0), inf.DiagonalGaussian(1), n_samples=10,
                            n_steps=n_entropy_steps,
                            optimizer=inf.adam(inf.cosine(0.05, n_entropy_steps)),
                            options=inf.RunOptions(w=1.0, kl="mc", kl_samples=10))
loc = float(entropy_fit.params["loc"][0])
scale = math.exp(float(entropy_fit.params["log_scale"][0]))
print(f"ℓ = 0, prior N(1, 2²): q = N({loc:.3f}, {scale:.3f}²)")

# %%
# Check: q ≈ π: the mean within 0.1 prior sd and the scale within 10% (quick: 0.25 and 20%),
# the last iterate's fluctuation as in section 1. A lost entropy gradient would drive the
# scale toward 0.
mean_tol, sd_tol = size((0.1, 0.1), (0.25, 0.2))
assert abs(loc - 1.0) < mean_tol * 2.0 and abs(scale / 2.0 - 1) < sd_tol
print("entropy gradient: checks passed")

# %% [markdown]
# **Non-finite samples are reported, not dropped.** A simulator can overflow for $\theta$ far
# in the prior's tails (in Cont, $\mu = 10^{\theta_0}$ enters as $e^\mu$). Silently dropping
# those samples biases the gradient toward the region where the model works. By default
# `calibrate` stops with an error that names the step and the sample; with
# `options=inf.RunOptions(on_nan="skip")` it drops them, counts them in `history.dropped`, and
# warns at the end.

# %%
def fragile_loss(theta, rng):
    x = md.getitem(theta, 0)
    return md.where(x > 1.5, md.asarray(float("nan")), (x - 0.5) ** 2)


try:
    inf.calibrate(fragile_loss, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=50,
                  optimizer=inf.adam(0.05))
    raised = None
except inf.NonFiniteError as error:
    raised = error
print("on_nan='raise':", raised)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", RuntimeWarning)
    skipped = inf.calibrate(fragile_loss, inf.Normal(0.0, 1.0), inf.DiagonalGaussian(1), n_steps=50,
                            optimizer=inf.adam(0.05), options=inf.RunOptions(on_nan="skip"))
print("on_nan='skip':", [str(w.message) for w in caught])
print(f"samples dropped: {skipped.history.n_dropped} of {10 * 50}")

# %%
# Check (exact): the error names a step and a sample; skipping counts every dropped sample
# and says so in a warning.
assert raised is not None and raised.step is not None and raised.sample is not None
assert skipped.history.n_dropped > 0
assert any(str(skipped.history.n_dropped) in str(w.message) for w in caught)
print("non-finite samples: checks passed")

# %%
# Key numbers: computed alike in the quick and the full run (no sample sizes enter them), so
# tests/test_tutorials.py can check that the outputs stored in the .ipynb come from the
# current code: it compares this line from a fresh quick run with the stored one.
key_numbers = {
    "random walk: best Gaussian (quadrature)": [best_mean, best_sd],
    "random walk: first step's L, per estimator": [h.total[0] for *_, h in walk_fits.values()],
    "Beta-Bernoulli: first step's L": beta_fit.history.total[0],
    "Cont: returns of a 50-agent, 10-step market": host(cont.simulate(
        10 ** TRUE_CONT, n_timesteps=10, n_agents=50, rng=0, s=0.1, k=5.0)).tolist(),
    "entropy: first step's L": entropy_fit.history.total[0],
    "on_nan: the raising step and sample, dropped samples": [raised.step, raised.sample,
                                                             skipped.history.n_dropped],
}
print("key numbers:", json.dumps(key_numbers))


# %% [markdown]
# ## Summary
#
# * GVI with a simulator-based loss fits the generalised posterior: on the random walk, the
#   unbiased gradients (stochastic triples, the score function) land on the Gaussian that
#   quadrature finds; the smoothed estimator is cheaper and biased.
# * With the negative log-likelihood and $w = 1$ it is Bayes' rule: the Beta family finds the
#   exact posterior, quickly once the concentrations live on a log scale.
# * On Cont's market, trained until the objective stops moving and the derivative along a
#   shift of $q$ vanishes, $\sigma$ and $\eta$ are identified and $\mu$, $\sigma_\nu$ are not,
#   and $q$'s mean explains the data as well as the truth; a minimum-MMD point estimate
#   recovers $\sigma$ and $\eta$.
# * Mixed mode keeps GVI's memory flat in the number of agents $N$: the simulations' Jacobians
#   come by forward mode and nothing of them is kept. It still grows with the length $T$ of the
#   simulation, through the MMD's $T \times T$ kernel matrices (its figure shows it); reverse
#   mode grows with both.
