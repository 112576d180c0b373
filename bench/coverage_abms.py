"""Coverage of ``minidiff calibrate``'s intervals on the agent-based models, by simulation-based
calibration (Talts et al. 2018): R parameter sets drawn from each model's default prior, data
simulated at each, each calibrated exactly as ``minidiff calibrate --model M --coverage R``
does it (the model's default loss, w, family, samples, steps and learning rate; no screening),
and the share of the R truths inside q's central 50% and 90% intervals, per parameter.

Nominal coverage needs an exact posterior; here the loss is a synthetic likelihood of summary
statistics (Brock–Hommes: moments scaled by their standard errors; SIR: size, timing and
spread of the epidemic scaled by the data's noise) and q a Gaussian fitted by a stochastic
optimiser, so the coverage is what it is: reported, not tuned. With R data sets a coverage
has a binomial sd of √(c(1 − c)/R) (0.095 at c = 0.9, R = 10).

    python bench/coverage_abms.py --datasets 10 --write docs/coverage.md

Each model's result is also kept as JSON next to the page (``--results``), so a model that
finished is not rerun.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from _common import print_header

from minidiff.cli import main as cli

MODELS = {"brock_hommes": [], "sir": []}  # extra flags per model: none, the defaults


def run(model: str, n_datasets: int, steps: int | None) -> dict:
    """``minidiff calibrate --model M --coverage R`` with its JSON; returns the coverage part."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "coverage.json"
        argv = ["calibrate", "--model", model, "--coverage", str(n_datasets), *MODELS[model]]
        if steps is not None:
            argv += ["--steps", str(steps)]
        start = time.perf_counter()
        if cli([*argv, "--no-plot", "--quiet", "--json", str(path)]) != 0:
            raise SystemExit(f"minidiff {shlex.join(argv)} failed")
        out = json.loads(path.read_text())["coverage"]
        out["seconds"] = time.perf_counter() - start
        out["argv"] = argv
        return out


def table(results: dict) -> str:
    lines = ["| model | parameter | R | 50% coverage | 90% coverage | mean rank / L |",
             "| --- | --- | --- | --- | --- | --- |"]
    for model, res in results.items():
        r, n_draws = res["n_datasets"], res["n_draws"]
        for j, name in enumerate(res["names"]):
            mean_rank = sum(row[j] for row in res["ranks"]) / r / n_draws
            lines.append(f"| {model} | {name} | {r} | {res['coverage']['0.5'][j]:.2f} | "
                         f"{res['coverage']['0.9'][j]:.2f} | {mean_rank:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--datasets", type=int, default=10, metavar="R")
    parser.add_argument("--steps", type=int, help="optimisation steps (default: the model's)")
    parser.add_argument("--results", type=Path, default=Path("docs/coverage-results.json"))
    parser.add_argument("--write", type=Path, help="markdown page for the table")
    args = parser.parse_args(argv)
    print_header("not tuned")
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    for model in args.models.split(","):
        if model in results and results[model]["n_datasets"] == args.datasets:
            continue
        results[model] = run(model, args.datasets, args.steps)
        print(f"{time.strftime('%H:%M:%S')} {model}: 90% coverage "
              f"{results[model]['coverage']['0.9']} in {results[model]['seconds']:.0f} s",
              flush=True)
        args.results.write_text(json.dumps(results, indent=1))
    text = table(results)
    print(text)
    if args.write:
        command = shlex.join(["python", "bench/coverage_abms.py", *sys.argv[1:]])
        args.write.write_text(
            "# Coverage of minidiff calibrate's intervals on the agent-based models\n\n"
            f"Made by `{command}` (the calls: "
            + "; ".join(f"`minidiff {shlex.join(res['argv'])}`, {res['seconds']:.0f} s"
                        for res in results.values())
            + "). What it measures and why it need not be nominal: the notes at the top of "
            "`bench/coverage_abms.py`. The mean rank of the truth among q's draws is 0.5 for "
            "an unbiased q; near 0 or 1, q sits above or below the truths.\n\n" + text + "\n",
            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
