"""Optional dependencies, imported where they are used, with an error that names the extra.

``require("tqdm", "tqdm", "progress=True needs", "progress")`` returns ``tqdm.tqdm``, or raises
``ImportError: progress=True needs tqdm, which is the 'progress' extra: pip install
'minidiff[progress]'`` when tqdm is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["require"]


def require(module: str, name: str, needed_by: str, extra: str, alternative: str = "") -> Any:
    """``module.name``, imported now; ``needed_by`` starts the error ("plots need"),
    ``alternative`` ends it (" (or pass progress=False)")."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        package = module.split(".")[0]
        raise ImportError(f"{needed_by} {package}, which is the '{extra}' extra: pip install "
                          f"'minidiff[{extra}]'{alternative}") from exc
