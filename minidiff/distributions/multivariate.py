"""Vector distributions over θ ∈ ℝ^d, the shape priors and variational families take.

Each takes ``theta`` of shape ``(..., d)`` and returns one log density per row, ``(...)``;
``sample(rng, n)`` gives ``(n, d)`` reparameterised draws and ``dim`` is d.

* :class:`Independent` is the product of scalar distributions (:mod:`.univariate`), one
  coordinate (or a block of coordinates, for a batched component) each:
  log p(θ) = Σ_j log p_j(θ_j).
* :class:`Transformed` pushes a vector distribution through an elementwise bijection f:
  log p(y) = log p_X(f⁻¹(y)) − Σ_j log |f′(x_j)|. ``Transformed(Beta(2, 2), Sigmoid().inverted())``
  is a Beta(2, 2) prior on θ written in the logit space where a Gaussian can fit.
* :class:`MultivariateNormalTriL` is N(μ, LLᵀ) with L (d, d) lower triangular with a positive
  diagonal: θ = μ + Lε, log p(θ) = Σ_j [−½ε_j² − log L_jj − ½ log 2π] with ε = L⁻¹(θ − μ).
"""

from __future__ import annotations

import math
from typing import Any

from .. import ops
from ..backend import get_backend
from .bijections import Bijection
from .univariate import Distribution, Normal

__all__ = ["Independent", "Transformed", "MultivariateNormalTriL", "as_vector",
           "standard_normal_log_prob"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def standard_normal_log_prob(eps: Any) -> Any:
    """Σ_j log N(ε_j; 0, 1) over the last axis: (..., d) → (...)."""
    return ops.sum(-0.5 * eps * eps, axis=-1) - eps.shape[-1] * _HALF_LOG_2PI


class Independent:
    """The product of independent scalar distributions: coordinates in the order given.

    A component with batch shape () is one coordinate; with batch shape (k,), k coordinates.
    ``Independent(Normal(ops.zeros(4), 1.0))`` is N(0, I₄); ``Independent(Normal(0, 1),
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
        piece = ops.getitem(theta, (Ellipsis, self.slices[j]))
        c = self.components[j]
        return piece if c.batch_shape else ops.getitem(piece, (Ellipsis, 0))

    def log_prob(self, theta: Any) -> Any:
        """Σ_j log p_j(θ_j): shape (...) for θ of shape (..., d)."""
        theta = ops.asarray(theta)
        _check_dim("Independent.log_prob", theta, self.dim)
        total = None
        for j, c in enumerate(self.components):
            term = c.log_prob(self._column(theta, j))
            if c.batch_shape:
                term = ops.sum(term, axis=-1)
            total = term if total is None else total + term
        return total

    def sample(self, rng: Any, n: int) -> Any:
        """(n, d) reparameterised draws."""
        columns = []
        for c in self.components:
            x = c.sample(rng, (n,))
            columns.append(x if c.batch_shape else ops.reshape(x, (n, 1)))
        return ops.concatenate(columns, axis=1)

    def _gather(self, attr: str) -> Any:
        return ops.concatenate([ops.reshape(getattr(c, attr), (-1,)) for c in self.components])

    @property
    def mean(self) -> Any:
        return self._gather("mean")

    @property
    def std(self) -> Any:
        return self._gather("std")

    def merged(self) -> Distribution | None:
        """The product as one scalar distribution of batch shape (d,), when every component
        has the same type (its parameters concatenated coordinate by coordinate), else None.
        ``Independent(Normal(0, 1), Normal(2, 3)).merged()`` is ``Normal([0, 2], [1, 3])``."""
        kind = type(self.components[0])
        if any(type(c) is not kind for c in self.components):
            return None
        columns = zip(*(c.parameters() for c in self.components))
        return kind(*(ops.concatenate([ops.reshape(p, (-1,)) for p in column])
                      for column in columns))

    def gaussian(self) -> tuple[Any, Any] | None:
        """(loc (d,), scale (d,)) when every component is Normal, else None."""
        merged = self.merged()
        return (merged.loc, merged.scale) if isinstance(merged, Normal) else None

    def __repr__(self) -> str:
        return f"Independent({', '.join(type(c).__name__ for c in self.components)})"


class Transformed:
    """Y = f(X) for a vector distribution X and an elementwise bijection f.

    log p_Y(y) = log p_X(x) − Σ_j log |f′(x_j)| with x = f⁻¹(y). It has no closed-form mean or
    sd in general (estimate them from ``sample``)."""

    def __init__(self, base: Any, bijection: Bijection) -> None:
        self.base = as_vector(base)
        self.bijection = bijection
        self.dim = self.base.dim

    def log_prob(self, y: Any) -> Any:
        y = ops.asarray(y)
        _check_dim("Transformed.log_prob", y, self.dim)
        x = self.bijection.inverse(y)
        return self.base.log_prob(x) - ops.sum(self.bijection.log_det_jacobian(x), axis=-1)

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


class MultivariateNormalTriL:
    """N(loc, LLᵀ): ``loc`` (d,), ``scale_tril`` L (d, d) lower triangular, positive diagonal.

    ``log_prob`` solves L ε = θ − μ by forward substitution, one coordinate at a time
    (ε_j = (x_j − Σ_{k<j} L_jk ε_k) / L_jj; d is small), so it differentiates in μ, L and θ."""

    def __init__(self, loc: Any, scale_tril: Any) -> None:
        self.loc, self.scale_tril = ops.asarray(loc), ops.asarray(scale_tril)
        d = tuple(self.loc.shape)
        if len(d) != 1 or tuple(self.scale_tril.shape) != (d[0], d[0]):
            raise ValueError(f"MultivariateNormalTriL: loc must be (d,) and scale_tril (d, d), "
                             f"got {d} and {tuple(self.scale_tril.shape)}")
        self.dim = d[0]

    def _log_diag(self) -> Any:
        eye = get_backend().xp.eye(self.dim, dtype=get_backend().float_dtype)
        return ops.log(ops.sum(ops.multiply(self.scale_tril, eye), axis=1))

    def log_prob(self, theta: Any) -> Any:
        theta = ops.asarray(theta)
        _check_dim("MultivariateNormalTriL.log_prob", theta, self.dim)
        centred = ops.subtract(theta, self.loc)
        columns: list[Any] = []
        for j in range(self.dim):
            acc = ops.getitem(centred, (Ellipsis, j))
            for k in range(j):
                acc = ops.subtract(acc, ops.multiply(ops.getitem(self.scale_tril, (j, k)),
                                                     columns[k]))
            columns.append(ops.divide(acc, ops.getitem(self.scale_tril, (j, j))))
        eps = ops.stack(columns, axis=-1)
        return ops.subtract(standard_normal_log_prob(eps), ops.sum(self._log_diag()))

    def sample(self, rng: Any, n: int) -> Any:
        eps = rng.normal(size=(n, self.dim))
        return ops.add(self.loc, ops.matmul(eps, ops.matrix_transpose(self.scale_tril)))

    @property
    def mean(self) -> Any:
        return self.loc

    @property
    def std(self) -> Any:
        return ops.sqrt(ops.sum(ops.square(self.scale_tril), axis=1))


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
