"""The GVI objective and its gradient estimators.

    L(φ) = E_{θ~q_φ}[ℓ(θ)] + w · KL(q_φ ‖ π)

which is the tutorial's E_q[ℓ]/w + KL multiplied by w: the same minimiser, with the gradient
scaled by w. With ℓ the negative log-likelihood and w = 1, its minimiser over all q is the Bayes
posterior; w ≠ 1 gives the tempered (generalised) posterior q* ∝ π · exp(−ℓ/w).

One step estimates L and ∇_φ L from n draws θ_i = g_φ(ε_i), i = 0..n−1:

``gradient="pathwise"`` differentiates through θ_i(φ) and the simulator:
  ∇_φ (1/n) Σ_i ℓ(θ_i(φ)) = (1/n) Σ_i J_i · ∂θ_i/∂φ with J_i = ∂ℓ/∂θ (θ_i), shape (d,).

  * ``mode="forward"`` (mixed mode): each J_i comes from one ``jacfwd`` pass of the simulator
    (K = d tangents; no tape, so memory does not grow with the simulation's length T). Reverse
    mode then carries the J_i through the family: a ``vjp`` of θ(φ), shape (n, d), with the
    cotangent J/n, which is the gradient of the surrogate Σ_i stop_gradient(J_i)·θ_i(φ)/n.
    Everything is float64.
  * ``mode="reverse"``: one tape through the family *and* every simulation (memory grows with
    n·T; the gradient is the same to rounding).
  * ``mode="triples"``: J_i by stochastic triples (``minidiff.stochastic.derivative_estimate``),
    unbiased through discrete draws, then the same reverse pass as ``"forward"``.
  * ``mode="auto"``: ``"forward"`` when d ≤ ``AUTO_FORWARD_MAX_DIM`` (16), else ``"reverse"``.
    ABMs have few parameters: a forward pass carrying d tangents costs a small multiple of the
    primal while d is small, keeps memory flat in T, and the per-sample work is independent (an
    executor can spread it); with many parameters one reverse sweep is cheaper than d tangents.

``gradient="score"`` (REINFORCE) needs no derivative of the simulator:
  ∇_φ E_q[ℓ] = E_q[(ℓ(θ) − b) ∇_φ log q_φ(θ)], estimated with the leave-one-out baseline
  b_i = mean_{j≠i} ℓ_j by default (unbiased, since b_i does not depend on θ_i), or b = 0.

The KL term comes from :func:`.divergence.kl_divergence` (closed form where one exists, else
Monte Carlo on its own draws) and is differentiated by reverse mode in every case.

Randomness: for run seed s₀, the simulation of sample i at step s uses the stream keyed
(s, i) of ``default_rng(s₀)``; the family's draws at step s use the stream ("q", s), the KL's
("kl", s). A run is a deterministic function of its seed, and forward and reverse mode see the
same draws. The per-sample work is a pure function of (θ_i, step, i, seed)
(:mod:`.sample_chunks`), so the n samples are cut into one chunk per worker of the executor
(:mod:`.executors`: serial, processes, Dask; ``executor=None`` is serial, one chunk) and each
chunk runs as one batched simulation (``md.vmap``, stochastic triples included; a loss that
cannot batch runs as a loop; ``Objective.batched = False`` asks for the loop). Reverse mode records
every sample on the driver's tape, so it takes no executor.

Non-finite values raise :class:`NonFiniteError` naming the step, the sample and θ; with
``on_nan="skip"`` the sample is dropped (and counted), the step fails if every sample is
dropped, and a non-finite KL or gradient skips the step. In reverse mode no sample's Jacobian
exists on its own, so a non-finite one shows only as a non-finite total gradient (raised, or
the step skipped, without a sample number); mixed mode names the sample.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import minidiff as md
from minidiff.distributions import as_vector
from minidiff.random import default_rng
from minidiff.validation import check_choice

from .divergence import kl_divergence
from .executors import SerialExecutor
from .pytree import ravel
from .sample_chunks import _scalar, evaluate_sample, run_chunk, sample_rng

__all__ = ["BatchFallbackWarning", "Objective", "StepEstimate", "NonFiniteError",
           "evaluate_sample", "sample_rng",
           "resolve_mode", "AUTO_FORWARD_MAX_DIM", "GRADIENTS", "MODES"]

GRADIENTS = ("pathwise", "score")
MODES = ("auto", "forward", "reverse", "triples")
ON_NAN = ("raise", "skip")
BASELINES = ("loo", "none")
AUTO_FORWARD_MAX_DIM = 16
_SERIAL = SerialExecutor()


def _finite(x: Any) -> bool:
    xp = md.get_backend().xp
    return bool(xp.all(xp.isfinite(md.stop_gradient(md.asarray(x)))))


class BatchFallbackWarning(UserWarning):
    """The loss could not run under ``minidiff.vmap``, so the samples run in a loop."""


class NonFiniteError(FloatingPointError):
    """A loss, a Jacobian, the KL or the gradient was NaN or infinite."""

    def __init__(self, message: str, *, step: int, sample: int | None = None,
                 theta: Any = None, what: str = "") -> None:
        super().__init__(message)
        self.step, self.sample, self.theta, self.what = step, sample, theta, what


def resolve_mode(mode: str, gradient: str, dim: int) -> str:
    """The mode a step runs in (see the module notes for the ``"auto"`` rule)."""
    check_choice("Objective", "gradient", gradient, GRADIENTS)
    check_choice("Objective", "mode", mode, MODES)
    if gradient == "score":
        return "score"
    if mode == "auto":
        return "forward" if dim <= AUTO_FORWARD_MAX_DIM else "reverse"
    return mode


@dataclass
class StepEstimate:
    """One step's estimates: ``grad`` (a pytree like the params, or None if the step was
    skipped), ``total`` = ``loss`` + w·``kl``, the per-sample ``losses`` (NaN where dropped)
    and the indices of the ``dropped`` samples."""

    grad: Any
    total: float
    loss: float
    kl: float
    losses: list[float]
    dropped: list[int] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class Objective:
    """L(φ) = E_q[ℓ] + w·KL(q‖π) and its estimators (see the module notes).

    ``loss(theta, rng) -> scalar`` with θ of shape (d,) (the family's space) and ``rng`` a
    :class:`minidiff.random.Generator`."""

    loss: Callable[[Any, Any], Any]
    prior: Any
    family: Any
    w: float = 1.0
    n_samples: int = 10
    gradient: str = "pathwise"
    mode: str = "auto"
    seed: int = 0
    kl: str = "auto"
    kl_samples: int = 100
    baseline: str = "loo"
    on_nan: str = "raise"
    executor: Any = None

    def __post_init__(self) -> None:
        self.prior = as_vector(self.prior)
        if self.prior.dim != self.family.dim:
            raise ValueError(f"the prior has dimension {self.prior.dim} but the family has "
                             f"{self.family.dim}")
        self.resolved_mode = resolve_mode(self.mode, self.gradient, self.family.dim)
        check_choice("Objective", "on_nan", self.on_nan, ON_NAN)
        check_choice("Objective", "baseline", self.baseline, BASELINES)
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or (
                self.n_samples < 1):
            raise ValueError(f"n_samples must be an integer ≥ 1, got {self.n_samples!r}")
        if isinstance(self.w, bool) or not isinstance(self.w, numbers.Real) or not (
                math.isfinite(self.w) and self.w >= 0):
            raise ValueError(f"w (the weight of the KL) must be a finite number ≥ 0, got "
                             f"{self.w!r}")
        if (self.executor is not None and self.executor.name != "serial"
                and self.resolved_mode == "reverse"):
            raise ValueError(f"mode='reverse' records every simulation on one tape on the "
                             f"driver, so it cannot hand samples to {self.executor!r}; use "
                             f"mode='forward' (mixed mode: each sample's Jacobian by forward "
                             f"mode, on any executor)")

    # -- randomness ----------------------------------------------------------------------------

    def _q_rng(self, step: int) -> Any:
        return default_rng(self.seed).stream(("q", step))

    def _kl(self, params: Any, step: int) -> Any:
        return kl_divergence(self.family, params, self.prior,
                             rng=default_rng(self.seed).stream(("kl", step)),
                             n_samples=self.kl_samples, method=self.kl)

    # -- non-finite values -----------------------------------------------------------------------

    def _bad_sample(self, step: int, i: int, theta: Any, what: str, value: Any) -> None:
        """Raise for sample i, or (on_nan="skip") return so the caller drops it."""
        th = md.to_host(theta).tolist()
        message = (f"step {step}, sample {i}: the {what} is not finite ({value}) at "
                   f"θ = {th}")
        if self.on_nan == "raise":
            raise NonFiniteError(message + "; pass on_nan='skip' to drop such samples (they "
                                 "are counted in the history)", step=step, sample=i,
                                 theta=th, what=what)

    def _all_dropped(self, step: int, dropped: list[int]) -> None:
        raise NonFiniteError(f"step {step}: every one of the {len(dropped)} samples was "
                             f"dropped as non-finite; the step has no estimate", step=step,
                             what="loss")

    def _bad_step(self, step: int, what: str) -> str:
        message = f"step {step}: the {what} is not finite"
        if self.on_nan == "raise":
            raise NonFiniteError(message + "; pass on_nan='skip' to skip such steps",
                                 step=step, what=what)
        return message

    # -- the estimate ------------------------------------------------------------------------

    def estimate(self, params: Any, step: int) -> StepEstimate:
        """L and ∇_φ L at ``params`` for step ``step``."""
        flat, unravel = ravel(params)
        if self.resolved_mode == "reverse":
            est, grad = self._reverse(flat, unravel, step)
        elif self.resolved_mode == "score":
            est, grad = self._score(flat, unravel, step)
        else:
            est, grad = self._mixed(flat, unravel, step, self.resolved_mode)
        if est.skipped is None and not (_finite(grad) and _finite(est.kl)):
            est.skipped = self._bad_step(step, "KL" if not _finite(est.kl) else "gradient")
        est.grad = None if est.skipped else unravel(grad)
        return est

    batched = True  # evaluate a step's samples as one batched simulation (False: a loop)

    def _evaluate_samples(self, theta: Any, step: int, how: str) -> list[tuple[Any, Any]]:
        """[(ℓ_i, J_i)] in sample order: the n samples cut into the executor's chunks, each
        chunk one batched simulation (:mod:`.sample_chunks`)."""
        runner = self.executor if self.executor is not None else _SERIAL
        n = self.n_samples
        k = max(1, min(runner.chunks, n))
        bounds = [n * c // k for c in range(k + 1)]
        chunks = [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
        host = md.get_backend().to_host(md.stop_gradient(theta))
        outs = runner.map(run_chunk, [self.loss] * k, [host[c[0]:c[-1] + 1] for c in chunks],
                          [step] * k, chunks, [self.seed] * k, [how] * k,
                          [self.batched] * k, [md.get_backend().name] * k)
        b = md.get_backend()
        results = []
        for values, jacs, fallback in outs:
            if fallback is not None and self.batched:
                self.batched = False  # once: the later steps loop without trying
                warnings.warn(f"step {step}: {fallback}", BatchFallbackWarning, stacklevel=4)
            values = b.from_host(values)
            jacs = None if jacs is None else b.from_host(jacs)
            results += [(md.getitem(values, r), None if jacs is None else md.getitem(jacs, r))
                        for r in range(int(values.shape[0]))]
        return results

    def _per_sample(self, theta: Any, step: int, how: str) -> tuple[list, list, list[int]]:
        losses, jacs, dropped = [], [], []
        results = self._evaluate_samples(theta, step, how)
        for i, (value, jac) in enumerate(results):
            th = md.getitem(theta, i)
            what = "loss" if not _finite(value) else (
                "loss gradient" if jac is not None and not _finite(jac) else None)
            if what is not None:
                self._bad_sample(step, i, th, what, value if what == "loss" else
                                 md.to_host(jac).tolist())
                dropped.append(i)
                losses.append(float("nan"))
                jacs.append(None)
                continue
            losses.append(float(value))
            jacs.append(jac)
        if len(dropped) == self.n_samples:
            self._all_dropped(step, dropped)
        return losses, jacs, dropped

    def _finish(self, losses: list[float], dropped: list[int], kl: Any) -> StepEstimate:
        kept = [v for i, v in enumerate(losses) if i not in dropped]
        loss_mean = sum(kept) / len(kept)
        kl = float(kl)
        return StepEstimate(None, loss_mean + self.w * kl, loss_mean, kl, losses, dropped)

    def _mixed(self, flat: Any, unravel: Callable, step: int, how: str) -> tuple:
        n, family = self.n_samples, self.family
        theta, pullback = md.vjp(lambda v: family.sample(unravel(v), n, self._q_rng(step))[0],
                                 flat)
        losses, jacs, dropped = self._per_sample(theta, step, how)
        n_kept = n - len(dropped)
        zero = md.zeros((family.dim,))
        cotangent = md.stack([zero if j is None else j for j in jacs]) / n_kept
        (grad_loss,) = pullback(cotangent)
        kl, grad_kl = md.value_and_grad(lambda v: self._kl(unravel(v), step))(flat)
        return self._finish(losses, dropped, kl), grad_loss + self.w * grad_kl

    def _reverse(self, flat: Any, unravel: Callable, step: int) -> tuple:
        n = self.n_samples
        record: dict[str, Any] = {}

        def objective(v: Any) -> Any:
            params = unravel(v)
            theta, _ = self.family.sample(params, n, self._q_rng(step))
            total, losses, dropped = None, [], []
            for i in range(n):
                th = md.getitem(theta, i)
                value = _scalar(self.loss(th, sample_rng(self.seed, step, i)),
                                f"step {step}, sample {i}")
                if not _finite(value):
                    self._bad_sample(step, i, th, "loss", float(md.stop_gradient(value)))
                    dropped.append(i)
                    losses.append(float("nan"))
                    continue
                losses.append(float(md.stop_gradient(value)))
                total = value if total is None else total + value
            if len(dropped) == n:
                self._all_dropped(step, dropped)
            kl = self._kl(params, step)
            record.update(losses=losses, dropped=dropped, kl=md.stop_gradient(kl))
            return total / (n - len(dropped)) + self.w * kl

        _, grad = md.value_and_grad(objective)(flat)
        return self._finish(record["losses"], record["dropped"], record["kl"]), grad

    def _score(self, flat: Any, unravel: Callable, step: int) -> tuple:
        n, family = self.n_samples, self.family
        theta, _ = family.sample(unravel(flat), n, self._q_rng(step))
        losses, _, dropped = self._per_sample(theta, step, "value")
        kept = [i for i in range(n) if i not in dropped]
        values = [losses[i] for i in kept]
        total = sum(values)
        if self.baseline == "loo" and len(kept) > 1:
            weights = [(v - (total - v) / (len(kept) - 1)) / len(kept) for v in values]
        else:
            weights = [v / len(kept) for v in values]
        kept_theta = md.getitem(theta, md.get_backend().xp.asarray(kept))
        weights = md.asarray(weights)

        def surrogate(v: Any) -> Any:  # value Σ w_i log q; derivative Σ w_i ∇ log q(θ_i)
            return md.sum(md.multiply(weights, family.log_prob(unravel(v), kept_theta)))

        grad_loss = md.grad(surrogate)(flat)
        kl, grad_kl = md.value_and_grad(lambda v: self._kl(unravel(v), step))(flat)
        return self._finish(losses, dropped, kl), grad_loss + self.w * grad_kl
