"""Distributions and bijections written with minidiff ops, for priors, variational families and
models that declare their priors and natural scales.

==================  ==================================================================
module              what it holds
==================  ==================================================================
``bijections``      Identity, Exp, Pow10, Sigmoid, Affine, Inverse, Compose, Coordinatewise
``implicit``        Beta and Gamma quantiles with implicit reparameterisation gradients
``univariate``      Normal, LogNormal, Uniform, Beta, Gamma (a batch shape, elementwise)
``multivariate``    Independent, Transformed, MultivariateNormalTriL (θ of shape (..., d))
``kl``              KL(q ‖ p) in closed form, from a table filled by ``register_kl``
==================  ==================================================================

(The discrete distributions that models draw agents' events from, with their jump rules for
stochastic triples, are in :mod:`minidiff.random`.)
"""

from .bijections import (
    Affine,
    Bijection,
    Compose,
    Coordinatewise,
    Exp,
    Identity,
    Inverse,
    Pow10,
    Sigmoid,
)
from .implicit import beta_quantile, gamma_quantile, open_uniform
from .kl import KL_RULES, closed_form_kl, register_kl
from .multivariate import (
    Independent,
    MultivariateNormalTriL,
    Transformed,
    as_vector,
    standard_normal_log_prob,
)
from .univariate import Beta, Distribution, Gamma, LogNormal, Normal, Uniform

__all__ = [
    "Affine", "Beta", "Bijection", "Compose", "Coordinatewise", "Distribution", "Exp", "Gamma",
    "Identity", "Independent", "Inverse", "KL_RULES", "LogNormal", "MultivariateNormalTriL",
    "Normal", "Pow10", "Sigmoid", "Transformed", "Uniform", "as_vector", "beta_quantile",
    "closed_form_kl", "gamma_quantile", "open_uniform", "register_kl", "standard_normal_log_prob",
]
