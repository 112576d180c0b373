"""Special functions: ``erf``, ``gammaln`` and the polygamma family.

The array API standard has none of them, so each backend supplies them (SciPy, cupyx); their
derivatives are again special functions or elementwise ops:

    erf'(x) = (2/√π) e^{−x²},    (log Γ)'(x) = ψ(x),    ψ⁽ⁿ⁾'(x) = ψ⁽ⁿ⁺¹⁾(x).
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend
from .elementwise import elementwise_primitive, exp, negative

__all__ = ["erf", "gammaln", "polygamma_p", "digamma", "polygamma"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

erf = elementwise_primitive(
    "erf", lambda x: get_backend().erf(x),
    partials=[lambda x: _TWO_OVER_SQRT_PI * exp(negative(x * x))],        # (2/√π) e^{-x²}
    fresh=True)

polygamma_p = elementwise_primitive(
    "polygamma", lambda x, *, n: get_backend().polygamma(n, x),
    partials=[lambda x, n: polygamma_p(x, n=n + 1)],                      # ψ⁽ⁿ⁾' = ψ⁽ⁿ⁺¹⁾
    fresh=True)

gammaln = elementwise_primitive(
    "gammaln", lambda x: get_backend().gammaln(x),
    partials=[lambda x: polygamma_p(x, n=0)],                             # ψ(x)
    fresh=True)


def digamma(x: Any) -> Any:
    """ψ(x) = d/dx log Γ(x); its derivative is the trigamma function ψ⁽¹⁾."""
    return polygamma_p(x, n=0)


def polygamma(n: int, x: Any) -> Any:
    """ψ⁽ⁿ⁾(x), the n-th derivative of the digamma function (SciPy's argument order)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"polygamma: order n must be a non-negative int, got {n!r}")
    return polygamma_p(x, n=n)
