"""Calibration of agent-based models by generalised variational inference (GVI).

Find q_φ minimising L(φ) = E_{θ~q_φ}[ℓ(θ)] + w·KL(q_φ ‖ π): the tutorial's E_q[ℓ]/w + KL,
multiplied by w. With ℓ the negative log-likelihood and w = 1 the minimiser is the Bayes
posterior; a simulator-based discrepancy (MMD, energy distance) gives a generalised posterior.

==================  =================================================================
module              what it holds
==================  =================================================================
``pytree``          ``ravel`` of nested dicts/lists/tuples of arrays into one vector
``bijections``      Exp, Sigmoid, Affine, Inverse, Compose (with log |det J|)
``distributions``   Normal, LogNormal, Uniform, Beta, Gamma, Independent, Transformed
``implicit``        Beta and Gamma quantiles with implicit reparameterisation gradients
``families``        DiagonalGaussian, FullRankGaussian (the family interface)
``flows``           RealNVP
``beta_family``     BetaFamily
``divergence``      KL(q‖π), closed form or Monte Carlo
``losses``          mmd, energy_distance, gaussian_nll, mse
``objective``       the objective, pathwise (forward / reverse / triples) and score estimators
``optimizers``      sgd, adam, adamw, clip_by_global_norm, chain, constant, cosine
``calibrate``       ``calibrate`` and its result
==================  =================================================================

    import minidiff as md
    from minidiff import inference as inf

    y = ...                                             # 20 observations
    nll = inf.gaussian_nll(y)
    result = inf.calibrate(lambda th, rng: nll(th[0]), inf.Normal(0.0, 2.0),
                           inf.DiagonalGaussian(1), n_steps=400,
                           optimizer=inf.adam(inf.cosine(0.05, 400)))
"""

from .beta_family import BetaFamily
from .bijections import Affine, Bijection, Compose, Exp, Inverse, Sigmoid
from .calibrate import CalibrationResult, History, calibrate
from .distributions import (
    Beta,
    Distribution,
    Gamma,
    Independent,
    LogNormal,
    Normal,
    Transformed,
    Uniform,
)
from .divergence import analytic_kl, kl_divergence
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

__all__ = [
    "Affine", "Beta", "BetaFamily", "Bijection", "CalibrationResult", "Compose",
    "DiagonalGaussian", "Distribution", "Exp", "Family", "FullRankGaussian", "Gamma", "History",
    "Independent", "Inverse", "LogNormal", "NonFiniteError", "Normal", "Objective", "Optimizer",
    "RealNVP", "Sigmoid", "StepEstimate", "Transformed", "Uniform", "adam", "adamw",
    "analytic_kl", "apply_updates", "calibrate", "chain", "clip_by_global_norm", "constant",
    "cosine", "energy_distance", "evaluate_sample", "gaussian_nll", "kl_divergence",
    "median_heuristic", "mmd", "mse", "ravel", "sgd", "tree_leaves", "tree_map",
]
