"""Distributions for priors and families, written with minidiff ops.

Scalar distributions (:class:`Normal`, :class:`LogNormal`, :class:`Uniform`, :class:`Beta`,
:class:`Gamma`) have parameters that broadcast to a *batch shape*; ``log_prob(x)`` is
elementwise, ``sample(rng, shape)`` returns ``shape + batch_shape`` draws that are
reparameterised (differentiable in the parameters), and ``mean`` / ``std`` have the batch shape.

======================  ===========================================  ======================
distribution            log p(x)                                     reparameterised draw
======================  ===========================================  ======================
Normal(μ, σ)            −½((x−μ)/σ)² − log σ − ½ log 2π              μ + σ ε
LogNormal(μ, σ)         Normal(μ, σ).log_prob(log x) − log x         exp(μ + σ ε)
Uniform(a, b)           −log(b − a) on [a, b], −∞ outside            a + (b − a) U
Beta(α, β)              (α−1) log x + (β−1) log(1−x) − log B(α, β)   F⁻¹(U; α, β), implicit
Gamma(α, rate λ)        α log λ + (α−1) log x − λx − log Γ(α)        F⁻¹(U; α)/λ, implicit
======================  ===========================================  ======================

(ε ~ N(0, 1), U ~ U(0, 1); "implicit" is implicit reparameterisation, :mod:`.implicit`.)

Vector distributions over θ ∈ ℝ^d (products, pushed-forward and correlated Gaussians) are in
:mod:`.multivariate`; KL divergences between pairs of them in :mod:`.kl`.
"""

from __future__ import annotations

import abc
import math
from typing import Any

from .. import ops
from ..backend import get_backend
from .implicit import beta_quantile, gamma_quantile, open_uniform

__all__ = ["Distribution", "Normal", "LogNormal", "Uniform", "Beta", "Gamma"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_positive(name: str, what: str, x: Any) -> None:
    xp = get_backend().xp
    v = ops.stop_gradient(x)
    if not bool(xp.all(v > 0)) or not bool(xp.all(xp.isfinite(v))):
        raise ValueError(f"{name}: {what} must be finite and > 0, got {v!r}")


def _inside(x: Any, low: float | None, high: float | None) -> Any:
    """Boolean mask of x strictly inside (low, high) (either bound may be None)."""
    xp = get_backend().xp
    v = ops.stop_gradient(ops.asarray(x))
    mask = xp.ones(tuple(v.shape), dtype=xp.bool)
    if low is not None:
        mask = xp.logical_and(mask, v > low)
    if high is not None:
        mask = xp.logical_and(mask, v < high)
    return mask


def _on_support(x: Any, mask: Any, safe: float, density: Any) -> Any:
    """density(x) where ``mask``, −∞ elsewhere; outside values are swapped for ``safe`` before
    ``density`` sees them, so neither the value nor the derivative there is NaN."""
    x = ops.asarray(x)
    inside = density(ops.where(mask, x, safe))
    return ops.where(mask, inside, -math.inf)


class Distribution(abc.ABC):
    """A scalar distribution with parameters broadcast to ``batch_shape``: an abstract base,
    each subclass defines the four abstract members (a class that forgets one cannot be
    instantiated)."""

    batch_shape: tuple[int, ...] = ()
    param_names: tuple[str, ...] = ()  # the constructor's arguments, in order

    def parameters(self) -> tuple[Any, ...]:
        """The constructor's arguments broadcast to ``batch_shape``, in ``param_names`` order."""
        return tuple(ops.broadcast_to(getattr(self, name), self.batch_shape)
                     for name in self.param_names)

    @abc.abstractmethod
    def log_prob(self, x: Any) -> Any:
        """log p(x), elementwise over ``batch_shape``."""

    @abc.abstractmethod
    def sample(self, rng: Any, shape: tuple[int, ...] = ()) -> Any:
        """Reparameterised draws of shape ``shape + batch_shape``."""

    @property
    @abc.abstractmethod
    def mean(self) -> Any:
        """E[X], shape ``batch_shape``."""

    @property
    @abc.abstractmethod
    def std(self) -> Any:
        """sd(X), shape ``batch_shape``."""

    def _store(self, positive: tuple[str, ...], **params: Any) -> None:
        """Keep each parameter as an array, refuse those named in ``positive`` unless finite
        and > 0, and set ``batch_shape`` to the parameters' broadcast shape."""
        for name, value in params.items():
            setattr(self, name, ops.asarray(value))
        for name in positive:
            _check_positive(type(self).__name__, name, getattr(self, name))
        self.batch_shape = _batch_shape(*(getattr(self, name) for name in params))

    def _draw_shape(self, shape: Any) -> tuple[int, ...]:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return shape + self.batch_shape


def _batch_shape(*params: Any) -> tuple[int, ...]:
    xp = get_backend().xp
    return tuple(xp.broadcast_arrays(*(ops.stop_gradient(p) for p in params))[0].shape)


class Normal(Distribution):
    """N(loc, scale²)."""

    param_names = ("loc", "scale")

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0) -> None:
        self._store(("scale",), loc=loc, scale=scale)

    def log_prob(self, x: Any) -> Any:
        z = ops.divide(ops.subtract(x, self.loc), self.scale)
        return -0.5 * z * z - ops.log(self.scale) - _HALF_LOG_2PI

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        eps = rng.normal(size=self._draw_shape(shape))
        return ops.add(self.loc, ops.multiply(self.scale, eps))

    @property
    def mean(self) -> Any:
        return ops.broadcast_to(self.loc, self.batch_shape)

    @property
    def std(self) -> Any:
        return ops.broadcast_to(self.scale, self.batch_shape)


