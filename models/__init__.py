"""Agent-based models written with minidiff ops only.

Each module provides ``simulate(params, *, n_timesteps, n_agents=..., rng, estimator=...)``,
which returns the observed series as a backend array and runs unchanged on plain arrays, under
``jacfwd`` (all parameters in one pass), under ``grad`` and under stochastic triples
(``minidiff.stochastic.derivative_estimate``), plus ``DEFAULT_PARAMS`` and a docstring with
the equations:

* :mod:`models.random_walk`: Bernoulli random walkers.
* :mod:`models.sir`: agent-based SIR epidemic, well mixed or on an Erdős–Rényi or
  Watts–Strogatz contact network.
* :mod:`models.rama_cont`: Cont's (2007) threshold model of volatility clustering.
* :mod:`models.brock_hommes`: Brock and Hommes' (1998) heterogeneous-beliefs asset market.
"""
