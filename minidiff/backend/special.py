"""Host-side special functions for ``minidiff.inference`` (its Beta and Gamma distributions).

The regularised incomplete beta and gamma functions, their inverses, and their derivatives in
the shape parameters, which implicit reparameterisation needs (Figurnov et al. 2018:
dz/dα = −(∂F/∂α)(z) / p(z)). Computed with SciPy on the host (``to_host`` / ``from_host``), so
they serve every backend: :class:`HostSpecialFunctions` gives them to ``Backend`` as methods.
The AD engines see them as constants, wrapped in primitives with their own rules
(``inference/implicit.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.special as sps
from scipy.integrate import quad

__all__ = ["HostSpecialFunctions"]


class HostSpecialFunctions:
    """The incomplete beta and gamma functions of a backend, computed on the host; the class
    that uses it supplies ``to_host`` and ``from_host``."""

    to_host: Callable[[Any], np.ndarray]
    from_host: Callable[[np.ndarray], Any]

    def _on_host(self, fn: Callable[..., Any], *args: Any) -> Any:
        host = np.broadcast_arrays(*(np.asarray(self.to_host(a), dtype=np.float64)
                                     for a in args))
        return self.from_host(np.asarray(fn(*host), dtype=np.float64))

    def betainc(self, a: Any, b: Any, x: Any) -> Any:
        """I_x(a, b), the Beta(a, b) cumulative distribution function at x."""
        return self._on_host(sps.betainc, a, b, x)

    def betaincinv(self, a: Any, b: Any, u: Any) -> Any:
        """The x in [0, 1] with I_x(a, b) = u (the Beta(a, b) quantile function)."""
        return self._on_host(sps.betaincinv, a, b, u)

    def gammainc(self, a: Any, x: Any) -> Any:
        """P(a, x) = γ(a, x)/Γ(a), the Gamma(a, 1) cumulative distribution function at x."""
        return self._on_host(sps.gammainc, a, x)

    def gammaincinv(self, a: Any, u: Any) -> Any:
        """The x ≥ 0 with P(a, x) = u (the Gamma(a, 1) quantile function)."""
        return self._on_host(sps.gammaincinv, a, u)

    def betainc_grad(self, a: Any, b: Any, x: Any) -> tuple[Any, Any]:
        """(∂I_x(a, b)/∂a, ∂I_x(a, b)/∂b), elementwise: −p(x)·(∂x/∂a, ∂x/∂b), with the
        density p(x) = x^(a−1)(1−x)^(b−1)/B(a, b) in log space and the quantile's slopes of
        :meth:`betaincinv_grad`."""
        return self._elementwise_partials(_beta_partials, a, b, x, scaled=True)

    def betaincinv_grad(self, a: Any, b: Any, x: Any) -> tuple[Any, Any]:
        """(∂x/∂a, ∂x/∂b) of the Beta(a, b) quantile x = I⁻¹(u; a, b), held at u, given x.

        Implicit differentiation of I_x(a, b) = u gives ∂x/∂a = −(∂I/∂a)/p(x), and

            ∂I/∂a = ∫_0^x (log t − ψ(a) + ψ(a+b)) t^(a−1)(1−t)^(b−1) dt / B(a, b)

        (log(1−t) and ψ(b) for ∂I/∂b). Dividing by p(x) inside the integral leaves the ratio
        r(t) = p(t)/p(x) = exp((a−1) log(t/x) + (b−1) log((1−t)/(1−x))), which is at most about
        1 below the mean, so neither B(a, b) nor x^a is formed (they overflow from a ≈ 750).
        Above the mean, by symmetry I_x(a, b) = 1 − I_(1−x)(b, a), so the ratio stays small
        there too. See :func:`_peak_quad` for the quadrature; for a < 1, where t^(a−1) is
        singular at 0, QUADPACK's algebraic weights take the singularity."""
        return self._elementwise_partials(_beta_partials, a, b, x, scaled=False)

    def gammainc_grad(self, a: Any, x: Any) -> Any:
        """∂P(a, x)/∂a, elementwise: −p(x)·∂x/∂a, with the Gamma(a, 1) density
        p(x) = x^(a−1)e^(−x)/Γ(a) in log space and the slope of :meth:`gammaincinv_grad`."""
        return self._elementwise_partials(_gamma_partials, a, x, scaled=True)[0]

    def gammaincinv_grad(self, a: Any, x: Any) -> Any:
        """∂x/∂a of the Gamma(a, 1) quantile x = P⁻¹(u; a), held at u, given x.

        ∂x/∂a = −(∂P/∂a)/p(x) with ∂P/∂a = ∫_0^x (log t − ψ(a)) t^(a−1)e^(−t) dt/Γ(a) below
        the mean (x ≤ a) and −∫_x^∞ (the same) above it (Q = 1 − P), so nothing cancels.
        Divided by p(x) inside the integral the integrand holds r(t) = p(t)/p(x) =
        exp((a−1) log(t/x) − (t − x)) ≤ about 1: no Γ(a), no x^a, finite up to a = 1e8 and
        beyond (see :func:`_peak_quad`)."""
        return self._elementwise_partials(_gamma_partials, a, x, scaled=False)[0]

    def _elementwise_partials(self, rule: Callable[..., tuple], *args: Any,
                              scaled: bool) -> tuple[Any, ...]:
        host = np.broadcast_arrays(*(np.asarray(self.to_host(v), dtype=np.float64)
                                     for v in args))
        outs: list[np.ndarray] | None = None
        for k in np.ndindex(host[0].shape):
            values = rule(*(float(h[k]) for h in host), scaled=scaled)
            if outs is None:
                outs = [np.empty(host[0].shape) for _ in values]
            for out, v in zip(outs, values):
                out[k] = v
        if outs is None:  # no elements
            outs = [np.empty(host[0].shape) for _ in range(len(args) - 1)]
        return tuple(self.from_host(o) for o in outs)

    # -- end of the block for minidiff.inference ------------------------------------------------




