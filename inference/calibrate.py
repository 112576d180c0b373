"""``calibrate``: fit q_φ by minimising the GVI objective L(φ) = E_q[ℓ] + w·KL(q‖π).

    result = calibrate(loss, prior, family, n_steps=500, optimizer=adam(1e-2))
    result.params            # the fitted φ (a pytree)
    result.sample(1000)      # θ ~ q_φ, shape (1000, d)
    result.history.total     # L per step (and .loss, .kl, .dropped, .skipped)

    # everything else about the run is one RunOptions (:mod:`.run_options`)
    calibrate(loss, prior, family, n_steps=500, optimizer=adam(1e-2), n_samples=20, seed=1,
              options=RunOptions(w=0.5, on_nan="skip", checkpoint="runs/a", patience=50))

Each step draws ``n_samples`` θ_i from q_φ, evaluates ``loss(θ_i, rng)`` on the stream keyed
(step, i) of the run's seed, estimates ∇_φ L (:mod:`.objective`) and applies one optimiser
update (:mod:`.optimizers`). The whole run is a deterministic function of ``seed``.

Where the samples run: ``RunOptions(executor="serial")`` (here), ``"processes"`` or ``"dask"``
(:mod:`.executors`); the results are bit-identical whichever runs them.

Run state: with ``RunOptions(checkpoint=DIR)`` the run writes its whole state every
``checkpoint_every`` steps and at the end, atomically and without pickle (:mod:`.run_state`),
and the history as JSON lines (``DIR/history.jsonl``, or ``history_path``) as it goes.
``resume=True`` continues from the checkpoint and ends with the params and history an
uninterrupted run would have had, bit for bit; it refuses a checkpoint of another
configuration. The configuration is what changes the result (the steps, samples, seed and the
options of the objective, NaN policy and stopping; not the executor, progress or checkpoint
settings), the option ``config`` (a JSON-able description of what calibrate cannot see: the
model, the data, the optimiser's settings), and fingerprints that catch a changed prior,
family, optimiser or loss anyway: the prior's log density at fixed points, the family's
initial params, the optimiser's first updates of a fixed gradient, and the loss at one fixed
draw.

Progress: ``progress=True`` shows a tqdm bar (the ``progress`` extra) with the step, loss, KL,
total and best total; None (the default) shows it when tqdm is installed and standard error is
a terminal.

Early stopping: with ``patience=p`` the run stops once the step's total has not improved on
the best so far (by more than ``min_delta``) for p steps. Whether or not it stops early, the
parameters at the best step are kept as ``best_params`` (the total is a noisy estimate, so the
best step is the one with the luckiest estimate as much as the best φ: ``params``, the last
iterate, is the better answer when the learning rate decays to a small value).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import minidiff as md
from minidiff.random import default_rng

from . import settings
from .executors import Executor, make_executor
from .objective import NonFiniteError, Objective
from .optimizers import Optimizer, apply_updates
from .pytree import tree_leaves, tree_map
from .records import History, HistoryLog, ProgressBar, nan_summary
from .run_lock import FolderLock
from .run_options import RunOptions
from .run_state import (
    HISTORY_LOG,
    RunState,
    load_checkpoint,
    prepare_folder,
    save_checkpoint,
)

__all__ = ["calibrate", "CalibrationResult", "History", "RunOptions", "run_config"]


@dataclass
class CalibrationResult:
    """What :func:`calibrate` returns."""

    params: Any
    family: Any
    prior: Any
    history: History
    best_params: Any
    best_step: int
    optimizer_state: Any
    n_steps: int
    stopped_early: bool
    seed: int
    resumed_from: int | None = None
    n_samples: int | None = None

    def sample(self, n: int, seed: int = 0, *, best: bool = False) -> Any:
        """n draws θ ~ q_φ, shape (n, d), from ``default_rng(seed)`` (φ = the final params, or
        the best step's with ``best=True``)."""
        params = self.best_params if best else self.params
        theta, _ = self.family.sample(params, n, default_rng(seed))
        return theta

    def log_prob(self, theta: Any, *, best: bool = False) -> Any:
        """log q_φ(θ) for θ of shape (n, d)."""
        return self.family.log_prob(self.best_params if best else self.params, theta)

    def nan_summary(self) -> str:
        """What the NaN policy dropped or skipped (:func:`.records.nan_summary`)."""
        return nan_summary(self.history, self.n_samples)


def _copy(tree: Any) -> Any:
    return tree_map(lambda x: x, tree)


def _digest(values: list[Any]) -> str:
    """SHA-256 of the exact bytes of a list of arrays or numbers."""
    h = hashlib.sha256()
    b = md.get_backend()
    for v in values:
        h.update(b.to_host(md.stop_gradient(md.asarray(v))).tobytes() if not isinstance(
            v, int | float | bool) else repr(v).encode())
    return h.hexdigest()


def _fingerprints(loss: Callable, prior: Any, family: Any, optimizer: Optimizer,
                  params: Any, seed: int) -> dict[str, str]:
    """Hashes of what the prior, family, optimiser and loss compute at fixed inputs."""
    probe = default_rng(0).stream("fingerprint").normal(size=(4, family.dim))
    out = {"prior": _digest([prior.log_prob(probe)]),
           "family": _digest(tree_leaves(params))}
    state, grads, updates = optimizer.init(params), tree_map(
        lambda p: md.ones_like(md.asarray(p)) * 0.5, params), []
    for _ in range(3):
        step_updates, state = optimizer.update(grads, state, params)
        updates += tree_leaves(step_updates)
    out["optimizer"] = _digest(updates)
    theta, _ = family.sample(params, 1, default_rng(seed).stream("fingerprint"))
    try:
        value = loss(md.getitem(theta, 0), default_rng(seed).stream("fingerprint"))
        out["loss"] = _digest([value])
    except Exception as exc:  # a loss that fails at this θ fails the same way again
        out["loss"] = f"raised {type(exc).__name__}"
    return out


def run_config(options: RunOptions, *, n_samples: int, n_steps: int, seed: int,
               family: Any, prior: Any, fingerprints: dict[str, str]) -> dict:
    """The configuration a checkpoint records and a resumed run must match: what changes the
    result (not the executor, progress or checkpoint options), the options' ``config``, and
    the fingerprints."""
    o = options
    return {"calibrate": {"w": o.w, "n_samples": n_samples, "n_steps": n_steps,
                          "gradient": o.gradient, "mode": o.mode, "seed": seed,
                          "on_nan": o.on_nan, "kl": o.kl, "kl_samples": o.kl_samples,
                          "baseline": o.baseline, "patience": o.patience,
                          "min_delta": o.min_delta, "family": repr(family),
                          "prior": type(prior).__name__, "dim": family.dim,
                          "backend": md.get_backend().name},
            "fingerprints": fingerprints, "user": o.config or {}}


def calibrate(loss: Callable[[Any, Any], Any], prior: Any, family: Any, *, n_steps: int,
              optimizer: Optimizer, n_samples: int = 10, seed: int = 0,
              options: RunOptions | None = None, **removed: Any) -> CalibrationResult:
    """Minimise L(φ) = E_{θ~q_φ}[ℓ(θ)] + w·KL(q_φ‖π) over the family's parameters φ.

    Args:
        loss: ``loss(theta, rng) -> scalar``, θ of shape (d,) in the family's space, ``rng`` a
            :class:`minidiff.random.Generator` (the stream keyed (step, i) of ``seed``). Wrap a
            simulator as ``lambda th, rng: distance(simulate(transform(th), rng=rng, ...))``.
        prior: π over the same θ, a vector distribution (:mod:`.distributions`; a scalar one
            is taken as ``Independent(prior)``).
        family: the variational family (:mod:`.families`, :mod:`.flows`, :mod:`.beta_family`).
        n_steps: the most steps to take.
        optimizer: an :class:`~.optimizers.Optimizer` (``adam(1e-2)``, ``chain(...)``).
        n_samples: θ draws per step.
        seed: the run's seed; the run is a deterministic function of it.
        options: a :class:`~.run_options.RunOptions` (default ``RunOptions()``): the KL's
            weight w, the estimator, the NaN policy, early stopping, the executor, the
            checkpoint and resume, the history file and the progress bar, each explained
            there.

    A run option given as a keyword of ``calibrate`` (``w=0.5``) raises a TypeError that shows
    the ``RunOptions(...)`` to write.
    """
    where = "calibrate"
    if removed:
        _refuse_removed(removed)
    opts = RunOptions() if options is None else options
    if not isinstance(opts, RunOptions):
        raise TypeError(f"calibrate: options must be a RunOptions(...), got "
                        f"{type(opts).__name__}")
    if not callable(loss):
        raise TypeError(f"calibrate: loss must be a function loss(theta, rng), got "
                        f"{type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"calibrate: optimizer must be an Optimizer (adam(1e-2), "
                        f"chain(...)), got {type(optimizer).__name__}")
    n_steps = settings.count(where, "n_steps", n_steps)
    settings.count(where, "n_samples", n_samples)
    settings.count(where, "seed", seed, 0)
    runner = make_executor(opts.executor, workers=opts.workers, scheduler=opts.scheduler,
                           connect_timeout=opts.connect_timeout)
    owned = not isinstance(opts.executor, Executor)
    lock = None
    try:
        objective = Objective(loss, prior, family, w=opts.w, n_samples=n_samples,
                              gradient=opts.gradient, mode=opts.mode, seed=seed, kl=opts.kl,
                              kl_samples=opts.kl_samples, baseline=opts.baseline,
                              on_nan=opts.on_nan, executor=runner)
        params = family.init(seed) if opts.init is None else _copy(opts.init)
        settings.support(where, objective.prior, family, params, seed)
        state = RunState(step=0, params=params, optimizer_state=optimizer.init(params),
                         best_params=_copy(params), best_total=math.inf, best_step=-1,
                         since_best=0, stopped_early=False, history=History())
        folder = None if opts.checkpoint is None else Path(opts.checkpoint)
        full_config = None
        if folder is not None:
            full_config = run_config(
                opts, n_samples=n_samples, n_steps=n_steps, seed=seed, family=family,
                prior=objective.prior, fingerprints=_fingerprints(loss, objective.prior, family,
                                                                  optimizer, params, seed))
            lock = FolderLock(folder, create=not opts.resume).acquire()  # released in finally
            if opts.resume:
                state = load_checkpoint(folder, full_config)
            else:
                prepare_folder(folder)
        resumed_from = state.step if opts.resume else None
        log_path = opts.history_path if opts.history_path is not None else (
            None if folder is None else folder / HISTORY_LOG)
        _run(objective, optimizer, state, n_steps, opts, folder, full_config, log_path)
    finally:
        if lock is not None:
            lock.release()
        if owned:
            runner.close()
    history = state.history
    if len(history) and history.n_skipped == len(history):
        raise NonFiniteError(f"calibrate: every one of the {len(history)} steps was skipped as "
                             f"non-finite ({history.skipped[-1]}), so no update was made and "
                             f"the result would be the initial params; on_nan='skip' cannot "
                             f"make such a run succeed. Fix the loss, prior or settings (run "
                             f"with on_nan='raise' to see the first failure)",
                             step=len(history) - 1, what="every step")
    if history.n_dropped or history.n_skipped:
        warnings.warn(f"calibrate: {history.n_dropped} sample(s) dropped and "
                      f"{history.n_skipped} step(s) skipped as non-finite over "
                      f"{len(history)} steps (on_nan='skip'; see history.dropped and "
                      f"history.skipped): {nan_summary(history, n_samples)}", RuntimeWarning,
                      stacklevel=2)
    return CalibrationResult(params=state.params, family=family, prior=objective.prior,
                             history=history, best_params=state.best_params,
                             best_step=state.best_step, optimizer_state=state.optimizer_state,
                             n_steps=len(history), stopped_early=state.stopped_early,
                             seed=seed, resumed_from=resumed_from, n_samples=n_samples)


def _refuse_removed(removed: dict[str, Any]) -> None:
    """A TypeError for keywords calibrate no longer takes, showing the RunOptions to write."""
    known = {f.name for f in fields(RunOptions)}
    unknown = sorted(set(removed) - known)
    if unknown:
        raise TypeError(f"calibrate() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"it takes n_steps, optimizer, n_samples, seed and options="
                        f"RunOptions(...)")
    written = ", ".join(f"{k}={v!r}" for k, v in removed.items())
    what = "is a run option" if len(removed) == 1 else "are run options"
    raise TypeError(f"calibrate: {', '.join(removed)} {what}: pass options=RunOptions("
                    f"{written}) (minidiff.inference.RunOptions)")


def _run(objective: Objective, optimizer: Optimizer, state: RunState, n_steps: int,
         opts: RunOptions, folder: Path | None, config: dict | None,
         log_path: str | Path | None) -> None:
    """The loop: one step at a time from ``state.step``, updating ``state`` in place."""
    log = None if log_path is None else HistoryLog(log_path)
    bar = ProgressBar(n_steps, opts.progress, initial=state.step)
    min_delta, patience, callback = opts.min_delta, opts.patience, opts.callback
    saved = state.step if folder is not None and state.step > 0 else None
    try:
        if log is not None:
            log.restart(state.history)
        for step in range(state.step, n_steps):
            if state.stopped_early:
                break
            est = objective.estimate(state.params, step)
            state.history.append(est)
            if est.skipped is None:
                if est.total < state.best_total - min_delta:
                    state.best_total, state.best_params = est.total, state.params
                    state.best_step, state.since_best = step, 0
                else:
                    state.since_best += 1
                updates, state.optimizer_state = optimizer.update(
                    est.grad, state.optimizer_state, state.params)
                state.params = apply_updates(state.params, updates)
                if callback is not None:
                    callback(step, est, state.params)
                if patience is not None and state.since_best >= patience:
                    state.stopped_early = True
            state.step = step + 1
            if log is not None:
                log.append(state.history, step)
            bar.update(step, est, state.best_total)
            if folder is not None and state.step % opts.checkpoint_every == 0:
                save_checkpoint(folder, state, config)
                saved = state.step
        if folder is not None and saved != state.step:
            save_checkpoint(folder, state, config)
    finally:
        bar.close()
        if log is not None:
            log.close()
