"""A normalising flow family: RealNVP (Dinh, Sohl-Dickstein & Bengio 2017).

θ = f_L ∘ … ∘ f_1(x₀) with x₀ = μ + σ ⊙ ε, ε ~ N(0, I_d), a diagonal-Gaussian base. Each layer
is invertible with a cheap log-determinant, so the density comes along the sampling pass:

    log q(θ) = log N(x₀; μ, σ²) − Σ_l log |det ∂f_l/∂x (x_{l−1})|.

A layer is, in order:

1. an *affine coupling* (d ≥ 2): split x = (x_A, x_B) with x_A the first h = ⌊d/2⌋
   coordinates, (s, t) = MLP(x_A), and

       y_A = x_A,   y_B = x_B ⊙ exp(s) + t,   log |det| = Σ_j s_j;

   the inverse is x_B = (y_B − t(y_A)) ⊙ exp(−s(y_A)). The MLP is h → hidden… → 2(d − h) with
   tanh activations; its *last layer is zero-initialised*, so s = t = 0 and the coupling starts
   as the identity: the untrained flow is its base;
2. optionally (``elementwise=True``) a *sinh-arcsinh* map per coordinate (Jones & Pewsey 2009),
   y = sinh(δ·asinh(x) + ε) with δ = exp(log_tail), log |f′(x)| = log δ + log cosh(δ asinh x + ε)
   − ½ log(1 + x²); ε moves skewness and δ the tails, and ε = 0, δ = 1 is the identity. It is
   what lets a flow in d = 1 be anything but Gaussian (a coupling needs two coordinates);
3. a permutation that reverses the coordinates, so the next coupling transforms the other half
   (for d = 2 or 4 this is the tutorial's swap); log |det| = 0.

The tutorial's flow on Cont's four parameters is ``RealNVP(4, n_layers=5, hidden=(50, 50))``:
five couplings with MLP 2 → 50 → 50 → 4 and a swap, on a diagonal Gaussian.

params = ``{"base": {"loc", "log_scale"}, "layers": [{"coupling": {"weights": [W…],
"biases": [b…]}, "elementwise": {"skew", "log_tail"}}, …]}`` (keys present when used).
"""

from __future__ import annotations

import math
from typing import Any

import minidiff as md

from .families import DiagonalGaussian, Family, check_count, check_dim, standard_normal_log_prob

__all__ = ["RealNVP"]


# ---------------------------------------------------------------------------------------------
# Elementary functions, from minidiff ops
# ---------------------------------------------------------------------------------------------


def _asinh(x: Any) -> Any:
    """asinh x = sign(x)·log1p(|x| + x²/(1 + √(1 + x²))), accurate near 0 and for large |x|."""
    a = md.abs(x)
    value = md.log1p(a + a * a / (1.0 + md.sqrt(1.0 + a * a)))
    return md.where(md.stop_gradient(x) < 0, -value, value)


def _sinh(x: Any) -> Any:
    return 0.5 * (md.expm1(x) - md.expm1(-x))


def _log_cosh(x: Any) -> Any:
    """log cosh x = |x| + log1p(e^(−2|x|)) − log 2, never overflowing."""
    a = md.abs(x)
    return a + md.log1p(md.exp(-2.0 * a)) - math.log(2.0)


# ---------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------


