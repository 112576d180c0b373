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
from .batching import BatchingError, batch_levels
from .core import raw, shape_of
from .ops import concatenate, reshape
from .pytree import tree_leaves, tree_map
from .transforms import jvp, vjp
from .validation import check_positive_int

__all__ = ["check_grads"]


def _inner(a: Any, b: Any) -> float:
    """Σ over the leaves of two pytrees of the same structure of Σ aᵢbᵢ."""
    xp = _backend.get_backend().xp
    return sum(float(xp.sum(raw(x) * raw(y))) for x, y in zip(tree_leaves(a), tree_leaves(b)))


def _abs_inner(a: Any, b: Any) -> float:
    xp = _backend.get_backend().xp
    return sum(float(xp.sum(xp.abs(raw(x) * raw(y))))
               for x, y in zip(tree_leaves(a), tree_leaves(b)))


def _max_abs(a: Any) -> float:
    xp = _backend.get_backend().xp
    best = 0.0
    for leaf in tree_leaves(a):
        flat = xp.reshape(raw(leaf), (-1,))
        if flat.shape[0]:
            best = max(best, float(xp.max(xp.abs(flat))))
    return best


def _close(actual: float, expected: float, rtol: float, atol: float) -> bool:
    return abs(actual - expected) <= atol + rtol * abs(expected)


def _as_array(x: Any) -> Any:
    b = _backend.get_backend()
    return b.asarray(x) if not hasattr(x, "shape") else x


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
        f: a function of ``args`` returning an array or a pytree of arrays.
        args: the point, a sequence of arguments, each an array or a pytree of arrays; every
            leaf is differentiated (floats, float64 recommended).
        modes: any of ``"fwd"`` and ``"rev"``.
        order: 1 checks first derivatives; 2 also checks the derivatives of the derivatives.
        eps: finite-difference step.
        rtol, atol: tolerance of the finite-difference comparisons.
        ip_rtol: relative tolerance of the identity ⟨u, J v⟩ = ⟨Jᵀu, v⟩.
        seed: seed of the random directions.

    For pytrees, v and u are pytrees of the arguments' and the output's structure, and the
    inner products sum over their leaves.
    """
    unknown = set(modes) - {"fwd", "rev"}
    if unknown:
        raise ValueError(f"check_grads: unknown modes {sorted(unknown)}; use 'fwd' and 'rev'")
    check_positive_int("check_grads", "order", order)
    if batch_levels():
        raise BatchingError("check_grads: the checks reduce each derivative to numbers (inner "
                            "products, a maximum error), but under minidiff.vmap those would "
                            "pool the batch elements; call check_grads outside vmap, once per "
                            "element")
    if not isinstance(args, tuple | list):
        raise TypeError(f"check_grads: args must be a tuple (or list) of arguments, got "
                        f"{type(args).__name__}; write check_grads(f, (x,))")
    b = _backend.get_backend()
    args = tuple(tree_map(_as_array, a) for a in args)
    rng = b.make_rng(seed)
    directions = tuple(tree_map(lambda a: b.asarray(rng.standard_normal(shape_of(a))), a)
                       for a in args)
    out = f(*args)
    if out is None:
        raise TypeError("check_grads: f returned None (did it forget a `return`?); it must "
                        "return an array or a pytree of arrays")
    u = tree_map(lambda o: b.asarray(rng.standard_normal(shape_of(o))), out)

    def moved(sign: float) -> tuple:
        return tuple(tree_map(lambda a, v: a + sign * eps * v, a, d)
                     for a, d in zip(args, directions))

    plus, minus = f(*moved(1.0)), f(*moved(-1.0))
    numeric_jv = tree_map(lambda p, m: (raw(p) - raw(m)) / (2 * eps), plus, minus)
    scale = _abs_inner(u, numeric_jv)
    numeric_ujv = _inner(u, numeric_jv)

    jv = None
    if "fwd" in modes:
        _, jv = jvp(f, args, directions)
        err = _max_abs(tree_map(lambda a, n: raw(a) - n, jv, numeric_jv))
        bound = atol + rtol * _max_abs(numeric_jv)
        assert err <= bound, (
            f"check_grads (order {order}): forward-mode J·v differs from central differences "
            f"by {err:.3g} (allowed {bound:.3g})"
        )
    if "rev" in modes:
        _, pullback = vjp(f, *args)
        cotangents = pullback(u)
        ujv_rev = _inner(cotangents, directions)
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
                return concatenate([reshape(c, (-1,)) for c in tree_leaves(cots)])

            check_grads(pulled_back, args, **lower)
