"""minidiff.distributions' table of closed-form KLs: each rule against an independent value,
lookup by the pair of types, a product merged across differently blocked components, a rule
registered from outside reaching ``kl_divergence``, and the Monte Carlo fallback when no rule
applies.

Tolerances: a closed form against SciPy's entropy/cross-entropy integrals (``scipy.stats``'s
own quadrature, accurate to about 1e-10 here) to 1e-8; two closed forms of the same quantity
(merged products, the full-rank rule at a diagonal L) to 1e-12 (rounding only); a Monte Carlo
fallback against the closed form by a z-test at 4 standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st

import minidiff as md
from minidiff import distributions as dist
from minidiff import inference as inf


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def quadrature_kl(q, p, low, high):
    """∫ q log(q/p) by adaptive quadrature (SciPy frozen distributions)."""
    value, _ = si.quad(lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x)), low, high,
                       epsabs=1e-12, epsrel=1e-12, limit=200)
    return value


def test_normal_and_beta_rules_match_quadrature():
    kl = dist.closed_form_kl(dist.Normal(0.3, 0.7), dist.Normal(-1.0, 2.0))
    assert abs(float(kl) - quadrature_kl(st.norm(0.3, 0.7), st.norm(-1.0, 2.0), -12, 12)) < 1e-8
    kl = dist.closed_form_kl(dist.Beta(2.5, 0.9), dist.Beta(1.5, 3.0))
    assert abs(float(kl) - quadrature_kl(st.beta(2.5, 0.9), st.beta(1.5, 3.0), 0, 1)) < 1e-8


def test_products_merge_across_blocks_and_the_full_rank_rule_agrees_at_diagonal_l():
    loc, scale = md.asarray([0.2, -0.5, 1.0]), md.asarray([0.5, 1.5, 0.8])
    q = dist.Independent(dist.Normal(loc, scale))
    p = dist.Independent(dist.Normal(0.0, 1.0), dist.Normal(md.asarray([1.0, -1.0]), 2.0))
    by_block = float(dist.closed_form_kl(q, p))
    by_coordinate = sum(float(dist.closed_form_kl(dist.Normal(loc[j], scale[j]),
                                                  dist.Normal(m, s)))
                        for j, (m, s) in enumerate([(0.0, 1.0), (1.0, 2.0), (-1.0, 2.0)]))
    assert abs(by_block - by_coordinate) < 1e-12
    tril = dist.MultivariateNormalTriL(loc, md.asarray(np.diag(host(scale))))
    assert abs(float(dist.closed_form_kl(tril, p)) - by_block) < 1e-12


def test_no_rule_gives_none_and_a_mixed_product_has_none():
    assert dist.closed_form_kl(dist.Normal(0.0, 1.0), dist.Beta(2.0, 2.0)) is None
    mixed = dist.Independent(dist.Normal(0.0, 1.0), dist.Beta(2.0, 2.0))
    same = dist.Independent(dist.Normal(md.zeros((2,)), 1.0))
    assert mixed.merged() is None and dist.closed_form_kl(same, mixed) is None


def test_a_registered_rule_reaches_kl_divergence_and_mc_is_the_fallback():
    class Shifted(dist.Normal):
        """A Normal subclass: inherits the Normal rule until one of its own is registered."""

    family = inf.DiagonalGaussian(1, loc=0.4, scale=0.6)
    params = family.init()
    prior = dist.Independent(Shifted(-0.2, 1.3))
    exact = float(inf.kl_divergence(family, params, prior, method="analytic"))
    # the Monte Carlo fallback (no table lookup) agrees with the inherited closed form
    theta, log_q = family.sample(params, 40_000, md.random.default_rng(3))
    terms = host(log_q - prior.log_prob(theta))
    assert abs(terms.mean() - exact) < 4 * terms.std(ddof=1) / math.sqrt(terms.size)
    calls = []

    @dist.register_kl(dist.Normal, Shifted)
    def _rule(q, p):
        calls.append((type(q), type(p)))
        return dist.KL_RULES[(dist.Normal, dist.Normal)](q, p)

    try:
        again = float(inf.kl_divergence(family, params, prior, method="analytic"))
    finally:
        del dist.KL_RULES[(dist.Normal, Shifted)]
    assert calls == [(dist.Normal, Shifted)] and abs(again - exact) < 1e-12


def test_register_kl_refuses_non_classes():
    with pytest.raises(TypeError, match="register_kl: give two classes"):
        dist.register_kl("Normal", dist.Normal)