class RealNVP(Family):
    """A RealNVP flow on ℝ^dim (see the module notes).

    Args:
        dim: d ≥ 1 (d = 1 needs ``elementwise=True``: a coupling needs two coordinates).
        n_layers: number of layers L.
        hidden: widths of the coupling MLPs' hidden layers.
        elementwise: add a sinh-arcsinh map to every layer.
        loc, scale: the base's initial mean (default 0) and sd (default 1).
    """

    def __init__(self, dim: int, n_layers: int = 5, hidden: tuple[int, ...] = (50, 50), *,
                 elementwise: bool = False, loc: Any = None, scale: Any = None) -> None:
        self.dim = check_dim("RealNVP", dim)
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"RealNVP: n_layers must be an integer ≥ 1, got {n_layers!r}")
        self.n_layers = n_layers
        self.hidden = tuple(int(h) for h in hidden)
        self.elementwise = bool(elementwise)
        self.coupled = dim >= 2
        if not self.coupled and not self.elementwise:
            raise ValueError("RealNVP(dim=1): an affine coupling needs at least two coordinates, "
                             "so a 1-d RealNVP of couplings alone is only an affine map of its "
                             "Gaussian base; pass elementwise=True to add sinh-arcsinh layers, "
                             "or use DiagonalGaussian(1)")
        self.split = dim // 2
        self._loc, self._scale = loc, scale

    def __repr__(self) -> str:
        return (f"RealNVP(dim={self.dim}, n_layers={self.n_layers}, hidden={self.hidden}, "
                f"elementwise={self.elementwise})")

    # -- parameters -----------------------------------------------------------------------------

    def init(self, seed: int = 0) -> dict:
        """Coupling weights and biases ~ U(±1/√fan_in) from ``seed``, except the last layer of
        each MLP, which is zero; sinh-arcsinh maps at the identity; the base at (loc, scale)."""
        rng = md.random.default_rng(seed)
        base = DiagonalGaussian(self.dim, loc=self._loc, scale=self._scale).init()
        layers = []
        widths = (self.split, *self.hidden, 2 * (self.dim - self.split))
        xp, dtype = md.get_backend().xp, md.get_backend().float_dtype
        for _ in range(self.n_layers):
            layer: dict[str, Any] = {}
            if self.coupled:
                weights, biases = [], []
                for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
                    if k == len(widths) - 2:  # the last layer: zero, so the layer starts as id
                        weights.append(xp.zeros((fan_in, fan_out), dtype=dtype))
                        biases.append(xp.zeros((fan_out,), dtype=dtype))
                    else:
                        bound = 1.0 / math.sqrt(fan_in)
                        weights.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
                        biases.append(rng.uniform(-bound, bound, size=(fan_out,)))
                layer["coupling"] = {"weights": weights, "biases": biases}
            if self.elementwise:
                layer["elementwise"] = {"skew": xp.zeros((self.dim,), dtype=dtype),
                                        "log_tail": xp.zeros((self.dim,), dtype=dtype)}
            layers.append(layer)
        return {"base": base, "layers": layers}

    # -- the layers --------------------------------------------------------------------------

    def _shift_and_log_scale(self, coupling: dict, x_a: Any) -> tuple[Any, Any]:
        h = x_a
        weights, biases = coupling["weights"], coupling["biases"]
        for k, (w, b) in enumerate(zip(weights, biases)):
            h = md.matmul(h, w) + b
            if k < len(weights) - 1:
                h = md.tanh(h)
        n_b = self.dim - self.split
        return md.getitem(h, (Ellipsis, slice(n_b, None))), md.getitem(
            h, (Ellipsis, slice(0, n_b)))

    def _layer_forward(self, layer: dict, x: Any) -> tuple[Any, Any]:
        """(y, log |det ∂y/∂x|) for one layer, per row."""
        log_det = 0.0
        if self.coupled:
            x_a = md.getitem(x, (Ellipsis, slice(0, self.split)))
            x_b = md.getitem(x, (Ellipsis, slice(self.split, None)))
            shift, log_scale = self._shift_and_log_scale(layer["coupling"], x_a)
            x = md.concatenate([x_a, x_b * md.exp(log_scale) + shift], axis=-1)
            log_det = log_det + md.sum(log_scale, axis=-1)
        if self.elementwise:
            skew, log_tail = layer["elementwise"]["skew"], layer["elementwise"]["log_tail"]
            inner = md.exp(log_tail) * _asinh(x) + skew
            log_det = log_det + md.sum(log_tail + _log_cosh(inner) - 0.5 * md.log1p(x * x),
                                       axis=-1)
            x = _sinh(inner)
        return _reverse(x), log_det

    def _layer_inverse(self, layer: dict, y: Any) -> tuple[Any, Any]:
        """(x, log |det ∂y/∂x| at x) for one layer, per row: the inverse of _layer_forward."""
        y = _reverse(y)
        log_det = 0.0
        if self.elementwise:
            skew, log_tail = layer["elementwise"]["skew"], layer["elementwise"]["log_tail"]
            x = _sinh((_asinh(y) - skew) * md.exp(-log_tail))
            inner = md.exp(log_tail) * _asinh(x) + skew
            log_det = log_det + md.sum(log_tail + _log_cosh(inner) - 0.5 * md.log1p(x * x),
                                       axis=-1)
            y = x
        if self.coupled:
            y_a = md.getitem(y, (Ellipsis, slice(0, self.split)))
            y_b = md.getitem(y, (Ellipsis, slice(self.split, None)))
            shift, log_scale = self._shift_and_log_scale(layer["coupling"], y_a)
            y = md.concatenate([y_a, (y_b - shift) * md.exp(-log_scale)], axis=-1)
            log_det = log_det + md.sum(log_scale, axis=-1)
        return y, log_det

    # -- the family's three calls ------------------------------------------------------------

    def sample(self, params: dict, n: int, rng: Any) -> tuple[Any, Any]:
        n = check_count("RealNVP.sample", n)
        base = params["base"]
        eps = rng.normal(size=(n, self.dim))
        x = base["loc"] + md.exp(base["log_scale"]) * eps
        log_q = standard_normal_log_prob(eps) - md.sum(base["log_scale"])
        for layer in params["layers"]:
            x, log_det = self._layer_forward(layer, x)
            log_q = log_q - log_det
        return x, log_q

    def log_prob(self, params: dict, theta: Any) -> Any:
        x = md.asarray(theta)
        total_log_det = 0.0
        for layer in reversed(params["layers"]):
            x, log_det = self._layer_inverse(layer, x)
            total_log_det = total_log_det + log_det
        base = params["base"]
        eps = (x - base["loc"]) * md.exp(-base["log_scale"])
        return standard_normal_log_prob(eps) - md.sum(base["log_scale"]) - total_log_det


def _reverse(x: Any) -> Any:
    """Reverse the order of the last axis (a permutation: log |det| = 0)."""
    return md.getitem(x, (Ellipsis, slice(None, None, -1)))
