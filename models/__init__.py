"""Agent-based models written with minidiff ops only, installed as ``minidiff.models``.

Every model module keeps one contract:

* ``simulate(params, *, n_timesteps, n_agents, rng, ...)`` returns the observed series as a
  backend array and runs unchanged on plain arrays, under ``jacfwd`` (all parameters in one
  pass), under ``grad`` and under stochastic triples
  (``minidiff.stochastic.derivative_estimate``). ``params`` is a sequence or a vector of
  ``len(PARAM_NAMES)`` numbers; ``rng`` is an int seed, a :class:`minidiff.random.Generator`
  (whose keyed streams the model draws from) or None (fresh entropy from the operating system).
* ``DEFAULT_PARAMS`` and ``PARAM_NAMES``, of the same length;
* ``loss(simulated, observed)``: a scalar discrepancy between two observed series, documented
  in the module, 0 when they are equal and differentiable in the simulated one;
* a module docstring with the equations, parameters, defaults and estimators;
* for ``minidiff calibrate``, in one marked block at the end: ``prior()`` (the default prior on
  the unconstrained space, a distribution of :mod:`minidiff.distributions`), ``NATURAL`` (the
  map from that space to the natural parameters, a bijection: ``Coordinatewise(Identity(),
  Exp(), Sigmoid(), Pow10(), ...)``) and ``CALIBRATION`` (the run's defaults).

A model is listed once, in :mod:`minidiff.models.registry` (one line per model), which the
command, the benchmarks and the docs read.

Wrong arguments are refused before anything runs, by the checks of ``models/_checks.py``, with
errors that name the model, the argument and what is allowed.

* :mod:`minidiff.models.random_walk`: Bernoulli random walkers.
* :mod:`minidiff.models.sir`: agent-based SIR epidemic, well mixed or on an Erdős–Rényi or
  Watts–Strogatz contact network.
* :mod:`minidiff.models.cont`: Cont's (2007) threshold model of volatility clustering, also the
  long-horizon workload of the benchmarks and ``minidiff memory``.
* :mod:`minidiff.models.brock_hommes`: Brock and Hommes' (1998) heterogeneous-beliefs market.
* :mod:`minidiff.models.lob`: a zero-intelligence limit-order book, vectorised over many books.
* :mod:`minidiff.models.housing`: a housing market with LTV, LTI and affordability limits as
  parameters (after the Bank of England's Staff Working Paper 976).

Beside the models: :mod:`minidiff.models.stylised_facts` (excess kurtosis and autocorrelations
of returns, to compare a model's series with a market's) and :mod:`minidiff.models.datasets`
(real series shipped by packages: the S&P 500 daily returns of ``arch``, the ``data`` extra;
a CSV export that ``minidiff calibrate --data`` reads back).
"""