_QUAD = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 200}


def _peak_quad(integrands: Sequence[Callable[[float], float]], phi: Callable[[float], float],
               slope: float, curvature: float, end: float) -> list[float]:
    """∫_0^end g(v)·exp(φ(v)) dv for each g of ``integrands``, where φ(0) = 0, φ is unimodal
    with its peak within about one width of 0, and ``slope``, ``curvature`` are φ'(0) and
    φ''(0) (≤ 0).

    The mass of exp(φ) lies within a few widths w = 1/max(|φ'(0)|, √|φ''(0)|) of 0, however
    long [0, end] is (w ≈ √a for a Gamma(a) at its mean). QUADPACK on the whole interval could
    step over so narrow a peak, so the interval is cut at w, 2w, 4w, ... and the pieces are
    summed until exp(φ) has fallen below e^−60 (past the peak it only falls) or ``end`` is
    reached."""
    width = 1.0 / max(abs(slope), math.sqrt(abs(curvature)), 1e-300)
    totals = [0.0] * len(integrands)
    lo, hi = 0.0, min(width, end)
    while True:
        for i, g in enumerate(integrands):
            totals[i] += quad(lambda v, g=g: _times_exp(g, phi, v), lo, hi, **_QUAD)[0]
        if hi >= end or (phi(hi) < -60.0 and hi > 4.0 * width):
            return totals
        lo, hi = hi, min(2.0 * hi, end)


def _times_exp(g: Callable[[float], float], phi: Callable[[float], float], v: float) -> float:
    weight = math.exp(phi(v))
    return g(v) * weight if weight > 0.0 else 0.0


def _log1p_ratio(v: float, x: float) -> float:
    return math.log1p(v / x) if v / x > -1.0 else -math.inf


def _times(c: float, log_value: float) -> float:
    """c · log_value, with 0 · (−∞) = 0 (a power t^0 = 1 at t = 0)."""
    return c * log_value if c != 0.0 else 0.0


