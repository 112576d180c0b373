"""Agent-based models written with minidiff ops (random walk, SIR, Cont, Brock-Hommes).

Each model will be a module with ``simulate(params, ..., rng=...)`` that runs unchanged on plain
arrays, under forward mode, reverse mode and stochastic triples. None is here yet: they arrive
with the agent-based-models issue.
"""
