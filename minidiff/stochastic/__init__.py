"""Gradients of stochastic programs.

So far: surrogate gradients for hard decisions (:mod:`.surrogates`). Samplers, estimators and
stochastic triples arrive with the stochastic-gradients issue.
"""

from .surrogates import soft_step, straight_through
from .triples import StochasticTriple, derivative_estimate

__all__ = ["StochasticTriple", "derivative_estimate", "soft_step", "straight_through"]
