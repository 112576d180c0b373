"""Shared fixtures. ``backend`` runs a test once on NumPy and once on array_api_strict, which
accepts only the array API standard: passing there proves the engine uses nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

import minidiff as md

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("ci")

ENGINE_BACKENDS = ["numpy", "array_api_strict"]


@pytest.fixture(params=ENGINE_BACKENDS)
def backend(request):
    """The current backend for the duration of one test."""
    with md.use_backend(request.param) as b:
        yield b


@pytest.fixture
def to_array(backend):
    """Convert NumPy data to the current backend's arrays (float64)."""
    return lambda x: backend.from_host(np.asarray(x, dtype=np.float64))


@pytest.fixture
def cupy_backend():
    """The CuPy backend, current for the test; skips (with the reason) where it cannot start."""
    context = md.use_backend("cupy")
    try:
        backend = context.__enter__()
    except md.BackendError as exc:
        pytest.skip(f"CuPy backend unavailable: {exc}")
    try:
        yield backend
    finally:
        context.__exit__(None, None, None)
