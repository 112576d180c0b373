"""KL(q ‖ p) in closed form, from a table of rules keyed by the pair of distribution types.

A rule is registered with the :func:`register_kl` decorator, as TensorFlow Probability does::

    @register_kl(Normal, Normal)
    def _normal_normal(q, p):
        ...

:func:`closed_form_kl` finds the rule of the most specific registered pair along both types'
method resolution orders and returns its value, a scalar (or an array of elementwise KLs for
scalar distributions with a batch shape), or None when no rule applies. A rule may itself
return None when the pair has no closed form for these particular instances (a product whose
components are not all of one type); the caller then estimates the KL by Monte Carlo.

The rules registered here (B the beta function, ψ the digamma function):

=====================================  ======================================================
pair                                   KL(q ‖ p)
=====================================  ======================================================
Normal(μ, σ) ‖ Normal(m, s)            log(s/σ) + (σ² + (μ − m)²)/(2s²) − ½, elementwise
Beta(a, b) ‖ Beta(a₀, b₀)              log B(a₀, b₀) − log B(a, b) + (a − a₀)ψ(a)
                                       + (b − b₀)ψ(b) + (a₀ − a + b₀ − b)ψ(a + b), elementwise
Independent ‖ Independent              Σ_j KL(q_j ‖ p_j) of the merged components
                                       (:meth:`~.multivariate.Independent.merged`)
N(μ, LLᵀ) ‖ Independent Normals        Σ_j log s_j − Σ_j log L_jj
                                       + ½ [Σ_jk L_jk²/s_j² + Σ_j (μ_j − m_j)²/s_j² − d]
=====================================  ======================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import ops
from ..backend import get_backend
from .multivariate import Independent, MultivariateNormalTriL
from .univariate import Beta, Normal

__all__ = ["register_kl", "closed_form_kl", "KL_RULES"]

KL_RULES: dict[tuple[type, type], Callable[[Any, Any], Any]] = {}


def register_kl(q_type: type, p_type: type) -> Callable[[Callable], Callable]:
    """Decorator: register ``rule(q, p) -> KL(q ‖ p)`` (or None) for q of ``q_type`` and p of
    ``p_type`` (and their subclasses, unless a more specific pair is registered)."""
    if not (isinstance(q_type, type) and isinstance(p_type, type)):
        raise TypeError(f"register_kl: give two classes, got {q_type!r} and {p_type!r}")

    def register(rule: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        KL_RULES[(q_type, p_type)] = rule
        return rule

    return register


def closed_form_kl(q: Any, p: Any) -> Any | None:
    """KL(q ‖ p) by the table's rule for the pair (see the module notes), or None."""
    for q_base in type(q).__mro__:
        for p_base in type(p).__mro__:
            rule = KL_RULES.get((q_base, p_base))
            if rule is not None:
                return rule(q, p)
    return None


@register_kl(Normal, Normal)
def _normal_normal(q: Normal, p: Normal) -> Any:
    ratio = ops.square(q.scale / p.scale)
    offset = ops.square(ops.subtract(q.loc, p.loc) / p.scale)
    return 0.5 * (ratio + offset - 1.0) - 0.5 * ops.log(ratio)


@register_kl(Beta, Beta)
def _beta_beta(q: Beta, p: Beta) -> Any:
    def log_beta_fn(x: Any, y: Any) -> Any:
        return ops.gammaln(x) + ops.gammaln(y) - ops.gammaln(x + y)

    a, b, a0, b0 = q.alpha, q.beta, p.alpha, p.beta
    terms = ops.subtract(log_beta_fn(a0, b0), log_beta_fn(a, b))
    terms = terms + ops.subtract(a, a0) * ops.digamma(a) + ops.subtract(b, b0) * ops.digamma(b)
    return terms + ops.subtract(ops.add(a0, b0), a + b) * ops.digamma(a + b)


@register_kl(Independent, Independent)
def _independent_independent(q: Independent, p: Independent) -> Any | None:
    if q.dim != p.dim:
        raise ValueError(f"KL: the two products have dimensions {q.dim} and {p.dim}")
    q_merged, p_merged = q.merged(), p.merged()
    if q_merged is None or p_merged is None:
        return None
    terms = closed_form_kl(q_merged, p_merged)
    return None if terms is None else ops.sum(terms)


@register_kl(MultivariateNormalTriL, Independent)
def _tril_normal_diagonal(q: MultivariateNormalTriL, p: Independent) -> Any | None:
    gaussian = p.gaussian()
    if gaussian is None:
        return None
    m, s = gaussian
    b = get_backend()
    eye = b.xp.eye(q.dim, dtype=b.float_dtype)
    log_diag = ops.log(ops.sum(ops.multiply(q.scale_tril, eye), axis=1))
    trace = ops.sum(ops.square(q.scale_tril) / ops.expand_dims(ops.square(s), 1))
    mahalanobis = ops.sum(ops.square(ops.subtract(q.loc, m) / s))
    return ops.add(ops.subtract(ops.sum(ops.log(s)), ops.sum(log_diag)),
                   0.5 * (trace + mahalanobis - q.dim))
