"""Which array library runs the numbers.

Everything that differs between array libraries lives in this one module, so the engines never
ask "is this NumPy?". A :class:`Backend` holds

* ``xp``: the array namespace. Engine code calls only names from the Python array API standard
  (``xp.exp``, ``xp.permute_dims``, ``xp.concat``, ``xp.cumulative_sum``, ...), which NumPy >= 2.1,
  CuPy and ``array_api_strict`` all provide;
* special functions (``erf``, ``gammaln``, ``polygamma``), which the standard does not have;
* ``scatter_add``: the transpose of integer indexing, ``out[idx] += values`` with repeated indices
  accumulated (``numpy.add.at``, ``cupyx.scatter_add``);
* random number generation and ``to_host`` (copy to a NumPy array);
* the default floating dtype, float64.

One backend is current at a time in each thread. Choose the default of every thread with
``minidiff.set_backend("cupy")`` or, at import time, the environment variable
``MINIDIFF_BACKEND``; choose one for a block of code in this thread only with
``with minidiff.use_backend("array_api_strict"): ...``. Two threads can therefore differentiate at
once, each with its own backend.

The quantile functions of the discrete samplers (:func:`poisson_quantile`,
:func:`binomial_quantile`) live here too: they need SciPy's incomplete gamma and beta functions,
and this is the one module that may import an array library (hence its length).

The ``array_api_strict`` backend exists for the tests: it refuses anything outside the standard,
so a test suite that passes on it proves that the engine speaks only the standard's namespace.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import math
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.special as sps
from scipy.integrate import quad

__all__ = [
    "Backend",
    "BackendError",
    "available_backends",
    "backend_of",
    "get_backend",
    "host_load_npz",
    "host_save_npz",
    "set_backend",
    "use_backend",
]


class BackendError(ValueError):
    """Raised for an unknown backend, a backend that cannot load, or arrays of two backends."""


@dataclass(frozen=True)
class Backend:
    """One array library, seen through the operations the engine needs.

    Attributes:
        name: the name used by ``set_backend``.
        xp: the array namespace (array API standard).
        array_type: the class (or tuple of classes) of this library's arrays.
        float_dtype: the default floating dtype (float64).
        erf, gammaln, polygamma: special functions on raw arrays; ``polygamma(n, x)`` is the
            n-th derivative of the digamma function.
        scatter_add: ``scatter_add(shape, index, values)`` returns zeros of ``shape`` with
            ``values`` added at ``index``, repeated indices accumulating.
        to_host: copy an array to a NumPy array.
        from_host: copy a NumPy array to this library.
        make_rng: ``make_rng(seed)`` returns a NumPy-style generator whose outputs are
            this library's arrays.
        peak_tracker: ``peak_tracker()`` returns a context manager whose ``peak`` attribute,
            after the block, is the peak number of bytes allocated inside it (tracemalloc on
            the host, which NumPy reports its buffers to; the memory pool on a GPU).
        buffer: ``buffer(x)`` gives ``(key, nbytes)`` for libraries without NumPy's ``base`` and
            ``nbytes`` (see ``memory_of``).
        index: ``index(x, key)`` is ``x[key]``, with NumPy's full indexing rules (the standard
            allows integer arrays only without slices, which forward mode needs).
        poisson_quantile, binomial_quantile: ``poisson_quantile(u, lam)`` and
            ``binomial_quantile(u, n, p)``, the inverse CDFs F⁻¹(u) = min{k : F(k) ≥ u} on this
            library's arrays (broadcast together), exact for every finite parameter with
            bounded work per draw (the search is described above :func:`poisson_quantile`).
            They run on the host with SciPy on every backend: CuPy's arrays are copied there
            and back, because a device version of the search would need incomplete gamma and
            beta functions whose accuracy at large parameters has not been checked on a GPU.
    """

    name: str
    xp: Any
    array_type: Any
    erf: Callable[[Any], Any]
    gammaln: Callable[[Any], Any]
    polygamma: Callable[[int, Any], Any]
    scatter_add: Callable[[tuple, Any, Any], Any]
    to_host: Callable[[Any], np.ndarray]
    from_host: Callable[[np.ndarray], Any]
    make_rng: Callable[[Any], Any]
    float_dtype: Any = field(default=None)
    index: Callable[[Any, Any], Any] = field(default=lambda x, key: x[key])
    buffer: Callable[[Any], tuple[int, int]] = field(default=None)
    peak_tracker: Callable[[], Any] = field(default=None)
    poisson_quantile: Callable[[Any, Any], Any] = field(default=None)
    binomial_quantile: Callable[[Any, Any, Any], Any] = field(default=None)
    kernels: Kernels = field(default=None)  # fast paths (see "Fast kernels" below)

    def __post_init__(self) -> None:
        if self.kernels is None:
            object.__setattr__(self, "kernels", generic_kernels(self.xp))

    def sigmoid(self, x: Any) -> Any:
        """σ(x) = 1/(1 + e^{-x}) on a raw floating array, accurate in both tails."""
        return self.kernels.sigmoid(x)

    def select(self, condition: Any, x: Any, y: Any) -> Any:
        """``where(condition, x, y)`` on raw arrays (or Python numbers), exactly: the same
        bits as the array library's ``where``, by the backend's fastest way."""
        return self.kernels.select(condition, x, y)

    def memory_of(self, x: Any) -> tuple[int, int]:
        """``(key, nbytes)`` of the memory that keeping ``x`` alive holds: a view is charged
        for the array that owns its buffer, so the same buffer kept twice is counted once."""
        if self.buffer is not None:
            return self.buffer(x)
        root = x
        while isinstance(getattr(root, "base", None), self.array_type):
            root = root.base
        return id(root), int(root.nbytes)

    def is_array(self, x: Any) -> bool:
        """True when ``x`` is an array of this backend."""
        return isinstance(x, self.array_type)

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Convert Python numbers, lists and this backend's arrays to this backend's arrays.

        Python floats and lists of floats become ``float_dtype``; integers and booleans keep
        their kind (``grad`` rejects them later with a clear message).
        """
        if isinstance(x, list | tuple) and any(
                isinstance(v, list | tuple) or isinstance(v, self.array_type) for v in x):
            try:
                return self._asarray(x, dtype)
            except TypeError:  # arrays inside a list (array_api_strict takes none): stack
                return self.xp.stack([self.asarray(v, dtype) for v in x])
        return self._asarray(x, dtype)

    def _asarray(self, x: Any, dtype: Any) -> Any:
        if dtype is None and isinstance(x, float | list | tuple):
            arr = self.xp.asarray(x)
            if self.xp.isdtype(arr.dtype, "real floating"):
                return self.xp.astype(arr, self.float_dtype)
            return arr
        return self.xp.asarray(x, dtype=dtype)

    # -----------------------------------------------------------------------------------------
    # Host-side special functions for minidiff.inference (its Beta and Gamma distributions).
    # The regularised incomplete beta and gamma functions, their inverses, and their
    # derivatives in the shape parameters, which implicit reparameterisation needs
    # (Figurnov et al. 2018: dz/dα = −(∂F/∂α)(z) / p(z)). Computed with SciPy on the host
    # (to_host / from_host), so they serve every backend; the AD engines see them as constants,
    # wrapped in primitives with their own rules (inference/implicit.py).
    # -----------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Slopes of the Beta and Gamma quantiles (host, QUADPACK through SciPy)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Discrete quantiles (host, NumPy and SciPy): Poisson and binomial inversion of one uniform
