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

Vector distributions over θ ∈ ℝ^d, which priors and families are, take ``theta`` of shape
``(..., d)`` and return one log density per row, ``(...)``; ``sample(rng, n)`` gives ``(n, d)``:

* :class:`Independent` is the product of scalar distributions, one coordinate (or a block of
  coordinates, for a batched component) each: log p(θ) = Σ_j log p_j(θ_j).
* :class:`Transformed` pushes a vector distribution through an elementwise bijection f:
  log p(y) = log p_X(f⁻¹(y)) − Σ_j log |f′(x_j)|. ``Transformed(Beta(2, 2), Sigmoid().inverted())``
  is a Beta(2, 2) prior on θ written in the logit space where a Gaussian can fit.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import minidiff as md

from .bijections import Bijection
from .implicit import beta_quantile, gamma_quantile, open_uniform

__all__ = ["Distribution", "Normal", "LogNormal", "Uniform", "Beta", "Gamma", "Independent",
           "Transformed", "as_vector"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_positive(name: str, what: str, x: Any) -> None:
    xp = md.get_backend().xp
    v = md.stop_gradient(x)
    if not bool(xp.all(v > 0)) or not bool(xp.all(xp.isfinite(v))):
        raise ValueError(f"{name}: {what} must be finite and > 0, got {v!r}")


def _inside(x: Any, low: float | None, high: float | None) -> Any:
    """Boolean mask of x strictly inside (low, high) (either bound may be None)."""
    xp = md.get_backend().xp
    v = md.stop_gradient(md.asarray(x))
    mask = xp.ones(tuple(v.shape), dtype=xp.bool)
    if low is not None:
        mask = xp.logical_and(mask, v > low)
    if high is not None:
        mask = xp.logical_and(mask, v < high)
    return mask


def _on_support(x: Any, mask: Any, safe: float, density: Any) -> Any:
    """density(x) where ``mask``, −∞ elsewhere; outside values are swapped for ``safe`` before
    ``density`` sees them, so neither the value nor the derivative there is NaN."""
    x = md.asarray(x)
    inside = density(md.where(mask, x, safe))
    return md.where(mask, inside, -math.inf)


class Distribution(abc.ABC):
    """A scalar distribution with parameters broadcast to ``batch_shape``: an abstract base,
    each subclass defines the four abstract members (a class that forgets one cannot be
    instantiated)."""

    batch_shape: tuple[int, ...] = ()

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

    def _draw_shape(self, shape: Any) -> tuple[int, ...]:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return shape + self.batch_shape


def _batch_shape(*params: Any) -> tuple[int, ...]:
    xp = md.get_backend().xp
    return tuple(xp.broadcast_arrays(*(md.stop_gradient(p) for p in params))[0].shape)


class Normal(Distribution):
    """N(loc, scale²)."""

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0) -> None:
        self.loc, self.scale = md.asarray(loc), md.asarray(scale)
        _check_positive("Normal", "scale", self.scale)
        self.batch_shape = _batch_shape(self.loc, self.scale)

    def log_prob(self, x: Any) -> Any:
        z = md.divide(md.subtract(x, self.loc), self.scale)
        return -0.5 * z * z - md.log(self.scale) - _HALF_LOG_2PI

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        eps = rng.normal(size=self._draw_shape(shape))
        return md.add(self.loc, md.multiply(self.scale, eps))

    @property
    def mean(self) -> Any:
        return md.broadcast_to(self.loc, self.batch_shape)

    @property
    def std(self) -> Any:
        return md.broadcast_to(self.scale, self.batch_shape)


class LogNormal(Distribution):
    """exp(N(mu, sigma²)): mean e^(μ+σ²/2), variance (e^(σ²) − 1) e^(2μ+σ²)."""

    def __init__(self, mu: Any = 0.0, sigma: Any = 1.0) -> None:
        self.mu, self.sigma = md.asarray(mu), md.asarray(sigma)
        _check_positive("LogNormal", "sigma", self.sigma)
        self.batch_shape = _batch_shape(self.mu, self.sigma)

    def log_prob(self, x: Any) -> Any:
        def density(v: Any) -> Any:
            log_v = md.log(v)
            z = md.divide(md.subtract(log_v, self.mu), self.sigma)
            return -0.5 * z * z - md.log(self.sigma) - _HALF_LOG_2PI - log_v

        return _on_support(x, _inside(x, 0.0, None), 1.0, density)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        eps = rng.normal(size=self._draw_shape(shape))
        return md.exp(md.add(self.mu, md.multiply(self.sigma, eps)))

    @property
    def mean(self) -> Any:
        return md.broadcast_to(md.exp(self.mu + 0.5 * self.sigma**2), self.batch_shape)

    @property
    def std(self) -> Any:
        s2 = self.sigma**2
        return md.broadcast_to(md.sqrt(md.expm1(s2)) * md.exp(self.mu + 0.5 * s2),
                               self.batch_shape)


