"""Gradient-based optimisers, written here, as pure functions over pytrees (in optax's shape).

An optimiser is a pair of pure functions,

    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)            # params + updates, leafwise

so the state is plain data (dicts of arrays and ints) that can be saved and restored, and
transforms chain: ``chain(clip_by_global_norm(1.0), adamw(1e-3))``. Learning rates are a number
or a schedule, a function of the step count t = 0, 1, 2, ... (:func:`constant`, :func:`cosine`).
With g the gradient and t counting from 1 inside the formulas:

* :func:`sgd`: b ← μ b + g (b₀ = 0), update −η_t b (plain SGD for μ = 0; PyTorch's
  convention);
* :func:`adam` (Kingma & Ba 2015): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
  m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) (bias correction), update −η_t m̂/(√v̂ + ε);
* :func:`adamw` (Loshchilov & Hutter 2019): Adam's update minus η_t λ p, the weight decay
  decoupled from the gradient's moments;
* :func:`clip_by_global_norm`: g ← g · min(1, c/‖g‖) with ‖g‖ the norm of all leaves together.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import minidiff as md
from minidiff.validation import check_positive_int

from .pytree import tree_leaves, tree_map

__all__ = ["Optimizer", "sgd", "adam", "adamw", "clip_by_global_norm", "chain", "constant",
           "cosine", "apply_updates", "global_norm"]

Schedule = Callable[[int], float]


@dataclass(frozen=True)
class Optimizer:
    """``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)``."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------


def constant(lr: float) -> Schedule:
    """η_t = lr."""
    lr = _positive("constant", "lr", lr)
    return lambda t: lr


def cosine(lr: float, n_steps: int, final: float = 0.0) -> Schedule:
    """η_t = final + ½(lr − final)(1 + cos(π t/n_steps)) for t < n_steps, then ``final``:
    from lr at t = 0 down to ``final`` at t = n_steps."""
    lr = _positive("cosine", "lr", lr)
    check_positive_int("cosine", "n_steps", n_steps)
    if isinstance(final, bool) or not isinstance(final, numbers.Real) or not (
            0.0 <= final <= lr):
        raise ValueError(f"cosine: final (the last rate) must be a number in [0, lr] = "
                         f"[0, {lr:g}], got {final!r}; a negative rate would climb the "
                         f"objective")
    final = float(final)

    def schedule(t: int) -> float:
        if t >= n_steps:
            return final
        return final + 0.5 * (lr - final) * (1.0 + math.cos(math.pi * t / n_steps))

    return schedule


def _schedule(lr: float | Schedule) -> Schedule:
    return lr if callable(lr) else constant(lr)


def _positive(name: str, what: str, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not (
            x > 0 and math.isfinite(x)):
        raise ValueError(f"{name}: {what} must be a number > 0, finite, got {x!r}")
    return float(x)


def _fraction(name: str, what: str, x: Any) -> float:
    """A number in [0, 1) (a momentum or a decay rate of a moment)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not 0.0 <= x < 1.0:
        raise ValueError(f"{name}: {what} must lie in [0, 1), got {x!r}")
    return float(x)


# ---------------------------------------------------------------------------------------------
# Helpers over pytrees
# ---------------------------------------------------------------------------------------------


def apply_updates(params: Any, updates: Any) -> Any:
    """params + updates, leafwise."""
    return tree_map(lambda p, u: p + u, params, updates)


def _zeros_like(tree: Any) -> Any:
    return tree_map(lambda p: md.zeros_like(md.asarray(p)), tree)


def global_norm(tree: Any) -> float:
    """‖g‖ = √(Σ over all leaves and entries of g²)."""
    return math.sqrt(sum(float(md.sum(md.asarray(g) * g)) for g in tree_leaves(tree)))


# ---------------------------------------------------------------------------------------------
# The optimisers
# ---------------------------------------------------------------------------------------------


def sgd(lr: float | Schedule, momentum: float = 0.0) -> Optimizer:
    """Stochastic gradient descent with (heavy-ball) momentum μ ∈ [0, 1)."""
    schedule = _schedule(lr)
    momentum = _fraction("sgd", "momentum", momentum)

    def init(params: Any) -> dict:
        return {"count": 0, "momentum": _zeros_like(params)}

    def update(grads: Any, state: dict, params: Any = None) -> tuple[Any, dict]:
        lr_t = schedule(state["count"])
        buf = tree_map(lambda b, g: momentum * b + g, state["momentum"], grads)
        updates = tree_map(lambda b: -lr_t * b, buf)
        return updates, {"count": state["count"] + 1, "momentum": buf}

    return Optimizer(init, update)


def _adam_core(schedule: Schedule, b1: float, b2: float, eps: float,
               weight_decay: float) -> Optimizer:
    b1, b2 = _fraction("adam", "b1", b1), _fraction("adam", "b2", b2)
    eps = _positive("adam", "eps", eps)

    def init(params: Any) -> dict:
        return {"count": 0, "mu": _zeros_like(params), "nu": _zeros_like(params)}

    def update(grads: Any, state: dict, params: Any = None) -> tuple[Any, dict]:
        if weight_decay and params is None:
            raise ValueError("adamw: update needs params for the weight decay")
        t = state["count"] + 1
        lr_t = schedule(state["count"])
        mu = tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, state["mu"], grads)
        nu = tree_map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state["nu"], grads)
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t
        updates = tree_map(lambda m, v: -lr_t * (m / c1) / (md.sqrt(v / c2) + eps), mu, nu)
        if weight_decay:
            updates = tree_map(lambda u, p: u - lr_t * weight_decay * p, updates, params)
        return updates, {"count": t, "mu": mu, "nu": nu}

    return Optimizer(init, update)


def adam(lr: float | Schedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> Optimizer:
    """Adam with bias-corrected moments."""
    return _adam_core(_schedule(lr), b1, b2, eps, 0.0)


def adamw(lr: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-2) -> Optimizer:
    """AdamW: Adam with decoupled weight decay λ = ``weight_decay`` (PyTorch's default 0.01)."""
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) or not (
            math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"adamw: weight_decay must be a finite number ≥ 0, got "
                         f"{weight_decay!r}")
    return _adam_core(_schedule(lr), b1, b2, eps, float(weight_decay))


def clip_by_global_norm(max_norm: float) -> Optimizer:
    """Scale the whole gradient down to global norm ``max_norm`` when it is larger."""
    max_norm = _positive("clip_by_global_norm", "max_norm", max_norm)

    def init(params: Any) -> dict:
        return {}

    def update(grads: Any, state: dict, params: Any = None) -> tuple[Any, dict]:
        norm = global_norm(grads)
        if norm <= max_norm:
            return grads, state
        factor = max_norm / norm
        return tree_map(lambda g: g * factor, grads), state

    return Optimizer(init, update)


def chain(*transforms: Optimizer) -> Optimizer:
    """Apply the transforms in order, each to the updates of the one before; state is a list
    with one entry per transform."""
    if not transforms:
        raise ValueError("chain: give at least one transform")

    def init(params: Any) -> list:
        return [t.init(params) for t in transforms]

    def update(grads: Any, state: list, params: Any = None) -> tuple[Any, list]:
        new_state = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, new_state

    return Optimizer(init, update)
