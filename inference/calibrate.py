"""``calibrate``: fit q_φ by minimising the GVI objective L(φ) = E_q[ℓ] + w·KL(q‖π).

    result = calibrate(loss, prior, family, n_steps=500, optimizer=adam(1e-2))
    result.params            # the fitted φ (a pytree)
    result.sample(1000)      # θ ~ q_φ, shape (1000, d)
    result.history.total     # L per step (and .loss, .kl, .dropped, .skipped)

Each step draws n θ_i from q_φ, evaluates ``loss(θ_i, rng)`` on the stream keyed (step, i) of
the run's seed, estimates ∇_φ L (:mod:`.objective`) and applies one optimiser update
(:mod:`.optimizers`). The whole run is a deterministic function of ``seed``.

Early stopping: with ``patience=p`` the run stops once the step's total has not improved on
the best so far (by more than ``min_delta``) for p steps. Whether or not it stops early, the
parameters at the best step are kept as ``best_params`` (the total is a noisy estimate, so the
best step is the one with the luckiest estimate as much as the best φ: ``params``, the last
iterate, is the better answer when the learning rate decays to a small value).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minidiff.random import default_rng

from .objective import Objective, StepEstimate
from .optimizers import Optimizer, apply_updates, global_norm
from .pytree import tree_map

__all__ = ["calibrate", "CalibrationResult", "History"]


@dataclass
class History:
    """Per-step records: ``total`` = ``loss`` + w·``kl`` (estimates at the step's params),
    ``dropped`` (samples dropped as non-finite), ``skipped`` (the reason a step made no update,
    or None) and ``grad_norm`` (the global norm of the raw gradient estimate)."""

    total: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    skipped: list[str | None] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)

    def append(self, est: StepEstimate) -> None:
        self.total.append(est.total)
        self.loss.append(est.loss)
        self.kl.append(est.kl)
        self.dropped.append(len(est.dropped))
        self.skipped.append(est.skipped)
        self.grad_norm.append(math.nan if est.grad is None else global_norm(est.grad))

    @property
    def n_dropped(self) -> int:
        """Samples dropped over the whole run."""
        return sum(self.dropped)

    @property
    def n_skipped(self) -> int:
        """Steps that made no update."""
        return sum(s is not None for s in self.skipped)


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

    def sample(self, n: int, seed: int = 0, *, best: bool = False) -> Any:
        """n draws θ ~ q_φ, shape (n, d), from ``default_rng(seed)`` (φ = the final params, or
        the best step's with ``best=True``)."""
        params = self.best_params if best else self.params
        theta, _ = self.family.sample(params, n, default_rng(seed))
        return theta

    def log_prob(self, theta: Any, *, best: bool = False) -> Any:
        """log q_φ(θ) for θ of shape (n, d)."""
        return self.family.log_prob(self.best_params if best else self.params, theta)


def _copy(tree: Any) -> Any:
    return tree_map(lambda x: x, tree)


def calibrate(loss: Callable[[Any, Any], Any], prior: Any, family: Any, *, w: float = 1.0,
              n_samples: int = 10, n_steps: int, optimizer: Optimizer,
              gradient: str = "pathwise", mode: str = "auto", seed: int = 0,
              on_nan: str = "raise", init: Any = None, kl: str = "auto",
              kl_samples: int = 100, baseline: str = "loo", patience: int | None = None,
              min_delta: float = 0.0,
              callback: Callable[[int, StepEstimate, Any], None] | None = None,
              ) -> CalibrationResult:
    """Minimise L(φ) = E_{θ~q_φ}[ℓ(θ)] + w·KL(q_φ‖π) over the family's parameters φ.

    Args:
        loss: ``loss(theta, rng) -> scalar``, θ of shape (d,) in the family's space, ``rng`` a
            :class:`minidiff.random.Generator` (the stream keyed (step, i) of ``seed``). Wrap a
            simulator as ``lambda th, rng: distance(simulate(transform(th), rng=rng, ...))``.
        prior: π over the same θ, a vector distribution (:mod:`.distributions`; a scalar one
            is taken as ``Independent(prior)``).
        family: the variational family (:mod:`.families`, :mod:`.flows`, :mod:`.beta_family`).
        w: the weight of the KL (w = 1 with ℓ the negative log-likelihood is Bayes' rule).
        n_samples: θ draws per step.
        n_steps: the most steps to take.
        optimizer: an :class:`~.optimizers.Optimizer` (``adam(1e-2)``, ``chain(...)``).
        gradient: ``"pathwise"`` or ``"score"`` (:mod:`.objective`).
        mode: ``"auto"``, ``"forward"`` (mixed mode), ``"reverse"`` or ``"triples"``.
        seed: the run's seed; the run is a deterministic function of it.
        on_nan: ``"raise"`` (default) or ``"skip"`` (drop non-finite samples, counted in the
            history; skip steps whose KL or gradient is non-finite; a RuntimeWarning at the
            end says how many).
        init: starting params (default ``family.init(seed)``).
        kl: ``"auto"``, ``"analytic"`` or ``"mc"`` (:func:`.divergence.kl_divergence`).
        kl_samples: draws for a Monte Carlo KL.
        baseline: ``"loo"`` (leave-one-out) or ``"none"``, for ``gradient="score"``.
        patience, min_delta: early stopping (see the module notes); None never stops early.
        callback: called as ``callback(step, estimate, params)`` after each update.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"calibrate: n_steps must be an integer ≥ 1, got {n_steps!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 1):
        raise ValueError(f"calibrate: patience must be None or an integer ≥ 1, got "
                         f"{patience!r}")
    objective = Objective(loss, prior, family, w=w, n_samples=n_samples, gradient=gradient,
                          mode=mode, seed=seed, kl=kl, kl_samples=kl_samples,
                          baseline=baseline, on_nan=on_nan)
    params = family.init(seed) if init is None else _copy(init)
    state = optimizer.init(params)
    history = History()
    best_total, best_params, best_step, since_best = math.inf, _copy(params), -1, 0
    stopped_early = False
    for step in range(n_steps):
        est = objective.estimate(params, step)
        history.append(est)
        if est.skipped is not None:
            continue
        if est.total < best_total - min_delta:
            best_total, best_params, best_step, since_best = est.total, params, step, 0
        else:
            since_best += 1
        updates, state = optimizer.update(est.grad, state, params)
        params = apply_updates(params, updates)
        if callback is not None:
            callback(step, est, params)
        if patience is not None and since_best >= patience:
            stopped_early = True
            break
    if history.n_dropped or history.n_skipped:
        warnings.warn(f"calibrate: {history.n_dropped} sample(s) dropped and "
                      f"{history.n_skipped} step(s) skipped as non-finite over "
                      f"{len(history.total)} steps (on_nan='skip'; see history.dropped and "
                      f"history.skipped)", RuntimeWarning, stacklevel=2)
    return CalibrationResult(params=params, family=family, prior=objective.prior,
                             history=history, best_params=best_params, best_step=best_step,
                             optimizer_state=state, n_steps=len(history.total),
                             stopped_early=stopped_early, seed=seed)
