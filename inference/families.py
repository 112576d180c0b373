"""Variational families q_φ(θ): functional objects over a pytree of parameters φ.

Every family has the same three calls (and ``dim``, the dimension d of θ):

* ``family.init(seed=0) -> params``: a pytree of arrays (nested dicts/lists), plain data;
* ``family.sample(params, n, rng) -> (theta, log_q)``: θ of shape (n, d), drawn as θ = g_φ(ε)
  from parameter-free noise ε, and log q_φ(θ) of shape (n,), computed *along the sampling
  pass* from ε and φ. Both are differentiable in φ (pass traced params), and the derivative of
  ``log_q`` is the total one, through the sample and through the density's parameters, which is
  what the entropy term of the KL needs;
* ``family.log_prob(params, theta) -> (n,)``: log q_φ(θ) at given points (θ of shape (n, d)).

A family whose q_φ is a distribution of :mod:`minidiff.distributions` also gives
``distribution(params)`` (None otherwise); the divergence looks that distribution and the
prior up in the table of closed-form KLs (:mod:`minidiff.distributions.kl`). The Gaussians also
give ``gaussian(params) -> (loc (d,), scale_tril (d, d))``.

This module holds the Gaussians; the flow is in :mod:`.flows`, the Beta family in
:mod:`.beta_family`.
"""

from __future__ import annotations

from typing import Any

import minidiff as md
from minidiff.distributions import (
    Independent,
    MultivariateNormalTriL,
    Normal,
    standard_normal_log_prob,
)
from minidiff.validation import check_positive_int

__all__ = ["Family", "DiagonalGaussian", "FullRankGaussian"]


