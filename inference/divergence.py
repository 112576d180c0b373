"""KL(q_φ ‖ π): in closed form where one exists, by Monte Carlo otherwise.

Closed forms (``method="analytic"``, chosen by ``"auto"`` when they apply) come from the table
of :mod:`minidiff.distributions.kl`, looked up for the family's distribution
(``family.distribution(params)``: a product of Normals or Betas, a full-rank Gaussian) against
the prior; a new pair is one ``register_kl(Q, P)`` rule there.

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
from minidiff.distributions import as_vector, closed_form_kl

__all__ = ["kl_divergence", "analytic_kl"]

METHODS = ("auto", "analytic", "mc")


def analytic_kl(family: Any, params: Any, prior: Any) -> Any | None:
    """The closed-form KL(q_φ ‖ π) (a scalar, traced in ``params``), or None if the table has
    no rule for this family's distribution and the prior."""
    q = family.distribution(params) if hasattr(family, "distribution") else None
    return None if q is None else closed_form_kl(q, as_vector(prior))


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
