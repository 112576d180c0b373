"""KL(q_φ ‖ π): in closed form where one exists, by Monte Carlo otherwise.

Closed forms (``method="analytic"``, chosen by ``"auto"`` when they apply):

* a Gaussian family q = N(μ, LLᵀ) (``family.gaussian``) against a Gaussian prior with
  diagonal covariance π = N(m, diag s²) (``prior.gaussian``):

      KL = Σ_j log s_j − Σ_j log L_jj + ½ [Σ_jk L_jk²/s_j² + Σ_j (μ_j − m_j)²/s_j² − d];

* a Beta family against a Beta prior, coordinate by coordinate (B the beta function, ψ the
  digamma function):

      KL = log B(a₀, b₀) − log B(a, b) + (a − a₀)ψ(a) + (b − b₀)ψ(b) + (a₀ − a + b₀ − b)ψ(a + b).

Monte Carlo (``method="mc"``): KL ≈ (1/S) Σ_s [log q_φ(θ_s) − log π(θ_s)] with θ_s = g_φ(ε_s)
and log q_φ(θ_s) taken from the sampling pass. Differentiating this estimate gives the *full*
gradient: through the samples θ_s(φ) and through the density's own parameters, so the entropy
term −E_q[log q] pulls q outwards as it should. (Evaluating log q at a sample with its
derivative stopped would leave only ∂_φ log q, whose expectation is zero: the entropy gradient
would be lost and q would collapse, the bug the ℓ ≡ 0 tests catch.)
"""

from __future__ import annotations

from typing import Any

import minidiff as md

from .distributions import as_vector

__all__ = ["kl_divergence", "analytic_kl"]

METHODS = ("auto", "analytic", "mc")


def analytic_kl(family: Any, params: Any, prior: Any) -> Any | None:
    """The closed-form KL(q_φ ‖ π) (a scalar, traced in ``params``), or None if there is none
    for this family and prior."""
    prior = as_vector(prior)
    q_gauss = family.gaussian(params) if hasattr(family, "gaussian") else None
    p_gauss = prior.gaussian() if hasattr(prior, "gaussian") else None
    if q_gauss is not None and p_gauss is not None:
        loc, scale_tril = q_gauss
        m, s = p_gauss
        b = md.get_backend()
        eye = b.xp.eye(family.dim, dtype=b.float_dtype)
        log_diag = md.log(md.sum(md.multiply(scale_tril, eye), axis=1))
        trace = md.sum(md.square(scale_tril) / md.expand_dims(md.square(s), 1))
        mahalanobis = md.sum(md.square(md.subtract(loc, m) / s))
        return md.add(md.subtract(md.sum(md.log(s)), md.sum(log_diag)),
                      0.5 * (trace + mahalanobis - family.dim))
    q_beta = family.beta(params) if hasattr(family, "beta") else None
    p_beta = prior.beta() if hasattr(prior, "beta") else None
    if q_beta is not None and p_beta is not None:
        a, b_ = q_beta
        a0, b0 = p_beta

        def log_beta_fn(x: Any, y: Any) -> Any:
            return md.gammaln(x) + md.gammaln(y) - md.gammaln(x + y)

        terms = md.subtract(log_beta_fn(a0, b0), log_beta_fn(a, b_))
        terms = terms + md.subtract(a, a0) * md.digamma(a) + md.subtract(b_, b0) * md.digamma(b_)
        terms = terms + md.subtract(md.add(a0, b0), a + b_) * md.digamma(a + b_)
        return md.sum(terms)
    return None


def kl_divergence(family: Any, params: Any, prior: Any, *, rng: Any = None,
                  n_samples: int = 100, method: str = "auto") -> Any:
    """KL(q_φ ‖ π), a scalar differentiable in ``params``.

    Args:
        family, params: q_φ.
        prior: π, a vector distribution over the family's θ (a scalar distribution is taken
            as ``Independent(prior)``).
        rng: the generator for the Monte Carlo draws (needed unless the KL is analytic).
        n_samples: S, the Monte Carlo sample size.
        method: ``"auto"`` (closed form when there is one), ``"analytic"`` (raise if there is
            none) or ``"mc"``.
    """
    if method not in METHODS:
        raise ValueError(f"kl_divergence: method must be one of {METHODS}, got {method!r}")
    prior = as_vector(prior)
    if prior.dim != family.dim:
        raise ValueError(f"kl_divergence: the prior has dimension {prior.dim} but the family "
                         f"has {family.dim}")
    if method != "mc":
        kl = analytic_kl(family, params, prior)
        if kl is not None:
            return kl
        if method == "analytic":
            raise ValueError(f"kl_divergence: no closed form for {family!r} against "
                             f"{type(prior).__name__}; use method='mc' or 'auto'")
    if rng is None:
        raise ValueError("kl_divergence: the Monte Carlo estimate needs rng (a generator)")
    theta, log_q = family.sample(params, n_samples, rng)
    return md.mean(md.subtract(log_q, prior.log_prob(theta)))