class Uniform(Distribution):
    """U(low, high): mean (a + b)/2, sd (b − a)/√12."""

    def __init__(self, low: Any = 0.0, high: Any = 1.0) -> None:
        self.low, self.high = md.asarray(low), md.asarray(high)
        _check_positive("Uniform", "high − low", self.high - self.low)
        self.batch_shape = _batch_shape(self.low, self.high)

    def log_prob(self, x: Any) -> Any:
        xp = md.get_backend().xp
        v = md.stop_gradient(md.asarray(x))
        mask = xp.logical_and(v >= md.stop_gradient(self.low), v <= md.stop_gradient(self.high))
        return md.where(mask, md.add(-md.log(self.high - self.low), 0.0 * x), -math.inf)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        u = rng.random(self._draw_shape(shape))
        return md.add(self.low, md.multiply(md.subtract(self.high, self.low), u))

    @property
    def mean(self) -> Any:
        return md.broadcast_to(0.5 * (self.low + self.high), self.batch_shape)

    @property
    def std(self) -> Any:
        return md.broadcast_to((self.high - self.low) / math.sqrt(12.0), self.batch_shape)


class Beta(Distribution):
    """Beta(α, β) on (0, 1): mean α/(α+β), variance αβ/((α+β)²(α+β+1))."""

    def __init__(self, alpha: Any, beta: Any) -> None:
        self.alpha, self.beta = md.asarray(alpha), md.asarray(beta)
        _check_positive("Beta", "alpha", self.alpha)
        _check_positive("Beta", "beta", self.beta)
        self.batch_shape = _batch_shape(self.alpha, self.beta)

    def log_prob(self, x: Any) -> Any:
        a, b = self.alpha, self.beta

        def density(v: Any) -> Any:
            log_beta_fn = md.gammaln(a) + md.gammaln(b) - md.gammaln(a + b)
            log_v, log_1mv = md.log(v), md.log1p(-v)
            return md.multiply(a - 1.0, log_v) + md.multiply(b - 1.0, log_1mv) - log_beta_fn

        return _on_support(x, _inside(x, 0.0, 1.0), 0.5, density)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        return beta_quantile(self.alpha, self.beta, open_uniform(rng, self._draw_shape(shape)))

    @property
    def mean(self) -> Any:
        return md.broadcast_to(self.alpha / (self.alpha + self.beta), self.batch_shape)

    @property
    def std(self) -> Any:
        s = self.alpha + self.beta
        return md.broadcast_to(md.sqrt(self.alpha * self.beta / (s * s * (s + 1.0))),
                               self.batch_shape)


class Gamma(Distribution):
    """Gamma(α, rate λ) on (0, ∞): mean α/λ, sd √α/λ."""

    def __init__(self, concentration: Any, rate: Any = 1.0) -> None:
        self.concentration, self.rate = md.asarray(concentration), md.asarray(rate)
        _check_positive("Gamma", "concentration", self.concentration)
        _check_positive("Gamma", "rate", self.rate)
        self.batch_shape = _batch_shape(self.concentration, self.rate)

    def log_prob(self, x: Any) -> Any:
        a, lam = self.concentration, self.rate

        def density(v: Any) -> Any:
            return (md.multiply(a - 1.0, md.log(v)) - md.multiply(lam, v)
                    + md.subtract(md.multiply(a, md.log(lam)), md.gammaln(a)))

        return _on_support(x, _inside(x, 0.0, None), 1.0, density)

    def sample(self, rng: Any, shape: Any = ()) -> Any:
        u = open_uniform(rng, self._draw_shape(shape))
        return gamma_quantile(self.concentration, u) / self.rate

    @property
    def mean(self) -> Any:
        return md.broadcast_to(self.concentration / self.rate, self.batch_shape)

    @property
    def std(self) -> Any:
        return md.broadcast_to(md.sqrt(self.concentration) / self.rate, self.batch_shape)


# ---------------------------------------------------------------------------------------------
# Vector distributions
# ---------------------------------------------------------------------------------------------


