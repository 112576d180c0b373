"""Stream keys and the seeds derived from them.

A generator is named by its *path*: the root seed followed by one element per ``stream(key)``
(the key, as plain str / int / nested tuples) or ``spawn``/``child`` (a :class:`Child`). The
seed of the generator at a path is a hash of the path's ``repr``, so equal paths give equal
numbers in every process, and distinct paths independent ones.
"""

from __future__ import annotations

import hashlib
import operator
from typing import Any

__all__ = ["Child", "canonical_key", "derived_seed"]


def canonical_key(key: Any) -> Any:
    """Keys as plain str / int / nested tuples, so that equal keys have equal ``repr``."""
    if isinstance(key, str):
        return str(key)
    if isinstance(key, tuple):
        return tuple(canonical_key(k) for k in key)
    try:
        return operator.index(key)  # ints, NumPy integers, bools (as 0/1)
    except TypeError:
        raise TypeError(f"stream: a key must be a str, an int or a tuple of them, got "
                        f"{key!r} ({type(key).__name__})") from None


class Child:
    """The path element of the i-th child handed out by ``spawn``/``child``: its repr can
    never be that of a stream key (a str, an int or a tuple), so the two never collide."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<child {self.index}>"


def derived_seed(path: tuple) -> int:
    digest = hashlib.sha256(repr(path).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: every backend accepts it
