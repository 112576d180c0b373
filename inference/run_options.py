"""``RunOptions``: everything about a calibration run beyond its loss, prior, family, steps,
samples, optimiser and seed, in one frozen dataclass checked when it is built::

    options = RunOptions(w=0.5, on_nan="skip", checkpoint="runs/sir", patience=50)
    result = calibrate(loss, prior, family, n_steps=500, optimizer=adam(1e-2), seed=3,
                       options=options)

The options, by what they change (defaults in brackets):

The objective L(φ) = E_{θ~q_φ}[ℓ(θ)] + w·KL(q_φ‖π) and its estimator (:mod:`.objective`)
  * ``w`` [1.0]: the weight of the KL; w = 1 with ℓ the negative log-likelihood is Bayes'
    rule, w ≠ 1 gives the tempered posterior q* ∝ π·exp(−ℓ/w). A finite number ≥ 0.
  * ``gradient`` ["pathwise"]: differentiate through θ(φ) and the simulator, or ``"score"``
    (REINFORCE: ∇_φ E_q[ℓ] = E_q[(ℓ − b)∇_φ log q_φ], no derivative of the simulator).
  * ``mode`` ["auto"]: how a pathwise step finds each sample's Jacobian J_i = ∂ℓ/∂θ, shape
    (d,): ``"forward"`` (mixed mode: d tangents, memory flat in the simulation's length),
    ``"reverse"`` (one tape through every simulation), ``"triples"`` (stochastic triples,
    unbiased through discrete draws); ``"auto"`` is forward for d ≤ 16, else reverse.
  * ``baseline`` ["loo"]: the score estimator's control variate b_i = mean_{j≠i} ℓ_j, or
    ``"none"`` (b = 0).
  * ``kl`` ["auto"]: KL(q‖π) in closed form where there is one (``"analytic"`` insists),
    else by Monte Carlo on ``kl_samples`` [100] draws (``"mc"`` always).
  * ``init`` [None]: the starting φ (a pytree like ``family.init(seed)``, which is the
    default).

Failures
  * ``on_nan`` ["raise"]: a non-finite loss, Jacobian, KL or gradient raises
    :class:`~.objective.NonFiniteError` naming the step, sample and θ; ``"skip"`` drops such
    samples and skips such steps, counts them in the history and warns at the end.

Stopping
  * ``patience`` [None]: stop once the step's total has not improved on the best so far by
    more than ``min_delta`` [0.0] for this many steps; None runs every step. The best step's φ
    is kept as ``best_params`` either way.
  * ``callback`` [None]: called as ``callback(step, estimate, params)`` after each update.

Where the samples run (:mod:`.executors`; the result is bit-identical on each)
  * ``executor`` ["serial"]: ``"serial"``, ``"processes"``, ``"dask"`` or an
    :class:`~.executors.Executor` object (which the caller closes); ``workers`` [None] sizes a
    pool or cluster made by name, ``scheduler`` [None] is a running Dask scheduler's address,
    waited for at most ``connect_timeout`` [10] seconds.

Run state and output (:mod:`.run_state`, :mod:`.records`)
  * ``checkpoint`` [None]: a folder the run writes its whole state to every
    ``checkpoint_every`` [10] steps and at the end; ``resume`` [False] continues the run in
    it, bit for bit, and refuses one of another configuration.
  * ``config`` [None]: a JSON-able description of what calibrate cannot see (the model, the
    data, the optimiser's settings), recorded in the checkpoint and compared on resume.
  * ``history_path`` [None]: where the history goes as JSON lines (default
    ``checkpoint/history.jsonl`` with a checkpoint, else nowhere).
  * ``progress`` [None]: a progress bar, True, False, or None (shown when tqdm is installed
    and standard error is a terminal).

Every option is checked in ``__post_init__``, so a bad one fails where it is written, in a
message that names the option, what is allowed and what it got. Change one option of a set
with ``dataclasses.replace(options, resume=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minidiff.validation import check_choice

from . import settings
from .divergence import METHODS as KL_METHODS
from .executors import CONNECT_TIMEOUT, Executor, check_executor_settings
from .objective import BASELINES, GRADIENTS, MODES, ON_NAN, StepEstimate

__all__ = ["RunOptions", "ON_NAN", "BASELINES"]

_WHERE = "RunOptions"


def _optional_path(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"{_WHERE}: {name} must be a folder or file path (str or Path) or "
                        f"None, got {type(value).__name__}")


@dataclass(frozen=True)
class RunOptions:
    """How :func:`~.calibrate.calibrate` runs (see the module notes for what each does)."""

    w: float = 1.0
    gradient: str = "pathwise"
    mode: str = "auto"
    baseline: str = "loo"
    kl: str = "auto"
    kl_samples: int = 100
    init: Any = None
    on_nan: str = "raise"
    patience: int | None = None
    min_delta: float = 0.0
    callback: Callable[[int, StepEstimate, Any], None] | None = None
    executor: str | Executor = "serial"
    workers: int | None = None
    scheduler: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    checkpoint: str | Path | None = None
    checkpoint_every: int = 10
    resume: bool = False
    config: dict | None = None
    history_path: str | Path | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        w = settings.real(_WHERE, "w (the weight of the KL)", self.w, 0.0)
        object.__setattr__(self, "w", w)
        check_choice(_WHERE, "gradient", self.gradient, GRADIENTS)
        check_choice(_WHERE, "mode", self.mode, MODES)
        check_choice(_WHERE, "baseline", self.baseline, BASELINES)
        check_choice(_WHERE, "kl", self.kl, KL_METHODS)
        settings.count(_WHERE, "kl_samples", self.kl_samples)
        check_choice(_WHERE, "on_nan", self.on_nan, ON_NAN)
        if self.patience is not None:
            settings.count(_WHERE, "patience", self.patience)
        object.__setattr__(self, "min_delta",
                           settings.real(_WHERE, "min_delta", self.min_delta, 0.0))
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"{_WHERE}: callback must be a function callback(step, estimate, "
                            f"params) or None, got {type(self.callback).__name__}")
        if self.workers is not None:
            settings.count(_WHERE, "workers", self.workers)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise TypeError(f"{_WHERE}: scheduler must be a Dask scheduler's address (a str, "
                            f"e.g. 'tcp://host:8786') or None, got "
                            f"{type(self.scheduler).__name__}")
        check_executor_settings(self.executor, workers=self.workers, scheduler=self.scheduler,
                                connect_timeout=self.connect_timeout)
        _optional_path("checkpoint", self.checkpoint)
        settings.count(_WHERE, "checkpoint_every", self.checkpoint_every)
        if not isinstance(self.resume, bool):
            raise TypeError(f"{_WHERE}: resume must be True or False, got {self.resume!r}")
        if self.resume and self.checkpoint is None:
            raise ValueError(f"{_WHERE}: resume=True needs checkpoint=DIR, the folder to "
                             f"resume from")
        settings.json_config(_WHERE, self.config)
        _optional_path("history_path", self.history_path)
        if self.progress is not None and not isinstance(self.progress, bool):
            raise TypeError(f"{_WHERE}: progress must be True, False or None (shown on a "
                            f"terminal), got {self.progress!r}")
