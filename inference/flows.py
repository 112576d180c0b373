"""A normalising flow family: RealNVP (Dinh, Sohl-Dickstein & Bengio 2017).

θ = f_L ∘ … ∘ f_1(x₀) with x₀ drawn from a base distribution. Each map is invertible with a
cheap log-determinant, so the density comes along the sampling pass:

    log q(θ) = log p_base(x₀) − Σ_l log |det ∂f_l/∂x (x_{l−1})|.

The base is x₀ = μ + σ ⊙ u with ε ~ N(0, I_d) and

* u = ε (``base="gaussian"``, the default): a diagonal Gaussian, as in the tutorial;
* u_j = [sinh(δ_j asinh(ε_j) + s_j) − sinh s_j] / (δ_j cosh s_j), δ = exp(log_tail)
  (``base="sinh_arcsinh"``): Jones and Pewsey's (2009) sinh-arcsinh normal, whose skew s and
  tail weight δ are learnt too. It is centred and scaled so that u(0) = 0 and u′(0) = 1: μ
  stays the median of x₀ and σ its local scale there whatever s and δ are, which keeps the
  shape parameters from fighting the location ones during the fit. log |du/dε| =
  log cosh(δ asinh ε + s) − log cosh s − ½ log(1 + ε²); s = 0, δ = 1 is u = ε. This is what
  lets the flow in d = 1 be anything but Gaussian (a coupling needs two coordinates).

Each layer f_l is an *affine coupling*: split x = (x_A, x_B) with x_A h = ⌊d/2⌋ coordinates,
the first h in even layers and the last h in odd ones (so consecutive couplings transform different
coordinates: for d = 2 or 4 this is the tutorial's swap, without moving the coordinates, so θ_j
stays the base's coordinate j), (s, t) = MLP(x_A), and

       y_A = x_A,   y_B = x_B ⊙ exp(s) + t,   log |det| = Σ_j s_j;

the inverse is x_B = (y_B − t(y_A)) ⊙ exp(−s(y_A)). The MLP is h → hidden… → 2(d − h) with
tanh activations; its *last layer is zero-initialised*, so s = t = 0 and the coupling starts as
the identity: the untrained flow is its base.

In d = 1 there are no couplings and the family is its (sinh-arcsinh) base.

The tutorial's flow on Cont's four parameters is ``RealNVP(4, n_layers=5, hidden=(50, 50))``:
five couplings with MLP 2 → 50 → 50 → 4 and a swap, on a diagonal Gaussian.

params = ``{"base": {"loc", "log_scale"[, "skew", "log_tail"]}, "layers": [{"weights": [W…],
"biases": [b…]}, …]}``.
"""

from __future__ import annotations

import math
from typing import Any

import minidiff as md
from minidiff.validation import check_positive_int

from .families import DiagonalGaussian, Family, check_count, check_dim, standard_normal_log_prob

__all__ = ["RealNVP"]


# ---------------------------------------------------------------------------------------------
# Elementary functions, from minidiff ops
# ---------------------------------------------------------------------------------------------


def _asinh(x: Any) -> Any:
    """asinh x = sign(x)·log1p(|x| + x²/(1 + √(1 + x²))), accurate near 0 and for large |x|."""
    a = md.abs(x)
    value = md.log1p(a + a * a / (1.0 + md.sqrt(1.0 + a * a)))
    return md.where(md.less(x, 0.0), -value, value)


def _sinh(x: Any) -> Any:
    return 0.5 * (md.expm1(x) - md.expm1(-x))


