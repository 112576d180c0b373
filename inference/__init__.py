"""Calibration of agent-based models by generalised variational inference (GVI).

Variational families, losses, gradient estimators, the optimiser, executors and run state will
live here; none is here yet.
"""
