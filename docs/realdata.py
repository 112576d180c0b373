"""Cont's model on real S&P 500 returns: the stylised facts of the posterior predictive.

    python docs/realdata.py                      # writes docs/realdata.png, prints the table
    python docs/realdata.py --timesteps 250 --agents 300 --steps 20 --out /tmp/quick.png

Runs what ``minidiff calibrate --model cont --data sp500 --timesteps T --agents N`` runs (the
problem from the command's own ``build_problem``; its defaults for Cont: the MMD between the
returns, w, samples per step, Adam with a cosine decay, a diagonal Gaussian q started at the
prior), then simulates ``--predictive`` series at draws of q (the posterior predictive) and at
draws of the prior (the prior predictive) and compares their stylised facts
(``minidiff.models.stylised_facts``: excess kurtosis, the autocorrelation of |r| at lags 1–10
and of r at lag 1) with those of the data. Needs the ``data`` and ``plot`` extras (arch,
matplotlib).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

import minidiff as md
from minidiff import inference as inf
from minidiff.cli.calibrate import configure_parser
from minidiff.cli.calibrate_setup import build_problem, load_model
from minidiff.distributions import as_vector
from minidiff.models.stylised_facts import FACTS, N_LAGS, stylised_facts
from minidiff.random import default_rng

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parent


def facts_of(problem, natural_draws, seed: int) -> np.ndarray:
    """The stylised facts of one simulated series per row of natural parameters."""
    out = []
    for k in range(natural_draws.shape[0]):
        series = problem.simulate(md.getitem(natural_draws, k),
                                  default_rng(seed).stream(("predictive", k)))
        out.append(np.asarray(md.get_backend().to_host(stylised_facts(series))))
    return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=500)
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--steps", type=int, help="GVI steps (default: the command's)")
    parser.add_argument("--predictive", type=int, default=40, help="series per predictive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DOCS / "realdata.png")
    options = parser.parse_args()

    cli = argparse.ArgumentParser()
    configure_parser(cli)
    argv = ["--model", "cont", "--data", "sp500", "--timesteps", str(options.timesteps),
            "--agents", str(options.agents), "--seed", str(options.seed)]
    args = cli.parse_args(argv)
    model = load_model("cont")
    setup = model.calibration
    args.loss = args.loss or setup.loss
    steps = options.steps or setup.steps
    problem = build_problem(model, args)
    prior = problem.prior
    loc, scale = prior.mean, prior.std
    print(f"command: {shlex.join(['python', 'docs/realdata.py', *sys.argv[1:]])}")
    print(f"the fit: minidiff calibrate {shlex.join(argv)} --steps {steps} (loss "
          f"{args.loss}, w = {setup.w:g}, {setup.samples} samples per step, lr {setup.lr:g})")
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        result = inf.calibrate(problem.loss, prior, inf.DiagonalGaussian(4, loc=loc, scale=scale),
                               n_samples=setup.samples, n_steps=steps,
                               optimizer=inf.adam(inf.cosine(setup.lr, steps)), seed=options.seed,
                               options=inf.RunOptions(w=setup.w, mode=setup.mode, on_nan="skip",
                                                      progress=False))
    print(f"{steps} steps in {time.perf_counter() - start:.0f} s; {result.nan_summary()}")
    q = problem.natural(result.sample(options.predictive, seed=options.seed + 1))
    p = problem.natural(as_vector(prior).sample(default_rng(options.seed + 2),
                                                options.predictive))
    host = md.get_backend().to_host
    for j, name in enumerate(model.param_names):
        column = np.asarray(host(md.getitem(q, (slice(None), j))))
        print(f"  {name:>9}: posterior median {np.median(column):.4g}, 90% interval "
              f"[{np.quantile(column, 0.05):.4g}, {np.quantile(column, 0.95):.4g}]")
    with np.errstate(all="ignore"):
        data = np.asarray(host(stylised_facts(problem.observed)))
        post = facts_of(problem, q, options.seed + 3)
        pre = facts_of(problem, p, options.seed + 4)

    def band(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.nanquantile(x, v, axis=0) for v in (0.5, 0.05, 0.95))

    print("\n| fact | S&P 500 | posterior predictive: median [5%, 95%] | prior predictive: "
          "median [5%, 95%] |\n| --- | --- | --- | --- |")
    (pm, plo, phi), (rm, rlo, rhi) = band(post), band(pre)
    for k, name in enumerate(FACTS):
        cell = name.replace("|", "\\|")  # a bar inside a markdown table cell is escaped
        print(f"| {cell} | {data[k]:.3f} | {pm[k]:.3f} [{plo[k]:.3f}, {phi[k]:.3f}] | "
              f"{rm[k]:.3f} [{rlo[k]:.3f}, {rhi[k]:.3f}] |")

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8),
                                   gridspec_kw={"width_ratios": [3, 1.3]})
    lags = np.arange(1, N_LAGS + 1)
    acf = slice(1, N_LAGS + 1)
    ax0.fill_between(lags, rlo[acf], rhi[acf], color="grey", alpha=0.25,
                     label="prior predictive, 90%")
    ax0.fill_between(lags, plo[acf], phi[acf], color="C0", alpha=0.35,
                     label="posterior predictive, 90%")
    ax0.plot(lags, pm[acf], "C0-", label="posterior predictive, median")
    ax0.plot(lags, data[acf], "k-o", ms=4, label="S&P 500 |r|")
    ax0.errorbar([0.4], [pm[-1]], yerr=[[pm[-1] - plo[-1]], [phi[-1] - pm[-1]]], fmt="s",
                 color="C0", capsize=3)
    ax0.plot([0.4], [data[-1]], "kD", label="S&P 500 r, lag 1")
    ax0.axhline(0.0, color="k", lw=0.5)
    ax0.set_xticks([0.4, *lags], ["r:1", *map(str, lags)])
    ax0.set_xlabel("lag (days); left: the acf of r itself at lag 1")
    ax0.set_ylabel("autocorrelation")
    ax0.legend(fontsize="small", loc="upper right")
    ax0.set_title("volatility clustering: acf of |r|")
    bins = np.linspace(-2.0, 20.0, 23)  # values beyond 20 are counted in the last bin
    for values, colour, label in ((pre[:, 0], "grey", "prior predictive"),
                                  (post[:, 0], "C0", "posterior predictive")):
        values = values[np.isfinite(values)]
        ax1.hist(np.clip(values, bins[0], bins[-1]), bins=bins, color=colour, alpha=0.5,
                 label=label)
    ax1.axvline(data[0], color="k", label="S&P 500")
    ax1.set_xlabel("excess kurtosis")
    ax1.set_title("fat tails")
    ax1.legend(fontsize="small")
    fig.suptitle(f"Cont's model fitted to the last {options.timesteps} daily S&P 500 returns "
                 f"(N = {options.agents} agents)")
    fig.tight_layout()
    fig.savefig(options.out, dpi=110)
    print(f"\nfigure written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
