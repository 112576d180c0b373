"""Seeded, keyed random numbers, with samplers that minidiff can differentiate.

``rng = minidiff.random.default_rng(seed)`` is a NumPy-style generator over the current
backend's random numbers (draws are backend float64 arrays, or traced values when a parameter is
traced).

The rules of randomness
-----------------------
1. **A draw advances its generator**, as ``numpy.random.Generator``'s does: calling
   ``rng.normal()`` twice, or a model twice with the same ``rng``, gives fresh numbers. A Monte
   Carlo loop ``[simulate(θ, rng=rng) for _ in range(n)]`` therefore averages n independent
   runs.
2. **The same seed gives the same numbers.** Two generators made by ``default_rng(seed)`` give
   the same draws when asked the same things in the same order; an int seed passed to a model
   gives the same run every time.
3. **Children.** ``rng.child()`` (or NumPy's ``rng.spawn(n)``) hands out a new, independent
   generator and advances ``rng``: the i-th child depends only on the parent's path and i.
   Every model takes one child per ``simulate`` and keys all its draws under it, so one run's
   draws never depend on θ or on the order things were drawn in, while the next run gets the
   next child.
4. **Keyed streams (common random numbers).** To compare a stochastic program at θ and θ + h,
   both runs must see the *same* random numbers. Fixing the seed is not enough: a seed fixes a
   *sequence*, and as soon as the two runs draw a different number of values (one more arrival,
   an agent that dies earlier) every later draw is shifted. ``rng.stream(key)`` returns the
   child whose draws depend only on (seed, path of keys, key), through an integer derived from
   SHA-256 of the key's canonical form (never Python's ``hash``, which is salted per process).
   Making a stream does not advance its parent, and asking again gives a generator with the
   same draws. Key a draw by what it is for, e.g. ``rng.stream(("shock", t))``, and it is the
   same in every run whatever else was drawn. For common random numbers between two model runs,
   pass the same seed, or the same stream: ``simulate(θ, rng=rng.stream("crn"))`` and
   ``simulate(θ + h, rng=rng.stream("crn"))`` take the same first child.
5. **Replayable steps.** :func:`minidiff.checkpointed_loop` (and ``checkpoint``) run a step
   again during the backward pass, so the step must draw the same numbers every time. Inside a
   step, draw from keyed streams made there (``rng.stream(("step", t))``: made afresh each run,
   the same numbers each time). Drawing from a generator made outside the step, or asking it
   for a child, would advance it, and a generator made in the step from fresh entropy
   (``default_rng(None)``) would differ in every run: under reverse mode both raise
   :class:`minidiff.checkpointing.ReplayError` instead of returning the gradient of other
   random numbers.
6. **Threads.** The transforms and the current backend are per thread, so threads may
   differentiate at once. Give each thread its own generator (a child or a stream): one shared
   by threads advances in whatever order they happen to run.

Reparameterised samplers
------------------------
``normal``, ``lognormal``, ``uniform``, ``exponential``, ``gumbel`` and ``logistic`` transform a
parameter-free draw with minidiff ops (x = loc + scale·z, ...), so traced parameters get
pathwise derivatives dx/dθ in every transform. The output shape is the broadcast of the
parameters' shapes, or ``size`` (which they must broadcast to), as in NumPy.

Discrete samplers and their estimators
--------------------------------------
``bernoulli``, ``binomial``, ``poisson``, ``geometric`` and ``categorical`` invert one uniform U
per sample (:mod:`minidiff.random.distributions`), so every estimator below sees the same
hard value. When a parameter is boxed by an engine with its own way of sampling (stochastic
triples), that engine draws the sample, before any estimator. A discrete sample has derivative
zero almost everywhere; ``estimator=`` picks a stand-in (details in
:mod:`minidiff.random.discrete_gradients`): ``"smoothed"``, ``"straight_through"``,
``"gumbel_softmax"`` (bernoulli and categorical; ``tau``, ``hard``), ``"score"`` or ``"none"``.

The default is ``"smoothed"``: value x exactly, derivative the average of the two one-sided jump
rules, which is linear in δθ (so it works in reverse mode as well as forward), unbiased for E[X]
and so for any f linear in the sample, of low variance, with no temperature to tune. It is biased
for non-linear f: use stochastic triples or the score function there.

``"score"`` gives the value x and no derivative, and adds log p(x; θ) to ``rng.log_prob``, a
traced running sum shared by the generator and every stream derived from it. The surrogate

    S = f + stop_gradient(f − b)·(rng.log_prob − stop_gradient(rng.log_prob))

has value f and derivative ∇f + (f − b)∇log p, unbiased for any f and any baseline b that does
not depend on the sample (:meth:`Generator.score_surrogate`). Call ``reset_log_prob()`` at the
start of each evaluation.

A loop body that must not draw (a :func:`minidiff.scan` step reads its random numbers from
``xs``) can still sample a Bernoulli with a state-dependent p: draw the uniforms beforehand
with ``rng.open_uniform(shape)`` and sample with ``bernoulli_from_uniform(u, p, estimator=...)``
(or ``poisson_from_uniform``, ``binomial_from_uniform``), which gives ``rng.bernoulli``'s value
and derivative for those uniforms (not ``"score"``).

Many trials with a small, fixed probability and no derivative (which agents act this step)
have a cheaper sampler than ``bernoulli``: ``rng.indicators(p, size)`` gives booleans drawn as
the geometric gaps between successes (:mod:`minidiff.random.indicators`), about p·size
uniforms instead of one per trial, with the same joint law.

Categorical's default is ``"straight_through"`` with ``one_hot=True`` (hard one-hot value,
derivative of ``probs``). An index has no useful derivative (its order means nothing), so with
``one_hot=False`` the default is ``"none"``, and it refuses traced ``probs`` rather than return a
silent zero derivative: pass ``estimator="none"`` or ``"score"``, or ask for ``one_hot=True``.

Modules
-------
* :mod:`.generator`: ``Generator`` and ``default_rng``, children, keyed streams and every
  sampler;
* :mod:`.distributions`: the discrete distributions, drawn by inversion, with their jump rules
  (the Poisson and binomial quantiles are exact for every finite parameter, with bounded work
  per draw: :func:`minidiff.backend.poisson_quantile`);
* :mod:`.discrete_gradients`: the gradients ``estimator=`` attaches to a discrete sample
  (``DISCRETE_GRADIENTS`` lists their names).
* :mod:`.indicators`: many Bernoulli(p) trials as geometric gaps;
* :mod:`.from_uniform`: discrete samples from uniforms drawn before a loop, and which engine
  samples a discrete draw;
* :mod:`.keys`, :mod:`.arguments`, :mod:`.batched_generator`: stream keys and their seeds, a
  draw's argument checks, and generators under ``vmap``.

Stochastic triples and the black-box estimators (score function, finite differences) live in
:mod:`minidiff.stochastic`, which builds on this package (never the other way round).
"""

from __future__ import annotations

from .batched_generator import BatchedGenerator
from .discrete_gradients import DISCRETE_GRADIENTS
from .from_uniform import bernoulli_from_uniform, binomial_from_uniform, poisson_from_uniform
from .generator import Generator, default_rng

ESTIMATORS = DISCRETE_GRADIENTS  # the old name, kept until models/ moves to DISCRETE_GRADIENTS

__all__ = ["BatchedGenerator", "DISCRETE_GRADIENTS", "ESTIMATORS", "Generator",
           "bernoulli_from_uniform", "binomial_from_uniform", "default_rng",
           "poisson_from_uniform"]
