"""The shoot-out: minidiff's GVI against black-it, sbi and pyabc on the same tasks and data.

Every method gets the same prior box and the same R synthetic datasets per task (simulated at
the task's truth with seeds 10⁶ + r), and a budget of simulations (``bench/shootout_tasks.py``
for the tasks, ``bench/shootout_methods.py`` for how each method is run and counted). Per task,
method and budget it reports, over the datasets:

* **error**: the RMS over the parameters of |posterior mean (or point estimate) − truth| in
  prior sds (the box's (high − low)/√12), as mean ± standard error over the datasets;
* **cover90**: the share of (dataset, parameter) pairs whose central 90% interval (the 5% and
  95% quantiles of the draws) holds the truth, where the method gives an interval. At a fixed
  truth this is a frequentist coverage of a Bayesian interval: it need not be 0.9 even for an
  exact posterior, and R·d pairs bound its resolution;
* **sims**: simulations used (counted at the simulator), mean over the datasets;
* **wall s**: wall-clock seconds per calibration, mean over the datasets (everything the
  method does: simulating, training, sampling);
* **cpu s**: the process's CPU seconds for the same (all its threads; torch is held to one),
  which a busy shared machine distorts less than the wall clock.

The peers live in a separate environment, never in CI. A missing peer is skipped with a line
that says so. How the measured one was made (torch's CPU wheel first, or pip pulls a CUDA
build; black-it 0.3.3 pins numpy<1.27 while minidiff needs numpy ≥ 2.1, so it is installed with
its pin and numpy put back: the parts of black-it used here run on numpy 2)::

    python3 -m venv /work/venv-peers --system-site-packages
    /work/venv-peers/bin/pip install 'torch==2.13.0+cpu' sbi black-it pyabc arch
    /work/venv-peers/bin/pip install 'numpy>=2.1'      # or uninstall the venv's numpy 1.26
    /work/venv-peers/bin/pip install --no-deps --no-build-isolation -e .

    python bench/shootout.py --tasks bh100 --methods gvi-pathwise,sbi-npe --datasets 2 \\
        --budgets 1000
    python bench/shootout.py --datasets 10 --budgets 1000,10000 --write docs/shootout.md

``--results FILE`` appends each calibration's numbers as a JSON line as it finishes, and a
rerun with the same FILE skips what is there, so a long run can be stopped and resumed (or
split over processes by task); the table is made from everything in the file that matches the
run's options, and ``--no-run`` makes only the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from _common import print_header
from shootout_methods import METHODS, PEERS, Fit
from shootout_tasks import TASKS, Task

COLUMNS = ("task", "method", "budget", "R", "error (prior sds)", "cover90", "sims", "wall s",
           "cpu s")


def _quantile(draws: np.ndarray, weights: np.ndarray | None, q: float) -> np.ndarray:
    """The q-quantile of each column, weighted (pyabc's particles) or not."""
    if weights is None:
        return np.quantile(draws, q, axis=0)
    out = []
    for column in draws.T:
        order = np.argsort(column)
        cumulative = np.cumsum(weights[order]) / np.sum(weights)
        out.append(column[order][min(np.searchsorted(cumulative, q), len(column) - 1)])
    return np.asarray(out)


def score(task: Task, fit: Fit) -> dict:
    """Error in prior sds and the 90% interval's hits, per parameter."""
    truth = np.asarray(task.truth)
    mean = np.average(fit.draws, axis=0, weights=fit.weights)
    z = (mean - truth) / task.prior_sd
    row = {"error": float(np.sqrt(np.mean(z ** 2))), "z": [float(v) for v in z],
           "simulations": fit.simulations, "seconds": fit.seconds, "hits": None}
    if not fit.point:
        low, high = _quantile(fit.draws, fit.weights, 0.05), _quantile(fit.draws, fit.weights,
                                                                       0.95)
        row["hits"] = [bool(a <= t <= b) for a, t, b in zip(low, truth, high)]
    return row


def available(methods: list[str]) -> list[str]:
    """The methods whose package imports; a line for each that is skipped."""
    kept = []
    for m in methods:
        module = PEERS.get(m)
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"skipped {m}: the package {module!r} is not installed (see the notes at "
                  f"the top of bench/shootout.py: the 'peers' extra, and black-it by hand)")
            continue
        kept.append(m)
    return kept


