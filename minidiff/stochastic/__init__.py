"""Gradients of stochastic programs: d/dθ E[f(θ)] when f draws random numbers.

* :mod:`.triples`: ``derivative_estimate``, stochastic triples (Arya et al. 2022), unbiased
  through discrete draws, forward mode.
* :mod:`.blackbox`: ``score_function`` (REINFORCE, with baselines) and ``finite_difference``
  (with or without common random numbers), estimators that treat the program as a black box.
* :mod:`.harness`: ``compare_estimators``, one table of mean, standard error, bias z-score,
  standard deviation and cost per sample.
* ``soft_step`` and ``straight_through`` (hard values with a smooth stand-in's derivative:
  biased, low variance) are ops, in :mod:`minidiff.ops.surrogates`, re-exported here.

The samplers, the discrete distributions and the ``estimator=`` gradients live in
:mod:`minidiff.random`, which this package builds on.
"""

from ..ops.surrogates import soft_step, straight_through
from .blackbox import finite_difference, score_function
from .harness import compare_estimators
from .triples import StochasticTriple, derivative_estimate

__all__ = [
    "StochasticTriple", "compare_estimators", "derivative_estimate", "finite_difference",
    "score_function", "soft_step", "straight_through",
]
