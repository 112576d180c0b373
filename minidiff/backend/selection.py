"""Which backend is current: one per thread, with a process-wide default.

Choose the default of every thread with ``minidiff.set_backend("cupy")`` or, at import time,
the environment variable ``MINIDIFF_BACKEND``; choose one for a block of code in this thread
only with ``with minidiff.use_backend("array_api_strict"): ...``. Two threads can therefore
differentiate at once, each with its own backend. A library is loaded the first time it is
asked for.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .interface import Backend, BackendError
from .libraries import make_array_api_strict, make_cupy, make_numpy

__all__ = ["available_backends", "backend_of", "get_backend", "set_backend", "use_backend"]

_FACTORIES: dict[str, Callable[[], Backend]] = {
    "numpy": make_numpy,
    "cupy": make_cupy,
    "array_api_strict": make_array_api_strict,
}
_LOADED: dict[str, Backend] = {}
_LOADING = threading.Lock()  # two threads asking for a new backend load it once


# The backend of the innermost ``use_backend`` block, per thread (and per asyncio task); unset
# outside any block, where the process-wide default applies.
_block: contextvars.ContextVar[Backend] = contextvars.ContextVar("minidiff_backend")
_default: Backend  # set at the end of the module, from MINIDIFF_BACKEND


def available_backends() -> tuple[str, ...]:
    """The names ``set_backend`` accepts (whether or not their library is installed)."""
    return tuple(_FACTORIES)


def _load(name: str | Backend) -> Backend:
    if isinstance(name, Backend):
        return name
    if name not in _FACTORIES:
        raise BackendError(
            f"unknown backend {name!r}; choose one of {', '.join(map(repr, _FACTORIES))}"
        )
    with _LOADING:
        if name not in _LOADED:
            _LOADED[name] = _FACTORIES[name]()
        return _LOADED[name]


def get_backend() -> Backend:
    """The backend now in use in this thread: the one public way to read it (a thread-local
    lookup, cheap enough to call inside every op)."""
    return _block.get(_default)


def backend_of(x: Any) -> Backend | None:
    """The loaded backend whose array ``x`` is (None if no loaded backend owns it), to name
    the culprit when arrays of two backends are mixed."""
    for backend in _LOADED.values():
        if backend.is_array(x):
            return backend
    return None


def set_backend(name: str | Backend) -> Backend:
    """Make ``name`` the current backend for the rest of the program and return it.

    Outside any ``use_backend`` block this is the default of every thread (a thread inside
    its own block keeps that block's backend); inside one, it replaces that block's backend
    until the block ends."""
    global _default
    backend = _load(name)
    if _block.get(None) is None:
        _default = backend
    else:
        _block.set(backend)  # the block's exit restores what was current before it
    return backend


@contextlib.contextmanager
def use_backend(name: str | Backend) -> Iterator[Backend]:
    """Use backend ``name`` inside a ``with`` block in this thread, then restore the previous
    one (other threads are unaffected)."""
    backend = _load(name)
    token = _block.set(backend)
    try:
        yield backend
    finally:
        _block.reset(token)



def _initial_backend() -> Backend:
    name = os.environ.get("MINIDIFF_BACKEND", "") or "numpy"
    try:
        return _load(name)
    except BackendError as exc:
        raise BackendError(f"MINIDIFF_BACKEND={name!r}: {exc}") from exc


_default = _initial_backend()
