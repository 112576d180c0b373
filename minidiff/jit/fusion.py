"""The numba executor (placeholder until fusion lands): runs like replay."""

from __future__ import annotations

from .executors import register_executor
from .replay import compile_replay

register_executor("numba", compile_replay)
