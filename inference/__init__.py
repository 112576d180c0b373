"""Calibration of agent-based models by generalised variational inference (GVI).

Find q_φ minimising L(φ) = E_{θ~q_φ}[ℓ(θ)] + w·KL(q_φ ‖ π): the tutorial's E_q[ℓ]/w + KL,
multiplied by w. With ℓ the negative log-likelihood and w = 1 the minimiser is the Bayes
posterior; a simulator-based discrepancy (MMD, energy distance) gives a generalised posterior.

==================  =================================================================
module              what it holds
==================  =================================================================
``pytree``          ``ravel`` of nested dicts/lists/tuples of arrays into one vector
``families``        DiagonalGaussian, FullRankGaussian (the family interface)
``flows``           RealNVP
``beta_family``     BetaFamily
``divergence``      KL(q‖π), by the closed-form table or by Monte Carlo
``losses``          mmd, energy_distance, gaussian_nll, mse
``objective``       the objective, pathwise (forward / reverse / triples) and score estimators
``optimizers``      sgd, adam, adamw, clip_by_global_norm, chain, constant, cosine
``executors``       where the per-sample work runs: serial, processes, Dask
``extras``          optional dependencies (matplotlib, tqdm) imported where used
``records``         History, its JSON-lines log, the progress bar, the NaN summary
``run_state``       crash-safe checkpoints (atomic, no pickle) and exact resume
``plots``           the loss by step, q against the prior, posterior-predictive bands, ranks
``run_options``     ``RunOptions``: w, estimator, NaN policy, stopping, executor, checkpoint
``calibrate``       ``calibrate`` and its result
``screening``       the global first stage: prior-predictive screening, q's start
``diagnostics``     predictive-band share, the data's share of the loss, the warnings
``coverage``        simulation-based calibration: ranks and coverage over R data sets
==================  =================================================================

The distributions and bijections (``Normal``, ``Beta``, ``Independent``, ``Exp``, ``Sigmoid``,
``register_kl``, ...) live in :mod:`minidiff.distributions`, below the models, and are
re-exported here.

Example (a Gaussian mean, by GVI with the negative log-likelihood)::

    import minidiff as md
    from minidiff import inference as inf

    y = ...                                             # 20 observations
    nll = inf.gaussian_nll(y)
    result = inf.calibrate(lambda th, rng: nll(th[0]), inf.Normal(0.0, 2.0),
                           inf.DiagonalGaussian(1), n_steps=400,
                           optimizer=inf.adam(inf.cosine(0.05, 400)))
"""

from minidiff.distributions import (
    Affine,
    Beta,
    Bijection,
    Compose,
    Distribution,
    Exp,
    Gamma,
    Independent,
    Inverse,
    LogNormal,
    MultivariateNormalTriL,
    Normal,
    Sigmoid,
    Transformed,
    Uniform,
    register_kl,
)

from .beta_family import BetaFamily
from .calibrate import CalibrationResult, History, calibrate, run_config
from .coverage import CoverageResult, coverage
from .diagnostics import Diagnostics, data_share, diagnose, predictive_share
from .divergence import analytic_kl, kl_divergence
from .executors import DaskExecutor, Executor, ProcessExecutor, SerialExecutor, make_executor
from .families import DiagonalGaussian, Family, FullRankGaussian
from .flows import RealNVP
from .losses import energy_distance, gaussian_nll, median_heuristic, mmd, mse
from .objective import NonFiniteError, Objective, StepEstimate, evaluate_sample
from .optimizers import (
    Optimizer,
    adam,
    adamw,
    apply_updates,
    chain,
    clip_by_global_norm,
    constant,
    cosine,
    sgd,
)
from .pytree import ravel, tree_leaves, tree_map
from .records import HistoryLog, ProgressBar, nan_summary
from .run_options import RunOptions
from .run_state import CheckpointError, RunState, load_checkpoint, save_checkpoint
from .screening import Screening, screen

__all__ = [
    "Affine", "Beta", "BetaFamily", "Bijection", "CalibrationResult", "CheckpointError",
    "Compose", "CoverageResult", "DaskExecutor", "Diagnostics", "DiagonalGaussian",
    "Distribution", "Executor", "Exp", "Family",
    "FullRankGaussian", "Gamma", "History", "HistoryLog", "Independent", "Inverse", "LogNormal",
    "MultivariateNormalTriL",
    "NonFiniteError", "Normal", "Objective", "Optimizer", "ProcessExecutor", "ProgressBar",
    "RealNVP", "RunOptions", "RunState", "Screening", "SerialExecutor", "Sigmoid",
    "StepEstimate", "Transformed",
    "Uniform", "adam", "adamw", "analytic_kl", "apply_updates", "calibrate", "chain",
    "clip_by_global_norm", "constant", "cosine", "coverage", "data_share", "diagnose",
    "energy_distance", "evaluate_sample",
    "gaussian_nll", "kl_divergence", "load_checkpoint", "make_executor", "median_heuristic",
    "mmd", "mse", "nan_summary", "predictive_share", "ravel", "register_kl", "run_config",
    "save_checkpoint",
    "screen", "sgd",
    "tree_leaves", "tree_map",
]
