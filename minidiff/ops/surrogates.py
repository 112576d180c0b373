"""Surrogate gradients: keep a hard decision's value, borrow a smooth function's derivative.

A threshold ``1[x ≥ 0]`` has derivative zero almost everywhere, so a model built from
thresholds has a useless exact gradient. A surrogate keeps the hard value in the forward pass
and uses the derivative of a smooth stand-in in both derivative passes. The result is a
*biased* but low-variance gradient, and the bias shrinks as the stand-in sharpens.

* :func:`soft_step` ``(x, k)``: value ``1[x ≥ 0]``, derivative that of the sigmoid σ(kx), namely
  k σ(kx)(1 − σ(kx)). One primitive, so the forward pass computes only the step: the sigmoid is
  evaluated only when a derivative is taken (that is what makes it cheap in long simulations).
* :func:`straight_through` ``(hard, soft)``: value ``hard`` exactly, derivative that of
  ``soft``; the general form, for any pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..backend import get_backend
from ..core import Primitive, ShapeError, shape_of, without_derivatives
from .elementwise import add, elementwise_primitive, multiply, tanh
from .linear import align_tangent, as_batched, unbroadcast

__all__ = ["soft_step", "straight_through"]


def _step(x: Any, *, k: float) -> Any:
    b = get_backend()
    return b.xp.astype(x >= 0, b.float_dtype)


def _sigmoid_slope(x: Any, k: float) -> Any:
    """d/dx σ(kx) = k σ(kx)(1 − σ(kx)) = (k/4)(1 − tanh²(kx/2)).

    The tanh form takes one transcendental pass instead of sigmoid's several; where it loses
    relative accuracy (|kx| > 36, as tanh² rounds to 1) the slope is below 1e-15 k anyway."""
    b = get_backend()
    if isinstance(x, b.array_type):  # plain arrays (no nested transform): update in place
        t = b.xp.tanh(x * (0.5 * k))
        t *= t
        t *= -0.25 * k
        t += 0.25 * k
        return t
    t = tanh(multiply(x, 0.5 * k))  # the same operations as above, so both give the same bits
    return add(multiply(multiply(t, t), -0.25 * k), 0.25 * k)


_soft_step_p = elementwise_primitive("soft_step", _step, partials=[_sigmoid_slope], fresh=True,
                                     loop="(1.0 if {0} >= 0.0 else 0.0)")


def soft_step(x: Any, k: float = 1.0) -> Any:
    """``1[x ≥ 0]`` (as float64) with the derivative of the sigmoid σ(kx).

    Args:
        x: the array to threshold at 0.
        k: steepness (> 0) of the surrogate; larger k is closer to the step and noisier.
    """
    if not isinstance(k, int | float) or not math.isfinite(k) or k <= 0:
        raise ValueError(f"soft_step: steepness k must be a finite number > 0, got {k!r}")
    return _soft_step_p(x, k=float(k))


def _st_jvp(tangents: Sequence[Any], args: Sequence[Any], out: Any) -> Any:
    return align_tangent(tangents[0], len(shape_of(args[0])), len(shape_of(out)))


_straight_through_p = Primitive(
    "straight_through",
    lambda soft, hard: hard,
    passes_through=1,
    loop="{1}",
    jvp=_st_jvp,
    save=lambda args, out, needs: shape_of(args[0]),
    vjp=lambda g, soft_shape, needs: [unbroadcast(g, soft_shape), None],
    # both of one shape: give each the batch axis
    batch=lambda size, args, batched: _straight_through_p(
        *[as_batched(a, size, b) for a, b in zip(args, batched)]),
)


def straight_through(hard: Any, soft: Any) -> Any:
    """Value ``hard`` (exactly), derivative that of ``soft``.

    ``hard`` is a constant (its own derivative is ignored); the two must have the same shape.
    Unlike ``soft + stop_gradient(hard - soft)``, the value carries no rounding error.
    """
    hard = without_derivatives(hard)
    if shape_of(hard) != shape_of(soft):
        raise ShapeError(f"straight_through: hard has shape {shape_of(hard)} but soft has shape "
                         f"{shape_of(soft)}; they must match")
    return _straight_through_p(soft, hard)
