"""Gradients of stochastic programs: d/dθ E[f(θ)] when f draws random numbers.

* :mod:`.surrogates`: ``soft_step`` and ``straight_through``, hard values with a smooth
  stand-in's derivative (biased, low variance).
* :mod:`.triples`: ``derivative_estimate``, stochastic triples (Arya et al. 2022), unbiased
  through discrete draws, forward mode.
* :mod:`.estimators`: ``score_function`` (REINFORCE, with baselines) and ``finite_difference``
  (with or without common random numbers).
* :mod:`.harness`: ``compare_estimators``, one table of mean, standard error, bias z-score,
  standard deviation and cost per sample.
* :mod:`.distributions`: the discrete distributions, drawn by inversion, with their jump rules.

The samplers themselves live in :mod:`minidiff.random`.
"""

from .estimators import finite_difference, score_function
from .harness import compare_estimators
from .surrogates import soft_step, straight_through
from .triples import StochasticTriple, derivative_estimate

__all__ = [
    "StochasticTriple", "compare_estimators", "derivative_estimate", "finite_difference",
    "score_function", "soft_step", "straight_through",
]
