"""The global first stage of ``minidiff calibrate``, measured: start q at the prior
(``--screen 0``) or at the elite of M prior-predictive draws (``--screen M``), side by side.

Tasks (``--tasks``):

* ``epidemic``: a user's wrap of ``minidiff.models.sir`` with weekly steps (dt = 7), 20 weeks,
  1000 agents, the built-in loss (six statistics over their standard errors from the data)
  and prior,
  on series simulated by the same wrap at ``--epidemics`` (β, γ, i₀) with data seed 1. It
  reports whether the posterior-mean simulation (the mean of 20 series at q's mean)
  reproduces the observed peak week (±1) and attack rate (±30%);
* ``brock_hommes``: the built-in model at parameter set 1, T = 50, the built-in moment loss;
  it reports the RMS error of the posterior mean in prior sds and how many true values lie in
  their 90% intervals.

Every run is ``minidiff calibrate`` with the defaults but ``--screen``, so each line is what a
user gets. Run: ``python bench/calibrate_start.py`` (several minutes on two cores).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from _common import print_header

import minidiff as md
from minidiff.cli import main
from minidiff.models import brock_hommes, sir

WRAP = '''from minidiff.models import sir
from minidiff.models.sir import NATURAL, PARAM_NAMES, prior, loss  # noqa: F401


def simulate(params, *, n_timesteps, n_agents=1000, rng, **kw):
    return sir.simulate(params, n_timesteps=n_timesteps, n_agents=n_agents, rng=rng, dt=7.0,
                        **kw)
'''


def weekly(theta, seed, n=1):
    runs = [md.to_host(sir.simulate(tuple(theta), n_timesteps=20, n_agents=1000, rng=seed + k,
                                    dt=7.0)) for k in range(n)]
    return np.mean(runs, axis=0)


def run_cli(argv):
    out = io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(out):
        code = main(["calibrate", *argv, "--quiet", "--no-plot"])
    assert code == 0, out.getvalue()
    return time.perf_counter() - start, out.getvalue()


def epidemic(folder: Path, theta, screen: int) -> str:
    y = weekly(theta, seed=1)
    data = folder / "season.csv"
    np.savetxt(data, y, delimiter=",", header="new_infections,new_recoveries", comments="")
    out = folder / "out.json"
    seconds, _ = run_cli(["--model", "epiwrap:simulate", "--data", str(data), "--timesteps",
                          "20", "--screen", str(screen), "--json", str(out)])
    res = json.loads(out.read_text())
    mean = [p["mean"] for p in res["parameters"]]
    fit = weekly(mean, seed=100, n=20)
    attack, peak = y[:, 0].sum(), int(np.argmax(y[:, 0]))
    f_attack, f_peak = fit[:, 0].sum(), int(np.argmax(fit[:, 0]))
    ok = abs(f_peak - peak) <= 1 and abs(f_attack / attack - 1) <= 0.3
    ratios = ", ".join(f"{p['sd_over_prior_sd']:.2f}" for p in res["parameters"])
    d = res["diagnostics"]
    return (f"epidemic {tuple(theta)} screen {screen:>3d}: q mean "
            f"({', '.join(f'{v:.3g}' for v in mean)}), sd/prior sd {ratios}; attack "
            f"{f_attack:.3f} vs {attack:.3f}, peak week {f_peak} vs {peak}: "
            f"{'reproduced' if ok else 'NOT reproduced'}; last loss "
            f"{res['history']['loss'][-1]:.4g}; {100 * d['inside_90']:.0f}% in the 90% band; "
            f"{len(d['warnings'])} warning(s); {seconds:.0f} s")


def bh(screen: int, folder: Path) -> str:
    out = folder / "bh.json"
    seconds, _ = run_cli(["--model", "brock_hommes", "--screen", str(screen), "--json",
                          str(out)])
    res = json.loads(out.read_text())
    prior_sd = md.to_host(brock_hommes.prior().std).tolist()
    errors = [(p["mean"] - p["true"]) / s for p, s in zip(res["parameters"], prior_sd)]
    inside = sum(p["q05"] <= p["true"] <= p["q95"] for p in res["parameters"])
    d = res["diagnostics"]
    means = ", ".join(f"{p['mean']:.3g}" for p in res["parameters"])
    return (f"brock_hommes set 1 screen {screen:>3d}: means ({means}); RMS error "
            f"{math.sqrt(sum(e * e for e in errors) / len(errors)):.2f} prior sds; "
            f"{inside}/4 truths in 90% intervals; last loss {res['history']['loss'][-1]:.4g}; "
            f"{100 * d['inside_90']:.0f}% in the 90% band; {len(d['warnings'])} warning(s); "
            f"{seconds:.0f} s")


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="epidemic,brock_hommes")
    parser.add_argument("--screens", default="0,200", help="values of --screen to compare")
    parser.add_argument("--epidemics", default="0.13,0.3,0.02;0.15,0.3,0.02",
                        help="(β, γ, i₀) per day of each generated season, ';'-separated")
    args = parser.parse_args()
    print_header("default")
    screens = [int(s) for s in args.screens.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "epiwrap.py").write_text(WRAP)
        sys.path.insert(0, tmp)
        for task in args.tasks.split(","):
            for screen in screens:
                if task == "epidemic":
                    for spec in args.epidemics.split(";"):
                        print(epidemic(folder, [float(v) for v in spec.split(",")], screen),
                              flush=True)
                else:
                    print(bh(screen, folder), flush=True)


if __name__ == "__main__":
    main_bench()