# ---------------------------------------------------------------------------------------------
#
# X = F⁻¹(u) = min{k : F(k) ≥ u} is found by a search on the integers that reads the exact CDF
# only: a Cornish–Fisher guess k₀ ≈ μ + σz + (skew terms), z = Φ⁻¹(u), is off by a few units,
# an exponential search from k₀ brackets the answer and a bisection closes the bracket. Each
# draw costs O(log |k₀ − X|) CDF evaluations, so the work is bounded whatever λ or n is (no loop
# over the support). F(k) ≥ u is tested in the smaller tail: F(k) ≥ u for u ≤ ½, and
# P(X > k) ≤ 1 − u (which is exact in floating point) above, so the far upper tail keeps its
# precision.

_MAX_SEARCH_STEPS = 4096  # far more than any float64 bracket needs (2 × 1024 halvings)
_SADDLE_VARIANCE = 1e7    # binomial CDF by saddle point above this n·p·q (see below)
_POISSON_LIMIT = 2.0 ** -60  # a binomial with p·max(np, 1) below this is Poisson(np)


def _poisson_tail(k: np.ndarray, lam: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """P(X ≤ k) where ``lower``, else P(X > k), for X ~ Poisson(λ) and integers k ≥ 0:
    Q(k + 1, λ) and P(k + 1, λ), the regularised incomplete gamma functions."""
    return np.where(lower, sps.gammaincc(k + 1.0, lam), sps.gammainc(k + 1.0, lam))


def _two_product_error(x: np.ndarray, y: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """e with x·y = xy + e exactly, xy the rounded product (Dekker's splitting)."""
    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = 134217729.0 * v  # 2^27 + 1
        high = c - (c - v)
        return high, v - high

    xh, xl = split(x)
    yh, yl = split(y)
    return ((xh * yh - xy) + xh * yl + xl * yh) + xl * yl


def _entropy_ratio(d: np.ndarray) -> np.ndarray:
    """g(d) − 1 with g(d) = 2((1 + d) log(1 + d) − d)/d², for d > −1, without cancellation
    (the series Σ_{j≥1} 2(−d)^j/((j+1)(j+2)) for |d| < 1/8)."""
    out = np.empty_like(d)
    small = np.abs(d) < 0.125
    if small.any():
        ds = d[small]
        term, total = -ds, np.zeros_like(ds)
        for j in range(1, 24):  # |d|^24 < 2^-72
            total += term * (2.0 / ((j + 1) * (j + 2)))
            term *= -ds
        out[small] = total
    if not small.all():
        dl = d[~small]
        out[~small] = 2.0 * ((1.0 + dl) * np.log1p(dl) - dl) / (dl * dl) - 1.0
    return out


def _binomial_saddle(k: np.ndarray, n: np.ndarray, p: np.ndarray, lower: np.ndarray
                     ) -> np.ndarray:
    """P(X ≤ k) (``lower``) or P(X > k) for X ~ Binomial(n, p), 0 ≤ k < n, by Lugannani–Rice.

    P(X ≤ k) = P(B > p) for B ~ Beta(a, b), a = k + 1, b = n − k, and B > p ⇔ Y = qG_a − pG_b
    > 0 for independent Gamma(a), Gamma(b). Y is continuous with cumulant generating function
    K(t) = −a log(1 − qt) − b log(1 + pt), whose saddle point at y = 0 gives, with N = a + b
    and Δ = a − Np,

        w² = −2K(t̂) = 2a log(a/Np) + 2b log(b/Nq),      u = −Δ √(N/(ab)),
        P(Y ≥ 0) ≈ 1 − Φ(ŵ) + φ(ŵ)(1/u − 1/ŵ),          ŵ = −sign(Δ)·w.

    Its error falls as npq grows (for a continuous law like Y's, relatively like (npq)^(-3/2)
    near the mean); above the switch at npq = 10⁷ it was below that of SciPy's incomplete beta
    against a 35-digit reference. Δ is computed with N·p exact (a two-product), and w² and
    1/u − 1/ŵ from series in Δ/Np and Δ/Nq, so nothing cancels near the mean."""
    q = 1.0 - p
    a, b = k + 1.0, n - k
    big_n = a + b
    np_ = big_n * p
    delta = (a - np_) - _two_product_error(big_n, p, np_)
    da, db = delta / np_, -delta / (big_n * q)
    ga, gb = _entropy_ratio(da), _entropy_ratio(db)
    spread = q * ga + p * gb                        # w² = Δ²/(Npq) · (1 + spread)
    w2 = delta * delta / (np_ * q) * (1.0 + spread)
    w = -np.sign(delta) * np.sqrt(w2)
    shift = da + db + da * db                       # (1 + da)(1 + db) − 1
    r = shift + spread + shift * spread             # w²/u² − 1
    with np.errstate(invalid="ignore", divide="ignore"):
        correction = np.where(delta == 0, 0.0, r / (1.0 + np.sqrt(1.0 + r)) / w)
    density = np.exp(-0.5 * w2) / math.sqrt(2.0 * math.pi)
    upper = sps.ndtr(-w) + density * correction     # P(X ≤ k)
    return np.where(lower, upper, sps.ndtr(w) - density * correction)


def _binomial_tail(k: np.ndarray, n: np.ndarray, p: np.ndarray, lower: np.ndarray
                   ) -> np.ndarray:
    """P(X ≤ k) where ``lower``, else P(X > k), for X ~ Binomial(n, p) and 0 ≤ k < n.

    By regime: p (or 1 − p) so small that Binomial(n, p) and Poisson(np) are the same law to
    float64 precision (one uniform inverts to different values with probability Σ_k |ΔF(k)|,
    about n·p², here below 2⁻⁶⁰): the Poisson tails; n·p·q > 10⁷: the saddle point (there more
    accurate than the incomplete beta, whose cost also grows like √(npq)); otherwise the
    regularised incomplete beta, written in whichever of p and 1 − p is ≤ ½ (that one is exact
    in floating point)."""
    q = 1.0 - p
    tiny_p = p * np.maximum(n * p, 1.0) <= _POISSON_LIMIT
    tiny_q = q * np.maximum(n * q, 1.0) <= _POISSON_LIMIT
    saddle = n * p * q > _SADDLE_VARIANCE
    regime = np.where(tiny_p, 0, np.where(tiny_q, 1, np.where(saddle, 2, np.where(p <= 0.5,
                                                                                 3, 4))))
    out = np.empty(k.shape)
    for r in np.unique(regime):  # at most five groups, each one vectorised call
        m = regime == r
        km, nm, pm, qm, lm = k[m], n[m], p[m], q[m], lower[m]
        if r == 0:
            out[m] = _poisson_tail(km, nm * pm, lm)
        elif r == 1:  # n − X ~ Poisson(nq): P(X ≤ k) = P(n − X > n − k − 1)
            out[m] = _poisson_tail(nm - km - 1.0, nm * qm, ~lm)
        elif r == 2:
            out[m] = _binomial_saddle(km, nm, pm, lm)
        elif r == 3:  # P(X > k) = I_p(k + 1, n − k)
            out[m] = np.where(lm, sps.betaincc(km + 1.0, nm - km, pm),
                              sps.betainc(km + 1.0, nm - km, pm))
        else:  # P(X ≤ k) = I_q(n − k, k + 1)
            out[m] = np.where(lm, sps.betainc(nm - km, km + 1.0, qm),
                              sps.betaincc(nm - km, km + 1.0, qm))
    return out


def _invert(name: str, u: np.ndarray, guess: np.ndarray, top: np.ndarray,
            tail: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """min{k ∈ {0, …, top} : F(k) ≥ u} elementwise (1-d arrays; ``top`` may be inf), where
    ``tail(k, index, lower)`` is F(k) (``lower``) or 1 − F(k) for the elements ``index``."""
    lower = u <= 0.5
    level = np.where(lower, u, 1.0 - u)

    def reached(k: np.ndarray, index: np.ndarray) -> np.ndarray:
        t = tail(k, index, lower[index])
        return np.where(lower[index], t >= level[index], t <= level[index])

    k0 = np.clip(np.floor(guess), 0.0, top)
    hit = np.ones(u.shape, dtype=bool)
    inner = k0 < top  # F(top) = 1 ≥ u needs no evaluation
    hit[inner] = reached(k0[inner], np.nonzero(inner)[0])
    hi = np.where(hit, k0, np.inf)       # F(hi) ≥ u
    lo = np.where(hit, -np.inf, k0)      # F(lo) < u (−1 stands for "below the support")
    step = np.maximum(1.0, np.spacing(k0))
    for _ in range(_MAX_SEARCH_STEPS):   # exponential search for the missing end
        down = np.nonzero(np.isneginf(lo))[0]
        up = np.nonzero(np.isposinf(hi))[0]
        if down.size == 0 and up.size == 0:
            break
        c = hi[down] - step[down]
        below = c < 0.0
        lo[down[below]] = -1.0
        test, c = down[~below], c[~below]
        ok = reached(c, test)
        hi[test[ok]], lo[test[~ok]] = c[ok], c[~ok]
        c = lo[up] + step[up]
        over = c >= top[up]
        hi[up[over]] = top[up[over]]
        test, c = up[~over], c[~over]
        ok = reached(c, test)
        hi[test[ok]], lo[test[~ok]] = c[ok], c[~ok]
        step *= 2.0
    for _ in range(_MAX_SEARCH_STEPS):   # bisection; stops where floats have no integer between
        mid = np.floor(lo + (hi - lo) / 2.0)
        open_ = np.nonzero(np.logical_and(mid > lo, mid < hi))[0]
        if open_.size == 0:
            return hi
        ok = reached(mid[open_], open_)
        hi[open_[ok]], lo[open_[~ok]] = mid[open_][ok], mid[open_][~ok]
    raise RuntimeError(f"{name}: the quantile search did not converge in "
                       f"{_MAX_SEARCH_STEPS} steps (please report this)")


def _flat(*arrays: Any) -> tuple[tuple[int, ...], list[np.ndarray]]:
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    return shape, [np.broadcast_to(np.asarray(a, dtype=np.float64), shape).ravel()
                   for a in arrays]


def poisson_quantile(u: Any, lam: Any) -> np.ndarray:
    """F⁻¹(u) = min{k : P(X ≤ k) ≥ u} for X ~ Poisson(λ), elementwise on NumPy arrays (u in
    (0, 1), λ finite ≥ 0, broadcast together), as float64. Exact to the precision of SciPy's
    incomplete gamma function for every λ; beyond 2⁵³ the sample is rounded to a float."""
    shape, (u, lam) = _flat(u, lam)
    with np.errstate(all="ignore"):
        z = sps.ndtri(u)
        sd = np.sqrt(lam)
        guess = lam + sd * z + (z * z - 1.0) / 6.0
        x = _invert("poisson", u, guess, np.full(u.shape, np.inf),
                    lambda k, i, lower: _poisson_tail(k, lam[i], lower))
    return x.reshape(shape)


def binomial_quantile(u: Any, n: Any, p: Any) -> np.ndarray:
    """F⁻¹(u) for X ~ Binomial(n, p), elementwise on NumPy arrays (u in (0, 1), n a finite
    integer ≥ 0, p in [0, 1], broadcast together), as float64; see ``_binomial_tail`` for how
    the CDF is computed in each regime."""
    shape, (u, n, p) = _flat(u, n, p)
    with np.errstate(all="ignore"):
        z = sps.ndtri(u)
        sd = np.sqrt(n * p * (1.0 - p))
        guess = n * p + sd * z + (1.0 - 2.0 * p) * (z * z - 1.0) / 6.0
        x = _invert("binomial", u, np.nan_to_num(guess), n,
                    lambda k, i, lower: _binomial_tail(k, n[i], p[i], lower))
    return x.reshape(shape)


# ---------------------------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------------------------


class _TracemallocPeak:
    """Peak bytes allocated by Python and NumPy inside a ``with`` block, from tracemalloc."""

    def __enter__(self) -> _TracemallocPeak:
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        self.peak = 0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.peak = max(0, tracemalloc.get_traced_memory()[1] - self._base)
        if self._started:
            tracemalloc.stop()


def _numpy_scatter_add(shape: tuple, index: Any, values: Any) -> np.ndarray:
    out = np.zeros(shape, dtype=values.dtype)
    np.add.at(out, index, values)
    return out


def _make_numpy() -> Backend:
    return Backend(
        name="numpy",
        xp=np,
        array_type=(np.ndarray, np.generic),
        erf=sps.erf,
        gammaln=sps.gammaln,
        polygamma=lambda n, x: sps.polygamma(n, x) if n else sps.digamma(x),
        scatter_add=_numpy_scatter_add,
        to_host=np.asarray,
        from_host=np.asarray,
        make_rng=np.random.default_rng,
        float_dtype=np.float64,
        peak_tracker=_TracemallocPeak,
        poisson_quantile=poisson_quantile,
        binomial_quantile=binomial_quantile,
        kernels=NUMPY_KERNELS,
    )


# ---------------------------------------------------------------------------------------------
# CuPy (real GPU arrays; its special functions live in cupyx.scipy.special)
# ---------------------------------------------------------------------------------------------


def _make_cupy() -> Backend:
    try:
        cp = importlib.import_module("cupy")
        cps = importlib.import_module("cupyx.scipy.special")
        cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or a CUDA runtime error when no GPU exists
        raise BackendError(
            f"the 'cupy' backend needs CuPy and a CUDA GPU, and could not start: {exc}. "
            "Install the 'gpu' extra (pip install minidiff[gpu]) on a machine with a GPU."
        ) from exc

    def scatter_add(shape: tuple, index: Any, values: Any) -> Any:
        out = cp.zeros(shape, dtype=values.dtype)
        cp.add.at(out, index, values)
        return out

    class PoolPeak:
        """Peak bytes of the CuPy memory pool inside a ``with`` block: cached blocks are freed
        first, so the pool's total afterwards is its high-water mark for the block."""

        def __enter__(self) -> PoolPeak:
            cp.cuda.Device().synchronize()
            self._pool = cp.get_default_memory_pool()
            self._pool.free_all_blocks()
            self._base = self._pool.used_bytes()
            self.peak = 0
            return self

        def __exit__(self, *exc: Any) -> None:
            cp.cuda.Device().synchronize()
            self.peak = max(0, self._pool.total_bytes() - self._base)

    return Backend(
        name="cupy",
        xp=cp,
        array_type=cp.ndarray,
        erf=cps.erf,
        gammaln=cps.gammaln,
        polygamma=lambda n, x: cps.polygamma(cp.asarray(n), x) if n else cps.digamma(x),
        scatter_add=scatter_add,
        to_host=cp.asnumpy,
        from_host=cp.asarray,
        make_rng=cp.random.default_rng,
        float_dtype=cp.float64,
        peak_tracker=PoolPeak,
        poisson_quantile=_through_host(poisson_quantile, cp.ndarray, cp.asnumpy, cp.asarray),
        binomial_quantile=_through_host(binomial_quantile, cp.ndarray, cp.asnumpy, cp.asarray),
    )


# ---------------------------------------------------------------------------------------------
# array_api_strict (tests only): what the standard lacks is done on the host with NumPy/SciPy
# ---------------------------------------------------------------------------------------------


class _HostRoundTripRNG:
    """A NumPy generator whose outputs are converted to another library's arrays."""

    def __init__(self, seed: Any, from_host: Callable[[np.ndarray], Any]) -> None:
        self._rng = np.random.default_rng(seed)
        self._from_host = from_host

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._rng, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._from_host(np.asarray(method(*args, **kwargs)))

        return call


def _make_array_api_strict() -> Backend:
    try:
        xps = importlib.import_module("array_api_strict")
    except ImportError as exc:
        raise BackendError(
            "the 'array_api_strict' backend needs the array-api-strict package "
            "(pip install minidiff[test])"
        ) from exc
    array_type = type(xps.asarray(0.0))

    def to_host(x: Any) -> np.ndarray:
        return np.asarray(x)

    def from_host(x: np.ndarray) -> Any:
        return xps.asarray(np.asarray(x))

    def on_host(fn: Callable[..., np.ndarray]) -> Callable[..., Any]:
        return lambda *args: from_host(fn(*[to_host(a) if isinstance(a, array_type) else a
                                            for a in args]))

    def scatter_add(shape: tuple, index: Any, values: Any) -> Any:
        host_index = _index_to_host(index, array_type, to_host)
        return from_host(_numpy_scatter_add(shape, host_index, to_host(values)))

    def index(x: Any, key: Any) -> Any:
        try:
            return x[key]
        except IndexError:  # beyond the standard (integer arrays mixed with slices)
            return from_host(to_host(x)[_index_to_host(key, array_type, to_host)])

    def buffer(x: Any) -> tuple[int, int]:
        dtype = x.dtype
        if xps.isdtype(dtype, "bool"):
            itemsize = 1
        elif xps.isdtype(dtype, "integral"):
            itemsize = xps.iinfo(dtype).bits // 8
        else:
            itemsize = xps.finfo(dtype).bits // 8
        return id(x), itemsize * math.prod(x.shape)

    return Backend(
        name="array_api_strict",
        index=index,
        buffer=buffer,
        xp=xps,
        array_type=array_type,
        erf=on_host(sps.erf),
        gammaln=on_host(sps.gammaln),
        polygamma=on_host(lambda n, x: sps.polygamma(n, x) if n else sps.digamma(x)),
        scatter_add=scatter_add,
        to_host=to_host,
        from_host=from_host,
        make_rng=lambda seed: _HostRoundTripRNG(seed, from_host),
        float_dtype=xps.float64,
        peak_tracker=_TracemallocPeak,
        poisson_quantile=on_host(poisson_quantile),
        binomial_quantile=on_host(binomial_quantile),
    )


def _through_host(fn: Callable[..., np.ndarray], array_type: Any, to_host: Callable,
                  from_host: Callable) -> Callable[..., Any]:
    """``fn`` (on NumPy arrays) applied to another library's arrays, by a copy each way."""
    return lambda *args: from_host(fn(*[to_host(a) if isinstance(a, array_type) else a
                                        for a in args]))


def _index_to_host(index: Any, array_type: Any, to_host: Callable) -> Any:
    if isinstance(index, tuple):
        return tuple(_index_to_host(i, array_type, to_host) for i in index)
    if isinstance(index, array_type):
        return to_host(index)
    return index


# =============================================================================================
# Fast kernels (cheaper eager rules). Everything below is this one block.
#
# Rules never ask which library runs; ops whose plain formula wastes passes over memory call a
# kernel here instead, and each backend supplies its fastest *exact* way (NumPy's below; other
# backends get the portable formulas of ``generic_kernels``).
# =============================================================================================


@dataclass(frozen=True)
class Kernels:
    """The fast paths of one backend.

    Attributes:
        sigmoid: ``sigmoid(x)``, σ(x) = 1/(1 + e^{-x}) of a raw floating array.
        select: ``select(condition, x, y)``, bit for bit the library's ``where``.
        into: the library's elementwise functions that write into a given buffer,
            ``into[name](*args, out=buffer)``, by the name of the minidiff op they compute
            bit for bit (``"add"``, ``"exp"``, ``"sigmoid"``, ...). ``minidiff.jit``'s replay
            executor uses them to reuse buffers instead of allocating; empty where the
            library has no ``out=`` (array_api_strict).
        direct: functions that compute an op exactly as its implementation does, with fewer
            indirections (``"sum"``: the reduction itself; ``"where"``: ``select``), for code
            that calls them many times (md.jit's replay).
    """

    sigmoid: Callable[[Any], Any]
    select: Callable[[Any, Any, Any], Any]
    into: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    direct: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


def generic_kernels(xp: Any) -> Kernels:
    """Portable kernels from array API calls only."""

    def sigmoid(x: Any) -> Any:
        e = xp.exp(-xp.abs(x))  # e^{-|x|} <= 1: no overflow
        # numerator e^{-|x|} for x < 0 and 1 for x >= 0 (where e <= 1): no branch
        return xp.maximum(e, xp.astype(x >= 0, e.dtype)) / (1.0 + e)

    def select(condition: Any, x: Any, y: Any) -> Any:
        return xp.where(condition, _as_xp(xp, x), _as_xp(xp, y))

    return Kernels(sigmoid=sigmoid, select=select)


def _as_xp(xp: Any, v: Any) -> Any:
    return xp.asarray(float(v)) if isinstance(v, int | float) else v


_SELECT_MIN_SIZE = 2048  # below this NumPy's where is as fast as the bit select


def _numpy_sigmoid(x: Any, out: Any = None) -> Any:
    """1/(1 + e^{-x}) in four passes over one buffer (negate, exp, add, divide).

    e^{-x} overflows to inf for x < -709, where 1/(1 + inf) = 0 is the right limit, so the
    overflow is not worth a warning. Relative accuracy is a few ulp everywhere (no
    cancellation: 1 + e^{-x} >= 1)."""
    if type(x) is not np.ndarray or x.ndim == 0 or x.dtype.kind != "f":
        return generic_kernels(np).sigmoid(x)
    t = np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1.0
    np.divide(1.0, t, out=t)
    return t


def _float64_bits(v: Any) -> Any:
    """The bits of a float64 array or number as int64 (a view; no copy), or None."""
    if type(v) is float:
        return np.float64(v).view(np.int64)
    if isinstance(v, np.ndarray | np.float64) and v.dtype == np.float64:
        return v.view(np.int64)
    return None


def _numpy_select(condition: Any, x: Any, y: Any) -> Any:
    """``np.where(condition, x, y)`` without branches, bit for bit.

    ``np.where`` branches on every element, and a random mask (agents that reset, a
    threshold crossed) makes the branch unpredictable: at 50 % it is several times slower
    than a multiply. For float64 the select is done on the bits instead: with m = -1 (all
    ones) where the condition holds and 0 elsewhere,

        where(c, x, y) = y ^ ((x ^ y) & m),    where(c, x, +0.0) = x & m,

    which copies NaNs, infinities and signed zeros exactly as ``where`` does. It takes a few
    passes, so it is used only when the branch would be mispredicted often: when between 15 %
    and 85 % of the mask holds (counting costs a fraction of one pass). Outside that range
    the few elements of one side are put into a copy of the other."""
    if type(condition) is not np.ndarray or condition.dtype != np.bool_:
        return np.where(condition, x, y)
    if type(x) is float and type(y) is float and x == 1.0 and y == 0.0 \
            and math.copysign(1.0, y) > 0:
        return condition.astype(np.float64)  # where(c, 1.0, 0.0): the mask as floats
    if condition.size < _SELECT_MIN_SIZE:
        return np.where(condition, x, y)
    bx, by = _float64_bits(x), _float64_bits(y)
    if bx is None or by is None:
        return np.where(condition, x, y)
    share = np.count_nonzero(condition) / condition.size
    if share < 0.15 or share > 0.85:  # few elements to take from one side: copy the other
        rare, keep = (x, y) if share < 0.15 else (y, x)
        out = _copy_and_put(condition if share < 0.15 else ~condition, rare, keep)
        return np.where(condition, x, y) if out is None else out
    m = np.negative(condition, dtype=np.int64)  # 0 or -1
    if type(y) is float and y == 0.0 and math.copysign(1.0, y) > 0:
        bits = _in_place(np.bitwise_and, m, bx)  # x & m
    else:
        bits = _in_place(np.bitwise_and, np.bitwise_xor(bx, by), m)  # (x ^ y) & m
        np.bitwise_xor(bits, by, out=bits)  # y ^ ((x ^ y) & m)
    return bits.view(np.float64)


def _copy_and_put(mask: np.ndarray, rare: Any, keep: Any) -> np.ndarray | None:
    """A copy of ``keep`` with ``rare`` put where the 1-d ``mask`` (along the last axis)
    holds: where(mask, rare, keep) when few elements hold, as a copy and a scatter (no
    branches). None when the shapes do not allow it (``keep`` must have the result's shape)."""
    if type(keep) is not np.ndarray or mask.ndim != 1 or keep.dtype != np.float64:
        return None
    if np.broadcast_shapes(mask.shape, np.shape(rare), keep.shape) != keep.shape:
        return None
    out = keep.copy()
    at = np.flatnonzero(mask)
    if np.ndim(rare) and np.shape(rare)[-1] != 1:
        rare = rare[..., at]
    out[..., at] = rare
    return out


def _in_place(ufunc: Any, a: np.ndarray, b: Any) -> np.ndarray:
    """``ufunc(a, b)`` written over ``a`` (a fresh array) when the result has a's shape."""
    full = np.broadcast_shapes(a.shape, np.shape(b))
    return ufunc(a, b, out=a if full == a.shape else None)


def _numpy_select_into(condition: Any, x: Any, y: Any, out: Any = None) -> Any:
    """``select`` written into ``out`` (float64, the result's shape): the side that holds
    less often is copied in, then the other put where it holds (no fresh array, no branches).
    Exactly ``where``'s bits, as :func:`_numpy_select`. A small select returns a fresh
    array instead (one call beats four there; the caller uses what is returned)."""
    if type(condition) is np.ndarray and condition.size < _SELECT_MIN_SIZE:
        return np.where(condition, x, y)
    if (out is None or type(condition) is not np.ndarray or condition.dtype != np.bool_
            or condition.ndim != 1 or out.dtype != np.float64 or not out.shape
            or out.shape[-1] != condition.shape[0] or _float64_bits(x) is None
            or _float64_bits(y) is None):
        result = _numpy_select(condition, x, y)
        if out is None:
            return result
        np.copyto(out, result)
        return out
    share = np.count_nonzero(condition) / condition.size
    rare, keep, mask = (x, y, condition) if share < 0.5 else (y, x, ~condition)
    np.copyto(out, keep)
    at = np.flatnonzero(mask)
    out[..., at] = rare[..., at] if np.ndim(rare) and np.shape(rare)[-1] != 1 else rare
    return out


def _quiet_exp(x: Any, out: Any = None) -> Any:
    with np.errstate(over="ignore"):
        return np.exp(x, out=out)


_NUMPY_INTO = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "negative": np.negative, "maximum": np.maximum, "exp": np.exp, "log": np.log,
    "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
    "tanh": np.tanh, "abs": np.abs, "sign": np.sign, "floor": np.floor, "equal": np.equal,
    "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_not": np.logical_not, "sigmoid": _numpy_sigmoid,
    "quiet_exp": _quiet_exp,  # exp whose overflow to inf is expected (inside a sigmoid)
    "where": _numpy_select_into,
}

def _numpy_sum(x: Any, axis: Any, keepdims: bool) -> Any:
    return np.add.reduce(x, axis=axis, keepdims=keepdims)  # what np.sum calls


NUMPY_KERNELS = Kernels(sigmoid=_numpy_sigmoid, select=_numpy_select, into=_NUMPY_INTO,
                        direct={"sum": _numpy_sum, "where": _numpy_select})


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], Backend]] = {
    "numpy": _make_numpy,
    "cupy": _make_cupy,
    "array_api_strict": _make_array_api_strict,
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


# ---------------------------------------------------------------------------------------------
# Host files of arrays, for run state (minidiff.inference.run_state): NumPy's .npz format,
# never pickled. Saving refuses object arrays; loading uses allow_pickle=False, so a file that
# holds a pickle raises instead of running it.
# ---------------------------------------------------------------------------------------------


def host_save_npz(file: Any, arrays: dict[str, Any]) -> None:
    """Write the host arrays ``arrays`` (name -> array) to the open binary ``file`` as .npz."""
    host = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in host.items():
        if a.dtype.hasobject:
            raise TypeError(f"host_save_npz: {name!r} is an object array, which .npz could "
                            f"only store by pickling it")
    np.savez(file, **host)


def host_load_npz(file: Any) -> dict[str, np.ndarray]:
    """The arrays of the .npz ``file`` (a path or an open binary file), with
    ``allow_pickle=False``: a pickled object array raises ``ValueError``."""
    with np.load(file, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _initial_backend() -> Backend:
    name = os.environ.get("MINIDIFF_BACKEND", "") or "numpy"
    try:
        return _load(name)
    except BackendError as exc:
        raise BackendError(f"MINIDIFF_BACKEND={name!r}: {exc}") from exc


_default = _initial_backend()
