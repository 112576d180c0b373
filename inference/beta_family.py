"""The Beta variational family on (0, 1)^d, with implicit reparameterisation gradients.

q_φ(θ) = Π_j Beta(θ_j; α_j, β_j), parameterised on log concentrations,
params ``{"log_alpha": (d,), "log_beta": (d,)}``, so every real φ is a valid Beta.

A draw is θ = F⁻¹(U; α, β) with U ~ U(0, 1) (inversion), and its derivative in (α, β) is the
implicit one, dθ/dα = −(∂F/∂α)(θ)/p(θ) (:mod:`.implicit`): a pathwise gradient, as for a
Gaussian, though no closed-form θ = g_φ(ε) exists. log q is computed along the pass at the
traced θ, so its derivative is the total one (through θ and through α, β).

A Beta family against a Beta prior has a closed-form KL (:mod:`minidiff.distributions.kl`).
"""

from __future__ import annotations

from typing import Any

import minidiff as md
from minidiff.distributions import Beta, Independent, beta_quantile, open_uniform

from .families import Family, check_count, check_dim

__all__ = ["BetaFamily"]


class BetaFamily(Family):
    """Independent Beta(α_j, β_j) coordinates; α = exp(log_alpha), β = exp(log_beta).

    Args:
        dim: d ≥ 1.
        alpha, beta: the initial concentrations (default 1, 1: uniform).
    """

    def __init__(self, dim: int, alpha: Any = 1.0, beta: Any = 1.0) -> None:
        self.dim = check_dim("BetaFamily", dim)
        self._alpha, self._beta = alpha, beta

    def init(self, seed: int = 0) -> dict:
        """log α and log β from the constructor's concentrations; the seed is unused."""
        xp = md.get_backend().xp

        def start(v: Any) -> Any:
            return xp.asarray(md.stop_gradient(md.broadcast_to(md.log(md.asarray(v)),
                                                               (self.dim,))), copy=True)

        return {"log_alpha": start(self._alpha), "log_beta": start(self._beta)}

    def concentrations(self, params: dict) -> tuple[Any, Any]:
        return md.exp(params["log_alpha"]), md.exp(params["log_beta"])

    def sample(self, params: dict, n: int, rng: Any) -> tuple[Any, Any]:
        n = check_count("BetaFamily.sample", n)
        alpha, beta = self.concentrations(params)
        theta = beta_quantile(alpha, beta, open_uniform(rng, (n, self.dim)))
        return theta, md.sum(Beta(alpha, beta).log_prob(theta), axis=-1)

    def log_prob(self, params: dict, theta: Any) -> Any:
        alpha, beta = self.concentrations(params)
        return md.sum(Beta(alpha, beta).log_prob(theta), axis=-1)

    def distribution(self, params: dict) -> Independent:
        return Independent(Beta(*self.concentrations(params)))
