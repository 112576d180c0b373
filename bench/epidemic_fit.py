"""``minidiff calibrate`` on weekly epidemic series, objective against objective, side by side.

Each season is 20 weekly points of new infections and new recoveries per head, simulated by
the weekly chain (``minidiff.models.sir`` with dt = 7) in a population of 20 000 with 5%
log-normal reporting noise, at a per-step reproduction number R = 7β/(1 − e^{−7γ}) and an
initial share i₀. The model a user fits wraps ``sir.simulate`` with dt = 7 and 1000 agents
and re-exports the built-in prior; the objectives (``--objectives``) differ only in the loss
the wrapper exports:

* ``single``: one run per θ, the six statistics over √2 × their standard errors from the data
  (``sir.loss`` of one series);
* ``synthetic``: ``sir.loss`` of an ensemble of ``--ensemble`` runs per θ (``minidiff
  calibrate --simulations``), the Gaussian synthetic likelihood of the six statistics;
* ``energy``: the same ensemble, the energy score of the statistics in units of their
  standard errors, E‖z − z_obs‖ − ½E‖z − z′‖ (a proper scoring rule).

Per run: whether q moved (some sd/prior sd < 0.9), the peak week and attack rate of the
posterior-mean simulation (the mean of 20 runs at q's mean) against the data's, whether both
are reproduced (±1 week, ±30%), whether a poor-fit warning (about q, or about the simulations
at q's mean) was printed, and the seconds.

Run: ``python bench/epidemic_fit.py`` (a few minutes on two cores); ``--flags`` adds
``minidiff calibrate`` flags (say ``--flags="--gradient score"``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shlex
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from _common import print_header

import minidiff as md
from minidiff.cli import main
from minidiff.models import sir

SEASONS = [  # (R per step, γ per day, i₀, seed): peak weeks 10, 11, 7, 8, 12, 11
    (1.1, 0.3, 0.01, 1), (1.1, 0.3, 0.005, 1), (1.2, 0.3, 0.01, 2), (1.3, 0.3, 0.01, 8),
    (1.4, 0.3, 0.003, 5), (1.5, 0.3, 0.0015, 6),
]

WRAP = '''import minidiff as md
from minidiff.models import sir
from minidiff.models.sir import NATURAL, PARAM_NAMES, prior  # noqa: F401

KIND = {kind!r}


def simulate(params, *, rng, n_timesteps, n_agents=1000):
    return sir.simulate(params, rng=rng, n_timesteps=n_timesteps, n_agents=n_agents, dt=7.0)


def _norm(x):
    return md.sqrt(md.sum(md.square(x), axis=-1) + 1e-12)


def loss(simulated, observed):
    if KIND != "energy":
        return sir.loss(simulated, observed)
    se = sir._standard_errors(observed)
    z = sir.summary_statistics(simulated) / se
    z_obs = md.stop_gradient(sir.summary_statistics(observed) / se)
    m = z.shape[0]
    pair = md.expand_dims(z, 0) - md.expand_dims(z, 1)
    return md.mean(_norm(z - z_obs)) - 0.5 * md.sum(_norm(pair)) / (m * (m - 1))
'''


def season(r: float, gamma: float, i0: float, seed: int) -> np.ndarray:
    beta = r * -math.expm1(-7 * gamma) / 7
    y = np.asarray(sir.simulate(md.asarray([beta, gamma, i0]), rng=seed, n_timesteps=20,
                                n_agents=20_000, dt=7.0))
    return y * np.random.default_rng(seed).lognormal(0.0, 0.05, size=y.shape)


def fit(folder: Path, kind: str, y: np.ndarray, flags: list[str], ensemble: int) -> dict:
    module = f"epi_{kind}"
    (folder / f"{module}.py").write_text(WRAP.format(kind=kind))
    np.savetxt(folder / "season.csv", y, delimiter=",", comments="",
               header="new_infections,new_recoveries")
    argv = ["calibrate", "--model", f"{module}:simulate", "--data", str(folder / "season.csv"),
            "--timesteps", "20", "--quiet", "--no-plot", "--json", str(folder / "out.json"),
            *flags, *([] if kind == "single" else ["--simulations", str(ensemble)])]
    sys.path.insert(0, str(folder))
    try:
        start = time.perf_counter()
        with redirect_stdout(io.StringIO()):
            assert main(argv) == 0
        seconds = time.perf_counter() - start
    finally:
        sys.path.remove(str(folder))
    result = json.loads((folder / "out.json").read_text())
    mean = md.asarray([p["mean"] for p in result["parameters"]])
    runs = np.mean([np.asarray(sir.simulate(mean, rng=s, n_timesteps=20, dt=7.0))
                    for s in range(20)], axis=0)
    return {"moved": min(p["sd_over_prior_sd"] for p in result["parameters"]) < 0.9,
            "peak": int(runs[:, 0].argmax()), "attack": float(runs[:, 0].sum()),
            "warned": any(w.startswith(("poor fit", "the simulations at q's mean"))
                          for w in result["diagnostics"]["warnings"]),
            "seconds": seconds, "mean": [p["mean"] for p in result["parameters"]]}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objectives", default="single,synthetic,energy")
    parser.add_argument("--flags", default="--steps 40 --samples 4 --screen 50")
    parser.add_argument("--ensemble", type=int, default=8, help="runs per θ (synthetic, energy)")
    parser.add_argument("--seasons", default=",".join(map(str, range(len(SEASONS)))))
    args = parser.parse_args()
    print_header("")
    print("command: python bench/epidemic_fit.py " + " ".join(map(shlex.quote, sys.argv[1:])))
    flags = shlex.split(args.flags)
    print(f"minidiff calibrate flags: {' '.join(flags)}")
    print(f"{'R':>5} {'γ':>5} {'i0':>7} {'peak':>4} {'attack':>6}  {'objective':<10} {'moved':>5} "
          f"{'peak':>4} {'attack':>6} {'ok':>3} {'warn':>4} {'s':>5}  q mean (β, γ, i0)")
    tally: dict[str, list[int]] = {}
    for k in map(int, args.seasons.split(",")):
        r, gamma, i0, seed = SEASONS[k]
        y = season(r, gamma, i0, seed)
        peak, attack = int(y[:, 0].argmax()), float(y[:, 0].sum())
        for kind in args.objectives.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                out = fit(Path(tmp), kind, y, flags, args.ensemble)
            ok = abs(out["peak"] - peak) <= 1 and abs(out["attack"] / attack - 1) <= 0.3
            t = tally.setdefault(kind, [0, 0, 0])
            t[0] += ok
            t[1] += out["warned"]
            t[2] += (not ok) and (not out["warned"])
            print(f"{r:5.2f} {gamma:5.2f} {i0:7.4f} {peak:4d} {attack:6.3f}  {kind:<10} "
                  f"{str(out['moved']):>5} {out['peak']:4d} {out['attack']:6.3f} "
                  f"{'yes' if ok else 'no':>3} {'yes' if out['warned'] else 'no':>4} "
                  f"{out['seconds']:5.1f}  {np.round(out['mean'], 4).tolist()}", flush=True)
    for kind, (ok, warned, silent) in tally.items():
        print(f"{kind}: reproduced {ok}, warned {warned}, wrong without a warning {silent}")


if __name__ == "__main__":
    main_bench()