def table(rows: list[dict], tasks: list[str], methods: list[str], budgets: list[int]) -> str:
    """The markdown table of the rows, one line per (task, method, budget) that has any."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for t in tasks:
        for m in methods:
            for b in budgets:
                got = [r for r in rows if (r["task"], r["method"], r["budget"]) == (t, m, b)]
                if not got:
                    continue
                errors = np.array([r["error"] for r in got])
                se = (f"{errors.std(ddof=1) / np.sqrt(len(errors)):.2f}" if len(errors) > 1
                      else "—")
                hits = [h for r in got if r["hits"] is not None for h in r["hits"]]
                cover = f"{np.mean(hits):.2f}" if hits else "—"
                cpus = [r["cpu_seconds"] for r in got if "cpu_seconds" in r]
                cpu = f"{np.mean(cpus):.1f}" if len(cpus) == len(got) else "—"
                lines.append(f"| {t} | {m} | {b} | {len(got)} | {errors.mean():.2f} ± {se} | "
                             f"{cover} | "
                             f"{np.mean([r['simulations'] for r in got]):.0f} | "
                             f"{np.mean([r['seconds'] for r in got]):.1f} | {cpu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help=f"comma separated, from {', '.join(TASKS)} (default all)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma separated, from {', '.join(METHODS)} (default all)")
    parser.add_argument("--datasets", type=int, default=10, metavar="R",
                        help="synthetic datasets per task (default 10)")
    parser.add_argument("--budgets", default="1000,10000",
                        help="simulation budgets, comma separated (default 1000,10000)")
    parser.add_argument("--results", type=Path, help="JSON-lines file to append to and resume "
                        "from")
    parser.add_argument("--no-run", action="store_true", help="run nothing: only the table of "
                        "what --results holds")
    parser.add_argument("--write", type=Path, help="write the table, with the command, to this "
                        "markdown file (e.g. docs/shootout.md)")
    args = parser.parse_args(argv)
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    budgets = [int(float(b)) for b in args.budgets.split(",")]
    bad = [t for t in tasks if t not in TASKS] + [m for m in methods if m not in METHODS]
    if bad or args.datasets < 1 or min(budgets) < 1:
        parser.error(f"unknown task or method {bad}, or R < 1, or a budget < 1")
    print_header("not tuned")
    if not args.no_run:  # a table alone shows every method the file holds, installed or not
        methods = available(methods)
    rows = []
    if args.results and args.results.exists():
        rows = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    done = {(r["task"], r["method"], r["budget"], r["dataset"]) for r in rows}
    for r in range(0 if args.no_run else args.datasets):  # datasets outermost: a stopped
        #                                                   run covers every task
        for t in tasks:
            task = TASKS[t]
            observed = task.observed(r)
            for b in budgets:
                for m in methods:
                    if (t, m, b, r) in done:
                        continue
                    cpu = time.process_time()
                    fit = METHODS[m](task, observed, b, seed=r)
                    row = {"task": t, "method": m, "budget": b, "dataset": r,
                           **score(task, fit), "cpu_seconds": time.process_time() - cpu}
                    rows.append(row)
                    print(f"{time.strftime('%H:%M:%S')} {t} {m} budget {b} dataset {r}: "
                          f"error {row['error']:.2f}, hits {row['hits']}, "
                          f"{fit.simulations} sims, {fit.seconds:.1f} s", flush=True)
                    if args.results:
                        with args.results.open("a") as f:
                            f.write(json.dumps(row) + "\n")
    rows = [r for r in rows if r["dataset"] < args.datasets]
    text = table(rows, tasks, methods, budgets)
    print(text)
    if args.write:
        command = shlex.join(["python", "bench/shootout.py", *sys.argv[1:]])
        write_table(args.write, f"Made by `{command}`:\n\n{text}")
    return 0


BEGIN, END = "<!-- shootout table: begin -->", "<!-- shootout table: end -->"


def write_table(path: Path, block: str) -> None:
    """Put the block between the markers of an existing page (keeping the prose around it),
    or write a page holding only the block."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}"
    else:
        text = f"# The shoot-out\n\n{BEGIN}\n{block}\n{END}\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
