"""What ``minidiff calibrate`` does around the fit: the global first stage, the diagnostics
after the table, and the coverage run.

* :func:`screen_start`: prior-predictive screening (:func:`minidiff.inference.screening.screen`)
  of ``--screen M`` prior draws by the loss the fit minimises (an ensemble of runs per draw
  where the model's loss compares one), keeping one simulated series per draw so the
  diagnostics can reuse them; q starts at the elite's mean and spread;
* :func:`diagnostics`: the share of observed points inside q's 90% posterior-predictive band,
  the loss's posterior-predictive check, the data's share of the loss's variation (from the
  screened series) and the warnings of :func:`minidiff.inference.diagnostics.diagnose`;
* :func:`run_coverage`: ``--coverage R``, simulation-based calibration of the whole method on R
  data sets simulated at prior draws (:func:`minidiff.inference.coverage.coverage`), with its
  table and, with ``--plot``, the rank histograms.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .. import inference as inf
from ..inference import diagnostics as diag
from ..inference import plots
from ..inference.coverage import coverage
from ..inference.screening import Screening, screen
from ..ops import stack, stop_gradient
from .calibrate_setup import Problem

__all__ = ["screen_start", "diagnostics", "run_coverage", "N_PSEUDO"]

N_PSEUDO = 5  # screened series that stand in for the data in the data-share diagnostic
LAST_STEPS = 10  # the steps whose mean loss is the fit's, against the screened start's


def screen_start(problem: Problem, prior: Any, n_draws: int, seed: int,
                 ) -> tuple[Screening, list[Any]]:
    """Screen ``n_draws`` prior draws by the problem's loss; returns the screening and the
    series simulated at the draws."""
    series: list[Any] = []
    distance = problem.distance_for(problem.observed)

    def loss(theta: Any, rng: Any) -> Any:
        x = stop_gradient(problem.compared(problem.natural(theta), rng))
        series.append(x if x.ndim == problem.observed.ndim else x[0])
        return distance(x)

    return screen(loss, prior, n_draws=n_draws, seed=seed), series


def diagnostics(problem: Problem, rows: list[tuple], predictive: Any,
                screened: list[Any] | None, w: float, history: Any = None,
                screening: Screening | None = None, replicates: Any = None,
                at_mean: tuple[list[Any], list[Any]] | None = None) -> diag.Diagnostics:
    """The diagnostics of a fit whose table rows (mean, sd, lo, hi, sd/prior sd) are ``rows``
    and whose posterior-predictive series are ``predictive`` (m, *S); with the screening and
    the history, whether the steps ended worse than the screened start; with ``at_mean``
    (series simulated at q's mean, and reruns there), whether that point reproduces the
    data: the share of observed points inside their 90% band and the loss check there."""
    inside = diag.predictive_share(problem.observed, predictive)
    loss_p = (None if problem.distance_for is None else
              diag.loss_check(predictive, problem.distance_for, problem.observed, replicates))
    inside_at_mean = mean_p = None
    if at_mean is not None:
        inside_at_mean = diag.predictive_share(problem.observed, stack(at_mean[0]))
        if problem.distance_for is not None:
            mean_p = diag.loss_check(at_mean[0], problem.distance_for, problem.observed,
                                     at_mean[1])
    share = fit_loss = start_loss = None
    if screened:
        share = diag.data_share(screened, problem.distance_for, problem.observed, N_PSEUDO)
    if screening is not None and history is not None and len(history.loss):
        last = [v for v in history.loss[-LAST_STEPS:] if v == v]
        fit_loss = sum(last) / len(last) if last else None
        start_loss = screening.losses[screening.elite[-1]]
    return diag.diagnose([r[4] for r in rows], inside_90=inside, share=share, w=w,
                         fit_loss=fit_loss, start_loss=start_loss, loss_p=loss_p,
                         inside_at_mean=inside_at_mean, mean_p=mean_p)


def run_coverage(problem: Problem, args: argparse.Namespace, prior: Any, family: Any,
                 can_plot: bool, emit: Callable[[str], None]) -> inf.CoverageResult:
    """``--coverage R``: R data sets simulated at prior draws, each calibrated as the run
    would be (same loss, family, steps, samples, w, learning rate, no screening), then the
    coverage table."""
    names = list(problem.model.param_names)

    def simulate(theta: Any, rng: Any) -> Any:
        return stop_gradient(problem.simulate(problem.natural(theta), rng))

    def loss_for(observed: Any) -> Callable[[Any, Any], Any]:
        distance = problem.distance_for(observed)
        return lambda theta, rng: distance(problem.compared(problem.natural(theta), rng))

    def progress(r: int, total: int) -> None:
        if not args.quiet:
            emit(f"  coverage: data set {r} of {total} calibrated")

    result = coverage(simulate, loss_for, prior, family, n_datasets=args.coverage,
                      seed=args.seed, names=names, on_dataset=progress,
                      n_samples=args.samples, n_steps=args.steps,
                      optimizer=inf.adam(inf.cosine(args.lr, args.steps)),
                      options=inf.RunOptions(w=args.w, gradient=args.gradient, mode=args.mode,
                                             on_nan="skip", executor=args.executor,
                                             workers=args.workers, scheduler=args.scheduler,
                                             progress=False))
    emit("")
    emit(result.summary())
    if args.plot is not None and can_plot:
        plots.rank_figure(args.plot, result.ranks, result.n_draws, names,
                          title=f"minidiff calibrate --model {problem.model.name} --coverage "
                                f"{args.coverage}: rank histograms")
        emit(f"\nfigure written to {args.plot}")
    return result