class LogNormal(Distribution):
    """exp(N(mu, sigma²)): mean e^(μ+σ²/2), variance (e^(σ²) − 1) e^(2μ+σ²)."""

    param_names = ("mu", "sigma")

    def __init__(self, mu: Any = 0.0, sigma: Any = 1.0) -> None:
        self._store(("sigma",), mu=mu, sigma=sigma)

    def log_prob(self, x: Any) -> Any:
        def density(v: Any) -> Any:
            log_v = ops.log(v)
            z = ops.divide(ops.subtract(log_v, self.mu), self.sigma)
            return -0.5 * z * z - ops.log(self.sigma) - _HALF_LOG_2PI - log_v

        return _on_support(x, _inside(x, 0.0, None), 1.0, density)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        eps = rng.normal(size=self._draw_shape(shape))
        return ops.exp(ops.add(self.mu, ops.multiply(self.sigma, eps)))

    @property
    def mean(self) -> Any:
        return ops.broadcast_to(ops.exp(self.mu + 0.5 * self.sigma**2), self.batch_shape)

    @property
    def std(self) -> Any:
        s2 = self.sigma**2
        return ops.broadcast_to(ops.sqrt(ops.expm1(s2)) * ops.exp(self.mu + 0.5 * s2),
                               self.batch_shape)


class Uniform(Distribution):
    """U(low, high): mean (a + b)/2, sd (b − a)/√12."""

    param_names = ("low", "high")

    def __init__(self, low: Any = 0.0, high: Any = 1.0) -> None:
        self._store((), low=low, high=high)
        _check_positive("Uniform", "high − low", self.high - self.low)

    def log_prob(self, x: Any) -> Any:
        xp = get_backend().xp
        v = ops.stop_gradient(ops.asarray(x))
        mask = xp.logical_and(v >= ops.stop_gradient(self.low), v <= ops.stop_gradient(self.high))
        return ops.where(mask, ops.add(-ops.log(self.high - self.low), 0.0 * x), -math.inf)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        u = rng.random(self._draw_shape(shape))
        return ops.add(self.low, ops.multiply(ops.subtract(self.high, self.low), u))

    @property
    def mean(self) -> Any:
        return ops.broadcast_to(0.5 * (self.low + self.high), self.batch_shape)

    @property
    def std(self) -> Any:
        return ops.broadcast_to((self.high - self.low) / math.sqrt(12.0), self.batch_shape)


class Beta(Distribution):
    """Beta(α, β) on (0, 1): mean α/(α+β), variance αβ/((α+β)²(α+β+1))."""

    param_names = ("alpha", "beta")

    def __init__(self, alpha: Any, beta: Any) -> None:
        self._store(("alpha", "beta"), alpha=alpha, beta=beta)

    def log_prob(self, x: Any) -> Any:
        a, b = self.alpha, self.beta

        def density(v: Any) -> Any:
            log_beta_fn = ops.gammaln(a) + ops.gammaln(b) - ops.gammaln(a + b)
            log_v, log_1mv = ops.log(v), ops.log1p(-v)
            return ops.multiply(a - 1.0, log_v) + ops.multiply(b - 1.0, log_1mv) - log_beta_fn

        return _on_support(x, _inside(x, 0.0, 1.0), 0.5, density)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        return beta_quantile(self.alpha, self.beta, open_uniform(rng, self._draw_shape(shape)))

    @property
    def mean(self) -> Any:
        return ops.broadcast_to(self.alpha / (self.alpha + self.beta), self.batch_shape)

    @property
    def std(self) -> Any:
        s = self.alpha + self.beta
        return ops.broadcast_to(ops.sqrt(self.alpha * self.beta / (s * s * (s + 1.0))),
                               self.batch_shape)


class Gamma(Distribution):
    """Gamma(α, rate λ) on (0, ∞): mean α/λ, sd √α/λ."""

    param_names = ("concentration", "rate")

    def __init__(self, concentration: Any, rate: Any = 1.0) -> None:
        self._store(("concentration", "rate"), concentration=concentration, rate=rate)

    def log_prob(self, x: Any) -> Any:
        a, lam = self.concentration, self.rate

        def density(v: Any) -> Any:
            return (ops.multiply(a - 1.0, ops.log(v)) - ops.multiply(lam, v)
                    + ops.subtract(ops.multiply(a, ops.log(lam)), ops.gammaln(a)))

        return _on_support(x, _inside(x, 0.0, None), 1.0, density)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        u = open_uniform(rng, self._draw_shape(shape))
        return gamma_quantile(self.concentration, u) / self.rate

    @property
    def mean(self) -> Any:
        return ops.broadcast_to(self.concentration / self.rate, self.batch_shape)

    @property
    def std(self) -> Any:
        return ops.broadcast_to(ops.sqrt(self.concentration) / self.rate, self.batch_shape)