def _gamma_partials(a: float, x: float, *, scaled: bool) -> tuple[float]:
    """(∂x/∂a,) of the Gamma(a, 1) quantile at x, or (∂P(a, x)/∂a,) when ``scaled``."""
    if not a > 0 or not x >= 0:
        return (math.nan,)
    if x == 0.0 or math.isinf(x):
        return (0.0,)
    log_density = (a - 1.0) * math.log(x) - x - math.lgamma(a)
    level = math.log(x) - sps.digamma(a)  # log t − ψ(a) = level + log(t/x)
    if x <= a and a < 1.0:  # t^(a−1) singular at 0: algebraic weights on t = x s
        weight = {"wvar": (a - 1.0, 0.0), **_QUAD}

        def grow(s: float) -> float:
            return math.exp(x * (1.0 - s))  # ≤ e^a < e: x ≤ a < 1

        j0 = quad(grow, 0.0, 1.0, weight="alg", **weight)[0]
        jlog = quad(grow, 0.0, 1.0, weight="alg-loga", **weight)[0]
        slope = -x * (level * j0 + jlog)
    elif x <= a:  # t = x − v, v in [0, x]
        integral, = _peak_quad(
            [lambda v: level + _log1p_ratio(-v, x)],
            lambda v: _times(a - 1.0, _log1p_ratio(-v, x)) + v,
            1.0 - (a - 1.0) / x, -(a - 1.0) / (x * x), x)
        slope = -integral
    else:  # above the mean: t = x + v, v in [0, ∞), and ∂P/∂a = −∂Q/∂a
        integral, = _peak_quad(
            [lambda v: level + math.log1p(v / x)],
            lambda v: (a - 1.0) * math.log1p(v / x) - v,
            (a - 1.0) / x - 1.0, -(a - 1.0) / (x * x), math.inf)
        slope = integral
    return (-math.exp(log_density) * slope,) if scaled else (slope,)


def _beta_partials(a: float, b: float, x: float, *, scaled: bool) -> tuple[float, float]:
    """(∂x/∂a, ∂x/∂b) of the Beta(a, b) quantile at x, or (∂I/∂a, ∂I/∂b) when ``scaled``."""
    if not (a > 0 and b > 0) or not 0.0 <= x <= 1.0:
        return math.nan, math.nan
    if x in (0.0, 1.0):
        return 0.0, 0.0
    if x <= a / (a + b):
        s_a, s_b = _beta_slopes_below_mean(a, b, x)
    else:  # I_x(a, b) = 1 − I_(1−x)(b, a): y = 1 − x is the Beta(b, a) quantile at 1 − u
        s_b, s_a = _beta_slopes_below_mean(b, a, 1.0 - x)
        s_a, s_b = -s_a, -s_b
    if not scaled:
        return s_a, s_b
    density = math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - sps.betaln(a, b))
    return -density * s_a, -density * s_b


def _beta_slopes_below_mean(a: float, b: float, x: float) -> tuple[float, float]:
    """(∂x/∂a, ∂x/∂b) at x ≤ a/(a+b), where r(t) = p(t)/p(x) is at most about 1 on [0, x]."""
    psi_ab = sps.digamma(a + b)
    level_a = math.log(x) - sps.digamma(a) + psi_ab       # log t − ψ(a) + ψ(a+b) at t = x
    level_b = math.log1p(-x) - sps.digamma(b) + psi_ab    # log(1−t) − ψ(b) + ψ(a+b) at t = x
    if a < 1.0:  # t^(a−1) singular at 0: algebraic weights on t = x s
        weight = {"wvar": (a - 1.0, 0.0), **_QUAD}
        log_1mx = math.log1p(-x)

        def rest(s: float) -> float:  # ((1 − x s)/(1 − x))^(b−1) ≤ e^(b x) with x ≤ a/(a+b)
            return math.exp((b - 1.0) * (math.log1p(-x * s) - log_1mx))

        j0 = quad(rest, 0.0, 1.0, weight="alg", **weight)[0]
        jlog = quad(rest, 0.0, 1.0, weight="alg-loga", **weight)[0]
        jlog1m = quad(lambda s: (math.log1p(-x * s) - log_1mx) * rest(s), 0.0, 1.0,
                      weight="alg", **weight)[0]
        return -x * (level_a * j0 + jlog), -x * (level_b * j0 + jlog1m)
    # t = x − v, v in [0, x]
    ints = _peak_quad(
        [lambda v: level_a + _log1p_ratio(-v, x), lambda v: level_b + math.log1p(v / (1.0 - x))],
        lambda v: _times(a - 1.0, _log1p_ratio(-v, x)) + (b - 1.0) * math.log1p(v / (1.0 - x)),
        -(a - 1.0) / x + (b - 1.0) / (1.0 - x),
        -(a - 1.0) / (x * x) - (b - 1.0) / (1.0 - x) ** 2, x)
    return -ints[0], -ints[1]

