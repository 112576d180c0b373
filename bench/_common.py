"""What the benchmarks share: the header that says how a run was made, and the allocator switch.

Why the allocator matters here: a 1e5-element float64 array is 800 kB. glibc's ``malloc`` serves
blocks that large from ``mmap`` or from the top of the heap, and gives the top of the heap back
to the operating system once more than a trim threshold is free there. A program that frees
several such arrays at once (as a differentiated op does: primal, tangents, partials) then pays
a page fault for every 4 kB page of the next arrays it allocates, which can cost more than the
arithmetic. ``--tune-malloc`` raises glibc's mmap and trim thresholds (``mallopt``) so freed
memory is reused; it changes nothing on other C libraries.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import minidiff as md

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> str:
    """Ask glibc to keep freed memory (no trimming, no mmap below 32 MB). Says what it did."""
    name = ctypes.util.find_library("c")
    if name is None or platform.system() != "Linux":
        return "not tuned (no glibc found)"
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return "not tuned (no mallopt)"
    ok = (libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
          and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
          and libc.mallopt(_M_TOP_PAD, 64 << 20))
    return ("tuned: mallopt(M_MMAP_THRESHOLD=32MB, M_TRIM_THRESHOLD=1GB, M_TOP_PAD=64MB)"
            if ok else "tuning refused by mallopt")


def add_malloc_option(parser: argparse.ArgumentParser) -> None:
    """The ``--default-malloc`` flag every benchmark takes."""
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc untuned (see bench/_common.py)")


def malloc_from(args: argparse.Namespace) -> str:
    """Tune the allocator unless ``--default-malloc`` was given; say which."""
    return "default" if args.default_malloc else tune_malloc()


def best_of(call: Callable[[], Any], repeat: int,
            sync: Callable[[], None] | None = None) -> tuple[float, Any]:
    """(the shortest of ``repeat`` wall-clock times of ``call()``, the last result).
    ``sync`` runs before starting and before stopping the clock (a GPU's queue)."""
    best, result = math.inf, None
    for _ in range(repeat):
        if sync:
            sync()
        start = time.perf_counter()
        result = call()
        if sync:
            sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def print_header(malloc_note: str) -> None:
    """The command line and the versions and settings that could change the numbers."""
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, minidiff "
          f"{md.__version__}, backend {md.get_backend().name}, {platform.machine()}, "
          f"{os.cpu_count()} cpus")
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("MALLOC_", "OPENBLAS_", "OMP_", "MKL_", "GLIBC_TUNABLES"))}
    print(f"environment: {env or 'nothing relevant set'}; malloc {malloc_note}")