class Family:
    """The interface every variational family provides (see the module notes)."""

    dim: int

    def init(self, seed: int = 0) -> Any:
        """The initial variational parameters φ₀ (a pytree)."""
        raise NotImplementedError(f"{type(self).__name__} must define init(seed)")

    def sample(self, params: Any, n: int, rng: Any) -> tuple[Any, Any]:
        """n reparameterised draws θ (n, d) of q_φ and log q_φ(θ) (n,) along the draw."""
        raise NotImplementedError(f"{type(self).__name__} must define sample(params, n, rng)")

    def log_prob(self, params: Any, theta: Any) -> Any:
        """log q_φ(θ) for draws θ (n, d): shape (n,)."""
        raise NotImplementedError(f"{type(self).__name__} must define log_prob(params, theta)")

    def distribution(self, params: Any) -> Any | None:
        """q_φ as a distribution of :mod:`minidiff.distributions`, or None (a flow)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


def check_dim(name: str, dim: Any) -> int:
    """d, an integer ≥ 1."""
    return check_positive_int(name, "dim", dim)


def check_count(name: str, n: Any) -> int:
    """The number of draws, an integer ≥ 1."""
    return check_positive_int(name, "the number of samples", n)


def _initial(value: Any, dim: int, default: float, name: str) -> Any:
    if value is None:
        return md.get_backend().xp.full((dim,), default, dtype=md.get_backend().float_dtype)
    arr = md.broadcast_to(md.asarray(value), (dim,))
    return md.get_backend().xp.asarray(md.stop_gradient(arr), copy=True)


class DiagonalGaussian(Family):
    """q = N(μ, diag(σ²)), params ``{"loc": (d,), "log_scale": (d,)}`` with σ = exp(log_scale).

    θ = μ + σ ⊙ ε, ε ~ N(0, I); log q = Σ_j [−½ε_j² − log σ_j − ½ log 2π]."""

    def __init__(self, dim: int, loc: Any = None, scale: Any = None) -> None:
        self.dim = check_dim("DiagonalGaussian", dim)
        self._loc, self._scale = loc, scale

    def init(self, seed: int = 0) -> dict:
        """μ = ``loc`` (default 0) and σ = ``scale`` (default 1) from the constructor; the seed
        is unused (the start is deterministic)."""
        log_scale = None if self._scale is None else md.log(md.asarray(self._scale))
        return {"loc": _initial(self._loc, self.dim, 0.0, "loc"),
                "log_scale": _initial(log_scale, self.dim, 0.0, "scale")}

    def sample(self, params: dict, n: int, rng: Any) -> tuple[Any, Any]:
        n = check_count("DiagonalGaussian.sample", n)
        eps = rng.normal(size=(n, self.dim))
        theta = md.add(params["loc"], md.multiply(md.exp(params["log_scale"]), eps))
        return theta, md.subtract(standard_normal_log_prob(eps), md.sum(params["log_scale"]))

    def log_prob(self, params: dict, theta: Any) -> Any:
        eps = md.multiply(md.subtract(theta, params["loc"]), md.exp(-params["log_scale"]))
        return md.subtract(standard_normal_log_prob(eps), md.sum(params["log_scale"]))

    def distribution(self, params: dict) -> Independent:
        return Independent(Normal(params["loc"], md.exp(params["log_scale"])))

    def gaussian(self, params: dict) -> tuple[Any, Any]:
        xp = md.get_backend().xp
        eye = xp.eye(self.dim, dtype=md.get_backend().float_dtype)
        return params["loc"], md.multiply(eye, md.exp(params["log_scale"]))


class FullRankGaussian(Family):
    """q = N(μ, LLᵀ) with L lower triangular and a positive diagonal.

    params ``{"loc": (d,), "tril": (d, d)}``: L takes the strictly lower triangle of ``tril``
    and exp of its diagonal (the upper triangle is unused). θ = μ + L ε, ε ~ N(0, I);
    log q = Σ_j [−½ε_j² − log L_jj − ½ log 2π] (``log_prob`` is the distribution's,
    :class:`minidiff.distributions.MultivariateNormalTriL`)."""

    def __init__(self, dim: int, loc: Any = None, scale: Any = None) -> None:
        self.dim = check_dim("FullRankGaussian", dim)
        self._loc, self._scale = loc, scale

    def init(self, seed: int = 0) -> dict:
        """μ = ``loc`` (default 0), L = diag(``scale``) (default I); the seed is unused."""
        b = md.get_backend()
        log_scale = _initial(None if self._scale is None else md.log(md.asarray(self._scale)),
                             self.dim, 0.0, "scale")
        return {"loc": _initial(self._loc, self.dim, 0.0, "loc"),
                "tril": b.xp.eye(self.dim, dtype=b.float_dtype) * log_scale}

    def _factor(self, params: dict) -> tuple[Any, Any]:
        """(L (d, d), log diag L (d,))."""
        b = md.get_backend()
        eye = b.xp.eye(self.dim, dtype=b.float_dtype)
        strictly_lower = b.xp.tril(b.xp.ones((self.dim, self.dim), dtype=b.float_dtype), k=-1)
        raw = params["tril"]
        log_diag = md.sum(md.multiply(raw, eye), axis=1)
        scale_tril = md.add(md.multiply(raw, strictly_lower), md.multiply(eye, md.exp(log_diag)))
        return scale_tril, log_diag

    def sample(self, params: dict, n: int, rng: Any) -> tuple[Any, Any]:
        n = check_count("FullRankGaussian.sample", n)
        scale_tril, log_diag = self._factor(params)
        eps = rng.normal(size=(n, self.dim))
        theta = md.add(params["loc"], md.matmul(eps, md.matrix_transpose(scale_tril)))
        return theta, md.subtract(standard_normal_log_prob(eps), md.sum(log_diag))

    def log_prob(self, params: dict, theta: Any) -> Any:
        return self.distribution(params).log_prob(theta)

    def distribution(self, params: dict) -> MultivariateNormalTriL:
        return MultivariateNormalTriL(params["loc"], self._factor(params)[0])

    def gaussian(self, params: dict) -> tuple[Any, Any]:
        return params["loc"], self._factor(params)[0]