def _cosh(x: Any) -> Any:
    return 0.5 * (md.exp(x) + md.exp(-x))


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
        dim: d ≥ 1 (d = 1 needs ``base="sinh_arcsinh"``: with no coupling possible, a 1-d
            flow on a Gaussian base would be only a Gaussian).
        n_layers: number of coupling layers L (none in d = 1).
        hidden: widths of the coupling MLPs' hidden layers.
        base: ``"gaussian"`` or ``"sinh_arcsinh"``.
        loc, scale: the base's initial location (default 0) and scale (default 1).
    """

    def __init__(self, dim: int, n_layers: int = 5, hidden: tuple[int, ...] = (50, 50), *,
                 base: str = "gaussian", loc: Any = None, scale: Any = None) -> None:
        self.dim = check_dim("RealNVP", dim)
        check_positive_int("RealNVP", "n_layers", n_layers)
        if base not in ("gaussian", "sinh_arcsinh"):
            raise ValueError(f"RealNVP: base must be 'gaussian' or 'sinh_arcsinh', got {base!r}")
        if dim == 1 and base == "gaussian":
            raise ValueError("RealNVP(dim=1): an affine coupling needs at least two "
                             "coordinates, so a 1-d flow on a Gaussian base is only a Gaussian; "
                             "pass base='sinh_arcsinh', or use DiagonalGaussian(1)")
        self.n_layers = n_layers if dim >= 2 else 0
        self.hidden = tuple(int(h) for h in hidden)
        self.base = base
        self.split = dim // 2
        self._loc, self._scale = loc, scale

    def __repr__(self) -> str:
        return (f"RealNVP(dim={self.dim}, n_layers={self.n_layers}, hidden={self.hidden}, "
                f"base={self.base!r})")

    # -- parameters -----------------------------------------------------------------------------

    def init(self, seed: int = 0) -> dict:
        """Coupling weights and biases ~ U(±1/√fan_in) from ``seed``, except the last layer of
        each MLP, which is zero; the base at (loc, scale), its skew 0 and tail weight 1."""
        rng = md.random.default_rng(seed)
        xp, dtype = md.get_backend().xp, md.get_backend().float_dtype
        base = DiagonalGaussian(self.dim, loc=self._loc, scale=self._scale).init()
        if self.base == "sinh_arcsinh":
            base["skew"] = xp.zeros((self.dim,), dtype=dtype)
            base["log_tail"] = xp.zeros((self.dim,), dtype=dtype)
        layers = []
        widths = (self.split, *self.hidden, 2 * (self.dim - self.split))
        for _ in range(self.n_layers):
            weights, biases = [], []
            for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
                if k == len(widths) - 2:  # the last layer: zero, so the layer starts as id
                    weights.append(xp.zeros((fan_in, fan_out), dtype=dtype))
                    biases.append(xp.zeros((fan_out,), dtype=dtype))
                else:
                    bound = 1.0 / math.sqrt(fan_in)
                    weights.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
                    biases.append(rng.uniform(-bound, bound, size=(fan_out,)))
            layers.append({"weights": weights, "biases": biases})
        return {"base": base, "layers": layers}

    # -- the layers --------------------------------------------------------------------------

    def _shift_and_log_scale(self, layer: dict, x_a: Any) -> tuple[Any, Any]:
        h = x_a
        weights, biases = layer["weights"], layer["biases"]
        for k, (w, b) in enumerate(zip(weights, biases)):
            h = md.matmul(h, w) + b
            if k < len(weights) - 1:
                h = md.tanh(h)
        n_b = self.dim - self.split
        return md.getitem(h, (Ellipsis, slice(n_b, None))), md.getitem(
            h, (Ellipsis, slice(0, n_b)))

    def _halves(self, x: Any, odd: bool) -> tuple[Any, Any]:
        """(x_A, x_B): the conditioning and the transformed coordinates of one coupling."""
        h, d = self.split, self.dim
        if odd:  # condition on the last h, transform the first d − h
            return (md.getitem(x, (Ellipsis, slice(d - h, None))),
                    md.getitem(x, (Ellipsis, slice(0, d - h))))
        return md.getitem(x, (Ellipsis, slice(0, h))), md.getitem(x, (Ellipsis, slice(h, None)))

    @staticmethod
    def _join(x_a: Any, x_b: Any, odd: bool) -> Any:
        return md.concatenate([x_b, x_a] if odd else [x_a, x_b], axis=-1)

    def _coupling(self, layer: dict, x: Any, odd: bool) -> tuple[Any, Any]:
        """(y, log |det ∂y/∂x|) of one coupling, per row."""
        x_a, x_b = self._halves(x, odd)
        shift, log_scale = self._shift_and_log_scale(layer, x_a)
        y = self._join(x_a, md.add(md.multiply(x_b, md.exp(log_scale)), shift), odd)
        return y, md.sum(log_scale, axis=-1)

    def _coupling_inverse(self, layer: dict, y: Any, odd: bool) -> tuple[Any, Any]:
        """(x, log |det ∂y/∂x| at x): the inverse of ``_coupling``."""
        y_a, y_b = self._halves(y, odd)
        shift, log_scale = self._shift_and_log_scale(layer, y_a)
        x = self._join(y_a, md.multiply(md.subtract(y_b, shift), md.exp(-log_scale)), odd)
        return x, md.sum(log_scale, axis=-1)

    def _sinh_arcsinh(self, base: dict, eps: Any) -> tuple[Any, Any]:
        """(u, log |du/dε|) per row (u = ε for a Gaussian base)."""
        if self.base == "gaussian":
            return eps, 0.0
        skew, tail = base["skew"], md.exp(base["log_tail"])
        inner = tail * _asinh(eps) + skew
        u = (_sinh(inner) - _sinh(skew)) / (tail * _cosh(skew))
        log_det = md.sum(_log_cosh(inner) - _log_cosh(skew) - 0.5 * md.log1p(eps * eps),
                         axis=-1)  # (the raw draws ε always enter as right operands)
        return u, log_det

    def _sinh_arcsinh_inverse(self, base: dict, u: Any) -> Any:
        if self.base == "gaussian":
            return u
        skew, tail = base["skew"], md.exp(base["log_tail"])
        return _sinh((_asinh(u * tail * _cosh(skew) + _sinh(skew)) - skew) / tail)

    # -- the family's three calls ------------------------------------------------------------

    def sample(self, params: dict, n: int, rng: Any) -> tuple[Any, Any]:
        n = check_count("RealNVP.sample", n)
        base = params["base"]
        eps = rng.normal(size=(n, self.dim))
        u, log_det = self._sinh_arcsinh(base, eps)
        x = md.add(base["loc"], md.multiply(md.exp(base["log_scale"]), u))
        log_q = md.subtract(md.subtract(standard_normal_log_prob(eps), log_det),
                            md.sum(base["log_scale"]))
        for k, layer in enumerate(params["layers"]):
            x, log_det = self._coupling(layer, x, odd=k % 2 == 1)
            log_q = log_q - log_det
        return x, log_q

    def log_prob(self, params: dict, theta: Any) -> Any:
        x = md.asarray(theta)
        total_log_det = 0.0
        for k in reversed(range(len(params["layers"]))):
            x, log_det = self._coupling_inverse(params["layers"][k], x, odd=k % 2 == 1)
            total_log_det = total_log_det + log_det
        base = params["base"]
        u = md.multiply(md.subtract(x, base["loc"]), md.exp(-base["log_scale"]))
        eps = self._sinh_arcsinh_inverse(base, u)
        _, sas_log_det = self._sinh_arcsinh(base, eps)
        log_q = md.subtract(md.subtract(standard_normal_log_prob(eps), sas_log_det),
                            md.sum(base["log_scale"]))
        return md.subtract(log_q, total_log_det)