class Independent:
    """The product of independent scalar distributions: coordinates in the order given.

    A component with batch shape () is one coordinate; with batch shape (k,), k coordinates.
    ``Independent(Normal(md.zeros(4), 1.0))`` is N(0, I₄); ``Independent(Normal(0, 1),
    Beta(2, 2))`` is a 2-d product."""

    def __init__(self, *components: Distribution) -> None:
        if not components:
            raise ValueError("Independent: give at least one distribution")
        self.components = components
        self.slices = []
        offset = 0
        for c in components:
            if not isinstance(c, Distribution):
                raise TypeError(f"Independent: components must be scalar distributions, got "
                                f"{type(c).__name__}")
            if len(c.batch_shape) > 1:
                raise ValueError(f"Independent: a component's batch shape must be () or (k,), "
                                 f"got {c.batch_shape}")
            k = c.batch_shape[0] if c.batch_shape else 1
            self.slices.append(slice(offset, offset + k))
            offset += k
        self.dim = offset

    def _column(self, theta: Any, j: int) -> Any:
        piece = md.getitem(theta, (Ellipsis, self.slices[j]))
        c = self.components[j]
        return piece if c.batch_shape else md.getitem(piece, (Ellipsis, 0))

    def log_prob(self, theta: Any) -> Any:
        """Σ_j log p_j(θ_j): shape (...) for θ of shape (..., d)."""
        theta = md.asarray(theta)
        _check_dim("Independent.log_prob", theta, self.dim)
        total = None
        for j, c in enumerate(self.components):
            term = c.log_prob(self._column(theta, j))
            if c.batch_shape:
                term = md.sum(term, axis=-1)
            total = term if total is None else total + term
        return total

    def sample(self, rng: Any, n: int) -> Any:
        """(n, d) reparameterised draws."""
        columns = []
        for c in self.components:
            x = c.sample(rng, (n,))
            columns.append(x if c.batch_shape else md.reshape(x, (n, 1)))
        return md.concatenate(columns, axis=1)

    def _gather(self, attr: str) -> Any:
        return md.concatenate([md.reshape(getattr(c, attr), (-1,)) for c in self.components])

    @property
    def mean(self) -> Any:
        return self._gather("mean")

    @property
    def std(self) -> Any:
        return self._gather("std")

    def gaussian(self) -> tuple[Any, Any] | None:
        """(loc (d,), scale (d,)) when every component is Normal, else None."""
        if all(isinstance(c, Normal) for c in self.components):
            return self.mean, self.std
        return None

    def beta(self) -> tuple[Any, Any] | None:
        """(α (d,), β (d,)) when every component is Beta, else None."""
        if all(isinstance(c, Beta) for c in self.components):
            return (self._gather_params("alpha"), self._gather_params("beta"))
        return None

    def _gather_params(self, name: str) -> Any:
        return md.concatenate([md.reshape(md.broadcast_to(getattr(c, name), c.batch_shape),
                                          (-1,)) for c in self.components])


class Transformed:
    """Y = f(X) for a vector distribution X and an elementwise bijection f.

    log p_Y(y) = log p_X(x) − Σ_j log |f′(x_j)| with x = f⁻¹(y). It has no closed-form mean or
    sd in general (estimate them from ``sample``)."""

    def __init__(self, base: Any, bijection: Bijection) -> None:
        self.base = as_vector(base)
        self.bijection = bijection
        self.dim = self.base.dim

    def log_prob(self, y: Any) -> Any:
        y = md.asarray(y)
        _check_dim("Transformed.log_prob", y, self.dim)
        x = self.bijection.inverse(y)
        return self.base.log_prob(x) - md.sum(self.bijection.log_det_jacobian(x), axis=-1)

    def sample(self, rng: Any, n: int) -> Any:
        return self.bijection.forward(self.base.sample(rng, n))

    @property
    def mean(self) -> Any:
        raise NotImplementedError("Transformed: the mean has no closed form in general; "
                                  "estimate it from sample(rng, n)")

    @property
    def std(self) -> Any:
        raise NotImplementedError("Transformed: the sd has no closed form in general; "
                                  "estimate it from sample(rng, n)")

    def gaussian(self) -> None:
        return None

    def beta(self) -> None:
        return None


def as_vector(dist: Any) -> Any:
    """A vector distribution: scalar distributions become ``Independent(dist)``."""
    if isinstance(dist, Distribution):
        return Independent(dist)
    if not all(hasattr(dist, a) for a in ("log_prob", "sample", "dim")):
        raise TypeError(f"expected a distribution with log_prob, sample and dim, got "
                        f"{type(dist).__name__}")
    return dist


def _check_dim(name: str, theta: Any, dim: int) -> None:
    shape = tuple(theta.shape)
    if not shape or shape[-1] != dim:
        raise ValueError(f"{name}: θ must have shape (..., {dim}), got {shape}")
