"""The Python-loop reference of a model whose time loop runs as a scan under derivatives."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["python_loop"]


def python_loop(simulate: Callable[..., Any], run: Callable[..., Any]) -> Callable[..., Any]:
    """``simulate`` with its Python time loop wherever it runs: ``run(*arguments, loop=True)``
    with ``simulate``'s arguments bound by its own signature (defaults filled in). The
    reference that the scan is tested and timed against (``bench/model_scans.py``)."""
    signature = inspect.signature(simulate)

    def reference(params: Any, **keywords: Any) -> Any:
        bound = signature.bind(params, **keywords)
        bound.apply_defaults()
        return run(*bound.arguments.values(), loop=True)

    reference.__name__ = reference.__qualname__ = "_python_loop"
    reference.__doc__ = f"{simulate.__module__}.simulate with its Python time loop wherever it runs"
    return reference
