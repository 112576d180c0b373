"""JAX and PyTorch on the generic Cont step, timed beside our rows (the peer programs).

The peer programs (``peers/cont``: ``common.py``, ``model_numpy.py``, ``model_jax.py``,
``model_torch.py``) write the generic Cont step in NumPy (their primal), JAX (``lax.scan`` under
``jax.jit``) and PyTorch (eager reverse, ``torch.func.jacfwd``). Where JAX or PyTorch is
installed in the environment running the bench, each method is timed at the bench's N and T
(first call, which compiles, not timed; best of ``repeat``) and divided by the peers' own NumPy
primal timed in the same run: the peers draw their own noise (a logistic reset), so the ratio to
their primal is what compares with ours. Otherwise the reference ratios their README gives are
printed, with that source.

The folder is found at ``--peers DIR``, else ``$MINIDIFF_PEERS``, else ``../shared/peers``
beside the repository (and the shared checkout's ``/work/shared/peers``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

REFERENCE = ("reference ratios to the peers' NumPy primal, from {source}: at N = 1e5 "
             "(T = 1000) torch eager 7.9x grad / 37x jacfwd(4), JAX jit 8.8x / 6.4x; at N = 1e3 "
             "torch 25x, JAX jit 2.5x")


def find_peers(given: str | None) -> Path | None:
    here = Path(__file__).resolve().parents[1]
    candidates = [given, os.environ.get("MINIDIFF_PEERS"), here.parent / "shared" / "peers",
                  "/work/shared/peers"]
    for c in candidates:
        if c and (Path(c) / "cont" / "common.py").is_file():
            return Path(c)
    return None


def _best(call: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def peer_lines(n_agents: int, n_steps: int, repeat: int, given: str | None) -> list[str]:
    """Lines to print: each installed peer's ratios, or the reference figures."""
    peers = find_peers(given)
    if peers is None:
        return ["peers: no peer programs found (--peers DIR); " + REFERENCE.format(
            source="the peers' README (not found here)")]
    sys.path.insert(0, str(peers / "cont"))
    try:
        common = importlib.import_module("common")
        numpy_model = importlib.import_module("model_numpy")
        z0, z, noise = common.make_noise(n_agents, n_steps)
        log_p = common.LOG_P
        lines, missing = [], False
        for package, module, names in (
                ("jax", "model_jax", ("jax_jit_primal", "jax_jit_grad_rev", "jax_jit_jacfwd")),
                ("torch", "model_torch", ("torch_primal", "torch_grad_rev", "torch_jacfwd"))):
            try:
                model = importlib.import_module(module)
            except ImportError:
                lines.append(f"peers: {package} is not installed in this environment")
                missing = True
                continue
            args = model.setup(n_agents, n_steps, z0, z, noise)
            p = model.setup(n_agents, n_steps, log_p, log_p, log_p)[0] if package == "torch" \
                else log_p
            seconds = []
            for name in names:
                method = model.METHODS[name]
                model.to_numpy(method(p, *args))  # compiles (jit), not timed
                seconds.append(_best(lambda: model.to_numpy(method(p, *args)), repeat))
            t_np = _best(lambda: numpy_model.simulate(log_p, z0, z, noise), max(repeat, 3))
            lines.append(f"peers: {package} ({model.__name__}, {names[0].rsplit('_', 1)[0]}) "
                         f"primal {seconds[0] / t_np:.2f}x, grad {seconds[1] / t_np:.2f}x, "
                         f"jacfwd(4) {seconds[2] / t_np:.2f}x their numpy primal "
                         f"({t_np:.4f}s); seconds: grad {seconds[1]:.4f}, jacfwd "
                         f"{seconds[2]:.4f}")
        if missing:  # the figures the peers' README gives stand in for the ones not run
            lines.append("peers: " + REFERENCE.format(source=peers / "README.md"))
        return lines
    finally:
        sys.path.remove(str(peers / "cont"))
