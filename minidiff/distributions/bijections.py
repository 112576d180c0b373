"""Bijections: smooth invertible maps between an unconstrained space and a model's natural one.

Inference runs on unconstrained θ ∈ ℝ^d (a Gaussian or a flow lives there); the model sees
y = f(θ) on its natural scale (a probability, a positive rate). A density moves with the map by
the change of variables

    log p_Y(y) = log p_X(x) − log |f′(x)|,    x = f⁻¹(y),

so each bijection gives ``forward``, ``inverse`` and ``log_det_jacobian(x) = log |f′(x)|``.
Every bijection here is elementwise (it maps each coordinate on its own), so its Jacobian is
diagonal and ``log_det_jacobian`` returns one term per coordinate, shape of x; a vector
distribution sums them over its last axis (:class:`~.distributions.Transformed`).

All are written with minidiff ops, so they differentiate in every transform.

==============  ==================  ====================  ==================================
bijection       forward y = f(x)    inverse               log |f′(x)|
==============  ==================  ====================  ==================================
Identity        x                   y                     0
Exp             eˣ                  log y                 x
Pow10           10ˣ                 log₁₀ y               x log 10 + log log 10
Sigmoid         1/(1 + e⁻ˣ)         log y − log(1 − y)    −softplus(−x) − softplus(x)
Affine(c, s)    c + s·x             (y − c)/s             log |s|
Inverse(f)      f⁻¹(x)              f(y)                  −log |f′(f⁻¹(x))|
Compose(f, g)   g(f(x))             f⁻¹(g⁻¹(y))           log |f′(x)| + log |g′(f(x))|
==============  ==================  ====================  ==================================

:class:`Coordinatewise` applies one bijection per coordinate of the last axis, θ of shape
(..., d) with d bijections: how a model maps the unconstrained space inference runs in to its
natural parameters (``Coordinatewise(Identity(), Pow10(), Sigmoid())``: a real, a positive
scale on a log₁₀ axis, a probability).

For the tutorial's Cont model, parameters on a log₁₀ scale are ``Pow10()``: y = 10^x.
"""

from __future__ import annotations

import abc
import math
from typing import Any

from .. import ops
from ..backend import get_backend

__all__ = ["Bijection", "Identity", "Exp", "Pow10", "Sigmoid", "Affine", "Inverse", "Compose",
           "Coordinatewise"]

_LOG_10 = math.log(10.0)


class Bijection(abc.ABC):
    """An elementwise invertible map: an abstract base, each subclass defines the three
    abstract methods (a class that forgets one cannot be instantiated)."""

    @abc.abstractmethod
    def forward(self, x: Any) -> Any:
        """y = f(x), elementwise."""

    @abc.abstractmethod
    def inverse(self, y: Any) -> Any:
        """x = f⁻¹(y), elementwise."""

    @abc.abstractmethod
    def log_det_jacobian(self, x: Any) -> Any:
        """log |f′(x)|, elementwise (the shape of x)."""

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def inverted(self) -> Bijection:
        """f⁻¹ as a bijection of its own."""
        return Inverse(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Bijection):
    """y = x: a real parameter used as it is."""

    def forward(self, x: Any) -> Any:
        return x

    def inverse(self, y: Any) -> Any:
        return y

    def log_det_jacobian(self, x: Any) -> Any:
        return ops.asarray(x) * 0.0


class Exp(Bijection):
    """y = eˣ: ℝ → (0, ∞)."""

    def forward(self, x: Any) -> Any:
        return ops.exp(x)

    def inverse(self, y: Any) -> Any:
        return ops.log(y)

    def log_det_jacobian(self, x: Any) -> Any:
        return ops.asarray(x) * 1.0


class Pow10(Bijection):
    """y = 10ˣ: ℝ → (0, ∞), a positive parameter on a log₁₀ axis."""

    def forward(self, x: Any) -> Any:
        return ops.power(10.0, x)

    def inverse(self, y: Any) -> Any:
        return ops.log(y) / _LOG_10

    def log_det_jacobian(self, x: Any) -> Any:
        return ops.asarray(x) * _LOG_10 + math.log(_LOG_10)


