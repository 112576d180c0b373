"""Gradient checks: compare both engines with finite differences and with each other.

For a function f with inputs x (one or more arrays), random directions v (one per input) and a
random output cotangent u, three quantities must agree:

* central differences:  J v ≈ (f(x + εv) − f(x − εv)) / 2ε, with error O(ε²);
* forward mode:         J v from ``jvp``;
* reverse mode:         Jᵀu from ``vjp``, compared through ⟨u, J v⟩ = ⟨Jᵀu, v⟩.

The last identity holds exactly in exact arithmetic, so when both modes run it is checked to
``ip_rtol`` (1e-12 by default) rather than to finite-difference accuracy. ``order=2`` repeats
every check on the derivative functions x ↦ J v and x ↦ Jᵀu, which covers forward-over-forward,
forward-over-reverse, reverse-over-forward and reverse-over-reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend
from .core import raw, shape_of
from .ops import concatenate, reshape
from .transforms import jvp, vjp

__all__ = ["check_grads"]


def _inner(a: Any, b: Any) -> float:
    xp = _backend.get_backend().xp
    return float(xp.sum(raw(a) * raw(b)))


def _abs_inner(a: Any, b: Any) -> float:
    xp = _backend.get_backend().xp
    return float(xp.sum(xp.abs(raw(a) * raw(b))))


def _max_abs(a: Any) -> float:
    xp = _backend.get_backend().xp
    flat = xp.reshape(a, (-1,))
    return float(xp.max(xp.abs(flat))) if flat.shape[0] else 0.0


def _close(actual: float, expected: float, rtol: float, atol: float) -> bool:
    return abs(actual - expected) <= atol + rtol * abs(expected)


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    modes: Sequence[str] = ("fwd", "rev"),
    order: int = 2,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    ip_rtol: float = 1e-12,
    seed: int = 0,
) -> None:
    """Check the derivatives of ``f`` at ``args``; raise ``AssertionError`` on disagreement.

    Args:
        f: a function of the arrays in ``args`` returning one array.
        args: the point; every argument is differentiated (floats, float64 recommended).
        modes: any of ``"fwd"`` and ``"rev"``.
        order: 1 checks first derivatives; 2 also checks the derivatives of the derivatives.
        eps: finite-difference step.
        rtol, atol: tolerance of the finite-difference comparisons.
        ip_rtol: relative tolerance of the identity ⟨u, J v⟩ = ⟨Jᵀu, v⟩.
        seed: seed of the random directions.
    """
    unknown = set(modes) - {"fwd", "rev"}
    if unknown:
        raise ValueError(f"check_grads: unknown modes {sorted(unknown)}; use 'fwd' and 'rev'")
    if order < 1:
        raise ValueError("check_grads: order must be at least 1")
    b = _backend.get_backend()
    args = tuple(b.asarray(a) if not hasattr(a, "shape") else a for a in args)
    rng = b.make_rng(seed)
    directions = tuple(b.asarray(rng.standard_normal(shape_of(a))) for a in args)
    out = f(*args)
    u = b.asarray(rng.standard_normal(shape_of(out)))

    plus = f(*[a + eps * v for a, v in zip(args, directions)])
    minus = f(*[a - eps * v for a, v in zip(args, directions)])
    numeric_jv = (raw(plus) - raw(minus)) / (2 * eps)
    scale = _abs_inner(u, numeric_jv)
    numeric_ujv = _inner(u, numeric_jv)

    jv = None
    if "fwd" in modes:
        _, jv = jvp(f, args, directions)
        err = _max_abs(raw(jv) - numeric_jv)
        bound = atol + rtol * _max_abs(numeric_jv)
        assert err <= bound, (
            f"check_grads (order {order}): forward-mode J·v differs from central differences "
            f"by {err:.3g} (allowed {bound:.3g})"
        )
    if "rev" in modes:
        _, pullback = vjp(f, *args)
        cotangents = pullback(u)
        ujv_rev = sum(_inner(c, v) for c, v in zip(cotangents, directions))
        assert _close(ujv_rev, numeric_ujv, rtol, atol + rtol * scale), (
            f"check_grads (order {order}): reverse mode gives <J^T u, v> = {ujv_rev!r} but "
            f"central differences give <u, J v> = {numeric_ujv!r}"
        )
        if jv is not None:
            ujv_fwd = _inner(u, jv)
            tolerance = ip_rtol * max(abs(ujv_fwd), abs(ujv_rev), _abs_inner(u, jv), 1e-300)
            assert abs(ujv_fwd - ujv_rev) <= tolerance, (
                f"check_grads: <u, J v> = {ujv_fwd!r} (forward) but <J^T u, v> = {ujv_rev!r} "
                f"(reverse): the JVP and VJP rules are not transposes of each other"
            )

    if order > 1:
        lower = dict(modes=modes, order=order - 1, eps=eps, rtol=rtol, atol=atol,
                     ip_rtol=ip_rtol, seed=seed + 1)
        if "fwd" in modes:
            check_grads(lambda *xs: jvp(f, xs, directions)[1], args, **lower)
        if "rev" in modes:
            def pulled_back(*xs: Any) -> Any:
                cots = vjp(f, *xs)[1](u)
                return concatenate([reshape(c, (-1,)) for c in cots])

            check_grads(pulled_back, args, **lower)
