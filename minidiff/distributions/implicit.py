"""Beta and Gamma draws that carry derivatives in their shape parameters.

A Beta(a, b) or Gamma(a, 1) draw cannot be written as a smooth function of (a, b) and a
parameter-free noise the way a Normal can (loc + scale·ε). *Implicit reparameterisation*
(Figurnov, Mohamed & Mnih 2018) differentiates the identity F(z; α) = u instead, where F is the
distribution function and u the uniform the draw came from: holding u fixed,

    dz/dα = −(∂F/∂α)(z; α) / p(z; α).

Here the draw *is* made by inversion, z = F⁻¹(u; α) with u ~ U(0, 1), so this derivative is
exactly the derivative of the sampler itself: two draws from the same uniforms at α and α + h
differ by h·dz/dα + O(h²) (common random numbers), which is what the tests check.

F⁻¹ is SciPy's ``betaincinv`` / ``gammaincinv``, and dz/dα comes from adaptive quadrature of
−(∂F/∂α)/p with the density divided out inside the integral, so no Γ(α) or B(a, b) is formed
and the slopes stay finite for shapes up to 1e8 and beyond, both in the backend
(:meth:`minidiff.Backend.betaincinv_grad`, :meth:`~minidiff.Backend.gammaincinv_grad`).
The quantiles are primitives with their own JVP and VJP rules, so they work under ``jacfwd``,
``grad`` and inside larger programs. Their rules use partials computed on the host, which have no
derivative rules themselves: differentiating a quantile twice raises ``minidiff.ModeError``
rather than returning a silently wrong second derivative.
"""

from __future__ import annotations

from typing import Any

from .. import ops
from ..backend import get_backend
from ..custom import custom_jvp

__all__ = ["beta_quantile", "gamma_quantile", "open_uniform"]


def open_uniform(rng: Any, shape: tuple[int, ...]) -> Any:
    """Uniforms strictly inside (0, 1): ``rng.random`` gives k/2⁵³ for k in [0, 2⁵³), and adding
    half a step, 2⁻⁵⁴, moves every value off 0 (and keeps it below 1) exactly."""
    return rng.random(shape) + 2.0**-54


# ---------------------------------------------------------------------------------------------
# Beta(a, b)
# ---------------------------------------------------------------------------------------------


@custom_jvp
def _beta_partials(a: Any, b: Any, z: Any) -> Any:
    """(dz/da, dz/db) stacked on a leading axis of 2, on raw arrays (no rules of its own)."""
    d_a, d_b = get_backend().betaincinv_grad(a, b, z)
    return ops.stack([d_a, d_b])


@custom_jvp
def _beta_quantile_p(a: Any, b: Any, u: Any) -> Any:
    return get_backend().betaincinv(a, b, u)


@_beta_quantile_p.defjvp
def _beta_quantile_jvp(primals: tuple, tangents: tuple) -> tuple[Any, Any]:
    a, b, u = primals
    t_a, t_b, _ = tangents  # u is a uniform draw: never a parameter
    z = _beta_quantile_p(a, b, u)
    partials = _beta_partials(a, b, z)
    return z, ops.getitem(partials, 0) * t_a + ops.getitem(partials, 1) * t_b


def _beta_quantile_fwd(a: Any, b: Any, u: Any) -> tuple[Any, Any]:
    z = _beta_quantile_p(a, b, u)
    return z, _beta_partials(a, b, z)


def _beta_quantile_bwd(partials: Any, g: Any) -> tuple[Any, Any, Any]:
    return ops.getitem(partials, 0) * g, ops.getitem(partials, 1) * g, None


_beta_quantile_p.defvjp(_beta_quantile_fwd, _beta_quantile_bwd)


def beta_quantile(a: Any, b: Any, u: Any) -> Any:
    """z = F⁻¹(u; a, b), the Beta(a, b) quantile at u, differentiable in a and b.

    a, b, u broadcast together; the result has their broadcast shape. u must not be traced."""
    a, b, u = (ops.asarray(v) for v in (a, b, u))
    shape = _broadcast_shape(a, b, u)
    return _beta_quantile_p(ops.broadcast_to(a, shape), ops.broadcast_to(b, shape),
                            ops.broadcast_to(ops.stop_gradient(u), shape))


# ---------------------------------------------------------------------------------------------
# Gamma(a, 1)
# ---------------------------------------------------------------------------------------------


@custom_jvp
def _gamma_partial(a: Any, z: Any) -> Any:
    """dz/da on raw arrays (no rules of its own)."""
    return get_backend().gammaincinv_grad(a, z)


@custom_jvp
def _gamma_quantile_p(a: Any, u: Any) -> Any:
    return get_backend().gammaincinv(a, u)


@_gamma_quantile_p.defjvp
def _gamma_quantile_jvp(primals: tuple, tangents: tuple) -> tuple[Any, Any]:
    a, u = primals
    z = _gamma_quantile_p(a, u)
    return z, _gamma_partial(a, z) * tangents[0]


def _gamma_quantile_fwd(a: Any, u: Any) -> tuple[Any, Any]:
    z = _gamma_quantile_p(a, u)
    return z, _gamma_partial(a, z)


_gamma_quantile_p.defvjp(_gamma_quantile_fwd, lambda partial, g: (partial * g, None))


def gamma_quantile(a: Any, u: Any) -> Any:
    """z = F⁻¹(u; a), the Gamma(a, 1) quantile at u, differentiable in a (u not traced)."""
    a, u = ops.asarray(a), ops.asarray(u)
    shape = _broadcast_shape(a, u)
    return _gamma_quantile_p(ops.broadcast_to(a, shape),
                             ops.broadcast_to(ops.stop_gradient(u), shape))


def _broadcast_shape(*xs: Any) -> tuple[int, ...]:
    shapes = [tuple(x.shape) for x in xs]
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + s for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