class Sigmoid(Bijection):
    """y = 1/(1 + e⁻ˣ): ℝ → (0, 1); its inverse is the logit."""

    def forward(self, x: Any) -> Any:
        return ops.sigmoid(x)

    def inverse(self, y: Any) -> Any:
        return ops.log(y) - ops.log1p(-ops.asarray(y))

    def log_det_jacobian(self, x: Any) -> Any:
        # σ′(x) = σ(x)σ(−x), and log σ(x) = −softplus(−x)
        return -(ops.softplus(x) + ops.softplus(-ops.asarray(x)))


class Affine(Bijection):
    """y = shift + scale·x with a non-zero scale (scalars or arrays that broadcast with x)."""

    def __init__(self, shift: Any = 0.0, scale: Any = 1.0) -> None:
        self.shift = ops.asarray(shift)
        self.scale = ops.asarray(scale)
        xp = get_backend().xp
        if bool(xp.any(ops.stop_gradient(self.scale) == 0)):
            raise ValueError("Affine: scale must be non-zero everywhere (the map would not be "
                             "invertible)")

    def forward(self, x: Any) -> Any:
        return ops.add(self.shift, ops.multiply(self.scale, x))

    def inverse(self, y: Any) -> Any:
        return ops.divide(ops.subtract(y, self.shift), self.scale)

    def log_det_jacobian(self, x: Any) -> Any:
        return ops.broadcast_to(ops.log(ops.abs(self.scale)), tuple(ops.asarray(x).shape))

    def __repr__(self) -> str:
        return f"Affine(shift={self.shift!r}, scale={self.scale!r})"


class Inverse(Bijection):
    """The inverse f⁻¹ of a bijection f: log |(f⁻¹)′(x)| = −log |f′(f⁻¹(x))|."""

    def __init__(self, bijection: Bijection) -> None:
        self.bijection = bijection

    def forward(self, x: Any) -> Any:
        return self.bijection.inverse(x)

    def inverse(self, y: Any) -> Any:
        return self.bijection.forward(y)

    def log_det_jacobian(self, x: Any) -> Any:
        return -self.bijection.log_det_jacobian(self.bijection.inverse(x))

    def inverted(self) -> Bijection:
        return self.bijection

    def __repr__(self) -> str:
        return f"Inverse({self.bijection!r})"


class Compose(Bijection):
    """Apply the bijections in the order given: ``Compose(f, g)(x) = g(f(x))``."""

    def __init__(self, *bijections: Bijection) -> None:
        if not bijections:
            raise ValueError("Compose: give at least one bijection")
        self.bijections = bijections

    def forward(self, x: Any) -> Any:
        for f in self.bijections:
            x = f.forward(x)
        return x

    def inverse(self, y: Any) -> Any:
        for f in reversed(self.bijections):
            y = f.inverse(y)
        return y

    def log_det_jacobian(self, x: Any) -> Any:
        total = None
        for f in self.bijections:
            term = f.log_det_jacobian(x)
            total = term if total is None else total + term
            x = f.forward(x)
        return total

    def __repr__(self) -> str:
        return f"Compose{self.bijections!r}"


class Coordinatewise(Bijection):
    """One bijection per coordinate of the last axis: y_j = f_j(x_j) for x of shape (..., d),
    log |det J| has one term per coordinate, log |f_j′(x_j)|."""

    def __init__(self, *bijections: Bijection) -> None:
        if not bijections or not all(isinstance(f, Bijection) for f in bijections):
            raise TypeError(f"Coordinatewise: give one Bijection per coordinate, got "
                            f"{bijections!r}")
        self.bijections = bijections

    def __len__(self) -> int:
        return len(self.bijections)

    def _each(self, method: str, x: Any) -> Any:
        x = ops.asarray(x)
        shape = tuple(x.shape)
        if not shape or shape[-1] != len(self.bijections):
            raise ValueError(f"Coordinatewise.{method}: x must have shape (..., "
                             f"{len(self.bijections)}), got {shape}")
        return ops.stack([getattr(f, method)(ops.getitem(x, (Ellipsis, j)))
                          for j, f in enumerate(self.bijections)], axis=-1)

    def forward(self, x: Any) -> Any:
        return self._each("forward", x)

    def inverse(self, y: Any) -> Any:
        return self._each("inverse", y)

    def log_det_jacobian(self, x: Any) -> Any:
        return self._each("log_det_jacobian", x)

    def __repr__(self) -> str:
        return f"Coordinatewise({', '.join(map(repr, self.bijections))})"
