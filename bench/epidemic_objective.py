"""Why GVI on the SIR model's single-run loss misses weekly epidemics, and what the ensemble
(synthetic-likelihood) loss changes, measured on the objective itself, apart from the optimiser.

Seasons as in ``bench/epidemic_fit.py``: 20 weekly points simulated by the weekly chain in a
population of 20 000 with 5% log-normal reporting noise; the model fitted runs 1000 agents.
For speed the model's runs here come from a NumPy transcription of the same chain (binomial
counts of new infections and recoveries per week, the law of ``sir.simulate`` with dt = 7),
and the statistics and standard errors are ``sir``'s.

1. **Bias and variance.** The single-run loss ℓ = ¼ Σ_j ((m_j(x) − m_j(y))/se_j)² has
   expectation over the simulator's noise E ℓ = ¼ Σ_j [(E m_j − m_j(y))² + Var m_j]/se_j²: a
   bias² part and a variance part, printed at the truth.
2. **The exact posteriors.** Self-normalised importance sampling from the prior (M draws):
   weights exp(−ℓ) for the single-run loss at w = 1, exp(−SL) for the synthetic likelihood of
   m = 8 runs per draw. Printed: the effective sample size, the per-step reproduction number's
   5/50/95% posterior quantiles, and the peak week and attack rate of the mean of 20 runs at
   the posterior mean. A posterior that reproduces them shows the objective is right; what
   GVI then makes of it is ``bench/epidemic_fit.py``'s question.

Run: ``python bench/epidemic_objective.py`` (under a minute on two cores).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from typing import Any

import numpy as np
from _common import print_header

import minidiff as md
from minidiff.models import sir
from minidiff.models._scales import noise_sd

SEASONS = [(1.1, 0.3, 0.01, 1), (1.15, 0.3, 0.004, 3), (1.3, 0.3, 0.01, 8),
           (1.5, 0.3, 0.005, 7)]  # (R per step, γ per day, i₀, seed)
PRIOR_LOC = np.array([math.log(0.25), math.log(0.125), math.log(0.02 / 0.98)])
PRIOR_SCALE = np.array([0.75, 0.75, 1.0])  # sir.prior()


def season(r: float, gamma: float, i0: float, seed: int) -> tuple[np.ndarray, list[float]]:
    beta = r * -math.expm1(-7 * gamma) / 7
    y = np.asarray(sir.simulate(md.asarray([beta, gamma, i0]), rng=seed, n_timesteps=20,
                                n_agents=20_000, dt=7.0))
    return y * np.random.default_rng(seed).lognormal(0.0, 0.05, size=y.shape), [beta, gamma, i0]


def chain(beta: np.ndarray, gamma: np.ndarray, i0: np.ndarray, m: int,
          rng: np.random.Generator, n_agents: int = 1000) -> np.ndarray:
    """m runs at each of the n parameter sets, shape (n, m, 20, 2)."""
    n = beta.size
    b, g, p0 = (np.repeat(np.asarray(v, dtype=float), m) for v in (beta, gamma, i0))
    infected = rng.binomial(n_agents, p0).astype(np.int64)
    susceptible = n_agents - infected
    p_rec = -np.expm1(-7.0 * g)
    out = np.zeros((n * m, 20, 2))
    for t in range(20):
        new_inf = rng.binomial(susceptible, -np.expm1(-7.0 * b * infected / n_agents))
        new_rec = rng.binomial(infected, p_rec)
        susceptible = susceptible - new_inf
        infected = infected + new_inf - new_rec
        out[:, t] = np.stack([new_inf, new_rec], -1) / n_agents
    return out.reshape(n, m, 20, 2)


def statistics(y: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """sir's six statistics of (..., 20, 2) series, with the loss's pseudo-mass."""
    return np.asarray(sir.summary_statistics(md.asarray(y.reshape(-1, 20, 2)),
                                             md.asarray(pseudo))).reshape(*y.shape[:-2], 6)


def reproduction(beta: Any, gamma: Any) -> Any:
    return 7 * beta / -np.expm1(-7 * np.asarray(gamma))


def mean_run(params: list[float]) -> tuple[int, float]:
    runs = np.mean([np.asarray(sir.simulate(md.asarray(params), rng=s, n_timesteps=20,
                                            dt=7.0)) for s in range(20)], axis=0)
    return int(runs[:, 0].argmax()), float(runs[:, 0].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=200_000, help="prior draws (M)")
    parser.add_argument("--runs", type=int, default=200, help="runs for the decomposition")
    args = parser.parse_args()
    print_header("")
    print("command: python bench/epidemic_objective.py " + " ".join(map(shlex.quote,
                                                                       sys.argv[1:])))
    rng = np.random.default_rng(0)
    for r, gamma, i0, seed in SEASONS:
        y, truth = season(r, gamma, i0, seed)
        se = np.asarray(sir._standard_errors(md.asarray(y)))
        eps = np.asarray(noise_sd(md.asarray(y)))
        target = statistics(y, eps)
        print(f"\nseason R = {r}, γ = {gamma}, i0 = {i0}: peak week {int(y[:, 0].argmax())}, "
              f"attack {y[:, 0].sum():.3f}")
        stats = statistics(chain(*(np.array([v]) for v in truth), args.runs, rng), eps)[0]
        bias2 = (((stats.mean(0) - target) / se) ** 2).sum() / 4
        variance = (stats.var(0) / se ** 2).sum() / 4
        print(f"  single-run loss at the truth: E ℓ = {bias2 + variance:.4g} = bias² "
              f"{bias2:.4g} + variance {variance:.4g}")
        x = PRIOR_LOC + PRIOR_SCALE * rng.standard_normal((args.draws, 3))
        beta, gam, p0 = np.exp(x[:, 0]), np.exp(x[:, 1]), 1 / (1 + np.exp(-x[:, 2]))
        stats = statistics(chain(beta, gam, p0, 8, rng), eps)
        v = (1 + 1 / 8) * stats.var(1, ddof=1) + se ** 2
        synthetic = 0.5 * (((stats.mean(1) - target) ** 2 / v) + np.log(v)).sum(-1)
        single = (((stats[:, 0] - target) / se) ** 2).sum(-1) / 4
        for name, nll in (("single run, w = 1", single), ("synthetic, 8 runs", synthetic)):
            w = np.exp(-(nll - nll.min()))
            w /= w.sum()
            rr = reproduction(beta, gam)
            order = np.argsort(rr)
            cdf = np.cumsum(w[order])
            q = rr[order][np.minimum(np.searchsorted(cdf, [0.05, 0.5, 0.95]), len(rr) - 1)]
            centre = [float((w * beta).sum()), float((w * gam).sum()), float((w * p0).sum())]
            peak, attack = mean_run(centre)
            print(f"  {name:<18} ESS {1 / np.sum(w ** 2):7.1f}  R 5/50/95% "
                  f"{q[0]:.2f} {q[1]:.2f} {q[2]:.2f}  at the posterior mean "
                  f"{np.round(centre, 4).tolist()}: peak week {peak}, attack {attack:.3f}")


if __name__ == "__main__":
    main()
